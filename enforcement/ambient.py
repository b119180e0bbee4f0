"""Ambient-air accountability: subdistrict rankings, upload rates, campaign targets and dustfall.

Plan references (seed/jinshui-2017-autumn-winter-plan.txt): clause 1 (micro-station upload rate
>= 90 %, subdistricts ranked), 保障(五) (weekly ranking of the 17 subdistricts), 问责 art. 7 (the two
worst on PM2.5 improvement in a quarter, when the district misses its target), the goal (Oct-Mar
PM2.5 mean down >= 20 %, heavy-pollution days down >= 15 %), clause 30 (dustfall under
9 t/(km²·30 d)). Numbers come from ``schemas/data`` (thresholds.toml, ambient_targets.toml,
ambient_validity.toml).

Ranks: 1 is the best; equal values share the better rank ("min" method), and the *bottom* marks
use the worst-first rank with the same rule, so a tie at the boundary marks every tied area rather
than choosing one arbitrarily. Areas without valid data are never ranked (``no_data``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from enforcement.aqi import monthly_from_daily
from schemas.ambient import DEFAULT_EDITION, target, validity
from schemas.reading import BEIJING
from schemas.rules import threshold

# Means are compared after rounding away float noise, so that equal data rank as a tie.
_TIE_DECIMALS = 6


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


def _ranks(values: pd.Series, higher_is_better: bool) -> tuple[pd.Series, pd.Series]:
    """(best-first rank, worst-first rank), ties sharing the better place, NaN unranked."""
    key = values.round(_TIE_DECIMALS)
    best = key.rank(method="min", ascending=not higher_is_better)
    worst = key.rank(method="min", ascending=higher_is_better)
    return best.astype("Int64"), worst.astype("Int64")


def _mark_bottom(out: pd.DataFrame, column: str, higher_is_better: bool, n: int) -> pd.DataFrame:
    out["rank"], worst = _ranks(out[column], higher_is_better)
    out["bottom"] = (worst <= n).fillna(False).astype(bool)
    out["no_data"] = out[column].isna()
    return out


def _bottom_count() -> int:
    return int(target("ranking.accountable_bottom"))


# --------------------------------------------------------------------------------------------
# Weekly PM2.5 ranking


def week_start(days: pd.Series) -> pd.Series:
    """The Monday (``ranking.week_first_day``) of the Beijing week holding each day."""
    dates = pd.to_datetime(days)
    first = int(target("ranking.week_first_day"))
    offset = (dates.dt.weekday - first) % 7
    return (dates - pd.to_timedelta(offset, unit="D")).dt.normalize()


def weekly_pm25_ranking(
    daily_df: pd.DataFrame,
    area: str = "subdistrict_id",
    areas: Iterable[str] | None = None,
    item: str = "pm25",
) -> pd.DataFrame:
    """Rank areas each week on the mean of their valid daily PM2.5 values (lower is better).

    ``daily_df``: ``<area>, day, pm25`` (area daily values, NaN = invalid day). ``areas`` lists
    every area that must appear (e.g. the 17 subdistricts), so one without data shows as
    ``no_data`` instead of vanishing. Columns: ``week_start, week_end, <area>, pm25, n_days, rank,
    bottom, no_data``; the two worst (``ranking.accountable_bottom``) are ``bottom``.
    """
    _require(daily_df, [area, "day", item], "weekly_pm25_ranking")
    frame = daily_df[[area, "day", item]].copy()
    frame[item] = pd.to_numeric(frame[item], errors="coerce")
    frame["week_start"] = week_start(frame["day"])
    weeks = sorted(frame["week_start"].dropna().unique())
    wanted = sorted(set(frame[area]) | set(areas or []))
    grid = pd.MultiIndex.from_product([weeks, wanted], names=["week_start", area])
    stats = frame.groupby(["week_start", area])[item].agg(["mean", "count"]).reindex(grid)
    stats = stats.reset_index().rename(columns={"mean": item, "count": "n_days"})
    stats["n_days"] = stats["n_days"].fillna(0).astype("int64")
    parts = [
        _mark_bottom(g.copy(), item, False, _bottom_count()) for _, g in stats.groupby("week_start")
    ]
    out = (
        pd.concat(parts, ignore_index=True)
        if parts
        else stats.assign(rank=[], bottom=[], no_data=[])
    )
    out["week_end"] = out["week_start"] + pd.Timedelta(days=6)
    for column in ("week_start", "week_end"):
        out[column] = pd.to_datetime(out[column]).dt.strftime("%Y-%m-%d")
    columns = ["week_start", "week_end", area, item, "n_days", "rank", "bottom", "no_data"]
    return (
        out[columns]
        .sort_values(["week_start", "rank", area], na_position="last")
        .reset_index(drop=True)
    )


# --------------------------------------------------------------------------------------------
# Upload rates


def station_upload_rates(
    readings: pd.DataFrame,
    stations: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    edition: str = DEFAULT_EDITION,
) -> pd.DataFrame:
    """Per-station upload rate in ``[start, end)`` (tz-aware): the ranking's input.

    ``readings``: ``device_id, data_time`` (tz-aware), one row per reading received (any code).
    A station is due one record per ``upload_interval_minutes`` from ``max(start, install_date)``
    (a station installed later is not due before it existed); received = distinct due slots that
    have at least one reading, so a duplicate or a burst never lifts the rate above 1.
    """
    _require(readings, ["device_id", "data_time"], "readings")
    _require(stations, ["station_id", "device_id", "subdistrict_id"], "stations")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be tz-aware")
    step = pd.Timedelta(minutes=int(validity("upload_interval_minutes", edition)))
    stamps = pd.to_datetime(readings["data_time"])
    if stamps.dt.tz is None:
        raise ValueError("readings.data_time must be tz-aware")
    slots = pd.DataFrame(
        {"device_id": readings["device_id"].to_numpy(), "t": stamps.dt.tz_convert(BEIJING)}
    )
    slots = slots[(slots["t"] >= start) & (slots["t"] < end)]
    slots["slot"] = start + ((slots["t"] - start) // step) * step
    rows = []
    for station in stations.itertuples(index=False):
        first = start
        install = getattr(station, "install_date", None)
        if install is not None and not pd.isna(install) and str(install).strip():
            installed = pd.Timestamp(str(install)).tz_localize(BEIJING)
            first = max(start, installed)
        due = max(0, int(np.ceil((end - first) / step))) if end > first else 0
        mine = slots[(slots["device_id"] == station.device_id) & (slots["t"] >= first)]
        received = int(mine["slot"].nunique())
        rows.append(
            {
                "station_id": station.station_id,
                "device_id": station.device_id,
                "subdistrict_id": station.subdistrict_id,
                "due": due,
                "received": received,
                "rate": received / due if due else np.nan,
            }
        )
    return pd.DataFrame(
        rows, columns=["station_id", "device_id", "subdistrict_id", "due", "received", "rate"]
    )


def upload_rate_ranking(
    rates_df: pd.DataFrame, area: str = "subdistrict_id", areas: Iterable[str] | None = None
) -> pd.DataFrame:
    """Rank areas on their pooled upload rate (received / due over their stations).

    The rate is recomputed from ``due`` and ``received`` (received capped at due), not taken from a
    supplied ``rate`` column. A station under ``ambient.upload_rate_min`` is counted in
    ``stations_below``; an area ``meets`` when its pooled rate reaches the minimum.
    """
    _require(rates_df, [area, "due", "received"], "upload_rate_ranking")
    minimum = threshold("ambient.upload_rate_min")
    frame = rates_df.copy()
    frame["due"] = pd.to_numeric(frame["due"], errors="coerce").fillna(0)
    frame["received"] = np.minimum(
        pd.to_numeric(frame["received"], errors="coerce").fillna(0), frame["due"]
    )
    station_rate = (frame["received"] / frame["due"]).where(frame["due"] > 0)
    frame["below"] = station_rate < minimum
    out = frame.groupby(area).agg(
        n_stations=("due", "size"),
        due=("due", "sum"),
        received=("received", "sum"),
        stations_below=("below", "sum"),
    )
    out = out.reindex(sorted(set(out.index) | set(areas or []))).rename_axis(area).reset_index()
    out["n_stations"] = out["n_stations"].fillna(0).astype("int64")
    out["stations_below"] = out["stations_below"].fillna(0).astype("int64")
    out["rate"] = (out["received"] / out["due"]).where(out["due"] > 0)
    out["meets"] = (out["rate"] >= minimum).fillna(False).astype(bool)
    out["rate_min"] = minimum
    out = _mark_bottom(out, "rate", True, _bottom_count())
    return out.sort_values(["rank", area], na_position="last").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Quarterly improvement and campaign targets


def quarter_means(
    daily_df: pd.DataFrame, area: str = "subdistrict_id", item: str = "pm25"
) -> pd.DataFrame:
    """Per area and calendar quarter (``2017Q4``): mean of valid daily values and their count."""
    _require(daily_df, [area, "day", item], "quarter_means")
    frame = daily_df.copy()
    frame["quarter"] = pd.to_datetime(frame["day"]).dt.to_period("Q").astype(str)
    frame[item] = pd.to_numeric(frame[item], errors="coerce")
    out = frame.groupby([area, "quarter"], as_index=False)[item].agg(["mean", "count"])
    return out.rename(columns={"mean": item, "count": "n_days"})


def _improvement(current: float | pd.Series, last: float | pd.Series):
    """Relative fall against a year before: (last − current) / last (positive = better)."""
    return (last - current) / last


def quarterly_improvement(
    current: pd.DataFrame,
    last_year: pd.DataFrame,
    area: str = "subdistrict_id",
    item: str = "pm25",
    district_current: float | None = None,
    district_last_year: float | None = None,
    district_target: float | None = None,
) -> pd.DataFrame:
    """Rank areas on PM2.5 improvement against the same quarter a year before (问责 art. 7).

    ``current`` and ``last_year``: ``<area>, pm25`` (quarter means). The two least improved are
    ``bottom``; when the district values are given, ``accountable`` = bottom and the district
    missed its target (default ``campaign.pm25_reduction_min``).
    """
    _require(current, [area, item], "current")
    _require(last_year, [area, item], "last_year")
    merged = current[[area, item]].merge(
        last_year[[area, item]].rename(columns={item: f"{item}_last_year"}), on=area, how="outer"
    )
    last = pd.to_numeric(merged[f"{item}_last_year"], errors="coerce")
    now = pd.to_numeric(merged[item], errors="coerce")
    merged["improvement"] = _improvement(now, last.where(last > 0))
    out = _mark_bottom(merged, "improvement", True, _bottom_count())
    if district_current is not None and district_last_year is not None:
        goal = target("campaign.pm25_reduction_min") if district_target is None else district_target
        achieved = _improvement(float(district_current), float(district_last_year))
        out["district_improvement"] = achieved
        out["district_target"] = goal
        met = bool(round(achieved, 9) >= goal)  # 50 -> 40 is exactly 20 %, despite float noise
        out["district_met"] = met
        out["accountable"] = out["bottom"] & (not met)
    return out.sort_values(["rank", area], na_position="last").reset_index(drop=True)


def _goal_met(current: pd.Series, last: pd.Series, reduction: float) -> pd.Series:
    """current <= last × (1 − reduction), float noise rounded away; unknown when last is."""
    allowed = (pd.to_numeric(last, errors="coerce") * (1 - reduction)).round(9)
    met = pd.to_numeric(current, errors="coerce").round(9) <= allowed
    return met.where(allowed.notna()).astype("boolean")


def _campaign_months(days: pd.Series) -> pd.Series:
    """True for days inside the campaign months (October to March)."""
    first = int(target("campaign.first_month"))
    last = int(target("campaign.last_month"))
    month = pd.to_datetime(days).dt.month
    if first <= last:
        return (month >= first) & (month <= last)
    return (month >= first) | (month <= last)


def campaign_progress(
    current_daily: pd.DataFrame,
    last_year_daily: pd.DataFrame,
    edition: str = DEFAULT_EDITION,
) -> pd.DataFrame:
    """Month by month through the campaign: PM2.5 mean and heavy-pollution days (daily AQI above
    200) against the same month a year before, and the season to date against the plan's goals.

    Inputs are district daily frames ``day, pm25, aqi``. A month's PM2.5 mean needs 27 valid days
    (February 25), else NaN; the season-to-date mean is the mean of all valid days so far. A goal
    is met when current <= last year × (1 − reduction), which also handles a year with 0 days.
    """
    for name, frame in (("current_daily", current_daily), ("last_year_daily", last_year_daily)):
        _require(frame, ["day", "pm25", "aqi"], name)
    heavy_above = float(target("campaign.heavy_day_aqi_above"))
    pm_goal = float(target("campaign.pm25_reduction_min"))
    heavy_goal = float(target("campaign.heavy_days_reduction_min"))

    def monthly(frame: pd.DataFrame) -> pd.DataFrame:
        f = frame[_campaign_months(frame["day"])].copy()
        f["pm25"] = pd.to_numeric(f["pm25"], errors="coerce")
        f["aqi"] = pd.to_numeric(f["aqi"], errors="coerce")
        f["month"] = pd.to_datetime(f["day"]).dt.strftime("%Y-%m")
        f["heavy"] = f["aqi"] > heavy_above
        means = monthly_from_daily(f, key=None, items=["pm25"], edition=edition)
        agg = f.groupby("month").agg(
            pm25_sum=("pm25", "sum"),
            heavy_days=("heavy", "sum"),
            n_aqi_days=("aqi", "count"),
        )
        return means.set_index("month").join(agg)

    cur = monthly(current_daily)
    prev = monthly(last_year_daily)
    prev.index = [
        (pd.Period(m, "M") + 12).strftime("%Y-%m") for m in prev.index
    ]  # align on the month a year later
    table = cur.join(prev, rsuffix="_last_year", how="left").sort_index()
    out = pd.DataFrame(index=table.index)
    out["pm25"] = table["pm25"]
    out["pm25_last_year"] = table["pm25_last_year"]
    out["pm25_reduction"] = _improvement(out["pm25"], out["pm25_last_year"])
    out["heavy_days"] = table["heavy_days"].astype("int64")
    out["heavy_days_last_year"] = table["heavy_days_last_year"].astype("Int64")
    out["n_days"] = table["n_days_pm25"].astype("int64")
    out["n_days_last_year"] = table["n_days_pm25_last_year"].astype("Int64")
    cum = table[["pm25_sum", "n_days_pm25", "heavy_days"]].cumsum()
    cum_prev = table[
        ["pm25_sum_last_year", "n_days_pm25_last_year", "heavy_days_last_year"]
    ].cumsum()
    out["pm25_to_date"] = cum["pm25_sum"] / cum["n_days_pm25"]
    out["pm25_to_date_last_year"] = (
        cum_prev["pm25_sum_last_year"] / cum_prev["n_days_pm25_last_year"]
    )
    out["pm25_reduction_to_date"] = _improvement(out["pm25_to_date"], out["pm25_to_date_last_year"])
    out["pm25_goal_met_to_date"] = _goal_met(
        out["pm25_to_date"], out["pm25_to_date_last_year"], pm_goal
    )
    out["heavy_days_to_date"] = cum["heavy_days"].astype("int64")
    out["heavy_days_to_date_last_year"] = cum_prev["heavy_days_last_year"]
    out["heavy_goal_met_to_date"] = _goal_met(
        out["heavy_days_to_date"], out["heavy_days_to_date_last_year"], heavy_goal
    )
    out["pm25_goal"] = pm_goal
    out["heavy_days_goal"] = heavy_goal
    return out.rename_axis("month").reset_index()


# --------------------------------------------------------------------------------------------
# Dustfall


def dustfall_normalise(records: pd.DataFrame) -> pd.DataFrame:
    """Check and normalise manual dustfall samples to t/(km²·30 d): value × 30 / days.

    ``records``: ``site_id, subdistrict_id, start_date, end_date, dustfall_t_km2`` (the jar's
    total over its exposure). Days = end_date − start_date (placement to collection). A sample
    is assigned to the month of its exposure's midpoint. Unusable rows stay, with ``valid``
    False and a reason (bad dates, non-positive duration, missing or negative value).
    """
    _require(
        records,
        ["site_id", "subdistrict_id", "start_date", "end_date", "dustfall_t_km2"],
        "dustfall records",
    )
    out = records.copy()
    start = pd.to_datetime(out["start_date"], errors="coerce")
    end = pd.to_datetime(out["end_date"], errors="coerce")
    value = pd.to_numeric(out["dustfall_t_km2"], errors="coerce")
    days = (end - start).dt.total_seconds() / 86400.0
    reason = pd.Series("", index=out.index, dtype=object)
    reason = reason.mask(value.isna(), "dustfall value missing or not a number")
    reason = reason.mask(value < 0, "negative dustfall")
    reason = reason.mask(days.notna() & (days <= 0), "end_date not after start_date")
    reason = reason.mask(start.isna() | end.isna(), "start_date or end_date not a date")
    out["days"] = days
    out["valid"] = reason == ""
    out["invalid_reason"] = reason
    out["value_30d"] = (value * 30.0 / days).where(out["valid"])
    midpoint = start + (end - start) / 2
    out["month"] = midpoint.dt.strftime("%Y-%m").where(out["valid"])
    out["_raw"] = value.where(out["valid"])
    return out


def dustfall_monthly(records: pd.DataFrame) -> pd.DataFrame:
    """Per site and month: dustfall per 30 days against the plan's limit (< 9 t/(km²·30 d)).

    Several samples of one site in one month are pooled by time (total over total days × 30).
    """
    limit = threshold("dustfall.max_t_km2_30d")
    norm = dustfall_normalise(records)
    valid = norm[norm["valid"]]
    out = valid.groupby(["site_id", "subdistrict_id", "month"], as_index=False).agg(
        raw=("_raw", "sum"), days=("days", "sum"), n_samples=("_raw", "size")
    )
    out["dustfall_30d"] = out["raw"] * 30.0 / out["days"]
    out["limit"] = limit
    out["meets"] = out["dustfall_30d"] < limit
    return out.drop(columns="raw")


def dustfall_by_area(site_monthly: pd.DataFrame, by: str | None = "subdistrict_id") -> pd.DataFrame:
    """Mean of the sites' monthly dustfall per subdistrict (``by=None``: the district)."""
    limit = threshold("dustfall.max_t_km2_30d")
    groups = [by, "month"] if by else ["month"]
    out = site_monthly.groupby(groups, as_index=False).agg(
        dustfall_30d=("dustfall_30d", "mean"), n_sites=("site_id", "nunique")
    )
    out["limit"] = limit
    out["meets"] = out["dustfall_30d"] < limit
    return out
