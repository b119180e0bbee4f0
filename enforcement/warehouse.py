"""The warehouse: one SQLAlchemy Core schema on SQLite (embedded) or PostgreSQL (distributed).

Fact tables are partitioned by Beijing calendar day (a ``day`` text column, ``YYYY-MM-DD``). A task
replaces its partition in one transaction (delete, then insert), so a retried task or a day recomputed
after late data never leaves duplicates or a half-written partition behind.

Timestamps are stored as UTC; list-valued columns (``reading_ids``) as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from enforcement.warehouse_schema import JSON_COLUMNS, METADATA, REGISTRY_TABLES, TIME_COLUMNS

#: Rows converted and sent per insert: bounds the Python objects a write holds at once.
WRITE_CHUNK_ROWS = 50_000
#: Rows fetched per round trip when reading.
READ_CHUNK_ROWS = 100_000


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
        """Replace the rows matching ``where`` (e.g. ``day="2017-12-01"``) with ``frame``.

        One transaction: readers see the old rows or the new ones, never a mix. The frame is
        converted and sent ``WRITE_CHUNK_ROWS`` rows at a time, so a day of millions of rows
        never exists as millions of Python dicts at once."""
        table = self.table(name)
        _check_required(table, frame)
        written = 0
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(*_conditions(table, where)))
            for columns, rows in _row_chunks(table, frame, WRITE_CHUNK_ROWS, conn.dialect.name):
                _insert_rows(conn, table, columns, rows)
                written += len(rows)
        return written

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
        device_ids: Iterable[str] | None = None,
        **where: Any,
    ) -> pd.DataFrame:
        """Rows of ``name`` (every column) matching the filters; see :meth:`read_columns`."""
        table = self.table(name)
        columns = [c.name for c in table.columns]
        return self.read_columns(
            name, columns, day=day, month=month, days=days, device_ids=device_ids, **where
        )

    def read_columns(
        self,
        name: str,
        columns: list[str],
        *,
        day: str | None = None,
        month: str | None = None,
        days: Iterable[str] | None = None,
        device_ids: Iterable[str] | None = None,
        **where: Any,
    ) -> pd.DataFrame:
        """Some columns of ``name``: ``where`` are equalities, ``day`` / ``days`` / ``month``
        select day partitions, ``device_ids`` a set of devices.

        Fetched ``READ_CHUNK_ROWS`` at a time into frames (the driver's row tuples of a day of
        measurements would take several times the frame's memory), and repeated strings (device,
        stream, code, batch...) share one object per chunk instead of one per row."""
        table = self.table(name)
        conditions = _filters(table, where, day=day, month=month, days=days, device_ids=device_ids)
        query = sa.select(*(_raw_column(table.c[c]) for c in columns)).where(*conditions)
        # the driver's own cursor: plain tuples (a SQLAlchemy Row per value costs more than
        # the fetch itself on millions of rows; pandas probes each row's attributes)
        sql = str(
            query.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True})
        )
        chunks = []
        with self.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                cursor.execute(sql)
                while rows := cursor.fetchmany(READ_CHUNK_ROWS):
                    data = dict(
                        zip(columns, (list(c) for c in zip(*rows, strict=True)), strict=True)
                    )
                    del rows
                    chunks.append(_shared_strings(pd.DataFrame(data, columns=columns)))
            finally:
                cursor.close()
        if not chunks:
            frame = pd.DataFrame(columns=columns)
        elif len(chunks) == 1:
            frame = chunks[0]
        else:
            frame = pd.concat(chunks, ignore_index=True)
        del chunks
        return _from_records(table, frame)

    def distinct(self, name: str, column: str, **filters: Any) -> list[Any]:
        """Distinct values of one column under the same filters as :meth:`read_columns`, sorted."""
        table = self.table(name)
        special = {
            k: filters.pop(k) for k in ("day", "month", "days", "device_ids") if k in filters
        }
        conditions = _filters(table, filters, **special)
        query = sa.select(table.c[column]).where(*conditions).distinct()
        with self.engine.connect() as conn:
            values = conn.execute(query).scalars().all()
        return sorted(v for v in values if v is not None)

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


def _filters(
    table: sa.Table,
    where: dict[str, Any],
    *,
    day: str | None = None,
    month: str | None = None,
    days: Iterable[str] | None = None,
    device_ids: Iterable[str] | None = None,
) -> list[Any]:
    conditions = _conditions(table, where)
    if day is not None:
        conditions.append(table.c.day == day)
    if days is not None:
        conditions.append(table.c.day.in_(list(days)))
    if month is not None:
        start, end = month_bounds(month)
        conditions.append(table.c.day >= start)
        conditions.append(table.c.day < end)
    if device_ids is not None:
        if "device_id" not in table.c:
            raise KeyError(f"table {table.name!r} has no device_id column to filter on")
        conditions.append(table.c.device_id.in_(list(device_ids)))
    return conditions


def _raw_column(column: sa.Column) -> Any:
    """The column as the driver returns it, without SQLAlchemy's per-value conversion (SQLite
    keeps times as text and booleans as 0/1): converted a column at a time in
    :func:`_from_records` instead, which is many times faster on millions of rows."""
    if isinstance(column.type, sa.DateTime):
        return sa.type_coerce(column, sa.Text()).label(column.name)
    if isinstance(column.type, sa.Boolean):
        return sa.type_coerce(column, sa.Integer()).label(column.name)
    return column


def _shared_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns whose values repeat point at one string object per distinct value (the
    driver makes a new object per row: ~60 bytes each for a device id, a code, a stream...)."""
    for name in frame.columns:
        column = frame[name]
        text = isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "python"
        if not (text or column.dtype == object) or len(column) < 2:
            continue
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        if not len(uniques) or len(uniques) * 2 > len(column):
            continue  # all missing, or mostly distinct (ids, hashes): nothing to share
        values = np.asarray(uniques, dtype=object).take(np.maximum(codes, 0))
        values[codes < 0] = None
        frame[name] = pd.array(values, dtype=column.dtype) if text else values
    return frame


