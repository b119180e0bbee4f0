"""Monthly rule steps: the month's stored daily figures and the bureau's files in, the report's
figures out.

Each step reads what the daily steps stored (``Warehouse.read_derived(name, month)`` returns the
month's own rows and all its days' rows), the registry, and the bureau inputs kept beside the
registry files (``enforcement.bureau_inputs.read_bureau_inputs(settings.registry_dir())``), calls
the pure rules, and replaces one figure for the month under the ``reports.data.ReportData`` field
name the report reads (``replace_derived(name, month, frame, run_id)``). The DAG
``lantian_monthly_report`` runs them before ``write_report``; :func:`monthly_rules` runs them all
in order (tests, backfills).

A figure whose input does not exist (no daily figures were computed, a bureau file is absent) is
not stored, so the report says "not produced" rather than "nothing found". Columns follow
docs/report.md; ``reports.data.conform`` maps the rules' own names (``complies``, ``routed_to`` …)
and adds names from the registry.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pandas as pd

from lantian import settings
from lantian.pipeline import StepResult, warehouse

log = logging.getLogger("lantian.rules_monthly")

#: which report figures each stream's data feeds (for the data-quality caveats)
FIGURES = {
    "cems": "exceedances, cems_hourly, transmission, cases, suspicions",
    "ambient": "aqi_daily, alerts, weekly_ranking, upload_rates, suspicions",
    "vapor": "vapor_nozzle_days, vapor_alarms, vapor_station_efficiency",
    "rsd": "rsd_high_emitters, rsd_repeat_offenders",
}
#: the stream's validated table(s) in the warehouse
STREAM_TABLES = {
    "cems": ("measurements",),
    "ambient": ("measurements",),
    "vapor": ("refuellings", "tank_pressure"),
    "rsd": ("rsd_passes",),
}


# ------------------------------------------------------------------------------------ helpers


def month_start(month: str) -> date:
    return date.fromisoformat(f"{month}-01")


def month_days(month: str) -> list[str]:
    first = month_start(month)
    days = []
    day = first
    while day.month == first.month:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def previous_month(month: str) -> str:
    return (month_start(month) - timedelta(days=1)).strftime("%Y-%m")


def months_back(month: str, count: int) -> list[str]:
    """``month`` and the ``count - 1`` months before it, oldest first."""
    out = [month]
    for _ in range(count - 1):
        out.insert(0, previous_month(out[0]))
    return out


def in_month(values: pd.Series, month: str) -> pd.Series:
    """Dates or ``YYYY-MM-DD`` texts falling in ``month``."""
    return values.astype("str").str.slice(0, 7) == month


def _derived(wh: Any, name: str, months: list[str]) -> pd.DataFrame | None:
    """A daily figure over several months; None when it was computed for none of them."""
    frames = [wh.read_derived(name, m) for m in months]
    frames = [f for f in frames if f is not None]
    if not frames:
        return None
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True)


def bureau_inputs() -> dict[str, pd.DataFrame]:
    """The bureau's files present in the registry folder, validated (a bad file raises
    ``BureauInputError`` naming file, line and column: the task fails loudly)."""
    from enforcement.bureau_inputs import read_bureau_inputs

    folder = settings.registry_dir()
    return read_bureau_inputs(folder) if folder.is_dir() else {}


def _names(frame: pd.DataFrame, registry: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``stack_name``, ``enterprise_id``, ``enterprise_name`` and ``subdistrict_id`` by stack."""
    stacks, enterprises = registry["stacks"], registry["enterprises"]
    if "stack_id" not in frame.columns or stacks.empty:
        return frame
    out = frame.copy()
    by_stack = stacks.drop_duplicates("stack_id").set_index("stack_id")
    out["stack_name"] = out["stack_id"].map(by_stack["name"])
    ent = out["stack_id"].map(by_stack["enterprise_id"])
    if "enterprise_id" not in out.columns:
        out["enterprise_id"] = ent
    if not enterprises.empty:
        by_ent = enterprises.drop_duplicates("enterprise_id").set_index("enterprise_id")
        out["enterprise_name"] = ent.map(by_ent["name"])
        if "subdistrict_id" not in out.columns:
            out["subdistrict_id"] = ent.map(by_ent["subdistrict_id"])
    return out


def _registry(wh: Any, *names: str) -> dict[str, pd.DataFrame]:
    return {name: wh.read(name) for name in names}


def _store(wh: Any, name: str, month: str, frame: pd.DataFrame | None, run_id: str) -> int:
    if frame is None:
        log.info("%s %s: not produced (no input)", name, month)
        return 0
    return wh.replace_derived(name, month, frame.reset_index(drop=True), run_id)


# ------------------------------------------------------------------------------------ transmission


def monthly_rates(daily: pd.DataFrame, stream: str) -> pd.DataFrame:
    """One stream's monthly counts and rates per device (days added, never rates averaged)."""
    from validation.completeness import monthly_completeness

    mine = daily[daily["stream"] == stream]
    if mine.empty:
        return pd.DataFrame(columns=["stream", "device_id", "month", "due", "received", "valid"])
    out = monthly_completeness(mine)
    days_under = mine[~mine["complies"].astype(bool)].groupby("device_id")["day"].agg(sorted)
    out["days_under_min"] = (
        out["device_id"].map(days_under).map(lambda d: d if isinstance(d, list) else [])
    )
    return out


