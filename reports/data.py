"""What the report is built from: :class:`ReportData`, and its reader from the warehouse.

Every field is a DataFrame or ``None``. ``None`` means the figure was not produced (no table, the
computation did not run); an empty frame means it ran and found nothing. The report says which.
Column contracts are in docs/report.md; extra columns are allowed everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

import pandas as pd


@dataclass
class ReportData:
    # CEMS: exceedances (one row per exceeding stack-hour) and hourly means for the charts
    exceedances: pd.DataFrame | None = None
    cems_hourly: pd.DataFrame | None = None
    # enforcement acts
    cases: pd.DataFrame | None = None
    penalty_ledger: pd.DataFrame | None = None
    case_events_refused: pd.DataFrame | None = None  # the bureau's events the checks refused
    # subdistricts listed for supervision (挂牌督办, plan clause 18)
    supervision: pd.DataFrame | None = None
    # data transmission (stacks) and micro-station upload
    transmission: pd.DataFrame | None = None
    upload_rates: pd.DataFrame | None = None
    # ambient air: subdistrict ranking, AQI, alerts
    weekly_ranking: pd.DataFrame | None = None
    aqi_daily: pd.DataFrame | None = None
    alerts: pd.DataFrame | None = None
    alert_transitions: pd.DataFrame | None = None
    # vapor recovery
    vapor_nozzle_days: pd.DataFrame | None = None
    vapor_alarms: pd.DataFrame | None = None
    vapor_station_efficiency: pd.DataFrame | None = None
    vapor_stations_without_monitor: pd.DataFrame | None = None
    # vehicle remote sensing
    rsd_high_emitters: pd.DataFrame | None = None
    rsd_repeat_offenders: pd.DataFrame | None = None
    rsd_high_emitter_runs: pd.DataFrame | None = None  # one row per vehicle and pollutant
    transport_china4_share: pd.DataFrame | None = None  # key transport enterprises (clause 33)
    # fuel-quality and inspection-agency sampling
    sampling_ratios: pd.DataFrame | None = None
    sampling_failed: pd.DataFrame | None = None
    # dustfall, accountability, data quality, tamper suspicions
    dustfall: pd.DataFrame | None = None
    dustfall_subdistrict: pd.DataFrame | None = None
    dustfall_invalid: pd.DataFrame | None = None
    accountability: pd.DataFrame | None = None
    quality: pd.DataFrame | None = None
    suspicions: pd.DataFrame | None = None
    # inspection findings for public disclosure (annexes 1-3)
    disclosure: pd.DataFrame | None = None

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


#: field -> {producer column: report column}: the names ``enforcement/*.py`` gives a figure, mapped
#: to the report's contract (docs/report.md). A column is renamed only when the frame lacks the
#: contract name, so a producer that already speaks the contract is left alone.
ALIASES: dict[str, dict[str, str]] = {
    "transmission": {
        "receipt_rate": "transmission_rate",
        "valid_share": "validity_rate",
        "rate": "effective_rate",
        "complies": "compliant",
    },
    "upload_rates": {"rate": "upload_rate", "complies": "compliant"},
    "weekly_ranking": {"week_start": "week", "bottom": "bottom_two"},
    "aqi_daily": {"day": "date", "primary_pollutants": "primary"},
    "alerts": {
        "episode": "episode_id",
        "start": "started_at",
        "end": "ended_at",
        "time": "at",
    },
    "vapor_station_efficiency": {"efficiency_estimate": "efficiency", "name": "gas_station_name"},
    "vapor_alarms": {"name": "gas_station_name"},
    "vapor_stations_without_monitor": {"name": "gas_station_name"},
    "rsd_high_emitters": {
        "n_consecutive": "n_exceedances",
        "routed_to": "authority",
        "first_time": "first_seen",
        "last_time": "last_seen",
    },
    "rsd_repeat_offenders": {
        "n_exceeding_passes": "n_exceedances",
        "owner": "vehicle_owner",
        "first_time": "first_seen",
        "last_time": "last_seen",
    },
    "sampling_ratios": {"share": "ratio", "required_share": "target", "complies": "met"},
    "sampling_failed": {"date": "sampled_on", "station_name": "gas_station_name"},
    "accountability": {"a_unrectified": "overdue_issues", "b_new_score": "new_issue_score"},
    "dustfall": {"dustfall_30d": "dustfall", "site_name": "site"},
    "dustfall_subdistrict": {"dustfall_30d": "dustfall"},
    "alert_transitions": {"time": "at"},
    "rsd_high_emitter_runs": {
        "routed_to": "authority",
        "first_time": "first_seen",
        "last_time": "last_seen",
    },
}

#: field -> {report column: producer column that replaces it}: the producers give an English key
#: and a Chinese name side by side (``category`` / ``category_zh``); the report prints the Chinese
PREFER: dict[str, dict[str, str]] = {
    "aqi_daily": {"category": "category_zh"},
    "alerts": {"level": "level_zh"},
}

#: sampling_ratios: (kind shown, column that marks a row of that kind, its total, its sampled)
SAMPLING_KINDS = (
    ("加油站油品抽检", "n_stations", "n_stations", "n_sampled"),
    ("机动车检验机构抽查", "n_agencies", "n_agencies", "n_checked"),
)


def conform(data: ReportData, registry: dict[str, pd.DataFrame | None] | None = None) -> ReportData:
    """``data`` with producer column names mapped to the report's (see :data:`ALIASES`) and,
    when the registry is given, names added for ids (subdistrict, gas station, stack owner)."""
    registry = registry or {}
    frames: dict[str, pd.DataFrame | None] = {}
    for name in ReportData.field_names():
        frame = getattr(data, name)
        if frame is not None:
            frame = _renamed(frame, ALIASES.get(name, {}))
            if name == "sampling_ratios":
                frame = _sampling_rows(frame)
            for target, source in PREFER.get(name, {}).items():
                if source in frame.columns:
                    frame = frame.drop(columns=target, errors="ignore")
                    frame = frame.rename(columns={source: target})
            frame = _named(frame, registry)
        frames[name] = frame
    return ReportData(**frames)


def _sampling_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``kind``, ``total`` and ``sampled`` for rows of enforcement.sampling's station and agency
    frames (which name their counts differently), so both fit one table."""
    if "kind" in frame.columns and {"total", "sampled"} <= set(frame.columns):
        return frame
    out = frame.copy()
    for column in ("kind", "total", "sampled"):
        if column not in out.columns:
            out[column] = None
    for kind, marker, total, sampled in SAMPLING_KINDS:
        if marker not in out.columns:
            continue
        rows = out[marker].notna() & out["kind"].isna()
        out.loc[rows, "kind"] = kind
        out.loc[rows, "total"] = out.loc[rows, total]
        if sampled in out.columns:
            out.loc[rows, "sampled"] = out.loc[rows, sampled]
    drop = {c for _, m, t, s in SAMPLING_KINDS for c in (m, t, s)} & set(out.columns)
    return out.drop(columns=sorted(drop))


