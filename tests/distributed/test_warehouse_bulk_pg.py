"""The warehouse's bulk write (COPY) and raw chunked read on PostgreSQL store and return exactly
what SQLAlchemy's own per-row path does (the SQLite half is tests/warehouse/test_warehouse_bulk_io.py)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from enforcement.warehouse import Warehouse
from tests.warehouse.test_warehouse_bulk_io import check_same

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.mark.distributed
def test_bulk_write_and_chunked_read_match_sqlalchemy_on_postgresql(monkeypatch):
    from lantian.distributed import check_postgres

    problem = check_postgres(PG_SERVER)
    if problem:
        pytest.fail(f"PostgreSQL is needed for this test: {problem}")
    name = f"lantian_bulk_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        wh = Warehouse(f"{PG_SERVER}/{name}")
        check_same(wh, monkeypatch)
        wh.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
