"""Tamper and fault heuristics: each rule writes suspicion records, never drops data.

A suspicion is one row: ``device_id``, ``rule``, ``code``, ``window_start``, ``window_end``
(UTC), ``statistic`` and the ``threshold`` it crossed, ``evidence`` (JSON list of reading ids) and
a ``detail`` sentence. The rules (parameters in validation.toml ``[tamper.*]``):

- ``flatline``: a channel that should move holds one value for ``flatline_min_minutes`` valid
  minutes in a row (blocked probe, a resistor on the signal line, an invented constant). Statistic:
  run length in minutes.
- ``dilution``: for ``dilution_min_hours`` consecutive hours, O2 at least ``dilution_o2_rise_pp``
  above the stack's median, a measured concentration ``dilution_conc_drop`` below its median,
  and the flue inconsistent with a load change: cooler by ``dilution_temp_drop_c`` while the
  velocity is up by ``dilution_velocity_rise`` (a real low load lowers both). Without temperature
  or velocity channels the flue test is skipped and the detail says so. Statistic: mean O2 rise.
- ``ratio_step``: the median hourly ratio of two pollutants after an hour differs from the median
  before it by ``ratio_step_factor`` and by ``ratio_min_z`` robust sigmas (a coefficient
  changed on one channel). Statistic: the factor.
- ``flag_cluster``: hours with hiding flags (``cluster_flags``) or gaps are at least
  ``cluster_factor`` times more frequent within ``cluster_window_hours`` of events (given
  exceedances / inspections, and the device's own top hours) than elsewhere. Statistic: the
  ratio of the two shares.
- ``same_series``: two devices send identical hours (every minute equal, at least
  ``same_min_distinct`` distinct values) for ``same_min_hours`` hours of a channel. The copy
  must arrive after its source, so the device received later (by more than ``same_lag_s``) is
  named; when the lag cannot tell, both are. Statistic: shared hours.
- ``clock_jump``: the device's data time minus receive time steps by ``clock_jump_s`` between
  consecutive readings (interval records: only forward steps, since a logger replaying its store
  after an outage legitimately steps back). Statistic: the step in seconds.
- ``neighbour``: a micro-station's hourly PM2.5 (log) departs from its neighbours' median, less its
  own usual bias, by ``neighbour_z`` times the network's spread that hour, for
  ``neighbour_min_hours`` hours of an episode. Statistic: median |z| of the episode.

Input ``rows``: validated measurement rows (``ValidationOutcome.rows`` of any number of days,
quarantined rows included: the clock rule needs them; the value rules use rows whose ``valid`` is
true).

A district's week does not fit in memory at once: :func:`detect_chunked` gives what
:func:`detect_all` gives, reading a group of devices at a time. Every rule but two judges a device
on its own rows alone; ``same_series`` and ``neighbour`` run in two phases (a small per-device
summary of every group, then the rows of just the devices it names).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from schemas.validation_rules import ValidationRules, load_rules

SUSPICION_COLUMNS = [
    "device_id",
    "rule",
    "code",
    "window_start",
    "window_end",
    "statistic",
    "threshold",
    "evidence",
    "detail",
]
INTERVAL_CNS = frozenset({"2051", "2061", "2031"})
HOUR = pd.Timedelta(hours=1)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=SUSPICION_COLUMNS)


def _evidence(ids, limit: int) -> tuple[str, str]:
    unique = list(dict.fromkeys(str(i) for i in ids))
    note = f" (evidence: first {limit} of {len(unique)} readings)" if len(unique) > limit else ""
    return json.dumps(unique[:limit]), note


def _record(
    device_id: str,
    rule: str,
    code: str,
    start,
    end,
    statistic: float,
    threshold: float,
    ids,
    detail: str,
    limit: int,
) -> dict:
    evidence, note = _evidence(ids, limit)
    return {
        "device_id": device_id,
        "rule": rule,
        "code": code,
        "window_start": pd.Timestamp(start).tz_convert("UTC"),
        "window_end": pd.Timestamp(end).tz_convert("UTC"),
        "statistic": float(statistic),
        "threshold": float(threshold),
        "evidence": evidence,
        "detail": detail + note,
    }


def _frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(records, columns=SUSPICION_COLUMNS) if records else _empty()


def minute_values(rows: pd.DataFrame, rules: ValidationRules) -> pd.DataFrame:
    """Valid minute records: device_id, stream, code, data_time (UTC), value, reading_id, received_at."""
    cn = str(rules.param("tamper.minute_cn"))
    picked = rows[rows["cn"].astype("str") == cn]
    if "valid" in picked.columns:
        picked = picked[picked["valid"].astype("bool")]
    value = picked["avg"].astype("float64")
    if "rtd" in picked.columns:
        value = value.fillna(picked["rtd"].astype("float64"))
    out = pd.DataFrame(
        {
            "device_id": picked["device_id"].astype("str"),
            "stream": picked["stream"].astype("str"),
            "code": picked["code"].astype("str"),
            "data_time": picked["data_time"].dt.tz_convert("UTC"),
            "value": value,
            "reading_id": picked["reading_id"].astype("str"),
            "received_at": picked["received_at"].dt.tz_convert("UTC"),
        }
    )
    out = out[out["value"].notna()]
    return out.drop_duplicates(["device_id", "code", "data_time"], keep="first")


def _no_minutes() -> pd.DataFrame:
    """An empty :func:`minute_values` frame (typed, so that the rules run on it unchanged)."""
    when = pd.Series(dtype="datetime64[ns, UTC]")
    text = pd.Series(dtype="str")
    return pd.DataFrame(
        {
            "device_id": text,
            "stream": text,
            "code": text,
            "data_time": when,
            "value": pd.Series(dtype="float64"),
            "reading_id": text,
            "received_at": when,
        }
    )


def rows_fetcher(rows: pd.DataFrame) -> Callable[[list[str]], pd.DataFrame]:
    """``fetch_rows`` over rows already in memory: the rows of the devices asked for, in order."""
    device = rows["device_id"].astype("str")

    def fetch(device_ids: list[str]) -> pd.DataFrame:
        return rows[device.isin([str(d) for d in device_ids]).to_numpy()]

    return fetch


def hourly_means(minutes: pd.DataFrame, min_points: int) -> pd.DataFrame:
    """device_id, code, hour (UTC start), mean, n; hours with fewer than ``min_points`` dropped."""
    frame = minutes.assign(hour=minutes["data_time"].dt.floor("h"))
    out = (
        frame.groupby(["device_id", "code", "hour"], sort=True)["value"]
        .agg(mean="mean", n="size")
        .reset_index()
    )
    return out[out["n"] >= min_points]


# --- flatline --------------------------------------------------------------------------------------


def flatline(rows: pd.DataFrame, rules: ValidationRules | None = None) -> pd.DataFrame:
    """Runs of one value on a channel that should move (see the module docstring)."""
    rules = rules or load_rules()
    codes = rules.param("tamper.flatline_codes")
    lengths = rules.param("tamper.flatline_min_minutes")
    tol = float(rules.param("tamper.flatline_abs_tol"))
    floor = float(rules.param("tamper.flatline_min_abs_value"))
    max_gap = float(rules.param("tamper.flatline_max_gap_s"))
    limit = int(rules.param("tamper.max_evidence"))
    minutes = minute_values(rows, rules)
    records = []
    for stream, stream_codes in codes.items():
        mine = minutes[(minutes["stream"] == stream) & minutes["code"].isin(stream_codes)]
        if mine.empty:
            continue
        mine = mine.sort_values(["device_id", "code", "data_time"], kind="stable")
        same_series = (mine["device_id"] == mine["device_id"].shift()) & (
            mine["code"] == mine["code"].shift()
        )
        gap = mine["data_time"].diff().dt.total_seconds()
        moved = (mine["value"] - mine["value"].shift()).abs() > tol
        breaks = ~same_series | moved | (gap > max_gap)
        run = breaks.cumsum()
        sizes = run.map(run.value_counts())
        need = int(lengths[stream])
        long = mine[(sizes >= need) & (mine["value"].abs() > floor)]
        for (device_id, code, _), part in long.groupby(
            ["device_id", "code", run[long.index]], sort=True
        ):
            value = part["value"].iloc[0]
            records.append(
                _record(
                    device_id,
                    "flatline",
                    code,
                    part["data_time"].iloc[0],
                    part["data_time"].iloc[-1] + pd.Timedelta(minutes=1),
                    len(part),
                    need,
                    part["reading_id"],
                    f"{code} held {value:g} for {len(part)} valid minutes",
                    limit,
                )
            )
    return _frame(records)


# --- dilution ------------------------------------------------------------------------------------------


def _runs(hours: pd.Series) -> list[tuple[int, int]]:
    """[first, last] positions of runs of consecutive hours in a sorted hour series."""
    if hours.empty:
        return []
    step = hours.diff() != HOUR
    ids = step.cumsum().to_numpy()
    out = []
    for value in np.unique(ids):
        where = np.flatnonzero(ids == value)
        out.append((int(where[0]), int(where[-1])))
    return out


def dilution(rows: pd.DataFrame, rules: ValidationRules | None = None) -> pd.DataFrame:
    """Dilution air: O2 up, measured concentration down, flue cooler yet faster."""
    rules = rules or load_rules()
    ranges = rules.ranges_for("cems")
    o2_code = next((r.code for r in ranges if r.kind == "o2"), None)
    temp_code = next((r.code for r in ranges if r.kind == "temperature"), None)
    conc_codes = sorted({r.code for r in ranges if r.kind == "concentration"})
    velocity_code = "a01011"
    rise = float(rules.param("tamper.dilution_o2_rise_pp"))
    drop = float(rules.param("tamper.dilution_conc_drop"))
    temp_drop = float(rules.param("tamper.dilution_temp_drop_c"))
    vel_rise = float(rules.param("tamper.dilution_velocity_rise"))
    min_hours = int(rules.param("tamper.dilution_min_hours"))
    limit = int(rules.param("tamper.max_evidence"))
    minutes = minute_values(rows, rules)
    minutes = minutes[minutes["stream"] == "cems"]
    hourly = hourly_means(minutes, int(rules.param("tamper.hour_min_points")))
    if hourly.empty or o2_code is None:
        return _empty()
    wide = hourly.pivot_table(index=["device_id", "hour"], columns="code", values="mean")
    records = []
    for device_id, table in wide.groupby(level="device_id", sort=True):
        # the stack's own channels: the pivot holds every code any stack of the frame sent, so
        # whether the flue can be judged must not depend on which other stacks are read with it
        table = table.droplevel("device_id").sort_index().dropna(axis=1, how="all")
        if o2_code not in table:
            continue
        base = table.median()
        o2_up = table[o2_code] - base[o2_code] >= rise
        conc = [c for c in conc_codes if c in table and base[c] > 0]
        if not conc:
            continue
        low = pd.concat([table[c] <= (1 - drop) * base[c] for c in conc], axis=1).any(axis=1)
        flue_judged = temp_code in table and velocity_code in table
        if flue_judged:
            cooler = table[temp_code] <= base[temp_code] - temp_drop
            faster = table[velocity_code] >= (1 + vel_rise) * base[velocity_code]
            suspicious = o2_up & low & cooler & faster
        else:
            suspicious = o2_up & low
        hours = pd.Series(table.index[suspicious.to_numpy()])
        for first, last in _runs(hours):
            if last - first + 1 < min_hours:
                continue
            start, end = hours.iloc[first], hours.iloc[last] + HOUR
            window = table.loc[start : hours.iloc[last]]
            o2_rise = float((window[o2_code] - base[o2_code]).mean())
            ratios = ", ".join(f"{c} x{(window[c] / base[c]).mean():.2f}" for c in conc)
            flue = (
                f"; flue {window[temp_code].mean() - base[temp_code]:+.1f} degC, velocity "
                f"x{(window[velocity_code] / base[velocity_code]).mean():.2f}"
                if flue_judged
                else "; flue not judged (no temperature or velocity channel)"
            )
            ids = minutes.loc[
                (minutes["device_id"] == device_id)
                & (minutes["data_time"] >= start)
                & (minutes["data_time"] < end),
                "reading_id",
            ]
            records.append(
                _record(
                    device_id,
                    "dilution",
                    o2_code,
                    start,
                    end,
                    o2_rise,
                    rise,
                    ids,
                    f"{last - first + 1} h with O2 {o2_rise:+.1f} pp over its median ({ratios}){flue}",
                    limit,
                )
            )
    return _frame(records)


# --- ratio step ------------------------------------------------------------------------------------


def around(values: np.ndarray, window: int, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Per position i: the median (or mean) of the ``window`` values before i, and of i and the
    ``window - 1`` after it (NaN where a window is incomplete)."""
    before = getattr(pd.Series(values).rolling(window), how)().shift(1).to_numpy()
    after = getattr(pd.Series(values[::-1]).rolling(window), how)().to_numpy()[::-1]
    return before, after


