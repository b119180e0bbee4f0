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

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from schemas.reading import BEIJING
from schemas.validation_rules import MEASUREMENT_STREAMS, ValidationRules

ROW = "v_row"
#: long-form rows: the row's flag and its reading's command, as categoricals of the same values
FLAG_COLUMN = "v_flag"
COMMAND_COLUMN = "v_cn"


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


#: columns that belong to the reading, not to one of its values: equal on every long-form row of
#: a reading as validation/load.py writes them. The reading-level checks judge them once per run.
READING_COLUMNS = (
    "reading_id",
    "device_id",
    "stream",
    "cn",
    "data_time",
    "received_at",
    "clock_jump",
    "clock_drift",
)


@dataclass
class Derived:
    """A partition ready for its suite.

    ``values``: the input rows (index 0..n-1) with :data:`ROW` and the value-level ``v_`` columns.
    ``readings``: for long-form streams, one row per *run* (consecutive input rows whose
    :data:`READING_COLUMNS` are all equal; a reading as loaded is one run) with those columns,
    :data:`ROW` (the run number) and the reading-level ``v_`` columns; ``None`` for the profile
    streams, whose rows are readings already (then ``values`` carries every column).
    ``starts`` / ``lengths``: each run's first row and row count.
    """

    values: pd.DataFrame
    readings: pd.DataFrame | None
    starts: np.ndarray
    lengths: np.ndarray

    def run_rows(self, runs: np.ndarray) -> np.ndarray:
        """The input rows of the given runs (ascending runs give ascending rows)."""
        runs = np.asarray(runs, dtype="int64")
        if not len(runs):
            return np.array([], dtype="int64")
        lengths = self.lengths[runs]
        offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
        return np.repeat(self.starts[runs], lengths) + (np.arange(lengths.sum()) - offsets)


def _changes(values: object) -> np.ndarray:
    """Per row after the first: does the value differ from the row before? (NaN differs.)"""
    array = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
    if array.dtype.kind in "mM":
        array = array.view("int64")
    try:
        changed = np.asarray(array[1:] != array[:-1], dtype=bool)
    except (TypeError, ValueError):  # values without a plain truth value (pd.NA): no runs
        return np.ones(max(len(array) - 1, 0), dtype=bool)
    if changed.shape != (max(len(array) - 1, 0),):
        return np.ones(max(len(array) - 1, 0), dtype=bool)
    return changed


