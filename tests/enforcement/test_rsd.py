"""Remote sensing: valid passes, per-pollutant exceedances, high emitters, routing (plan 20(2))."""

from __future__ import annotations

import pandas as pd
import pytest

from enforcement.rsd import (
    china4_share,
    high_emitters,
    in_heating_season,
    judge_passes,
    pass_judgements,
    repeat_offenders,
    route,
)

UNITS = pd.DataFrame(
    {
        "unit_id": ["U1"],
        "device_id": ["RSD1"],
        "site": ["花园路"],
        "subdistrict_id": ["SD01"],
        "calibrated_until": ["2017-11-10"],
    }
)
VEHICLES = pd.DataFrame(
    {
        "plate": ["豫A11111", "豫A22222", "豫A33333", "豫A44444", "豫A55555", "豫A66666"],
        "owner": ["张三", "李四", "王五", "赵六", "钱七", "孙八"],
        "transport_enterprise": ["T1", "T1", "T1", "T1", "T1", "T2"],
        "key_enterprise": ["1", "1", "1", "1", "1", "0"],
        "fuel_type": ["diesel", "diesel", "diesel", "diesel", "gasoline", "diesel"],
        "gross_weight_t": ["18", "18", "3.5", "12", "1.6", "25"],
        "emission_standard": ["IV", "V", "III", "VI", "V", "III"],
    }
)
_counter = iter(range(10_000))


def a_pass(plate: str, when: str, *, fuel="diesel", weight=18.0, **values) -> dict:
    row = {
        "reading_id": f"p{next(_counter):05d}",
        "device_id": "RSD1",
        "data_time": pd.Timestamp(when, tz="Asia/Shanghai").tz_convert("UTC"),
        "lane": 1,
        "plate": plate,
        "fuel_type": fuel,
        "weight_class": "N3" if weight > 12 else ("N2" if weight > 3.5 else "N1"),
        "gross_weight_t": weight,
        "speed_km_h": 40.0,
        "accel_m_s2": 0.5,
        "vsp_kw_t": 5.0,
        "co2_pct": 10.0,
        "co_pct": 0.5,
        "hc_ppm": 100.0,
        "no_ppm": 500.0,
        "opacity_pct": 10.0,
        "ringelmann": 0,
        "valid": 1,
    }
    row.update(values)
    return row


def judged(*rows: dict) -> pd.DataFrame:
    return judge_passes(pd.DataFrame(list(rows)), UNITS)


def test_validity_windows_plate_and_calibration():
    frame = judged(
        a_pass("豫A11111", "2017-11-05 10:00"),
        a_pass(
            "豫A11111", "2017-11-05 10:01", speed_km_h=10.0, accel_m_s2=2.5, vsp_kw_t=20.0
        ),  # edges
        a_pass("豫A11111", "2017-11-05 10:02", speed_km_h=9.9),
        a_pass("豫A11111", "2017-11-05 10:03", vsp_kw_t=-0.1),
        a_pass("无牌", "2017-11-05 10:04"),
        a_pass("豫A11111", "2017-11-10 23:30"),  # last calibrated Beijing day
        a_pass("豫A11111", "2017-11-11 00:10"),
        a_pass("豫A11111", "2017-11-05 10:05", valid=0),
        a_pass("豫A11111", "2017-11-05 10:06", accel_m_s2=None),
    )
    assert list(frame["reject_reason"]) == [
        "",
        "",
        "speed",
        "vsp",
        "plate",
        "",
        "calibration",
        "unit_flag",
        "accel",
    ]
    assert frame["unit_id"].eq("U1").all()


def test_diesel_limits_are_strictly_above():
    frame = judged(
        a_pass("豫A11111", "2017-11-05 10:00", opacity_pct=30.0, ringelmann=1, no_ppm=1500.0),
        a_pass("豫A22222", "2017-11-05 10:01", opacity_pct=30.1, ringelmann=2, no_ppm=1501.0),
    )
    j = pass_judgements(frame)
    table = j.set_index(["plate", "pollutant"])["exceeds"]
    assert not table[("豫A11111", "opacity_pct")] and not table[("豫A11111", "ringelmann")]
    assert not table[("豫A11111", "no_ppm")]
    assert table[("豫A22222", "opacity_pct")] and table[("豫A22222", "ringelmann")]
    assert table[("豫A22222", "no_ppm")]
    # diesel is not judged on the gasoline pollutants
    assert set(j["pollutant"]) == {"opacity_pct", "ringelmann", "no_ppm"}


def test_gasoline_is_judged_on_co_hc_no():
    frame = judged(a_pass("豫A55555", "2017-11-05 10:00", fuel="gasoline", weight=1.6, co_pct=3.0))
    j = pass_judgements(frame)
    assert set(j["pollutant"]) == {"co_pct", "hc_ppm", "no_ppm"}
    assert list(j.loc[j["exceeds"], "pollutant"]) == ["co_pct"]


def test_different_pollutants_are_not_a_high_emitter_same_pollutant_twice_is():
    frame = judged(
        # A: opacity then NO: two exceedances, different pollutants
        a_pass("豫A11111", "2017-11-01 10:00", opacity_pct=40.0),
        a_pass("豫A11111", "2017-11-02 10:00", no_ppm=1800.0),
        # B: NO twice in a row
        a_pass("豫A22222", "2017-11-01 10:00", no_ppm=1800.0),
        a_pass("豫A22222", "2017-11-03 10:00", no_ppm=1700.0),
        # C: NO, clean, NO: not consecutive
        a_pass("豫A44444", "2017-11-01 10:00", no_ppm=1800.0),
        a_pass("豫A44444", "2017-11-02 10:00", no_ppm=800.0),
        a_pass("豫A44444", "2017-11-03 10:00", no_ppm=1800.0),
    )
    emitters = high_emitters(pass_judgements(frame))
    assert list(emitters["plate"]) == ["豫A22222"]
    row = emitters.iloc[0]
    assert row["pollutant"] == "no_ppm" and row["n_consecutive"] == 2
    assert row["max_value"] == 1800.0 and len(row["reading_ids"]) == 2


