"""Device clock drift and jumps against the box clock; the box's own NTP state."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta

from agent_testkit import make_reading

from agents.clock import BoxClock, ClockWatch, ntp_synchronized
from schemas.reading import BEIJING

BOX_NOW = datetime(2017, 11, 1, 8, 0, 30, tzinfo=BEIJING)


def at(seconds: float) -> datetime:
    return BOX_NOW + timedelta(seconds=seconds)


def test_realtime_offset_is_the_device_clock_offset():
    watch = ClockWatch(tolerance_s=60, jump_s=120, box_synced=lambda: True)
    clock = watch.observe("A", "2011", at(-3), BOX_NOW)
    assert clock == {"box_synced": True, "device_offset_s": -3.0, "drift": False, "jump": False}
    # Exactly at the tolerance is still fine; one second more is drift.
    assert watch.observe("A", "2011", at(60), at(0))["drift"] is False
    assert watch.observe("A", "2011", at(61), at(0))["drift"] is True


def test_a_jump_is_flagged_once_drift_persists():
    watch = ClockWatch(tolerance_s=60, jump_s=120)
    watch.observe("A", "2011", at(-2), at(0))
    jumped = watch.observe("A", "2011", at(30 + 300), at(30))  # clock set 5 min ahead
    assert jumped["jump"] is True and jumped["drift"] is True
    assert jumped["device_offset_s"] == 300.0
    after = watch.observe("A", "2011", at(60 + 301), at(60))
    assert after["jump"] is False and after["drift"] is True  # still wrong, no new jump
    # An offset change just under the jump threshold is drift-tracking, not a jump.
    assert watch.observe("A", "2011", at(90 + 301 - 119), at(90))["jump"] is False


def test_clock_reset_to_2000_after_a_power_cut():
    watch = ClockWatch()
    watch.observe("A", "2011", at(-1), at(0))
    reset = watch.observe("A", "2011", datetime(2000, 1, 1, 0, 5, tzinfo=BEIJING), at(10))
    assert reset["jump"] is True and reset["drift"] is True
    assert reset["device_offset_s"] < -5e8


def test_interval_records_judge_only_a_clock_running_ahead():
    watch = ClockWatch(tolerance_s=60)
    # No real-time record yet: a minute record labelled by its start, a minute ago, is fine.
    first = watch.observe("A", "2051", at(-90), at(0))
    assert first == {"box_synced": None, "device_offset_s": None, "drift": False, "jump": False}
    # A two-day-old hourly record replayed after an outage is late, not a bad clock.
    assert watch.observe("A", "2061", at(-2 * 86400), at(0))["drift"] is False
    # A record stamped 10 minutes in the future means the clock runs ahead.
    assert watch.observe("A", "2051", at(600), at(0))["drift"] is True
    # Interval records carry the offset measured on real-time records.
    watch.observe("A", "2011", at(-4), at(0))
    assert watch.observe("A", "2051", at(-60), at(0))["device_offset_s"] == -4.0


def test_devices_are_tracked_separately_and_reported():
    watch = ClockWatch(tolerance_s=60)
    watch.observe("A", "2011", at(-1), at(0))
    watch.observe("B", "2011", at(-400), at(0))
    assert watch.offsets() == {"A": -1.0, "B": -400.0}
    assert watch.drifting() == ["B"]


def test_observe_reading_sets_the_clock_field():
    reading = make_reading(cn="2011", data_time="20171101080000", received_at=at(0))
    watch = ClockWatch(tolerance_s=10)
    clock = watch.observe_reading(reading)
    assert reading.clock is clock
    assert clock["device_offset_s"] == -30.0 and clock["drift"] is True


class FakeRun:
    def __init__(self, returncode: int, stdout: str) -> None:
        self.calls = 0
        self.returncode = returncode
        self.stdout = stdout

    def __call__(self, args, **kwargs):
        self.calls += 1
        assert args[:2] == ["timedatectl", "show"]
        return subprocess.CompletedProcess(args, self.returncode, self.stdout, "")


def test_ntp_state_from_timedatectl_or_the_timesync_flag(tmp_path, monkeypatch):
    monkeypatch.setattr("agents.clock.shutil.which", lambda name: "/usr/bin/timedatectl")
    missing = tmp_path / "none"
    assert ntp_synchronized(FakeRun(0, "yes\n"), missing) is True
    assert ntp_synchronized(FakeRun(0, "no\n"), missing) is False
    flag = tmp_path / "synchronized"
    flag.touch()
    # timedatectl failing (no systemd bus in a container): fall back to timesyncd's flag file.
    assert ntp_synchronized(FakeRun(1, ""), flag) is True
    assert ntp_synchronized(FakeRun(1, ""), missing) is None


def test_box_clock_is_cached():
    calls = []

    def probe():
        calls.append(1)
        return False

    box = BoxClock(ttl_s=3600, probe=probe)
    assert box() is False and box() is False
    assert len(calls) == 1


def test_replay_mode_never_reports_a_drift_for_old_data():
    from datetime import datetime, timedelta, timezone

    from agents.clock import ReplayClockWatch

    bj = timezone(timedelta(hours=8))
    watch = ReplayClockWatch(60.0, 120.0, lambda: True)
    clock = watch.observe(
        "DEV", "2011", datetime(2017, 12, 1, tzinfo=bj), datetime(2026, 11, 29, tzinfo=bj)
    )
    assert clock == {
        "box_synced": True,
        "device_offset_s": None,
        "drift": False,
        "jump": False,
        "replay": True,
    }
