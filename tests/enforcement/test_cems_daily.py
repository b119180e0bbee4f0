"""CEMS daily / monthly validity (HJ 75-2017) and the effective transmission rate."""

from __future__ import annotations

import pandas as pd
import pytest

from enforcement.cems import (
    daily_values,
    hourly_means,
    minute_records,
    month_min_valid_days,
    monthly_values,
    transmission_daily,
    transmission_monthly,
)
from tests.enforcement._helpers import STACKS, minute_rows


def hours(day: str, n_valid: int, n_invalid: int = 0, value: float = 100.0) -> pd.DataFrame:
    start = pd.Timestamp(day, tz="Asia/Shanghai").tz_convert("UTC")
    total = n_valid + n_invalid
    return pd.DataFrame(
        {
            "stack_id": "S1",
            "device_id": "DEV1",
            "pollutant": "a21026",
            "hour_start": [start + pd.Timedelta(hours=h) for h in range(total)],
            "day": day,
            "n_valid_minutes": [60] * n_valid + [10] * n_invalid,
            "mean_measured": value,
            "o2_mean": 9.0,
            "mean_corrected": [value] * n_valid + [999.0] * n_invalid,
            "valid": [True] * n_valid + [False] * n_invalid,
        }
    )


def test_day_with_20_valid_hours_is_valid_19_is_not():
    daily = daily_values(pd.concat([hours("2017-11-01", 20, 4), hours("2017-11-02", 19, 5)]))
    by_day = daily.set_index("day")
    assert (
        bool(by_day.loc["2017-11-01", "valid"]) and by_day.loc["2017-11-01", "n_valid_hours"] == 20
    )
    assert not by_day.loc["2017-11-02", "valid"]
    # invalid hours (999) never enter the mean
    assert by_day.loc["2017-11-01", "mean_corrected"] == pytest.approx(100.0)


def test_daily_mean_is_mean_of_valid_hours():
    frame = pd.concat([hours("2017-11-01", 12, value=100.0), hours("2017-11-01", 12, value=200.0)])
    daily = daily_values(frame)
    assert daily.iloc[0]["mean_corrected"] == pytest.approx(150.0)
    assert daily.iloc[0]["max_hourly_corrected"] == pytest.approx(200.0)


def test_month_validity_25_days_february_23():
    assert month_min_valid_days("2017-11") == 25
    assert month_min_valid_days("2018-02") == 23
    days_nov = [f"2017-11-{d:02d}" for d in range(1, 26)]
    days_feb = [f"2018-02-{d:02d}" for d in range(1, 24)]
    days_dec = [f"2017-12-{d:02d}" for d in range(1, 25)]  # 24 valid days: one short
    frames = [hours(d, 20) for d in days_nov + days_feb + days_dec]
    monthly = monthly_values(daily_values(pd.concat(frames, ignore_index=True))).set_index("month")
    assert bool(monthly.loc["2017-11", "valid"]) and monthly.loc["2017-11", "n_valid_days"] == 25
    assert bool(monthly.loc["2018-02", "valid"]) and monthly.loc["2018-02", "min_valid_days"] == 23
    assert not monthly.loc["2017-12", "valid"]


def test_invalid_day_does_not_count_towards_the_month():
    frames = [hours(f"2017-11-{d:02d}", 20) for d in range(1, 25)] + [hours("2017-11-25", 19)]
    monthly = monthly_values(daily_values(pd.concat(frames, ignore_index=True)))
    assert monthly.iloc[0]["n_valid_days"] == 24
    assert not monthly.iloc[0]["valid"]


# --- transmission -----------------------------------------------------------------------------


def test_minute_record_valid_only_when_pollutant_and_o2_count():
    rows = minute_rows(
        "2017-11-01 10:00", 4, flag=["N", "D", "N", "T"], o2=[12.0, 12.0, 21.0, 12.0]
    )
    records = minute_records(rows)
    assert list(records["valid"]) == [True, False, False, True]
    assert list(records["day"]) == ["2017-11-01"] * 4


def test_transmission_rate_exactly_90_percent_complies():
    # due 100 a day: 100 received, 90 valid → (100/100) × (90/100) = 0.90
    rows = minute_rows("2017-11-01 00:00", 100, flag=["N"] * 90 + ["M"] * 10)
    daily = transmission_daily(rows, ["DEV1"], ["2017-11-01"], due_per_day=100)
    row = daily.iloc[0]
    assert (row["received"], row["valid"], row["due"]) == (100, 90, 100)
    assert row["rate"] == pytest.approx(0.90)
    assert bool(row["complies"])


def test_transmission_rate_below_90_and_missing_records():
    # 95 received of 100 due, 85 of them valid → 0.95 × 85/95 = 0.85
    rows = minute_rows("2017-11-01 00:00", 95, flag=["N"] * 85 + ["D"] * 10)
    daily = transmission_daily(
        rows, ["DEV1", "DEV2"], ["2017-11-01", "2017-11-02"], due_per_day=100
    )
    table = daily.set_index(["device_id", "day"])
    assert table.loc[("DEV1", "2017-11-01"), "rate"] == pytest.approx(0.85)
    assert not table.loc[("DEV1", "2017-11-01"), "complies"]
    # a device or day with nothing received is 0, not missing
    assert table.loc[("DEV2", "2017-11-01"), "rate"] == 0.0
    assert table.loc[("DEV1", "2017-11-02"), "received"] == 0
    assert len(daily) == 4


def test_default_due_is_1440_a_day_and_full_day_is_100_percent():
    rows = minute_rows("2017-11-01 00:00", 1440)
    daily = transmission_daily(rows, ["DEV1"], ["2017-11-01"])
    assert daily.iloc[0]["due"] == 1440
    assert daily.iloc[0]["rate"] == pytest.approx(1.0)


def test_duplicates_do_not_lift_the_rate():
    rows = minute_rows("2017-11-01 00:00", 50)
    again = minute_rows("2017-11-01 00:00", 50, prefix="again")
    daily = transmission_daily(pd.concat([rows, again]), ["DEV1"], ["2017-11-01"], due_per_day=100)
    assert daily.iloc[0]["received"] == 50
    assert daily.iloc[0]["rate"] == pytest.approx(0.5)


def test_monthly_rate_sums_records_not_rates():
    day1 = minute_rows("2017-11-01 00:00", 100)
    day2 = minute_rows("2017-11-02 00:00", 50, flag=["N"] * 40 + ["C"] * 10)
    daily = transmission_daily(
        pd.concat([day1, day2]), ["DEV1"], ["2017-11-01", "2017-11-02"], due_per_day=100
    )
    monthly = transmission_monthly(daily).iloc[0]
    # (150/200) × (140/150) = 0.70
    assert (monthly["received"], monthly["valid"], monthly["due"]) == (150, 140, 200)
    assert monthly["rate"] == pytest.approx(0.70)
    assert not monthly["complies"]


def test_late_data_recomputes_the_same_hour():
    # partition-wise purity: the hour computed from all minutes equals the hour after late minutes arrive
    early = minute_rows("2017-11-01 10:00", 40)
    late = minute_rows("2017-11-01 10:40", 20, prefix="late")
    first = hourly_means(early, STACKS).iloc[0]
    again = hourly_means(pd.concat([early, late]), STACKS).iloc[0]
    assert not first["valid"] and again["valid"]
    assert again["n_valid_minutes"] == 60
