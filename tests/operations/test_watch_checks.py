"""The watch's checks as pure functions over small frames, each positive and negative.

Times: the watch runs at 2017-12-02 10:00 Beijing (02:00 UTC); limits from operations.toml
(CEMS and ambient 2 h, vapor 6 h, remote sensing 12 h) unless a test says otherwise.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from lantian.notify import RUNBOOK_SECTIONS
from lantian.watch import (
    box_findings,
    late_data,
    quality_findings,
    recent_days,
    silent_devices,
    silent_subdistricts,
    watched_devices,
)
from schemas.operations import watch_thresholds

BJ = timezone(timedelta(hours=8))
NOW = datetime(2017, 12, 2, 10, 0, tzinfo=BJ)
TH = watch_thresholds()


def bj(text: str) -> pd.Timestamp:
    """A Beijing wall-clock time as an aware UTC timestamp."""
    return pd.Timestamp(text, tz=BJ).tz_convert("UTC")


def by_subject(findings):
    assert all(f.runbook in RUNBOOK_SECTIONS for f in findings)
    return {f.subject: f for f in findings}


def test_thresholds_are_config_data():
    assert TH.silence_hours == {"cems": 2.0, "ambient": 2.0, "vapor": 6.0, "rsd": 12.0}
    from schemas.operations import operations_settings

    assert {t.mark for t in operations_settings().values()} == {"config"}
    assert all(t.source for t in operations_settings().values())


# -- silent devices ---------------------------------------------------------------------------


def _devices(*rows):
    return pd.DataFrame(rows, columns=["device_id", "stream", "since"])


def _seen(*rows):
    return pd.DataFrame(rows, columns=["device_id", "last_evidence"])


def test_silent_devices_per_stream_limit_edges_included():
    long_ago = bj("2017-11-01 00:00")
    devices = _devices(
        ("C-late", "cems", long_ago),  # 2 h 01 min: silent
        ("C-edge", "cems", long_ago),  # exactly 2 h: still within the limit
        ("C-fresh", "cems", long_ago),
        ("V-quiet-night", "vapor", long_ago),  # 5 h < 6 h
        ("R-half-day", "rsd", long_ago),  # 13 h > 12 h
        ("A-never", "ambient", long_ago),  # nothing in the window, installed long ago
        ("A-new", "ambient", bj("2017-12-02 09:00")),  # installed an hour ago: not due yet
        ("A-unknown-since", "ambient", pd.NaT),  # nothing landed, no install date: due
        ("A-clock-ahead", "ambient", long_ago),  # evidence after now is clipped to now
        ("X-other", "weather", long_ago),  # no limit for that stream: not watched
    )
    seen = _seen(
        ("C-late", bj("2017-12-02 07:59")),
        ("C-edge", bj("2017-12-02 08:00")),
        ("C-fresh", bj("2017-12-02 09:58")),
        ("V-quiet-night", bj("2017-12-02 05:00")),
        ("R-half-day", bj("2017-12-01 21:00")),
        ("A-clock-ahead", bj("2017-12-02 11:30")),
        ("X-other", bj("2017-11-01 00:00")),
    )
    found = by_subject(silent_devices(devices, seen, NOW, TH.silence_hours, lookback_hours=72))
    assert set(found) == {"C-late", "R-half-day", "A-never", "A-unknown-since"}
    assert found["C-late"].details["hours_silent"] == 2.0  # 2 h 01 min, one decimal
    assert found["C-late"].summary == (
        "cems device C-late silent: last data 2017-12-02 07:59 Beijing, 2 h ago (limit 2 h)"
    )
    assert found["R-half-day"].details["hours_silent"] == 13.0
    assert found["R-half-day"].details["limit_hours"] == 12.0
    assert "no data in the last 72 h" in found["A-never"].summary
    assert found["A-never"].details["last_data"] is None
    assert all(f.kind == "silent_device" and f.runbook == "silent-device" for f in found.values())


def test_silent_device_hint_from_heartbeats():
    devices = _devices(("C1", "cems", pd.NaT), ("C2", "cems", pd.NaT), ("C3", "cems", pd.NaT))
    seen = _seen(*((d, bj("2017-12-02 03:00")) for d in ("C1", "C2", "C3")))
    beats = pd.DataFrame(
        [("C1", bj("2017-12-02 09:55")), ("C2", bj("2017-12-02 05:00"))],
        columns=["device_id", "received_at"],
    )
    found = by_subject(silent_devices(devices, seen, NOW, TH.silence_hours, heartbeats_last=beats))
    assert "the box is up" in found["C1"].details["hint"]
    assert "box or network down" in found["C2"].details["hint"]
    assert "no heartbeat" in found["C3"].details["hint"]


def test_no_silent_devices_when_all_report():
    devices = _devices(("C1", "cems", pd.NaT), ("A1", "ambient", pd.NaT))
    seen = _seen(("C1", bj("2017-12-02 09:59")), ("A1", bj("2017-12-02 09:00")))
    assert silent_devices(devices, seen, NOW, TH.silence_hours) == []


def test_watched_devices_merge_both_registries():
    registry = pd.DataFrame(
        [("D1", "cems", "2017-11-01"), ("D2", "ambient", "2017-12-02"), ("D3", "vapor", "")],
        columns=["device_id", "stream", "install_date"],
    )
    ingest = pd.DataFrame(
        [
            ("D1", "cems", "active", "2017-11-20T00:00:00+00:00"),
            ("D3", "vapor", "suspended", "2017-10-01T00:00:00+00:00"),
            ("D4", "rsd", "active", "2017-10-01T00:00:00+00:00"),
            ("D5", "rsd", "retired", "2017-10-01T00:00:00+00:00"),
        ],
        columns=["device_id", "stream", "state", "created_at"],
    )
    watched = watched_devices(registry, ingest).set_index("device_id")
    assert list(watched.index) == ["D1", "D2", "D4"]
    # D1: registered after it was installed: due from the registration
    assert watched.loc["D1", "since"] == pd.Timestamp("2017-11-20T00:00:00Z")
    # D2: only the bureau's file: due from its installation day's Beijing midnight
    assert watched.loc["D2", "since"] == pd.Timestamp("2017-12-01T16:00:00Z")
    assert watched.loc["D4", "stream"] == "rsd"


def test_watched_devices_with_empty_registries():
    empty_reg = pd.DataFrame(columns=["device_id", "stream", "install_date"])
    empty_ing = pd.DataFrame(columns=["device_id", "stream", "state", "created_at"])
    assert watched_devices(empty_reg, empty_ing).empty


# -- silent subdistricts ----------------------------------------------------------------------


def test_subdistrict_silent_only_when_every_station_is():
    stations = pd.DataFrame(
        [
            ("S1", "A1", "sd01"),
            ("S2", "A2", "sd01"),
            ("S3", "A3", "sd02"),
            ("S4", "A4", "sd02"),
            ("S5", "", "sd03"),  # a station without a device says nothing
            ("S6", None, "sd03"),
        ],
        columns=["station_id", "device_id", "subdistrict_id"],
    )
    found = silent_subdistricts(stations, ["A1", "A3", "A4"], {"sd02": "金水区某街道"})
    assert [f.subject for f in found] == ["sd02"]
    assert found[0].severity == "critical" and found[0].runbook == "silent-subdistrict"
    assert found[0].details["devices"] == ["A3", "A4"]
    assert found[0].summary.startswith(
        "subdistrict sd02 金水区某街道: all 2 micro-station(s) silent"
    )
    assert silent_subdistricts(stations, ["A1"], {}) == []


# -- boxes ------------------------------------------------------------------------------------


def _beats(box, devices, depths, *, last="2017-12-02 09:55", step_min=5, oldest=None, disk=10**9):
    """One heartbeat round per depth, every ``step_min`` minutes, ending at ``last`` (Beijing)."""
    end = bj(last)
    rows = []
    for i, depth in enumerate(depths):
        at = end - pd.Timedelta(minutes=step_min * (len(depths) - 1 - i))
        for device in devices:
            rows.append(
                {
                    "device_id": device,
                    "box_id": box,
                    "received_at": at,
                    "queue_depth": depth,
                    "oldest_unsent": bj(oldest) if oldest else pd.NaT,
                    "disk_free_bytes": disk,
                    "alarms": [],
                }
            )
    return rows


def test_box_checks_rising_backlog_old_unsent_low_disk_silent():
    th = replace(TH, rising_heartbeats=3)
    mib = 2**20
    rows = (
        _beats("B-rising", ["D1", "D2"], [10, 12, 15, 20])  # 3 rises in a row
        + _beats("B-plateau", ["D3"], [10, 12, 12, 20], oldest="2017-12-02 07:30")  # 2 h 25 min
        + _beats("B-edge", ["D4"], [5, 4, 6, 7], oldest="2017-12-02 07:55")  # exactly 2 h
        + _beats("B-short", ["D5"], [1, 2, 3])  # rising but only 3 heartbeats
        + _beats("B-disk", ["D6"], [0, 0], disk=100 * mib)
        + _beats("B-full", ["D7"], [0, 0], disk=50 * mib)
        + _beats("B-off", ["D8"], [1, 2, 3, 4, 5], last="2017-12-02 08:30", disk=mib)
        + _beats("", ["D9"], [7, 8, 9, 10])  # no box id: the device names the box
    )
    found = box_findings(pd.DataFrame(rows), NOW, th)
    keys = sorted(f.key for f in found)
    assert keys == [
        "backlog_rising:B-rising",
        "backlog_rising:D9",
        "box_silent:B-off",
        "disk_low:B-disk",
        "disk_low:B-full",
        "unsent_too_old:B-plateau",
    ]
    got = {f.key: f for f in found}
    assert all(f.runbook in RUNBOOK_SECTIONS for f in found)
    rising = got["backlog_rising:B-rising"]
    assert rising.details["queue_depths"] == [10, 12, 15, 20]
    assert rising.details["devices"] == ["D1", "D2"]  # one finding for the box, not per device
    assert "(10 → 20 readings waiting)" in rising.summary
    assert got["unsent_too_old:B-plateau"].details["hours"] == 2.4  # 2 h 25 min
    assert got["disk_low:B-disk"].severity == "warning"  # 100 MiB: under 256, over 64
    assert got["disk_low:B-full"].severity == "critical"  # 50 MiB < 256 / 4
    assert got["disk_low:B-full"].runbook == "full-disk"
    # B-off: 1.5 h (08:30 to 10:00) without a heartbeat; its stale rising queue and low disk are not repeated
    assert got["box_silent:B-off"].summary.startswith("box B-off sent no heartbeat for 1.5 h")


def test_a_draining_box_is_fine():
    rows = _beats("B1", ["D1"], [500, 400, 300, 200, 100], oldest="2017-12-02 09:40")
    assert box_findings(pd.DataFrame(rows), NOW, replace(TH, rising_heartbeats=3)) == []
    assert box_findings(pd.DataFrame(columns=["device_id", "received_at"]), NOW, TH) == []


def test_missing_depth_breaks_a_rising_run():
    rows = _beats("B1", ["D1"], [1, 2, None, 4, 5])
    assert box_findings(pd.DataFrame(rows), NOW, replace(TH, rising_heartbeats=4)) == []


# -- data quality -----------------------------------------------------------------------------


RESULT_COLUMNS = [
    "day",
    "stream",
    "suite",
    "expectation",
    "severity",
    "success",
    "element_count",
    "unexpected_count",
]


def test_quality_findings_critical_failures_and_quarantine_share():
    results = pd.DataFrame(
        [
            ("2017-12-01", "ambient", "ambient", "rows_due", "critical", False, 0, 1),
            ("2017-12-01", "ambient", "ambient", "quarantine_share", "critical", False, 1000, 450),
            ("2017-12-01", "ambient", "ambient", "range_a34004", "critical", True, 1000, 0),
            ("2017-12-01", "cems", "cems", "flag_rare", "warning", False, 1440, 12),
            ("2017-12-02", "vapor", "vapor", "quarantine_share", "critical", True, 200, 30),
            ("2017-12-02", "vapor", "vapor_tank", "quarantine_share", "critical", True, 99, 50),
            ("2017-12-02", "rsd", "rsd", "quarantine_share", "critical", True, 100, 10),
            ("2017-12-02", "cems", "cems", "schema_columns", "critical", None, 0, 0),
        ],
        columns=RESULT_COLUMNS,
    )
    found = by_subject(quality_findings(results, 0.10, 100))
    assert set(found) == {"2017-12-01 ambient", "2017-12-02 vapor vapor"}
    critical = found["2017-12-01 ambient"]
    assert critical.kind == "quality_critical" and critical.severity == "critical"
    assert critical.details["checks"] == [
        "ambient.quarantine_share (450/1000)",
        "ambient.rows_due (1/0)",
    ]
    share = found["2017-12-02 vapor vapor"]
    assert share.kind == "quarantine_share" and share.severity == "warning"
    assert "15.0% of 200 rows quarantined" in share.summary  # 30 / 200
    # vapor_tank: 50 of 99 rows is under the 100-row minimum; rsd: 10 % is not above 10 %


def test_quality_findings_all_passed():
    results = pd.DataFrame(
        [("2017-12-01", "cems", "cems", "quarantine_share", "critical", True, 1440, 14)],
        columns=RESULT_COLUMNS,
    )
    assert quality_findings(results, 0.10, 100) == []
    assert quality_findings(pd.DataFrame(columns=RESULT_COLUMNS), 0.10, 100) == []


# -- late data --------------------------------------------------------------------------------


def test_late_data_only_batches_landed_after_the_build_that_overlap_the_day():
    partitions = pd.DataFrame(
        [
            ("2017-12-01", "ambient", 10, "scheduled__2017-11-30T16:00:00+00:00"),
            ("2017-12-01", "cems", 10, "r1"),
            ("2017-12-02", "ambient", 12, "r2"),
        ],
        columns=["day", "stream", "landed_seq_max", "run_id"],
    )
    batches = pd.DataFrame(
        [
            (9, "ambient", "A1", 60, "2017-12-01 10:00", "2017-12-01 11:00"),  # read by the build
            (11, "ambient", "A1", 60, "2017-12-01 10:00", "2017-12-01 11:00"),  # late
            (12, "ambient", "A2", 21, "2017-12-01 23:50", "2017-12-02 00:10"),  # late for 12-01
            (13, "cems", "C1", 5, "2017-11-30 23:50", "2017-11-30 23:59:59"),  # day before
            (14, "cems", "C1", 1, "2017-11-30 23:59", "2017-12-01 00:00"),  # ends at midnight
            (15, "rsd", "R1", 3, "2017-12-01 12:00", "2017-12-01 12:01"),  # no rsd partition
        ],
        columns=["seq", "stream", "device_id", "n_readings", "first_data_time", "last_data_time"],
    )
    for column in ("first_data_time", "last_data_time"):
        batches[column] = batches[column].map(bj)
    found = by_subject(late_data(partitions, batches))
    assert set(found) == {"2017-12-01 ambient", "2017-12-01 cems"}
    ambient = found["2017-12-01 ambient"]
    assert ambient.details["batches"] == 2 and ambient.details["readings"] == 81
    assert ambient.details["devices"] == ["A1", "A2"]
    assert ambient.summary.endswith("re-run lantian_daily for 2017-12-01")
    assert ambient.runbook == "replayed-backlog"
    assert found["2017-12-01 cems"].details["batches"] == 1  # 00:00 belongs to the new day


def test_no_late_data_after_a_rebuild():
    partitions = pd.DataFrame(
        [("2017-12-01", "ambient", 20, "r")], columns=["day", "stream", "landed_seq_max", "run_id"]
    )
    batches = pd.DataFrame(
        [(11, "ambient", "A1", 60, bj("2017-12-01 10:00"), bj("2017-12-01 11:00"))],
        columns=["seq", "stream", "device_id", "n_readings", "first_data_time", "last_data_time"],
    )
    assert late_data(partitions, batches) == []


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (datetime(2017, 12, 2, 10, 0, tzinfo=BJ), ["2017-12-02", "2017-12-01", "2017-11-30"]),
        # 2017-12-01 16:30 UTC is already 2 Dec 00:30 in Beijing
        (
            datetime(2017, 12, 1, 16, 30, tzinfo=UTC),
            ["2017-12-02", "2017-12-01", "2017-11-30"],
        ),
    ],
)
def test_recent_days_are_beijing_days(now, days):
    assert recent_days(now, 3) == days
