"""CEMS rules (HJ 75-2017, HJ 76-2017, GB 13271-2014): hourly means, exceedances, daily and monthly
validity, effective transmission rate.

All functions are pure and partition-wise: a Beijing day's minute records give that day's hours, so
late data is handled by recomputing the days it touches (the warehouse replaces the partition).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from schemas.enforcement_rules import BEIJING, setting
from schemas.rules import threshold

HOURLY_COLUMNS = [
    "stack_id",
    "device_id",
    "pollutant",
    "hour_start",
    "day",
    "n_valid_minutes",
    "mean_measured",
    "o2_mean",
    "mean_corrected",
    "valid",
    "reading_ids",
    "zs_device_mean",
    "n_review_minutes",
]

EXCEEDANCE_COLUMNS = [
    "exceedance_id",
    "stack_id",
    "enterprise_id",
    "pollutant",
    "hour_start",
    "day",
    "hourly_mean",
    "limit_value",
    "limit_source",
    "n_readings",
    "reading_ids",
]

_KEYS = ["stack_id", "device_id", "pollutant", "hour_start"]
_OPEN_START = "0000-01-01"
_OPEN_END = "9999-12-31"


def o2_correct(
    measured: pd.Series | float, o2: pd.Series | float, o2_ref: float | pd.Series
) -> pd.Series | float:
    """C = C_measured × (21 − O2_ref) / (21 − O2).

    O2 missing, negative, or at/above the fault cut-off (``cems.o2_fault_pct``) is a data fault and
    gives NaN: near 21 % the divisor tends to zero and the "corrected" value would be meaningless.
    """
    cut_off = threshold("cems.o2_fault_pct")
    parts = (measured, o2, o2_ref)
    index = next((p.index for p in parts if isinstance(p, pd.Series)), None)
    if index is None:
        o2_value = float(o2) if o2 is not None else np.nan
        if not np.isfinite(o2_value) or o2_value < 0 or o2_value >= cut_off:
            return np.nan
        return float(measured) * (21.0 - float(o2_ref)) / (21.0 - o2_value)
    measured_s, o2_s, ref_s = (_as_float_series(p, index) for p in parts)
    o2_ok = o2_s.where((o2_s >= 0) & (o2_s < cut_off))
    return measured_s * (21.0 - ref_s) / (21.0 - o2_ok)


def _as_float_series(value: pd.Series | float | None, index: pd.Index) -> pd.Series:
    if isinstance(value, pd.Series):
        return pd.to_numeric(value, errors="coerce").astype("float64")
    return pd.Series(np.nan if value is None else float(value), index=index, dtype="float64")


def beijing_day(instants: pd.Series) -> pd.Series:
    """Beijing calendar date (``YYYY-MM-DD``) of tz-aware instants."""
    return _utc(instants).dt.tz_convert(BEIJING).dt.strftime("%Y-%m-%d").astype("str")


def _utc(instants: pd.Series) -> pd.Series:
    values = pd.to_datetime(instants, utc=True)
    return values.astype("datetime64[ns, UTC]")


def _flags(series: pd.Series) -> pd.Series:
    return series.astype("str").str.strip().str.upper()


def _counting(frame: pd.DataFrame) -> pd.Series:
    """Rows whose own validity and HJ 212 flag let the minute count (needs ``s_audited``)."""
    flags = _flags(frame["flag"])
    counts = flags.isin(setting("cems.counting_flags"))
    if setting("cems.missing_flag_counts"):
        counts |= frame["flag"].isna() | flags.eq("")
    counts |= flags.isin(setting("cems.audit_flags")) & frame["s_audited"]
    return counts & frame["valid"].eq(True)


def _s_audited(frame: pd.DataFrame, audits: pd.DataFrame | None) -> pd.Series:
    """Is a manually set (S) value backed by an audit record?

    ``audits`` has the shape validation reads (docs/ARCHITECTURE.md, "Audit records of manual
    values"): ``device_id``, ``code`` (empty = every code of the device), ``start``, ``end``
    (inclusive; empty = open; naive times are Beijing). Or the frame is the validated
    ``measurements`` table (it has ``invalid_reason``): validation keeps an S value valid only
    when an audit record covers it (validation/validity.py rule 3), so there ``valid`` is the
    audit verdict. A frame without either says nothing about audits, and then S does not count.
    """
    audited = pd.Series(False, index=frame.index)
    if "invalid_reason" in frame.columns:
        audited |= frame["valid"].eq(True)
    if audits is None or audits.empty or frame.empty:
        return audited
    code = audits["code"] if "code" in audits.columns else pd.Series("", index=audits.index)
    table = pd.DataFrame(
        {
            "device_id": audits["device_id"].astype("str").to_numpy(),
            "a_code": code.fillna("").astype("str").str.strip().to_numpy(),
            "a_start": _audit_instants(audits["start"]).array,
            "a_end": _audit_instants(audits["end"]).array
            if "end" in audits.columns
            else pd.Series(pd.NaT, index=audits.index, dtype="datetime64[ns, UTC]").array,
        }
    )
    probe = pd.DataFrame(
        {
            "pos": np.arange(len(frame)),
            "device_id": frame["device_id"].astype("str").to_numpy(),
            "code": frame["code"].astype("str").to_numpy(),
            "t": _utc(frame["data_time"]).array,
        }
    )
    pairs = probe.merge(table, on="device_id", how="inner")
    ok = (
        ((pairs["a_code"] == "") | (pairs["a_code"] == pairs["code"]))
        & (pairs["a_start"].isna() | (pairs["t"] >= pairs["a_start"]))
        & (pairs["a_end"].isna() | (pairs["t"] <= pairs["a_end"]))
    )
    covered = np.zeros(len(frame), dtype=bool)
    covered[pairs.loc[ok, "pos"].to_numpy()] = True
    return audited | pd.Series(covered, index=frame.index)


def _audit_instants(values: pd.Series) -> pd.Series:
    """Audit times as UTC instants; naive times are Beijing, as the bureau writes them."""
    parsed = pd.to_datetime(values, errors="coerce")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert("UTC")
    return parsed.dt.tz_localize(BEIJING).dt.tz_convert("UTC")


def _cems_minutes(measurements: pd.DataFrame, audits: pd.DataFrame | None) -> pd.DataFrame:
    frame = measurements
    if "stream" in frame.columns:
        frame = frame[frame["stream"] == "cems"]
    if "cn" in frame.columns:
        frame = frame[frame["cn"].astype("str") == setting("cems.minute_cn")]
    frame = frame.copy()
    frame["data_time"] = _utc(frame["data_time"])
    if "zs_avg" not in frame.columns:
        frame["zs_avg"] = np.nan
    frame["avg"] = pd.to_numeric(frame["avg"], errors="coerce")
    frame["zs_avg"] = pd.to_numeric(frame["zs_avg"], errors="coerce")
    if "flag" not in frame.columns:
        frame["flag"] = pd.Series(np.nan, index=frame.index, dtype="str")
    frame["s_audited"] = _s_audited(frame, audits)
    # A minute sent twice under two reading ids must not count twice: keep one, deterministically.
    frame = frame.sort_values(["device_id", "data_time", "code", "reading_id"], kind="stable")
    return frame.drop_duplicates(["device_id", "data_time", "code"], keep="first")


def _o2_minutes(minutes: pd.DataFrame) -> pd.DataFrame:
    o2 = minutes[minutes["code"] == setting("cems.o2_code")]
    o2 = o2[_counting(o2)]
    cut_off = threshold("cems.o2_fault_pct")
    o2 = o2[(o2["avg"] >= 0) & (o2["avg"] < cut_off)]
    return o2[["device_id", "data_time", "avg", "reading_id"]].rename(
        columns={"avg": "o2", "reading_id": "o2_reading_id"}
    )


def hourly_means(
    measurements: pd.DataFrame, stacks: pd.DataFrame, audits: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Hourly O2-corrected means per stack, pollutant and Beijing clock hour (HJ 75-2017).

    A minute counts when ``valid`` is True, its flag counts (N, T, a missing flag per
    ``cems.missing_flag_counts``; S only with an audit record: a row of ``audits`` covering
    its device, code and time, or validation's verdict on the validated table, see
    ``_s_audited``) and the O2 minute of the same device and time counts too. Each counted minute
    is corrected with its own O2, then averaged: the device's ZsAvg is not trusted as evidence but
    its mean is kept (``zs_device_mean``) for comparison. A minute stamped
    hh:mm belongs to the hour hh:00. Hours in which the device sent the pollutant but no minute
    counts are kept with ``n_valid_minutes`` 0 and ``valid`` False.
    """
    minutes = _cems_minutes(measurements, audits)
    pollutant_rows = minutes[minutes["code"].isin(setting("cems.pollutants"))].copy()
    if pollutant_rows.empty:
        return _empty_hourly()
    pollutant_rows["counts"] = _counting(pollutant_rows)
    rows = pollutant_rows.merge(_o2_minutes(minutes), on=["device_id", "data_time"], how="left")
    stack_refs = stacks[["stack_id", "device_id", "o2_ref_pct"]].copy()
    stack_refs["o2_ref_pct"] = pd.to_numeric(stack_refs["o2_ref_pct"], errors="coerce")
    rows = rows.merge(stack_refs, on="device_id", how="inner")
    counted = rows["counts"] & rows["o2"].notna() & rows["avg"].notna()
    rows["counted"] = counted
    rows["measured_c"] = rows["avg"].where(counted)
    rows["o2_c"] = rows["o2"].where(counted)
    rows["corrected_c"] = o2_correct(rows["avg"], rows["o2"], rows["o2_ref_pct"]).where(counted)
    rows["zs_c"] = rows["zs_avg"].where(counted)
    rows["review_c"] = counted & _flags(rows["flag"]).isin(setting("cems.review_flags"))
    rows["pollutant"] = rows["code"]
    rows["hour_start"] = (
        rows["data_time"].dt.tz_convert(BEIJING).dt.floor("h").dt.tz_convert("UTC")
    ).astype("datetime64[ns, UTC]")
    grouped = rows.groupby(_KEYS, sort=True)
    hourly = grouped.agg(
        n_valid_minutes=("counted", "sum"),
        mean_measured=("measured_c", "mean"),
        o2_mean=("o2_c", "mean"),
        mean_corrected=("corrected_c", "mean"),
        zs_device_mean=("zs_c", "mean"),
        n_review_minutes=("review_c", "sum"),
    ).reset_index()
    hourly["n_valid_minutes"] = hourly["n_valid_minutes"].astype("int64")
    hourly["n_review_minutes"] = hourly["n_review_minutes"].astype("int64")
    hourly["valid"] = hourly["n_valid_minutes"] >= threshold("cems.hour_min_valid_minutes")
    hourly["day"] = beijing_day(hourly["hour_start"])
    hourly = hourly.merge(_reading_ids(rows[counted]), on=_KEYS, how="left")
    hourly["reading_ids"] = [v if isinstance(v, list) else [] for v in hourly["reading_ids"]]
    return hourly[HOURLY_COLUMNS].reset_index(drop=True)


def _reading_ids(counted_rows: pd.DataFrame) -> pd.DataFrame:
    """Sorted unique reading ids (pollutant and O2 minutes) behind each hour: the evidence trail."""
    own = counted_rows[[*_KEYS, "reading_id"]]
    o2 = counted_rows[[*_KEYS, "o2_reading_id"]].rename(columns={"o2_reading_id": "reading_id"})
    ids = pd.concat([own, o2], ignore_index=True).dropna(subset=["reading_id"])
    ids = ids.drop_duplicates().sort_values([*_KEYS, "reading_id"], kind="stable")
    if ids.empty:
        return pd.DataFrame({**{k: [] for k in _KEYS}, "reading_ids": []})
    return (
        ids.groupby(_KEYS, sort=False)["reading_id"].agg(list).rename("reading_ids").reset_index()
    )


def _empty_hourly() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype="object") for column in HOURLY_COLUMNS})
    frame["hour_start"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["valid"] = frame["valid"].astype(bool)
    return frame


def _date_strings(values: pd.Series, open_value: str) -> pd.Series:
    """Dates as ``YYYY-MM-DD`` strings (Beijing dates as written in the registry); empty = open."""
    parsed = pd.to_datetime(
        values.astype("str").str.strip().replace({"": None, "nan": None}), errors="coerce"
    )
    return parsed.dt.strftime("%Y-%m-%d").fillna(open_value).astype("str")


def limits_in_force(hourly: pd.DataFrame, stack_limits: pd.DataFrame) -> pd.DataFrame:
    """The limit in force for each hourly row (valid_from <= Beijing day < valid_to).

    A change dated D applies from D 00:00 Beijing. If the registry holds overlapping limits for a
    stack and pollutant the strictest one is used (``limit_overlaps`` reports them).
    """
    limits = stack_limits.copy()
    limits["valid_from"] = _date_strings(limits["valid_from"], _OPEN_START)
    limits["valid_to"] = _date_strings(limits["valid_to"], _OPEN_END)
    limits["limit_value"] = pd.to_numeric(limits["limit_mg_m3"], errors="coerce")
    limits["limit_source"] = _limit_source(limits)
    keep = ["stack_id", "pollutant", "valid_from", "valid_to", "limit_value", "limit_source"]
    merged = hourly.merge(limits[keep], on=["stack_id", "pollutant"], how="inner")
    in_force = (merged["valid_from"] <= merged["day"]) & (merged["day"] < merged["valid_to"])
    merged = merged[in_force & merged["limit_value"].notna()]
    merged = merged.sort_values([*_KEYS, "limit_value"], kind="stable")
    return merged.drop_duplicates(_KEYS, keep="first").drop(columns=["valid_from", "valid_to"])


def _limit_source(limits: pd.DataFrame) -> pd.Series:
    parts = []
    for column in ("standard", "category", "source"):
        if column in limits.columns:
            parts.append(limits[column].astype("str").fillna("").replace("nan", ""))
    if not parts:
        return pd.Series("stack_limits.csv", index=limits.index, dtype="str")
    text = parts[0]
    for part in parts[1:]:
        text = text.str.cat(part, sep="; ")
    return text.str.replace(r"(; )+", "; ", regex=True).str.strip("; ").astype("str")


def limit_overlaps(stack_limits: pd.DataFrame) -> pd.DataFrame:
    """Pairs of limits of one stack and pollutant whose validity periods overlap (registry errors)."""
    limits = stack_limits.copy()
    limits["valid_from"] = _date_strings(limits["valid_from"], _OPEN_START)
    limits["valid_to"] = _date_strings(limits["valid_to"], _OPEN_END)
    limits["row"] = range(len(limits))
    pairs = limits.merge(limits, on=["stack_id", "pollutant"], suffixes=("_a", "_b"))
    pairs = pairs[pairs["row_a"] < pairs["row_b"]]
    overlap = (pairs["valid_from_a"] < pairs["valid_to_b"]) & (
        pairs["valid_from_b"] < pairs["valid_to_a"]
    )
    return pairs[overlap].reset_index(drop=True)


def exceedance_id(stack_id: str, pollutant: str, hour_start: pd.Timestamp) -> str:
    """Stable id: the same stack, pollutant and hour always give the same id (recomputation-safe)."""
    instant = pd.Timestamp(hour_start).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    return hashlib.sha256(f"{stack_id}\n{pollutant}\n{instant}".encode()).hexdigest()[:32]


def exceedances(
    hourly: pd.DataFrame, stacks: pd.DataFrame, stack_limits: pd.DataFrame
) -> pd.DataFrame:
    """Valid hours whose O2-corrected mean is strictly above the stack's limit in force."""
    valid = hourly[hourly["valid"].eq(True)]
    judged = limits_in_force(valid, stack_limits)
    decimals = int(setting("cems.compare_decimals"))
    judged = judged[judged["mean_corrected"].round(decimals) > judged["limit_value"]]
    judged = judged.merge(stacks[["stack_id", "enterprise_id"]], on="stack_id", how="left")
    if judged.empty:
        frame = pd.DataFrame({column: pd.Series(dtype="object") for column in EXCEEDANCE_COLUMNS})
        frame["hour_start"] = pd.Series(dtype="datetime64[ns, UTC]")
        frame["hourly_mean"] = pd.Series(dtype="float64")
        frame["limit_value"] = pd.Series(dtype="float64")
        frame["n_readings"] = pd.Series(dtype="int64")
        return frame
    out = judged.rename(columns={"mean_corrected": "hourly_mean"})
    out["exceedance_id"] = [
        exceedance_id(s, p, h)
        for s, p, h in zip(out["stack_id"], out["pollutant"], out["hour_start"], strict=True)
    ]
    out["n_readings"] = out["reading_ids"].map(len).astype("int64")
    out = out.sort_values(["stack_id", "pollutant", "hour_start"], kind="stable")
    return out[EXCEEDANCE_COLUMNS].reset_index(drop=True)


# --- daily and monthly values ------------------------------------------------------------------


def daily_values(hourly: pd.DataFrame) -> pd.DataFrame:
    """Daily means per stack, pollutant and Beijing day from valid hours (HJ 75-2017: >= 20 hours).

    The mean is reported even when the day is invalid (``valid`` False) so that a report can show
    it greyed out; rules must only use valid days.
    """
    keys = ["stack_id", "device_id", "pollutant", "day"]
    frame = hourly.copy()
    good = frame["valid"].eq(True)
    frame["corrected_v"] = frame["mean_corrected"].where(good)
    frame["measured_v"] = frame["mean_measured"].where(good)
    frame["valid_hour"] = good
    daily = (
        frame.groupby(keys, sort=True)
        .agg(
            n_valid_hours=("valid_hour", "sum"),
            mean_corrected=("corrected_v", "mean"),
            mean_measured=("measured_v", "mean"),
            max_hourly_corrected=("corrected_v", "max"),
        )
        .reset_index()
    )
    daily["n_valid_hours"] = daily["n_valid_hours"].astype("int64")
    daily["valid"] = daily["n_valid_hours"] >= threshold("cems.day_min_valid_hours")
    return daily


def month_min_valid_days(month: str) -> int:
    """Valid days a monthly mean needs (HJ 75-2017): 25, February 23."""
    name = (
        "cems.month_min_valid_days_february" if month[5:7] == "02" else "cems.month_min_valid_days"
    )
    return int(threshold(name))


def monthly_values(daily: pd.DataFrame) -> pd.DataFrame:
    """Monthly means per stack and pollutant from valid days (25 valid days, February 23)."""
    keys = ["stack_id", "device_id", "pollutant", "month"]
    frame = daily.copy()
    frame["month"] = frame["day"].str.slice(0, 7)
    good = frame["valid"].eq(True)
    frame["corrected_v"] = frame["mean_corrected"].where(good)
    frame["measured_v"] = frame["mean_measured"].where(good)
    frame["valid_day"] = good
    monthly = (
        frame.groupby(keys, sort=True)
        .agg(
            n_valid_days=("valid_day", "sum"),
            mean_corrected=("corrected_v", "mean"),
            mean_measured=("measured_v", "mean"),
        )
        .reset_index()
    )
    monthly["n_valid_days"] = monthly["n_valid_days"].astype("int64")
    monthly["min_valid_days"] = [month_min_valid_days(m) for m in monthly["month"]]
    monthly["valid"] = monthly["n_valid_days"] >= monthly["min_valid_days"]
    return monthly


# --- effective transmission rate ---------------------------------------------------------------


def minute_records(measurements: pd.DataFrame, audits: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per received CEMS minute record (device, data_time) with its validity.

    A record is valid when every monitored pollutant it carries and its O2 value count (valid,
    counting flag, O2 under the fault cut-off). Duplicates of a minute count once.
    """
    minutes = _cems_minutes(measurements, audits)
    codes = [*setting("cems.pollutants"), setting("cems.o2_code")]
    rows = minutes[minutes["code"].isin(codes)].copy()
    ok = _counting(rows) & rows["avg"].notna()
    is_o2 = rows["code"] == setting("cems.o2_code")
    cut_off = threshold("cems.o2_fault_pct")
    ok &= ~is_o2 | ((rows["avg"] >= 0) & (rows["avg"] < cut_off))
    rows["ok"] = ok
    rows["is_o2"] = is_o2
    per = (
        rows.groupby(["device_id", "data_time"], sort=True)
        .agg(all_ok=("ok", "all"), has_o2=("is_o2", "any"), n_codes=("code", "nunique"))
        .reset_index()
    )
    per["valid"] = per["all_ok"] & per["has_o2"] & (per["n_codes"] >= 2)
    per["day"] = beijing_day(per["data_time"])
    return per[["device_id", "data_time", "day", "valid"]]


def transmission_daily(
    measurements: pd.DataFrame,
    devices: list[str] | pd.Series,
    days: list[str],
    due_per_day: int | None = None,
    audits: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Effective transmission rate per device and Beijing day.

    rate = (received / due) × (valid / received) = valid / due, over the full device × day grid
    (a device that sent nothing has rate 0). ``due_per_day`` defaults to the minute records due a day
    (``cems.minute_records_per_day``); pass fewer for a device installed or retired mid-day.
    """
    due = int(setting("cems.minute_records_per_day") if due_per_day is None else due_per_day)
    records = minute_records(measurements, audits)
    records = records[records["day"].isin(list(days))]
    counts = (
        records.groupby(["device_id", "day"])
        .agg(received=("valid", "size"), valid=("valid", "sum"))
        .reset_index()
    )
    grid = pd.MultiIndex.from_product(
        [sorted(set(devices)), sorted(set(days))], names=["device_id", "day"]
    ).to_frame(index=False)
    grid["device_id"] = grid["device_id"].astype("str")
    grid["day"] = grid["day"].astype("str")
    out = grid.merge(counts, on=["device_id", "day"], how="left")
    out["received"] = out["received"].fillna(0).astype("int64")
    out["valid"] = out["valid"].fillna(0).astype("int64")
    out["due"] = due
    return _with_rate(out)


def transmission_monthly(daily_rates: pd.DataFrame) -> pd.DataFrame:
    """Monthly effective transmission rate per device from the daily grid (sums, not a mean of rates)."""
    frame = daily_rates.copy()
    frame["month"] = frame["day"].str.slice(0, 7)
    out = (
        frame.groupby(["device_id", "month"], sort=True)
        .agg(
            received=("received", "sum"),
            valid=("valid", "sum"),
            due=("due", "sum"),
            n_days=("day", "nunique"),
        )
        .reset_index()
    )
    return _with_rate(out)


def _with_rate(frame: pd.DataFrame) -> pd.DataFrame:
    # Received beyond due (a clock that repeats minutes) must not lift the rate above 1.
    received = np.minimum(frame["received"], frame["due"]).astype(float)
    valid = np.minimum(frame["valid"], frame["due"]).astype(float)
    due = frame["due"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        receipt = np.where(due > 0, received / due, np.nan)
        quality = np.where(received > 0, valid / received, 0.0)
    frame["receipt_rate"] = receipt
    frame["valid_share"] = quality
    # (received/due) × (valid/received) reduces to valid/due; computing it that way keeps an exact
    # 90 % at exactly 0.9 instead of a float product just under it.
    frame["rate"] = np.where(due > 0, valid / due, np.nan)
    frame["complies"] = frame["rate"] >= threshold("stack.effective_transmission_min")
    return frame