def stack_transmission(daily: pd.DataFrame, stacks: pd.DataFrame) -> pd.DataFrame:
    """``transmission``: per monitored stack's device, the month's effective transmission rate
    (plan clause 18, >= 90 %) with ``compliant``; the stack it serves."""
    out = monthly_rates(daily, "cems")
    link = stacks[["device_id", "stack_id"]].astype("str").drop_duplicates("device_id")
    out = out.merge(link, on="device_id", how="left")
    return out.rename(columns={"complies": "compliant"})


def station_uploads(daily: pd.DataFrame, stations: pd.DataFrame) -> pd.DataFrame:
    """``upload_rates``: per micro-station, records received / due in the month (plan clause 1,
    >= 90 %), ranked best first."""
    from validation.completeness import station_upload_ranking

    monthly = monthly_rates(daily, "ambient")
    # the rule's name and threshold are the same on every row: the report cites the threshold
    ranked = station_upload_ranking(monthly, stations).drop(columns=["rule_rate", "threshold"])
    ranked = ranked.rename(
        columns={
            "name": "station_name",
            "transmission_rate": "upload_rate",
            "complies": "compliant",
        }
    )
    return ranked


def transmission_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``transmission`` (stacks), ``transmission_under_min`` (the < 90 % list) and
    ``upload_rates`` (micro-stations) from the month's ``transmission_daily``."""
    wh = warehouse()
    daily = wh.read_derived("transmission_daily", month)
    if daily is None or daily.empty:
        return StepResult("transmission_month", month, note="no transmission_daily").as_dict()
    registry = _registry(wh, "stacks", "enterprises", "stations")
    stacks = _names(stack_transmission(daily, registry["stacks"]), registry)
    under = stacks[~stacks["compliant"].astype(bool)]
    _store(wh, "transmission", month, stacks, run_id)
    _store(wh, "transmission_under_min", month, under, run_id)
    _store(wh, "upload_rates", month, station_uploads(daily, registry["stations"]), run_id)
    note = f"{len(under)} of {len(stacks)} stack devices under the minimum"
    return StepResult("transmission_month", month, rows_out=len(stacks), note=note).as_dict()


# ------------------------------------------------------------------------------------ ambient


