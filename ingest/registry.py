"""The device registry: who may upload, for which stream and owner, with which key.

A device is enrolled once: the bureau registers it and gets a one-time enrolment code (only the
code's SHA-256 is stored); the box creates its own secret, derives the signing key with
``schemas.signing.derive_key`` and sends the key with the code to ``POST /v1/enroll``. The
registry keeps that derived key (HMAC needs it on both sides) and never the secret. Rotating issues
a new code; when the box re-enrols, the old key stays valid for a grace window so uploads already
signed with it are not lost.

The registry shares the database of the landing index (see ``ingest.db``) so that replicas agree.
The bureau maintains it as files (:meth:`Registry.import_csv`, :meth:`Registry.export_csv`):

* ``devices.csv``: ``device_id, stream, family, owner_kind, owner_id, state, created_at,
  rotated_at, enrolled`` (no key material; the bureau's own ``devices.csv`` layout with
  ``device_id, family, stream, owner_id, …`` imports too, the owner kind following the stream);
* a separate keys file (mode 0600, refused otherwise): ``device_id, key_hex, prev_key_hex,
  prev_key_until, enrol_code_sha256``. It exists for backup and migration between databases.

Keys are kept out of ``repr`` and out of every message this module raises.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from ingest.db import begin_write, devices, ensure_schema, utc_iso, utc_now
from ingest.landing import SAFE_DEVICE_ID
from schemas.reading import STREAMS

OWNER_KINDS = ("enterprise", "stack", "station", "gas_station", "rsd_unit")
STATES = ("active", "suspended", "retired")

#: Owner kind implied by the stream when a registry file has no ``owner_kind`` column.
DEFAULT_OWNER_KIND = {
    "cems": "stack",
    "ambient": "station",
    "vapor": "gas_station",
    "rsd": "rsd_unit",
}

DEVICE_COLUMNS = (
    "device_id",
    "stream",
    "family",
    "owner_kind",
    "owner_id",
    "state",
    "created_at",
    "rotated_at",
    "enrolled",
)
KEY_COLUMNS = ("device_id", "key_hex", "prev_key_hex", "prev_key_until", "enrol_code_sha256")

_KEY_HEX = re.compile(r"^[0-9a-f]{64}$")
#: Built once (every upload looks its device up): a reused statement skips most of
#: SQLAlchemy's per-call compilation work.
_BY_DEVICE_ID = select(devices).where(devices.c.device_id == bindparam("device_id"))
#: Enrolment codes are typed on a box's console: an alphabet without 0/O/1/I/L, 25 characters
#: (125 bits), shown in groups of five.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 25


class RegistryError(ValueError):
    """A registry operation cannot be done; the message names the device and the reason."""


class EnrolmentRefused(RegistryError):
    """An enrolment attempt failed; ``reason`` is the machine-readable cause."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Device:
    device_id: str
    stream: str
    family: str
    owner_kind: str
    owner_id: str
    state: str
    created_at: str
    rotated_at: str | None = None
    enrolment_pending: bool = False
    key_hex: str | None = field(default=None, repr=False)
    prev_key_hex: str | None = field(default=None, repr=False)
    prev_key_until: str | None = None
    #: Whether the signature of the request being served is already in the replay cache
    #: (``None``: not looked up), when the service reads it with the device row.
    seen: bool | None = field(default=None, repr=False, compare=False)

    @property
    def enrolled(self) -> bool:
        return self.key_hex is not None

    def keys_valid_at(self, now: datetime) -> list[str]:
        """The current key, then the previous one while its grace window lasts."""
        keys = [self.key_hex] if self.key_hex else []
        until = self.prev_key_until
        if self.prev_key_hex and until and now < datetime.fromisoformat(until):
            keys.append(self.prev_key_hex)
        return keys


def new_enrolment_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    return "-".join(raw[i : i + 5] for i in range(0, _CODE_LENGTH, 5))


def code_hash(code: str) -> str:
    """SHA-256 of a code, ignoring case, spaces and dashes (as a person would type it)."""
    normalised = re.sub(r"[\s-]", "", code).upper()
    return hashlib.sha256(normalised.encode()).hexdigest()


def check_key_hex(key_hex: Any) -> str:
    """A derived key is 32 bytes in lowercase hex; the message never echoes the value."""
    if not isinstance(key_hex, str) or not _KEY_HEX.match(key_hex.lower()):
        raise RegistryError("key must be 64 hexadecimal digits (schemas.signing.derive_key)")
    return key_hex.lower()


def _check_device_fields(device_id: str, stream: str, owner_kind: str, state: str) -> None:
    if not SAFE_DEVICE_ID.match(device_id):
        raise RegistryError(f"device_id {device_id!r}: letters, digits, '.', '_' or '-' only")
    if stream not in STREAMS:
        raise RegistryError(f"device {device_id}: unknown stream {stream!r} (one of {STREAMS})")
    if owner_kind not in OWNER_KINDS:
        raise RegistryError(f"device {device_id}: unknown owner kind {owner_kind!r}")
    if state not in STATES:
        raise RegistryError(f"device {device_id}: unknown state {state!r} (one of {STATES})")


