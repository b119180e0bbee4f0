"""Daily rule steps: one Beijing day of validated data in, the day's derived figures out.

Each step reads what ``lantian.pipeline.validate_day`` stored for the day, calls the pure rules of
``enforcement/`` and ``validation/``, and replaces its figures for the day in the warehouse's
derived store (``Warehouse.replace_derived(name, day, frame)``), so a retry or a day recomputed
after late data leaves exactly one copy. The DAG ``lantian_daily`` calls them after the matching
``validate_<stream>`` task; they never raise on a day without data (the figure is stored empty).

Figures (name → rows):

- ``ambient_hourly``: station hourly means (GB 3095: >= 45 valid minutes), hour-end labels;
- ``aqi_daily``: the district's daily AQI (HJ 633) — what the report's calendar reads, one row a
  day; ``aqi_daily_subdistrict`` and ``aqi_daily_station``: the same per subdistrict and station;
- ``aqi_rolling_24h``: the district's rolling 24-hour AQI ending at each hour of the day (the
  plan's "daily" value, clause 34), the input of the alerts;
- ``vapor_nozzle_days``, ``vapor_tank_days``: A/L per nozzle-day, tank pressure per station-day;
- ``rsd_judgements`` (one row per valid pass and pollutant) and ``rsd_pass_checks`` (every pass
  with its validity and the first failed check);
- ``transmission_daily``: records due, received, valid and the rates per device (CEMS and
  micro-stations, ``validation.completeness``).

The station hourly means and the transmission counts are per device, so those two steps read the
day's measurements ``daily.device_group_size`` devices at a time (``schemas/data/pipeline.toml``):
the same figures as the whole day at once, with one group's rows in memory.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any

import pandas as pd

from lantian.pipeline import StepResult, warehouse

log = logging.getLogger("lantian.rules_daily")

#: the id the district carries in the area columns of the AQI figures
DISTRICT = "district"
#: what a micro-station's figures carry from the ``stations`` registry
STATION_COLUMNS = ["station_id", "device_id", "subdistrict_id"]
#: the measurement columns the hourly means read
MINUTE_COLUMNS = [
    "reading_id",
    "device_id",
    "stream",
    "cn",
    "data_time",
    "code",
    "avg",
    "rtd",
    "valid",
]


def previous_day(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def read_columns(wh: Any, table: str, columns: list[str], **where: Any) -> pd.DataFrame:
    """Some columns of a warehouse table (``Warehouse.read`` reads them all): the long
    ``measurements`` table is read several times a day and a month, so only what a rule needs.
    Filters as ``Warehouse.read_columns`` (``day``, ``device_ids``, equalities)."""
    return wh.read_columns(table, columns, **where)


def device_group_size() -> int:
    """How many devices a daily rule reads at once (``daily.device_group_size``)."""
    from schemas.pipeline import pipeline_setting

    return int(pipeline_setting("daily.device_group_size"))


def day_device_groups(
    wh: Any, day: str, stream: str, registered: list[str], size: int
) -> list[list[str]]:
    """The devices a daily rule reads, ``size`` at a time: the registered ones in the order
    given, then those that sent ``stream`` rows on ``day`` without being registered (the rules
    drop them, but the step still counts their rows in, as when the day was read whole)."""
    size = max(int(size), 1)
    known = set(registered)
    others = [
        d
        for d in wh.distinct("measurements", "device_id", day=day, stream=stream)
        if d not in known
    ]
    return [
        devices[first : first + size]
        for devices in (list(registered), others)
        for first in range(0, len(devices), size)
    ]


# ------------------------------------------------------------------------------------ ambient


def station_hourly(minutes: pd.DataFrame, stations: pd.DataFrame) -> pd.DataFrame:
    """Hourly means per registered micro-station from its valid minute rows.

    Columns: ``station_id, device_id, subdistrict_id, hour_end`` (Beijing, the hour's end),
    the six items and their minute counts (``enforcement.aqi.hourly_from_minutes``).
    """
    from enforcement.aqi import HOURLY_ITEMS, hourly_from_minutes

    places = stations[STATION_COLUMNS].astype("str").drop_duplicates("device_id")
    mine = minutes[minutes["device_id"].astype("str").isin(set(places["device_id"]))]
    if mine.empty:
        counts = [f"n_min_{i}" for i in HOURLY_ITEMS]
        return pd.DataFrame(columns=[*STATION_COLUMNS, "hour_end", *HOURLY_ITEMS, *counts])
    hourly = hourly_from_minutes(mine, key="device_id")
    out = places.merge(hourly, on="device_id", how="inner")
    return out.sort_values(["station_id", "hour_end"], kind="stable").reset_index(drop=True)


def grouped_station_hourly(
    wh: Any, day: str, stations: pd.DataFrame, group_size: int | None = None
) -> tuple[pd.DataFrame, int]:
    """:func:`station_hourly` of the day's ambient minutes, read ``group_size`` devices at a
    time (``daily.device_group_size``), and how many minute rows were read.

    Hourly means are per station-hour, so the groups' frames put together and sorted as
    :func:`station_hourly` sorts are the frame of the whole day at once; groups follow the
    registry's order so that even ties (two devices of one station) keep their order.
    """
    size = device_group_size() if group_size is None else group_size
    places = stations[STATION_COLUMNS].astype("str").drop_duplicates("device_id")
    registered = places["device_id"].tolist()
    parts: list[pd.DataFrame] = []
    # what the whole day gives when no station has a valid hour: the typed empty frame of
    # hourly_from_minutes if some registered station sent rows, else station_hourly's bare one
    empty: pd.DataFrame | None = None
    rows_in = 0
    for group in day_device_groups(wh, day, "ambient", registered, size):
        minutes = read_columns(
            wh, "measurements", MINUTE_COLUMNS, day=day, stream="ambient", device_ids=group
        )
        rows_in += len(minutes)
        part = station_hourly(minutes, stations)
        if len(part):
            parts.append(part)
        elif empty is None and minutes["device_id"].astype("str").isin(set(registered)).any():
            empty = part
        del minutes
    if not parts:
        if empty is None:
            empty = station_hourly(pd.DataFrame(columns=MINUTE_COLUMNS), stations)
        return empty, rows_in
    hourly = pd.concat(parts, ignore_index=True)
    del parts
    hourly = hourly.sort_values(["station_id", "hour_end"], kind="stable")
    return hourly.reset_index(drop=True), rows_in


def _area_rows(frame: pd.DataFrame, level: str, id_column: str | None) -> pd.DataFrame:
    """AQI rows of one level with ``level`` and ``area_id``; primary pollutants as text."""
    out = frame.copy()
    out.insert(0, "level", level)
    out.insert(1, "area_id", out[id_column].astype("str") if id_column else DISTRICT)
    for column in ("primary_pollutants", "exceeding_pollutants"):
        if column in out.columns:
            out[column] = out[column].map(lambda names: "、".join(names) if names else "")
    return out.reset_index(drop=True)


def daily_aqi(hourly: pd.DataFrame, stations: pd.DataFrame, day: str) -> dict[str, pd.DataFrame]:
    """Daily AQI of ``day`` per station, subdistrict and the district.

    Station values are the 24-hour statistics of the Beijing day (hours ending 01:00 … 24:00,
    ``enforcement.aqi.daily_from_hourly``: >= 20 valid hours, O3 8-hour maximum); areas average
    their stations' daily concentrations first and index them afterwards (HJ 633 practice), an
    invalid station value being skipped, never taken as zero.
    """
    from enforcement.aqi import area_aqi, compute_aqi, daily_from_hourly

    empty = pd.DataFrame(columns=["level", "area_id", "day", "aqi"])
    if hourly.empty:
        return {"station": empty, "subdistrict": empty, "district": empty}
    per_station = daily_from_hourly(hourly.drop(columns=["station_id", "subdistrict_id"]))
    per_station = per_station[per_station["day"] == day]
    places = stations[STATION_COLUMNS].astype("str").drop_duplicates("device_id")
    per_station = places.merge(per_station, on="device_id", how="inner")
    station = _area_rows(compute_aqi(per_station, kind="daily"), "station", "station_id")
    sub = area_aqi(per_station, places, kind="daily", by="subdistrict_id", time_col="day")
    district = area_aqi(per_station, places, kind="daily", by=None, time_col="day")
    return {
        "station": station,
        "subdistrict": _area_rows(sub, "subdistrict", "subdistrict_id"),
        "district": _area_rows(district, "district", None),
    }


def district_rolling_aqi(hourly: pd.DataFrame, stations: pd.DataFrame) -> pd.DataFrame:
    """The district's rolling 24-hour AQI ending at each hour (``hour_end``, ``aqi_24h``).

    The stations' hourly concentrations are averaged per hour first (an invalid station hour is
    skipped), then the 24-hour statistics of the window ending at each hour are indexed on the
    daily tables (``enforcement.alerts.rolling_24h_aqi``); NaN where the window has too few valid
    hours.
    """
    from enforcement.alerts import rolling_24h_aqi
    from enforcement.aqi import HOURLY_ITEMS, average_stations

    if hourly.empty:
        return pd.DataFrame({"hour_end": pd.Series(dtype="datetime64[ns, UTC]"), "aqi_24h": []})
    frame = hourly[["device_id", "hour_end", *HOURLY_ITEMS]]
    places = stations[STATION_COLUMNS].astype("str").drop_duplicates("device_id")
    district = average_stations(frame, places, by=None, time_col="hour_end")
    series = rolling_24h_aqi(district.drop(columns="n_stations"))
    out = series.rename("aqi_24h").rename_axis("hour_end").reset_index()
    stations_per_hour = district.set_index("hour_end")["n_stations"]
    out["n_stations"] = out["hour_end"].map(stations_per_hour).fillna(0).astype("int64")
    return out


def _day_hours(frame: pd.DataFrame, day: str) -> pd.DataFrame:
    """Rows whose hour-end label belongs to the Beijing day (01:00 … next 00:00)."""
    from schemas.reading import BEIJING

    ends = pd.to_datetime(frame["hour_end"], utc=True).dt.tz_convert(BEIJING)
    start = pd.Timestamp(day, tz=BEIJING)
    return frame[(ends > start) & (ends <= start + pd.Timedelta(days=1))]


def beijing_hours(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """Stored hourly rows back with Beijing hour-end labels (the store keeps UTC instants)."""
    from schemas.reading import BEIJING

    if frame is None or frame.empty:
        return frame
    out = frame.copy()
    out["hour_end"] = pd.to_datetime(out["hour_end"], utc=True).dt.tz_convert(BEIJING)
    return out


def ambient_day(day: str, run_id: str = "", *, group_size: int | None = None) -> dict[str, Any]:
    """Station hourly means, the day's AQI per station / subdistrict / district, and the
    district's rolling 24-hour AQI for the alerts (the previous day's stored hours complete the
    first windows of the day).

    The minutes are read ``group_size`` stations at a time (:func:`grouped_station_hourly`,
    default ``daily.device_group_size``); the AQI steps run on the whole day's hourly frame."""
    wh = warehouse()
    stations = wh.read("stations")
    hourly, rows_in = grouped_station_hourly(wh, day, stations, group_size)
    wh.replace_derived("ambient_hourly", day, hourly, run_id)
    aqi = daily_aqi(hourly, stations, day)
    wh.replace_derived("aqi_daily", day, aqi["district"], run_id)
    wh.replace_derived("aqi_daily_subdistrict", day, aqi["subdistrict"], run_id)
    wh.replace_derived("aqi_daily_station", day, aqi["station"], run_id)
    before = beijing_hours(wh.read_derived("ambient_hourly", previous_day(day)))
    rolling = district_rolling_aqi(hourly, stations)
    if len(hourly):
        both = [f for f in (before, hourly) if f is not None and len(f)]
        rolling = _day_hours(
            district_rolling_aqi(pd.concat(both, ignore_index=True), stations), day
        )
    wh.replace_derived("aqi_rolling_24h", day, rolling, run_id)
    district = aqi["district"]
    note = "" if district.empty else f"district AQI {district['aqi'].iloc[0]}"
    log.info("ambient %s: %d station-hours; %s", day, len(hourly), note or "no daily AQI")
    return StepResult("ambient", day, "ambient", rows_in, rows_out=len(hourly), note=note).as_dict()