def alert_frames(rolling: pd.Series, month: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(episodes, transitions) of the heavy-pollution alert over the rolling 24-hour AQI series,
    kept when they touch ``month`` (Beijing). Episodes carry ``hours``, the required cuts as
    ``action``, the reason of their last level change and the assessment's notes."""
    from enforcement.alerts import assess_alerts
    from schemas.reading import BEIJING

    result = assess_alerts(rolling)
    transitions = result.transitions.copy()
    episodes = result.episodes.copy()
    start = pd.Timestamp(f"{month}-01", tz=BEIJING)
    end = (start + pd.offsets.MonthBegin(1)).tz_convert(BEIJING)
    if len(transitions):
        times = pd.to_datetime(transitions["time"], utc=True)
        transitions = transitions[(times > start) & (times <= end)]
    if len(episodes):
        first = pd.to_datetime(episodes["start"], utc=True)
        last = pd.to_datetime(episodes["end"], utc=True)
        episodes = episodes[(first <= end) & (last.isna() | (last > start))].copy()
        stop = last.fillna(rolling.index.max()) if len(rolling) else last
        episodes["hours"] = ((stop - first).dt.total_seconds() / 3600).loc[episodes.index]
        episodes["action"] = episodes["required_cuts"]
        reasons = []
        for _, ep in episodes.iterrows():
            mine = result.transitions[
                (pd.to_datetime(result.transitions["time"], utc=True) >= first[ep.name])
                & (result.transitions["to_level"] == ep["level"])
            ]
            reasons.append(mine["reason"].iloc[0] if len(mine) else "")
        episodes["reason"] = reasons
        episodes["note"] = "; ".join(result.notes)
    return episodes.reset_index(drop=True), transitions.reset_index(drop=True)


def ambient_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``weekly_ranking`` (subdistricts on their weekly mean of valid daily PM2.5), ``alerts``
    (episodes) and ``alert_transitions`` on the district's rolling 24-hour AQI."""
    from enforcement.ambient import weekly_pm25_ranking
    from lantian.rules_daily import beijing_hours, district_rolling_aqi

    wh = warehouse()
    subdistricts = wh.read("subdistricts")
    daily = wh.read_derived("aqi_daily_subdistrict", month)
    ranking = None
    if daily is not None and len(daily):
        ranking = weekly_pm25_ranking(
            daily[in_month(daily["day"], month)],
            areas=subdistricts["subdistrict_id"].astype("str").tolist(),
        )
    _store(wh, "weekly_ranking", month, ranking, run_id)
    # the first windows of the month reach into the last day of the month before
    last_day = (month_start(month) - timedelta(days=1)).isoformat()
    parts = [wh.read_derived("ambient_hourly", last_day), wh.read_derived("ambient_hourly", month)]
    hourly = [beijing_hours(p) for p in parts if p is not None and len(p)]
    episodes = transitions = None
    if hourly:
        rolling = district_rolling_aqi(pd.concat(hourly, ignore_index=True), wh.read("stations"))
        series = pd.Series(
            rolling["aqi_24h"].to_numpy(dtype=float),
            index=pd.DatetimeIndex(pd.to_datetime(rolling["hour_end"], utc=True)),
        )
        episodes, transitions = alert_frames(series, month)
    _store(wh, "alerts", month, episodes, run_id)
    _store(wh, "alert_transitions", month, transitions, run_id)
    n = 0 if episodes is None else len(episodes)
    return StepResult("ambient_month", month, "ambient", rows_out=n, note=f"{n} episodes").as_dict()


# ------------------------------------------------------------------------------------ vapor


def vapor_alarms(nozzle_days: pd.DataFrame, month: str) -> pd.DataFrame:
    """Per nozzle-day of ``month``: the run of consecutive out-of-range days and the level
    (1 warning, 2 alarm; ``enforcement.vapor.nozzle_alerts``), runs counted across the month's
    start from the days before it."""
    from enforcement.vapor import nozzle_alerts

    alerts = nozzle_alerts(nozzle_days)
    return alerts[in_month(alerts["day"], month)].reset_index(drop=True)


def station_efficiency_month(
    refuellings: pd.DataFrame, gas_stations: pd.DataFrame, month: str
) -> pd.DataFrame:
    """The monthly recovery-efficiency estimate per station (``met`` = status "pass"; NA when
    insufficient or without a monitor) with its subdistrict."""
    from enforcement.vapor import station_efficiency

    out = station_efficiency(refuellings, gas_stations, [month])
    judged = out["status"].isin(["pass", "fail"])
    out["met"] = (out["status"] == "pass").where(judged)
    places = gas_stations[["gas_station_id", "subdistrict_id"]].astype("str")
    return out.merge(places, on="gas_station_id", how="left")


def vapor_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``vapor_alarms``, ``vapor_station_efficiency`` and ``vapor_stations_without_monitor``."""
    from enforcement.vapor import stations_missing_monitor

    wh = warehouse()
    gas_stations = wh.read("gas_stations")
    days = _derived(wh, "vapor_nozzle_days", [previous_month(month), month])
    alarms = vapor_alarms(days, month) if days is not None and len(days) else days
    _store(wh, "vapor_alarms", month, alarms, run_id)
    refuellings = wh.read("refuellings", month=month)
    efficiency = (
        station_efficiency_month(refuellings, gas_stations, month) if len(gas_stations) else None
    )
    _store(wh, "vapor_station_efficiency", month, efficiency, run_id)
    missing = stations_missing_monitor(gas_stations) if len(gas_stations) else None
    _store(wh, "vapor_stations_without_monitor", month, missing, run_id)
    raised = 0 if alarms is None or alarms.empty else int((alarms["level"] > 0).sum())
    note = f"{raised} nozzle-days at warning or alarm"
    return StepResult("vapor_month", month, "vapor", rows_out=raised, note=note).as_dict()


# ------------------------------------------------------------------------------------ remote sensing


def rsd_high_emitter_runs(judgements: pd.DataFrame, month: str) -> pd.DataFrame:
    """Qualifying runs (one row per plate and pollutant) that ended in ``month`` — the run may
    start up to the 6-month cycle before — with the authority (plan clause 20(2)) as text."""
    from enforcement.rsd import high_emitters
    from schemas.reading import BEIJING

    found = high_emitters(judgements)
    if found.empty:
        return found.assign(authority=pd.Series(dtype="str"))
    last = pd.to_datetime(found["last_time"], utc=True).dt.tz_convert(BEIJING)
    found = found[last.dt.strftime("%Y-%m") == month].copy()
    found["authority"] = found["routed_to"].map("、".join)
    found["n_exceedances"] = found["n_consecutive"]
    return found.reset_index(drop=True)


def _joined(values: pd.Series) -> str:
    seen: list[str] = []
    for value in values:
        for part in str(value).split("、"):
            if part and part not in seen:
                seen.append(part)
    return "、".join(seen)


def high_emitter_vehicles(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per vehicle (the report counts rows as vehicles): its pollutants, the longest
    run, every authority any of its runs goes to, and the readings behind all of them."""
    if runs.empty:
        return runs
    grouped = runs.sort_values(["plate", "pollutant"]).groupby("plate", sort=True)
    out = grouped.agg(
        fuel_type=("fuel_type", "first"),
        gross_weight_t=("gross_weight_t", "first"),
        weight_class=("weight_class", "first"),
        pollutant=("pollutant", _joined),
        n_exceedances=("n_exceedances", "max"),
        first_time=("first_time", "min"),
        last_time=("last_time", "max"),
        heavy_diesel=("heavy_diesel", "any"),
        black_smoke=("black_smoke", "any"),
        authority=("authority", _joined),
        reading_ids=("reading_ids", lambda ids: sorted({i for run in ids for i in run})),
    )
    return out.reset_index()


def rsd_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``rsd_high_emitters`` (one row per vehicle with >= 2 consecutive exceedances of one
    pollutant within the cycle, routed) and ``rsd_high_emitter_runs`` (per pollutant),
    ``rsd_repeat_offenders`` and ``transport_china4_share`` (plan clause 33)."""
    from enforcement.rsd import china4_share, repeat_offenders
    from schemas.enforcement_rules import setting

    wh = warehouse()
    cycle = months_back(month, int(setting("rsd.cycle_months")) + 1)
    judgements = _derived(wh, "rsd_judgements", cycle)
    if judgements is None:
        return StepResult("rsd_month", month, "rsd", note="no rsd_judgements").as_dict()
    judgements["data_time"] = pd.to_datetime(judgements["data_time"], utc=True)
    vehicles = wh.read("vehicles")
    runs = rsd_high_emitter_runs(judgements, month)
    emitters = high_emitter_vehicles(runs)
    of_month = judgements[in_month(judgements["day"], month)]
    repeat = repeat_offenders(of_month, vehicles)
    _store(wh, "rsd_high_emitter_runs", month, runs, run_id)
    _store(wh, "rsd_high_emitters", month, emitters, run_id)
    _store(wh, "rsd_repeat_offenders", month, repeat, run_id)
    checks = wh.read_derived("rsd_pass_checks", month)
    if len(vehicles):
        passes = checks if checks is not None and len(checks) else None
        _store(wh, "transport_china4_share", month, china4_share(vehicles, passes), run_id)
    note = f"{len(emitters)} high emitters, {len(repeat)} repeat offenders"
    return StepResult("rsd_month", month, "rsd", rows_out=len(emitters), note=note).as_dict()


# ------------------------------------------------------------------------------------ cases


def case_rows(cases: pd.DataFrame, registry: dict[str, pd.DataFrame], month: str) -> pd.DataFrame:
    """The cases of the month in the report's terms (``opened``, ``measure``, ``status``), with
    stack and enterprise names; a case belongs to the month when it was open at some time in it."""
    if cases.empty:
        return cases
    out = _names(cases, registry)
    first_day = out["first_hour"].map(lambda t: None if t is None or pd.isna(t) else _day_of(t))
    opened = out["fine_date"].where(out["fine_date"].notna(), first_day)
    out["opened"] = opened.where(opened.notna(), out["served_date"])
    out["measure"] = out["next_action"]
    out["status"] = out["state"]
    out["pollutant"] = out["pollutants"].map(lambda p: "、".join(p) if isinstance(p, list) else "")
    # the exceedances table carries each exceedance's evidence; a case keeps its first one
    out = out.drop(columns=["exceedance_ids"], errors="ignore")
    start, end = f"{month}-01", month_days(month)[-1]
    closed = out["closed_date"].astype("object")
    open_in_month = (out["opened"].isna() | (out["opened"].astype("str") <= end)) & (
        closed.isna() | (closed.astype("str") >= start)
    )
    return out[open_in_month | (out["n_exceedances"] > 0)].reset_index(drop=True)


def _day_of(instant: Any) -> str:
    from schemas.reading import BEIJING

    return pd.Timestamp(instant).tz_convert(BEIJING).strftime("%Y-%m-%d")


def cases_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``cases`` (the bureau's cases with the month's exceedances, plus one proposed case per
    stack whose exceedances no case covers), ``penalty_ledger`` (decisions taken in the month)
    and ``case_events_refused`` (events the checks refused, with the reason)."""
    from enforcement.penalties import check_events, open_cases, penalty_ledger

    wh = warehouse()
    registry = _registry(wh, "stacks", "enterprises")
    exceedances = wh.read("exceedances", month=month)
    events = bureau_inputs().get("case_events")
    have_events = events is not None
    if events is None:
        events = pd.DataFrame()
    stacks = registry["stacks"] if len(registry["stacks"]) else None
    cases = open_cases(exceedances, events, stacks)
    _store(wh, "cases", month, case_rows(cases, registry, month), run_id)
    ledger = refused = None
    if have_events:
        _, refused = check_events(events, stacks)
        refused = refused[in_month(refused["date"], month) | refused["date"].isna()]
        ledger = penalty_ledger(events, stacks)
        ledger = _names(ledger[in_month(ledger["reinspection_date"], month)], registry)
    _store(wh, "penalty_ledger", month, ledger, run_id)
    _store(wh, "case_events_refused", month, refused, run_id)
    n_ledger = 0 if ledger is None else len(ledger)
    note = f"{len(cases)} cases, {n_ledger} penalty decisions"
    return StepResult("cases_month", month, "cems", rows_out=len(cases), note=note).as_dict()


def supervision_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``supervision``: subdistricts listed (挂牌督办, plan clause 18) for several exceeding
    enterprises in the month or stacks under 90 % effective transmission."""
    from enforcement.supervision import supervision_list

    wh = warehouse()
    daily = wh.read_derived("transmission_daily", month)
    registry = _registry(wh, "stacks", "enterprises")
    if daily is None or registry["stacks"].empty:
        return StepResult("supervision_month", month, note="no transmission_daily").as_dict()
    rates = monthly_rates(daily, "cems").rename(columns={"effective_rate": "rate"})
    exceedances = wh.read("exceedances", month=month)
    if exceedances.empty:
        exceedances = pd.DataFrame(columns=["stack_id", "day"])
    listed = supervision_list(
        exceedances, rates, registry["stacks"], registry["enterprises"], [month]
    )
    _store(wh, "supervision", month, listed, run_id)
    n = int(listed["listed"].sum()) if len(listed) else 0
    return StepResult("supervision_month", month, rows_out=n, note=f"{n} listed").as_dict()


# ------------------------------------------------------------------------------------ bureau inputs


def sampling_frames(
    inputs: dict[str, pd.DataFrame], gas_stations: pd.DataFrame, month: str
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(``sampling_ratios``: fuel-sample and agency-check coverage rows, ``sampling_failed``)."""
    from enforcement.sampling import agency_sampling, failed_samples, station_sampling

    ratios, failed = [], None
    samples = inputs.get("fuel_samples")
    if samples is not None and len(gas_stations):
        ratios.append(station_sampling(samples, gas_stations, [month]))
        bad = failed_samples(samples, gas_stations)
        failed = bad[bad["month"] == month].reset_index(drop=True)
    checks, agencies = inputs.get("agency_checks"), inputs.get("inspection_agencies")
    if checks is not None and agencies is not None:
        ratios.append(agency_sampling(checks, agencies, [month]))
    return (pd.concat(ratios, ignore_index=True) if ratios else None), failed


def bureau_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``sampling_ratios``, ``sampling_failed`` (plan 22(2), 20(3)) and ``accountability``
    (量化问责) from the bureau's files in the registry folder."""
    from enforcement.accountability import accountability

    wh = warehouse()
    inputs = bureau_inputs()
    ratios, failed = sampling_frames(inputs, wh.read("gas_stations"), month)
    _store(wh, "sampling_ratios", month, ratios, run_id)
    _store(wh, "sampling_failed", month, failed, run_id)
    findings = inputs.get("inspection_findings")
    table = None
    if findings is not None:
        table = accountability(findings, [month], wh.read("subdistricts"))
    _store(wh, "accountability", month, table, run_id)
    note = "bureau files: " + (", ".join(sorted(inputs)) or "none")
    return StepResult("bureau_month", month, note=note).as_dict()


# ------------------------------------------------------------------------------------ dustfall


def dustfall_frames(
    records: pd.DataFrame, month: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(``dustfall``: per site, ``dustfall_subdistrict``: per subdistrict, ``dustfall_invalid``:
    the unusable samples) of ``month`` from the manual dustfall records (plan clause 30, limit
    ``dustfall.max_t_km2_30d`` in thresholds.toml). A sample belongs to the month of its
    exposure's midpoint; a site's samples of one month are pooled by time
    (``enforcement.ambient.dustfall_monthly``); a subdistrict is the mean of its sites."""
    from enforcement.ambient import dustfall_by_area, dustfall_monthly, dustfall_normalise

    sites = dustfall_monthly(records)
    sites = sites[sites["month"] == month].reset_index(drop=True)
    if "site_name" in records.columns:
        names = records.dropna(subset=["site_name"]).drop_duplicates("site_id")
        sites = sites.merge(names[["site_id", "site_name"]], on="site_id", how="left")
    sites["exceeds"] = ~sites["meets"].astype(bool)
    areas = dustfall_by_area(sites, "subdistrict_id") if len(sites) else sites.iloc[0:0]
    if len(areas):
        areas["exceeds"] = ~areas["meets"].astype(bool)
    norm = dustfall_normalise(records)
    end = pd.to_datetime(norm["end_date"], errors="coerce").dt.strftime("%Y-%m")
    start = pd.to_datetime(norm["start_date"], errors="coerce").dt.strftime("%Y-%m")
    # an invalid sample has no midpoint month: it concerns the months its dates touch
    touches = (end == month) | (start == month) | (end.isna() & start.isna())
    keep = [c for c in records.columns if c in norm.columns] + ["invalid_reason"]
    invalid = norm[~norm["valid"] & touches][keep].reset_index(drop=True)
    return sites, areas.reset_index(drop=True), invalid


def dustfall_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``dustfall``, ``dustfall_subdistrict`` and ``dustfall_invalid`` from the bureau's
    ``dustfall_records.csv`` (nothing stored without the file)."""
    wh = warehouse()
    records = bureau_inputs().get("dustfall_records")
    if records is None:
        return StepResult("dustfall_month", month, note="no dustfall_records.csv").as_dict()
    sites, areas, invalid = dustfall_frames(records, month)
    _store(wh, "dustfall", month, sites, run_id)
    _store(wh, "dustfall_subdistrict", month, areas, run_id)
    _store(wh, "dustfall_invalid", month, invalid, run_id)
    n_over = int(sites["exceeds"].sum()) if len(sites) else 0
    note = f"{len(sites)} sites, {n_over} above the limit, {len(invalid)} invalid samples"
    return StepResult("dustfall_month", month, rows_out=len(sites), note=note).as_dict()


# ------------------------------------------------------------------------------------ disclosure


def disclosure_findings_of_month(findings: pd.DataFrame, month: str) -> pd.DataFrame:
    """The supervised issues that belong to ``month``'s report (a date or a deadline in the month,
    or a publication still open at its end: ``reports.disclosure.relevant_to_month``), as the
    bureau's file has them."""
    from reports.disclosure import normalise, relevant_to_month

    if findings.empty:
        return findings
    days = month_days(month)
    kept = relevant_to_month(
        normalise(findings), date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    )
    return findings.loc[kept.index].reset_index(drop=True)


def disclosure_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``disclosure``: the supervised issues of the month from the bureau's
    ``disclosure_findings.csv`` (the report lays them out as annexes 1-3 and judges the
    publication deadlines); nothing stored without the file."""
    wh = warehouse()
    findings = bureau_inputs().get("disclosure_findings")
    if findings is None:
        return StepResult("disclosure_month", month, note="no disclosure_findings.csv").as_dict()
    mine = disclosure_findings_of_month(findings, month)
    _store(wh, "disclosure", month, mine, run_id)
    note = f"{len(mine)} of {len(findings)} supervised issues concern the month"
    return StepResult("disclosure_month", month, rows_out=len(mine), note=note).as_dict()


# ------------------------------------------------------------------------------------ quality


def _counts(wh: Any, table: str, month: str, stream: str, reason: str, only_invalid: bool):
    """{reason: distinct readings} of one stream's rows in the month (SQL, never the rows)."""
    import sqlalchemy as sa

    from enforcement.warehouse import month_bounds

    t = wh.table(table)
    start, end = month_bounds(month)
    where = [t.c.day >= start, t.c.day < end]
    if "stream" in t.c and table in ("measurements", "quarantine"):
        where.append(t.c.stream == stream)
    if only_invalid:
        where.append(t.c.valid.is_(False))
    query = (
        sa.select(t.c[reason], sa.func.count(sa.distinct(t.c.reading_id)))
        .where(*where)
        .group_by(t.c[reason])
    )
    with wh.engine.connect() as conn:
        return {str(k): int(n) for k, n in conn.execute(query)}


def stream_quality(wh: Any, month: str) -> pd.DataFrame:
    """One caveat row per stream: readings received, invalid (quarantined or judged invalid)
    with the leading reasons, records missing against what was due, failed partitions."""
    import sqlalchemy as sa

    from enforcement.warehouse import month_bounds

    start, end = month_bounds(month)
    parts = wh.table("partitions")
    with wh.engine.connect() as conn:
        received = dict(
            conn.execute(
                sa.select(parts.c.stream, sa.func.sum(parts.c.n_readings))
                .where(parts.c.day >= start, parts.c.day < end)
                .group_by(parts.c.stream)
            ).all()
        )
    daily = wh.read_derived("transmission_daily", month)
    results = wh.read("validation_results", month=month)
    rows = []
    for stream, tables in STREAM_TABLES.items():
        quarantined = _counts(wh, "quarantine", month, stream, "expectation", False)
        invalid: dict[str, int] = {}
        for table in tables:
            for key, n in _counts(wh, table, month, stream, "invalid_reason", True).items():
                invalid[key] = invalid.get(key, 0) + n
        missing = None
        if daily is not None and len(daily) and stream in set(daily["stream"]):
            mine = daily[daily["stream"] == stream]
            missing = int((mine["due"] - mine["received"]).clip(lower=0).sum())
        failed = (
            results[
                (results["stream"] == stream)
                & (~results["success"].astype(bool))
                & (results["severity"] == "critical")
            ]
            if len(results)
            else results
        )
        reasons = {f"quarantined {k}": v for k, v in quarantined.items()}
        reasons.update({f"invalid {k}": v for k, v in invalid.items()})
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:5]
        note = "; ".join(f"{k}: {v}" for k, v in top)
        if len(failed):
            days = ", ".join(sorted(set(failed["day"].astype("str"))))
            checks = ", ".join(sorted(set(failed["expectation"].astype("str"))))
            note += f"; critical checks failed ({checks}) on {days}"
        rows.append(
            {
                "figure": FIGURES[stream],
                "stream": stream,
                "device_id": "",
                "n_total": int(received.get(stream) or 0),
                "n_invalid": sum(quarantined.values()) + sum(invalid.values()),
                "n_quarantined": sum(quarantined.values()),
                "n_missing": missing,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def device_quality(daily: pd.DataFrame | None, registry: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One caveat row per CEMS or micro-station device that missed records or sent invalid ones
    in the month, naming the stack or station whose figures it weakens."""
    columns = ["figure", "stream", "device_id", "n_total", "n_invalid", "n_missing", "note"]
    if daily is None or daily.empty:
        return pd.DataFrame(columns=columns)
    sums = daily.groupby(["stream", "device_id"])[["due", "received", "valid"]].sum().reset_index()
    sums = sums[(sums["valid"] < sums["due"])]
    owners = {
        **dict(zip(registry["stacks"]["device_id"], registry["stacks"]["stack_id"], strict=False)),
        **dict(
            zip(registry["stations"]["device_id"], registry["stations"]["station_id"], strict=False)
        ),
    }
    rows = []
    for rec in sums.itertuples(index=False):
        rate = rec.valid / rec.due if rec.due else float("nan")
        what = "exceedances and transmission" if rec.stream == "cems" else "AQI and upload rate"
        rows.append(
            {
                "figure": f"{what} of {owners.get(rec.device_id, rec.device_id)}",
                "stream": rec.stream,
                "device_id": rec.device_id,
                "n_total": int(rec.received),
                "n_invalid": int(rec.received - rec.valid),
                "n_missing": int(rec.due - rec.received),
                "note": f"{rec.valid} of {rec.due} records due were received valid ({rate:.1%})",
            }
        )
    return pd.DataFrame(rows, columns=columns)


def quality_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``quality``: what was invalid or missing in the month and which figures it weakens."""
    wh = warehouse()
    registry = _registry(wh, "stacks", "stations")
    daily = wh.read_derived("transmission_daily", month)
    frame = pd.concat(
        [stream_quality(wh, month), device_quality(daily, registry)], ignore_index=True
    )
    _store(wh, "quality", month, frame, run_id)
    return StepResult("quality_month", month, rows_out=len(frame)).as_dict()


# ------------------------------------------------------------------------------------ suspicions


def _quarantined_measurements(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantined measurement rows back as rows (from their JSON copy), ``valid`` False."""
    if quarantine.empty:
        return pd.DataFrame()
    lines = "\n".join(quarantine["row_json"].dropna())
    frame = pd.read_json(io.StringIO(lines), lines=True, dtype=False)
    for column in ("data_time", "received_at"):
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame.assign(valid=False)


#: the measurement columns the tamper rules read
TAMPER_COLUMNS = [
    "reading_id", "device_id", "stream", "cn", "data_time", "received_at", "code", "avg", "rtd",
    "flag", "valid",
]  # fmt: skip


def _device_column(frame: pd.DataFrame) -> pd.Series:
    """The rows' device ids as text (missing where a quarantined row had none)."""
    if "device_id" not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="str")
    return frame["device_id"].astype("str").where(frame["device_id"].notna())


def window_quarantined_rows(
    wh: Any, day: str, stream: str, device_ids: list[str] | None = None
) -> pd.DataFrame:
    """One partition's quarantined measurement rows (the tamper rules' columns, ``valid``
    False), only those of ``device_ids`` when given. The quarantine table keeps each row as
    JSON: only the lines that mention one of the devices are parsed (then kept if their
    ``device_id`` is one of them), so a group's read never parses the whole partition."""
    # the quarantine keeps the row as received, device included, as JSON text only
    texts = wh.read_columns("quarantine", ["row_json"], day=day, stream=stream)
    if device_ids is not None and len(texts):
        pattern = "|".join(re.escape(d) for d in device_ids) or r"(?!)"
        texts = texts[texts["row_json"].fillna("").str.contains(pattern, regex=True).to_numpy()]
    frame = _quarantined_measurements(texts)
    if device_ids is not None and len(frame):
        frame = frame[_device_column(frame).isin(device_ids).to_numpy()]
    return frame[[c for c in TAMPER_COLUMNS if c in frame.columns]]


def window_rows(wh: Any, days: list[str], device_ids: list[str] | None = None) -> pd.DataFrame:
    """CEMS and micro-station rows of ``days`` as the tamper rules read them: stored rows, and
    quarantined rows (the clock rule needs them; the value rules skip them as invalid); only
    those of ``device_ids`` when given. Rows come day by day and stream by stream, stored then
    quarantined, so a device's rows are in the same order whichever devices it is read with."""
    wanted = None if device_ids is None else [str(d) for d in device_ids]
    parts = []
    for day in days:
        for stream in ("cems", "ambient"):
            parts.append(
                wh.read_columns(
                    "measurements", TAMPER_COLUMNS, day=day, stream=stream, device_ids=wanted
                )
            )
            parts.append(window_quarantined_rows(wh, day, stream, wanted))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True)[TAMPER_COLUMNS]
    rows["valid"] = rows["valid"].fillna(False).astype(bool)
    return rows


def window_devices(wh: Any, days: list[str]) -> list[str]:
    """The devices with CEMS or micro-station rows, stored or quarantined, in ``days``: the
    stacks first, then the stations, each sorted."""
    devices: list[str] = []
    for stream in ("cems", "ambient"):
        found = {str(d) for d in wh.distinct("measurements", "device_id", days=days, stream=stream)}
        for day in days:  # one partition's quarantine text at a time
            texts = wh.read_columns("quarantine", ["row_json"], day=day, stream=stream)
            for text in texts["row_json"].dropna():
                device = json.loads(text).get("device_id")
                if device is not None:
                    found.add(str(device))
        devices.extend(sorted(found - set(devices)))
    return devices


def device_groups(devices: list[str], size: int) -> list[list[str]]:
    """``devices`` cut into consecutive groups of ``size``."""
    size = max(int(size), 1)
    return [devices[first : first + size] for first in range(0, len(devices), size)]


def scan_window(
    wh: Any,
    days: list[str],
    registry: dict[str, pd.DataFrame],
    events: pd.DataFrame | None = None,
    group_size: int | None = None,
) -> pd.DataFrame:
    """``validation.tamper.detect_all`` over :func:`window_rows` of ``days``, reading
    ``group_size`` devices at a time (``suspicions.group_devices``): the same suspicions, with
    one group's rows in memory instead of the district's (``validation.tamper.detect_chunked``)."""
    from schemas.pipeline import pipeline_setting
    from validation.tamper import detect_chunked

    if group_size is None:
        group_size = int(pipeline_setting("suspicions.group_devices"))
    groups = device_groups(window_devices(wh, days), group_size)

    def fetch_rows(device_ids: list[str]) -> pd.DataFrame:
        return window_rows(wh, days, device_ids)

    return detect_chunked(fetch_rows, groups, registry, events=events)


def tamper_windows(month: str) -> list[tuple[list[str], list[str]]]:
    """(days read, days reported) per window of ``suspicions.window_days``."""
    from schemas.pipeline import pipeline_setting

    size = int(pipeline_setting("suspicions.window_days"))
    overlap = int(pipeline_setting("suspicions.overlap_days"))
    days = month_days(month)
    windows = []
    for first in range(0, len(days), size):
        reported = days[first : first + size]
        lead = [
            (date.fromisoformat(reported[0]) - timedelta(days=k)).isoformat()
            for k in range(overlap, 0, -1)
        ]
        windows.append((lead + reported, reported))
    return windows


#: the suspicion columns the report prints, in order (``reading_ids`` is kept, not printed)
SUSPICION_REPORT_COLUMNS = [
    "device_id", "stack_id", "station_id", "stack_name", "enterprise_name", "subdistrict_id",
    "pattern", "code", "first_seen", "last_seen", "statistic", "threshold", "detail", "evidence",
    "reading_ids",
]  # fmt: skip
#: reading ids a suspicion's ``evidence`` text names (all of them stay in ``reading_ids``)
EVIDENCE_SHOWN = 3


def evidence_text(ids: list[str]) -> str:
    """A short pointer to the evidence: how many readings, and the first few ids."""
    shown = ", ".join(ids[:EVIDENCE_SHOWN])
    more = " …" if len(ids) > EVIDENCE_SHOWN else ""
    return f"{len(ids)} readings: {shown}{more}" if ids else ""


def suspicion_rows(found: pd.DataFrame, registry: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Tamper suspicions in the report's terms (``pattern``, ``first_seen``, ``last_seen``), with
    the stack and enterprise, or the station, behind each device. The reading ids behind each
    stay whole in ``reading_ids`` (evidence); ``evidence`` names how many and the first few."""
    out = found.rename(
        columns={"rule": "pattern", "window_start": "first_seen", "window_end": "last_seen"}
    )
    ids = out["evidence"].map(lambda text: json.loads(text) if isinstance(text, str) else [])
    out = out.assign(reading_ids=ids, evidence=ids.map(evidence_text))
    stacks = registry["stacks"][["device_id", "stack_id"]].astype("str")
    stations = registry["stations"][["device_id", "station_id"]].astype("str")
    out = out.merge(stacks, on="device_id", how="left").merge(stations, on="device_id", how="left")
    return _names(out, registry).reindex(columns=SUSPICION_REPORT_COLUMNS)


def suspicions_month(month: str, run_id: str = "") -> dict[str, Any]:
    """``suspicions``: ``validation.tamper`` over the month, one window of days at a time and
    within a window one group of devices at a time (:func:`scan_window`; the month's
    exceedances as events for the flag-cluster rule)."""
    from validation.tamper import SUSPICION_COLUMNS

    wh = warehouse()
    registry = _registry(wh, "stacks", "enterprises", "stations")
    exceedances = wh.read("exceedances", month=month)
    events = None
    if len(exceedances):
        device = exceedances["stack_id"].map(
            registry["stacks"].drop_duplicates("stack_id").set_index("stack_id")["device_id"]
        )
        events = pd.DataFrame(
            {"device_id": device, "at": exceedances["hour_start"], "kind": "exceedance"}
        )
    found = []
    for read_days, reported in tamper_windows(month):
        hits = scan_window(wh, read_days, registry, events)
        if len(hits):
            starts = pd.to_datetime(hits["window_end"], utc=True).dt.tz_convert("Asia/Shanghai")
            keep = (starts - pd.Timedelta(seconds=1)).dt.strftime("%Y-%m-%d").isin(reported)
            found.append(hits[keep])
    frame = (
        pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=SUSPICION_COLUMNS)
    )
    frame = frame.drop_duplicates(["device_id", "rule", "code", "window_start"])
    _store(wh, "suspicions", month, suspicion_rows(frame, registry), run_id)
    devices = frame["device_id"].nunique() if len(frame) else 0
    note = f"{len(frame)} suspicions on {devices} devices"
    return StepResult("suspicions_month", month, rows_out=len(frame), note=note).as_dict()


# ------------------------------------------------------------------------------------ all


#: the monthly steps in the order their inputs require (supervision reads what transmission
#: reads; quality reads transmission_daily and the validation tables)
MONTHLY_STEPS: tuple[Callable[[str, str], dict[str, Any]], ...] = (
    transmission_month,
    supervision_month,
    ambient_month,
    vapor_month,
    rsd_month,
    cases_month,
    bureau_month,
    dustfall_month,
    disclosure_month,
    quality_month,
    suspicions_month,
)


def monthly_rules(month: str, run_id: str = "") -> list[dict[str, Any]]:
    """Every monthly step for ``month`` in order (what the DAG runs before the report)."""
    return [step(month, run_id) for step in MONTHLY_STEPS]


__all__ = [
    "MONTHLY_STEPS",
    "ambient_month",
    "bureau_month",
    "cases_month",
    "disclosure_month",
    "dustfall_month",
    "monthly_rules",
    "quality_month",
    "rsd_month",
    "supervision_month",
    "suspicions_month",
    "transmission_month",
    "vapor_month",
]
