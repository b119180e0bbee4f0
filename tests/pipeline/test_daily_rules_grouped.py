"""The daily ambient and transmission rules read a day one group of devices at a time
(``daily.device_group_size``): any group size must store the same figures as one group holding
the whole district, and those must be what the whole day read at once gives.

Runs on a copy of the tiny run's warehouse (``tiny_run`` of conftest.py), to which a device that
is in no registry is added (a copy of a registered station's and stack's rows under another id,
and a quarantined record of it), and a quarantined copy of one of a registered micro-station's
valid readings (the quarantine has no device column: it is shared out by device per group).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.pipeline.conftest import DAYS, lantian_home

#: figures the two steps store per day
FIGURES = (
    "ambient_hourly",
    "aqi_daily",
    "aqi_daily_subdistrict",
    "aqi_daily_station",
    "aqi_rolling_24h",
    "transmission_daily",
)
#: a device that sends data but is in no registry
STRAY = "STRAY0000000001"
#: the reading id of the stray device's quarantined record
HELD_STRAY = "held-stray-0001"
#: ``expectation`` of the quarantine rows added here
ADDED = "added-by-test"


def _copy_stray_rows(conn: sqlite3.Connection, stream: str, source: str, day: str) -> int:
    """The ``stream`` rows of ``source`` on ``day`` once more, as sent by :data:`STRAY`."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(measurements)")]
    renamed = {"device_id": "?", "reading_id": "'stray-' || reading_id"}
    select = ", ".join(renamed.get(c, c) for c in columns)
    cursor = conn.execute(
        f"INSERT INTO measurements ({', '.join(columns)}) SELECT {select} FROM measurements"
        " WHERE day = ? AND stream = ? AND device_id = ?",
        (STRAY, day, stream, source),
    )
    return cursor.rowcount


def _quarantine(conn: sqlite3.Connection, reading: str, device: str, day: str) -> None:
    row = {"reading_id": reading, "device_id": device, "cn": "2051", "code": "a34004"}
    conn.execute(
        "INSERT INTO quarantine (reading_id, stream, day, expectation, reason, row_json)"
        " VALUES (?, 'ambient', ?, ?, 'added by the test', ?)",
        (reading, day, ADDED, json.dumps(row)),
    )


@pytest.fixture(scope="module")
def grouped_home(tiny_run, tmp_path_factory) -> Path:
    """A copy of the tiny run's warehouse with the stray device and the quarantined records."""
    home = tmp_path_factory.mktemp("grouped-daily")
    target = home / "warehouse.sqlite"
    source = sqlite3.connect(tiny_run.home / "warehouse.sqlite")
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)  # consistent even with the run's WAL
    source.close()
    wh = tiny_run.warehouse
    station = str(wh.read("stations")["device_id"].iloc[0])
    devices = wh.read("devices")
    stack = str(devices.loc[devices["stream"] == "cems", "device_id"].iloc[0])
    with copy:
        added = {
            s: _copy_stray_rows(copy, s, d, DAYS[0])
            for s, d in [("ambient", station), ("cems", stack)]
        }
        # one valid minute reading of the station comes in again and is quarantined
        (held,) = copy.execute(
            "SELECT reading_id FROM measurements WHERE day = ? AND stream = 'ambient'"
            " AND device_id = ? AND cn = '2051' AND valid = 1 ORDER BY reading_id LIMIT 1",
            (DAYS[0], station),
        ).fetchone()
        _quarantine(copy, held, station, DAYS[0])
        _quarantine(copy, HELD_STRAY, STRAY, DAYS[0])
    copy.close()
    assert added["ambient"] > 1000 and added["cems"] > 1000, added
    return home


def _warehouse(home: Path) -> Any:
    from enforcement.warehouse import Warehouse

    return Warehouse(f"sqlite:///{home / 'warehouse.sqlite'}")


def _district_size(home: Path) -> int:
    wh = _warehouse(home)
    return len(wh.read("devices")) + len(wh.read("stations"))


def _run(home: Path, group_size: int) -> tuple[dict[tuple[str, str], pd.DataFrame], list[dict]]:
    """Both steps over the run's days in the DAG's order, then every figure they stored."""
    from lantian import rules_daily

    steps = []
    with lantian_home(home):
        for day in DAYS:
            steps.append(rules_daily.ambient_day(day, run_id="grouped", group_size=group_size))
            steps.append(rules_daily.transmission_day(day, run_id="grouped", group_size=group_size))
    wh = _warehouse(home)
    figures = {(name, day): wh.read_derived(name, day) for name in FIGURES for day in DAYS}
    return figures, steps


@pytest.fixture(scope="module")
def one_group(grouped_home) -> tuple[dict[tuple[str, str], pd.DataFrame], list[dict]]:
    """The figures with one group larger than the district (registry and stray device)."""
    return _run(grouped_home, _district_size(grouped_home) + 1)