def _conditions(table: sa.Table, where: dict[str, Any]) -> list[Any]:
    out = []
    for key, value in where.items():
        if key not in table.c:
            raise KeyError(f"table {table.name!r} has no column {key!r}")
        out.append(table.c[key] == value)
    return out


def _check_required(table: sa.Table, frame: pd.DataFrame | None) -> None:
    if frame is None or frame.empty:
        return
    missing = [c.name for c in table.columns if c.name not in frame.columns and not c.nullable]
    if missing:
        raise ValueError(f"table {table.name!r}: frame lacks required columns {missing}")


def _row_chunks(
    table: sa.Table, frame: pd.DataFrame | None, size: int, dialect: str
) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """(column names, row tuples) of ``size`` rows at a time, values as the driver binds them.

    Converted a column at a time (vectorised) instead of through a dict per row and the ORM's
    per-value processors: the same stored values, several times faster on a day of millions of
    rows."""
    if frame is None or frame.empty:
        return
    columns = [c.name for c in table.columns if c.name in frame.columns]
    for first in range(0, len(frame), size):
        part = frame.iloc[first : first + size]
        values = [_bind_values(table.c[c], part[c], dialect) for c in columns]
        yield columns, list(zip(*values, strict=True))


def _bind_values(column: sa.Column, values: pd.Series, dialect: str) -> list[Any]:
    """One column's values as Python objects the DB-API driver binds (None for missing)."""
    missing = values.isna().to_numpy()
    if column.name in JSON_COLUMNS:
        out = [
            None if gone else v if isinstance(v, str) else json.dumps(list(v))
            for v, gone in zip(values.tolist(), missing.tolist(), strict=True)
        ]
    elif isinstance(column.type, sa.DateTime):
        stamps = pd.to_datetime(values, utc=True).dt.tz_localize(None)
        # a day has few distinct instants (minutes): format each once
        codes, uniques = pd.factorize(stamps)
        # the text SQLAlchemy's SQLite DateTime writes (and PostgreSQL parses): microseconds kept
        text = np.datetime_as_string(uniques.to_numpy(dtype="datetime64[us]"), unit="us")
        text = np.array([t.replace("T", " ") for t in text.tolist()] + [None], dtype=object)
        out = text.take(codes).tolist()  # code -1 (missing) takes the trailing None
    elif isinstance(column.type, sa.Boolean):
        flags = values.where(~missing, False).astype(bool).tolist()
        out = [int(f) for f in flags] if dialect == "sqlite" else flags
    else:
        out = values.astype(object).tolist()
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            out[i] = None
    return out


def _insert_rows(
    conn: sa.Connection, table: sa.Table, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()
        if hasattr(cursor, "copy"):  # psycopg 3: COPY, PostgreSQL's bulk path
            with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        else:  # psycopg2
            from psycopg2.extras import execute_values

            sql = f'INSERT INTO "{table.name}" ({names}) VALUES %s'
            execute_values(cursor, sql, rows, page_size=5000)
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)


def _from_records(table: sa.Table, frame: pd.DataFrame) -> pd.DataFrame:
    for name in frame.columns:
        kind = table.c[name].type
        if name in TIME_COLUMNS or isinstance(kind, sa.DateTime):
            frame[name] = _times(frame[name])
        elif name in JSON_COLUMNS:
            frame[name] = frame[name].map(lambda v: json.loads(v) if isinstance(v, str) else [])
        elif isinstance(kind, sa.Float):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        elif isinstance(kind, sa.Boolean):
            frame[name] = _flags(frame[name])
    return frame


def _times(values: pd.Series) -> pd.Series:
    """UTC timestamps from what the driver returned: text (SQLite) or datetimes (PostgreSQL)."""
    if values.dtype == object and len(values):
        try:
            return pd.to_datetime(values, utc=True, format="ISO8601")
        except (TypeError, ValueError):
            pass  # a mix the fast parser refuses: the general one below
    return pd.to_datetime(values, utc=True)


def _flags(values: pd.Series) -> pd.Series:
    """Booleans from 0/1 (SQLite) or bools (PostgreSQL): bool when none is missing, else
    objects with None, as SQLAlchemy returns them."""
    missing = values.isna()
    if not missing.any():
        return values.astype(bool)
    out = values.astype(object).where(missing, values.fillna(0).astype(bool))
    return out.where(~missing, None)