# ------------------------------------------------------------------------------------ vapor


def vapor_day(day: str, run_id: str = "") -> dict[str, Any]:
    """A/L per nozzle-day (``enforcement.vapor.nozzle_days``: valid refuellings only) and tank
    pressure per station-day (``tank_pressure_days``)."""
    from enforcement.vapor import nozzle_days, tank_pressure_days

    wh = warehouse()
    gas_stations = wh.read("gas_stations")
    refuellings = wh.read("refuellings", day=day)
    tank = wh.read("tank_pressure", day=day)
    nozzles = nozzle_days(refuellings, gas_stations)
    nozzles = nozzles[nozzles["day"] == day] if len(nozzles) else nozzles
    tanks = tank_pressure_days(tank, gas_stations) if len(tank) else pd.DataFrame()
    tanks = tanks[tanks["day"] == day] if len(tanks) else tanks
    wh.replace_derived("vapor_nozzle_days", day, nozzles, run_id)
    wh.replace_derived("vapor_tank_days", day, tanks, run_id)
    fails = int((nozzles["status"] == "fail").sum()) if len(nozzles) else 0
    note = f"{len(nozzles)} nozzle-days, {fails} out of range"
    return StepResult(
        "vapor", day, "vapor", len(refuellings) + len(tank), rows_out=len(nozzles), note=note
    ).as_dict()


