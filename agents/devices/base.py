"""The interface every device family implements, and the decoding they share.

A family turns one decoded HJ 212 frame (``agents.hj212.Frame``) from one configured device into
``schemas.reading.Reading`` objects. The families differ in which system codes (ST) and commands
(CN) they accept, how vendor codes map to HJ 212-2017 codes and what separates two readings of one
device at one time (the reading ``key``); all of that is data in ``schemas/data/device_profiles.toml``.

Decoding is strict about what makes a reading attributable (the device, the command, the data
time) and tolerant about everything else: unknown codes and suffixes pass through unchanged, values
stay the strings that were sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

from agents.hj212 import Frame
from schemas.profiles import code_aliases, default_units, family_protocol, is_non_reading_cn
from schemas.reading import Reading, parse_data_time

DEFAULT_TZ_HOURS = 8


class DecodeError(ValueError):
    """A frame that cannot become readings for this device. The message names the device, the
    frame's ST/CN and what is wrong; the attributes carry the same for the agent's error log."""

    def __init__(self, message: str, *, device_id: str, st: str | None, cn: str | None) -> None:
        super().__init__(f"device {device_id} (ST={st}, CN={cn}): {message}")
        self.device_id = device_id
        self.st = st
        self.cn = cn


class UnexpectedFrameError(DecodeError):
    """The frame's ST or CN is not one this family sends, or its MN/PW is not this device's."""


class MissingFieldError(DecodeError):
    """A field the reading needs (DataTime, the nozzle or pass key) is absent or unreadable."""

    def __init__(self, message: str, *, field: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


@runtime_checkable
class DeviceFamily(Protocol):
    """One kind of device. ``decode`` returns [] for frames that are not readings (replies,
    control and status commands) and raises ``DecodeError`` for frames it must not accept."""

    name: str
    stream: str
    st_codes: tuple[str, ...]

    def decode(
        self, frame: Frame, device: Mapping[str, Any], received_at: datetime
    ) -> list[Reading]: ...


def device_zone(device: Mapping[str, Any]) -> timezone:
    """The device's clock zone: ``tz`` hours east of UTC (Beijing, 8, unless configured)."""
    hours = device.get("tz", DEFAULT_TZ_HOURS)
    if hours is None or hours == "":
        hours = DEFAULT_TZ_HOURS
    return timezone(timedelta(hours=float(hours)))


