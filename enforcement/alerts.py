"""Heavy-pollution alerts: the national unified levels on the rolling 24-hour AQI, with the plan's
clause-34 rules (lift, merge, early start) and the clause-35(3) emission cuts per level.

How the rules are read (numbers in ``schemas/data/alert_levels.toml``):

- A *day above X* is a rolling-24-hour AQI above X; days are counted as windows that do not overlap
  (ends at least 24 h apart), so 25 consecutive hours above 200 are 2 days. Counting is greedy from
  the earliest window, which gives the largest number of such days.
- An *episode* (one heavy-pollution process) starts at the first hour above 200 and lasts until the
  lift condition holds: 36 consecutive hours at AQI <= 150 (light pollution or better). A shorter
  clean spell, or hours at 151-200, do not end it, so two heavy runs whose gap does not meet the
  lift condition are one process, counted together and judged at the stricter level (clause 34).
  A missing hour breaks a clean spell: it cannot show that the improvement lasted.
- Observed data are judged hour by hour with what was known at that hour: the level starts at the
  first heavy hour and only rises inside an episode (从严从高). A forecast, when supplied, is the
  rolling-24-hour AQI expected after the last observed hour: it may lift the alert at once
  (predicted improvement lasting 36 h) or start/raise it early (observed AQI already above 200 and
  no forecast hour in the next 12 at or below 200), to the level the forecast process reaches.
  Without a forecast the result says so and those two rules are not assessed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from enforcement.aqi import compute_aqi, rolling_daily_concentrations
from schemas.ambient import DEFAULT_EDITION, AlertLevel, AlertRules, alert_rules
from schemas.reading import BEIJING

NO_ALERT = "none"
TRANSITION_COLUMNS = ["time", "from_level", "to_level", "rule", "basis", "reason"]
EPISODE_COLUMNS = [
    "episode",
    "start",
    "end",
    "level",
    "level_zh",
    "peak_aqi",
    "peak_time",
    "heavy_days",
    "severe_days",
    "heavy_runs",
    "ongoing",
    "ended_by",
    "basis",
    "required_cuts",
]


@dataclass(frozen=True)
class AlertResult:
    """Transitions and episodes of the alert, and what the forecast changed (if one was given)."""

    transitions: pd.DataFrame
    episodes: pd.DataFrame
    forecast_supplied: bool
    current_level: str
    notes: tuple[str, ...]
    #: projected process on observed + forecast data (None without a forecast)
    outlook: dict | None = None


@dataclass(frozen=True)
class _Episode:
    """State of one heavy-pollution process (immutable: each hour makes a new one)."""

    start: pd.Timestamp
    level: AlertLevel | None = None
    heavy_days: int = 0
    heavy_ends: tuple[pd.Timestamp, ...] = ()
    severe_days: int = 0
    severe_ends: tuple[pd.Timestamp, ...] = ()
    peak: float = -1.0
    peak_time: pd.Timestamp | None = None
    heavy_runs: int = 0
    in_heavy_run: bool = False
    clean_hours: int = 0
    clean_since: pd.Timestamp | None = None
    basis: str = "observed"


def _fmt(t: pd.Timestamp) -> str:
    return t.tz_convert(BEIJING).strftime("%Y-%m-%d %H:%M")


def _aqi_text(value: float) -> str:
    return f"{value:g}"


def _count_day(ends: tuple, count: int, t: pd.Timestamp, day: pd.Timedelta) -> tuple[tuple, int]:
    """Greedy count of non-overlapping 24-h windows: a window ending at ``t`` counts when it does
    not overlap the last counted one."""
    if not ends or t - ends[-1] >= day:
        return ends + (t,), count + 1
    return ends, count


def _add_hour(ep: _Episode, t: pd.Timestamp, aqi: float, rules: AlertRules) -> _Episode:
    if np.isnan(aqi):
        # no evidence either way: a clean spell is broken, a heavy run is not
        return replace(ep, clean_hours=0, clean_since=None)
    day = pd.Timedelta(hours=rules.day_hours)
    changes: dict = {}
    if aqi > rules.heavy_aqi_above:
        changes["heavy_ends"], changes["heavy_days"] = _count_day(
            ep.heavy_ends, ep.heavy_days, t, day
        )
        if not ep.in_heavy_run:
            changes["heavy_runs"] = ep.heavy_runs + 1
        changes["in_heavy_run"] = True
    else:
        changes["in_heavy_run"] = False
    if aqi > rules.severe_aqi_above:
        changes["severe_ends"], changes["severe_days"] = _count_day(
            ep.severe_ends, ep.severe_days, t, day
        )
    if aqi > ep.peak:
        changes["peak"], changes["peak_time"] = aqi, t
    if aqi <= rules.lift_aqi_at_most:
        changes["clean_hours"] = ep.clean_hours + 1
        changes["clean_since"] = ep.clean_since if ep.clean_hours else t
    else:
        changes["clean_hours"], changes["clean_since"] = 0, None
    return replace(ep, **changes)


def level_for(
    heavy_days: int, severe_days: int, peak: float, rules: AlertRules | None = None
) -> AlertLevel | None:
    """The highest national level whose condition the counts meet (None: no alert)."""
    rules = rules or alert_rules()
    best = None
    for level in rules.levels:
        by_days = heavy_days >= level.min_heavy_days and severe_days >= level.min_severe_days
        by_peak = level.reach_aqi is not None and peak >= level.reach_aqi
        if by_days or by_peak:
            best = level
    return best


def _level_of(ep: _Episode, rules: AlertRules) -> AlertLevel | None:
    return level_for(ep.heavy_days, ep.severe_days, ep.peak, rules)


def _name(level: AlertLevel | None) -> str:
    return level.name if level else NO_ALERT


def _rank(level: AlertLevel | None) -> int:
    return level.rank if level else 0


def _why(ep: _Episode, level: AlertLevel, rules: AlertRules) -> str:
    heavy = ", ".join(_fmt(t) for t in ep.heavy_ends)
    text = (
        f"{ep.heavy_days} day(s) of rolling 24-h AQI above {_aqi_text(rules.heavy_aqi_above)} "
        f"(non-overlapping windows ending {heavy}), {ep.severe_days} above "
        f"{_aqi_text(rules.severe_aqi_above)}, peak {_aqi_text(ep.peak)} at {_fmt(ep.peak_time)} "
        f"-> {level.name} ({level.source})"
    )
    if ep.heavy_runs > 1:
        text += (
            f"; clause 34: {ep.heavy_runs} heavy runs are one process because no gap between them "
            f"met the lift condition (AQI <= {_aqi_text(rules.lift_aqi_at_most)} for "
            f"{rules.lift_hours} h), judged together at the stricter level"
        )
    return text


def _step(
    ep: _Episode | None, t: pd.Timestamp, aqi: float, rules: AlertRules, basis: str
) -> tuple[_Episode | None, list[dict], _Episode | None]:
    """One hour of the alert state machine: (new state, transitions, episode closed this hour)."""
    if ep is None:
        if np.isnan(aqi) or aqi <= rules.heavy_aqi_above:
            return None, [], None
        ep = _add_hour(_Episode(start=t), t, aqi, rules)
        level = _level_of(ep, rules)
        ep = replace(ep, level=level, basis=basis)
        return ep, [_transition(t, None, level, "start", basis, _why(ep, level, rules))], None
    ep = _add_hour(ep, t, aqi, rules)
    if ep.clean_hours >= rules.lift_hours:
        reason = (
            f"rolling 24-h AQI <= {_aqi_text(rules.lift_aqi_at_most)} (light pollution or better) "
            f"for {ep.clean_hours} consecutive hours, {_fmt(ep.clean_since)} to {_fmt(t)} "
            f"-> lifted (plan clause 34: lasting {rules.lift_hours} h or more)"
        )
        return None, [_transition(t, ep.level, None, "lift", basis, reason)], ep
    level = _level_of(ep, rules)
    if _rank(level) > _rank(ep.level):
        event = _transition(t, ep.level, level, "upgrade", basis, _why(ep, level, rules))
        return replace(ep, level=level), [event], None
    return ep, [], None


def _transition(
    t: pd.Timestamp,
    old: AlertLevel | None,
    new: AlertLevel | None,
    rule: str,
    basis: str,
    reason: str,
) -> dict:
    return {
        "time": t,
        "from_level": _name(old),
        "to_level": _name(new),
        "rule": rule,
        "basis": basis,
        "reason": reason,
    }


def _episode_row(number: int, ep: _Episode, end: pd.Timestamp | None, ended_by: str | None) -> dict:
    return {
        "episode": number,
        "start": ep.start,
        "end": end if end is not None else pd.NaT,
        "level": _name(ep.level),
        "level_zh": ep.level.name_zh if ep.level else "",
        "peak_aqi": ep.peak,
        "peak_time": ep.peak_time,
        "heavy_days": ep.heavy_days,
        "severe_days": ep.severe_days,
        "heavy_runs": ep.heavy_runs,
        "ongoing": end is None,
        "ended_by": ended_by,
        "basis": ep.basis,
        "required_cuts": cuts_text(ep.level.name) if ep.level else "",
    }


def _hourly_series(series: pd.Series, what: str) -> pd.Series:
    """tz-aware, on whole hours, one value per hour, gaps filled with NaN (missing)."""
    if not isinstance(series, pd.Series) or not isinstance(series.index, pd.DatetimeIndex):
        raise ValueError(f"{what}: expected a Series indexed by hour-end timestamps")
    if series.index.tz is None:
        raise ValueError(f"{what}: the index must be tz-aware (Beijing hour ends)")
    index = series.index.tz_convert(BEIJING)
    if (index != index.floor("h")).any():
        raise ValueError(f"{what}: timestamps must be whole hours (hour-end labels)")
    if index.duplicated().any():
        raise ValueError(f"{what}: more than one value for the same hour")
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    values = pd.Series(numbers, index=index)
    values = values.sort_index()
    if values.empty:
        return values
    return values.reindex(pd.date_range(values.index[0], values.index[-1], freq="h"))


def _run(
    ep: _Episode | None, series: pd.Series, rules: AlertRules, basis: str
) -> tuple[_Episode | None, list[dict], list[tuple[_Episode, pd.Timestamp]]]:
    transitions: list[dict] = []
    closed: list[tuple[_Episode, pd.Timestamp]] = []
    for t, aqi in series.items():
        ep, events, done = _step(ep, t, float(aqi), rules, basis)
        transitions += events
        if done is not None:
            closed.append((done, t))
    return ep, transitions, closed


def _peak_level(
    start: _Episode | None, forecast: pd.Series, rules: AlertRules
) -> tuple[_Episode | None, pd.Timestamp | None, list[dict]]:
    """Follow the current process (or the first one the forecast starts) through the forecast:
    its state at the projected lift, or at the forecast's end. The level only rises inside a
    process, so that state holds the highest level."""
    ep, transitions = start, []
    for t, aqi in forecast.items():
        ep, events, done = _step(ep, t, float(aqi), rules, "forecast")
        transitions += events
        if done is not None:
            return done, t, transitions
    return ep, None, transitions


def assess_alerts(
    observed: pd.Series, forecast: pd.Series | None = None, rules: AlertRules | None = None
) -> AlertResult:
    """Alert levels over an hourly series of observed rolling-24-hour AQI (index: tz-aware hour
    ends), and, when ``forecast`` (hourly rolling-24-hour AQI after the last observed hour) is
    given, the clause-34 early start / predicted lift at the last observed hour."""
    rules = rules or alert_rules()
    obs = _hourly_series(observed, "observed")
    ep, transitions, closed = _run(None, obs, rules, "observed")
    episodes = [_episode_row(i + 1, e, end, "lift") for i, (e, end) in enumerate(closed)]
    notes: list[str] = []
    outlook = None
    now = obs.index[-1] if len(obs) else None
    if forecast is None:
        notes.append(
            "no forecast supplied: judged on observed data only; the clause-34 early start "
            "(no improvement forecast within "
            f"{rules.early_start_horizon_hours} h) and the lift on a predicted improvement were "
            "not assessed"
        )
    elif now is None:
        notes.append("no observed hour: the forecast was not assessed")
    else:
        ep, extra, outlook, ended = _apply_forecast(ep, obs, forecast, now, rules, notes)
        transitions += extra
        if ended is not None:
            episodes.append(_episode_row(len(episodes) + 1, ended, now, "forecast_lift"))
    if ep is not None:
        episodes.append(_episode_row(len(episodes) + 1, ep, None, None))
    return AlertResult(
        transitions=pd.DataFrame(transitions, columns=TRANSITION_COLUMNS),
        episodes=pd.DataFrame(episodes, columns=EPISODE_COLUMNS),
        forecast_supplied=forecast is not None,
        current_level=_name(ep.level) if ep else NO_ALERT,
        notes=tuple(notes),
        outlook=outlook,
    )


def _apply_forecast(
    ep: _Episode | None,
    obs: pd.Series,
    forecast: pd.Series,
    now: pd.Timestamp,
    rules: AlertRules,
    notes: list[str],
) -> tuple[_Episode | None, list[dict], dict, _Episode | None]:
    """Clause 34 at the last observed hour ``now``: predicted lift, early start or raise."""
    fc = _hourly_series(forecast, "forecast")
    dropped = int((fc.index <= now).sum())
    fc = fc[fc.index > now]
    if dropped:
        notes.append(f"{dropped} forecast hour(s) at or before the last observation ignored")
    projected, lift_at, projected_transitions = _peak_level(ep, fc, rules)
    outlook = {
        "now": now,
        "forecast_from": fc.index[0] if len(fc) else None,
        "forecast_to": fc.index[-1] if len(fc) else None,
        "projected_level": _name(projected.level) if projected else NO_ALERT,
        "projected_start": projected.start if projected else None,
        "projected_lift": lift_at,
        "projected_peak": projected.peak if projected else None,
        "transitions": pd.DataFrame(projected_transitions, columns=TRANSITION_COLUMNS),
    }
    if fc.empty:
        notes.append("the forecast has no hour after the last observation: not assessed")
        return ep, [], outlook, None
    if ep is None:
        if projected is not None:
            notes.append(
                f"forecast heavy process from {_fmt(projected.start)}: "
                f"{projected.level.name} on the forecast (national levels are set on forecast "
                "daily AQI); nothing observed yet"
            )
        return ep, [], outlook, None
    aqi_now = float(obs.loc[now])
    if aqi_now <= rules.lift_aqi_at_most:
        lead = _leading_clean_hours(fc, rules.lift_aqi_at_most)
        total = ep.clean_hours + lead
        if total >= rules.lift_hours:
            reason = (
                f"observed rolling 24-h AQI <= {_aqi_text(rules.lift_aqi_at_most)} for "
                f"{ep.clean_hours} h up to {_fmt(now)} and forecast to stay so for {lead} more h "
                f"({total} h >= {rules.lift_hours} h) -> lifted on the forecast (plan clause 34: "
                "predicted or observed improvement lasting 36 h)"
            )
            event = _transition(now, ep.level, None, "forecast_lift", "observed+forecast", reason)
            return None, [event], outlook, ep
        notes.append(
            f"improvement to AQI <= {_aqi_text(rules.lift_aqi_at_most)} lasts {total} h with the "
            f"forecast, under {rules.lift_hours} h: the alert stays"
        )
        return ep, [], outlook, None
    if aqi_now <= rules.heavy_aqi_above:
        notes.append(
            f"observed AQI {_aqi_text(aqi_now)} at {_fmt(now)} is not above "
            f"{_aqi_text(rules.heavy_aqi_above)}: early start not applicable"
        )
        return ep, [], outlook, None
    horizon = fc[fc.index <= now + pd.Timedelta(hours=rules.early_start_horizon_hours)]
    covered = int(horizon.notna().sum())
    if covered < rules.early_start_horizon_hours:
        notes.append(
            f"the forecast covers {covered} of the next {rules.early_start_horizon_hours} hours: "
            "early start not assessed"
        )
        return ep, [], outlook, None
    improved = horizon[horizon <= rules.early_start_improved_at_most]
    if not improved.empty:
        t0 = improved.index[0]
        notes.append(
            f"improvement forecast within {rules.early_start_horizon_hours} h (AQI "
            f"{_aqi_text(float(improved.iloc[0]))} at {_fmt(t0)}): no early start; the outlook "
            "holds the projected level"
        )
        return ep, [], outlook, None
    if projected is None or _rank(projected.level) <= _rank(ep.level):
        notes.append(
            f"no improvement forecast within {rules.early_start_horizon_hours} h; the forecast "
            f"process stays at {_name(ep.level)}"
        )
        return ep, [], outlook, None
    reason = (
        f"observed rolling 24-h AQI {_aqi_text(aqi_now)} > {_aqi_text(rules.heavy_aqi_above)} at "
        f"{_fmt(now)} and no marked improvement forecast within {rules.early_start_horizon_hours} "
        f"h (forecast minimum {_aqi_text(float(horizon.min()))} > "
        f"{_aqi_text(rules.early_start_improved_at_most)}); the process with the forecast: "
        + _why(projected, projected.level, rules)
        + " (plan clause 34: start or raise the alert early)"
    )
    event = _transition(now, ep.level, projected.level, "early_start", "observed+forecast", reason)
    return replace(ep, level=projected.level, basis="observed+forecast"), [event], outlook, None


def _leading_clean_hours(fc: pd.Series, at_most: float) -> int:
    count = 0
    for value in fc.to_numpy():
        if np.isnan(value) or value > at_most:
            break
        count += 1
    return count


def emission_cuts(level: str) -> dict[str, float]:
    """Minimum society-wide emission cuts (ratios) the plan requires at an alert level (35(3))."""
    for item in alert_rules().levels:
        if item.name == level:
            return dict(item.cuts)
    if level == NO_ALERT:
        return {}
    raise KeyError(f"no alert level {level!r} in schemas/data/alert_levels.toml")


def cuts_text(level: str) -> str:
    return "; ".join(f"{p} >= {v * 100:g} %" for p, v in emission_cuts(level).items())


def emission_cuts_table() -> pd.DataFrame:
    """One row per level and pollutant: ``level, level_zh, pollutant, min_cut, source``."""
    rows = [
        {
            "level": lv.name,
            "level_zh": lv.name_zh,
            "pollutant": pollutant,
            "min_cut": cut,
            "source": lv.cuts_source,
        }
        for lv in alert_rules().levels
        for pollutant, cut in lv.cuts.items()
    ]
    return pd.DataFrame(rows, columns=["level", "level_zh", "pollutant", "min_cut", "source"])


def rolling_24h_aqi(
    hourly_conc_df: pd.DataFrame, edition: str = DEFAULT_EDITION, key: str | None = None
) -> pd.Series:
    """Rolling 24-hour AQI of one area from its hourly concentrations (``hour_end`` and items;
    station values averaged first, see ``enforcement.aqi.average_stations``): 24-hour means,
    O3 maximum 1-hour and 8-hour of the window, indexed on the daily tables. NaN where the window
    has too little valid data."""
    frame = hourly_conc_df
    if key is not None:
        if frame[key].nunique() > 1:
            raise ValueError(f"rolling_24h_aqi: one area expected, got several {key} values")
        frame = frame.drop(columns=key)
    rolled = rolling_daily_concentrations(frame, key=None, edition=edition)
    result = compute_aqi(rolled, kind="daily", edition=edition)
    values = result["aqi"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return pd.Series(values, index=pd.DatetimeIndex(rolled["hour_end"]), name="aqi_24h")
