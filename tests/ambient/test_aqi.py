"""IAQI / AQI (HJ 633-2012) at every breakpoint of every table, between them, and at the edges.

The breakpoint table below is transcribed from HJ 633-2012 table 1 (DOMAIN.md section 2) and is
the test's own reference: the shipped data must equal it, and expected IAQIs are computed from the
standard's formula in exact rational arithmetic, independently of the code under test.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from enforcement.aqi import compute_aqi, iaqi
from schemas.ambient import aqi_breakpoints, aqi_categories, aqi_rules

IAQI = [0, 50, 100, 150, 200, 300, 400, 500]
HJ633_2012 = {
    "so2_24h": ["0", "50", "150", "475", "800", "1600", "2100", "2620"],
    "so2_1h": ["0", "150", "500", "650", "800"],
    "no2_24h": ["0", "40", "80", "180", "280", "565", "750", "940"],
    "no2_1h": ["0", "100", "200", "700", "1200", "2340", "3090", "3840"],
    "pm10_24h": ["0", "50", "150", "250", "350", "420", "500", "600"],
    "co_24h": ["0", "2", "4", "14", "24", "36", "48", "60"],
    "co_1h": ["0", "5", "10", "35", "60", "90", "120", "150"],
    "o3_1h": ["0", "160", "200", "300", "400", "800", "1000", "1200"],
    "o3_8h": ["0", "100", "160", "215", "265", "800"],
    "pm25_24h": ["0", "35", "75", "115", "150", "250", "350", "500"],
}
#: (report kind, input column) -> table, as HJ 633 assigns them
ASSIGNMENT = {
    ("hourly", "so2"): "so2_1h",
    ("hourly", "no2"): "no2_1h",
    ("hourly", "co"): "co_1h",
    ("hourly", "o3_1h"): "o3_1h",
    ("hourly", "o3_8h"): "o3_8h",
    ("hourly", "pm10"): "pm10_24h",
    ("hourly", "pm25"): "pm25_24h",
    ("daily", "so2"): "so2_24h",
    ("daily", "no2"): "no2_24h",
    ("daily", "co"): "co_24h",
    ("daily", "o3_1h"): "o3_1h",
    ("daily", "o3_8h"): "o3_8h",
    ("daily", "pm10"): "pm10_24h",
    ("daily", "pm25"): "pm25_24h",
}


def exact_iaqi(table: str, c: Fraction) -> Fraction:
    """The HJ 633 formula in exact arithmetic (reference implementation for the tests)."""
    bps = [Fraction(b) for b in HJ633_2012[table]]
    for i in range(len(bps) - 1):
        if bps[i] <= c <= bps[i + 1]:
            slope = Fraction(IAQI[i + 1] - IAQI[i]) / (bps[i + 1] - bps[i])
            return slope * (c - bps[i]) + IAQI[i]
    raise AssertionError("above top")


def ceil_int(x: Fraction) -> int:
    return math.ceil(x)


def points(table: str) -> list[tuple[Fraction, int]]:
    """Every breakpoint, every midpoint, and a step just below / above each inner breakpoint."""
    bps = [Fraction(b) for b in HJ633_2012[table]]
    step = Fraction(1, 100) if table.startswith("co") else Fraction(1, 10)
    out: list[tuple[Fraction, int]] = []
    for i, bp in enumerate(bps):
        out.append((bp, IAQI[i]))  # exact at the breakpoint
        if i + 1 < len(bps):
            # midpoint: linear, so exactly halfway between the two IAQIs
            out.append(((bp + bps[i + 1]) / 2, (IAQI[i] + IAQI[i + 1]) // 2))
        if i > 0:
            out.append((bp - step, ceil_int(exact_iaqi(table, bp - step))))
        if 0 < i < len(bps) - 1:
            out.append((bp + step, ceil_int(exact_iaqi(table, bp + step))))
    return out


def test_shipped_breakpoints_equal_the_standard():
    shipped = aqi_breakpoints("2012")
    assert set(shipped) == set(HJ633_2012)
    for table, concentrations in HJ633_2012.items():
        assert shipped[table].concentrations == tuple(float(c) for c in concentrations), table
        assert shipped[table].iaqis == tuple(float(i) for i in IAQI[: len(concentrations)])
    # the widely copied defect: 1-hour SO2 values used for the 24-hour table
    assert shipped["so2_24h"].concentrations[1:3] == (50.0, 150.0)


@pytest.mark.parametrize("table", sorted(HJ633_2012))
def test_iaqi_every_breakpoint_midpoint_and_neighbours(table):
    for c, expected in points(table):
        assert iaqi(table, float(c)) == expected, (table, float(c))


@pytest.mark.parametrize(("kind", "column"), sorted(ASSIGNMENT))
def test_compute_aqi_uses_the_right_table_per_kind(kind, column):
    table = ASSIGNMENT[(kind, column)]
    cases = points(table)
    frame = pd.DataFrame({column: [float(c) for c, _ in cases]})
    result = compute_aqi(frame, kind=kind)
    assert result[f"iaqi_{column}"].tolist() == [e for _, e in cases]
    assert result["aqi"].tolist() == [e for _, e in cases]


def test_midpoints_by_hand():
    # PM2.5 (35 + 75) / 2 = 55 -> 75; SO2 1h (150 + 500) / 2 = 325 -> 75; CO 24h 19 -> 175
    assert iaqi("pm25_24h", 55) == 75
    assert iaqi("so2_1h", 325) == 75
    assert iaqi("co_24h", 19) == 175
    assert iaqi("o3_8h", 532.5) == 250
    assert iaqi("no2_1h", 3465) == 450


def test_no_gap_between_50_and_51():
    # 35.1 lies between the 35 and 75 breakpoints: 50 + 50/40 × 0.1 = 50.125 -> 51 rounded up
    assert iaqi("pm25_24h", 35.1) == 51
    assert iaqi("pm25_24h", 35.1, rounding="none") == pytest.approx(50.125)
    assert iaqi("pm25_24h", 35.0) == 50
    assert iaqi("pm25_24h", 35.01) == 51
    result = compute_aqi(pd.DataFrame({"pm25": [35.0, 35.1]}), kind="daily")
    assert result["category"].tolist() == ["excellent", "good"]


def test_rounding_modes():
    # PM2.5 36: 50 + 50/40 = 51.25; PM2.5 37: 52.5
    assert iaqi("pm25_24h", 36) == 52
    assert iaqi("pm25_24h", 36, rounding="half_up") == 51
    assert iaqi("pm25_24h", 37, rounding="half_up") == 53
    assert iaqi("pm25_24h", 36, rounding="none") == pytest.approx(51.25)
    # float noise must not push an exact integer up: CO 3.2 is 50 + 25 × 1.2 = 80 exactly, but
    # (3.2 - 2) × 25 is 30.000000000000004 in floating point
    assert iaqi("co_24h", 3.2) == 80
    with pytest.raises(ValueError, match="rounding"):
        iaqi("pm25_24h", 36, rounding="floor")


def test_top_of_scale_is_500():
    for table in (
        "so2_24h",
        "no2_24h",
        "no2_1h",
        "pm10_24h",
        "co_24h",
        "co_1h",
        "o3_1h",
        "pm25_24h",
    ):
        top = float(HJ633_2012[table][-1])
        assert iaqi(table, top) == 500
        assert iaqi(table, top * 1.5) == 500
    result = compute_aqi(pd.DataFrame({"pm25": [999.0]}), kind="daily")
    assert result["aqi"].iloc[0] == 500
    assert result["category"].iloc[0] == "severely polluted"


def test_so2_1h_above_800_reports_the_24h_index():
    assert iaqi("so2_1h", 800) == 200
    assert iaqi("so2_1h", 800.1) is None
    frame = pd.DataFrame({"so2": [800.0, 800.1, 900.0], "so2_24h": [None, None, 120.0]})
    result = compute_aqi(frame, kind="hourly")
    # 800 -> 200 on the 1-hour table; 800.1 without a 24-hour mean -> its value on the 24-hour
    # table: 200 + 100/800 × 0.1 = 200.0125 -> 201; with the 24-hour mean 120: 50 + 50/100 × 70
    assert result["iaqi_so2"].tolist() == [200, 201, 85]
    # the daily report always uses the 24-hour table: 900 -> 200 + 100/800 × 100 = 212.5 -> 213
    assert compute_aqi(pd.DataFrame({"so2": [900.0]}), kind="daily")["aqi"].iloc[0] == 213


@pytest.mark.parametrize("kind", ["hourly", "daily"])
def test_o3_8h_above_800_reports_the_1h_index(kind):
    assert iaqi("o3_8h", 800) == 300
    assert iaqi("o3_8h", 801) is None
    frame = pd.DataFrame({"o3_8h": [800.0, 801.0, 900.0], "o3_1h": [None, None, 350.0]})
    result = compute_aqi(frame, kind=kind)
    # 801 with no 1-hour value: on the 1-hour table 300 + 100/200 × 1 = 300.5 -> 301;
    # 900 with O3 1-hour 350: the 1-hour IAQI 150 + 50/100 × 50 = 175
    assert result["iaqi_o3_8h"].tolist() == [300, 301, 175]
    assert result["iaqi_o3_1h"].tolist()[2] == 175


def test_primary_only_above_50_and_ties():
    frame = pd.DataFrame(
        {
            "pm25": [35.0, 35.1, 75.0, 10.0],
            "pm10": [50.0, 10.0, 150.0, 10.0],
            "no2": [10.0, 10.0, 10.0, 80.1],
        }
    )
    result = compute_aqi(frame, kind="daily")
    assert result["aqi"].tolist() == [50, 51, 100, 101]
    assert result["primary_pollutants"].tolist() == [(), ("PM2.5",), ("PM10", "PM2.5"), ("NO2",)]
    # exceeding: IAQI above 100 only (100 itself is within the standard)
    assert result["exceeding_pollutants"].tolist() == [(), (), (), ("NO2",)]


def test_absent_and_empty_columns():
    frame = pd.DataFrame({"pm25": [None, 40.0, ""], "station": ["a", "b", "c"]})
    result = compute_aqi(frame, kind="daily")
    assert result["station"].tolist() == ["a", "b", "c"]
    assert pd.isna(result["aqi"].iloc[0]) and pd.isna(result["aqi"].iloc[2])
    assert result["category"].iloc[0] is None or pd.isna(result["category"].iloc[0])
    assert result["aqi"].iloc[1] == 57  # 50 + 50/40 × 5 = 56.25 -> 57
    assert result["iaqi_so2"].isna().all() and result["iaqi_o3_8h"].isna().all()
    empty = compute_aqi(pd.DataFrame({"other": [1, 2]}), kind="hourly")
    assert empty["aqi"].isna().all()
    assert empty["primary_pollutants"].tolist() == [(), ()]


def test_bad_values_name_row_and_column():
    with pytest.raises(ValueError, match=r"row 1, column 'pm10'.*'x'"):
        compute_aqi(pd.DataFrame({"pm10": ["10", "x"]}), kind="daily")
    with pytest.raises(ValueError, match=r"row 0, column 'co': negative"):
        compute_aqi(pd.DataFrame({"co": [-0.1]}), kind="daily")
    with pytest.raises(ValueError, match="negative"):
        iaqi("pm25_24h", -1)
    with pytest.raises(ValueError, match="kind"):
        compute_aqi(pd.DataFrame({"pm25": [1.0]}), kind="weekly")
    with pytest.raises(KeyError, match="edition"):
        compute_aqi(pd.DataFrame({"pm25": [1.0]}), kind="daily", edition="1999")
    assert iaqi("pm25_24h", None) is None
    assert iaqi("pm25_24h", float("nan")) is None


def test_categories_at_boundaries():
    # AQI via PM2.5 on the daily table (exact breakpoints and one step above)
    values = [0.0, 35.0, 35.1, 75.0, 75.1, 115.0, 115.1, 150.0, 150.1, 250.0, 250.1, 500.0]
    result = compute_aqi(pd.DataFrame({"pm25": values}), kind="daily")
    assert result["aqi"].tolist() == [0, 50, 51, 100, 101, 150, 151, 200, 201, 300, 301, 500]
    assert result["category_zh"].tolist() == [
        "优", "优", "良", "良", "轻度污染", "轻度污染", "中度污染", "中度污染",
        "重度污染", "重度污染", "严重污染", "严重污染",
    ]  # fmt: skip
    assert result["color"].iloc[0] == "#00E400" and result["color"].iloc[-1] == "#7E0023"


def test_categories_are_continuous():
    cats = aqi_categories("2012")
    assert cats[0].aqi_min == 0 and cats[-1].aqi_max == 500
    assert [c.aqi_max for c in cats] == [50, 100, 150, 200, 300, 500]


def test_vectorised_equals_scalar_on_random_values():
    rng = np.random.default_rng(7)
    values = np.round(rng.uniform(0, 700, 500), 1)
    result = compute_aqi(pd.DataFrame({"pm25": values}), kind="daily")
    assert result["iaqi_pm25"].tolist() == [iaqi("pm25_24h", v) for v in values]
    assert aqi_rules("2012").rounding == "ceil"
