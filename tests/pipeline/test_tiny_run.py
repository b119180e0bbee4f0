"""The whole pipeline on the tiny simulated district (2 days), checked against the simulator's truth.

Expected values come from ``scenario.truth`` (what was planted, recomputed by the simulator from
the frames that survive the wire) or are computed here by hand from the standards' definitions
(DOMAIN.md) on data the simulator emitted — never from the pipeline's own rule functions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from schemas.reading import BEIJING, reading_id
from tests.pipeline.conftest import DAYS, MONTH

CEMS_CODES = ("a34013", "a21026", "a21002", "a19001")
PM25, PM10 = "a34004", "a34002"
#: HJ 633-2012 24-hour breakpoints (DOMAIN.md section 2): (concentration, IAQI) pairs
PM25_24H = ((0, 0), (35, 50), (75, 100), (115, 150), (150, 200), (250, 300), (350, 400), (500, 500))
PM10_24H = (
    (0, 0),
    (50, 50),
    (150, 100),
    (250, 150),
    (350, 200),
    (420, 300),
    (500, 400),
    (600, 500),
)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(datetime.fromisoformat(text)).tz_convert(UTC)


def iaqi(table, concentration: float) -> float:
    """IAQI = (I_hi − I_lo)/(BP_hi − BP_lo) × (C − BP_lo) + I_lo, rounded up (DOMAIN.md §2)."""
    for (c_lo, i_lo), (c_hi, i_hi) in zip(table, table[1:], strict=False):
        if c_lo <= concentration <= c_hi:
            return math.ceil(
                round((i_hi - i_lo) / (c_hi - c_lo) * (concentration - c_lo) + i_lo, 9)
            )
    return 500.0


# ------------------------------------------------------------------------------ landing


def test_direct_load_lands_exactly_the_expected_readings(tiny_run, tiny_scenario):
    from ingest.landing import LandingIndex

    index = LandingIndex(
        f"sqlite:///{tiny_run.home / 'landing-index.sqlite'}", tiny_run.home / "landing"
    )
    landed: dict[str, set[str]] = defaultdict(set)
    sizes = []
    for entry, batch in index.iter_batches():
        landed[entry.device_id] |= {r["id"] for r in batch["readings"]}
        sizes.append(len(batch["readings"]))
        assert batch["agent_version"] == "direct-load"
    for device_id in tiny_scenario.device_ids():
        assert landed[device_id] == tiny_scenario.expected_readings(device_id), device_id
    assert max(sizes) == 500 and sum(sizes) == tiny_run.landed["total_readings"]
    assert index.verify().ok
    # the noisy lines lost readings on the wire, and those never land
    lost = {d: set(w["lost_reading_ids"]) for d, w in tiny_scenario.truth.wire.items()}
    assert any(lost.values())
    for device_id, ids in lost.items():
        assert not ids & landed[device_id]


def test_landing_twice_changes_nothing(tiny_run, tiny_scenario):
    from lantian.direct_load import land_scenario

    unit = tiny_scenario.device_ids("rsd")[0]  # the smallest device keeps this test quick
    again = land_scenario(
        tiny_scenario,
        tiny_run.home / "landing",
        f"sqlite:///{tiny_run.home / 'landing-index.sqlite'}",
        devices=[unit],
    )
    counts = again[unit]
    assert counts["landed"] == 0 and counts["duplicates"] == counts["batches"] > 0
    assert again["total_readings"] == tiny_run.landed[unit]["readings"]


def test_readings_carry_the_receive_time_and_clock_verdict(tiny_scenario):
    from lantian.direct_load import decode_device

    station = tiny_scenario.truth.clocks[0]["device_id"]  # the station whose clock drifts
    readings = list(decode_device(tiny_scenario, station))
    sent = [at for at, _ in tiny_scenario.frames(station)]
    first = readings[0]
    assert datetime.fromisoformat(first.received_at) == sent[0] + timedelta(seconds=1)
    assert first.clock["drift"] is False and first.clock["box_synced"] is True
    # 240 s a day ahead; a minute record is stamped at the minute's start and sent ~1 min later,
    # so it shows in the future by more than the agent's 60 s tolerance from about 12:30
    late = [r for r in readings if r.data_time >= "20171201140000"]
    assert late and all(r.clock["drift"] for r in late)


# ------------------------------------------------------------------------------ CEMS


def test_every_planted_exceedance_and_nothing_else(tiny_run, tiny_scenario):
    found = tiny_run.warehouse.read("exceedances", month=MONTH)
    truth = tiny_scenario.truth
    expected = {(e["stack_id"], e["pollutant"], utc(e["hour_start"])) for e in truth.exceedances}
    got = set(zip(found["stack_id"], found["pollutant"], found["hour_start"], strict=True))
    assert got == expected and len(found) == len(expected)
    by_key = {(e["stack_id"], e["pollutant"], utc(e["hour_start"])): e for e in truth.exceedances}
    for row in found.itertuples():
        planted = by_key[(row.stack_id, row.pollutant, row.hour_start)]
        assert row.hourly_mean == pytest.approx(planted["mean_corrected"], abs=1e-3)
        assert row.limit_value == planted["limit"]
        assert row.n_readings == planted["n_valid"]
        assert len(row.raw_sha256s) == row.n_readings  # one minute frame per counted minute
    for hour in truth.non_exceedances:  # the 44-minute hour, the calibration spike, the old limit
        assert (hour["stack_id"], hour["pollutant"], utc(hour["hour_start"])) not in got
    tags = {h["tag"] for h in truth.non_exceedances}
    assert {"invalid_44_valid", "calibration_spike", "before_limit_change"} <= tags
    assert "exceed_45_valid" in {e["tag"] for e in truth.exceedances}


def test_transmission_rates_match_what_the_stacks_sent(tiny_run, tiny_scenario):
    daily = tiny_run.figure("transmission_daily")
    cems = daily[daily["stream"] == "cems"].set_index(["device_id", "day"])
    for planted in tiny_scenario.truth.transmission:
        row = cems.loc[(planted["device_id"], planted["day"])]
        assert (row["due"], row["received"], row["valid"]) == (
            planted["due"],
            planted["received"],
            planted["valid"],
        )
        assert row["effective_rate"] == pytest.approx(planted["valid"] / planted["due"])
    # the stack that went offline for three hours on the first day misses 90 % that day
    offline = {o["device_id"] for o in tiny_scenario.truth.offline}
    s001 = tiny_scenario.registry.stacks[0].device_id
    assert s001 in offline
    assert (
        cems.loc[(s001, DAYS[0]), "effective_rate"]
        < 0.9
        <= cems.loc[(s001, DAYS[1]), "effective_rate"]
    )
    monthly = tiny_run.figure("transmission").set_index("device_id")
    sent = [t for t in tiny_scenario.truth.transmission if t["device_id"] == s001]
    rate = sum(t["valid"] for t in sent) / sum(t["due"] for t in sent)
    assert monthly.loc[s001, "effective_rate"] == pytest.approx(rate)
    assert bool(monthly.loc[s001, "compliant"]) is (rate >= 0.9)


def test_upload_rates_of_the_micro_stations(tiny_run, tiny_scenario):
    """Received = the station's minute records of the month that survived the line (by their
    device-time day); the station planted offline misses 90 %."""
    rates = tiny_run.figure("upload_rates").set_index("device_id")
    for station in tiny_scenario.registry.stations:
        sent = {
            e.data_time for e in tiny_scenario.arriving(station.device_id)
            if e.cn == "2051" and e.data_time[:8] in {d.replace("-", "") for d in DAYS}
        }  # fmt: skip
        row = rates.loc[station.device_id]
        assert (row["due"], row["received"]) == (1440 * len(DAYS), len(sent))
        assert row["upload_rate"] == pytest.approx(len(sent) / (1440 * len(DAYS)))
    offline = {o["device_id"] for o in tiny_scenario.truth.offline}
    for device_id, row in rates.iterrows():
        assert bool(row["compliant"]) is (device_id not in offline), device_id


# ------------------------------------------------------------------------------ vapor


def test_nozzle_days_match_the_refuellings_sent(tiny_run, tiny_scenario):
    days = tiny_run.figure("vapor_nozzle_days")
    station = {g.device_id: g.gas_station_id for g in tiny_scenario.registry.gas_stations}
    got = days.set_index(["gas_station_id", "nozzle_id", "day"])
    statuses = {"pass": "pass", "out_of_range": "fail", "insufficient": "insufficient"}
    seen = set()
    for planted in tiny_scenario.truth.nozzle_days:
        key = (station[planted["device_id"]], planted["nozzle"], planted["day"])
        if planted["refuellings"] == 0:
            assert key not in got.index
            continue
        row = got.loc[key]
        assert row["n_refuellings"] == planted["refuellings"]
        assert row["share_in_range"] == pytest.approx(planted["in_range"] / planted["refuellings"])
        if planted["status"] in statuses:
            assert row["status"] == statuses[planted["status"]], key
            seen.add(planted["status"])
    assert seen == set(statuses)  # the tiny day has drifting, healthy and little-used nozzles


def test_drifting_nozzle_runs_but_no_warning_within_two_days(tiny_run, tiny_scenario):
    """The drift started three days before the window; the pipeline sees two failed days, so the
    run is 2 (a warning needs 5 judged days, DOMAIN.md section 7)."""
    alarms = tiny_run.figure("vapor_alarms")
    drift = tiny_scenario.truth.nozzle_drift[0]
    mine = alarms[
        (alarms["gas_station_id"] == drift["gas_station_id"])
        & (alarms["nozzle_id"] == drift["nozzle"])
    ]
    assert list(mine.sort_values("day")["run_length"]) == [1, 2]
    assert (alarms["level"] == 0).all()
    others = alarms[alarms["nozzle_id"] != drift["nozzle"]]
    assert (others["run_length"] == 0).all()


def test_zero_pressure_minutes_and_the_unmonitored_large_station(tiny_run, tiny_scenario):
    tanks = tiny_run.figure("vapor_tank_days").set_index("day")
    period = tiny_scenario.truth.zero_pressure[0]
    minutes = (
        datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"])
    ).seconds // 60
    assert tanks.loc[DAYS[0], "n_zero_alarm"] == minutes == 180
    assert tanks.loc[DAYS[1], "n_zero_alarm"] == 0
    # 180 of 1440 minutes is 12.5 %, under the 25 % a zero-pressure day needs (enforcement.toml)
    assert tanks.loc[DAYS[0], "status"] == "normal"
    missing = tiny_run.figure("vapor_stations_without_monitor")
    assert list(missing["gas_station_id"]) == tiny_scenario.truth.unmonitored_large_stations


# ------------------------------------------------------------------------------ remote sensing


def test_high_emitters_their_routes_and_the_intermittent_truck(tiny_run, tiny_scenario):
    runs = tiny_run.figure("rsd_high_emitter_runs")
    passes = tiny_run.warehouse.read("rsd_passes", month=MONTH)
    by_pass = dict(zip(passes["pass_id"], passes["reading_id"], strict=True))
    truth = tiny_scenario.truth
    assert set(runs["plate"]) == {h["plate"] for h in truth.high_emitters}
    for planted in truth.high_emitters:
        mine = runs[runs["plate"] == planted["plate"]]
        assert set(mine["pollutant"]) == set(planted["pollutants"])
        for _, row in mine.iterrows():
            expected = [by_pass[p] for p in planted["pass_ids"][row["pollutant"]]]
            assert sorted(row["reading_ids"]) == sorted(expected)
            authorities = set(row["authority"].split("、"))
            # plan clause 20(2): heavy diesel (> 3.5 t) to the environment bureau; lighter
            # vehicles and any black smoke (Ringelmann) to the traffic police
            heavy = planted["gross_weight_t"] > 3.5
            assert ("环保部门" in authorities) is heavy
            assert ("公安交管部门" in authorities) is (
                not heavy or row["pollutant"] == "ringelmann"
            )
    # the report counts vehicles: one row per plate, every authority of its runs
    vehicles = tiny_run.figure("rsd_high_emitters").set_index("plate")
    assert sorted(vehicles.index) == sorted(h["plate"] for h in truth.high_emitters)
    for planted in truth.high_emitters:
        row = vehicles.loc[planted["plate"]]
        assert set(row["pollutant"].split("、")) == set(planted["pollutants"])
        assert bool(row["black_smoke"]) is planted["black_smoke"]
        expected = {"environment_bureau": "环保部门", "traffic_police": "公安交管部门"}[
            planted["route"]
        ]
        assert expected in row["authority"].split("、")
    repeat = tiny_run.figure("rsd_repeat_offenders").set_index("plate")
    for planted in truth.not_high_emitters:
        assert planted["plate"] not in set(runs["plate"])
        assert repeat.loc[planted["plate"], "n_exceeding_passes"] == len(
            planted["exceeding_pass_ids"]
        )
        assert not repeat.loc[planted["plate"], "high_emitter"]


def test_passes_the_unit_judged_invalid_stay_out(tiny_run):
    checks = tiny_run.figure("rsd_pass_checks")
    passes = tiny_run.warehouse.read("rsd_passes", month=MONTH)
    unit_invalid = set(passes.loc[passes["unit_valid"] == 0, "reading_id"])
    assert unit_invalid
    rejected = checks[checks["reading_id"].isin(unit_invalid)]
    assert len(rejected) == len(unit_invalid) and not rejected["valid_pass"].any()
    judged = tiny_run.figure("rsd_judgements")
    assert not set(judged["reading_id"]) & unit_invalid


# ------------------------------------------------------------------------------ ambient and alerts


def _hand_hourly(scenario, device_id: str) -> dict[pd.Timestamp, float]:
    """PM2.5 hourly means from the minutes the station sent (>= 45 minutes; hour-end labels)."""
    minutes: dict[pd.Timestamp, list[float]] = defaultdict(list)
    for e in scenario.arriving(device_id):
        if e.cn == "2051":
            start = pd.Timestamp(datetime.strptime(e.data_time[:10], "%Y%m%d%H"), tz=BEIJING)
            minutes[start + pd.Timedelta(hours=1)].append(float(e.values[PM25]["Avg"]))
    return {hour: sum(v) / len(v) for hour, v in minutes.items() if len(v) >= 45}


def test_station_hourly_means_are_the_minutes_sent(tiny_run, tiny_scenario):
    hourly = tiny_run.figure("ambient_hourly")
    hourly["hour_end"] = pd.to_datetime(hourly["hour_end"], utc=True).dt.tz_convert(BEIJING)
    copier = next(f["device_id"] for f in tiny_scenario.truth.fakes if f["kind"] == "copied")
    expected = _hand_hourly(tiny_scenario, copier)  # its clock is true: nothing quarantined
    got = hourly[hourly["device_id"] == copier].set_index("hour_end")["pm25"]
    assert len(got) == len(expected) == 48
    for hour, value in expected.items():
        assert got[hour] == pytest.approx(value, abs=1e-9)


def _hand_rolling(hourly: pd.DataFrame) -> pd.Series:
    """District rolling 24-h PM IAQI: stations averaged per hour (invalid skipped), 24-hour means
    over >= 20 valid hours (GB 3095 / HJ 663), IAQI from the DOMAIN.md breakpoints."""
    district = hourly.groupby("hour_end")[["pm25", "pm10"]].mean()
    grid = pd.date_range(district.index.min(), district.index.max(), freq="h")
    district = district.reindex(grid)
    out = {}
    for hour in grid:
        window = district.loc[hour - pd.Timedelta(hours=23) : hour]
        values = []
        for item, table in (("pm25", PM25_24H), ("pm10", PM10_24H)):
            valid = window[item].dropna()
            if len(valid) >= 20:
                values.append(iaqi(table, valid.mean()))
        out[hour] = max(values) if values else float("nan")
    return pd.Series(out)


def _hand_alerts(series: pd.Series) -> list[tuple[pd.Timestamp, str]]:
    """The national levels (DOMAIN.md section 4) hour by hour: days above 200 / 300 counted as
    non-overlapping 24-hour windows, the level only rising within the process."""
    transitions, heavy, severe, level = [], [], [], "none"
    for hour, aqi in series.items():
        if math.isnan(aqi):
            continue
        if aqi > 200 and (not heavy or hour - heavy[-1] >= pd.Timedelta(hours=24)):
            heavy.append(hour)
        if aqi > 300 and (not severe or hour - severe[-1] >= pd.Timedelta(hours=24)):
            severe.append(hour)
        new = "none"
        if len(heavy) >= 1:
            new = "blue"
        if len(heavy) >= 2:
            new = "yellow"
        if len(heavy) >= 3 and len(severe) >= 1:
            new = "orange"
        if (len(heavy) >= 4 and len(severe) >= 2) or aqi >= 500:
            new = "red"
        order = ["none", "blue", "yellow", "orange", "red"]
        if order.index(new) > order.index(level):
            transitions.append((hour, new))
            level = new
    return transitions


def test_rolling_aqi_and_the_episode_alert(tiny_run, tiny_scenario):
    hourly = tiny_run.figure("ambient_hourly")
    hourly["hour_end"] = pd.to_datetime(hourly["hour_end"], utc=True)
    expected = _hand_rolling(hourly)
    stored = pd.concat([tiny_run.figure("aqi_rolling_24h", d) for d in DAYS])
    stored = stored.set_index(pd.to_datetime(stored["hour_end"], utc=True))["aqi_24h"]
    pm_led = expected[expected > 100]  # there PM decides the AQI (winter O3, SO2, NO2 are low)
    assert len(pm_led) > 20
    for hour, value in pm_led.items():
        assert stored[hour] == value, hour
    transitions = tiny_run.figure("alert_transitions")
    got = [
        (pd.Timestamp(t), lv)
        for t, lv in zip(transitions["time"], transitions["to_level"], strict=True)
    ]
    assert got == _hand_alerts(expected)
    assert [lv for _, lv in got] == ["blue", "yellow"]
    episode = tiny_scenario.truth.episodes[0]
    start = got[0][0]
    assert utc(episode["first_hour_above"]) < start <= utc(episode["end"])
    alerts = tiny_run.figure("alerts")
    assert len(alerts) == 1 and alerts.loc[0, "level"] == "yellow" and alerts.loc[0, "ongoing"]
    assert pd.Timestamp(alerts.loc[0, "start"]) == start
    assert "no forecast supplied" in alerts.loc[0, "note"]


def test_daily_aqi_one_district_row_a_day(tiny_run):
    aqi = tiny_run.figure("aqi_daily")
    assert list(aqi["day"]) == list(DAYS) and set(aqi["level"]) == {"district"}
    stations = tiny_run.figure("aqi_daily_station")
    # the district averages its stations' daily concentrations, then indexes them
    for day in DAYS:
        mine = stations[stations["day"] == day]
        pm25 = mine["pm25"].dropna().mean()
        assert aqi.set_index("day").loc[day, "pm25"] == pytest.approx(pm25)
    ranking = tiny_run.figure("weekly_ranking")
    assert len(ranking) == 17 and ranking["no_data"].sum() == 17 - 2


# ------------------------------------------------------------------------------ cases, quality, suspicions


def test_cases_proposed_from_the_exceedances(tiny_run, tiny_scenario):
    """No case_events file in the tiny registry: one case a stack, "fine at once" (即超即罚)."""
    cases = tiny_run.figure("cases").set_index("stack_id")
    per_stack = defaultdict(int)
    for e in tiny_scenario.truth.exceedances:
        per_stack[e["stack_id"]] += 1
    assert dict(cases["n_exceedances"]) == dict(per_stack)
    assert set(cases["status"]) == {"found"} and set(cases["source"]) == {"exceedances"}
    assert cases["measure"].str.contains("即超即罚").all()
    assert tiny_run.figure("penalty_ledger") is None  # not produced: no case events


def test_quality_names_what_was_quarantined_and_missing(tiny_run):
    quality = tiny_run.figure("quality")
    ambient = quality[(quality["stream"] == "ambient") & (quality["device_id"] == "")].iloc[0]
    q = tiny_run.warehouse.read("quarantine", month=MONTH)
    assert ambient["n_quarantined"] == q.loc[q["stream"] == "ambient", "reading_id"].nunique() > 0
    assert "quarantined future" in ambient["note"]
    assert ("ambient", DAYS[1]) in tiny_run.critical and "quarantine_share" in ambient["note"]
    daily = tiny_run.figure("transmission_daily")
    for row in quality[quality["device_id"] != ""].itertuples():
        mine = daily[daily["device_id"] == row.device_id]
        assert row.n_missing == (mine["due"] - mine["received"]).sum()
        assert row.n_invalid == (mine["received"] - mine["valid"]).sum()


def test_suspicions_name_the_faking_device_and_spare_the_honest(tiny_run, tiny_scenario):
    found = tiny_run.figure("suspicions")
    truth = tiny_scenario.truth
    planted = (
        {("same_series", f["device_id"]) for f in truth.fakes if f["kind"] == "copied"}
        | {("flatline", f["device_id"]) for f in truth.flatlines}
        | {("dilution", f["device_id"]) for f in truth.dilutions}
        | {("clock_jump", c["device_id"]) for c in truth.clocks if c["kind"] == "jump"}
    )
    got = set(zip(found["pattern"], found["device_id"], strict=True))
    assert planted <= got
    faulty = {device for _, device in planted}
    honest = set(tiny_scenario.device_ids("cems") + tiny_scenario.device_ids("ambient")) - faulty
    flagged_honest = {d for _, d in got} & honest
    assert honest and not flagged_honest, f"false positives: {sorted(flagged_honest)}"
    copied = next(f for f in truth.fakes if f["kind"] == "copied")
    row = found[
        (found["pattern"] == "same_series") & (found["device_id"] == copied["device_id"])
    ].iloc[0]
    assert copied["source_device_id"] in row["detail"]
    # the copied channel-hours' readings are kept whole as evidence; the report names a few
    minutes = {
        reading_id(copied["device_id"], "2051", e.data_time)
        for e in tiny_scenario.arriving(copied["device_id"])
    }
    assert row["reading_ids"] and set(row["reading_ids"]) <= minutes
    assert row["evidence"].startswith(f"{len(row['reading_ids'])} readings: ")


def test_the_report_reads_every_figure_it_needs(tiny_run):
    from reports.data import load_report_data

    data = load_report_data(tiny_run.warehouse, MONTH)
    produced = {
        "exceedances": ["stack_name", "enterprise_name", "hourly_mean", "limit_value"],
        "cems_hourly": ["mean_corrected", "valid"],
        "cases": ["case_id", "enterprise_name", "stack_name", "pollutant", "opened", "measure", "status"],
        "transmission": ["device_id", "owner", "due", "received", "valid", "effective_rate", "compliant"],
        "upload_rates": ["station_id", "station_name", "subdistrict", "upload_rate", "compliant"],
        "weekly_ranking": ["subdistrict", "week", "pm25", "rank", "bottom_two"],
        "aqi_daily": ["date", "aqi", "category", "primary"],
        "alerts": ["level", "started_at", "ended_at", "hours", "peak_aqi", "action", "reason"],
        "vapor_nozzle_days": ["gas_station_id", "nozzle_id", "day", "al_p50"],
        "vapor_alarms": ["gas_station_id", "nozzle_id", "level", "run_length"],
        "vapor_station_efficiency": ["gas_station_name", "efficiency", "met"],
        "vapor_stations_without_monitor": ["gas_station_name", "annual_gasoline_sales_t"],
        "rsd_high_emitters": ["plate", "fuel_type", "gross_weight_t", "pollutant", "n_exceedances", "authority"],
        "rsd_repeat_offenders": ["plate", "vehicle_owner", "transport_enterprise", "n_exceedances", "last_seen"],
        "quality": ["figure", "stream", "n_total", "n_invalid", "n_missing", "note"],
        "suspicions": ["device_id", "stack_id", "enterprise_name", "pattern", "first_seen", "last_seen", "evidence"],
    }  # fmt: skip
    for name, columns in produced.items():
        frame = getattr(data, name)
        assert frame is not None, name
        assert set(columns) <= set(frame.columns), (name, set(columns) - set(frame.columns))
    assert data.alerts.loc[0, "level"] == "黄色"  # the report prints the Chinese level
    assert data.dustfall is None  # no dustfall records in the bureau's folder: not produced


def test_the_monthly_report_builds_from_these_figures(tiny_run, tmp_path):
    from lantian.pipeline import monthly_report
    from tests.pipeline.conftest import lantian_home

    with lantian_home(tiny_run.home):
        paths = monthly_report(MONTH, out=tmp_path)
    for kind in ("xlsx", "pdf", "html"):
        assert (tmp_path / f"lantian-report-{MONTH}.{kind}").stat().st_size > 0, kind
    summary = paths["summary"]
    plates = len({h["plate"] for h in tiny_run.scenario.truth.high_emitters})
    assert f"遥感认定高排放车辆 {plates} 辆" in summary
    assert f"共出现 {len(tiny_run.scenario.truth.exceedances)} 个超标小时" in summary


def test_steps_are_idempotent(tiny_run):
    from lantian import rules_daily, rules_monthly
    from tests.pipeline.conftest import lantian_home

    wh = tiny_run.warehouse
    before = {n: len(wh.read_derived(n, MONTH)) for n in ("vapor_nozzle_days", "rsd_high_emitters")}
    with lantian_home(tiny_run.home):
        rules_daily.vapor_day(DAYS[0], run_id="again")
        rules_monthly.rsd_month(MONTH, run_id="again")
    after = {n: len(wh.read_derived(n, MONTH)) for n in before}
    assert after == before


def test_a_day_and_a_month_without_data(tiny_run):
    from lantian import rules_daily, rules_monthly
    from tests.pipeline.conftest import lantian_home

    empty_day, empty_month = "2018-01-05", "2017-11"
    with lantian_home(tiny_run.home):
        for step in (rules_daily.ambient_day, rules_daily.vapor_day, rules_daily.rsd_day):
            assert step(empty_day)["rows_out"] == 0
        rules_daily.transmission_day(empty_day)
        results = rules_monthly.monthly_rules(empty_month)
    wh = tiny_run.warehouse
    assert wh.read_derived("aqi_daily", empty_day).empty
    # every registered device was due and sent nothing: rate 0, not missing
    zero = wh.read_derived("transmission_daily", empty_day)
    assert len(zero) == 5 and (zero["received"] == 0).all() and not zero["complies"].any()
    assert len(results) == len(rules_monthly.MONTHLY_STEPS)
    assert wh.read_derived("alerts", empty_month) is None  # nothing to assess: not produced
    assert wh.read_derived("rsd_high_emitters", empty_month) is None
