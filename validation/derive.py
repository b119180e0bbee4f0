"""Columns computed in pandas before a partition meets its suite.

Some rules are about a row's relation to other rows or to the registry (a reading id seen before,
a device's previous reading, the device's install date, the physical range of the row's code and
unit, the O2 of the row's reading). Those relations are computed here, vectorised, into ``v_``
columns; the GX expectations in ``validation.suites`` then judge the derived columns row by row,
so the verdicts, counts and failing ids still come from GX.

Every derivation tolerates a broken input (missing column, wrong type): it yields missing values
and the schema expectations report the breakage.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from schemas.reading import BEIJING
from schemas.validation_rules import MEASUREMENT_STREAMS, ValidationRules

ROW = "v_row"


def utc_times(frame: pd.DataFrame, column: str) -> pd.Series | None:
    """The column as tz-aware UTC instants, or None when it is absent or not tz-aware."""
    if column not in frame.columns:
        return None
    values = frame[column]
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        return None
    return values.dt.tz_convert("UTC")


def unit_key(unit: object) -> str:
    """Spellings of one unit compare equal: ``mg/m³`` = ``mg/m3``, ``μg/m3`` = ``ug/m3``."""
    text = "" if unit is None or unit != unit else str(unit)
    for old, new in (("³", "3"), ("µ", "u"), ("μ", "u"), (" ", "")):
        text = text.replace(old, new)
    return text.strip().lower()


def map_distinct(values: pd.Series, fn) -> np.ndarray:
    """``fn`` applied once per distinct value (a day has millions of rows, a few dozen units)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    mapped = np.array([fn(u) for u in uniques], dtype=object)
    return mapped[codes] if len(codes) else np.array([], dtype=object)


def install_instants(devices: pd.DataFrame | None, grace_days: float) -> pd.Series:
    """device_id -> first accepted instant (UTC): install date at Beijing midnight minus grace."""
    if devices is None or devices.empty or "install_date" not in devices.columns:
        return pd.Series(dtype="datetime64[ns, UTC]")
    dates = pd.to_datetime(devices["install_date"], errors="coerce")
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        instants = dates.dt.tz_convert("UTC")
    else:
        instants = dates.dt.tz_localize(BEIJING).dt.tz_convert("UTC")
    instants = instants - timedelta(days=float(grace_days))
    out = pd.Series(instants.to_numpy(), index=devices["device_id"].astype("str").to_numpy())
    return out[~out.index.duplicated(keep="first")].astype("datetime64[ns, UTC]")


def time_steps(
    frame: pd.DataFrame, data_time: pd.Series, received: pd.Series, commands: list[str]
) -> pd.Series:
    """Per row: seconds between its reading's data time and the previous reading's of the same
    device and command, in receive order. Negative = the device's time went backwards.

    Only rows of ``commands`` (time.monotonic_cns) are judged; others get NaN. Computed once per
    reading id (a repeated copy is the duplicate check's business, not a step back); ties in
    receive time are ordered by data time so they never look like a step back.
    """
    keys = ["device_id", "cn"] if "cn" in frame.columns else ["device_id"]
    first = ~frame["reading_id"].duplicated(keep="first")
    if "cn" in frame.columns:
        first &= frame["cn"].astype("str").isin([str(c) for c in commands])
    readings = pd.DataFrame(
        {
            "reading_id": frame.loc[first, "reading_id"],
            **{k: frame.loc[first, k] for k in keys},
            "t": data_time[first],
            "r": received[first],
        }
    )
    readings = readings.sort_values([*keys, "r", "t"], kind="stable")
    previous = readings.groupby(keys, sort=False)["t"].shift()
    step = (readings["t"] - previous).dt.total_seconds()
    by_id = pd.Series(step.to_numpy(), index=readings["reading_id"].to_numpy())
    return frame["reading_id"].map(by_id).astype("float64")


def _range_columns(frame: pd.DataFrame, stream: str, rules: ValidationRules) -> dict:
    ranges = rules.ranges_for(stream)
    codes = sorted({r.code for r in ranges})
    table = pd.DataFrame(
        {
            "code": [r.code for r in ranges],
            "unit": [unit_key(r.unit) for r in ranges],
            "min": [r.min for r in ranges],
            "max": [r.max for r in ranges],
        }
    )
    code = frame["code"]
    unit = map_distinct(frame["unit"], unit_key) if "unit" in frame.columns else ""
    pairs = pd.MultiIndex.from_arrays([code.astype("str"), pd.Index(unit, dtype="str")])
    where = pd.MultiIndex.from_frame(table[["code", "unit"]]).get_indexer(pairs)
    found = where >= 0
    low = np.where(found, table["min"].to_numpy()[where], np.nan)
    high = np.where(found, table["max"].to_numpy()[where], np.nan)
    known = code.isin(codes).to_numpy()
    return {
        "v_range_min": low,
        "v_range_max": high,
        "v_code_known": known,
        "v_unit_ok": ~known | found,
    }