def ratio_step(rows: pd.DataFrame, rules: ValidationRules | None = None) -> pd.DataFrame:
    """A step in the ratio between two pollutants of one stack (a changed coefficient)."""
    rules = rules or load_rules()
    pairs = rules.param("tamper.ratio_pairs")
    window = int(rules.param("tamper.ratio_window_hours"))
    factor = float(rules.param("tamper.ratio_step_factor"))
    min_z = float(rules.param("tamper.ratio_min_z"))
    floor = float(rules.param("tamper.ratio_min_value"))
    limit = int(rules.param("tamper.max_evidence"))
    minutes = minute_values(rows, rules)
    minutes = minutes[minutes["stream"] == "cems"]
    hourly = hourly_means(minutes, int(rules.param("tamper.hour_min_points")))
    if hourly.empty:
        return _empty()
    wide = hourly.pivot_table(index=["device_id", "hour"], columns="code", values="mean")
    records = []
    for device_id, table in wide.groupby(level="device_id", sort=True):
        table = table.droplevel("device_id").sort_index()
        for a, b in pairs:
            if a not in table or b not in table:
                continue
            both = table[[a, b]].dropna()
            both = both[(both[a] > floor) & (both[b] > floor)]
            if len(both) < 2 * window + 1:
                continue
            log_ratio = np.log(both[a].to_numpy() / both[b].to_numpy())
            before, after = around(log_ratio, window, "median")
            step = np.nan_to_num(after - before)
            # medians detect robustly but plateau around a step; means peak exactly at it
            mean_before, mean_after = around(log_ratio, window, "mean")
            mean_step = np.abs(np.nan_to_num(mean_after - mean_before))
            noise = 1.4826 * np.nanmedian(np.abs(np.diff(log_ratio))) / math.sqrt(2)
            noise = max(noise, 1e-9)
            # standard error of the difference of two window medians of iid noise
            scale = noise * math.sqrt(math.pi / window)
            candidate = (np.abs(step) >= math.log(factor)) & (np.abs(step) / scale >= min_z)
            strength = np.where(candidate, np.abs(step), 0.0)
            while strength.max(initial=0.0) > 0:
                peak = int(np.argmax(strength))
                lo, hi = max(0, peak - window), min(len(strength), peak + window)
                i = lo + int(np.argmax(np.where(strength[lo:hi] > 0, mean_step[lo:hi], -1.0)))
                strength[lo:hi] = 0.0
                at = both.index[i]
                start = both.index[max(0, i - window)]
                end = both.index[min(len(both) - 1, i + window - 1)] + HOUR
                ids = minutes.loc[
                    (minutes["device_id"] == device_id)
                    & minutes["code"].isin([a, b])
                    & (minutes["data_time"] >= at - HOUR)
                    & (minutes["data_time"] < at + HOUR),
                    "reading_id",
                ]
                changed = math.exp(abs(step[i]))
                direction = "rose" if step[i] > 0 else "fell"
                records.append(
                    _record(
                        device_id,
                        "ratio_step",
                        f"{a}/{b}",
                        start,
                        end,
                        changed,
                        factor,
                        ids,
                        f"median {a}/{b} {direction} x{changed:.2f} at {at.isoformat()} "
                        f"({abs(step[i]) / scale:.0f} sigma)",
                        limit,
                    )
                )
    return _frame(records)


