"""The reading and batch contracts shared by the agent, the ingest service and the pipelines.

A *reading* is one measurement event from one device. Its id is derived from its content
(device, command, data time and a family-specific discriminator such as a nozzle or a vehicle
pass), so the same event read twice, uploaded twice or landed twice is the same reading and is
removed by id wherever duplicates can meet.

Values are kept as the decimal strings the device sent (``"1.230"`` stays ``"1.230"``): the raw
frame is legal evidence and typed conversion happens in the pipeline, not here.

Stdlib only: the agent on a Raspberry Pi imports this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

STREAMS = ("cems", "ambient", "vapor", "rsd")

#: Version of the reading/batch envelope. Bump on any incompatible change.
CONTRACT_VERSION = 1


class ContractError(ValueError):
    """A reading or batch does not satisfy the contract; the message names the field."""


def reading_id(device_id: str, cn: str, data_time: str, key: str = "") -> str:
    """Stable id of a reading: the same event always gets the same id.

    ``data_time`` is the device's own ``YYYYMMDDhhmmss`` string (not a parsed instant, so that
    a re-read never changes the id through time-zone handling). ``key`` separates events that
    share a timestamp inside one device: a nozzle, a vehicle pass, a split-packet number.
    """
    digest = hashlib.sha256(f"{device_id}\x1f{cn}\x1f{data_time}\x1f{key}".encode()).hexdigest()
    return digest[:32]


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def parse_data_time(text: str, tz: timezone = BEIJING) -> datetime:
    """``YYYYMMDDhhmmss`` (optionally with 3 ms digits) in the device's zone → aware datetime."""
    digits = text.strip()
    if not digits.isdigit() or len(digits) not in (14, 17):
        raise ContractError(f"data_time {text!r} is not YYYYMMDDhhmmss[zzz]")
    # Slicing instead of strptime: the ingest service checks every reading of every batch.
    try:
        base = datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ContractError(f"data_time {text!r} is not a real date and time: {exc}") from None
    if len(digits) == 17:
        base += timedelta(milliseconds=int(digits[14:]))
    return base


@dataclass
class Reading:
    """One measurement event. See ``DESIGN.md`` → Contracts → Reading."""

    device_id: str
    stream: str
    cn: str
    data_time: str  # device's YYYYMMDDhhmmss as sent
    device_time: str  # ISO 8601 with offset (+08:00 unless configured)
    received_at: str  # ISO 8601 with offset: the box's receive time
    values: dict[str, dict[str, str]]  # code -> suffix -> decimal string / flag letter
    raw: str  # the frame(s) exactly as received, CRLF stripped
    units: dict[str, str] = field(default_factory=dict)
    key: str = ""
    clock: dict[str, Any] = field(default_factory=dict)  # box_synced, device_offset_s, drift
    id: str = ""
    raw_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = reading_id(self.device_id, self.cn, self.data_time, self.key)
        if not self.raw_sha256:
            self.raw_sha256 = sha256_hex(self.raw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reading:
        check_reading_dict(data)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


_REQUIRED = {
    "id": str,
    "device_id": str,
    "stream": str,
    "cn": str,
    "data_time": str,
    "device_time": str,
    "received_at": str,
    "values": dict,
    "raw": str,
    "raw_sha256": str,
}


def check_reading_dict(data: Any, where: str = "reading") -> None:
    """Raise :class:`ContractError` naming the first field that breaks the contract."""
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected an object, got {type(data).__name__}")
    for name, kind in _REQUIRED.items():
        if name not in data:
            raise ContractError(f"{where}: missing field {name!r}")
        if not isinstance(data[name], kind):
            raise ContractError(f"{where}: field {name!r} must be {kind.__name__}")
    if data["stream"] not in STREAMS:
        raise ContractError(f"{where}: unknown stream {data['stream']!r}")
    try:
        parse_data_time(data["data_time"])
    except ContractError as exc:
        raise ContractError(f"{where}: {exc}") from None
    expected = reading_id(data["device_id"], data["cn"], data["data_time"], data.get("key", ""))
    if data["id"] != expected:
        raise ContractError(f"{where}: id {data['id']!r} does not match its content ({expected})")
    if sha256_hex(data["raw"]) != data["raw_sha256"]:
        raise ContractError(f"{where}: raw_sha256 does not match the raw frame")
    for stamp in ("device_time", "received_at"):
        try:
            parsed = datetime.fromisoformat(data[stamp])
        except ValueError as exc:
            raise ContractError(f"{where}: {stamp} {data[stamp]!r} is not ISO 8601") from exc
        if parsed.tzinfo is None:
            raise ContractError(f"{where}: {stamp} {data[stamp]!r} has no UTC offset")


def batch_id(reading_ids: list[str]) -> str:
    """Content-derived batch id: the same readings always form the same batch id."""
    return sha256_hex("\n".join(reading_ids))[:32]


@dataclass
class Batch:
    """What an agent uploads for one device. See ``DESIGN.md`` → Contracts → Batch."""

    device_id: str
    stream: str
    readings: list[dict[str, Any]]
    batch_id: str = ""
    agent_version: str = ""
    contract: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        if not self.batch_id:
            self.batch_id = batch_id([r["id"] for r in self.readings])

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_batch_dict(data: Any) -> None:
    """Raise :class:`ContractError` naming the problem; every reading is checked."""
    if not isinstance(data, dict):
        raise ContractError(f"batch: expected an object, got {type(data).__name__}")
    for name, kind in (("device_id", str), ("stream", str), ("readings", list), ("batch_id", str)):
        if name not in data:
            raise ContractError(f"batch: missing field {name!r}")
        if not isinstance(data[name], kind):
            raise ContractError(f"batch: field {name!r} must be {kind.__name__}")
    if data.get("contract", CONTRACT_VERSION) != CONTRACT_VERSION:
        raise ContractError(f"batch: contract version {data.get('contract')!r} is not supported")
    if data["stream"] not in STREAMS:
        raise ContractError(f"batch: unknown stream {data['stream']!r}")
    if not data["readings"]:
        raise ContractError("batch: no readings")
    for i, reading in enumerate(data["readings"]):
        check_reading_dict(reading, where=f"readings[{i}]")
        if reading["device_id"] != data["device_id"]:
            raise ContractError(
                f"readings[{i}]: device {reading['device_id']!r} is not the batch's device "
                f"{data['device_id']!r}"
            )
        if reading["stream"] != data["stream"]:
            raise ContractError(
                f"readings[{i}]: stream {reading['stream']!r} is not the batch's stream "
                f"{data['stream']!r}"
            )
    expected = batch_id([r["id"] for r in data["readings"]])
    if data["batch_id"] != expected:
        raise ContractError(f"batch: batch_id {data['batch_id']!r} does not match its readings")