def test_consecutive_exceedances_more_than_6_months_apart_are_not_one_cycle():
    # calibration must cover the passes: a unit calibrated through 2018
    units = UNITS.assign(calibrated_until="2018-12-31")
    frame = judge_passes(
        pd.DataFrame(
            [
                a_pass("豫A22222", "2017-11-01 10:00", no_ppm=1800.0),
                a_pass("豫A22222", "2018-05-02 10:00", no_ppm=1800.0),  # 6 months + 1 day later
                a_pass("豫A44444", "2017-11-01 10:00", no_ppm=1800.0),
                a_pass("豫A44444", "2018-05-01 10:00", no_ppm=1800.0),  # exactly 6 months
            ]
        ),
        units,
    )
    assert list(high_emitters(pass_judgements(frame))["plate"]) == ["豫A44444"]


def test_three_in_a_row_is_one_high_emitter_row():
    frame = judged(
        *(a_pass("豫A22222", f"2017-11-0{d} 10:00", opacity_pct=50.0) for d in (1, 2, 3))
    )
    emitters = high_emitters(pass_judgements(frame))
    assert len(emitters) == 1 and emitters.iloc[0]["n_consecutive"] == 3


@pytest.mark.parametrize(
    ("fuel", "weight", "klass", "pollutant", "expected"),
    [
        ("diesel", 3.5, "N1", "no_ppm", ["公安交管部门"]),  # exactly 3.5 t is light
        ("diesel", 3.51, "N2", "no_ppm", ["环保部门"]),
        ("diesel", 18.0, "N3", "ringelmann", ["环保部门", "公安交管部门"]),
        ("diesel", 2.0, "N1", "ringelmann", ["公安交管部门"]),
        ("gasoline", 1.6, "M1", "co_pct", ["公安交管部门"]),
        ("diesel", None, "N3", "opacity_pct", ["环保部门"]),  # unknown weight: the class decides
    ],
)
def test_routing_follows_plan_clause_20_2(fuel, weight, klass, pollutant, expected):
    row = pd.DataFrame(
        {
            "fuel_type": [fuel],
            "gross_weight_t": [weight],
            "weight_class": [klass],
            "pollutant": [pollutant],
        }
    )
    row["gross_weight_t"] = row["gross_weight_t"].astype(float)
    assert route(row).iloc[0]["routed_to"] == expected


def test_unknown_fuel_and_weight_filled_from_the_registry():
    frame = judge_passes(
        pd.DataFrame(
            [a_pass("豫A33333", "2017-11-01 10:00", fuel="unknown", weight=0.0, no_ppm=1800.0)]
        ),
        UNITS,
        VEHICLES,
    )
    j = pass_judgements(frame)
    assert j.iloc[0]["fuel_type"] == "diesel" and j.iloc[0]["gross_weight_t"] == 3.5


def test_repeat_offenders_with_owners():
    frame = judged(
        a_pass(
            "豫A11111", "2017-11-01 10:00", opacity_pct=40.0, ringelmann=2
        ),  # one pass, two pollutants
        a_pass("豫A11111", "2017-11-02 10:00", no_ppm=1800.0),
        a_pass("豫A22222", "2017-11-01 10:00", no_ppm=1800.0),
        a_pass("豫A44444", "2017-11-01 10:00"),
    )
    out = repeat_offenders(pass_judgements(frame), VEHICLES)
    assert list(out["plate"]) == ["豫A11111"]
    row = out.iloc[0]
    assert row["n_exceeding_passes"] == 2 and row["owner"] == "张三"
    assert row["pollutants"] == ["no_ppm", "opacity_pct", "ringelmann"]
    assert not row["high_emitter"]


def test_china4_share_exactly_80_percent_complies():
    out = china4_share(VEHICLES).set_index("transport_enterprise")
    # T1 key enterprise: IV, V, III, VI, V → 4 of 5 = 0.8; T2 is not a key enterprise
    assert list(out.index) == ["T1"]
    assert out.loc["T1", "fleet_share"] == pytest.approx(0.8)
    assert bool(out.loc["T1", "fleet_complies"])
    fewer = china4_share(VEHICLES.assign(emission_standard=["IV", "III", "III", "VI", "V", "III"]))
    assert (
        fewer.iloc[0]["fleet_share"] == pytest.approx(0.6) and not fewer.iloc[0]["fleet_complies"]
    )


def test_china4_observed_share_uses_heating_season_passes():
    passes = pd.DataFrame(
        {
            "plate": ["豫A11111", "豫A33333", "豫A22222"],
            "day": ["2017-11-20", "2017-12-01", "2017-10-20"],  # the last is before the season
        }
    )
    out = china4_share(VEHICLES, passes).iloc[0]
    assert out["n_seen"] == 2 and out["observed_share"] == pytest.approx(0.5)
    assert not out["observed_complies"]
    assert list(
        in_heating_season(pd.Series(["2017-11-14", "2017-11-15", "2018-03-15", "2018-03-16"]))
    ) == [
        False,
        True,
        True,
        False,
    ]