def test_one_group_figures_are_not_empty_and_leave_out_the_stray_device(
    grouped_home, one_group
) -> None:
    figures, steps = one_group
    for key, frame in figures.items():
        assert frame is not None and len(frame) > 0, key
    for day in DAYS:
        assert STRAY not in set(figures[("ambient_hourly", day)]["device_id"])
        rates = figures[("transmission_daily", day)]
        assert STRAY not in set(rates["device_id"])
        assert {"cems", "ambient"} <= set(rates["stream"])
    # the stray device's rows are still read and counted in, as when the day was read whole
    with sqlite3.connect(grouped_home / "warehouse.sqlite") as conn:
        counts = dict(
            conn.execute(
                "SELECT stream, count(*) FROM measurements WHERE day = ? GROUP BY stream",
                (DAYS[0],),
            ).fetchall()
        )
        stray = conn.execute(
            "SELECT count(*) FROM measurements WHERE device_id = ?", (STRAY,)
        ).fetchone()[0]
    assert stray > 0
    ambient, transmission = steps[0], steps[1]
    assert ambient["rows_in"] == counts["ambient"]
    assert transmission["rows_in"] == counts["ambient"] + counts["cems"]


@pytest.mark.parametrize("group_size", [1, 2, 7])
def test_any_group_size_stores_the_figures_of_one_group(
    grouped_home, one_group, group_size
) -> None:
    expected, expected_steps = one_group
    figures, steps = _run(grouped_home, group_size)
    for key, frame in expected.items():
        pd.testing.assert_frame_equal(figures[key], frame, obj=str(key))
    assert [s["rows_in"] for s in steps] == [s["rows_in"] for s in expected_steps]
    assert [s["rows_out"] for s in steps] == [s["rows_out"] for s in expected_steps]
    assert [s["note"] for s in steps] == [s["note"] for s in expected_steps]


@pytest.mark.parametrize("group_size", [1, 2, 7, None])
def test_groups_give_what_the_whole_day_read_at_once_gives(grouped_home, group_size) -> None:
    """Against the building blocks on the whole day (``group_size`` None: the setting)."""
    from lantian import rules_daily

    wh = _warehouse(grouped_home)
    day = DAYS[0]
    stations, devices = wh.read("stations"), wh.read("devices")
    minutes = wh.read_columns("measurements", rules_daily.MINUTE_COLUMNS, day=day, stream="ambient")
    assert STRAY in set(minutes["device_id"])
    whole_hourly = rules_daily.station_hourly(minutes, stations)
    hourly, ambient_rows = rules_daily.grouped_station_hourly(wh, day, stations, group_size)
    assert len(whole_hourly) > 0
    pd.testing.assert_frame_equal(hourly, whole_hourly)
    assert ambient_rows == len(minutes)

    columns = rules_daily.TRANSMISSION_COLUMNS
    measurements = pd.concat(
        [wh.read_columns("measurements", columns, day=day, stream=s) for s in ("cems", "ambient")],
        ignore_index=True,
    )
    quarantine = pd.concat(
        [wh.read("quarantine", day=day, stream=s) for s in ("cems", "ambient")], ignore_index=True
    )
    assert (quarantine["expectation"] == ADDED).sum() == 2
    assert HELD_STRAY in set(quarantine["reading_id"])
    whole_rates = rules_daily.transmission_rows(measurements, quarantine, devices, day)
    rates, rows_in = rules_daily.grouped_transmission_rows(wh, day, devices, group_size)
    assert len(whole_rates) > 0
    pd.testing.assert_frame_equal(rates, whole_rates)
    assert rows_in == len(measurements)


def test_quarantined_reading_counts_for_its_registered_device_in_any_group(grouped_home) -> None:
    """The day's quarantine is shared out by device: a valid reading of a station that was also
    quarantined is received once and no longer valid, whatever the group; the stray device's
    quarantined record is counted nowhere."""
    from lantian import rules_daily

    wh = _warehouse(grouped_home)
    day = DAYS[0]
    station = str(wh.read("stations")["device_id"].iloc[0])
    devices = wh.read("devices")
    held = wh.read("quarantine", day=day, stream="ambient")
    added = held["expectation"] == ADDED
    without = held[~added]
    stored = wh.read_columns(
        "measurements", rules_daily.TRANSMISSION_COLUMNS, day=day, stream="ambient"
    )
    mine = held[added & held["reading_id"].isin(set(stored["reading_id"]))]
    assert len(mine) == 1  # the station's quarantined copy of a stored reading
    before = rules_daily.transmission_rows(stored, without, devices, day)
    before = before.set_index("device_id").loc[station]
    assert before["valid"] > 0
    for size in (1, 3):
        rates, _ = rules_daily.grouped_transmission_rows(wh, day, devices, size)
        assert STRAY not in set(rates["device_id"])
        after = rates.set_index("device_id").loc[station]
        assert after["received"] == before["received"]
        assert after["valid"] == before["valid"] - 1