def iso_with_offset(moment: datetime) -> str:
    """ISO 8601 with its UTC offset; a naive datetime is a caller's bug, not a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment!r} has no time zone; pass an aware datetime")
    return moment.isoformat()


def frame_text(frame: Frame) -> str:
    """The frame as received, without CR/LF (sub-frames of split packets joined by ``\\n``)."""
    return frame.raw.decode("utf-8", "replace").rstrip("\r\n")


def normalise_codes(
    values: Mapping[str, Mapping[str, str]], aliases: Mapping[str, str], known: frozenset[str]
) -> dict[str, dict[str, str]]:
    """Codes mapped to HJ 212-2017 (``aliases`` keyed upper-case; a known code sent upper-case is
    lowered); suffixes and values untouched. Two sent codes meeting on one 2017 code are merged,
    the first sent winning a suffix both carry."""
    out: dict[str, dict[str, str]] = {}
    for code, suffixes in values.items():
        target = aliases.get(code.upper())
        if target is None:
            target = code.lower() if code.lower() in known else code
        slot = out.setdefault(target, {})
        for suffix, value in suffixes.items():
            slot.setdefault(suffix, value)
    return out


def units_for(codes: list[str], device: Mapping[str, Any], stream: str) -> dict[str, str]:
    """Unit of each code: the device's configuration first, then the stream's default."""
    configured = device.get("units") or {}
    if isinstance(configured, str):  # a devices.csv row passed as it was read: JSON text
        configured = json.loads(configured)
    defaults = default_units(stream)
    out: dict[str, str] = {}
    for code in codes:
        unit = configured.get(code) or defaults.get(code)
        if unit:
            out[code] = unit
    return out


class HJ212Family:
    """A family described by its section of ``device_profiles.toml``.

    Subclasses only need to set ``name`` and ``stream``; ``reading_key`` and ``normalise`` are the
    hooks for families whose readings carry a key or whose vendors use other code names.
    """

    name: str = ""
    stream: str = ""

    def __init__(self) -> None:
        protocol = family_protocol(self.name)
        self.protocol = protocol
        self.st_codes: tuple[str, ...] = protocol.st
        self._aliases = code_aliases(self.name)
        self._known = frozenset(default_units(self.stream))

    def __repr__(self) -> str:
        return f"<device family {self.name} ST={'/'.join(self.st_codes)}>"

    # ------------------------------------------------------------------ hooks

    def normalise(self, values: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
        return normalise_codes(values, self._aliases, self._known)

    def reading_key(self, frame: Frame, device_id: str) -> str:
        """The discriminator inside one device and time ('' when the family has none)."""
        protocol = self.protocol
        if not protocol.key or frame.cn not in protocol.key_cns:
            return ""
        value = frame.cp.get(protocol.key, "").strip()
        if not value:
            raise MissingFieldError(
                f"CP has no {protocol.key}=<id>; a {self.name} CN={frame.cn} reading needs it "
                f"to tell readings of one time apart",
                field=protocol.key,
                device_id=device_id,
                st=frame.st,
                cn=frame.cn,
            )
        return value

    # ------------------------------------------------------------------ decode

    def check(self, frame: Frame, device: Mapping[str, Any]) -> bool:
        """Raise for a frame this device must not send; False for a non-reading command."""
        device_id = str(device.get("device_id", ""))
        where = {"device_id": device_id or str(frame.mn), "st": frame.st, "cn": frame.cn}
        if device_id and frame.mn != device_id:
            raise UnexpectedFrameError(f"frame MN {frame.mn!r} is not this device's MN", **where)
        pw = device.get("pw")
        if pw and frame.pw != pw:
            raise UnexpectedFrameError(
                f"frame PW {frame.pw!r} is not the password configured for this device", **where
            )
        cn = frame.cn or ""
        if is_non_reading_cn(cn):
            return False
        if frame.st not in self.st_codes:
            raise UnexpectedFrameError(
                f"ST={frame.st} is not a {self.name} system code (expected "
                f"{' or '.join(self.st_codes)})",
                **where,
            )
        if cn not in self.protocol.reading_cns:
            raise UnexpectedFrameError(
                f"CN={cn} is not a {self.name} data command (expected one of "
                f"{', '.join(self.protocol.reading_cns)})",
                **where,
            )
        return True

    def decode(
        self, frame: Frame, device: Mapping[str, Any], received_at: datetime
    ) -> list[Reading]:
        """The readings in one frame (one for every data frame of these families)."""
        if not self.check(frame, device):
            return []
        device_id = str(device.get("device_id") or frame.mn)
        where = {"device_id": device_id, "st": frame.st, "cn": frame.cn}
        data_time = frame.data_time or frame.cp.get("DataTime")
        if not data_time:
            raise MissingFieldError(
                "CP has no DataTime; a reading needs the device's data time", field="DataTime",
                **where,
            )  # fmt: skip
        try:
            device_time = parse_data_time(data_time, device_zone(device))
        except ValueError as exc:  # ContractError, or strptime on a 13th month
            raise MissingFieldError(
                f"DataTime {data_time!r} is not YYYYMMDDhhmmss", field="DataTime", **where
            ) from exc
        key = self.reading_key(frame, device_id)
        values = self.normalise(frame.values)
        return [
            Reading(
                device_id=device_id,
                stream=self.stream,
                cn=str(frame.cn),
                data_time=data_time,
                device_time=device_time.isoformat(),
                received_at=iso_with_offset(received_at),
                values=values,
                raw=frame_text(frame),
                units=units_for(list(values), device, self.stream),
                key=key,
            )
        ]
