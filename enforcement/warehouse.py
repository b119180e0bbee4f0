"""The warehouse: one SQLAlchemy Core schema on SQLite (embedded) or PostgreSQL (distributed).

Fact tables are partitioned by Beijing calendar day (a ``day`` text column, ``YYYY-MM-DD``). A task
replaces its partition in one transaction (delete, then insert), so a retried task or a day recomputed
after late data never leaves duplicates or a half-written partition behind.

Timestamps are stored as UTC; list-valued columns (``reading_ids``) as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from enforcement.warehouse_schema import JSON_COLUMNS, METADATA, REGISTRY_TABLES, TIME_COLUMNS


def month_bounds(month: str) -> tuple[str, str]:
    """``"2017-12"`` → (``"2017-12-01"``, ``"2018-01-01"``) as day-partition bounds."""
    year, mon = (int(part) for part in month.split("-"))
    start = date(year, mon, 1)
    end = date(year + (mon == 12), mon % 12 + 1, 1)
    return start.isoformat(), end.isoformat()


class Warehouse:
    """Read and write the warehouse tables as DataFrames."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, future=True)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if create:
            self.create()

    def create(self) -> None:
        """Bring the schema to the latest migration (the same revisions in both modes)."""
        from enforcement.migrations import upgrade

        upgrade(self.engine)

    def tables(self) -> tuple[str, ...]:
        return tuple(METADATA.tables)

    def table(self, name: str) -> sa.Table:
        try:
            return METADATA.tables[name]
        except KeyError:
            raise KeyError(f"no warehouse table {name!r}") from None

    # -- writing -------------------------------------------------------------------------------
    def replace(self, name: str, frame: pd.DataFrame, **where: Any) -> int:
        """Replace the rows matching ``where`` (e.g. ``day="2017-12-01"``) with ``frame``."""
        table = self.table(name)
        rows = _to_records(table, frame)
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(*_conditions(table, where)))
            if rows:
                conn.execute(table.insert(), rows)
        return len(rows)

    def replace_all(self, name: str, frame: pd.DataFrame) -> int:
        return self.replace(name, frame)

    def load_registry(self, folder: Path) -> dict[str, int]:
        """Load the bureau's registry CSV files (docs/ARCHITECTURE.md) that exist in ``folder``."""
        counts = {}
        for name in REGISTRY_TABLES:
            path = Path(folder) / f"{name}.csv"
            if path.exists():
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
                counts[name] = self.replace_all(name, frame)
        return counts

    # -- reading -------------------------------------------------------------------------------
    def read(
        self,
        name: str,
        *,
        day: str | None = None,
        month: str | None = None,
        days: Iterable[str] | None = None,
        **where: Any,
    ) -> pd.DataFrame:
        table = self.table(name)
        conditions = list(_conditions(table, where))
        if day is not None:
            conditions.append(table.c.day == day)
        if days is not None:
            conditions.append(table.c.day.in_(list(days)))
        if month is not None:
            start, end = month_bounds(month)
            conditions.append(table.c.day >= start)
            conditions.append(table.c.day < end)
        query = sa.select(table).where(*conditions)
        with self.engine.connect() as conn:
            result = conn.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        return _from_records(table, frame)

    # -- derived figures ---------------------------------------------------------------------
    def replace_derived(self, name: str, part: str, frame: pd.DataFrame, run_id: str = "") -> int:
        """Store one figure (any columns) for a day or a month, replacing what was there."""
        rows, dtypes = _frame_to_json_rows(frame)
        derived, meta = self.table("derived"), self.table("derived_meta")
        with self.engine.begin() as conn:
            for table in (derived, meta):
                conn.execute(table.delete().where(table.c.part == part, table.c.name == name))
            if rows:
                conn.execute(
                    derived.insert(),
                    [
                        {"part": part, "name": name, "seq": i, "row_json": r}
                        for i, r in enumerate(rows)
                    ],
                )
            conn.execute(
                meta.insert(),
                [
                    {
                        "part": part,
                        "name": name,
                        "dtypes_json": json.dumps(dtypes),
                        "run_id": run_id,
                        "built_at": pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
                    }
                ],
            )
        return len(rows)

    def read_derived(self, name: str, part: str) -> pd.DataFrame | None:
        """A stored figure for a day, or for a month (the month's own rows and its days' rows);
        None when it was never computed for that period."""
        derived, meta = self.table("derived"), self.table("derived_meta")
        in_part = sa.or_(derived.c.part == part, derived.c.part.like(f"{part}-%"))
        meta_in_part = sa.or_(meta.c.part == part, meta.c.part.like(f"{part}-%"))
        with self.engine.connect() as conn:
            metas = (
                conn.execute(sa.select(meta.c.dtypes_json).where(meta_in_part, meta.c.name == name))
                .scalars()
                .all()
            )
            if not metas:
                return None
            rows = conn.execute(
                sa.select(derived.c.row_json)
                .where(in_part, derived.c.name == name)
                .order_by(derived.c.part, derived.c.seq)
            ).scalars()
            records = [json.loads(r) for r in rows]
        dtypes: dict[str, str] = {}
        for text in metas:
            dtypes.update(json.loads(text))
        return _frame_from_json_rows(records, dtypes)

    def derived_names(self, part: str) -> list[str]:
        meta = self.table("derived_meta")
        in_part = sa.or_(meta.c.part == part, meta.c.part.like(f"{part}-%"))
        with self.engine.connect() as conn:
            return sorted(set(conn.execute(sa.select(meta.c.name).where(in_part)).scalars()))

    def count(self, name: str, **where: Any) -> int:
        table = self.table(name)
        query = sa.select(sa.func.count()).select_from(table).where(*_conditions(table, where))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, list | dict | str | int | float | bool):
        return value
    return str(value)


