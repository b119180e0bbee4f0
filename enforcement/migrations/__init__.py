"""Alembic migrations of the warehouse, run the same way on SQLite and on PostgreSQL.

``upgrade(url)`` brings a warehouse to the newest revision. It is safe to call from every task
of a distributed run at once: on PostgreSQL the upgrade holds a transaction-scoped advisory lock,
so one caller migrates and the others find the database already at head. A warehouse made by
``METADATA.create_all`` before migrations existed is adopted (stamped at head) when its tables
match the schema exactly, and refused with the differences otherwise.

``enforcement.warehouse_schema.METADATA`` stays the one definition the code reads and writes
through; every change to it must come with a revision in ``versions/`` (the test in
``tests/distributed/test_migrations.py`` fails until it does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from enforcement.warehouse_schema import METADATA

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"
#: pg_advisory_xact_lock key: any constant shared by every process that migrates the warehouse.
LOCK_KEY = 0x4C414E5449414E  # "LANTIAN"


class WarehouseSchemaError(RuntimeError):
    """The database's schema cannot be brought to the code's schema automatically."""


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration pointing at this folder (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "60")
    if url:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head() -> str:
    """The newest revision id in ``versions/``; more than one head is a merge someone forgot."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise WarehouseSchemaError(
            f"warehouse migrations have {len(heads)} heads {heads}; merge them"
        )
    return heads[0]


def current_revision(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def schema_diff(conn: sa.Connection, metadata: sa.MetaData = METADATA) -> list[Any]:
    """Alembic autogenerate's differences between the database and ``metadata`` (empty = equal)."""
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return compare_metadata(context, metadata)


def describe(diff: Any) -> str:
    """One short line for an autogenerate difference, e.g. ``add_column measurements.flag``."""
    if isinstance(diff, list):  # modify_* differences come grouped per column
        return "; ".join(describe(d) for d in diff)
    kind, *rest = diff
    if kind in ("add_table", "remove_table"):
        return f"{kind} {rest[0].name}"
    if kind in ("add_column", "remove_column"):
        return f"{kind} {rest[1]}.{rest[2].name}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        return f"{kind} {rest[0].name} on {rest[0].table.name}"
    if kind.startswith("modify_"):
        _schema, table, column, _info, old, new = rest
        return f"{kind} {table}.{column}: {old!r} -> {new!r}"
    return repr(diff)


@contextmanager
def _engine(target: str | sa.Engine) -> Iterator[sa.Engine]:
    """An engine for a URL (made here, disposed after) or the caller's own engine (kept: an
    in-memory SQLite lives only in its engine's connection)."""
    if isinstance(target, sa.Engine):
        yield target
        return
    parsed = sa.engine.make_url(target)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(target, poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def _adopt_unversioned(conn: sa.Connection, config: Config) -> None:
    """Stamp a warehouse that ``create_all`` made before migrations existed, if it matches."""
    inspector = sa.inspect(conn)
    if inspector.has_table(VERSION_TABLE):
        return
    if not set(inspector.get_table_names()) & set(METADATA.tables):
        return  # empty database: the revisions create everything
    diffs = schema_diff(conn)
    if diffs:
        shown = "\n  ".join(describe(d) for d in diffs)
        raise WarehouseSchemaError(
            "the warehouse has tables but no migration history, and they differ from "
            f"enforcement/warehouse_schema.py:\n  {shown}\nAn embedded warehouse is derived "
            "data: delete it and re-run the DAGs; a PostgreSQL one needs a hand migration."
        )
    command.stamp(config, "head")


def upgrade(target: str | sa.Engine, revision: str = "head") -> str:
    """Migrate the warehouse at ``target`` (a URL or an engine) to ``revision`` (default: the
    newest); return the revision it is at."""
    wanted = head() if revision == "head" else revision
    with _engine(target) as engine:
        with engine.connect() as conn:
            if current_revision(conn) == wanted:
                return wanted  # the common case in every task: nothing to do, no lock taken
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Serialises concurrent upgrades; released when this transaction ends.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = conn
            _adopt_unversioned(conn, config)
            command.upgrade(config, revision)
            return current_revision(conn) or ""


def current(target: str | sa.Engine) -> str | None:
    """The revision the warehouse is at (None: never migrated)."""
    with _engine(target) as engine, engine.connect() as conn:
        return current_revision(conn)


def check(target: str | sa.Engine) -> list[Any]:
    """Differences between the warehouse and ``METADATA`` (empty when in step)."""
    with _engine(target) as engine, engine.connect() as conn:
        return schema_diff(conn)
