"""``agent.toml``: what one field box reads, where it keeps its data, where it uploads.

Every misconfiguration is reported as a :class:`ConfigError` whose message names the file, the
section and what to write instead, because the person reading it is a technician at a stack or a
roadside cabinet, not the author. Signing keys never appear in this file: each enrolled device has
``<data_dir>/keys/<MN>.key`` (mode 0600), written by ``lantian-agent enroll``.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agents.hj212 import CRC_MODES
from schemas.reading import BEIJING, STREAMS

BAUD_RATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
PARITIES = {"N": "N", "E": "E", "O": "O", "M": "M", "S": "S", "NONE": "N", "EVEN": "E", "ODD": "O"}
BYTESIZES = (5, 6, 7, 8)
STOPBITS = (1, 1.5, 2)

REQUIRED = object()  # marks a key without a default

_BOX_KEYS = {
    "id": REQUIRED,
    "data_dir": REQUIRED,
    "server": REQUIRED,
    "queue_max_mb": 512,
    "queue_alarm_pct": 80,
    "batch_max_readings": 500,
    "upload_linger_s": 2.0,
    "backlog_rate": 50.0,
    "live_window_s": 300.0,
    "heartbeat_interval_s": 300.0,
    "upload_timeout_s": 30.0,
    "clock_tolerance_s": 60.0,
    "clock_jump_s": 120.0,
    "replay": False,
    "log_level": "INFO",
}
_PORT_KEYS = {
    "path": REQUIRED,
    "baud": 9600,
    "parity": "N",
    "bytesize": 8,
    "stopbits": 1,
    "read_timeout_s": 0.5,
    "family": REQUIRED,
    "crc_mode": "standard",
    "devices": REQUIRED,
    "watchdog_s": 300.0,
    "reply": True,
    "packet_timeout_s": 60.0,
    "name": "",
}
_DEVICE_KEYS = {
    "mn": REQUIRED,
    "family": REQUIRED,
    "units": {},
    "pw": "",
    "timezone": "+08:00",
}


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and what to change."""


@dataclass(frozen=True)
class DeviceConfig(Mapping):
    """One device (one MN). Also a read-only mapping, which is what family decoders take."""

    mn: str
    family: str
    units: dict[str, str] = field(default_factory=dict)
    pw: str = ""
    timezone: str = "+08:00"
    zone: tzinfo = BEIJING
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device_id(self) -> str:
        return self.mn

    @property
    def stream(self) -> str:
        return self.family

    @property
    def tz_hours(self) -> float:
        offset = datetime.now(self.zone).utcoffset() or timedelta(0)
        return offset.total_seconds() / 3600

    def _as_dict(self) -> dict[str, Any]:
        data = {
            "device_id": self.mn,
            "mn": self.mn,
            "family": self.family,
            "stream": self.family,
            "units": self.units,
            "pw": self.pw,
            "timezone": self.timezone,
            # the family decoders take the zone as hours east of UTC
            "tz": self.tz_hours,
        }
        data.update(self.extra)
        return data

    def __getitem__(self, key: str) -> Any:
        return self._as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._as_dict())

    def __len__(self) -> int:
        return len(self._as_dict())


@dataclass(frozen=True)
class PortConfig:
    path: str
    family: str
    devices: tuple[str, ...]
    baud: int = 9600
    parity: str = "N"
    bytesize: int = 8
    stopbits: float = 1
    read_timeout_s: float = 0.5
    crc_mode: str = "standard"
    watchdog_s: float = 300.0
    reply: bool = True
    packet_timeout_s: float = 60.0
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.path


@dataclass(frozen=True)
class BoxConfig:
    id: str
    data_dir: Path
    server: str
    queue_max_bytes: int = 512 * 1024 * 1024
    queue_alarm_ratio: float = 0.8
    batch_max_readings: int = 500
    upload_linger_s: float = 2.0
    backlog_rate: float = 50.0
    live_window_s: float = 300.0
    heartbeat_interval_s: float = 300.0
    upload_timeout_s: float = 30.0
    clock_tolerance_s: float = 60.0
    clock_jump_s: float = 120.0
    replay: bool = False
    log_level: str = "INFO"


