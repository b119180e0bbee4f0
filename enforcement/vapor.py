"""Vapor recovery at gas stations (GB 20952-2007 / -2020; plan clause 23).

Per nozzle and Beijing day: the A/L distribution and a day status; warnings and alarms after runs of
out-of-range days; tank-pressure days; a per-station monthly recovery-efficiency *estimate* against
the plan's 85 %; stations that must but do not have an online monitor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from enforcement.cems import beijing_day
from schemas.enforcement_rules import setting
from schemas.rules import threshold

_TRUE = {"1", "true", "t", "yes", "y", "是", "有"}


def as_bool(values: pd.Series) -> pd.Series:
    """Registry booleans as sent in CSV text (1/0, true/false, yes/no, 是/否) → bool."""
    return values.astype("str").str.strip().str.lower().isin(_TRUE)


def _station_ids(frame: pd.DataFrame, gas_stations: pd.DataFrame | None) -> pd.DataFrame:
    """Attach ``gas_station_id`` from the registry (by device) when the frame lacks it."""
    if "gas_station_id" in frame.columns and frame["gas_station_id"].notna().all():
        return frame
    if gas_stations is None:
        raise ValueError("records carry no gas_station_id: pass the gas_stations registry")
    mapping = gas_stations[["device_id", "gas_station_id"]].dropna()
    return frame.drop(columns=["gas_station_id"], errors="ignore").merge(
        mapping, on="device_id", how="inner"
    )


def _valid_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows validation left valid (a frame without the column is taken as already curated)."""
    return frame[frame["valid"].eq(True)] if "valid" in frame.columns else frame


# --- nozzle-days ------------------------------------------------------------------------------


def nozzle_days(
    refuellings: pd.DataFrame, gas_stations: pd.DataFrame | None = None
) -> pd.DataFrame:
    """A/L distribution and status per station, nozzle and Beijing day.

    status: "insufficient" with fewer than ``vapor.min_refuellings_per_day`` judged refuellings;
    otherwise "pass" when the day's median A/L lies in [al_min, al_max] (inclusive), else "fail".
    """
    frame = _station_ids(_valid_only(refuellings), gas_stations).copy()
    frame["al_ratio"] = pd.to_numeric(frame["al_ratio"], errors="coerce")
    frame["fuel_volume_l"] = pd.to_numeric(frame["fuel_volume_l"], errors="coerce")
    frame = frame[frame["al_ratio"].notna() & frame["fuel_volume_l"].notna()]
    frame = frame[frame["fuel_volume_l"] >= float(setting("vapor.min_fuel_volume_l"))]
    frame = frame.drop_duplicates("reading_id") if "reading_id" in frame.columns else frame
    frame["day"] = beijing_day(frame["data_time"])
    low, high = threshold("vapor.al_min"), threshold("vapor.al_max")
    frame["in_range"] = frame["al_ratio"].between(low, high)
    keys = ["gas_station_id", "nozzle_id", "day"]
    grouped = frame.groupby(keys, sort=True)["al_ratio"]
    out = pd.DataFrame(
        {
            "n_refuellings": grouped.size(),
            "al_mean": grouped.mean(),
            "al_p10": grouped.quantile(0.10),
            "al_p50": grouped.quantile(0.50),
            "al_p90": grouped.quantile(0.90),
            "share_in_range": frame.groupby(keys, sort=True)["in_range"].mean(),
            "fuel_volume_l": frame.groupby(keys, sort=True)["fuel_volume_l"].sum(),
        }
    ).reset_index()
    out["n_refuellings"] = out["n_refuellings"].astype("int64")
    statistic = out[_STATISTIC[setting("vapor.day_statistic")]]
    enough = out["n_refuellings"] >= int(setting("vapor.min_refuellings_per_day"))
    judged = np.where(statistic.between(low, high), "pass", "fail")
    out["status"] = pd.Series(np.where(enough, judged, "insufficient"), dtype="str")
    return out


_STATISTIC = {"median": "al_p50", "mean": "al_mean"}


