"""The durable queue: batches, idempotency, lanes, dead letters, overflow policy, full disks."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from agent_testkit import CEMS_MN, CEMS_MN2, PYTHON, REPO, make_reading, minute_times

from agents.queue import DurableQueue, QueueFull, QueueStorageError
from schemas.reading import batch_id, check_batch_dict


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def reading_size(reading) -> int:
    return len(json.dumps(reading.to_dict(), ensure_ascii=False, separators=(",", ":")).encode())


@pytest.fixture
def queue(tmp_path):
    q = DurableQueue(tmp_path / "q.sqlite", 10 * 1024 * 1024, ballast_bytes=0)
    yield q
    q.close()


def test_put_is_committed_and_idempotent_on_reading_id(queue, tmp_path):
    readings = [make_reading(data_time=t) for t in minute_times("20171101080000", 5)]
    assert queue.put(readings) == 5
    # The same readings read again (a logger resending unanswered records) add nothing.
    assert queue.put(readings[:3]) == 0
    # Duplicates inside one put count once.
    assert queue.put([readings[0], make_reading(data_time="20171101081000")] * 2) == 1
    assert queue.depth() == 6
    # Committed: another connection (another process would be the same) sees all of it.
    other = sqlite3.connect(tmp_path / "q.sqlite")
    assert other.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 6
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    assert queue.oldest_unsent() == readings[0].received_at


def test_batches_are_stable_until_acknowledged(queue):
    times = minute_times("20171101080000", 7)
    readings = [make_reading(data_time=t) for t in times]
    queue.put(readings)
    first = queue.next_batch(max_readings=3)
    assert [r["data_time"] for r in first.readings] == times[:3]  # oldest first
    assert first.batch_id == batch_id([r.id for r in readings[:3]])
    check_batch_dict(json.loads(first.to_json()))  # what ingest will check
    # Not acknowledged: the same batch again, even when asked for a bigger one.
    again = queue.next_batch(max_readings=500)
    assert again.batch_id == first.batch_id
    assert [r["id"] for r in again.readings] == [r["id"] for r in first.readings]
    assert queue.ack(first.batch_id) is True
    assert queue.ack(first.batch_id) is False  # acknowledging twice is harmless
    assert queue.depth() == 4
    second = queue.next_batch(max_readings=500)
    assert [r["data_time"] for r in second.readings] == times[3:]
    queue.ack(second.batch_id)
    assert queue.next_batch() is None
    assert queue.depth() == 0 and queue.bytes_used() == 0


def test_batch_id_survives_reopen(tmp_path):
    path = tmp_path / "q.sqlite"
    q = DurableQueue(path, 10**7, ballast_bytes=0)
    q.put([make_reading(data_time=t) for t in minute_times("20171101080000", 4)])
    formed = q.next_batch(max_readings=2)
    q.put([make_reading(data_time="20171101090000")])
    q.close()
    q = DurableQueue(path, 10**7, ballast_bytes=0)
    assert q.next_batch(max_readings=10).batch_id == formed.batch_id
    assert [b.batch_id for b in q.pending_batches()] == [formed.batch_id]
    q.close()


def test_a_batch_holds_one_device_and_respects_byte_limit(queue):
    a = [make_reading(CEMS_MN, data_time=t) for t in minute_times("20171101080000", 3)]
    b = [make_reading(CEMS_MN2, data_time=t) for t in minute_times("20171101080000", 3)]
    queue.put([a[0], b[0], a[1], b[1], a[2], b[2]])
    first = queue.next_batch()
    assert {r["device_id"] for r in first.readings} == {CEMS_MN}
    assert len(first.readings) == 3
    # Asking for device B gives B's batch even though A's is pending.
    only_b = queue.next_batch(CEMS_MN2, max_batch_bytes=reading_size(b[0]) + 1)
    assert [r["id"] for r in only_b.readings] == [b[0].id]  # byte cap: one reading fits
    assert queue.devices() == [CEMS_MN, CEMS_MN2]
    assert queue.depth(CEMS_MN) == 3 and queue.depth(CEMS_MN2) == 3


def test_live_and_backlog_lanes(tmp_path):
    clock = FakeClock()
    q = DurableQueue(tmp_path / "q.sqlite", 10**7, live_window_s=300, clock=clock, ballast_bytes=0)
    old = [make_reading(data_time=t) for t in minute_times("20171101000000", 3)]
    q.put(old)
    clock.t += 3600  # an hour of outage later, live data arrives
    new = [make_reading(data_time=t) for t in minute_times("20171101010000", 2)]
    q.put(new)
    assert q.has_waiting("live") and q.has_waiting("backlog")
    live = q.next_batch(lane="live")
    assert [r["id"] for r in live.readings] == [r.id for r in new]
    backlog = q.next_batch(lane="backlog")
    assert [r["id"] for r in backlog.readings] == [r.id for r in old]
    # Each lane's pending batch comes back in its own lane.
    assert q.next_batch(lane="live").batch_id == live.batch_id
    assert q.next_batch(lane="backlog").batch_id == backlog.batch_id
    assert {b.lane for b in q.pending_batches()} == {"live", "backlog"}
    q.close()


def test_dead_letter_is_kept_aside_and_requeueable(queue):
    readings = [make_reading(data_time=t) for t in minute_times("20171101080000", 3)]
    queue.put(readings)
    batch = queue.next_batch()
    assert queue.dead_letter(batch.batch_id, "422 contract: readings[0] bad") is True
    assert queue.depth() == 0
    dead = queue.dead_letters()
    assert [(d.batch_id, d.n, d.reason) for d in dead] == [
        (batch.batch_id, 3, "422 contract: readings[0] bad")
    ]
    assert queue.bytes_used() > 0  # dead letters count against the cap
    assert any("dead-letter" in a for a in queue.alarms())
    assert queue.requeue_dead(batch.batch_id) == 3
    assert queue.dead_letters() == []
    assert queue.next_batch().batch_id == batch.batch_id  # same readings, same id
    with pytest.raises(KeyError):
        queue.requeue_dead("nope")


def test_overflow_drops_oldest_realtime_first_never_minute_data(tmp_path, caplog):
    sample = make_reading(cn="2011", data_time="20171101080000")
    size = reading_size(sample)  # all readings below have the same size
    q = DurableQueue(tmp_path / "q.sqlite", size * 6, ballast_bytes=0)
    realtime = [make_reading(cn="2011", data_time=t) for t in minute_times("20171101080000", 3)]
    minute = [make_reading(cn="2051", data_time=t) for t in minute_times("20171101080000", 3)]
    q.put([realtime[0], minute[0], realtime[1], minute[1], realtime[2], minute[2]])
    assert q.bytes_used() == size * 6  # exactly at the cap
    with caplog.at_level(logging.ERROR, logger="lantian.agent.queue"):
        assert q.put([make_reading(cn="2051", data_time="20171101090000")]) == 1
    assert q.dropped_realtime() == 1
    assert "dropped 1 oldest real-time readings" in caplog.text
    with sqlite3.connect(tmp_path / "q.sqlite") as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM readings")}
    assert realtime[0].id not in ids  # the oldest real-time reading went
    assert {realtime[1].id, realtime[2].id} <= ids
    assert {m.id for m in minute} <= ids  # minute data untouched
    # Real-time readings already in a formed batch are not dropped (the batch must stay stable).
    q.next_batch(max_readings=2)  # holds minute[0], realtime[1]
    q.put([make_reading(cn="2051", data_time="20171101090100")])  # drops realtime[2]
    with pytest.raises(QueueFull, match="no real-time readings to drop"):
        q.put([make_reading(cn="2051", data_time="20171101090200")])
    with pytest.raises(QueueFull):
        q.put([make_reading(cn="2011", data_time="20171101090300")])
    assert q.depth() == 6  # nothing lost by the refusals
    assert q.dropped_realtime() == 2
    q.close()


def test_alarm_before_the_cap(tmp_path, caplog):
    size = reading_size(make_reading())
    q = DurableQueue(tmp_path / "q.sqlite", size * 10, alarm_ratio=0.8, ballast_bytes=0)
    q.put([make_reading(data_time=t) for t in minute_times("20171101080000", 7)])
    assert q.alarms() == []
    with caplog.at_level(logging.WARNING, logger="lantian.agent.queue"):
        q.put([make_reading(data_time="20171101090000")])
    assert q.fill_ratio() == pytest.approx(0.8)
    assert any("80% full" in a for a in q.alarms())
    assert "80% full" in caplog.text
    q.close()


def test_sqlite_full_refuses_new_data_and_keeps_the_rest(tmp_path):
    """SQLITE_FULL for real: max_page_count caps the file the way a full partition would."""
    q = DurableQueue(tmp_path / "q.sqlite", 10**9, ballast_bytes=0)
    q._conn.execute("PRAGMA max_page_count = 40")  # 40 x 4 KiB pages
    stored: list[str] = []
    with pytest.raises(QueueStorageError, match="intact"):
        for data_time in minute_times("20171101000000", 10_000):
            reading = make_reading(data_time=data_time)
            q.put([reading])
            stored.append(reading.id)
    assert len(stored) > 20
    assert q.depth() == len(stored)
    assert any("cannot store" in a for a in q.alarms())
    # Draining still works at the limit, and once acknowledged the space is reused.
    batch = q.next_batch(max_readings=10)
    assert q.ack(batch.batch_id)
    q.put([make_reading(data_time="20181101000000")])
    assert q.last_storage_error is None
    q.close()
    q = DurableQueue(tmp_path / "q.sqlite", 10**9, ballast_bytes=0)
    with sqlite3.connect(tmp_path / "q.sqlite") as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM readings ORDER BY seq")]
    assert ids == stored[10:] + [make_reading(data_time="20181101000000").id]
    q.close()


_FSIZE_SCRIPT = textwrap.dedent(
    """
    import json, resource, signal, sys
    sys.path.insert(0, {tests!r})
    from agent_testkit import make_reading, minute_times
    from agents.queue import DurableQueue, QueueStorageError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    q = DurableQueue({path!r}, 10**9, ballast_bytes=0)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
    stored = []
    for t in minute_times("20171101000000", 5000):
        r = make_reading(data_time=t)
        try:
            q.put([r])
        except QueueStorageError as exc:
            print(json.dumps({{"stored": stored, "error": str(exc)}}))
            break
        stored.append(r.id)
    """
)


def test_file_size_limit_refuses_and_keeps_what_was_stored(tmp_path):
    """The OS refusing to grow the file (RLIMIT_FSIZE → EFBIG), no SQLite pragma involved."""
    path = tmp_path / "q.sqlite"
    script = _FSIZE_SCRIPT.format(tests=str(REPO / "tests" / "agent"), path=str(path))
    done = subprocess.run(
        [PYTHON, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "intact" in report["error"], report["error"]
    assert len(report["stored"]) > 20
    with sqlite3.connect(path) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM readings ORDER BY seq")]
    assert ids == report["stored"]


_ENOSPC_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from agent_testkit import make_reading, minute_times
    from agents.queue import DurableQueue, QueueStorageError
    q = DurableQueue({path!r}, 10**9, ballast_bytes=256 * 1024)
    assert q.ballast_path.exists()
    stored, error = [], None
    for t in minute_times("20171101000000", 100000):
        r = make_reading(data_time=t)
        try:
            q.put([r])
        except QueueStorageError as exc:
            error = str(exc)
            break
        stored.append(r.id)
    # Disk full: new data refused, yet uploads must still be able to drain the queue.
    acked = 0
    for _ in range(3):
        b = q.next_batch(max_readings=50)
        assert q.ack(b.batch_id)
        acked += len(b.readings)
    ballast_gone = not q.ballast_path.exists()
    q.put([make_reading(data_time="20190101000000")])  # acknowledged space is reused
    q.close()
    print(json.dumps({{"stored": stored, "error": error, "acked": acked,
                       "ballast_gone": ballast_gone}}))
    """
)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_real_enospc_on_a_tiny_tmpfs(tmp_path):
    """A real full file system: a 4 MiB tmpfs mounted in a private mount namespace (so it
    vanishes with the process). Skipped where the test may not mount."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    path = mnt / "q.sqlite"
    script = _ENOSPC_SCRIPT.format(tests=str(REPO / "tests" / "agent"), path=str(path))
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, timeout=10
    )
    if probe.returncode != 0:
        pytest.skip("unshare -m not permitted here")
    shell = f'mount -t tmpfs -o size=4m tmpfs {mnt} && exec {PYTHON} -c "$SCRIPT"'
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"SCRIPT": script, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    if "mount" in done.stderr and done.returncode != 0 and not done.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["error"] and "intact" in report["error"]
    assert "full" in report["error"] or "No space" in report["error"]
    assert len(report["stored"]) > 100
    assert report["acked"] == 150
    assert isinstance(report["ballast_gone"], bool)


def test_queue_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        DurableQueue(tmp_path / "a.sqlite", 0)
    q = DurableQueue(tmp_path / "b.sqlite", 100, ballast_bytes=0)
    with pytest.raises(ValueError):
        q.next_batch(lane="fast")
    with pytest.raises(ValueError):
        q.next_batch(max_readings=0)
    assert q.put([]) == 0
    q.close()


def test_status_reader_sees_a_consistent_summary(queue):
    queue.put([make_reading(data_time=t) for t in minute_times("20171101080000", 3)])
    summary = queue.summary()
    assert summary["queue_depth"] == 3
    assert summary["dead_letters"] == 0
    assert summary["queue_bytes"] == queue.bytes_used() > 0
    assert summary["queue_file_bytes"] >= summary["queue_bytes"]
    assert sys.getsizeof(summary) > 0


def test_linger_waits_for_a_full_batch_then_sends_what_there_is(tmp_path):
    from agents.queue import DurableQueue
    from schemas.reading import Reading

    now = [1000.0]
    queue = DurableQueue(tmp_path / "q.sqlite", 10_000_000, clock=lambda: now[0])

    def reading(i: int) -> Reading:
        return Reading(
            device_id="D1", stream="cems", cn="2051", data_time=f"201712010{i:03d}00"[:14],
            device_time="2017-12-01T00:00:00+08:00", received_at="2017-12-01T00:00:01+08:00",
            values={"a21026": {"Avg": str(i)}}, raw=f"frame {i}",
        )  # fmt: skip

    queue.put([reading(i) for i in range(3)])
    assert queue.next_batch("D1", 5, lane="live", linger_s=2.0) is None
    now[0] += 2.5
    batch = queue.next_batch("D1", 5, lane="live", linger_s=2.0)
    assert batch is not None and len(batch.readings) == 3
    queue.ack(batch.batch_id)
    queue.put([reading(i) for i in range(10, 15)])
    full = queue.next_batch("D1", 5, lane="live", linger_s=2.0)
    assert full is not None and len(full.readings) == 5