@dataclass(frozen=True)
class AgentConfig:
    box: BoxConfig
    ports: tuple[PortConfig, ...]
    devices: dict[str, DeviceConfig]
    source: Path

    @property
    def queue_path(self) -> Path:
        return self.box.data_dir / "queue.sqlite"

    @property
    def keys_dir(self) -> Path:
        return self.box.data_dir / "keys"

    @property
    def state_path(self) -> Path:
        """Where the runner writes its last heartbeat and per-port state for ``status``."""
        return self.box.data_dir / "state.json"

    def key_path(self, device_id: str) -> Path:
        return key_path(self.box.data_dir, device_id)

    def port_of(self, device_id: str) -> PortConfig | None:
        return next((p for p in self.ports if device_id in p.devices), None)


# ---------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str]) -> AgentConfig:
    """Read and check ``agent.toml``; raise :class:`ConfigError` with a fix on any problem."""
    source = Path(path)
    try:
        with source.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: no such file. Copy infra/agent/agent.example.toml there and edit it"
        ) from None
    except PermissionError:
        raise ConfigError(f"{source}: not readable by this user (check its permissions)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: Path = Path("agent.toml")) -> AgentConfig:
    where = str(source)
    unknown = set(data) - {"box", "port", "device"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {', '.join(sorted(unknown))}; "
            "expected [box], [[port]] and [[device]]"
        )
    if "box" not in data or not isinstance(data["box"], Mapping):
        raise ConfigError(f"{where}: missing [box] section (id, data_dir, server)")
    box = _parse_box(data["box"], f"{where} [box]", source)
    raw_devices = _table_list(data, "device", where)
    raw_ports = _table_list(data, "port", where)
    if not raw_ports:
        raise ConfigError(
            f"{where}: no [[port]] section: the box reads nothing. Add one per serial port "
            '(path = "/dev/ttyUSB0", baud, family, devices)'
        )
    devices: dict[str, DeviceConfig] = {}
    for i, raw in enumerate(raw_devices, start=1):
        device = _parse_device(raw, f"{where} [[device]] #{i}")
        if device.mn in devices:
            raise ConfigError(f"{where} [[device]] #{i}: MN {device.mn} is declared twice")
        devices[device.mn] = device
    ports: list[PortConfig] = []
    seen_paths: dict[str, int] = {}
    owner: dict[str, str] = {}
    for i, raw in enumerate(raw_ports, start=1):
        ctx = f"{where} [[port]] #{i}"
        port = _parse_port(raw, ctx)
        if port.path in seen_paths:
            raise ConfigError(
                f"{ctx}: path {port.path} is already used by [[port]] #{seen_paths[port.path]}"
            )
        seen_paths[port.path] = i
        for mn in port.devices:
            if mn not in devices:
                raise ConfigError(
                    f'{ctx}: device {mn} is not declared; add a [[device]] with mn = "{mn}", '
                    "its family and its units"
                )
            if devices[mn].family != port.family:
                raise ConfigError(
                    f"{ctx}: device {mn} is family {devices[mn].family!r} but the port reads "
                    f"family {port.family!r}; one logger per port speaks one family"
                )
            if mn in owner:
                raise ConfigError(f"{ctx}: device {mn} is already on port {owner[mn]}")
            owner[mn] = port.path
        ports.append(port)
    for mn in devices:
        if mn not in owner:
            raise ConfigError(
                f"{where}: device {mn} is declared but on no [[port]]; list it in a port's devices"
            )
    return AgentConfig(box=box, ports=tuple(ports), devices=devices, source=source)


def _table_list(data: Mapping[str, Any], name: str, where: str) -> list[Mapping[str, Any]]:
    value = data.get(name, [])
    if isinstance(value, Mapping):
        raise ConfigError(f"{where}: write [[{name}]] (double brackets), one per {name}")
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"{where}: [[{name}]] must be tables")
    return value


def _check_keys(raw: Mapping[str, Any], known: Mapping[str, Any], ctx: str) -> dict[str, Any]:
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(
            f"{ctx}: unknown key(s) {', '.join(sorted(unknown))}; known keys: {', '.join(known)}"
        )
    missing = [k for k, default in known.items() if default is REQUIRED and k not in raw]
    if missing:
        raise ConfigError(f"{ctx}: missing {', '.join(missing)}")
    merged = {k: v for k, v in known.items() if v is not REQUIRED}
    merged.update(raw)
    return merged


