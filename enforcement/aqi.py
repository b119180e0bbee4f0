"""Ambient air-quality index (HJ 633) and the statistics it is computed from (GB 3095, HJ 663).

Frames:

- *minutes*: the long ``measurements`` rows of the ambient stream (``device_id``, ``data_time``
  tz-aware, ``code``, ``avg`` or ``rtd``, optionally ``reading_id``, ``valid``, ``cn``, ``stream``).
- *hourly* (wide): ``<key>``, ``hour_end`` (tz-aware Beijing; "16:00" covers 15:00-16:00) and one
  column per measured item ``so2, no2, co, o3_1h, pm10, pm25`` (µg/m³, CO mg/m³), NaN = invalid.
- *daily* (wide): ``<key>``, ``day`` (Beijing ``YYYY-MM-DD``), 24-hour means of ``so2, no2, co,
  pm10, pm25``, the daily maximum ``o3_1h`` and maximum 8-hour ``o3_8h``.

Invalid data is missing: never zero, never imputed. Every number (breakpoints, minimum counts) comes
from ``schemas/data`` through ``schemas.ambient`` and is chosen by ``edition``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from schemas.ambient import DEFAULT_EDITION, AqiRules, ambient_codes, aqi_rules, validity
from schemas.reading import BEIJING

#: AQI items an input frame may carry (``so2_24h`` is an optional extra for the hourly report).
AQI_ITEMS = ("so2", "no2", "co", "o3_1h", "o3_8h", "pm10", "pm25")
#: items measured hour by hour
HOURLY_ITEMS = ("so2", "no2", "co", "o3_1h", "pm10", "pm25")
#: items averaged over 24 hours for the daily values
MEAN_ITEMS = ("so2", "no2", "co", "pm10", "pm25")
ROUNDING_MODES = ("ceil", "half_up", "none")

_HOUR = pd.Timedelta(hours=1)
_DAY = pd.Timedelta(days=1)


# --------------------------------------------------------------------------------------------
# IAQI and AQI


def _round(values: np.ndarray, mode: str) -> np.ndarray:
    """Round IAQI values. Float noise is cleared first: 50 + 50/40 × 0.0 must stay 50, not 51."""
    if mode == "none":
        return values
    cleaned = np.round(values, 9)
    if mode == "ceil":
        return np.ceil(cleaned)
    if mode == "half_up":
        return np.floor(cleaned + 0.5)
    raise ValueError(f"rounding {mode!r}: expected one of {', '.join(ROUNDING_MODES)}")


def _interpolate(rules: AqiRules, table: str, concentrations: np.ndarray) -> np.ndarray:
    """HJ 633 formula: IAQI = (I_hi − I_lo)/(BP_hi − BP_lo) × (C − BP_lo) + I_lo.

    ``np.interp`` is exactly this linear interpolation between adjacent breakpoints, and the
    breakpoints are continuous, so 35.1 µg/m³ of PM2.5 lies between 35 and 75 (no 50/51 gap).
    Above the top breakpoint: the scale maximum when the table reaches it, else NaN (no index; the
    caller applies the standard's fallback).
    """
    bp = rules.breakpoints[table]
    top_iaqi = bp.iaqis[-1]
    above = rules.scale_max if top_iaqi >= rules.scale_max else np.nan
    return np.interp(concentrations, bp.concentrations, bp.iaqis, right=above)


def _resolve_rounding(rules: AqiRules, rounding: str | None) -> str:
    mode = rules.rounding if rounding is None else rounding
    if mode not in ROUNDING_MODES:
        raise ValueError(f"rounding {mode!r}: expected one of {', '.join(ROUNDING_MODES)}")
    return mode


def iaqi(
    pollutant_kind: str,
    concentration: float | None,
    edition: str = DEFAULT_EDITION,
    rounding: str | None = None,
) -> int | float | None:
    """IAQI of one concentration on one breakpoint table (``pm25_24h``, ``so2_1h``, ``o3_8h`` …).

    None when the concentration is missing, or above the top of a table that stops below the scale
    maximum (SO2 1-hour over 800, O3 8-hour over 800: the standard reports another IAQI instead).
    An int unless ``rounding="none"``. A negative concentration is an error, not a zero.
    """
    rules = aqi_rules(edition)
    if pollutant_kind not in rules.breakpoints:
        known = ", ".join(sorted(rules.breakpoints))
        raise KeyError(f"no breakpoint table {pollutant_kind!r} in edition {edition} ({known})")
    if concentration is None or pd.isna(concentration):
        return None
    value = float(concentration)
    if value < 0:
        raise ValueError(f"{pollutant_kind}: negative concentration {value}")
    mode = _resolve_rounding(rules, rounding)
    out = _round(_interpolate(rules, pollutant_kind, np.array([value])), mode)[0]
    if np.isnan(out):
        return None
    return float(out) if mode == "none" else int(out)


def _numeric_column(df: pd.DataFrame, column: str) -> np.ndarray:
    """Column as floats; a non-numeric or negative value is an error naming the row and column."""
    raw = df[column]
    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
        stripped = raw.astype("string").str.strip()
        raw = stripped.mask(stripped == "")
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = bad.idxmax()
        raise ValueError(f"row {row}, column {column!r}: {df.at[row, column]!r} is not a number")
    arr = values.to_numpy(dtype="float64", na_value=np.nan)
    negative = arr < 0
    if negative.any():
        row = df.index[int(np.argmax(negative))]
        raise ValueError(f"row {row}, column {column!r}: negative concentration {arr[negative][0]}")
    return arr


def _item_iaqis(df: pd.DataFrame, kind: str, rules: AqiRules) -> dict[str, np.ndarray]:
    """Unrounded IAQI per item present in ``df``, with the above-top fallbacks applied."""
    if kind not in rules.kinds:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(rules.kinds)}")
    mapping = rules.kinds[kind]
    out: dict[str, np.ndarray] = {}
    for item, table in mapping.items():
        if item not in df.columns:
            continue
        conc = _numeric_column(df, item)
        values = _interpolate(rules, table, conc)
        if table in rules.above_top:
            fallback_table, fallback_column = rules.above_top[table]
            over = np.isnan(values) & ~np.isnan(conc)
            if over.any():
                # the standard's fallback concentration when the caller supplied it, else the
                # same concentration on the fallback table
                alt = conc
                if fallback_column in df.columns and fallback_column != item:
                    supplied = _numeric_column(df, fallback_column)
                    alt = np.where(np.isnan(supplied), conc, supplied)
                values = np.where(over, _interpolate(rules, fallback_table, alt), values)
        out[item] = values
    return out


def _category_columns(aqi: np.ndarray, rules: AqiRules) -> tuple[list, list, list]:
    en: list = []
    zh: list = []
    color: list = []
    for value in aqi:
        cat = None
        if not np.isnan(value):
            cat = next((c for c in rules.categories if value <= c.aqi_max), rules.categories[-1])
        en.append(cat.name_en if cat else None)
        zh.append(cat.name_zh if cat else None)
        color.append(cat.color if cat else None)
    return en, zh, color


def compute_aqi(
    df: pd.DataFrame,
    kind: str = "hourly",
    edition: str = DEFAULT_EDITION,
    rounding: str | None = None,
) -> pd.DataFrame:
    """Add ``iaqi_<item>``, ``aqi``, ``category``, ``category_zh``, ``color``,
    ``primary_pollutants`` and ``exceeding_pollutants`` to a copy of ``df``.

    Items ``so2, no2, co, o3_1h, o3_8h, pm10, pm25`` are read when present (absent or empty =
    missing). ``kind="hourly"`` is the real-time report: 1-hour SO2/NO2/CO, PM as the 24-hour
    sliding means the caller puts in ``pm10``/``pm25``, O3 1-hour and 8-hour; an optional
    ``so2_24h`` column supplies the 24-hour SO2 mean reported when 1-hour SO2 exceeds 800.
    ``kind="daily"``: 24-hour means, O3 daily maximum 1-hour and 8-hour. AQI is the largest
    rounded IAQI; NA when no item is valid. Primary pollutants (a tuple of names) only when AQI is
    above 50; exceeding pollutants: IAQI above 100.
    """
    rules = aqi_rules(edition)
    mode = _resolve_rounding(rules, rounding)
    raw = _item_iaqis(df, kind, rules)
    out = df.copy()
    n = len(df)
    rounded = {item: _round(values, mode) for item, values in raw.items()}
    dtype = "Float64" if mode == "none" else "Int64"
    for item in rules.kinds[kind]:
        values = rounded.get(item, np.full(n, np.nan))
        out[f"iaqi_{item}"] = pd.array(values, dtype="Float64").astype(dtype)
    if rounded:
        stack = np.vstack(list(rounded.values()))
        # IAQI >= 0, so -1 stands for "missing" without nanmax's all-NaN warning
        best = np.where(np.isnan(stack), -1.0, stack).max(axis=0)
        aqi = np.where(best < 0, np.nan, best)
    else:
        stack = np.empty((0, n))
        aqi = np.full(n, np.nan)
    out["aqi"] = pd.array(aqi, dtype="Float64").astype(dtype)
    out["category"], out["category_zh"], out["color"] = _category_columns(aqi, rules)
    items = list(rounded)
    names = [rules.names[item][0] for item in items]
    primary: list[tuple[str, ...]] = []
    exceeding: list[tuple[str, ...]] = []
    for j in range(n):
        column = stack[:, j]
        value = aqi[j]
        if np.isnan(value) or value <= rules.primary_aqi_above:
            primary.append(())
        else:
            primary.append(tuple(nm for nm, v in zip(names, column, strict=True) if v == value))
        exceeding.append(
            tuple(
                nm
                for nm, v in zip(names, column, strict=True)
                if not np.isnan(v) and v > rules.exceeding_iaqi_above
            )
        )
    out["primary_pollutants"] = pd.Series(primary, index=out.index, dtype=object)
    out["exceeding_pollutants"] = pd.Series(exceeding, index=out.index, dtype=object)
    return out


# --------------------------------------------------------------------------------------------
# Validity: minutes -> hours -> sliding windows -> days -> months


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


def _aware(series: pd.Series, column: str) -> pd.Series:
    values = pd.to_datetime(series)
    if values.dt.tz is None:
        raise ValueError(f"{column}: timestamps must be tz-aware (got naive values)")
    return values.dt.tz_convert(BEIJING)


def hourly_from_minutes(
    minutes_df: pd.DataFrame, edition: str = DEFAULT_EDITION, key: str = "device_id"
) -> pd.DataFrame:
    """Hourly means per station from minute records (GB 3095-2012 table 4: >= 45 minutes).

    Keeps rows of the ambient stream, of the minute command when ``cn`` is present, and marked
    ``valid``; value = ``avg``, else ``rtd``. A reading sent twice (same ``reading_id``) counts
    once, and so does a minute sent under two ids (their values are averaged). The hour is the
    Beijing hour labelled by its end. Returns the wide hourly frame with ``n_min_<item>`` counts;
    an hour with too few minutes has NaN, not a partial mean.
    """
    _require(minutes_df, (key, "data_time", "code"), "hourly_from_minutes")
    frame = minutes_df
    if "stream" in frame.columns:
        frame = frame[frame["stream"] == "ambient"]
    if "cn" in frame.columns:
        frame = frame[frame["cn"].astype("string") == str(validity("minute_cn", edition))]
    if "valid" in frame.columns:
        frame = frame[frame["valid"].fillna(False).astype(bool)]
    codes = ambient_codes()
    frame = frame[frame["code"].isin(list(codes))]
    if "reading_id" in frame.columns:
        frame = frame.drop_duplicates(["reading_id", "code"])
    frame = frame.reset_index(drop=True)  # the columns below are aligned on this index
    value = pd.Series(np.nan, index=frame.index, dtype="float64")
    for column in ("rtd", "avg"):  # avg wins where both are present
        if column in frame.columns:
            v = pd.to_numeric(frame[column], errors="coerce")
            value = v.where(v.notna(), value)
    stamps = _aware(frame["data_time"], "data_time")
    minute = stamps.dt.floor("min")
    if validity("minute_stamp_marks_start", edition):
        hour_end = minute.dt.floor("h") + _HOUR
    else:
        hour_end = minute.dt.ceil("h")
    rows = pd.DataFrame(
        {
            key: frame[key],
            "item": frame["code"].map(codes),
            "minute": minute,
            "hour_end": hour_end,
            "value": value,
        }
    ).dropna(subset=["value"])
    per_minute = rows.groupby([key, "item", "hour_end", "minute"], as_index=False)["value"].mean()
    hourly = per_minute.groupby([key, "item", "hour_end"], as_index=False).agg(
        mean=("value", "mean"), n=("value", "size")
    )
    minimum = int(validity("hour_min_minutes", edition))
    hourly["mean"] = hourly["mean"].where(hourly["n"] >= minimum)
    # (station, item, hour) is unique here; only station-hours that had data become rows
    means = hourly.pivot(index=[key, "hour_end"], columns="item", values="mean")
    counts = hourly.pivot(index=[key, "hour_end"], columns="item", values="n")
    wide = means.join(counts.add_prefix("n_min_")).reset_index()
    wide.columns.name = None
    for item in HOURLY_ITEMS:
        if item not in wide.columns:
            wide[item] = np.nan
        n_col = f"n_min_{item}"
        wide[n_col] = wide[n_col].fillna(0).astype("int64") if n_col in wide else 0
    wide["hour_end"] = pd.to_datetime(wide["hour_end"]).dt.tz_convert(BEIJING)
    columns = [key, "hour_end", *HOURLY_ITEMS, *(f"n_min_{i}" for i in HOURLY_ITEMS)]
    return wide[columns].sort_values([key, "hour_end"]).reset_index(drop=True)


def _regular_grid(hourly: pd.DataFrame, key: str | None, full_days: bool) -> pd.DataFrame:
    """Each series on a complete hourly grid so that a missing hour counts as missing.

    ``full_days`` extends the grid to whole Beijing days (01:00 to the next 00:00 labels).
    """
    _require(hourly, ["hour_end"] + ([key] if key else []), "hourly frame")
    frame = hourly.copy()
    frame["hour_end"] = _aware(frame["hour_end"], "hour_end")
    if frame.duplicated([key, "hour_end"] if key else ["hour_end"]).any():
        raise ValueError("hourly frame: more than one row for the same station and hour")
    for item in HOURLY_ITEMS:
        if item not in frame.columns:
            frame[item] = np.nan
        frame[item] = pd.to_numeric(frame[item], errors="coerce").astype("float64")
    parts = []
    groups = frame.groupby(key, sort=True) if key else [(None, frame)]
    for name, group in groups:
        first, last = group["hour_end"].min(), group["hour_end"].max()
        if full_days:
            first = (first - _HOUR).floor("D") + _HOUR
            last = (last - _HOUR).floor("D") + _DAY
        grid = pd.date_range(first, last, freq="h")
        part = group.set_index("hour_end")[list(HOURLY_ITEMS)].reindex(grid)
        part.index.name = "hour_end"
        part = part.reset_index()
        if key:
            part.insert(0, key, name)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=([key] if key else []) + ["hour_end", *HOURLY_ITEMS])
    return pd.concat(parts, ignore_index=True)


def _per_series(grid: pd.DataFrame, key: str | None, func) -> pd.DataFrame:
    if key is None:
        return func(grid)
    return pd.concat([func(g) for _, g in grid.groupby(key, sort=True)], ignore_index=True)


def _window_mean(series: pd.Series, hours: int, minimum: int) -> pd.Series:
    return series.rolling(hours, min_periods=minimum).mean()


def o3_8h_sliding(
    hourly_df: pd.DataFrame, key: str | None = "device_id", edition: str = DEFAULT_EDITION
) -> pd.DataFrame:
    """O3 8-hour sliding mean ending at each hour (>= 6 valid hours of 8, GB 3095-2012)."""
    window = int(validity("o3_8h_window_hours", edition))
    minimum = int(validity("o3_8h_min_hours", edition))
    grid = _regular_grid(hourly_df, key, full_days=False)

    def one(g: pd.DataFrame) -> pd.DataFrame:
        out = g[([key] if key else []) + ["hour_end"]].copy()
        out["o3_8h"] = _window_mean(g["o3_1h"], window, minimum).to_numpy()
        return out

    return _per_series(grid, key, one)


def pm_24h_sliding(
    hourly_df: pd.DataFrame, key: str | None = "device_id", edition: str = DEFAULT_EDITION
) -> pd.DataFrame:
    """PM10 and PM2.5 24-hour sliding means ending at each hour (>= 20 valid hours), the values
    the real-time report indexes. SO2's sliding mean comes along as ``so2_24h`` for the report's
    fallback when 1-hour SO2 exceeds 800."""
    hours = int(validity("pm_sliding_hours", edition))
    minimum = int(validity("day_min_hours", edition))
    grid = _regular_grid(hourly_df, key, full_days=False)

    def one(g: pd.DataFrame) -> pd.DataFrame:
        out = g[([key] if key else []) + ["hour_end"]].copy()
        for item, name in (("pm10", "pm10"), ("pm25", "pm25"), ("so2", "so2_24h")):
            out[name] = _window_mean(g[item], hours, minimum).to_numpy()
        return out

    return _per_series(grid, key, one)


def realtime_input(
    hourly_df: pd.DataFrame, key: str | None = "device_id", edition: str = DEFAULT_EDITION
) -> pd.DataFrame:
    """The hourly (real-time) report's input: 1-hour SO2, NO2, CO, O3; O3 8-hour sliding; PM
    24-hour sliding; ``so2_24h``. Feed it to ``compute_aqi(kind="hourly")``."""
    keys = ([key] if key else []) + ["hour_end"]
    grid = _regular_grid(hourly_df, key, full_days=False)
    base = grid[keys + ["so2", "no2", "co", "o3_1h"]]
    merged = base.merge(o3_8h_sliding(grid, key, edition), on=keys)
    return merged.merge(pm_24h_sliding(grid, key, edition), on=keys)


def rolling_daily_concentrations(
    hourly_df: pd.DataFrame,
    key: str | None = "device_id",
    edition: str = DEFAULT_EDITION,
    full_days: bool = False,
) -> pd.DataFrame:
    """Daily statistics of the 24 hours ending at each hour (the plan's rolling "daily" value).

    24-hour means of SO2, NO2, CO, PM10, PM2.5 (>= 20 valid hours, count in ``n_<item>``); O3
    maximum 1-hour (>= 20 valid hours, a default); O3 maximum 8-hour over the 8-hour means that lie
    wholly in the window, i.e. the 17 ending at hours 8..24 of it (>= 14 valid, HJ 663-2013).
    """
    day_hours = int(validity("pm_sliding_hours", edition))
    min_hours = int(validity("day_min_hours", edition))
    o3_1h_min = int(validity("o3_max1h_min_hours", edition))
    window8 = int(validity("o3_8h_window_hours", edition))
    min8 = int(validity("o3_8h_min_hours", edition))
    n_means = day_hours - int(validity("o3_max8h_first_end_hour", edition)) + 1
    min_means = int(validity("o3_max8h_min_means", edition))
    grid = _regular_grid(hourly_df, key, full_days=full_days)

    def one(g: pd.DataFrame) -> pd.DataFrame:
        out = g[([key] if key else []) + ["hour_end"]].copy()
        for item in MEAN_ITEMS:
            out[item] = _window_mean(g[item], day_hours, min_hours).to_numpy()
            out[f"n_{item}"] = g[item].rolling(day_hours, min_periods=1).count().to_numpy()
        out["o3_1h"] = g["o3_1h"].rolling(day_hours, min_periods=o3_1h_min).max().to_numpy()
        means8 = _window_mean(g["o3_1h"], window8, min8)
        out["o3_8h"] = means8.rolling(n_means, min_periods=min_means).max().to_numpy()
        return out

    result = _per_series(grid, key, one)
    for item in MEAN_ITEMS:
        result[f"n_{item}"] = result[f"n_{item}"].fillna(0).astype("int64")
    return result


def daily_from_hourly(
    hourly_df: pd.DataFrame, key: str | None = "device_id", edition: str = DEFAULT_EDITION
) -> pd.DataFrame:
    """Beijing calendar-day values: the rolling statistics of the window ending at 24:00.

    Day D holds the hours labelled D 01:00 … D+1 00:00 (hour-end labels), so its O3 8-hour
    means ending 08:00-24:00 are the 17 of the window.
    """
    rolled = rolling_daily_concentrations(hourly_df, key, edition, full_days=True)
    at_midnight = rolled[rolled["hour_end"] == rolled["hour_end"].dt.floor("D")].copy()
    at_midnight.insert(
        1 if key else 0, "day", (at_midnight["hour_end"] - _DAY).dt.strftime("%Y-%m-%d")
    )
    return at_midnight.drop(columns="hour_end").reset_index(drop=True)


def monthly_from_daily(
    daily_df: pd.DataFrame,
    key: str | None = "device_id",
    items: Iterable[str] = ("pm25", "pm10", "so2", "no2"),
    edition: str = DEFAULT_EDITION,
) -> pd.DataFrame:
    """Monthly means of valid daily values; a month needs >= 27 of them (February 25).

    Only arithmetic means: the O3 and CO monthly statistics of HJ 663 are percentiles, not done here.
    """
    _require(daily_df, ["day"] + ([key] if key else []), "daily frame")
    items = list(items)
    frame = daily_df.copy()
    frame["month"] = pd.to_datetime(frame["day"]).dt.strftime("%Y-%m")
    groups = [key, "month"] if key else ["month"]
    for item in items:
        frame[item] = pd.to_numeric(frame[item], errors="coerce")
    agg = frame.groupby(groups, as_index=False)[items].agg(["mean", "count"])
    agg.columns = [
        c[0] if c[1] in ("", None) else (c[0] if c[1] == "mean" else f"n_days_{c[0]}")
        for c in agg.columns
    ]
    normal = int(validity("month_min_days", edition))
    february = int(validity("month_min_days_february", edition))
    needed = np.where(agg["month"].str.endswith("-02"), february, normal)
    for item in items:
        agg[item] = agg[item].where(agg[f"n_days_{item}"] >= needed)
    return agg


# --------------------------------------------------------------------------------------------
# Stations -> subdistricts -> district


def average_stations(
    df: pd.DataFrame,
    stations: pd.DataFrame,
    by: str | None = "subdistrict_id",
    time_col: str = "hour_end",
    station_key: str = "device_id",
) -> pd.DataFrame:
    """Average the stations' concentrations per area and time (``by=None``: the whole district).

    Concentrations are averaged first and IAQI computed afterwards (HJ 633 practice for city
    values); an invalid station value is skipped, not counted as zero. ``n_stations`` counts the
    stations with at least one valid item. A station missing from the registry is an error.
    """
    _require(df, [station_key, time_col], "station frame")
    _require(stations, [station_key] + ([by] if by else []), "stations registry")
    items = [c for c in AQI_ITEMS + ("so2_24h",) if c in df.columns]
    frame = df.copy()
    if by:
        lookup = stations.drop_duplicates(station_key).set_index(station_key)[by]
        frame[by] = frame[station_key].map(lookup)
        unknown = sorted(frame.loc[frame[by].isna(), station_key].astype(str).unique())
        if unknown:
            raise ValueError(f"stations not in the registry: {', '.join(unknown)}")
    for item in items:
        frame[item] = pd.to_numeric(frame[item], errors="coerce")
    frame["_any"] = frame[items].notna().any(axis=1)
    groups = [by, time_col] if by else [time_col]
    out = frame.groupby(groups, as_index=False, sort=True).agg(
        **{item: (item, "mean") for item in items}, n_stations=("_any", "sum")
    )
    out["n_stations"] = out["n_stations"].astype("int64")
    return out


def area_aqi(
    df: pd.DataFrame,
    stations: pd.DataFrame,
    kind: str = "daily",
    by: str | None = "subdistrict_id",
    time_col: str = "day",
    edition: str = DEFAULT_EDITION,
) -> pd.DataFrame:
    """AQI of subdistricts (or of the district, ``by=None``) from station values."""
    return compute_aqi(average_stations(df, stations, by, time_col), kind, edition)