def _o2_columns(frame: pd.DataFrame, value: pd.Series, stream: str, rules: ValidationRules):
    ranges = rules.ranges_for(stream)
    o2_codes = {r.code for r in ranges if r.kind == "o2"}
    concentration_codes = {r.code for r in ranges if r.kind == "concentration"}
    code = frame["code"].astype("str")
    is_o2 = code.isin(o2_codes) & value.notna()
    o2_rows = pd.Series(value[is_o2].to_numpy(), index=frame.loc[is_o2, "reading_id"].to_numpy())
    o2_rows = o2_rows[~o2_rows.index.duplicated(keep="first")]
    o2 = frame["reading_id"].map(o2_rows).astype("float64") if len(o2_rows) else np.nan
    concentration = (code.isin(concentration_codes) & value.notna()).to_numpy()
    return o2, concentration


def derive(
    stream: str, frame: pd.DataFrame, registry: dict[str, pd.DataFrame], rules: ValidationRules
) -> pd.DataFrame:
    """A copy of ``frame`` (fresh 0..n-1 index) with the ``v_`` columns the suite judges."""
    out = frame.reset_index(drop=True)
    n = len(out)
    derived: dict[str, object] = {ROW: np.arange(n, dtype="int64")}
    data_time = utc_times(out, "data_time")
    received = utc_times(out, "received_at")
    has_ids = {"reading_id", "device_id"} <= set(out.columns)

    # registry: install date (a device missing from the registry gets none)
    install = install_instants(registry.get("devices"), rules.param("time.install_grace_days"))
    if has_ids and len(install):
        derived["v_install_at"] = out["device_id"].astype("str").map(install)
    else:  # no registry (or no ids): no device is registered
        derived["v_install_at"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    nan = np.full(n, np.nan)
    if data_time is not None:
        since = (data_time - derived["v_install_at"]).dt.total_seconds()
        derived["v_since_install_s"] = since.astype("float64")
    else:
        derived["v_since_install_s"] = nan
    if data_time is not None and received is not None:
        derived["v_ahead_s"] = (data_time - received).dt.total_seconds().astype("float64")
        commands = list(rules.param("time.monotonic_cns"))
        derived["v_step_s"] = time_steps(out, data_time, received, commands) if has_ids else nan
    else:
        derived["v_ahead_s"] = nan
        derived["v_step_s"] = nan

    if stream in MEASUREMENT_STREAMS:
        keys = [c for c in ("reading_id", "code") if c in out.columns]
        derived["v_dup"] = out.duplicated(subset=keys, keep="first").to_numpy() if keys else False
        if "code" in out.columns:
            value = _value(out)
            derived["v_value"] = value.to_numpy()
            derived.update(_range_columns(out, stream, rules))
            if "reading_id" in out.columns:
                derived["v_o2"], derived["v_conc"] = _o2_columns(out, value, stream, rules)
    else:
        dup = out["reading_id"].duplicated(keep="first") if "reading_id" in out.columns else None
        derived["v_dup"] = dup.to_numpy() if dup is not None else False
        for column, kind in rules.columns(stream).items():
            if kind == "int" and column in out.columns:
                derived[f"n_{column}"] = _numeric(out[column]).to_numpy()
    for column, values in derived.items():
        out[column] = values
    return out


def _value(frame: pd.DataFrame) -> pd.Series:
    """The row's main value: the interval mean, else the real-time value."""
    avg = frame["avg"] if "avg" in frame.columns else pd.Series(np.nan, index=frame.index)
    rtd = frame["rtd"] if "rtd" in frame.columns else pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(avg, errors="coerce").fillna(pd.to_numeric(rtd, errors="coerce"))


def _numeric(values: pd.Series) -> pd.Series:
    """Integers sent as text (``"1"``), floats or empty strings -> float64 (empty = NaN)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("float64")
    return pd.to_numeric(values.astype("str").str.strip(), errors="coerce").astype("float64")