def _renamed(frame: pd.DataFrame, aliases: dict[str, str]) -> pd.DataFrame:
    mapping = {}
    for source, target in aliases.items():
        if (
            source in frame.columns
            and target not in frame.columns
            and target not in mapping.values()
        ):
            mapping[source] = target
    return frame.rename(columns=mapping) if mapping else frame


def _named(frame: pd.DataFrame, registry: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Add a name column beside an id column, from the registry, where the name is missing."""
    lookups = (
        ("subdistrict_id", "subdistricts", "subdistrict", "name"),
        ("gas_station_id", "gas_stations", "gas_station_name", "name"),
        ("station_id", "stations", "station_name", "name"),
    )
    out = frame
    for id_col, table, name_col, source_col in lookups:
        ref = registry.get(table)
        if id_col in out.columns and _has(ref, id_col, source_col):
            if out is frame:
                out = frame.copy()
            names = ref.drop_duplicates(id_col).set_index(id_col)[source_col]
            _fill(out, name_col, out[id_col].astype(str).map(names))
    return out


class WarehouseLike(Protocol):
    def read(self, name: str, **kwargs: Any) -> pd.DataFrame: ...


#: ReportData field -> warehouse table it is read from (same name unless listed)
TABLE_OF: dict[str, str] = {}

#: tables that are not partitioned by day: read whole, then filtered to the month by a column
UNPARTITIONED_MONTH_COLUMN: dict[str, str] = {"transmission": "month"}

REGISTRY = ("stacks", "enterprises", "subdistricts", "gas_stations", "stations")


def _columns(warehouse: WarehouseLike, table: str) -> list[str] | None:
    """The table's column names, None when the warehouse cannot tell; KeyError when no table."""
    describe = getattr(warehouse, "table", None)
    if describe is None:
        return None
    return list(describe(table).c.keys())


def _read(warehouse: WarehouseLike, table: str, month: str) -> pd.DataFrame | None:
    """One table for the month, or None when the warehouse has no such table.

    Monthly figures that have no table of their own are read from the warehouse's derived store.
    """
    read_derived = getattr(warehouse, "read_derived", None)
    if read_derived is not None and table not in getattr(warehouse, "tables", lambda: ())():
        return read_derived(table, month)
    try:
        columns = _columns(warehouse, table)
        if columns is None or "day" in columns:
            return warehouse.read(table, month=month)
        frame = warehouse.read(table)
    except KeyError:
        return None
    column = UNPARTITIONED_MONTH_COLUMN.get(table)
    if column and column in frame.columns:
        frame = frame[frame[column].astype(str).str.startswith(month)]
    return frame


def _registry(warehouse: WarehouseLike, table: str) -> pd.DataFrame | None:
    try:
        return warehouse.read(table)
    except KeyError:
        return None


def load_report_data(warehouse: WarehouseLike, month: str) -> ReportData:
    """Read every report frame of ``month`` (``YYYY-MM``) from the warehouse.

    Tables the warehouse does not have yet stay ``None`` (the report says "未取得数据").
    Exceedances get the registry's stack, enterprise and subdistrict names.
    """
    frames: dict[str, pd.DataFrame | None] = {}
    for name in ReportData.field_names():
        frames[name] = _read(warehouse, TABLE_OF.get(name, name), month)
    registry = {name: _registry(warehouse, name) for name in REGISTRY}
    if frames["exceedances"] is not None:
        frames["exceedances"] = with_names(
            frames["exceedances"],
            registry["stacks"],
            registry["enterprises"],
            registry["subdistricts"],
        )
    if frames["transmission"] is not None:
        frames["transmission"] = with_owners(frames["transmission"], registry)
    if frames["supervision"] is not None:
        frames["supervision"] = with_enterprise_list_names(
            frames["supervision"], registry["enterprises"]
        )
    return conform(ReportData(**frames), registry)


def with_enterprise_list_names(
    frame: pd.DataFrame, enterprises: pd.DataFrame | None, column: str = "exceeding_enterprises"
) -> pd.DataFrame:
    """Enterprise ids in a list column (the supervision list's) replaced by their names."""
    if column not in frame.columns or not _has(enterprises, "enterprise_id", "name"):
        return frame
    names = enterprises.drop_duplicates("enterprise_id").set_index("enterprise_id")["name"]
    lookup = {str(k): str(v) for k, v in names.items()}

    def named(ids: object) -> object:
        if not isinstance(ids, list | tuple):
            return ids
        return [lookup.get(str(i), str(i)) for i in ids]

    return frame.assign(**{column: frame[column].map(named)})


def with_owners(
    transmission: pd.DataFrame, registry: dict[str, pd.DataFrame | None]
) -> pd.DataFrame:
    """Add ``owner`` (enterprise and stack) and ``subdistrict_id`` to device transmission rates."""
    stacks, enterprises = registry.get("stacks"), registry.get("enterprises")
    if "device_id" not in transmission.columns or not _has(stacks, "device_id", "stack_id"):
        return transmission
    out = transmission.copy()
    by_device = stacks.drop_duplicates("device_id").set_index("device_id")
    if "name" in by_device.columns:
        _fill(out, "stack_name", out["device_id"].map(by_device["name"]))
    if "enterprise_id" in by_device.columns and _has(enterprises, "enterprise_id", "name"):
        by_ent = enterprises.drop_duplicates("enterprise_id").set_index("enterprise_id")
        ent = out["device_id"].map(by_device["enterprise_id"])
        owner = ent.map(by_ent["name"])
        if "stack_name" in out.columns:
            owner = owner + " " + out["stack_name"].fillna("")
        _fill(out, "owner", owner)
        if "subdistrict_id" in by_ent.columns:
            _fill(out, "subdistrict_id", ent.map(by_ent["subdistrict_id"]))
    return out


def with_names(
    exceedances: pd.DataFrame,
    stacks: pd.DataFrame | None = None,
    enterprises: pd.DataFrame | None = None,
    subdistricts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add ``stack_name``, ``enterprise_name`` and ``subdistrict`` from the registry where absent."""
    out = exceedances.copy()
    if _has(stacks, "stack_id", "name"):
        by_stack = stacks.drop_duplicates("stack_id").set_index("stack_id")
        _fill(out, "stack_name", out["stack_id"].map(by_stack["name"]))
        if "enterprise_id" in by_stack.columns:
            _fill(out, "enterprise_id", out["stack_id"].map(by_stack["enterprise_id"]))
    if "enterprise_id" in out.columns and _has(enterprises, "enterprise_id", "name"):
        by_id = enterprises.drop_duplicates("enterprise_id").set_index("enterprise_id")
        _fill(out, "enterprise_name", out["enterprise_id"].map(by_id["name"]))
        if "subdistrict_id" in by_id.columns:
            _fill(out, "subdistrict_id", out["enterprise_id"].map(by_id["subdistrict_id"]))
    if "subdistrict_id" in out.columns and _has(subdistricts, "subdistrict_id", "name"):
        names = subdistricts.drop_duplicates("subdistrict_id").set_index("subdistrict_id")["name"]
        _fill(out, "subdistrict", out["subdistrict_id"].map(names))
    return out


def _fill(frame: pd.DataFrame, column: str, values: pd.Series) -> None:
    """Set ``column`` where it is absent or null; values already there win."""
    if column in frame.columns:
        frame[column] = frame[column].where(frame[column].notna(), values)
    else:
        frame[column] = values


def _has(frame: pd.DataFrame | None, *columns: str) -> bool:
    return frame is not None and not frame.empty and all(c in frame.columns for c in columns)