# ------------------------------------------------------------------------------------ remote sensing


def unit_verdict_passes(passes: pd.DataFrame) -> pd.DataFrame:
    """The stored passes as ``enforcement.rsd.judge_passes`` reads them.

    ``rsd_passes`` keeps the unit's own verdict (``unit_valid`` 1/0, ``unit_invalid_reason``)
    beside the pipeline's (``valid``, ``invalid_reason``, which includes the unit's as
    ``rsd:<reason>``). Passes the pipeline invalidated for another reason (a clock fault …) are
    left out; for the rest the unit's flag becomes ``valid`` again, so that judge_passes applies
    its own windows and names the unit's verdict ``unit_flag``.
    """
    frame = passes.copy()
    reason = frame.get("invalid_reason", pd.Series("", index=frame.index)).fillna("").astype("str")
    pipeline_ok = frame.get("valid", pd.Series(True, index=frame.index)).fillna(False).astype(bool)
    own = reason.str.startswith("rsd:")
    frame = frame[pipeline_ok | own]
    flag = pd.to_numeric(frame.get("unit_valid"), errors="coerce")
    # the store keeps the profile's int column as a float: 1.0 -> "1", as the unit sent it
    frame = frame.drop(columns=["valid", "invalid_reason"], errors="ignore")
    frame["valid"] = flag.map(lambda v: "" if pd.isna(v) else str(int(v)))
    if "unit_invalid_reason" in frame.columns:
        frame["invalid_reason"] = frame["unit_invalid_reason"].fillna("")
    return frame.reset_index(drop=True)


