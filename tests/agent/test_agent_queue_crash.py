"""Crash safety: a writer SIGKILLed at random instants loses nothing it was told was stored."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time

from agent_testkit import PYTHON, REPO

WORKER = REPO / "tests" / "agent" / "queue_crash_worker.py"


def _run_and_kill(path, start: int, seconds: float) -> list[str]:
    env = dict(os.environ, PYTHONPATH=f"{REPO}:{REPO / 'tests' / 'agent'}")
    proc = subprocess.Popen(
        [PYTHON, str(WORKER), str(path), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    # Start the clock once the worker is up (its first line), so a slow start-up on a busy
    # machine does not make the kill land before any work.
    first = proc.stdout.readline()
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    text = (first + out).decode()
    # Only complete lines count: a line cut by the kill was never "told".
    return text.split("\n")[:-1] if not text.endswith("\n") else text.splitlines()


def test_sigkill_at_random_moments_loses_nothing_put(tmp_path):
    path = tmp_path / "queue.sqlite"
    rng = random.Random(20171101)
    put: list[str] = []
    acked_batches: set[str] = set()
    acked_ids: set[str] = set()
    pending: dict[str, list[str]] = {}  # batch id -> members, in formation order
    cycles_with_resume = 0
    in_flight_resolved = 0
    # At least 8 kills; more (up to 20) while no kill has yet landed between forming and
    # acknowledging a batch, since a loaded machine shifts where the random kills fall.
    for cycle in range(20):
        if cycle >= 8 and cycles_with_resume:
            break
        lines = _run_and_kill(path, start=cycle * 100_000, seconds=rng.uniform(0.1, 0.9))
        assert lines and lines[0].startswith("R "), lines[:3]
        resumed = lines[0].split()[1]
        in_flight = None
        if pending:
            # The first batch after the crash is the oldest one formed before it, unchanged.
            assert resumed == next(iter(pending))
            cycles_with_resume += 1
        for line in lines[1:]:
            kind, rest = line.split(" ", 1)
            if kind == "P":
                put.append(rest)
            elif kind == "B":
                bid, *members = rest.split()
                if bid in pending:
                    assert pending[bid] == members  # a resent batch has the same members
                pending.setdefault(bid, members)
            elif kind == "a":
                in_flight = rest
            elif kind == "A":
                in_flight = None
                acked_batches.add(rest)
                acked_ids.update(pending.pop(rest))
        conn = sqlite3.connect(path)
        present_ids = {r[0] for r in conn.execute("SELECT id FROM readings")}
        if in_flight is not None:
            # Killed inside ack(): the batch is either wholly there or wholly gone.
            members = set(pending[in_flight])
            assert members <= present_ids or not members & present_ids
            if not members & present_ids:
                acked_ids.update(pending.pop(in_flight))
                in_flight_resolved += 1
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT id, batch_id FROM readings").fetchall()
        present = [r[0] for r in rows]
        assert len(present) == len(set(present))  # exactly once
        must_be_there = set(put) - acked_ids
        missing = must_be_there - set(present)
        assert not missing, f"cycle {cycle}: {len(missing)} readings reported stored are gone"
        assert not acked_ids & set(present)  # acknowledged means deleted
        membership: dict[str, list[str]] = {}
        for rid, bid in conn.execute("SELECT id, batch_id FROM readings ORDER BY seq"):
            if bid:
                membership.setdefault(bid, []).append(rid)
        for bid, members in pending.items():
            assert membership.get(bid) == members, f"batch {bid} changed across the crash"
        conn.close()
    assert len(put) > 50  # the kills landed in the middle of real work
    assert cycles_with_resume >= 1
