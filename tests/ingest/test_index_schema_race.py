"""Several processes opening a new SQLite landing index at once: every one gets a working index
(SQLite has no advisory lock; the loser of the race to create a table looks again)."""

from __future__ import annotations

import multiprocessing

import sqlalchemy as sa

PROCESSES = 8


def _open(url: str, barrier, results) -> None:
    from ingest.db import ensure_schema

    barrier.wait()
    try:
        engine = ensure_schema(url)
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
        results.put(("ok", sorted(names)))
    except Exception as exc:  # reported to the test, which names it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_processes_racing_to_create_a_new_index_all_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(3):  # a race is a matter of luck: several fresh files
        url = f"sqlite:///{tmp_path / f'index-{round_}.sqlite'}"
        barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(url, barrier, results)) for _ in range(PROCESSES)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        errors = [text for kind, text in outcomes if kind == "error"]
        assert not errors, errors
        tables = {tuple(names) for _, names in outcomes}
        assert len(tables) == 1 and "landed_batches" in next(iter(tables)), tables
