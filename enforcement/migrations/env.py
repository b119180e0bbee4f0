"""Alembic environment of the warehouse: one schema, SQLite (embedded) or PostgreSQL (distributed).

Programmatic callers (``enforcement.migrations.upgrade``) hand over an open connection in
``config.attributes["connection"]`` so the upgrade runs inside their transaction (and under their
PostgreSQL advisory lock). From the command line the URL comes from ``sqlalchemy.url`` in
``alembic.ini`` or, when that is empty, from ``$LANTIAN_WAREHOUSE_URL``:

    LANTIAN_WAREHOUSE_URL=postgresql://… alembic -c enforcement/migrations/alembic.ini upgrade head
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from enforcement.warehouse_schema import METADATA

config = context.config
if config.config_file_name and "connection" not in config.attributes:
    # Command-line use: logging as alembic.ini says. Programmatic callers keep their own logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("LANTIAN_WAREHOUSE_URL")
    if not url:
        raise SystemExit(
            "warehouse migrations: no database URL; set LANTIAN_WAREHOUSE_URL or sqlalchemy.url"
        )
    return url


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        # SQLite cannot ALTER most things: later revisions' op.batch_alter_table copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_offline() -> None:
    """``alembic upgrade head --sql``: print the DDL for a DBA instead of running it."""
    context.configure(url=_url(), target_metadata=METADATA, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
