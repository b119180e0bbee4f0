"""Vapor recovery: A/L per nozzle-day (GB 20952 acceptable 1.0-1.2), runs, tank pressure, estimate."""

from __future__ import annotations

import pandas as pd
import pytest

from enforcement.vapor import (
    nozzle_alerts,
    nozzle_days,
    station_efficiency,
    stations_missing_monitor,
    tank_pressure_days,
)

GAS_STATIONS = pd.DataFrame(
    {
        "gas_station_id": ["G1", "G2", "G3"],
        "name": ["一站", "二站", "三站"],
        "subdistrict_id": ["SD01", "SD02", "SD03"],
        "annual_gasoline_sales_t": ["6000", "5000", "5000.1"],
        "has_online_monitor": ["1", "1", "0"],
        "device_id": ["VAP1", "VAP2", ""],
        "nozzles": ["4", "4", "2"],
    }
)


def refuellings(
    station: str, nozzle: str, start: str, ratios: list[float], volume: float | list[float] = 30.0
) -> pd.DataFrame:
    first = pd.Timestamp(start, tz="Asia/Shanghai").tz_convert("UTC")
    volumes = volume if isinstance(volume, list) else [volume] * len(ratios)
    return pd.DataFrame(
        {
            "reading_id": [f"{station}{nozzle}{first.value}{i}" for i in range(len(ratios))],
            "device_id": "VAP" + station[1:],
            "gas_station_id": station,
            "nozzle_id": nozzle,
            "data_time": [first + pd.Timedelta(minutes=5 * i) for i in range(len(ratios))],
            "al_ratio": ratios,
            "fuel_volume_l": volumes,
            "vapor_volume_l": [r * v for r, v in zip(ratios, volumes, strict=True)],
        }
    )


def test_nozzle_day_distribution_hand_computed():
    ratios = [0.9, 1.0, 1.05, 1.1, 1.1, 1.15, 1.2, 1.2, 1.25, 1.3]
    day = nozzle_days(refuellings("G1", "N1", "2017-11-01 08:00", ratios)).iloc[0]
    assert day["n_refuellings"] == 10
    assert day["al_mean"] == pytest.approx(1.125)
    assert day["al_p50"] == pytest.approx(1.125)
    assert day["al_p10"] == pytest.approx(0.99)  # linear: 0.9 + 0.9 × 0.1
    assert day["al_p90"] == pytest.approx(1.255)
    assert day["share_in_range"] == pytest.approx(0.7)  # 1.0 and 1.2 are inside
    assert day["status"] == "pass"


def test_too_few_refuellings_is_insufficient_not_pass():
    day = nozzle_days(refuellings("G1", "N1", "2017-11-01 08:00", [1.1] * 9)).iloc[0]
    assert day["status"] == "insufficient"


def test_median_out_of_range_fails():
    days = nozzle_days(
        pd.concat(
            [
                refuellings("G1", "N1", "2017-11-01 08:00", [0.8] * 6 + [1.1] * 4),
                refuellings("G1", "N2", "2017-11-01 08:00", [1.3] * 6 + [1.1] * 4),
            ]
        )
    )
    assert list(days["status"]) == ["fail", "fail"]


def test_days_follow_the_beijing_calendar():
    rows = refuellings("G1", "N1", "2017-11-01 23:57", [1.1, 1.1])  # 23:57 and 00:02
    assert list(nozzle_days(rows)["day"]) == ["2017-11-01", "2017-11-02"]


def test_station_id_from_the_registry_when_missing():
    rows = refuellings("G2", "N1", "2017-11-01 08:00", [1.1] * 10).drop(columns="gas_station_id")
    assert nozzle_days(rows, GAS_STATIONS).iloc[0]["gas_station_id"] == "G2"


def status_days(statuses: list[str | None], nozzle: str = "N1") -> pd.DataFrame:
    """Nozzle-days from 2017-11-01; None leaves the calendar day out (no data at all)."""
    rows = []
    for i, status in enumerate(statuses):
        if status is not None:
            day = (pd.Timestamp("2017-11-01") + pd.Timedelta(days=i)).strftime("%Y-%m-%d")
            rows.append({"gas_station_id": "G1", "nozzle_id": nozzle, "day": day, "status": status})
    return pd.DataFrame(rows)