# --- flags and gaps clustering around events ------------------------------------------------------


def _event_hours(events: pd.DataFrame | None, device_id: str) -> pd.DatetimeIndex:
    if events is None or events.empty:
        return pd.DatetimeIndex([], tz="UTC")
    mine = events[events["device_id"].astype("str") == device_id]
    at = pd.to_datetime(mine["at"], utc=True)
    return pd.DatetimeIndex(at.dt.floor("h").unique())


def flag_cluster(
    rows: pd.DataFrame, rules: ValidationRules | None = None, events: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Hiding flags or gaps concentrated around exceedances, inspections and the device's own
    highest hours. ``events``: optional ``device_id``, ``at`` (instant), ``kind``."""
    rules = rules or load_rules()
    cn = str(rules.param("tamper.minute_cn"))
    flags = list(rules.param("tamper.cluster_flags"))
    width = int(rules.param("tamper.cluster_window_hours"))
    quantile = float(rules.param("tamper.cluster_high_quantile"))
    gap_fraction = float(rules.param("tamper.cluster_gap_fraction"))
    factor = float(rules.param("tamper.cluster_factor"))
    min_hours = int(rules.param("tamper.cluster_min_hours"))
    floor = float(rules.param("tamper.cluster_floor_rate"))
    min_observed = int(rules.param("tamper.cluster_min_observed_hours"))
    event_codes = rules.param("tamper.cluster_codes")
    limit = int(rules.param("tamper.max_evidence"))
    minute_rows = rows[rows["cn"].astype("str") == cn]
    if minute_rows.empty:
        return _empty()
    frame = pd.DataFrame(
        {
            "device_id": minute_rows["device_id"].astype("str"),
            "stream": minute_rows["stream"].astype("str"),
            "code": minute_rows["code"].astype("str"),
            "reading_id": minute_rows["reading_id"].astype("str"),
            "hour": minute_rows["data_time"].dt.tz_convert("UTC").dt.floor("h"),
            "hiding": minute_rows["flag"].astype("str").str.strip().str.upper().isin(flags),
        }
    )
    minutes = minute_values(rows, rules)
    wanted = [minutes["stream"].eq(s) & minutes["code"].isin(c) for s, c in event_codes.items()]
    minutes = minutes[np.logical_or.reduce(wanted)] if wanted else minutes.iloc[0:0]
    hourly = hourly_means(minutes, int(rules.param("tamper.hour_min_points")))
    records = []
    for device_id, mine in frame.groupby("device_id", sort=True):
        received = mine.groupby("hour")["reading_id"].nunique()
        hours = pd.date_range(received.index.min(), received.index.max(), freq="h")
        if len(hours) < min_observed:
            continue
        count = received.reindex(hours, fill_value=0)
        hidden = mine[mine["hiding"]].groupby("hour").size().reindex(hours, fill_value=0)
        bad = (hidden > 0) | (count < gap_fraction * count.max())
        own = hourly[hourly["device_id"] == device_id]
        high = pd.DatetimeIndex([])
        if not own.empty:
            top = own.groupby("code")["mean"].transform(lambda v: v >= v.quantile(quantile))
            high = pd.DatetimeIndex(own.loc[top, "hour"].unique())
        events_at = _event_hours(events, device_id).union(high)
        if events_at.empty:
            continue
        near = np.zeros(len(hours), dtype=bool)
        position = {h: i for i, h in enumerate(hours)}
        for moment in events_at:
            i = position.get(moment)
            if i is not None:
                near[max(0, i - width) : i + width + 1] = True
        bad_near, bad_far = int((bad & near).sum()), int((bad & ~near).sum())
        rate_near = bad_near / max(int(near.sum()), 1)
        rate_far = bad_far / max(int((~near).sum()), 1)
        ratio = rate_near / max(rate_far, floor)
        if bad_near < min_hours or ratio < factor:
            continue
        flagged_hours = hours[bad.to_numpy() & near]
        ids = mine.loc[mine["hiding"] & mine["hour"].isin(flagged_hours), "reading_id"]
        records.append(
            _record(
                device_id,
                "flag_cluster",
                "",
                flagged_hours.min(),
                flagged_hours.max() + HOUR,
                ratio,
                factor,
                ids,
                f"{bad_near} flagged or missing hours near {len(events_at)} event hours "
                f"({rate_near:.0%}) against {rate_far:.0%} elsewhere",
                limit,
            )
        )
    return _frame(records)


# --- two devices, one series ---------------------------------------------------------------------


def _hour_signatures(minutes: pd.DataFrame, min_distinct: int, min_points: int) -> pd.DataFrame:
    """device_id, code, hour, signature: a hash of the hour's (minute, value) pairs."""
    frame = minutes.assign(hour=minutes["data_time"].dt.floor("h"))
    minute_of_hour = ((frame["data_time"] - frame["hour"]).dt.total_seconds() // 60).astype("int64")
    pair_hash = pd.util.hash_pandas_object(
        pd.DataFrame({"m": minute_of_hour.to_numpy(), "v": frame["value"].round(6).to_numpy()}),
        index=False,
    ).to_numpy()
    frame = frame.assign(h=pair_hash)
    grouped = frame.groupby(["device_id", "code", "hour"], sort=False)
    out = grouped.agg(
        signature=("h", lambda h: int(np.bitwise_xor.reduce(h.to_numpy()))),
        n=("value", "size"),
        distinct=("value", "nunique"),
    ).reset_index()
    # one dtype whatever the chunk: signatures of chunks are concatenated and merged on
    out = out.astype({"signature": "uint64"})
    return out[(out["n"] >= min_points) & (out["distinct"] >= min_distinct)]


SIGNATURE_COLUMNS = ["device_id", "code", "hour", "signature", "n", "distinct"]


def same_series_signatures(
    rows: pd.DataFrame, rules: ValidationRules | None = None
) -> pd.DataFrame:
    """Phase 1 of :func:`same_series`: one signature per device, channel and hour (hours with
    too few minutes or distinct values left out). Per device, so the signatures of groups of
    devices concatenate into those of all of them."""
    rules = rules or load_rules()
    codes = rules.param("tamper.same_codes")
    min_distinct = int(rules.param("tamper.same_min_distinct"))
    min_points = int(rules.param("tamper.hour_min_points"))
    minutes = minute_values(rows, rules)
    signatures = []
    for stream, stream_codes in codes.items():
        mine = minutes[(minutes["stream"] == stream) & minutes["code"].isin(stream_codes)]
        if not mine.empty:
            signatures.append(_hour_signatures(mine, min_distinct, min_points))
    if not signatures:
        return pd.DataFrame(columns=SIGNATURE_COLUMNS)
    return pd.concat(signatures, ignore_index=True)


def _minutes_of(
    fetch_rows: Callable[[list[str]], pd.DataFrame], device_ids: list[str], rules: ValidationRules
) -> pd.DataFrame:
    """The valid minute records of ``device_ids`` (and of no other device) from ``fetch_rows``."""
    rows = fetch_rows(list(device_ids))
    if rows is None or rows.empty:
        return _no_minutes()
    minutes = minute_values(rows, rules)
    return minutes[minutes["device_id"].isin(device_ids)]


def same_series_pairs(
    signatures: pd.DataFrame,
    fetch_rows: Callable[[list[str]], pd.DataFrame],
    rules: ValidationRules | None = None,
) -> pd.DataFrame:
    """Phase 2 of :func:`same_series`: devices whose signatures match for enough channel-hours,
    judged on the minute rows of just those two (``fetch_rows([a, b])``)."""
    rules = rules or load_rules()
    min_hours = int(rules.param("tamper.same_min_hours"))
    lag_s = float(rules.param("tamper.same_lag_s"))
    limit = int(rules.param("tamper.max_evidence"))
    if signatures.empty:
        return _empty()
    sig = signatures
    shared = sig.merge(sig, on=["code", "hour", "signature"], suffixes=("_a", "_b"))
    shared = shared[shared["device_id_a"] < shared["device_id_b"]]
    records = []
    for (a, b), hours in shared.groupby(["device_id_a", "device_id_b"], sort=True):
        n_hours = hours[["code", "hour"]].drop_duplicates()
        if len(n_hours) < min_hours:
            continue
        keys = set(zip(n_hours["code"], n_hours["hour"], strict=True))
        pick = _minutes_of(fetch_rows, [a, b], rules).assign(
            hour=lambda f: f["data_time"].dt.floor("h")
        )
        pick = pick[[k in keys for k in zip(pick["code"], pick["hour"], strict=True)]]
        side_a = pick[pick["device_id"] == a].set_index(["code", "data_time"])
        side_b = pick[pick["device_id"] == b].set_index(["code", "data_time"])
        joined = side_a.join(side_b, lsuffix="_a", rsuffix="_b", how="inner")
        lag = (joined["received_at_b"] - joined["received_at_a"]).dt.total_seconds().median()
        if lag > lag_s:
            named = [b]
        elif lag < -lag_s:
            named = [a]
        else:
            named = [a, b]
        start, end = n_hours["hour"].min(), n_hours["hour"].max() + HOUR
        for device_id in named:
            other = b if device_id == a else a
            ids = pick.loc[pick["device_id"] == device_id, "reading_id"]
            records.append(
                _record(
                    device_id,
                    "same_series",
                    ",".join(sorted(n_hours["code"].unique())),
                    start,
                    end,
                    len(n_hours),
                    min_hours,
                    ids,
                    f"{len(n_hours)} channel-hours identical to {other} minute for minute; "
                    f"{device_id} received {abs(lag):.0f} s "
                    f"{'later' if len(named) == 1 else 'apart (cannot tell the copy)'}",
                    limit,
                )
            )
    return _frame(records)


def same_series(rows: pd.DataFrame, rules: ValidationRules | None = None) -> pd.DataFrame:
    """Two devices sending the same values minute for minute (one copies the other)."""
    rules = rules or load_rules()
    return same_series_pairs(same_series_signatures(rows, rules), rows_fetcher(rows), rules)


# --- clock jumps -------------------------------------------------------------------------------------


def clock_jumps(rows: pd.DataFrame, rules: ValidationRules | None = None) -> pd.DataFrame:
    """Steps in data time minus receive time between consecutive readings of a device."""
    rules = rules or load_rules()
    jump = float(rules.param("tamper.clock_jump_s"))
    limit = int(rules.param("tamper.max_evidence"))
    # per device (reading ids hash the device id anyway), so that a device's readings are
    # judged the same whichever devices are read with it
    readings = rows.drop_duplicates(["device_id", "reading_id"])[
        ["reading_id", "device_id", "cn", "data_time", "received_at"]
    ].copy()
    if readings.empty:
        return _empty()
    readings["cn"] = readings["cn"].astype("str")
    readings = readings.sort_values(["device_id", "cn", "received_at", "data_time"], kind="stable")
    offset = (readings["data_time"] - readings["received_at"]).dt.total_seconds()
    same = (readings["device_id"] == readings["device_id"].shift()) & (
        readings["cn"] == readings["cn"].shift()
    )
    step = (offset - offset.shift()).where(same)
    interval = readings["cn"].isin(INTERVAL_CNS)
    hit = (interval & (step >= jump)) | (~interval & (step.abs() >= jump))
    previous_id = readings["reading_id"].shift()
    previous_time = readings["data_time"].shift()
    records = []
    for i in np.flatnonzero(hit.to_numpy()):
        row = readings.iloc[i]
        records.append(
            _record(
                row["device_id"],
                "clock_jump",
                "",
                previous_time.iloc[i],
                row["data_time"],
                step.iloc[i],
                jump,
                [previous_id.iloc[i], row["reading_id"]],
                f"device time minus receive time stepped {step.iloc[i]:+.0f} s (cn {row['cn']})",
                limit,
            )
        )
    return _frame(records)


# --- neighbours ------------------------------------------------------------------------------------------


def _distance_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Pairwise great-circle distances (haversine, mean Earth radius 6371 km)."""
    phi, lam = np.radians(lat), np.radians(lon)
    dphi = phi[:, None] - phi[None, :]
    dlam = lam[:, None] - lam[None, :]
    a = np.sin(dphi / 2) ** 2 + np.cos(phi[:, None]) * np.cos(phi[None, :]) * np.sin(dlam / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _neighbour_minutes(minutes: pd.DataFrame, rules: ValidationRules) -> pd.DataFrame:
    code = str(rules.param("tamper.neighbour_code"))
    return minutes[(minutes["stream"] == "ambient") & (minutes["code"] == code)]


def neighbour_hourly(rows: pd.DataFrame, rules: ValidationRules | None = None) -> pd.DataFrame:
    """Phase 1 of :func:`neighbour`: the micro-stations' hourly means of the neighbour code
    (:func:`hourly_means`: per device and hour, so those of groups of devices concatenate into
    those of all of them)."""
    rules = rules or load_rules()
    minutes = _neighbour_minutes(minute_values(rows, rules), rules)
    return hourly_means(minutes, int(rules.param("tamper.hour_min_points")))


def neighbour_episodes(
    hourly: pd.DataFrame,
    stations: pd.DataFrame | None,
    fetch_rows: Callable[[list[str]], pd.DataFrame],
    rules: ValidationRules | None = None,
) -> pd.DataFrame:
    """Phase 2 of :func:`neighbour`: the network's z-scores from every station's hourly means,
    and the reading ids of each hot episode from that station's rows (``fetch_rows([device])``,
    fetched only for a station with an episode)."""
    rules = rules or load_rules()
    code = str(rules.param("tamper.neighbour_code"))
    radius = float(rules.param("tamper.neighbour_radius_km"))
    min_count = int(rules.param("tamper.neighbour_min_count"))
    z_limit = float(rules.param("tamper.neighbour_z"))
    min_spread = float(rules.param("tamper.neighbour_min_spread"))
    min_hours = int(rules.param("tamper.neighbour_min_hours"))
    floor = float(rules.param("tamper.neighbour_floor_ug_m3"))
    limit = int(rules.param("tamper.max_evidence"))
    if hourly.empty or stations is None or stations.empty:
        return _empty()
    matrix = hourly.pivot_table(index="hour", columns="device_id", values="mean")
    where = stations.assign(device_id=stations["device_id"].astype("str")).drop_duplicates(
        "device_id"
    )
    where = where.set_index("device_id").reindex(matrix.columns)
    known = where["lat"].notna().to_numpy() & where["lon"].notna().to_numpy()
    matrix = matrix.loc[:, known]
    where = where[known]
    if matrix.shape[1] < min_count + 1:
        return _empty()
    logs = np.log(np.maximum(matrix.to_numpy(dtype="float64"), floor))
    logs[np.isnan(matrix.to_numpy(dtype="float64"))] = np.nan
    distance = _distance_km(where["lat"].to_numpy(float), where["lon"].to_numpy(float))
    deviation = np.full(logs.shape, np.nan)
    for j in range(logs.shape[1]):
        others = np.flatnonzero((distance[j] <= radius) & (np.arange(logs.shape[1]) != j))
        if len(others) < min_count:
            continue
        block = logs[:, others]
        enough = np.sum(~np.isnan(block), axis=1) >= min_count
        with np.errstate(all="ignore"):
            med = np.nanmedian(np.where(enough[:, None], block, np.nan), axis=1)
        deviation[:, j] = logs[:, j] - med
    with np.errstate(all="ignore"):
        usual = deviation - np.nanmedian(deviation, axis=0)  # less each station's own bias
        spread = 1.4826 * np.nanmedian(np.abs(usual), axis=1)  # the network's spread per hour
    scale = np.maximum(np.nan_to_num(spread, nan=min_spread), min_spread)
    z = usual / scale[:, None]
    hours = matrix.index
    records = []
    for j, device_id in enumerate(matrix.columns):
        hot = np.flatnonzero(np.abs(np.nan_to_num(z[:, j])) >= z_limit)
        if len(hot) < min_hours:
            continue
        episodes = np.split(hot, np.flatnonzero(np.diff(hours[hot]) > 3 * HOUR) + 1)
        minutes = None  # the station's rows, fetched at its first episode
        for episode in episodes:
            if len(episode) < min_hours:
                continue
            if minutes is None:
                minutes = _neighbour_minutes(_minutes_of(fetch_rows, [device_id], rules), rules)
            start, end = hours[episode[0]], hours[episode[-1]] + HOUR
            ids = minutes.loc[
                (minutes["device_id"] == device_id)
                & (minutes["data_time"] >= start)
                & (minutes["data_time"] < end),
                "reading_id",
            ]
            statistic = float(np.median(np.abs(z[episode, j])))
            ratio = float(np.exp(np.nanmedian(usual[episode, j])))
            records.append(
                _record(
                    device_id,
                    "neighbour",
                    code,
                    start,
                    end,
                    statistic,
                    z_limit,
                    ids,
                    f"{len(episode)} h at x{ratio:.2f} of its usual level against neighbours "
                    f"within {radius:g} km (median |z| {statistic:.1f})",
                    limit,
                )
            )
    return _frame(records)


def neighbour(
    rows: pd.DataFrame, stations: pd.DataFrame | None, rules: ValidationRules | None = None
) -> pd.DataFrame:
    """Micro-stations departing from their neighbours far beyond the network's usual spread."""
    rules = rules or load_rules()
    return neighbour_episodes(neighbour_hourly(rows, rules), stations, rows_fetcher(rows), rules)


# --- all rules -------------------------------------------------------------------------------------------


def _per_device(
    rows: pd.DataFrame, rules: ValidationRules, events: pd.DataFrame | None
) -> list[pd.DataFrame]:
    """The rules that judge each device on its own rows alone (so any grouping of devices gives
    the same records)."""
    return [
        flatline(rows, rules),
        dilution(rows, rules),
        ratio_step(rows, rules),
        flag_cluster(rows, rules, events),
        clock_jumps(rows, rules),
    ]


def _collected(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The rules' records in one frame sorted by device, rule and window. The sort is stable
    and its key holds the rule, so the order of the parts only matters within a device and
    rule, where a rule's own order is kept: hence a chunked scan gives the same frame."""
    parts = [p for p in parts if not p.empty]
    if not parts:
        return _empty()
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["device_id", "rule", "window_start"], kind="stable").reset_index(
        drop=True
    )


def detect_all(
    rows: pd.DataFrame,
    registry: dict[str, pd.DataFrame],
    *,
    events: pd.DataFrame | None = None,
    rules: ValidationRules | None = None,
) -> pd.DataFrame:
    """Every rule over ``rows`` (measurements of cems and ambient); ``registry['stations']``
    places the micro-stations. Sorted by device, rule and window."""
    rules = rules or load_rules()
    return _collected(
        [
            *_per_device(rows, rules, events),
            same_series(rows, rules),
            neighbour(rows, registry.get("stations"), rules),
        ]
    )


def detect_chunked(
    fetch_rows: Callable[[list[str]], pd.DataFrame],
    device_groups: Iterable[list[str]],
    registry: dict[str, pd.DataFrame],
    *,
    events: pd.DataFrame | None = None,
    rules: ValidationRules | None = None,
) -> pd.DataFrame:
    """:func:`detect_all` over the concatenation of ``fetch_rows(group)`` for each of
    ``device_groups``, holding one group's rows at a time (the district's week does not fit in
    memory at once). Returns exactly what ``detect_all`` returns on that concatenation.

    ``fetch_rows(device_ids)`` returns the rows (``detect_all``'s columns) of those devices, each
    device's rows in the same order whichever devices it is asked with. Each group is judged by
    the per-device rules; the two cross-device rules keep a small summary per group (the hour
    signatures of ``same_series``, the hourly means of ``neighbour``) and, once every group is
    seen, fetch the rows of just the devices they name (a matched pair; a station with a hot
    episode). A device may be in one group only."""
    rules = rules or load_rules()
    parts: list[pd.DataFrame] = []
    signatures: list[pd.DataFrame] = []
    hourly: list[pd.DataFrame] = []
    seen: set[str] = set()
    for group in device_groups:
        ids = [str(d) for d in group]
        again = seen.intersection(ids)
        if again or len(set(ids)) < len(ids):
            raise ValueError(f"a device is in more than one group: {sorted(again) or ids}")
        seen.update(ids)
        if not ids:
            continue
        rows = fetch_rows(ids)
        if rows is None or rows.empty:
            continue
        mine = rows["device_id"].astype("str").isin(ids).to_numpy()
        if not mine.all():  # a fetch that returns more than asked: the others have their group
            rows = rows[mine]
        parts.extend(_per_device(rows, rules, events))
        signatures.append(same_series_signatures(rows, rules))
        hourly.append(neighbour_hourly(rows, rules))
        del rows
    signatures = [s for s in signatures if not s.empty]
    hourly = [h for h in hourly if not h.empty]
    all_signatures = (
        pd.concat(signatures, ignore_index=True)
        if signatures
        else pd.DataFrame(columns=SIGNATURE_COLUMNS)
    )
    parts.append(same_series_pairs(all_signatures, fetch_rows, rules))
    if hourly:
        all_hourly = pd.concat(hourly, ignore_index=True)
        parts.append(neighbour_episodes(all_hourly, registry.get("stations"), fetch_rows, rules))
    return _collected(parts)


# --- per device: who is suspected, and rates against a known truth ---------------------------------

#: rules that point at data made up or manipulated; ``clock_jump`` is a fault, reported apart.
FRAUD_RULES = ("flatline", "dilution", "ratio_step", "flag_cluster", "same_series", "neighbour")


def device_suspicion(
    suspicions: pd.DataFrame,
    devices: list[str] | pd.Series,
    rule_names: tuple[str, ...] = FRAUD_RULES,
) -> pd.DataFrame:
    """One row per device of ``devices`` (every device judged, suspected or not): ``device_id``,
    ``suspected`` (a record of one of ``rule_names``), ``rules`` (those rules, sorted,
    comma-joined), ``n_suspicions``. A month's ``detect_all`` output goes in as is."""
    ids = pd.Index(pd.unique(pd.Series(list(devices), dtype="str")), name="device_id")
    hits = suspicions[suspicions["rule"].isin(rule_names)] if len(suspicions) else suspicions
    if len(hits):
        by = hits.groupby(hits["device_id"].astype("str"))
        n = by.size().reindex(ids, fill_value=0)
        names = by["rule"].agg(lambda r: ",".join(sorted(set(r)))).reindex(ids, fill_value="")
    else:
        n = pd.Series(0, index=ids)
        names = pd.Series("", index=ids)
    return pd.DataFrame(
        {
            "device_id": ids.to_numpy(),
            "suspected": (n > 0).to_numpy(),
            "rules": names.astype("str").to_numpy(),
            "n_suspicions": n.astype("int64").to_numpy(),
        }
    )


def suspicion_rates(per_device: pd.DataFrame, planted: set[str] | list[str]) -> dict:
    """Detection rate (planted devices suspected / planted) and false-positive rate (honest
    devices suspected / honest) from :func:`device_suspicion`'s table; ``planted`` are the
    devices known to fake (a simulation's truth). Planted devices not in the table count as
    missed."""
    planted = {str(d) for d in planted}
    suspected = set(per_device.loc[per_device["suspected"], "device_id"].astype("str"))
    honest = set(per_device["device_id"].astype("str")) - planted
    return {
        "planted": len(planted),
        "detected": sorted(planted & suspected),
        "missed": sorted(planted - suspected),
        "detection_rate": len(planted & suspected) / len(planted) if planted else None,
        "honest": len(honest),
        "false_positives": sorted(honest & suspected),
        "false_positive_rate": len(honest & suspected) / len(honest) if honest else None,
    }
