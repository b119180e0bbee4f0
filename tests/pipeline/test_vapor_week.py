"""A week of one gas station's vapor monitor: the drifting nozzle reaches warning and alarm.

Two days are too short for a warning (5 consecutive out-of-range days, alarm after 7,
DOMAIN.md section 7), so this lands only the tiny district's vapor monitor for seven days and runs
the vapor steps. Expected levels are counted by hand over the days the pipeline saw; the monitor's
own nozzle status (it also knows the three days before the window) is compared separately.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.pipeline.conftest import MONTH, lantian_home

START = date(2017, 12, 1)
DAYS = [(START + timedelta(days=i)).isoformat() for i in range(7)]


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    from agents.simulate.scenario import build_scenario
    from enforcement.warehouse import Warehouse
    from lantian import pipeline, rules_daily, rules_monthly, settings
    from lantian.direct_load import land_scenario

    scenario = build_scenario(seed=2017, start=START, days=len(DAYS), scale="tiny")
    home = tmp_path_factory.mktemp("vapor-week")
    monitor = scenario.device_ids("vapor")[0]
    with lantian_home(home):
        scenario.write_registry(settings.registry_dir())
        land_scenario(
            scenario, settings.landing_root(), settings.landing_index_url(), devices=[monitor]
        )
        pipeline.sync_registry()
        for day in DAYS:
            pipeline.validate_day("vapor", day, run_id="week")
            rules_daily.vapor_day(day, run_id="week")
        rules_monthly.vapor_month(MONTH, run_id="week")
    return scenario, Warehouse(f"sqlite:///{home / 'warehouse.sqlite'}")


@pytest.mark.slow
def test_warning_on_the_fifth_and_alarm_on_the_seventh_failed_day(week):
    scenario, wh = week
    drift = scenario.truth.nozzle_drift[0]
    assert drift["days"] == DAYS and drift["since"] < DAYS[0]
    alarms = wh.read_derived("vapor_alarms", MONTH)
    mine = alarms[alarms["nozzle_id"] == drift["nozzle"]].sort_values("day")
    assert list(mine["day"]) == DAYS
    assert list(mine["run_length"]) == [1, 2, 3, 4, 5, 6, 7]
    assert list(mine["level"]) == [0, 0, 0, 0, 1, 1, 2]
    assert list(mine["level_name"])[-1] == "alarm"
    # no other nozzle ever fails: the healthy ones and the little-used one (insufficient days)
    others = alarms[alarms["nozzle_id"] != drift["nozzle"]]
    assert (others["level"] == 0).all() and (others["run_length"] == 0).all()
    days = wh.read_derived("vapor_nozzle_days", MONTH)
    low = days[days["nozzle_id"] == f"{int(max(days['nozzle_id'])):02d}"]
    assert len(low) == 7 and (low["status"] == "insufficient").all()


@pytest.mark.slow
def test_the_monitors_own_status_knows_the_days_before_the_window(week):
    """The monitor counts from the drift's true start (3 days earlier) and shows a day's level
    the day after: its status is the run up to yesterday. The pipeline judges only days it has."""
    scenario, wh = week
    drift = scenario.truth.nozzle_drift[0]
    refuellings = wh.read("refuellings", month=MONTH)
    mine = refuellings[refuellings["nozzle_id"] == drift["nozzle"]]
    status = mine.groupby("day")["nozzle_status"].max().to_dict()
    before = (date.fromisoformat(DAYS[0]) - date.fromisoformat(drift["since"])).days
    for i, day in enumerate(DAYS):
        run = before + i  # failed days up to the day before
        expected = 2 if run >= 7 else (1 if run >= 5 else 0)
        assert status[day] == expected, day
    efficiency = wh.read_derived("vapor_station_efficiency", MONTH).set_index("gas_station_id")
    row = efficiency.loc[drift["gas_station_id"]]
    # the estimator (docs/enforcement.md): fuel of refuellings with A/L in [1.0, 1.2] / all fuel
    inside = refuellings["al_ratio"].between(1.0, 1.2)
    share = refuellings.loc[inside, "fuel_volume_l"].sum() / refuellings["fuel_volume_l"].sum()
    assert row["efficiency_estimate"] == pytest.approx(share)
    assert 0.5 < share < 1.0 and row["status"] == ("pass" if share >= 0.85 else "fail")
