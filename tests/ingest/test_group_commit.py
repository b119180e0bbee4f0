"""Group commit and the cross-process writer lock of the ingest database (ingest/db.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select, text

from ingest.db import (
    GroupCommit,
    begin_write,
    ensure_schema,
    insert_ignoring_conflicts,
    replay_cache,
)


def _count(engine) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(replay_cache)).scalar_one()


def _remember(signature: str):  # noqa: ANN202 - a piece of work
    def work(conn: Connection) -> str:
        conn.execute(
            text("INSERT INTO replay_cache (signature, device_id, expires_at) VALUES (:s, 'd', 1)"),
            {"s": signature},
        )
        return signature

    return work


@pytest.fixture
def engine(tmp_path: Path):  # noqa: ANN201
    return ensure_schema(f"sqlite:///{tmp_path / 'index.sqlite'}")


def test_waiting_callers_share_one_commit_and_each_gets_its_own_result(engine) -> None:  # noqa: ANN001
    group = GroupCommit(engine)
    first_in = threading.Event()
    release = threading.Event()

    def slow(conn: Connection) -> str:
        first_in.set()
        release.wait(10)  # the leader's transaction stays open while the others queue
        return _remember("slow")(conn)

    results: dict[str, str] = {}

    def call(name: str, work) -> None:  # noqa: ANN001
        results[name] = group.run(work)

    leader = threading.Thread(target=call, args=("slow", slow))
    leader.start()
    assert first_in.wait(10)
    followers = [
        threading.Thread(target=call, args=(f"s{i}", _remember(f"s{i}"))) for i in range(12)
    ]
    for thread in followers:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in [leader, *followers]:
        thread.join(10)
    assert results == {"slow": "slow", **{f"s{i}": f"s{i}" for i in range(12)}}
    # 13 pieces of work, 2 commits: the leader's, then one for all twelve that queued behind it.
    assert (group.commits, group.items) == (2, 13)
    assert _count(engine) == 13


def test_a_refusal_fails_only_its_caller(engine) -> None:  # noqa: ANN001
    group = GroupCommit(engine)
    insert = insert_ignoring_conflicts(engine, replay_cache, "signature").returning(
        replay_cache.c.signature
    )

    def claim(signature: str):  # noqa: ANN202
        def work(conn: Connection) -> None:
            row = conn.execute(insert, {"signature": signature, "device_id": "d", "expires_at": 1})
            if row.first() is None:
                raise PermissionError(f"{signature} already used")

        return work

    group.run(claim("a"))
    with pytest.raises(PermissionError, match="a already used"):
        group.run(claim("a"))  # the conflict is an answer, not a database error
    group.run(claim("b"))
    assert _count(engine) == 2


def test_a_database_error_rolls_back_the_whole_group(engine) -> None:  # noqa: ANN001
    group = GroupCommit(engine)
    group.run(_remember("dup"))

    def both(conn: Connection) -> None:
        _remember("fresh")(conn)
        _remember("dup")(conn)  # IntegrityError: a DBAPIError

    with pytest.raises(Exception, match="UNIQUE"):
        group.run(both)
    assert _count(engine) == 1  # "fresh" was rolled back with the group
    assert group.run(_remember("after")) == "after"  # the committer is usable again


def test_rows_are_committed_when_run_returns(engine, tmp_path: Path) -> None:  # noqa: ANN001
    GroupCommit(engine).run(_remember("durable"))
    # Another process (its own connection) sees the row at once.
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(c.execute('select count(*) from replay_cache').fetchone()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "index.sqlite")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1"


def test_writers_of_other_processes_wait_on_the_lock_file(engine, tmp_path: Path) -> None:  # noqa: ANN001
    probe = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock = str(tmp_path / "index.sqlite-writer.lock")

    def try_lock() -> int:
        return subprocess.run([sys.executable, "-c", probe, lock], check=False).returncode

    with begin_write(engine) as conn:
        conn.execute(text("SELECT 1"))
        assert try_lock() == 3  # held for the whole transaction
    assert try_lock() == 0  # and released after it


def test_a_database_error_in_a_shared_commit_fails_only_its_own_caller(engine) -> None:  # noqa: ANN001
    """The group is rolled back, then each piece is committed alone: only the culprit fails."""
    group = GroupCommit(engine)
    group.run(_remember("taken"))
    first_in, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> str:
        first_in.set()
        release.wait(10)
        return _remember("slow")(conn)

    outcomes: dict[str, object] = {}

    def call(name: str, work) -> None:  # noqa: ANN001
        try:
            outcomes[name] = group.run(work)
        except Exception as exc:  # noqa: BLE001
            outcomes[name] = type(exc).__name__

    threads = [threading.Thread(target=call, args=("slow", slow))]
    threads[0].start()
    assert first_in.wait(10)
    queued = {"a": _remember("a"), "bad": _remember("taken"), "b": _remember("b")}
    for name, work in queued.items():
        threads.append(threading.Thread(target=call, args=(name, work)))
        threads[-1].start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(10)
    assert outcomes == {"slow": "slow", "a": "a", "bad": "IntegrityError", "b": "b"}
    with engine.connect() as conn:
        stored = {row[0] for row in conn.execute(select(replay_cache.c.signature))}
    assert stored == {"taken", "slow", "a", "b"}