def device_from_row(row: Any) -> Device:
    return Device(
        device_id=row.device_id,
        stream=row.stream,
        family=row.family,
        owner_kind=row.owner_kind,
        owner_id=row.owner_id,
        state=row.state,
        created_at=row.created_at,
        rotated_at=row.rotated_at,
        enrolment_pending=row.enrol_code_sha256 is not None,
        key_hex=row.key_hex,
        prev_key_hex=row.prev_key_hex,
        prev_key_until=row.prev_key_until,
    )


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise RegistryError(
            f"{path}: keys file is readable by group or others (mode {mode:o}); chmod 600 it"
        )


def _open_private(path: Path):  # noqa: ANN202 - a text file handle
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode otherwise
    return os.fdopen(fd, "w", newline="", encoding="utf-8")


class Registry:
    """Device registry on the ingest database (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = ensure_schema(url)

    # -- reading -------------------------------------------------------------------------
    def get(self, device_id: str) -> Device | None:
        with self.engine.connect() as conn:
            row = conn.execute(_BY_DEVICE_ID, {"device_id": device_id}).first()
        return None if row is None else device_from_row(row)

    def all(self) -> list[Device]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(devices).order_by(devices.c.device_id)).all()
        return [device_from_row(row) for row in rows]

    def _require(self, device_id: str) -> Device:
        device = self.get(device_id)
        if device is None:
            raise RegistryError(f"device {device_id!r} is not in the registry")
        return device

    # -- changing ------------------------------------------------------------------------
    def add(
        self,
        device_id: str,
        stream: str,
        owner_kind: str | None = None,
        owner_id: str = "",
        family: str | None = None,
    ) -> str:
        """Register a device and return its one-time enrolment code (shown once, stored hashed)."""
        owner_kind = owner_kind or DEFAULT_OWNER_KIND.get(stream, "")
        _check_device_fields(device_id, stream, owner_kind, "active")
        if self.get(device_id) is not None:
            raise RegistryError(f"device {device_id!r} is already registered")
        code = new_enrolment_code()
        with begin_write(self.engine) as conn:
            conn.execute(
                insert(devices).values(
                    device_id=device_id,
                    stream=stream,
                    family=family or stream,
                    owner_kind=owner_kind,
                    owner_id=owner_id,
                    state="active",
                    enrol_code_sha256=code_hash(code),
                    created_at=utc_iso(utc_now()),
                )
            )
        return code

    def issue_code(self, device_id: str) -> str:
        """A new one-time enrolment code (first enrolment after an import, or a rotation)."""
        device = self._require(device_id)
        if device.state == "retired":
            raise RegistryError(f"device {device_id!r} is retired")
        code = new_enrolment_code()
        with begin_write(self.engine) as conn:
            conn.execute(
                update(devices)
                .where(devices.c.device_id == device_id)
                .values(enrol_code_sha256=code_hash(code))
            )
        return code

    def set_state(self, device_id: str, state: str) -> None:
        if state not in STATES:
            raise RegistryError(f"unknown state {state!r} (one of {STATES})")
        device = self._require(device_id)
        if device.state == "retired" and state != "retired":
            raise RegistryError(f"device {device_id!r} is retired; register a new device id")
        values: dict[str, Any] = {"state": state}
        if state == "retired":
            # A retired device can never upload again: drop its keys and any pending code.
            values |= {"key_hex": None, "prev_key_hex": None, "enrol_code_sha256": None}
        with begin_write(self.engine) as conn:
            conn.execute(update(devices).where(devices.c.device_id == device_id).values(**values))

    def _key_values(self, device: Device, key_hex: str, grace_s: float) -> dict[str, Any]:
        now = utc_now()
        values: dict[str, Any] = {"key_hex": key_hex, "enrol_code_sha256": None}
        if device.key_hex and device.key_hex != key_hex:
            values |= {
                "prev_key_hex": device.key_hex,
                "prev_key_until": utc_iso(now + timedelta(seconds=grace_s)),
                "rotated_at": utc_iso(now),
            }
        elif not device.key_hex:
            values["rotated_at"] = utc_iso(now)
        return values

    def set_key(self, device_id: str, key_hex: str, grace_s: float = 0.0) -> None:
        """Install a derived key directly (offline enrolment); the old key keeps ``grace_s``."""
        key_hex = check_key_hex(key_hex)
        device = self._require(device_id)
        if device.state == "retired":
            raise RegistryError(f"device {device_id!r} is retired")
        values = self._key_values(device, key_hex, grace_s)
        with begin_write(self.engine) as conn:
            conn.execute(update(devices).where(devices.c.device_id == device_id).values(**values))

    def enroll(self, device_id: str, code: str, key_hex: Any, grace_s: float = 0.0) -> Device:
        """Spend a one-time code to install the box's derived key (``POST /v1/enroll``)."""
        if not SAFE_DEVICE_ID.match(device_id):
            raise EnrolmentRefused("unknown_device", "device_id is not a registrable device id")
        device = self.get(device_id)
        if device is None:
            raise EnrolmentRefused("unknown_device", f"device {device_id!r} is not registered")
        if device.state != "active":
            raise EnrolmentRefused(
                f"device_{device.state}", f"device {device_id} is {device.state}"
            )
        if not device.enrolment_pending:
            raise EnrolmentRefused(
                "no_enrolment_pending", f"device {device_id} has no enrolment code outstanding"
            )
        try:
            key_hex = check_key_hex(key_hex)
        except RegistryError as exc:
            raise EnrolmentRefused("bad_key", str(exc)) from None
        hashed = code_hash(code) if isinstance(code, str) else ""
        values = self._key_values(device, key_hex, grace_s)
        # The code check and its consumption are one statement: two boxes racing with the same
        # code cannot both win.
        with begin_write(self.engine) as conn:
            changed = conn.execute(
                update(devices)
                .where(
                    devices.c.device_id == device_id,
                    devices.c.enrol_code_sha256 == hashed,
                    devices.c.state == "active",
                )
                .values(**values)
            ).rowcount
        if changed != 1:
            raise EnrolmentRefused(
                "bad_enrolment_code", f"enrolment code for device {device_id} is not valid"
            )
        return self._require(device_id)

    # -- files ---------------------------------------------------------------------------
    def import_csv(self, path: Path | str, keys_path: Path | str | None = None) -> int:
        """Upsert devices from a registry CSV (and keys from a 0600 keys file); returns count."""
        rows = _read_device_rows(Path(path))
        key_rows = _read_key_rows(Path(keys_path)) if keys_path else {}
        unknown = set(key_rows) - {row["device_id"] for row in rows}
        existing = {d.device_id for d in self.all()}
        if unknown - existing:
            raise RegistryError(f"{keys_path}: keys for unregistered devices {sorted(unknown)}")
        now = utc_iso(utc_now())
        with begin_write(self.engine) as conn:
            for row in rows:
                values = {k: row[k] for k in ("stream", "family", "owner_kind", "owner_id")}
                for optional in ("state", "rotated_at"):
                    if row.get(optional):
                        values[optional] = row[optional]
                if row["device_id"] in existing:
                    stmt = update(devices).where(devices.c.device_id == row["device_id"])
                    conn.execute(stmt.values(**values))
                else:
                    values.setdefault("state", "active")
                    created = row.get("created_at") or now
                    conn.execute(
                        insert(devices).values(
                            device_id=row["device_id"], created_at=created, **values
                        )
                    )
            for device_id, keys in key_rows.items():
                conn.execute(update(devices).where(devices.c.device_id == device_id).values(**keys))
        return len(rows)

    def export_csv(self, path: Path | str, keys_path: Path | str | None = None) -> int:
        """Write the registry (no key material) and, if asked, the keys file with mode 0600."""
        all_devices = self.all()
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=DEVICE_COLUMNS)
            writer.writeheader()
            for d in all_devices:
                writer.writerow(
                    {
                        "device_id": d.device_id,
                        "stream": d.stream,
                        "family": d.family,
                        "owner_kind": d.owner_kind,
                        "owner_id": d.owner_id,
                        "state": d.state,
                        "created_at": d.created_at,
                        "rotated_at": d.rotated_at or "",
                        "enrolled": int(d.enrolled),
                    }
                )
        if keys_path is not None:
            with self.engine.connect() as conn:
                rows = conn.execute(select(devices).order_by(devices.c.device_id)).all()
            with _open_private(Path(keys_path)) as handle:
                writer = csv.DictWriter(handle, fieldnames=KEY_COLUMNS)
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: getattr(row, k) or "" for k in KEY_COLUMNS})
        return len(all_devices)