def rsd_day(day: str, run_id: str = "") -> dict[str, Any]:
    """Every pass judged valid or not (HJ 845 windows, plate, calibration, the unit's flag), and
    each valid pass judged per pollutant against its fuel type's limits."""
    from enforcement.rsd import judge_passes, pass_judgements

    wh = warehouse()
    passes = wh.read("rsd_passes", day=day)
    checks_columns = ["reading_id", "device_id", "unit_id", "data_time", "day", "plate"]
    if passes.empty:
        wh.replace_derived("rsd_pass_checks", day, pd.DataFrame(columns=checks_columns), run_id)
        wh.replace_derived("rsd_judgements", day, pass_judgements(_no_passes()), run_id)
        return StepResult("rsd", day, "rsd").as_dict()
    judged = judge_passes(unit_verdict_passes(passes), wh.read("rsd_units"), wh.read("vehicles"))
    judgements = pass_judgements(judged)
    keep = [*checks_columns, "fuel_type", "gross_weight_t", "valid_pass", "reject_reason"]
    wh.replace_derived("rsd_pass_checks", day, judged[[c for c in keep if c in judged]], run_id)
    wh.replace_derived("rsd_judgements", day, judgements, run_id)
    n_exceeding = int(judgements["exceeds"].sum()) if len(judgements) else 0
    note = f"{int(judged['valid_pass'].sum())} valid passes, {n_exceeding} pollutant exceedances"
    return StepResult("rsd", day, "rsd", len(passes), rows_out=len(judgements), note=note).as_dict()


def _no_passes() -> pd.DataFrame:
    return pd.DataFrame(columns=["valid_pass", "fuel_type"]).astype({"valid_pass": "bool"})


# ------------------------------------------------------------------------------------ transmission


#: the measurement columns the completeness counts read
TRANSMISSION_COLUMNS = ["device_id", "reading_id", "cn", "code", "stream", "day", "valid"]


def quarantined_rows(quarantine: pd.DataFrame) -> pd.DataFrame:
    """The quarantined input rows (``reading_id, device_id, cn, code``) from their JSON copies:
    a quarantined record was received, it is just not valid."""
    columns = ["reading_id", "device_id", "cn", "code"]
    if quarantine.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for text in quarantine["row_json"]:
        try:
            row = json.loads(text)
        except (TypeError, ValueError):
            continue
        rows.append({c: row.get(c) for c in columns})
    out = pd.DataFrame(rows, columns=columns)
    return out[out["reading_id"].notna() & out["device_id"].notna()]


def completeness_rows(
    measurements: pd.DataFrame, quarantine: pd.DataFrame, day: str
) -> pd.DataFrame:
    """What ``validation.completeness.daily_completeness`` counts: stored rows with their
    validity, and quarantined rows as received-but-invalid."""
    stream = quarantine["stream"].iloc[0] if len(quarantine) else ""
    return _completeness_frame(measurements, quarantined_rows(quarantine), stream, day)


