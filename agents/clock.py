"""Device clocks against the box clock, and the box clock against NTP.

Every reading carries ``clock = {box_synced, device_offset_s, drift, jump}`` so the pipeline can
tell a device whose timestamps cannot be trusted from one that is merely late.

How the device offset is measured. A real-time record (CN 2011) or an event record (a refuelling,
a vehicle pass: any CN that is not an interval statistic) is stamped with the moment it was
measured and sent at once, so ``DataTime - receive time`` *is* the device clock's offset (plus a
second or two of line latency). Interval records (minute 2051, hourly 2061, daily 2031) are stamped
with the start or the end of their interval, depending on the vendor, and may legitimately arrive
late (a logger replaying what it stored during an outage), so they cannot measure the offset; they
only reveal a clock running *ahead*: a record stamped in the future. They carry the device's offset
as last measured on its real-time or event records.

- ``drift``: the offset is beyond ``tolerance_s`` (either way), or an interval record is from the
  future by more than the tolerance.
- ``jump``: the offset changed by more than ``jump_s`` between two consecutive measuring records of
  the same device (a clock set by hand, a battery-backed clock reset to 2000 after a power cut).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("lantian.agent.clock")

#: HJ 212 interval-statistics commands: their DataTime labels an interval, not the send time.
INTERVAL_CNS = frozenset({"2051", "2061", "2031"})

#: File systemd-timesyncd creates once the clock is synchronised.
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


@dataclass
class _DeviceClock:
    offset_s: float | None = None
    drift: bool = False


class ClockWatch:
    """Per-device offset tracking. Thread-safe (several ports share one watch)."""

    def __init__(
        self,
        tolerance_s: float = 60.0,
        jump_s: float = 120.0,
        box_synced: Callable[[], bool | None] | None = None,
    ) -> None:
        self.tolerance_s = tolerance_s
        self.jump_s = jump_s
        self._box_synced = box_synced or (lambda: None)
        self._devices: dict[str, _DeviceClock] = {}
        self._lock = threading.Lock()

    def observe(
        self, device_id: str, cn: str, device_time: datetime, received_at: datetime
    ) -> dict[str, Any]:
        """Judge one record; return the reading's ``clock`` field."""
        raw = (device_time - received_at).total_seconds()
        with self._lock:
            state = self._devices.setdefault(device_id, _DeviceClock())
            jump = False
            if cn in INTERVAL_CNS:
                ahead = raw > self.tolerance_s
                offset = state.offset_s
                drift = ahead or (offset is not None and abs(offset) > self.tolerance_s)
                if ahead:
                    log.warning(
                        "device %s: CN %s record stamped %.0f s in the future: its clock runs ahead",
                        device_id,
                        cn,
                        raw,
                    )
            else:
                previous = state.offset_s
                offset = raw
                jump = previous is not None and abs(offset - previous) > self.jump_s
                drift = abs(offset) > self.tolerance_s
                state.offset_s = offset
                if jump:
                    log.warning(
                        "device %s: clock jumped by %.0f s (offset %.0f s -> %.0f s)",
                        device_id,
                        offset - previous,
                        previous,
                        offset,
                    )
            if drift != state.drift:
                state.drift = drift
                if drift:
                    log.warning(
                        "device %s: clock off by %s s from the box (tolerance %.0f s); set the "
                        "logger's clock",
                        device_id,
                        "?" if offset is None else f"{offset:.0f}",
                        self.tolerance_s,
                    )
                else:
                    log.info(
                        "device %s: clock back within %.0f s of the box",
                        device_id,
                        self.tolerance_s,
                    )
        return {
            "box_synced": self._box_synced(),
            "device_offset_s": None if offset is None else round(offset, 1),
            "drift": bool(drift),
            "jump": bool(jump),
        }

    def observe_reading(self, reading) -> dict[str, Any]:
        """``observe`` from a Reading's ISO ``device_time`` and ``received_at``; sets its clock."""
        clock = self.observe(
            reading.device_id,
            reading.cn,
            datetime.fromisoformat(reading.device_time),
            datetime.fromisoformat(reading.received_at),
        )
        reading.clock = clock
        return clock

    def offsets(self) -> dict[str, float | None]:
        """Last measured offset per device (for the heartbeat)."""
        with self._lock:
            return {
                d: None if s.offset_s is None else round(s.offset_s, 1)
                for d, s in self._devices.items()
            }

    def drifting(self) -> list[str]:
        with self._lock:
            return sorted(d for d, s in self._devices.items() if s.drift)


# ---------------------------------------------------------------------- the box clock


def ntp_synchronized(
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    flag_file: Path = TIMESYNC_FLAG,
) -> bool | None:
    """Is the box clock NTP-synchronised? True / False, or None when the box cannot tell."""
    if shutil.which("timedatectl"):
        try:
            done = run(
                ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=3,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0:
            answer = done.stdout.strip().lower()
            if answer in ("yes", "true", "1"):
                return True
            if answer in ("no", "false", "0"):
                return False
    if flag_file.exists():
        return True
    return None


class BoxClock:
    """Cached box sync state (asking timedatectl on every reading would be wasteful)."""

    def __init__(self, ttl_s: float = 60.0, probe: Callable[[], bool | None] = ntp_synchronized):
        self.ttl_s = ttl_s
        self._probe = probe
        self._value: bool | None = None
        self._at = -float("inf")
        self._lock = threading.Lock()

    def __call__(self) -> bool | None:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self.ttl_s:
                previous, self._value = self._value, self._probe()
                self._at = now
                if self._value is False and previous is not False:
                    log.warning("box clock is not NTP-synchronised: receive times may be off")
            return self._value


class ReplayClockWatch(ClockWatch):
    """For replayed history (a logger's stored data, a simulation run faster than real time).

    The records' DataTime is hours or years behind the box's clock by design, so comparing the two
    says nothing about the device clock; every reading says so with ``replay: true`` instead of a
    false drift alarm. Clock faults in replayed data are left to the pipeline's series checks.
    """

    def observe(
        self, device_id: str, cn: str, device_time: datetime, received_at: datetime
    ) -> dict[str, Any]:
        return {
            "box_synced": self._box_synced(),
            "device_offset_s": None,
            "drift": False,
            "jump": False,
            "replay": True,
        }
