"""``run_checks`` over real SQLite databases: the warehouse, the landing index, registry, heartbeats.

The story at 2017-12-02 10:00 Beijing: box-1 (stacks C1 and C2) lost C2's uplink last night and
its queue is growing; C2's queued data of yesterday evening has begun to land (late for the day
already built); C3's clock runs ahead; both micro-stations of sd01 are silent; the ambient
partition of the 2nd failed its critical ``rows_due`` check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BJ = timezone(timedelta(hours=8))
NOW = datetime(2017, 12, 2, 10, 0, tzinfo=BJ)

EXPECTED = {
    "silent_device:C2",
    "silent_device:A1",
    "silent_device:A2",
    "silent_subdistrict:sd01",
    "backlog_rising:box-1",
    "unsent_too_old:box-1",
    "quality_critical:2017-12-02 ambient",
    "late_data:2017-12-01 cems",
}


def test_run_checks_finds_the_story(story_home):
    from lantian.watch import run_checks

    found = {f.key: f for f in run_checks(NOW)}
    assert set(found) == EXPECTED
    c2 = found["silent_device:C2"]
    # C2's newest batch landed at 09:50 but holds data up to 21:00 yesterday: 13 h silent
    assert c2.details["hours_silent"] == 13.0
    assert "the box is up" in c2.details["hint"]
    assert found["silent_device:A1"].details["hours_silent"] == 16.0
    assert "no data in the last 72 h" in found["silent_device:A2"].summary
    assert found["silent_subdistrict:sd01"].details["name"] == "经八路街道"
    assert found["backlog_rising:box-1"].details["queue_depths"] == [
        1000 + 60 * i for i in range(13)
    ]
    assert found["backlog_rising:box-1"].details["alarms"] == ["queue 41% full"]
    assert (
        found["unsent_too_old:box-1"].details["hours"] == 13.9
    )  # 20:00:05 to 09:55: 13 h 54 min 55 s
    late = found["late_data:2017-12-01 cems"]
    assert late.details["devices"] == ["C2"] and late.details["batches"] == 1
    # C3 (clock ahead, landed 09:30) and V1 (suspended) are not reported
    assert not any(key.endswith((":C3", ":V1")) for key in found)
    json.dumps([f.as_dict() for f in found.values()])  # XCom-ready


def test_the_same_data_an_hour_earlier_is_quieter(story_home):
    from lantian.watch import run_checks

    keys = {f.key for f in run_checks(datetime(2017, 12, 2, 1, 0, tzinfo=BJ))}
    # at 01:00 nothing of this morning had landed and no heartbeat was sent yet; C1's data of
    # the 1st reaches 23:59, C2's 19:59 (5 h ago), A1's 18:00 (7 h ago); C3 and A3 sent nothing
    # before; validation results carry no time of their own, so the failed partition stays
    assert keys == {
        "quality_critical:2017-12-02 ambient",
        "silent_device:C2",
        "silent_device:C3",
        "silent_device:A1",
        "silent_device:A2",
        "silent_device:A3",
        "silent_subdistrict:sd01",
        "silent_subdistrict:sd02",
    }


def test_a_check_that_cannot_run_does_not_stop_the_others(story_home, monkeypatch):
    # nothing listens on port 1: the warehouse is unreachable, the ingest database is fine
    monkeypatch.setenv("LANTIAN_WAREHOUSE_URL", "postgresql://nobody@127.0.0.1:1/lantian_warehouse")
    from lantian.watch import run_checks

    found = {f.key: f for f in run_checks(NOW)}
    assert {"check_failed:devices", "check_failed:quality", "check_failed:late_data"} <= set(found)
    assert found["check_failed:devices"].runbook == "watch-failed"
    assert found["check_failed:devices"].severity == "critical"
    assert "OperationalError" in found["check_failed:quality"].details["error"]
    assert {"backlog_rising:box-1", "unsent_too_old:box-1"} <= set(found)


def test_naive_now_is_refused(story_home):
    from lantian.watch import run_checks

    with pytest.raises(ValueError, match="naive"):
        run_checks(datetime(2017, 12, 2, 10, 0))


def test_command_line_prints_the_findings(story_home):
    proc = subprocess.run(
        [sys.executable, "-m", "lantian.watch", "--now", "2017-12-02T10:00:00", "--json"],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # findings: exit status 1
    keys = {json.loads(line)["key"] for line in proc.stdout.splitlines()}
    assert keys == EXPECTED  # --now without an offset is Beijing time