def nozzle_alerts(days: pd.DataFrame) -> pd.DataFrame:
    """Runs of consecutive out-of-range ("fail") calendar days per nozzle: level 1 warning after
    ``vapor.warning_days``, 2 alarm after ``vapor.alarm_days`` (0 normal, as the monitor's status).

    Any other day — pass, insufficient, or no data at all — ends the run: a warning must rest on
    judged days only.
    """
    warning, alarm = int(threshold("vapor.warning_days")), int(threshold("vapor.alarm_days"))
    frame = days.sort_values(["gas_station_id", "nozzle_id", "day"], kind="stable").copy()
    dates = pd.to_datetime(frame["day"])
    failed = frame["status"].eq("fail")
    nozzle = frame["gas_station_id"].astype("str") + "\x1f" + frame["nozzle_id"].astype("str")
    gap = dates.diff().dt.days.ne(1) | nozzle.ne(nozzle.shift())
    # a new run starts at a non-fail day, a calendar gap or a new nozzle
    breaks = (~failed) | gap | (~failed.shift(fill_value=False))
    run_id = breaks.cumsum()
    frame["run_length"] = np.where(failed, failed.groupby(run_id).cumsum(), 0).astype("int64")
    frame["level"] = np.select(
        [frame["run_length"] >= alarm, frame["run_length"] >= warning], [2, 1], default=0
    ).astype("int64")
    frame["level_name"] = frame["level"].map({0: "normal", 1: "warning", 2: "alarm"}).astype("str")
    return frame.reset_index(drop=True)


# --- tank pressure ----------------------------------------------------------------------------