def _read_device_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"device_id", "stream"} - set(reader.fieldnames or ())
        if missing:
            raise RegistryError(f"{path}: missing column(s) {sorted(missing)}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in raw.items() if k}
            row["family"] = row.get("family") or row["stream"]
            row["owner_kind"] = row.get("owner_kind") or DEFAULT_OWNER_KIND.get(row["stream"], "")
            row["owner_id"] = row.get("owner_id", "")
            try:
                _check_device_fields(
                    row["device_id"], row["stream"], row["owner_kind"], row.get("state") or "active"
                )
            except RegistryError as exc:
                raise RegistryError(f"{path}:{line}: {exc}") from None
            rows.append(row)
    return rows


def _read_key_rows(path: Path) -> dict[str, dict[str, str | None]]:
    _check_private(path)
    out: dict[str, dict[str, str | None]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for line, raw in enumerate(csv.DictReader(handle), start=2):
            device_id = (raw.get("device_id") or "").strip()
            values: dict[str, str | None] = {}
            for column in KEY_COLUMNS[1:]:
                values[column] = (raw.get(column) or "").strip() or None
            for column in ("key_hex", "prev_key_hex"):
                if values[column] is not None:
                    try:
                        values[column] = check_key_hex(values[column])
                    except RegistryError as exc:
                        raise RegistryError(f"{path}:{line}: {column}: {exc}") from None
            out[device_id] = values
    return out