def test_warning_after_5_and_alarm_after_7_consecutive_fail_days():
    alerts = nozzle_alerts(status_days(["fail"] * 8))
    assert list(alerts["run_length"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(alerts["level"]) == [0, 0, 0, 0, 1, 1, 2, 2]
    assert alerts.iloc[6]["level_name"] == "alarm"


@pytest.mark.parametrize("breaker", ["pass", "insufficient", None])
def test_a_non_fail_day_or_missing_day_ends_the_run(breaker):
    alerts = nozzle_alerts(status_days(["fail"] * 4 + [breaker] + ["fail"] * 4))
    assert alerts["run_length"].max() == 4
    assert alerts["level"].max() == 0


def test_runs_do_not_cross_nozzles():
    days = pd.concat([status_days(["fail"] * 3, "N1"), status_days(["fail"] * 3, "N2")])
    assert list(nozzle_alerts(days)["run_length"]) == [1, 2, 3, 1, 2, 3]


def pressure_minutes(
    n: int, n_over: int, *, value_over: float = 200.0, zero: int = 0, flag: str = "N"
):
    start = pd.Timestamp("2017-11-01 00:00", tz="Asia/Shanghai").tz_convert("UTC")
    return pd.DataFrame(
        {
            "reading_id": [f"p{i}" for i in range(n)],
            "device_id": "VAP1",
            "gas_station_id": "G1",
            "cn": "2051",
            "data_time": [start + pd.Timedelta(minutes=i) for i in range(n)],
            "tank_pressure_pa": [value_over] * n_over + [150.0] * (n - n_over),
            "tank_pressure_flag": flag,
            "zero_pressure_alarm": [1] * zero + [0] * (n - zero),
        }
    )


def test_tank_pressure_alarm_is_strictly_more_than_a_quarter_over():
    over = tank_pressure_days(pressure_minutes(800, 201)).iloc[0]
    assert over["n_over"] == 201 and over["status"] == "alarm"
    # exactly 25 %: not more than a quarter; 150 Pa itself is not above the level
    quarter = tank_pressure_days(pressure_minutes(800, 200)).iloc[0]
    assert quarter["share_over"] == pytest.approx(0.25) and quarter["status"] == "normal"


def test_tank_pressure_insufficient_faulty_and_zero_minutes():
    assert tank_pressure_days(pressure_minutes(719, 0)).iloc[0]["status"] == "insufficient"
    faulty = pd.concat(
        [
            pressure_minutes(720, 0),
            pressure_minutes(100, 100, flag="D").assign(reading_id=lambda f: "d" + f["reading_id"]),
        ]
    )
    # the D minutes share timestamps with N ones; duplicates by time count once and D never counts
    day = tank_pressure_days(faulty).iloc[0]
    assert day["n_minutes"] == 720 and day["n_over"] == 0
    zero = tank_pressure_days(pressure_minutes(800, 0, zero=201)).iloc[0]
    assert zero["status"] == "zero_pressure"


def test_station_efficiency_estimate_and_statuses():
    rows = pd.concat(
        [
            # G1: 30 L in range, 10 L out → 30 / 40 = 0.75 → fail
            refuellings("G1", "N1", "2017-11-03 08:00", [1.1, 1.3], volume=[30.0, 10.0]),
            # G2: 85 L in, 15 L out → exactly 0.85 → pass (in November); nothing in December
            refuellings("G2", "N1", "2017-11-05 08:00", [1.0, 0.7], volume=[85.0, 15.0]),
        ]
    )
    out = station_efficiency(rows, GAS_STATIONS, ["2017-11", "2017-12"]).set_index(
        ["gas_station_id", "month"]
    )
    g1 = out.loc[("G1", "2017-11")]
    assert g1["efficiency_estimate"] == pytest.approx(0.75) and g1["status"] == "fail"
    # vapor 33 + 13 = 46 L over 40 L fuel × 1.0 → 1.15, capped at 1
    assert g1["vapor_ratio_estimate"] == pytest.approx(1.0)
    g2 = out.loc[("G2", "2017-11")]
    assert g2["efficiency_estimate"] == pytest.approx(0.85) and g2["status"] == "pass"
    assert g2["vapor_ratio_estimate"] == pytest.approx((85.0 + 10.5) / 100.0)
    # a month with no refuellings is insufficient, never pass
    assert out.loc[("G2", "2017-12"), "status"] == "insufficient"
    assert out.loc[("G3", "2017-11"), "status"] == "no_monitor"


def test_station_efficiency_with_no_refuellings_at_all():
    empty = refuellings("G1", "N1", "2017-11-01 08:00", []).iloc[0:0]
    out = station_efficiency(empty, GAS_STATIONS, ["2017-11"])
    assert set(out["status"]) == {"insufficient", "no_monitor"}


def test_stations_over_5000_t_without_monitor():
    missing = stations_missing_monitor(GAS_STATIONS)
    # G2 sells exactly 5000 t (not "over"), G3 5000.1 t without a monitor
    assert list(missing["gas_station_id"]) == ["G3"]


def test_rows_validation_marked_invalid_are_left_out():
    rows = refuellings("G1", "N1", "2017-11-01 08:00", [1.1] * 10 + [0.5] * 3)
    rows["valid"] = [True] * 10 + [False] * 3
    day = nozzle_days(rows).iloc[0]
    assert day["n_refuellings"] == 10 and day["share_in_range"] == 1.0
    month = station_efficiency(rows, GAS_STATIONS, ["2017-11"]).set_index("gas_station_id")
    assert month.loc["G1", "efficiency_estimate"] == 1.0
