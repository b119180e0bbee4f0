"""``lantian-agent doctor``: check a box end to end and say what to fix.

For each port: does it open with the configured line settings, do frames arrive within a few
seconds, does the configured CRC mode accept them (if not, which mode would), which devices,
commands, codes and units are seen, and is the device clock near the box clock. Then the box:
disk, NTP, the server (``/healthz``), and each device's enrolment (a signed heartbeat the server
either accepts or refuses). Every finding that is not OK comes with the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import serial

from agents.clock import INTERVAL_CNS, ntp_synchronized
from agents.config import AgentConfig, DeviceConfig, KeyFileError, PortConfig, read_key
from agents.heartbeat import disk_free_bytes
from agents.hj212 import CRC_MODES, CrcError, Frame, FrameError, FrameReader
from agents.serial_port import open_port
from agents.uplink import Uplink
from agents.version import VERSION
from schemas.reading import parse_data_time

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Finding:
    level: str
    what: str
    fix: str = ""

    def render(self) -> str:
        text = f"[{self.level:>4}] {self.what}"
        if self.fix:
            text += f"\n       fix: {self.fix}"
        return text


@dataclass
class PortListen:
    """What one port produced while the doctor listened."""

    data: bytes = b""
    seconds: float = 0.0
    error: str | None = None
    errno: int | None = None
    frames: dict[str, list[Frame]] = field(default_factory=dict)  # crc mode -> good frames
    errors: dict[str, list[FrameError]] = field(default_factory=dict)


def listen(
    port: PortConfig,
    seconds: float,
    *,
    opener: Callable[[PortConfig], Any] = open_port,
    enough_frames: int = 5,
    monotonic: Callable[[], float] = time.monotonic,
) -> PortListen:
    """Open the port and collect bytes for up to ``seconds`` (less once enough frames came)."""
    result = PortListen()
    try:
        handle = opener(port)
    except (serial.SerialException, OSError, ValueError) as exc:
        result.error = str(exc)
        result.errno = getattr(exc, "errno", None)
        return result
    # One reader per CRC mode, so that listening ends early whichever mode the logger uses.
    readers = [FrameReader(crc_mode=mode) for mode in CRC_MODES]
    good = dict.fromkeys(CRC_MODES, 0)
    start = monotonic()
    chunks: list[bytes] = []
    try:
        while monotonic() - start < seconds and max(good.values()) < enough_frames:
            data = handle.read(max(1, getattr(handle, "in_waiting", 0) or 1))
            if data:
                chunks.append(bytes(data))
                for reader in readers:
                    found = reader.feed(bytes(data))
                    good[reader.crc_mode] += sum(1 for item in found if isinstance(item, Frame))
    except (serial.SerialException, OSError) as exc:
        result.error = f"port failed while listening: {exc}"
    finally:
        with contextlib.suppress(serial.SerialException, OSError):
            handle.close()
    result.seconds = monotonic() - start
    result.data = b"".join(chunks)
    for mode in CRC_MODES:
        frames, errors = decode_all(result.data, mode)
        result.frames[mode] = frames
        result.errors[mode] = errors
    return result


def decode_all(data: bytes, crc_mode: str) -> tuple[list[Frame], list[FrameError]]:
    reader = FrameReader(crc_mode=crc_mode)
    items = reader.feed(data) + reader.flush()
    frames = [i for i in items if isinstance(i, Frame)]
    errors = [i for i in items if isinstance(i, FrameError)]
    return frames, errors


def judge_port(
    port: PortConfig,
    devices: dict[str, DeviceConfig],
    heard: PortListen,
    *,
    clock_tolerance_s: float = 60.0,
    now: datetime | None = None,
) -> list[Finding]:
    """Findings for one port from what was heard (pure: testable without a port)."""
    name = f"port {port.label}"
    if heard.error:
        return [_open_failure(port, heard)]
    findings = [
        Finding(OK, f"{name}: opens at {port.baud} {port.bytesize}{port.parity}{port.stopbits}")
    ]
    if not heard.data:
        findings.append(
            Finding(
                FAIL,
                f"{name}: no bytes in {heard.seconds:.0f} s",
                "check the cable (TX/RX crossed?), that the logger's output is this port, and its "
                "upload interval (listen longer with --listen 70 for a logger that sends every minute)",
            )
        )
        return findings
    configured = heard.frames[port.crc_mode]
    accepted = {mode: len(frames) for mode, frames in heard.frames.items()}
    crc_errors = [e for e in heard.errors[port.crc_mode] if isinstance(e, CrcError)]
    best = max(CRC_MODES, key=lambda m: (accepted[m], m == port.crc_mode))
    if not any(accepted.values()):
        garbage = sum(len(e.raw) for e in heard.errors[port.crc_mode])
        findings.append(
            Finding(
                FAIL,
                f"{name}: {len(heard.data)} bytes but no HJ 212 frame ({garbage} bytes of garbage)",
                f"usually a wrong baud rate or parity: the logger's setting must match baud = "
                f"{port.baud}, parity = {port.parity!r} (try 9600 8N1, then 19200, 4800)",
            )
        )
        return findings
    if best != port.crc_mode and accepted[best] > accepted[port.crc_mode]:
        findings.append(
            Finding(
                FAIL,
                f"{name}: CRC mode {port.crc_mode!r} rejects {len(crc_errors)} frame(s); mode "
                f"{best!r} accepts {accepted[best]} of them",
                f'set crc_mode = "{best}" for this [[port]] in agent.toml (this logger computes '
                "its CRC that way)",
            )
        )
        frames = heard.frames[best]
    else:
        frames = configured
        findings.append(
            Finding(
                OK, f"{name}: {len(frames)} frame(s) in {heard.seconds:.0f} s, CRC {port.crc_mode}"
            )
        )
        if crc_errors:
            findings.append(
                Finding(
                    WARN,
                    f"{name}: {len(crc_errors)} frame(s) failed the CRC in every mode",
                    "line noise: check the cable, its shielding and length, and the earth",
                )
            )
    other = [e for e in heard.errors[port.crc_mode] if not isinstance(e, CrcError)]
    if other:
        kinds = Counter(getattr(e, "kind", "frame") for e in other)
        findings.append(
            Finding(
                WARN,
                f"{name}: other framing problems: {', '.join(f'{n} {k}' for k, n in kinds.items())}",
                "occasional half frames after a reconnect are harmless; many mean noise or a "
                "baud-rate mismatch",
            )
        )
    findings += _judge_devices(port, devices, frames, clock_tolerance_s, now)
    return findings


def _open_failure(port: PortConfig, heard: PortListen) -> Finding:
    name = f"port {port.label}"
    text = heard.error or ""
    if heard.errno == errno.ENOENT or "No such file" in text:
        by_id = "/dev/serial/by-id"
        present = sorted(os.listdir(by_id)) if os.path.isdir(by_id) else []
        fix = "plug the adapter in, or correct path in agent.toml"
        if present:
            fix += f"; adapters present: {', '.join(present)} (under {by_id})"
        return Finding(FAIL, f"{name}: {port.path} does not exist", fix)
    if heard.errno in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return Finding(
            FAIL,
            f"{name}: permission denied on {port.path}",
            "the agent's user must be in the dialout group (the systemd unit sets "
            "SupplementaryGroups=dialout); for a manual run: sudo usermod -aG dialout $USER",
        )
    if "lock" in text.lower() or heard.errno in (errno.EAGAIN, errno.EBUSY):
        return Finding(
            FAIL,
            f"{name}: {port.path} is in use by another process",
            "stop the running agent first (sudo systemctl stop lantian-agent), or close minicom",
        )
    return Finding(FAIL, f"{name}: cannot open {port.path}: {text}", "check the path and settings")


def _judge_devices(
    port: PortConfig,
    devices: dict[str, DeviceConfig],
    frames: list[Frame],
    tolerance_s: float,
    now: datetime | None,
) -> list[Finding]:
    findings: list[Finding] = []
    name = f"port {port.label}"
    now = now or datetime.now(UTC)
    by_mn: dict[str, list[Frame]] = {}
    for frame in frames:
        by_mn.setdefault(frame.mn or "?", []).append(frame)
    for mn, mine in sorted(by_mn.items()):
        cns = Counter(f.cn for f in mine)
        codes = sorted({code for f in mine for code in f.values})
        summary = ", ".join(
            f"CN {cn} x{n}" for cn, n in sorted(cns.items(), key=lambda x: str(x[0]))
        )
        if mn not in port.devices:
            findings.append(
                Finding(
                    FAIL,
                    f"{name}: frames from MN {mn} ({summary}), which is not in this port's devices",
                    f'add [[device]] mn = "{mn}" (family, units) and list it in the port\'s devices',
                )
            )
            continue
        device = devices[mn]
        findings.append(
            Finding(OK, f"{name}: device {mn}: {summary}; codes {', '.join(codes) or '-'}")
        )
        no_unit = [c for c in codes if c not in device.units]
        if no_unit:
            findings.append(
                Finding(
                    WARN,
                    f"device {mn}: no unit configured for {', '.join(no_unit)}",
                    "units are not in the frame: add them to the device's units in agent.toml "
                    '(e.g. a21026 = "mg/m3"; ambient stations send µg/m3 except CO in mg/m3)',
                )
            )
        findings += _judge_clock(mn, mine, device, tolerance_s, now)
    for mn in port.devices:
        if mn not in by_mn:
            findings.append(
                Finding(
                    WARN,
                    f"{name}: nothing heard from configured device {mn}",
                    "check its MN in agent.toml against the logger's setting, or listen longer",
                )
            )
    return findings


def _judge_clock(
    mn: str, frames: list[Frame], device: DeviceConfig, tolerance_s: float, now: datetime
) -> list[Finding]:
    offsets = []
    for frame in frames:
        if not frame.data_time or frame.cn in INTERVAL_CNS:
            continue
        try:
            offsets.append((parse_data_time(frame.data_time, device.zone) - now).total_seconds())
        except ValueError:
            continue
    if not offsets:
        return [
            Finding(OK, f"device {mn}: no real-time frame to compare clocks (interval data only)")
        ]
    offset = max(offsets)  # the least late frame is the best estimate
    if abs(offset) > tolerance_s:
        direction = "ahead of" if offset > 0 else "behind"
        return [
            Finding(
                FAIL,
                f"device {mn}: clock {abs(offset):.0f} s {direction} the box",
                "set the logger's clock (its menu, or the platform's CN 1012); if the box clock is "
                "wrong instead, fix NTP on the box first",
            )
        ]
    return [Finding(OK, f"device {mn}: clock within {abs(offset):.0f} s of the box")]


def check_box(cfg: AgentConfig, uplink: Uplink | None = None) -> list[Finding]:
    """Disk, NTP, server reachability and enrolment."""
    findings: list[Finding] = []
    free = disk_free_bytes(cfg.box.data_dir) or disk_free_bytes(cfg.box.data_dir.parent)
    if free is None:
        findings.append(
            Finding(
                WARN,
                f"data_dir {cfg.box.data_dir} does not exist yet",
                "it is created on first run",
            )
        )
    elif free < cfg.box.queue_max_bytes * 1.6:
        findings.append(
            Finding(
                WARN,
                f"disk: {free // 2**20} MiB free under {cfg.box.data_dir}, queue cap "
                f"{cfg.box.queue_max_bytes // 2**20} MiB (the file needs up to 1.6x the cap)",
                "lower queue_max_mb or free space, or the disk fills before the queue's policy acts",
            )
        )
    else:
        findings.append(Finding(OK, f"disk: {free // 2**20} MiB free under {cfg.box.data_dir}"))
    synced = ntp_synchronized()
    if synced is True:
        findings.append(Finding(OK, "box clock NTP-synchronised"))
    elif synced is False:
        findings.append(
            Finding(
                WARN,
                "box clock is not NTP-synchronised",
                "check network access to an NTP server (timedatectl timesync-status)",
            )
        )
    else:
        findings.append(
            Finding(
                WARN,
                "cannot tell whether the box clock is synchronised",
                "install systemd-timesyncd or chrony",
            )
        )
    keys: dict[str, str] = {}
    for mn in cfg.devices:
        path = cfg.key_path(mn)
        try:
            keys[mn] = read_key(path)
        except FileNotFoundError:
            findings.append(
                Finding(
                    FAIL,
                    f"device {mn} is not enrolled (no {path}): its readings would wait on the box",
                    f"lantian-agent enroll --config {cfg.source} --device {mn} --code <code from the bureau>",
                )
            )
        except KeyFileError as exc:
            findings.append(Finding(FAIL, f"device {mn}: unusable key file", str(exc)))
    uplink = uplink or Uplink(
        cfg.box.server, keys, timeout=(5.0, 10.0), max_attempts=1, agent_version=VERSION
    )
    uplink.keys = dict(keys)
    up, detail = uplink.healthz()
    if not up:
        findings.append(
            Finding(
                FAIL,
                f"server {cfg.box.server}: {detail}",
                "check the box's network (ping, DNS), the server URL in agent.toml, and any firewall; "
                "readings are queued meanwhile",
            )
        )
        return findings
    findings.append(Finding(OK, f"server {cfg.box.server} reachable ({detail})"))
    offset = uplink.measured_offset_s
    if offset is not None and abs(offset) > cfg.box.clock_tolerance_s:
        findings.append(
            Finding(
                WARN,
                f"box clock differs from the server by {offset:.0f} s",
                "uploads are re-signed with the server's time, but fix NTP on the box",
            )
        )
    for mn in sorted(keys):
        result = uplink.heartbeat(
            mn, {"device_id": mn, "box_id": cfg.box.id, "doctor": True, "version": VERSION}
        )
        if result.delivered:
            findings.append(
                Finding(OK, f"device {mn}: enrolled (the server accepts its signature)")
            )
        elif result.status == 401:
            findings.append(
                Finding(
                    FAIL,
                    f"device {mn}: the server refuses its signature ({result.detail})",
                    f"enrol it again: lantian-agent enroll --config {cfg.source} --device {mn} --code <new code>",
                )
            )
        elif result.status == 403:
            findings.append(
                Finding(
                    FAIL,
                    f"device {mn}: suspended or retired at the server ({result.detail})",
                    "ask the bureau",
                )
            )
        else:
            findings.append(
                Finding(WARN, f"device {mn}: heartbeat answered {result.status}: {result.detail}")
            )
    return findings


def run_doctor(
    cfg: AgentConfig,
    *,
    listen_s: float = 5.0,
    skip_ports: bool = False,
    opener: Callable[[PortConfig], Any] = open_port,
    uplink: Uplink | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Run every check, print the findings; 0 when nothing failed, 1 otherwise."""
    findings: list[Finding] = []
    if not skip_ports:
        for port in cfg.ports:
            out(f"listening on {port.label} for up to {listen_s:.0f} s ...")
            heard = listen(port, listen_s, opener=opener)
            port_findings = judge_port(
                port, cfg.devices, heard, clock_tolerance_s=cfg.box.clock_tolerance_s
            )
            for finding in port_findings:
                out(finding.render())
            findings += port_findings
    box_findings = check_box(cfg, uplink)
    for finding in box_findings:
        out(finding.render())
    findings += box_findings
    failed = sum(1 for f in findings if f.level == FAIL)
    warned = sum(1 for f in findings if f.level == WARN)
    out(f"doctor: {failed} to fix, {warned} to look at, {len(findings) - failed - warned} ok")
    return 1 if failed else 0
