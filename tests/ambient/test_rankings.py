"""Subdistrict rankings (weekly PM2.5, upload rate, quarterly improvement), campaign targets and
dustfall, on small hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enforcement.ambient import (
    campaign_progress,
    dustfall_by_area,
    dustfall_monthly,
    dustfall_normalise,
    quarter_means,
    quarterly_improvement,
    station_upload_rates,
    upload_rate_ranking,
    weekly_pm25_ranking,
)
from schemas.reading import BEIJING

SUBDISTRICTS = [f"S{i:02d}" for i in range(1, 18)]


def week_of(values: dict[str, list[float]], monday="2017-11-27") -> pd.DataFrame:
    """Daily PM2.5 of a Monday-Sunday week per subdistrict."""
    days = pd.date_range(monday, periods=7, freq="D").strftime("%Y-%m-%d")
    rows = [
        {"subdistrict_id": s, "day": d, "pm25": v}
        for s, vals in values.items()
        for d, v in zip(days, vals, strict=True)
    ]
    return pd.DataFrame(rows)


def test_weekly_ranking_bottom_two_and_ties():
    # S01..S17 weekly means 40, 41, …; S01 and S02 tie for the best; S17 is worst (80)
    values = {s: [40.0 + i] * 7 for i, s in enumerate(SUBDISTRICTS)}
    values["S02"] = [40.0] * 7
    values["S17"] = [80.0] * 7
    ranking = weekly_pm25_ranking(week_of(values)).set_index("subdistrict_id")
    assert ranking.loc["S01", "rank"] == 1 and ranking.loc["S02", "rank"] == 1
    assert ranking.loc["S03", "rank"] == 3  # competition ranking after a tie
    assert ranking.loc["S17", "rank"] == 17
    assert sorted(ranking.index[ranking["bottom"]]) == ["S16", "S17"]
    assert (ranking["week_start"] == "2017-11-27").all() and (
        ranking["week_end"] == "2017-12-03"
    ).all()


def test_weekly_ranking_tie_at_the_boundary_marks_every_tied_area():
    values = {s: [40.0] * 7 for s in SUBDISTRICTS}
    values["S17"] = [90.0] * 7
    values["S05"] = [70.0] * 7
    values["S09"] = [70.0] * 7  # tied for second worst with S05
    ranking = weekly_pm25_ranking(week_of(values)).set_index("subdistrict_id")
    assert sorted(ranking.index[ranking["bottom"]]) == ["S05", "S09", "S17"]
    # 14 areas share rank 1; the tied pair is 15th; S17 is 17th (competition ranking)
    assert ranking.loc["S05", "rank"] == 15 and ranking.loc["S09", "rank"] == 15
    assert ranking.loc["S17", "rank"] == 17


def test_weekly_mean_uses_valid_days_and_weeks_run_monday_to_sunday():
    values = {s: [50.0] * 7 for s in SUBDISTRICTS}
    values["S01"] = [10.0, np.nan, np.nan, 10.0, 10.0, 10.0, 40.0]  # mean of 5 valid days = 16
    daily = week_of(values)
    # a Monday of the next week must start a new week
    daily = pd.concat(
        [daily, pd.DataFrame([{"subdistrict_id": "S01", "day": "2017-12-04", "pm25": 99.0}])]
    )
    ranking = weekly_pm25_ranking(daily, areas=SUBDISTRICTS + ["S18"])
    first = ranking[ranking["week_start"] == "2017-11-27"].set_index("subdistrict_id")
    assert first.loc["S01", "pm25"] == pytest.approx(16.0) and first.loc["S01", "n_days"] == 5
    assert first.loc["S01", "rank"] == 1
    # an area without data is listed, never ranked, never "best"
    assert bool(first.loc["S18", "no_data"]) and pd.isna(first.loc["S18", "rank"])
    second = ranking[ranking["week_start"] == "2017-12-04"].set_index("subdistrict_id")
    assert second.loc["S01", "pm25"] == 99.0 and second.loc["S01", "rank"] == 1
    assert second["no_data"].sum() == 17  # S02..S18 have no data that week


def test_upload_rate_ranking_pools_stations_and_marks_bottom():
    rates = pd.DataFrame(
        {
            "station_id": ["a1", "a2", "b1", "c1", "d1", "e1"],
            "subdistrict_id": ["A", "A", "B", "C", "D", "E"],
            "due": [100, 100, 100, 100, 100, 0],
            "received": [100, 80, 90, 95, 120, 0],  # d1 sent duplicates: capped at due
            "rate": [1.0, 0.8, 0.9, 0.95, 1.2, np.nan],
        }
    )
    ranking = upload_rate_ranking(rates).set_index("subdistrict_id")
    assert ranking.loc["A", "rate"] == pytest.approx(0.9)  # 180 / 200
    assert ranking.loc["A", "stations_below"] == 1  # a2 at 0.8
    assert ranking.loc["D", "rate"] == 1.0 and ranking.loc["D", "rank"] == 1
    assert bool(ranking.loc["A", "meets"]) and bool(ranking.loc["B", "meets"])  # 0.9 meets 90 %
    assert ranking.loc["A", "rank"] == ranking.loc["B", "rank"] == 3  # tie at 0.9
    assert sorted(ranking.index[ranking["bottom"]]) == ["A", "B"]
    assert bool(ranking.loc["E", "no_data"]) and not bool(ranking.loc["E", "meets"])


def test_station_upload_rates_from_readings():
    start = pd.Timestamp("2017-12-01 00:00", tz=BEIJING)
    end = start + pd.Timedelta(hours=1)
    minutes = pd.date_range(start, periods=60, freq="min")
    got = list(minutes[:54]) + list(minutes[:10])  # 54 distinct minutes, 10 sent twice
    late = list(minutes[30:60])
    readings = pd.DataFrame(
        {
            "device_id": ["D1"] * len(got) + ["D2"] * len(late) + ["D1"],
            "data_time": got + late + [end],  # a reading at `end` is outside [start, end)
        }
    )
    readings["data_time"] = pd.to_datetime(readings["data_time"]).dt.tz_convert("UTC")
    stations = pd.DataFrame(
        {
            "station_id": ["s1", "s2", "s3"],
            "device_id": ["D1", "D2", "D3"],
            "subdistrict_id": ["A", "A", "B"],
            "install_date": ["2017-01-01", "", "2017-12-02"],
        }
    )
    out = station_upload_rates(readings, stations, start, end).set_index("station_id")
    assert (out.loc["s1", "due"], out.loc["s1", "received"]) == (60, 54)
    assert out.loc["s1", "rate"] == pytest.approx(0.9)
    assert out.loc["s2", "rate"] == pytest.approx(0.5)
    assert out.loc["s3", "due"] == 0 and np.isnan(out.loc["s3", "rate"])  # not installed yet
    assert upload_rate_ranking(out).set_index("subdistrict_id").loc["A", "rate"] == pytest.approx(
        84 / 120
    )


def test_quarterly_improvement_and_accountability():
    last = pd.DataFrame(
        {"subdistrict_id": ["A", "B", "C", "D"], "pm25": [100.0, 100.0, 80.0, 50.0]}
    )
    now = pd.DataFrame({"subdistrict_id": ["A", "B", "C", "D"], "pm25": [70.0, 90.0, 72.0, 40.0]})
    # improvements: A 30 %, B 10 %, C 10 %, D 20 %
    missed = quarterly_improvement(now, last, district_current=85.0, district_last_year=100.0)
    table = missed.set_index("subdistrict_id")
    assert table["improvement"].round(9).to_dict() == {"A": 0.3, "B": 0.1, "C": 0.1, "D": 0.2}
    assert table.loc["A", "rank"] == 1 and table.loc["B", "rank"] == 3 == table.loc["C", "rank"]
    assert sorted(table.index[table["bottom"]]) == ["B", "C"]
    assert not bool(table["district_met"].iloc[0])  # 15 % < 20 %
    assert sorted(table.index[table["accountable"]]) == ["B", "C"]
    met = quarterly_improvement(now, last, district_current=80.0, district_last_year=100.0)
    assert bool(met["district_met"].iloc[0]) and not met["accountable"].any()  # exactly 20 %


def test_quarter_means_from_daily():
    daily = pd.DataFrame(
        {
            "subdistrict_id": ["A"] * 4,
            "day": ["2017-12-30", "2017-12-31", "2018-01-01", "2018-01-02"],
            "pm25": [100.0, np.nan, 40.0, 60.0],
        }
    )
    q = quarter_means(daily).set_index("quarter")
    assert q.loc["2017Q4", "pm25"] == 100.0 and q.loc["2017Q4", "n_days"] == 1
    assert q.loc["2018Q1", "pm25"] == 50.0


def season(year: int, pm25_by_month: dict[int, float], heavy_by_month: dict[int, int], valid=None):
    """Daily district values for the campaign months of the season starting in ``year``."""
    rows = []
    for month, pm in pm25_by_month.items():
        y = year if month >= 10 else year + 1
        days = pd.date_range(
            f"{y}-{month:02d}-01", periods=pd.Period(f"{y}-{month:02d}").days_in_month
        )
        for i, day in enumerate(days):
            ok = valid is None or i < valid.get(month, len(days))
            heavy = i < heavy_by_month.get(month, 0)
            rows.append(
                {
                    "day": day.strftime("%Y-%m-%d"),
                    "pm25": pm if ok else np.nan,
                    "aqi": (250 if heavy else 120) if ok else np.nan,
                }
            )
    return pd.DataFrame(rows)


def test_campaign_progress_month_by_month():
    last = season(2016, {10: 80.0, 11: 100.0}, {10: 3, 11: 6})
    # November has only 25 valid days this year: too few for a monthly mean (27 needed)
    now = season(2017, {10: 60.0, 11: 90.0}, {10: 2, 11: 6}, valid={11: 25})
    out = campaign_progress(now, last).set_index("month")
    assert list(out.index) == ["2017-10", "2017-11"]
    assert out.loc["2017-10", "pm25"] == 60.0 and out.loc["2017-10", "pm25_last_year"] == 80.0
    assert out.loc["2017-10", "pm25_reduction"] == pytest.approx(0.25)
    assert (out.loc["2017-10", "heavy_days"], out.loc["2017-10", "heavy_days_last_year"]) == (2, 3)
    assert bool(out.loc["2017-10", "pm25_goal_met_to_date"])
    assert bool(out.loc["2017-10", "heavy_goal_met_to_date"])  # 2 <= 3 × 0.85 = 2.55
    assert np.isnan(out.loc["2017-11", "pm25"]) and out.loc["2017-11", "n_days"] == 25
    # season to date: (31 × 60 + 25 × 90) / 56 against (31 × 80 + 30 × 100) / 61
    to_date = (31 * 60 + 25 * 90) / 56
    to_date_last = (31 * 80 + 30 * 100) / 61
    assert out.loc["2017-11", "pm25_to_date"] == pytest.approx(to_date)
    assert out.loc["2017-11", "pm25_reduction_to_date"] == pytest.approx(1 - to_date / to_date_last)
    assert not bool(out.loc["2017-11", "pm25_goal_met_to_date"])  # about 18.4 % < 20 %
    # heavy days to date 8 against 9: 8 > 9 × 0.85 = 7.65, goal missed
    assert out.loc["2017-11", "heavy_days_to_date"] == 8
    assert not bool(out.loc["2017-11", "heavy_goal_met_to_date"])


def test_campaign_goal_exactly_met_and_months_outside_ignored():
    last = season(2016, {12: 50.0}, {12: 0})
    now = season(2017, {12: 40.0}, {12: 0})
    summer = pd.DataFrame({"day": ["2017-07-01"], "pm25": [5.0], "aqi": [10.0]})
    out = campaign_progress(pd.concat([now, summer]), last)
    assert out["month"].tolist() == ["2017-12"]
    assert bool(out["pm25_goal_met_to_date"].iloc[0])  # exactly 20 % down
    assert bool(out["heavy_goal_met_to_date"].iloc[0])  # 0 against 0


def test_dustfall_normalised_to_30_days_and_judged_below_9():
    records = pd.DataFrame(
        {
            "site_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "subdistrict_id": ["A", "A", "B", "B", "B", "B"],
            "start_date": [
                "2017-11-01",
                "2017-11-01",
                "2017-10-30",
                "2017-11-01",
                "2017-11-05",
                "bad",
            ],
            "end_date": [
                "2017-12-01",
                "2017-11-29",
                "2017-11-30",
                "2017-12-01",
                "2017-11-05",
                "2017-12-01",
            ],
            "dustfall_t_km2": [9.0, 8.0, 10.0, -1.0, 3.0, 5.0],
        }
    )
    norm = dustfall_normalise(records).set_index("site_id")
    # p1: 30 days, 9.0 stays 9.0; p2: 28 days, 8 × 30 / 28; p3: 31 days, 10 × 30 / 31
    assert norm.loc["p1", "value_30d"] == pytest.approx(9.0)
    assert norm.loc["p2", "value_30d"] == pytest.approx(8 * 30 / 28)
    assert norm.loc["p3", "value_30d"] == pytest.approx(10 * 30 / 31)
    assert norm.loc["p3", "month"] == "2017-11"  # midpoint 2017-11-14 12:00
    assert norm.loc["p4", "invalid_reason"] == "negative dustfall"
    assert norm.loc["p5", "invalid_reason"] == "end_date not after start_date"
    assert norm.loc["p6", "invalid_reason"] == "start_date or end_date not a date"
    sites = dustfall_monthly(records).set_index("site_id")
    assert list(sites.index) == ["p1", "p2", "p3"]
    assert not bool(sites.loc["p1", "meets"])  # 9 is not under 9
    assert bool(sites.loc["p2", "meets"])
    areas = dustfall_by_area(dustfall_monthly(records)).set_index("subdistrict_id")
    assert areas.loc["A", "dustfall_30d"] == pytest.approx((9.0 + 8 * 30 / 28) / 2)
    assert bool(areas.loc["A", "meets"]) and not bool(areas.loc["B", "meets"])
    district = dustfall_by_area(dustfall_monthly(records), by=None)
    assert district["n_sites"].iloc[0] == 3


def test_dustfall_two_samples_of_a_site_are_pooled_by_time():
    records = pd.DataFrame(
        {
            "site_id": ["p1", "p1"],
            "subdistrict_id": ["A", "A"],
            "start_date": ["2017-11-01", "2017-11-06"],
            "end_date": ["2017-11-06", "2017-11-21"],
            "dustfall_t_km2": [2.0, 4.0],
        }
    )
    sites = dustfall_monthly(records)
    # 2 over 5 days (12 per 30 d) and 4 over 15 days (8 per 30 d): 6 over 20 days -> 9.0 per 30
    # days; the plain mean of the two normalised values (10) would overweight the short exposure
    assert sites["dustfall_30d"].iloc[0] == pytest.approx(9.0)
    assert sites["n_samples"].iloc[0] == 2 and sites["days"].iloc[0] == 20