def _completeness_frame(
    measurements: pd.DataFrame, held: pd.DataFrame, stream: str, day: str
) -> pd.DataFrame:
    """:func:`completeness_rows` from quarantined rows already parsed (:func:`quarantined_rows`)."""
    columns = TRANSMISSION_COLUMNS
    stored = measurements.reindex(columns=columns).copy()
    stored["valid"] = stored["valid"].fillna(False).astype(bool)
    held = held.assign(day=day, valid=False)
    held["stream"] = stream
    out = pd.concat([stored, held.reindex(columns=columns)], ignore_index=True)
    out["cn"] = out["cn"].astype("str")
    out["valid"] = out["valid"].astype(bool)
    return out


def transmission_rows(
    measurements: pd.DataFrame, quarantine: pd.DataFrame, devices: pd.DataFrame, day: str
) -> pd.DataFrame:
    """Per registered CEMS and micro-station device on ``day``: due, received, valid, rates.

    CEMS records are judged on the monitored pollutants and O2 (a record is valid when all of
    them are); micro-station records on all their codes. Quarantined records count as received.
    """
    from validation.completeness import daily_completeness

    parts = []
    for stream, judged_codes in _judged_codes().items():
        stored = (
            measurements[measurements["stream"] == stream] if len(measurements) else measurements
        )
        held = quarantine[quarantine["stream"] == stream] if len(quarantine) else quarantine
        rows = completeness_rows(stored, held, day)
        part = daily_completeness(rows, devices, [day], stream=stream, codes=judged_codes)
        parts.append(part)
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _judged_codes() -> dict[str, list[str] | None]:
    """Per stream, the codes a record's validity is judged on (None: all of them)."""
    from schemas.enforcement_rules import setting

    return {"cems": [*setting("cems.pollutants"), setting("cems.o2_code")], "ambient": None}


def grouped_transmission_rows(
    wh: Any, day: str, devices: pd.DataFrame, group_size: int | None = None
) -> tuple[pd.DataFrame, int]:
    """:func:`transmission_rows` of ``day``, reading ``group_size`` registered devices of a
    stream at a time (``daily.device_group_size``), and how many measurement rows were read.

    Counts are per device-day, so each group is counted against the registry restricted to it;
    the groups are consecutive slices of the stream's sorted device ids, which is the order
    ``daily_completeness`` returns, so the parts put together are the whole day's frame. The
    day's quarantine of a stream (small) is read and parsed once and shared out by device.
    """
    from validation.completeness import daily_completeness

    size = device_group_size() if group_size is None else group_size
    parts = []
    rows_in = 0
    for stream, judged_codes in _judged_codes().items():
        mine = devices[devices["stream"].astype("str") == stream]
        ids = mine["device_id"].astype("str")
        registered = sorted(set(ids))
        quarantine = wh.read("quarantine", day=day, stream=stream)
        held = quarantined_rows(quarantine)
        held_stream = quarantine["stream"].iloc[0] if len(quarantine) else ""
        del quarantine
        for group in day_device_groups(wh, day, stream, registered, size):
            stored = read_columns(
                wh, "measurements", TRANSMISSION_COLUMNS, day=day, stream=stream, device_ids=group
            )
            rows_in += len(stored)
            rows = _completeness_frame(
                stored, held[held["device_id"].isin(group)], held_stream, day
            )
            del stored
            registry = mine[ids.isin(group)]
            part = daily_completeness(rows, registry, [day], stream=stream, codes=judged_codes)
            if len(part):
                parts.append(part)
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()), rows_in


def transmission_day(
    day: str, run_id: str = "", *, group_size: int | None = None
) -> dict[str, Any]:
    """Effective transmission (CEMS) and upload (micro-station) counts and rates of one day,
    ``group_size`` devices at a time (:func:`grouped_transmission_rows`)."""
    wh = warehouse()
    rates, rows_in = grouped_transmission_rows(wh, day, wh.read("devices"), group_size)
    wh.replace_derived("transmission_daily", day, rates, run_id)
    failing = int((~rates["complies"]).sum()) if len(rates) else 0
    note = f"{len(rates)} devices, {failing} under their minimum"
    return StepResult(
        "transmission", day, rows_in=rows_in, rows_out=len(rates), note=note
    ).as_dict()


__all__ = [
    "DISTRICT",
    "ambient_day",
    "completeness_rows",
    "daily_aqi",
    "day_device_groups",
    "device_group_size",
    "district_rolling_aqi",
    "grouped_station_hourly",
    "grouped_transmission_rows",
    "quarantined_rows",
    "read_columns",
    "rsd_day",
    "station_hourly",
    "transmission_day",
    "transmission_rows",
    "unit_verdict_passes",
    "vapor_day",
]
