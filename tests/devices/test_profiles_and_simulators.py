"""The Lantian vapor / remote-sensing profiles as data, and the family simulators on their own:
determinism, the frames they write, the device clock."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest

from agents.devices import get_family
from agents.devices.ambient.simulator import (
    PM10,
    PM25,
    AmbientPlan,
    AmbientSimulator,
    Episode,
    RegionalAir,
    StationModel,
)
from agents.devices.cems.simulator import (
    NOX,
    O2,
    SO2,
    CemsPlan,
    CemsSimulator,
    HourPlan,
    StackModel,
)
from agents.devices.rsd.simulator import (
    PlannedPass,
    RsdPlan,
    RsdSimulator,
    Vehicle,
    validity_window,
    vsp,
    window_problem,
)
from agents.devices.sim import DeviceClock, DeviceSpec, fast_cp, reference_cp
from agents.devices.vapor.simulator import Nozzle, VaporPlan, VaporSimulator, nozzle_status
from agents.hj212 import parse_frame
from schemas.enforcement_rules import rsd_limits
from schemas.profiles import (
    code_aliases,
    family_protocol,
    is_non_reading_cn,
    profile_items,
    simulation_setting,
)
from schemas.reading import BEIJING
from schemas.rules import threshold

DAY = date(2017, 12, 1)
T0 = datetime(2017, 12, 1, tzinfo=BEIJING)
RECEIVED = datetime(2017, 12, 2, tzinfo=BEIJING)


# ------------------------------------------------------------------------------ profiles


@pytest.mark.parametrize("family", ["vapor", "rsd"])
def test_profiles_are_complete_and_unambiguous(family):
    items = profile_items(family)
    protocol = family_protocol(family)
    assert protocol.version == "1" and all(item.version == "1" for item in items)
    columns = [item.column for item in items]
    assert len(columns) == len(set(columns)), "a warehouse column is defined twice"
    pairs = [(item.cn, item.code, item.suffix) for item in items]
    assert len(pairs) == len(set(pairs))
    assert {item.cn for item in items} <= set(protocol.reading_cns)
    keys = [item for item in items if item.is_key]
    assert [k.code for k in keys] == [protocol.key] and keys[0].required
    for item in items:
        assert item.type in {"text", "decimal", "int", "flag"}, item
        assert item.description


def test_protocol_sections_and_commands():
    assert family_protocol("cems").st == ("31",) and family_protocol("ambient").st == ("22",)
    assert family_protocol("vapor").st == ("V1",) and family_protocol("rsd").st == ("R1",)
    assert not set(family_protocol("vapor").st) & set(family_protocol("rsd").st)
    assert is_non_reading_cn("9014") and is_non_reading_cn("1011") and is_non_reading_cn("2081")
    assert not is_non_reading_cn("2051") and not is_non_reading_cn("2011")
    with pytest.raises(KeyError, match="known: cems, ambient, vapor, rsd"):
        family_protocol("water")


def test_aliases_include_2005_flue_codes_only_for_cems():
    assert code_aliases("cems")["S01"] == "a19001" and code_aliases("cems")["02"] == "a21026"
    assert code_aliases("ambient")["O3"] == "a05024"
    assert "02" not in code_aliases("ambient")


# ------------------------------------------------------------------------------ fast CP


def test_fast_cp_writes_what_the_codec_writes():
    values = {"a21026": {"Avg": "12.30", "Flag": "N"}, "lr1002": {"Info": "豫A12345"}}
    names = {"a21026": "02"}
    for extra in (None, {"Nozzle": "03"}, {"PassId": "0120171201000001", "Lane": "2"}):
        assert fast_cp(values, names, "20171201083000", extra) == reference_cp(
            values, names, "20171201083000", extra
        )


# ------------------------------------------------------------------------------ clock


def test_clock_drift_and_forward_jump():
    clock = DeviceClock(
        drift_s_per_day=240.0, drift_from=T0, jumps=((T0 + timedelta(hours=9), 3600.0),)
    )
    assert clock.offset_s(T0 + timedelta(hours=6)) == pytest.approx(60.0)
    for hours in (0.0, 5.0, 8.5, 10.2, 30.0):
        shown = T0 + timedelta(hours=hours)
        true = clock.to_true(shown)
        assert true is not None
        assert (
            true + timedelta(seconds=clock.offset_s(true)) - shown
        ).total_seconds() == pytest.approx(0, abs=1e-3)
    # Right after the jump the clock shows 10:0x; 09:30 on the device clock never happens.
    assert clock.to_true(T0 + timedelta(hours=9.5)) is None
    with pytest.raises(ValueError, match="forward"):
        DeviceClock(jumps=((T0, -60.0),))


# ------------------------------------------------------------------------------ CEMS


def cems_sim(seed: int = 1, hours=None, spec: DeviceSpec | None = None) -> CemsSimulator:
    spec = spec or DeviceSpec("410105310000000000000050", "cems", "31", pw="654321")
    model = StackModel("coal", 9.0, 10.0, {"a34013": 12.0, SO2: 80.0, NOX: 90.0}, 55.0, 10.0, 3.0)
    return CemsSimulator(spec, model, CemsPlan(hours=hours or {}), seed=seed)


def test_cems_day_is_deterministic_and_decodes():
    first = cems_sim().day(DAY)
    again = cems_sim().day(DAY)
    other = cems_sim(seed=2).day(DAY)
    assert [e.frame for e in first] == [e.frame for e in again]
    assert [e.frame for e in first] != [e.frame for e in other]
    assert len([e for e in first if e.cn == "2051"]) == 1440
    assert len([e for e in first if e.cn == "2011"]) == 1440
    assert all(a.at <= b.at for a, b in zip(first, first[1:], strict=False))
    cfg = {"device_id": "410105310000000000000050", "pw": "654321"}
    for emission in first[:50]:
        (reading,) = get_family("cems").decode(parse_frame(emission.frame), cfg, RECEIVED)
        assert reading.values == emission.values
        assert reading.data_time == emission.data_time


def test_cems_zs_values_follow_the_o2_correction():
    for emission in cems_sim().day(DAY)[:200]:
        if emission.cn != "2051":
            continue
        o2 = float(emission.values[O2]["Avg"])
        item = emission.values[SO2]
        expected = float(item["Avg"]) * (21 - 9.0) / (21 - o2)
        assert float(item["ZsAvg"]) == pytest.approx(expected, abs=0.006)


def test_cems_planted_hour_has_exact_flag_count_and_level():
    hour = T0 + timedelta(hours=7)
    plan = {hour: HourPlan("exceed", NOX, 270.0, flagged=15, flag="M", tag="x")}
    minutes = [
        e
        for e in cems_sim(hours=plan).day(DAY)
        if e.cn == "2051" and e.data_time[:10] == "2017120107"
    ]
    assert len(minutes) == 60
    flags = [e.values[NOX]["Flag"] for e in minutes]
    assert flags.count("M") == 15 and flags.count("N") == 45
    corrected = [
        float(e.values[NOX]["Avg"]) * 12 / (21 - float(e.values[O2]["Avg"])) for e in minutes
    ]
    assert sum(corrected) / 60 == pytest.approx(270.0, rel=0.03)
    assert all(e.protected and e.tag == "x" for e in minutes)


def test_cems_2005_logger_sends_old_codes_without_flag_or_qn():
    spec = DeviceSpec("410105310000000000000051", "cems", "31", edition=2005,
                      code_names={"a21026": "02", "a19001": "S01"})  # fmt: skip
    emission = next(e for e in cems_sim(spec=spec).day(DAY) if e.cn == "2051")
    text = emission.frame.decode()
    assert ";02-Avg=" in text and "S01-Avg=" in text and "Flag=" not in text.split("CP=")[0]
    assert "QN=" not in text and "ZsAvg" not in text
    assert parse_frame(emission.frame).edition == 2005


# ------------------------------------------------------------------------------ ambient


def test_episode_weight_ramps_and_regional_pm25():
    episode = Episode(T0 + timedelta(hours=2), T0 + timedelta(hours=24), 200.0)
    assert episode.weight(T0 + timedelta(hours=1)) == 0
    assert episode.weight(T0 + timedelta(hours=5)) == pytest.approx(0.5)
    assert episode.weight(T0 + timedelta(hours=12)) == 1
    air = RegionalAir(episodes=(episode,))
    hour = T0 + timedelta(hours=12)
    cycle = 1 + 0.22 * math.cos(2 * math.pi * (12 - 22) / 24)
    assert air.pm25(hour) == pytest.approx(70 * cycle + 200)


def test_ambient_copier_sends_the_source_strings():
    air = RegionalAir()
    source = AmbientSimulator(DeviceSpec("A" * 24, "ambient", "22"), StationModel(), air, seed=3)
    copier = AmbientSimulator(
        DeviceSpec("B" * 24, "ambient", "22"), StationModel(pm_factor=0.9), air,
        AmbientPlan(copy_from=(source, (PM25, PM10))), seed=3,
    )  # fmt: skip
    theirs = {e.data_time: e.values for e in source.day(DAY)}
    mine = copier.day(DAY)
    assert len(mine) == 1440
    assert all(e.values[PM25]["Avg"] == theirs[e.data_time][PM25]["Avg"] for e in mine)
    assert any(e.values["a21004"]["Avg"] != theirs[e.data_time]["a21004"]["Avg"] for e in mine)


# ------------------------------------------------------------------------------ vapor


def test_nozzle_status_follows_the_consecutive_day_counts():
    warn, alarm = int(threshold("vapor.warning_days")), int(threshold("vapor.alarm_days"))
    days = frozenset(DAY - timedelta(days=k) for k in range(1, alarm + 1))
    assert nozzle_status(days, DAY) == 2
    assert nozzle_status(frozenset(DAY - timedelta(days=k) for k in range(1, warn + 1)), DAY) == 1
    assert nozzle_status(frozenset({DAY - timedelta(days=2)}), DAY) == 0  # not consecutive


def test_vapor_drifting_nozzle_and_minute_records():
    spec = DeviceSpec("410105610000000000000050", "vapor", "V1")
    nozzles = (Nozzle("01", "92", 3.0), Nozzle("02", "95", 3.0))
    plan = VaporPlan(drift_days={"02": frozenset({DAY})})
    out = VaporSimulator(spec, nozzles, plan, seed=5).day(DAY)
    assert len([e for e in out if e.cn == "2051"]) == 1440
    refuels = [e for e in out if e.cn == "2011"]
    by_nozzle = {
        n: [float(e.values["lv1001"]["Rtd"]) for e in refuels if e.key == n] for n in ("01", "02")
    }
    assert by_nozzle["01"] and all(1.0 <= r <= 1.2 for r in by_nozzle["01"])
    assert by_nozzle["02"] and all(r < 1.0 for r in by_nozzle["02"])
    first = refuels[0]
    assert b"Nozzle=" + first.key.encode() in first.frame
    (reading,) = get_family("vapor").decode(
        parse_frame(first.frame), {"device_id": spec.device_id}, RECEIVED
    )
    assert reading.key == first.key and reading.values == first.values


# ------------------------------------------------------------------------------ remote sensing


def test_vsp_formula_by_hand():
    # 36 km/h = 10 m/s, a = 0.5: 10 * (0.55 + 0.132) + 0.000302 * 1000 = 7.122
    assert vsp(36.0, 0.5) == pytest.approx(7.122)


def test_rsd_planned_passes_and_validity():
    spec = DeviceSpec("410105620000000000000050", "rsd", "R1")
    truck = Vehicle("豫A0SMK1", "diesel", 31.0, "III")
    car = Vehicle("豫A0CAR1", "gasoline", 1.5, "V")
    planned = (PlannedPass(T0 + timedelta(hours=9), truck.plate, "opacity", "t"),
               PlannedPass(T0 + timedelta(hours=10), truck.plate, "no", "t"))  # fmt: skip
    out = RsdSimulator(spec, 1, (truck, car), RsdPlan(planned=planned), seed=9).day(DAY)
    mine = [e for e in out if e.values["lr1002"]["Info"] == truck.plate]
    assert len(mine) == 2  # a planned vehicle passes only when planned
    smoke, nox = mine
    limits = {
        (r["fuel_type"], r["quantity"]): float(r["value"])
        for r in rsd_limits()
        if r["kind"] == "limit"
    }
    assert float(smoke.values["lr1014"]["Rtd"]) > limits[("diesel", "opacity_pct")]
    assert float(nox.values["lr1013"]["Rtd"]) > limits[("diesel", "no_ppm")]
    assert smoke.values["lr1016"]["Info"] == "1" and smoke.protected
    assert len({e.key for e in out}) == len(out)  # pass ids unique
    for emission in out:
        values = emission.values
        valid = values["lr1016"]["Info"] == "1"
        assert valid == ("lr1017" not in values)
        if values["lr1004"]["Info"] == "gasoline":
            assert "lr1014" not in values  # no opacity for gasoline vehicles


def test_simulation_levels_and_the_units_validity_window():
    assert simulation_setting("ambient.episode_pm25") == 150
    with pytest.raises(KeyError, match="simulation.toml"):
        simulation_setting("rsd.nothing")
    window = validity_window()
    assert window["speed_km_h"] == (10.0, 100.0) and window["vsp_kw_t"] == (0.0, 20.0)
    assert window_problem(5.0, 0.2, vsp(5.0, 0.2)) == "speed"
    assert window_problem(40.0, -2.0, 1.0) == "accel"
    assert window_problem(40.0, 0.3, vsp(40.0, 0.3)) == ""
