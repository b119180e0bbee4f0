"""Warehouse migrations: the revisions build exactly ``warehouse_schema.METADATA``.

The SQLite tests need no service and run in the default ``make test``: they are the guard that
fails as soon as someone changes ``enforcement/warehouse_schema.py`` without adding a revision
(``python -m lantian.migrate revision -m "..."`` drafts it). The PostgreSQL ones are marked
``distributed`` and create and drop their own database.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from dist_support import PG_URL

from enforcement.migrations import (
    MIGRATIONS_DIR,
    WarehouseSchemaError,
    alembic_config,
    check,
    current,
    describe,
    head,
    upgrade,
)
from enforcement.warehouse_schema import METADATA
from lantian.distributed import check_postgres, drop_databases, ensure_databases
from lantian.migrate import draft_revision, next_revision_id


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    problem = check_postgres(PG_URL)
    if problem:
        pytest.skip(problem)
    name = f"lantian_mig_{uuid.uuid4().hex[:12]}"
    ensure_databases(PG_URL, [name])
    try:
        yield f"{PG_URL}/{name}"
    finally:
        drop_databases(PG_URL, [name])


def _diff_lines(url: str) -> list[str]:
    return [describe(d) for d in check(url)]


# --- the guard: migrations and METADATA must not diverge ----------------------------------------


def test_upgrade_on_empty_sqlite_builds_exactly_the_schema(sqlite_url: str) -> None:
    assert upgrade(sqlite_url) == head()
    assert _diff_lines(sqlite_url) == [], (
        "enforcement/warehouse_schema.py and enforcement/migrations/versions disagree: add a "
        'revision (python -m lantian.migrate revision -m "what changed") and review it'
    )
    assert _tables(sqlite_url) == set(METADATA.tables) | {"alembic_version"}


@pytest.mark.distributed
def test_upgrade_on_empty_postgres_builds_exactly_the_schema(pg_url: str) -> None:
    assert upgrade(pg_url) == head()
    assert _diff_lines(pg_url) == []
    assert _tables(pg_url) == set(METADATA.tables) | {"alembic_version"}


@pytest.mark.distributed
def test_concurrent_upgrades_on_postgres_migrate_once(pg_url: str) -> None:
    """Every task of a distributed run may open the warehouse at once: the advisory lock lets
    one of them migrate and the others find the database at head."""
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        try:
            outcomes.append(upgrade(pg_url))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes == [head()] * 4
    assert _diff_lines(pg_url) == []


# --- behaviour of upgrade ----------------------------------------------------------------------------


def test_upgrade_accepts_the_callers_engine() -> None:
    """Warehouse passes its own engine: an in-memory SQLite exists only inside that engine."""
    engine = sa.create_engine("sqlite://")
    assert upgrade(engine) == head()
    assert check(engine) == []
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == set(METADATA.tables) | {"alembic_version"}
    engine.dispose()


def test_upgrade_twice_is_a_no_op(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO partitions (day, stream) VALUES ('2017-12-01', 'cems')"))
    assert upgrade(sqlite_url) == head()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM partitions")).scalar_one() == 1
    engine.dispose()


def test_each_revision_upgrades_and_downgrades(sqlite_url: str) -> None:
    from alembic import command

    revisions = [s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    for revision in reversed(revisions):  # oldest first
        assert upgrade(sqlite_url, revision) == revision
    command.downgrade(alembic_config(sqlite_url), "base")
    assert current(sqlite_url) is None
    assert _tables(sqlite_url) == {"alembic_version"}
    assert upgrade(sqlite_url) == head()
    assert _diff_lines(sqlite_url) == []


def test_warehouse_made_by_create_all_is_adopted(sqlite_url: str) -> None:
    """An embedded warehouse from before migrations: same tables, no history → stamped at head."""
    engine = sa.create_engine(sqlite_url)
    METADATA.create_all(engine)
    engine.dispose()
    assert current(sqlite_url) is None
    assert upgrade(sqlite_url) == head()
    assert _diff_lines(sqlite_url) == []


def test_unversioned_warehouse_that_differs_is_refused(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE measurements (reading_id TEXT, legacy_value REAL)"))
    engine.dispose()
    with pytest.raises(WarehouseSchemaError) as raised:
        upgrade(sqlite_url)
    message = str(raised.value)
    assert "remove_column measurements.legacy_value" in message
    assert "add_column measurements.day" in message
    assert "add_table cems_hourly" in message
    assert current(sqlite_url) is None  # nothing stamped, nothing half-done
    assert _tables(sqlite_url) == {"measurements"}


# --- the revision workflow ----------------------------------------------------------------------------


def test_revisions_form_one_numbered_chain() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    chain = [s for s in script.walk_revisions()][::-1]  # oldest first
    assert [s.revision for s in chain] == [f"{i:04d}" for i in range(1, len(chain) + 1)]
    assert [s.down_revision for s in chain] == [None, *(s.revision for s in chain[:-1])]
    for s in chain:
        assert Path(s.path).name.startswith(f"{s.revision}_")
        assert Path(s.path).parent == MIGRATIONS_DIR / "versions"


def test_next_revision_id_counts_up() -> None:
    assert next_revision_id([]) == "0001"
    assert next_revision_id(["0001", "0002"]) == "0003"
    assert next_revision_id(["0009", "0010", "ab12cd34ef56"]) == "0011"


def test_new_table_without_revision_is_caught_and_drafted(sqlite_url: str, tmp_path: Path) -> None:
    """What happens when someone adds a table: the guard reports it, the draft creates it."""
    upgrade(sqlite_url)
    probe = sa.Table(
        f"probe_{uuid.uuid4().hex[:8]}",
        METADATA,
        sa.Column("day", sa.Text, nullable=False, index=True),
        sa.Column("value", sa.Float),
    )
    try:
        assert set(_diff_lines(sqlite_url)) == {
            f"add_table {probe.name}",
            f"add_index ix_{probe.name}_day on {probe.name}",
        }
        drafts = tmp_path / "drafts"
        drafts.mkdir()
        path = draft_revision("add probe", version_path=drafts)
        text = path.read_text()
        assert path.parent == drafts and path.name.startswith(next_revision_id([head()]))
        assert re.search(rf"down_revision = ['\"]{head()}['\"]", text)
        assert f'"{probe.name}"' in text and "ix_" in text
    finally:
        METADATA.remove(probe)
    assert _diff_lines(sqlite_url) == []