def tank_pressure_days(
    station_minutes: pd.DataFrame, gas_stations: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per station and Beijing day from the monitor's minute records (CN 2051).

    A minute counts with a numeric ``tank_pressure_pa`` and a counting flag (a missing flag counts).
    status: "insufficient" under ``vapor.min_pressure_minutes_per_day`` minutes; "alarm" when more
    than ``vapor.tank_pressure_max_share`` of the minutes are above ``vapor.tank_pressure_max_pa``;
    "zero_pressure" when too many minutes carry the zero-pressure alarm; else "normal".
    """
    frame = _station_ids(_valid_only(station_minutes), gas_stations).copy()
    if "cn" in frame.columns:
        frame = frame[frame["cn"].astype("str") == setting("cems.minute_cn")]
    frame["pressure"] = pd.to_numeric(frame["tank_pressure_pa"], errors="coerce")
    flags = (
        frame["tank_pressure_flag"].astype("str").str.strip().str.upper()
        if "tank_pressure_flag" in frame.columns
        else pd.Series(np.nan, index=frame.index, dtype="str")
    )
    counts = flags.isna() | flags.isin(setting("vapor.pressure_counting_flags"))
    frame = frame[counts & frame["pressure"].notna()]
    frame = frame.drop_duplicates(["gas_station_id", "data_time"])
    frame["day"] = beijing_day(frame["data_time"])
    frame["over"] = frame["pressure"] > float(setting("vapor.tank_pressure_max_pa"))
    zero = frame["zero_pressure_alarm"] if "zero_pressure_alarm" in frame.columns else 0
    frame["zero"] = pd.to_numeric(zero, errors="coerce").fillna(0) > 0
    grouped = frame.groupby(["gas_station_id", "day"], sort=True)
    out = grouped.agg(
        n_minutes=("pressure", "size"),
        n_over=("over", "sum"),
        n_zero_alarm=("zero", "sum"),
        max_pa=("pressure", "max"),
        mean_pa=("pressure", "mean"),
    ).reset_index()
    for column in ("n_minutes", "n_over", "n_zero_alarm"):
        out[column] = out[column].astype("int64")
    out["share_over"] = out["n_over"] / out["n_minutes"]
    out["share_zero"] = out["n_zero_alarm"] / out["n_minutes"]
    enough = out["n_minutes"] >= int(setting("vapor.min_pressure_minutes_per_day"))
    alarm = out["share_over"] > float(setting("vapor.tank_pressure_max_share"))
    zero_p = out["share_zero"] > float(setting("vapor.zero_pressure_max_share"))
    out["status"] = pd.Series(
        np.select([~enough, alarm, zero_p], ["insufficient", "alarm", "zero_pressure"], "normal"),
        dtype="str",
    )
    return out


# --- station efficiency estimate ---------------------------------------------------------------


def station_efficiency(
    refuellings: pd.DataFrame, gas_stations: pd.DataFrame, months: list[str]
) -> pd.DataFrame:
    """Monthly recovery-efficiency ESTIMATE per station against the plan's 85 % (clause 23).

    ``efficiency_estimate`` = share of the dispensed gasoline volume whose refuelling had an A/L
    within [al_min, al_max]: the standard treats an in-range A/L as the stage-II system working as
    designed, so this estimates the share of dispensing whose vapor was recovered. It is not a
    measured efficiency (see docs/enforcement.md). ``vapor_ratio_estimate`` = Σ vapor / (Σ fuel ×
    al_min), capped at 1, is reported beside it. A month with too few refuellings is
    "insufficient"; a station without an online monitor is "no_monitor".
    """
    frame = _valid_only(refuellings).copy()
    if len(frame):
        frame = _station_ids(frame, gas_stations)
    elif "gas_station_id" not in frame.columns:
        frame["gas_station_id"] = pd.Series(dtype="str")
    for column in ("al_ratio", "fuel_volume_l", "vapor_volume_l"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame[frame["al_ratio"].notna() & frame["fuel_volume_l"].notna()]
    if "reading_id" in frame.columns:
        frame = frame.drop_duplicates("reading_id")
    frame["month"] = beijing_day(frame["data_time"]).str.slice(0, 7)
    low, high = threshold("vapor.al_min"), threshold("vapor.al_max")
    frame["in_range_l"] = frame["fuel_volume_l"].where(frame["al_ratio"].between(low, high), 0.0)
    sums = (
        frame.groupby(["gas_station_id", "month"])
        .agg(
            n_refuellings=("al_ratio", "size"),
            fuel_volume_l=("fuel_volume_l", "sum"),
            in_range_volume_l=("in_range_l", "sum"),
            vapor_volume_l=("vapor_volume_l", "sum"),
        )
        .reset_index()
    )
    grid = pd.MultiIndex.from_product(
        [sorted(gas_stations["gas_station_id"].astype("str")), sorted(months)],
        names=["gas_station_id", "month"],
    ).to_frame(index=False)
    out = grid.astype("str").merge(sums, on=["gas_station_id", "month"], how="left")
    out["n_refuellings"] = out["n_refuellings"].fillna(0).astype("int64")
    for column in ("fuel_volume_l", "in_range_volume_l", "vapor_volume_l"):
        out[column] = out[column].fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["efficiency_estimate"] = np.where(
            out["fuel_volume_l"] > 0, out["in_range_volume_l"] / out["fuel_volume_l"], np.nan
        )
        out["vapor_ratio_estimate"] = np.where(
            out["fuel_volume_l"] > 0,
            np.minimum(1.0, out["vapor_volume_l"] / (out["fuel_volume_l"] * low)),
            np.nan,
        )
    monitors = gas_stations.assign(gas_station_id=gas_stations["gas_station_id"].astype("str"))
    monitors = monitors.set_index("gas_station_id")["has_online_monitor"]
    has_monitor = as_bool(out["gas_station_id"].map(monitors))
    enough = out["n_refuellings"] >= int(setting("vapor.min_refuellings_per_month"))
    meets = out["efficiency_estimate"].round(9) >= threshold("vapor.efficiency_min")
    out["status"] = pd.Series(
        np.select(
            [~has_monitor & (out["n_refuellings"] == 0), ~enough, meets],
            ["no_monitor", "insufficient", "pass"],
            "fail",
        ),
        dtype="str",
    )
    return out


def stations_missing_monitor(gas_stations: pd.DataFrame) -> pd.DataFrame:
    """Stations selling more than ``vapor.monitor_required_sales_t`` a year without an online monitor."""
    sales = pd.to_numeric(gas_stations["annual_gasoline_sales_t"], errors="coerce")
    has_monitor = as_bool(gas_stations["has_online_monitor"])
    required = sales > threshold("vapor.monitor_required_sales_t")
    out = gas_stations[required & ~has_monitor].copy()
    out["annual_gasoline_sales_t"] = sales[required & ~has_monitor]
    return out.reset_index(drop=True)