def run_starts(frame: pd.DataFrame, columns: tuple[str, ...] = READING_COLUMNS) -> np.ndarray:
    """First row of every run of consecutive rows equal in all ``columns`` present.

    Only equal values are grouped, so a check of those columns gives each row of a run the
    verdict of the run's first row, whatever the input looks like.
    """
    n = len(frame)
    if n == 0:
        return np.array([], dtype="int64")
    boundary = np.zeros(n, dtype=bool)
    boundary[0] = True
    present = [c for c in columns if c in frame.columns]
    if not present:  # nothing ties rows together: every row is its own run
        boundary[:] = True
    for column in present:
        values = frame[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").array.asi8
        boundary[1:] |= _changes(values)
    return np.flatnonzero(boundary).astype("int64")


def _time_columns(
    out: pd.DataFrame, registry: dict[str, pd.DataFrame], rules: ValidationRules
) -> dict[str, object]:
    """The reading-level ``v_`` columns: install instant, seconds since it, ahead of receipt,
    step from the device's previous reading."""
    n = len(out)
    derived: dict[str, object] = {}
    data_time = utc_times(out, "data_time")
    received = utc_times(out, "received_at")
    has_ids = {"reading_id", "device_id"} <= set(out.columns)
    # registry: install date (a device missing from the registry gets none)
    install = install_instants(registry.get("devices"), rules.param("time.install_grace_days"))
    if has_ids and len(install):
        devices = out["device_id"].astype("str")
        codes, uniques = pd.factorize(devices.to_numpy(object), use_na_sentinel=False)
        at = pd.Series(uniques).map(install).astype("datetime64[ns, UTC]")
        derived["v_install_at"] = pd.Series(at.array.take(codes), index=out.index)
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
    return derived


def _plain(values: pd.Series) -> np.ndarray | pd.Series:
    """Strings as a plain object array: pandas factorises those twice as fast as a str column."""
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        return values.to_numpy(dtype=object)
    return values


def _factor(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct values (missing values are a value of their own)."""
    codes, uniques = pd.factorize(_plain(values), use_na_sentinel=False)
    return codes, np.asarray(uniques, dtype=object)


def _range_columns(
    frame: pd.DataFrame,
    stream: str,
    rules: ValidationRules,
    code_codes: np.ndarray,
    code_values: np.ndarray,
) -> dict:
    """Bounds of each row's code and unit, looked up once per distinct (code, unit) pair."""
    ranges = rules.ranges_for(stream)
    bounds = {(r.code, unit_key(r.unit)): (r.min, r.max) for r in ranges}
    known_codes = {r.code for r in ranges}
    if "unit" in frame.columns:
        unit_codes, unit_values = _factor(frame["unit"])
        unit_keys = [unit_key(u) for u in unit_values]
    else:
        unit_codes, unit_keys = np.zeros(len(frame), dtype="int64"), [""]
    pair, pairs = pd.factorize(code_codes.astype("int64") * len(unit_keys) + unit_codes)
    low, high, known, found = [], [], [], []
    for key in pairs:
        code = code_values[key // len(unit_keys)]
        code = "" if code is None or code != code else str(code)
        entry = bounds.get((code, unit_keys[key % len(unit_keys)]))
        low.append(np.nan if entry is None else entry[0])
        high.append(np.nan if entry is None else entry[1])
        known.append(code in known_codes)
        found.append(entry is not None)
    known_rows = np.asarray(known, dtype=bool)[pair]
    return {
        "v_range_min": np.asarray(low, dtype="float64")[pair],
        "v_range_max": np.asarray(high, dtype="float64")[pair],
        "v_code_known": known_rows,
        "v_unit_ok": ~known_rows | np.asarray(found, dtype=bool)[pair],
    }


def _o2_columns(
    value: pd.Series,
    stream: str,
    rules: ValidationRules,
    code_codes: np.ndarray,
    code_values: np.ndarray,
    reading: np.ndarray | None,
):
    """The O2 of each row's reading (its first O2 row with a value) and whether the row is a
    concentration with a value."""
    ranges = rules.ranges_for(stream)
    o2_codes = {r.code for r in ranges if r.kind == "o2"}
    concentration_codes = {r.code for r in ranges if r.kind == "concentration"}
    is_o2_code = np.array([str(c) in o2_codes for c in code_values], dtype=bool)[code_codes]
    is_conc_code = np.array([str(c) in concentration_codes for c in code_values], dtype=bool)
    present = value.notna().to_numpy()
    concentration = is_conc_code[code_codes] & present
    is_o2 = is_o2_code & present
    if reading is None or not is_o2.any():
        return np.nan, concentration
    o2_rows = np.flatnonzero(is_o2)
    owners, first = np.unique(reading[o2_rows], return_index=True)
    by_reading = np.full(int(reading.max()) + 1, np.nan)
    by_reading[owners] = value.to_numpy(dtype="float64", na_value=np.nan)[o2_rows[first]]
    return by_reading[reading], concentration


def derive_parts(
    stream: str, frame: pd.DataFrame, registry: dict[str, pd.DataFrame], rules: ValidationRules
) -> Derived:
    """The partition split for its suite (see :class:`Derived`)."""
    out = frame.reset_index(drop=True)
    n = len(out)
    if stream not in MEASUREMENT_STREAMS:
        derived: dict[str, object] = {ROW: np.arange(n, dtype="int64")}
        derived.update(_time_columns(out, registry, rules))
        dup = out["reading_id"].duplicated(keep="first") if "reading_id" in out.columns else None
        derived["v_dup"] = dup.to_numpy() if dup is not None else False
        for column, kind in rules.columns(stream).items():
            if kind == "int" and column in out.columns:
                derived[f"n_{column}"] = _numeric(out[column]).to_numpy()
        for column, values in derived.items():
            out[column] = values
        everything = np.arange(n, dtype="int64")
        return Derived(out, None, everything, np.ones(n, dtype="int64"))

    starts = run_starts(out)
    lengths = np.diff(np.append(starts, n)).astype("int64")
    present = [c for c in READING_COLUMNS if c in out.columns]
    readings = out[present].take(starts).reset_index(drop=True)
    readings[ROW] = np.arange(len(starts), dtype="int64")
    for column, values in _time_columns(readings, registry, rules).items():
        readings[column] = values

    values_columns: dict[str, object] = {ROW: np.arange(n, dtype="int64")}
    reading = None
    if "reading_id" in out.columns:
        run_reading, _ = _factor(readings["reading_id"])
        reading = np.repeat(run_reading.astype("int64"), lengths)
    if "code" in out.columns:
        code_codes, code_values = _factor(out["code"])
    else:
        code_codes, code_values = np.zeros(n, dtype="int64"), np.array([None], dtype=object)
    if reading is not None or "code" in out.columns:
        key = code_codes.astype("int64")
        if reading is not None:
            key = reading * (len(code_values) + 1) + key
        values_columns["v_dup"] = pd.Series(key).duplicated(keep="first").to_numpy()
    else:
        values_columns["v_dup"] = False
    if "cn" in readings.columns:
        cn_codes, cn_values = pd.factorize(_plain(readings["cn"]))
        values_columns[COMMAND_COLUMN] = pd.Categorical.from_codes(
            np.repeat(cn_codes, lengths), categories=pd.Index(cn_values, dtype=object)
        )
    if "flag" in out.columns:
        flag_codes, flag_values = pd.factorize(_plain(out["flag"]))
        values_columns[FLAG_COLUMN] = pd.Categorical.from_codes(
            flag_codes, categories=pd.Index(flag_values, dtype=object)
        )
    if "code" in out.columns:
        value = _value(out)
        values_columns["v_value"] = value.to_numpy()
        values_columns.update(_range_columns(out, stream, rules, code_codes, code_values))
        if reading is not None:
            values_columns["v_o2"], values_columns["v_conc"] = _o2_columns(
                value, stream, rules, code_codes, code_values, reading
            )
    for column, values in values_columns.items():
        out[column] = values
    return Derived(out, readings, starts, lengths)


def derive(
    stream: str, frame: pd.DataFrame, registry: dict[str, pd.DataFrame], rules: ValidationRules
) -> pd.DataFrame:
    """Every ``v_`` column on every input row (the reading-level ones spread over their runs):
    a copy of ``frame`` with a fresh 0..n-1 index."""
    parts = derive_parts(stream, frame, registry, rules)
    out = parts.values
    if parts.readings is not None:
        run_of_row = np.repeat(np.arange(len(parts.starts)), parts.lengths)
        for column in parts.readings.columns:
            if column.startswith("v_") and column != ROW:
                out[column] = parts.readings[column].take(run_of_row).to_numpy()
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