def _number(value: Any, name: str, ctx: str, *, minimum: float = 0, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{ctx}: {name} must be a number, got {value!r}")
    if value < minimum or (positive and value <= 0):
        raise ConfigError(
            f"{ctx}: {name} must be {'> 0' if positive else f'>= {minimum}'}, got {value}"
        )
    return float(value)


def _text(value: Any, name: str, ctx: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{ctx}: {name} must be a non-empty string, got {value!r}")
    return value.strip()


def _parse_box(raw: Mapping[str, Any], ctx: str, source: Path) -> BoxConfig:
    v = _check_keys(raw, _BOX_KEYS, ctx)
    server = _text(v["server"], "server", ctx)
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{ctx}: server {server!r} must be a URL like https://ingest.example.gov.cn"
        )
    data_dir = Path(_text(v["data_dir"], "data_dir", ctx))
    if not data_dir.is_absolute():
        data_dir = (source.parent / data_dir).resolve()
    alarm = _number(v["queue_alarm_pct"], "queue_alarm_pct", ctx)
    if alarm > 100:
        raise ConfigError(f"{ctx}: queue_alarm_pct must be at most 100, got {alarm}")
    batch = v["batch_max_readings"]
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 10000:
        raise ConfigError(f"{ctx}: batch_max_readings must be an integer 1..10000, got {batch!r}")
    level = str(v["log_level"]).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{ctx}: log_level must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    return BoxConfig(
        id=_text(v["id"], "id", ctx),
        data_dir=data_dir,
        server=server.rstrip("/"),
        queue_max_bytes=int(_number(v["queue_max_mb"], "queue_max_mb", ctx) * 1024 * 1024),
        queue_alarm_ratio=alarm / 100.0,
        batch_max_readings=batch,
        upload_linger_s=_number(v["upload_linger_s"], "upload_linger_s", ctx, positive=False),
        backlog_rate=_number(v["backlog_rate"], "backlog_rate", ctx),
        live_window_s=_number(v["live_window_s"], "live_window_s", ctx),
        heartbeat_interval_s=_number(v["heartbeat_interval_s"], "heartbeat_interval_s", ctx),
        upload_timeout_s=_number(v["upload_timeout_s"], "upload_timeout_s", ctx),
        clock_tolerance_s=_number(v["clock_tolerance_s"], "clock_tolerance_s", ctx),
        clock_jump_s=_number(v["clock_jump_s"], "clock_jump_s", ctx),
        replay=_replay(v["replay"], ctx),
        log_level=level,
    )


def _replay(value: Any, ctx: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{ctx}: replay must be true or false, got {value!r}")
    return value


def _family(value: Any, ctx: str) -> str:
    family = _text(value, "family", ctx).lower()
    if family not in STREAMS:
        raise ConfigError(f"{ctx}: unknown family {value!r}; known families: {', '.join(STREAMS)}")
    return family


def _parse_port(raw: Mapping[str, Any], ctx: str) -> PortConfig:
    v = _check_keys(raw, _PORT_KEYS, ctx)
    path = _text(v["path"], "path", ctx)
    baud = v["baud"]
    if isinstance(baud, bool) or not isinstance(baud, int) or baud not in BAUD_RATES:
        raise ConfigError(
            f"{ctx}: baud {baud!r} is not a serial speed; use one of "
            f"{', '.join(map(str, BAUD_RATES))} (loggers mostly use 9600)"
        )
    parity = PARITIES.get(str(v["parity"]).upper())
    if parity is None:
        raise ConfigError(f"{ctx}: parity {v['parity']!r} must be N, E, O, M or S")
    if v["bytesize"] not in BYTESIZES or isinstance(v["bytesize"], bool):
        raise ConfigError(f"{ctx}: bytesize {v['bytesize']!r} must be 5, 6, 7 or 8")
    if v["stopbits"] not in STOPBITS or isinstance(v["stopbits"], bool):
        raise ConfigError(f"{ctx}: stopbits {v['stopbits']!r} must be 1, 1.5 or 2")
    crc_mode = str(v["crc_mode"]).lower()
    if crc_mode not in CRC_MODES:
        raise ConfigError(
            f"{ctx}: crc_mode {v['crc_mode']!r} must be one of {', '.join(CRC_MODES)} "
            "(`lantian-agent doctor` tells which one a logger uses)"
        )
    devices = v["devices"]
    if isinstance(devices, str):
        devices = [devices]
    if (
        not isinstance(devices, list)
        or not devices
        or not all(isinstance(d, str) and d for d in devices)
    ):
        raise ConfigError(
            f'{ctx}: devices must list the MNs on this port, e.g. devices = ["010000A89..."]'
        )
    if not isinstance(v["reply"], bool):
        raise ConfigError(f"{ctx}: reply must be true or false")
    return PortConfig(
        path=path,
        family=_family(v["family"], ctx),
        devices=tuple(devices),
        baud=baud,
        parity=parity,
        bytesize=int(v["bytesize"]),
        stopbits=v["stopbits"],
        read_timeout_s=_number(v["read_timeout_s"], "read_timeout_s", ctx),
        crc_mode=crc_mode,
        watchdog_s=_number(v["watchdog_s"], "watchdog_s", ctx),
        reply=v["reply"],
        packet_timeout_s=_number(v["packet_timeout_s"], "packet_timeout_s", ctx),
        name=str(v["name"]),
    )


def parse_timezone(text: str, ctx: str = "timezone") -> tzinfo:
    """``+08:00`` / ``UTC+8`` style offsets, or an IANA name such as ``Asia/Shanghai``."""
    value = text.strip()
    body = value[3:] if value.upper().startswith("UTC") and len(value) > 3 else value
    if body[:1] in "+-" and len(body) > 1:
        sign = -1 if body[0] == "-" else 1
        hours, _, minutes = body[1:].partition(":")
        if hours.isdigit() and (not minutes or minutes.isdigit()):
            delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
            if delta <= timedelta(hours=14):
                if sign * delta == timedelta(hours=8):
                    return BEIJING
                return timezone(sign * delta)
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - always present on 3.11
        ZoneInfo = None  # noqa: N806
    if ZoneInfo is not None and "/" in value:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise ConfigError(
        f"{ctx}: timezone {text!r} must be an offset like +08:00 or a name like Asia/Shanghai"
    )


def _parse_device(raw: Mapping[str, Any], ctx: str) -> DeviceConfig:
    v = _check_keys(raw, _DEVICE_KEYS, ctx)
    mn = _text(v["mn"], "mn", ctx)
    if any(c in mn for c in ";=&/\\ ") or not mn.isprintable():
        raise ConfigError(f"{ctx}: mn {mn!r} contains characters an HJ 212 MN cannot have")
    units = v["units"]
    if not isinstance(units, Mapping) or not all(
        isinstance(k, str) and isinstance(u, str) for k, u in units.items()
    ):
        raise ConfigError(
            f'{ctx}: units must map codes to units, e.g. units = {{ a21026 = "mg/m3" }}'
        )
    return DeviceConfig(
        mn=mn,
        family=_family(v["family"], ctx),
        units=dict(units),
        pw=str(v["pw"]),
        timezone=str(v["timezone"]),
        zone=parse_timezone(str(v["timezone"]), f"{ctx} timezone"),
    )


# ---------------------------------------------------------------------- keys


class KeyFileError(ConfigError):
    """A device key file exists but cannot be used."""


def key_path(data_dir: Path, device_id: str) -> Path:
    return Path(data_dir) / "keys" / f"{device_id}.key"


def read_key(path: Path) -> str:
    """Read one key file: 64 hex digits, owner-only permissions. Never echoes the key."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise
    except PermissionError:
        raise KeyFileError(
            f"key file {path} is not readable by this user; the agent's service user must own "
            "it (chown it, keep mode 600)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.__class__.__name__}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise KeyFileError(
            f"key file {path} does not hold a 64-hex-digit key; enrol the device again"
        )
    return text.lower()


def load_keys(cfg: AgentConfig) -> tuple[dict[str, str], list[str]]:
    """Keys of the enrolled devices, and one problem line per device that cannot upload."""
    keys: dict[str, str] = {}
    problems: list[str] = []
    for mn in cfg.devices:
        path = cfg.key_path(mn)
        try:
            keys[mn] = read_key(path)
        except FileNotFoundError:
            problems.append(
                f"device {mn} is not enrolled (no {path}): its readings are queued but not "
                f"uploaded; run `lantian-agent enroll --config {cfg.source} --device {mn} --code <code>`"
            )
        except KeyFileError as exc:
            problems.append(str(exc))
    return keys, problems


def write_key(data_dir: Path, device_id: str, key_hex: str) -> Path:
    """Store a key with mode 0600 from the first byte (never world-readable, even briefly)."""
    path = key_path(data_dir, device_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_suffix(".key.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key_hex + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def port_problems(cfg: AgentConfig) -> list[str]:
    """Ports whose device path is missing right now (USB unplugged, wrong name)."""
    problems = []
    for port in cfg.ports:
        if "://" in port.path:
            continue
        if not os.path.exists(port.path):
            by_id = "/dev/serial/by-id"
            hint = (
                f"; adapters present: {', '.join(sorted(os.listdir(by_id)))}"
                if os.path.isdir(by_id)
                else ""
            )
            problems.append(
                f"port {port.label}: {port.path} does not exist (unplugged, or a different name){hint}"
            )
    return problems
