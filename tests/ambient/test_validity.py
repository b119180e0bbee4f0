"""Validity before indexing (GB 3095-2012 table 4, HJ 663-2013): minutes -> hours -> windows ->
days -> months, and station -> area aggregation (concentrations first)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enforcement.aqi import (
    area_aqi,
    average_stations,
    compute_aqi,
    daily_from_hourly,
    hourly_from_minutes,
    monthly_from_daily,
    o3_8h_sliding,
    pm_24h_sliding,
    realtime_input,
    rolling_daily_concentrations,
)
from schemas.reading import BEIJING

UTC = "UTC"


def minutes(device, start_utc, n, code="a34004", value=50.0, **extra):
    """``n`` consecutive minute rows from ``start_utc`` (UTC), one reading id per minute."""
    times = pd.date_range(start_utc, periods=n, freq="min", tz=UTC)
    rows = pd.DataFrame(
        {
            "reading_id": [f"{device}-{t:%H%M}" for t in times],
            "device_id": device,
            "stream": "ambient",
            "cn": "2051",
            "data_time": times,
            "code": code,
            "avg": value,
            "rtd": np.nan,
            "valid": True,
        }
    )
    for k, v in extra.items():
        rows[k] = v
    return rows


def test_hour_needs_45_minutes_44_is_missing_not_partial():
    # 07:00-07:44 UTC = 15:00-15:44 Beijing: hour labelled 16:00
    short = minutes("D1", "2017-12-01 07:00", 44, value=80.0)
    full = minutes("D2", "2017-12-01 07:00", 45, value=80.0)
    hourly = hourly_from_minutes(pd.concat([short, full]))
    by_device = hourly.set_index("device_id")
    assert by_device.loc["D1", "hour_end"] == pd.Timestamp("2017-12-01 16:00", tz=BEIJING)
    assert np.isnan(by_device.loc["D1", "pm25"])
    assert by_device.loc["D1", "n_min_pm25"] == 44
    assert by_device.loc["D2", "pm25"] == 80.0
    assert by_device.loc["D2", "n_min_pm25"] == 45


def test_hour_label_is_its_end_in_beijing_time():
    # 07:59 UTC = 15:59 Beijing belongs to 15:00-16:00; 08:00 UTC starts the hour ending 17:00
    rows = pd.concat(
        [
            minutes("D", "2017-12-01 07:00", 60, value=10.0),
            minutes("D", "2017-12-01 08:00", 60, value=20.0),
        ]
    )
    hourly = hourly_from_minutes(rows)
    assert [t.strftime("%H:%M") for t in hourly["hour_end"]] == ["16:00", "17:00"]
    assert hourly["pm25"].tolist() == [10.0, 20.0]
    assert str(hourly["hour_end"].dt.tz) == str(BEIJING)


def test_duplicates_invalid_rows_and_other_commands_do_not_count():
    base = minutes("D", "2017-12-01 07:00", 44, value=30.0)
    resent = base.iloc[:10]  # the same readings landed twice
    same_minute_other_id = base.iloc[:5].assign(reading_id=lambda f: f["reading_id"] + "x")
    invalid = minutes("D", "2017-12-01 07:44", 5, value=999.0, valid=False)
    hourly_cmd = minutes("D", "2017-12-01 07:50", 5, value=999.0, cn="2061")
    hourly = hourly_from_minutes(
        pd.concat([base, resent, same_minute_other_id, invalid, hourly_cmd])
    )
    assert hourly["n_min_pm25"].tolist() == [44]
    assert np.isnan(hourly["pm25"].iloc[0])
    # one more good minute makes the hour valid, and its mean ignores the 999 rows
    fixed = pd.concat([base, minutes("D", "2017-12-01 07:44", 1, value=75.0), invalid])
    hourly = hourly_from_minutes(fixed)
    assert hourly["pm25"].iloc[0] == pytest.approx((44 * 30.0 + 75.0) / 45)


def test_codes_map_to_items_and_rtd_is_the_fallback():
    rows = pd.concat(
        [
            minutes("D", "2017-12-01 07:00", 45, code="a21026", value=12.0),
            minutes("D", "2017-12-01 07:00", 45, code="a21005", value=np.nan).assign(rtd=1.5),
            minutes("D", "2017-12-01 07:00", 45, code="a05024", value=100.0),
            minutes(
                "D", "2017-12-01 07:00", 45, code="a34001", value=500.0
            ),  # TSP: not an AQI item
        ]
    )
    hourly = hourly_from_minutes(rows).iloc[0]
    assert (hourly["so2"], hourly["co"], hourly["o3_1h"]) == (12.0, 1.5, 100.0)
    assert np.isnan(hourly["pm25"]) and np.isnan(hourly["no2"])


def test_naive_timestamps_are_refused():
    rows = minutes("D", "2017-12-01 07:00", 45)
    rows["data_time"] = rows["data_time"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="tz-aware"):
        hourly_from_minutes(rows)


def hourly_frame(values: dict[str, list], start="2017-12-01 01:00", device="D"):
    n = len(next(iter(values.values())))
    frame = pd.DataFrame(values)
    frame.insert(0, "hour_end", pd.date_range(start, periods=n, freq="h", tz=BEIJING))
    frame.insert(0, "device_id", device)
    return frame


def test_daily_mean_needs_20_hours():
    # day 2017-12-01 = hours ending 01:00 ... 24:00 (= 12-02 00:00)
    pm = [40.0] * 24
    nineteen = pm.copy()
    for i in range(5):
        nineteen[i] = np.nan
    twenty = pm.copy()
    for i in range(4):
        twenty[i] = np.nan
    a = hourly_frame({"pm25": nineteen}, device="A")
    b = hourly_frame({"pm25": twenty}, device="B")
    daily = daily_from_hourly(pd.concat([a, b])).set_index("device_id")
    assert daily.loc["A", "day"] == "2017-12-01" and daily.loc["B", "day"] == "2017-12-01"
    assert np.isnan(daily.loc["A", "pm25"]) and daily.loc["A", "n_pm25"] == 19
    assert daily.loc["B", "pm25"] == 40.0 and daily.loc["B", "n_pm25"] == 20


def test_midnight_hour_belongs_to_the_previous_day():
    # 24 hours of 10 from 01:00, then the 00:00 hour of 12-02 is 100 (it closes 12-01)
    values = [10.0] * 23 + [100.0] + [10.0] * 24
    daily = daily_from_hourly(hourly_frame({"pm25": values}))
    assert daily["day"].tolist() == ["2017-12-01", "2017-12-02"]
    assert daily["pm25"].tolist() == [pytest.approx((23 * 10 + 100) / 24), 10.0]


def test_o3_8h_needs_6_of_8_hours():
    o3 = [100.0, np.nan, np.nan, 100.0, 100.0, 100.0, 100.0, 100.0]  # 6 valid
    five = [np.nan, np.nan, np.nan] + [100.0] * 5  # 5 valid
    a = o3_8h_sliding(hourly_frame({"o3_1h": o3}, device="A"))
    b = o3_8h_sliding(hourly_frame({"o3_1h": five}, device="B"))
    assert a["o3_8h"].iloc[-1] == 100.0
    assert np.isnan(b["o3_8h"].iloc[-1])
    assert a["o3_8h"].iloc[:-1].isna().all()  # fewer than 6 hours so far


def test_o3_daily_max_8h_needs_14_valid_means_ending_8_to_24():
    # O3 rises through the day; its 8-hour means ending 08:00..24:00 are 17 values
    o3 = [float(10 * h) for h in range(1, 25)]
    full = daily_from_hourly(hourly_frame({"o3_1h": o3}, device="F"))
    # the largest 8-hour mean ends at 24:00: hours 17..24 -> 10 × (17+…+24)/8 = 205
    assert full["o3_8h"].iloc[0] == pytest.approx(205.0)
    assert full["o3_1h"].iloc[0] == 240.0
    # hours 1..3 missing: the mean ending 08:00 has 5 valid hours (invalid), the one ending 09:00
    # has 6 (valid) -> 16 valid means, enough
    gaps = o3.copy()
    for i in range(3):
        gaps[i] = np.nan
    assert daily_from_hourly(hourly_frame({"o3_1h": gaps}))["o3_8h"].notna().all()
    # 13 vs 14 valid means: hours 19..24 missing leave the means ending 21:00 and later with
    # fewer than 6 hours -> ends 08..20 valid = 13
    thirteen = o3.copy()
    for h in range(19, 25):
        thirteen[h - 1] = np.nan
    fourteen = o3.copy()
    for h in range(20, 25):
        fourteen[h - 1] = np.nan  # hours 20..24 missing: means ending 08..21 valid = 14
    d13 = daily_from_hourly(hourly_frame({"o3_1h": thirteen}, device="T"))
    d14 = daily_from_hourly(hourly_frame({"o3_1h": fourteen}, device="U"))
    assert np.isnan(d13["o3_8h"].iloc[0])
    # max of the 14: the mean ending 21:00 over hours 14..19 (6 valid) = 10 × 99/6 = 165
    assert d14["o3_8h"].iloc[0] == pytest.approx(165.0)


def test_pm_24h_sliding_needs_20_hours_and_carries_so2():
    pm = [30.0] * 19 + [np.nan] * 4 + [30.0]  # 20 valid hours in the 24 ending at hour 24
    frame = hourly_frame({"pm25": pm, "pm10": [60.0] * 24, "so2": [900.0] * 24})
    sliding = pm_24h_sliding(frame)
    assert sliding["pm25"].iloc[-1] == 30.0
    assert np.isnan(sliding["pm25"].iloc[-2])  # 19 valid hours in the window ending at hour 23
    assert sliding["pm10"].iloc[-1] == 60.0 and sliding["so2_24h"].iloc[-1] == 900.0


def test_missing_hour_rows_count_as_missing():
    frame = hourly_frame({"pm25": [30.0] * 24})
    dropped = frame.drop(index=range(5, 10))  # five hour rows never arrived
    daily = daily_from_hourly(dropped)
    assert np.isnan(daily["pm25"].iloc[0]) and daily["n_pm25"].iloc[0] == 19


def test_realtime_input_feeds_the_hourly_report():
    frame = hourly_frame(
        {
            "pm25": [80.0] * 24,
            "pm10": [100.0] * 24,
            "so2": [10.0] * 24,
            "no2": [250.0] * 24,
            "co": [1.0] * 24,
            "o3_1h": [50.0] * 24,
        }
    )
    report = compute_aqi(realtime_input(frame), kind="hourly")
    last = report.iloc[-1]
    # PM2.5 24-h 80 -> 100 + 50/40 × 5 = 106.25 -> 107; NO2 1-h 250 -> 100 + 50/500 × 50 = 105
    assert last["iaqi_pm25"] == 107 and last["iaqi_no2"] == 105
    assert last["aqi"] == 107 and last["primary_pollutants"] == ("PM2.5",)
    assert pd.isna(report.iloc[0]["iaqi_pm25"])  # one hour is no 24-hour mean


def test_monthly_needs_27_days_february_25():
    def days(month_start, n_valid, total):
        d = pd.date_range(month_start, periods=total, freq="D").strftime("%Y-%m-%d")
        values = [50.0] * n_valid + [np.nan] * (total - n_valid)
        return pd.DataFrame({"device_id": "D", "day": d, "pm25": values})

    frame = pd.concat(
        [
            days("2017-12-01", 26, 31),
            days("2018-01-01", 27, 31),
            days("2018-02-01", 24, 28),
            days("2018-03-01", 31, 31),
        ]
    )
    monthly = monthly_from_daily(frame, items=["pm25"]).set_index("month")
    assert np.isnan(monthly.loc["2017-12", "pm25"]) and monthly.loc["2017-12", "n_days_pm25"] == 26
    assert monthly.loc["2018-01", "pm25"] == 50.0
    assert np.isnan(monthly.loc["2018-02", "pm25"])
    feb25 = monthly_from_daily(days("2018-02-01", 25, 28), items=["pm25"])
    assert feb25["pm25"].iloc[0] == 50.0


def test_area_values_average_concentrations_before_indexing():
    stations = pd.DataFrame({"device_id": ["S1", "S2", "S3"], "subdistrict_id": ["A", "A", "B"]})
    daily = pd.DataFrame(
        {
            "device_id": ["S1", "S2", "S3"],
            "day": ["2017-12-01"] * 3,
            "pm25": [35.0, 465.0, np.nan],
            "pm10": [20.0, 20.0, 30.0],
        }
    )
    result = area_aqi(daily, stations, kind="daily").set_index("subdistrict_id")
    # A: mean PM2.5 250 -> 300 (严重污染 begins above it). Averaging the IAQIs instead would give
    # (50 + 477) / 2 = 263.5 (465 -> 400 + 100/150 × 115 = 476.7 -> 477): a different number.
    assert result.loc["A", "pm25"] == 250.0
    assert result.loc["A", "aqi"] == 300
    assert result.loc["A", "category"] == "heavily polluted"
    # B has no valid PM2.5: not zero, missing; its AQI is PM10's 30 -> 30
    assert np.isnan(result.loc["B", "pm25"]) and result.loc["B", "aqi"] == 30
    assert result.loc["A", "n_stations"] == 2
    district = compute_aqi(average_stations(daily, stations, by=None, time_col="day"), "daily")
    assert district["pm25"].iloc[0] == 250.0 and district["pm10"].iloc[0] == pytest.approx(70 / 3)
    with pytest.raises(ValueError, match="S9"):
        average_stations(daily.assign(device_id=["S1", "S2", "S9"]), stations, time_col="day")


def test_rolling_window_crosses_midnight():
    # a 24-hour window ending at 12:00 spans two calendar days
    values = [20.0] * 12 + [200.0] * 24
    rolled = rolling_daily_concentrations(hourly_frame({"pm25": values}))
    at_noon = rolled[rolled["hour_end"] == pd.Timestamp("2017-12-02 12:00", tz=BEIJING)]
    assert at_noon["pm25"].iloc[0] == pytest.approx(200.0)
    at_morning = rolled[rolled["hour_end"] == pd.Timestamp("2017-12-02 00:00", tz=BEIJING)]
    assert at_morning["pm25"].iloc[0] == pytest.approx((12 * 20.0 + 12 * 200.0) / 24)


def test_stations_reporting_at_different_hours_get_only_their_own_rows():
    a = minutes("A", "2017-12-01 07:00", 60, value=10.0)
    b = minutes("B", "2017-12-01 09:00", 60, code="a21026", value=20.0)
    hourly = hourly_from_minutes(pd.concat([a, b]))
    assert list(zip(hourly["device_id"], hourly["hour_end"].dt.strftime("%H:%M"), strict=True)) == [
        ("A", "16:00"),
        ("B", "18:00"),
    ]
    assert hourly["n_min_so2"].tolist() == [0, 60] and hourly["n_min_pm25"].tolist() == [60, 0]