def _frame_to_json_rows(frame: pd.DataFrame | None) -> tuple[list[str], dict[str, str]]:
    if frame is None:
        return [], {}
    dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
    rows = [
        json.dumps({str(k): _json_value(v) for k, v in record.items()}, ensure_ascii=False)
        for record in frame.to_dict(orient="records")
    ]
    return rows, dtypes


def _frame_from_json_rows(records: list[dict[str, Any]], dtypes: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=list(dtypes))
    for column, kind in dtypes.items():
        if kind.startswith("datetime64"):
            stamps = pd.to_datetime(frame[column], utc=True, format="ISO8601")
            frame[column] = stamps if "UTC" in kind or "," in kind else stamps.dt.tz_localize(None)
        elif kind in ("float64", "Float64"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        elif kind in ("int64", "Int64") and frame[column].notna().all():
            frame[column] = frame[column].astype("int64")
        elif kind == "bool" and frame[column].notna().all():
            frame[column] = frame[column].astype("bool")
    return frame


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _conditions(table: sa.Table, where: dict[str, Any]) -> list[Any]:
    out = []
    for key, value in where.items():
        if key not in table.c:
            raise KeyError(f"table {table.name!r} has no column {key!r}")
        out.append(table.c[key] == value)
    return out


def _to_records(table: sa.Table, frame: pd.DataFrame) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    missing = [c.name for c in table.columns if c.name not in frame.columns and not c.nullable]
    if missing:
        raise ValueError(f"table {table.name!r}: frame lacks required columns {missing}")
    columns = [c.name for c in table.columns if c.name in frame.columns]
    data = frame[columns].copy()
    for name in columns:
        if name in JSON_COLUMNS:
            data[name] = data[name].map(lambda v: v if isinstance(v, str) else json.dumps(list(v)))
        elif name in TIME_COLUMNS:
            stamps = pd.to_datetime(data[name], utc=True)
            data[name] = stamps.dt.tz_localize(None).astype(object)
    data = data.astype(object).where(data.notna(), None)
    return data.to_dict(orient="records")


def _from_records(table: sa.Table, frame: pd.DataFrame) -> pd.DataFrame:
    for name in frame.columns:
        if name in TIME_COLUMNS:
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif name in JSON_COLUMNS:
            frame[name] = frame[name].map(lambda v: json.loads(v) if isinstance(v, str) else [])
        elif isinstance(table.c[name].type, sa.Float):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame
