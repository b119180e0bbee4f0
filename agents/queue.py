"""The box's durable store-and-forward queue (SQLite, WAL, ``synchronous=FULL``).

A reading read from a port is committed here (fsynced) before anything else happens: before the
logger gets its 9014 answer and before any upload. A batch is formed once, its membership persisted,
so a resend after a crash or a power cut carries the same batch id and the ingest service can
recognise it as a duplicate. A batch leaves the queue only when the server said it is durable
(``ack``) or refused it for good (``dead_letter``, kept aside for a technician).

Overflow policy (the queue's payload is bounded by ``max_bytes``):

1. From ``alarm_ratio`` of the cap (default 80 %) an alarm is raised (log line + heartbeat field),
   so the link can be fixed before anything is lost.
2. At the cap, the oldest *real-time* readings (CN 2011) that are not yet in a formed batch are
   dropped, oldest first, to make room. Real-time values are a live view; the minute, hourly and
   daily records (2051/2061/2031) are what compliance is judged on, and they are never dropped.
3. If dropping real-time readings cannot make room, new data is refused (:class:`QueueFull`).
   The runner then does not answer the logger (no 9014), so the logger keeps the record in its
   own memory and sends it again; the platform can also fetch it later with a history request.

A full disk (SQLite "database or disk is full", ``ENOSPC``, a write refused by the file-size limit)
raises :class:`QueueStorageError`: the failed transaction is rolled back, everything committed
before stays intact, and the same refusal path as (3) applies. So that a full disk cannot also stop
the uploads that would drain the queue, the queue keeps a small reserve file (``<queue>.ballast``);
when forming, acknowledging or dead-lettering a batch hits a full disk, the reserve is deleted and
the operation retried once. The reserve is recreated once space is back.

``max_bytes`` bounds the readings' JSON payload (plus dead letters); the database file is larger
by SQLite's page and index overhead (typically 1.2-1.6x), see ``file_bytes()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.reading import Batch, Reading
from schemas.reading import batch_id as compute_batch_id

log = logging.getLogger("lantian.agent.queue")

#: HJ 212 CN of real-time data: the only data the overflow policy may drop.
REALTIME_CNS: frozenset[str] = frozenset({"2011"})

LANES = ("any", "live", "backlog")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    cn TEXT NOT NULL,
    data_time TEXT NOT NULL,
    received_at TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS readings_by_batch ON readings(batch_id, seq);
CREATE INDEX IF NOT EXISTS readings_by_device ON readings(device_id, batch_id, seq);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    lane TEXT NOT NULL,
    formed_at REAL NOT NULL,
    n INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead_letters (
    batch_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    n INTEGER NOT NULL,
    reason TEXT NOT NULL,
    moved_at REAL NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (
    k INTEGER PRIMARY KEY CHECK (k = 0),
    reading_bytes INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    dead_bytes INTEGER NOT NULL,
    dead_batches INTEGER NOT NULL,
    dropped_realtime INTEGER NOT NULL
);
INSERT OR IGNORE INTO stats VALUES (0, 0, 0, 0, 0, 0);
CREATE TRIGGER IF NOT EXISTS readings_ai AFTER INSERT ON readings BEGIN
    UPDATE stats SET reading_bytes = reading_bytes + NEW.size, readings = readings + 1;
END;
CREATE TRIGGER IF NOT EXISTS readings_ad AFTER DELETE ON readings BEGIN
    UPDATE stats SET reading_bytes = reading_bytes - OLD.size, readings = readings - 1;
END;
CREATE TRIGGER IF NOT EXISTS dead_ai AFTER INSERT ON dead_letters BEGIN
    UPDATE stats SET dead_bytes = dead_bytes + NEW.size, dead_batches = dead_batches + 1;
END;
CREATE TRIGGER IF NOT EXISTS dead_ad AFTER DELETE ON dead_letters BEGIN
    UPDATE stats SET dead_bytes = dead_bytes - OLD.size, dead_batches = dead_batches - 1;
END;
"""


class QueueError(RuntimeError):
    """Base class for queue refusals; the message says what to do."""


class QueueFull(QueueError):
    """The cap is reached and only data the policy never drops is queued."""


class QueueStorageError(QueueError):
    """The disk refused a write (full, file-size limit, I/O error); queued data is intact."""


@dataclass(frozen=True)
class DeadLetter:
    batch_id: str
    device_id: str
    stream: str
    n: int
    reason: str
    moved_at: str


@dataclass(frozen=True)
class PendingBatch:
    batch_id: str
    device_id: str
    n: int
    lane: str
    attempts: int
    last_error: str | None


def _is_storage_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and (
        "full" in text or "disk i/o" in text or "readonly" in text or "read-only" in text
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class DurableQueue:
    """Readings on disk until the server has them. Thread-safe; one writer process.

    Other processes (``lantian-agent status``) may open the same file to read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = 512 * 1024 * 1024,
        *,
        alarm_ratio: float = 0.8,
        live_window_s: float = 300.0,
        agent_version: str = "",
        realtime_cns: Iterable[str] = REALTIME_CNS,
        ballast_bytes: int = 4 * 1024 * 1024,
        clock=time.time,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if not 0 < alarm_ratio <= 1:
            raise ValueError("alarm_ratio must be in (0, 1]")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.alarm_ratio = alarm_ratio
        self.live_window_s = live_window_s
        self.agent_version = agent_version
        self.realtime_cns = frozenset(realtime_cns)
        self._clock = clock
        self._lock = threading.RLock()
        self._alarm_logged = False
        self.last_storage_error: str | None = None
        self._last_failure: BaseException | None = None
        self.ballast_path = self.path.with_name(self.path.name + ".ballast")
        self.ballast_bytes = int(ballast_bytes)
        self._ballast_checked = -float("inf")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise QueueStorageError(f"{self.path}: cannot switch SQLite to WAL mode (got {mode})")
        self._conn.execute("PRAGMA synchronous=FULL")
        # Keep the WAL small: on a small SD card megabytes of log matter when the disk fills.
        self._conn.execute("PRAGMA wal_autocheckpoint=256")
        self._conn.execute("PRAGMA journal_size_limit=1048576")
        self._conn.executescript(_SCHEMA)
        self._restore_ballast()

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> DurableQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, what: str, fn, *, drain: bool = False):
        """Run ``fn(conn)`` in one IMMEDIATE transaction; storage failures become clear errors.

        On a full disk the write-ahead log is checkpointed and truncated (it can hold megabytes
        the database file no longer needs) and the write tried once more. ``drain``: the
        operation frees space or leads to freeing it (forming, acknowledging, dead-lettering a
        batch), so it may also give up the reserve file rather than block the uploads.
        """
        try:
            return self._finish(self._write_once(fn))
        except QueueStorageError:
            pass
        retry = self._compact_wal()
        if drain and self._release_ballast():
            self._compact_wal()
            retry = True
        if retry:
            try:
                return self._finish(self._write_once(fn))
            except QueueStorageError as exc:
                failure = exc.__cause__
        else:
            failure = self._last_failure
        message = (
            f"queue {self.path}: cannot {what}: {failure}. Everything queued before is intact; "
            f"free disk space on {self.path.parent} (free now: {_free_bytes(self.path.parent)} "
            "bytes)"
        )
        self.last_storage_error = message
        log.error(message)
        raise QueueStorageError(message) from failure

    def _finish(self, result):
        self.last_storage_error = None
        return result

    def _write_once(self, fn):
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    # SQLite may already have rolled back by itself after SQLITE_FULL.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if _is_storage_failure(exc):
                    self._last_failure = exc
                    raise QueueStorageError(str(exc)) from exc
                raise
            return result

    def _compact_wal(self) -> bool:
        """Checkpoint the WAL into the database and truncate it; True if that completed."""
        with self._lock:
            try:
                busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error:
                return False
        return busy == 0

    def _release_ballast(self) -> bool:
        try:
            size = self.ballast_path.stat().st_size
            self.ballast_path.unlink()
        except OSError:
            return False
        log.warning(
            "disk full: released %d bytes of reserve (%s) so that uploads can go on draining the "
            "queue; free disk space",
            size,
            self.ballast_path,
        )
        return True

    def _restore_ballast(self) -> None:
        """Recreate the reserve file when it is missing and the disk has room (at most once a
        minute: it is a write of a few MiB)."""
        if self.ballast_bytes <= 0 or self.ballast_path.exists():
            return
        now = time.monotonic()
        if now - self._ballast_checked < 60:
            return
        self._ballast_checked = now
        if _free_bytes(self.path.parent) < 4 * self.ballast_bytes:
            return
        tmp = self.ballast_path.with_name(self.ballast_path.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                chunk = b"\0" * 65536
                left = self.ballast_bytes
                while left > 0:
                    left -= fh.write(chunk[: min(left, len(chunk))])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.ballast_path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.warning("cannot create the disk reserve %s: %s", self.ballast_path, exc)

    def _stats(self) -> tuple[int, int, int, int, int]:
        with self._lock:
            row = self._conn.execute(
                "SELECT reading_bytes, readings, dead_bytes, dead_batches, dropped_realtime "
                "FROM stats WHERE k = 0"
            ).fetchone()
        return tuple(row)  # type: ignore[return-value]

    # ------------------------------------------------------------------ put

    def put(self, readings: list[Reading]) -> int:
        """Commit ``readings`` durably; return how many were new (ids already queued are ignored).

        Raises :class:`QueueFull` or :class:`QueueStorageError`; then nothing of ``readings`` was
        stored and everything stored before is intact.
        """
        if not readings:
            return 0
        now = self._clock()
        rows = []
        for reading in readings:
            body = json.dumps(reading.to_dict(), ensure_ascii=False, separators=(",", ":"))
            rows.append(
                (
                    reading.id,
                    reading.device_id,
                    reading.stream,
                    reading.cn,
                    reading.data_time,
                    reading.received_at,
                    now,
                    len(body.encode("utf-8")),
                    body,
                )
            )

        def insert(conn: sqlite3.Connection) -> int:
            fresh, seen = [], set()
            for row in rows:
                if row[0] in seen:
                    continue
                seen.add(row[0])
                if not conn.execute("SELECT 1 FROM readings WHERE id = ?", (row[0],)).fetchone():
                    fresh.append(row)
            if not fresh:
                return 0
            incoming = sum(r[7] for r in fresh)
            self._make_room(conn, incoming)
            conn.executemany(
                "INSERT OR IGNORE INTO readings (id, device_id, stream, cn, data_time, "
                "received_at, enqueued_at, size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                fresh,
            )
            return len(fresh)

        added = self._write(f"store {len(rows)} readings", insert)
        self._check_alarm()
        self._restore_ballast()
        return added

    def _make_room(self, conn: sqlite3.Connection, incoming: int) -> None:
        """Apply the overflow policy inside the caller's transaction (see the module docstring)."""
        used = sum(conn.execute("SELECT reading_bytes, dead_bytes FROM stats").fetchone())
        excess = used + incoming - self.max_bytes
        if excess <= 0:
            return
        placeholders = ",".join("?" * len(self.realtime_cns)) or "''"
        victims = conn.execute(
            f"SELECT seq, size, device_id, data_time FROM readings WHERE batch_id IS NULL "
            f"AND cn IN ({placeholders}) ORDER BY seq",
            tuple(self.realtime_cns),
        )
        chosen: list[tuple[int, int, str, str]] = []
        freed = 0
        for row in victims:
            if freed >= excess:
                break
            chosen.append(row)
            freed += row[1]
        if freed < excess:
            raise QueueFull(
                f"queue {self.path} is full ({used} of {self.max_bytes} bytes) and holds no "
                f"real-time readings to drop; refusing {incoming} bytes of new data. The logger "
                "keeps unanswered records; restore the uplink or raise queue_max_bytes"
            )
        conn.executemany("DELETE FROM readings WHERE seq = ?", [(r[0],) for r in chosen])
        conn.execute("UPDATE stats SET dropped_realtime = dropped_realtime + ?", (len(chosen),))
        devices = sorted({r[2] for r in chosen})
        log.error(
            "queue full (%d of %d bytes): dropped %d oldest real-time readings (data times %s..%s, "
            "devices %s) to keep minute/hourly data; restore the uplink",
            used,
            self.max_bytes,
            len(chosen),
            chosen[0][3],
            chosen[-1][3],
            ",".join(devices),
        )

    # ------------------------------------------------------------------ batches

    def next_batch(
        self,
        device_id: str | None = None,
        max_readings: int = 500,
        *,
        lane: str = "any",
        max_batch_bytes: int = 4 * 1024 * 1024,
        linger_s: float = 0.0,
    ) -> Batch | None:
        """The next batch to send, or None when nothing waits.

        A batch formed earlier and not yet acknowledged comes first, unchanged (same members,
        same id). Otherwise a new batch is formed from the oldest unbatched readings of one
        device and stream and its membership committed before it is returned. ``lane`` limits
        new and pending batches to ``live`` readings (queued within ``live_window_s``) or
        ``backlog`` (older); ``any`` takes both. With ``linger_s``, a new batch that would not be
        full waits until its oldest member has been queued that long: fewer, fuller uploads (each
        costs the server an fsync) for a few seconds of latency.
        """
        if lane not in LANES:
            raise ValueError(f"lane must be one of {LANES}")
        if max_readings < 1:
            raise ValueError("max_readings must be at least 1")
        cutoff = self._clock() - self.live_window_s

        def form(conn: sqlite3.Connection) -> str | None:
            pending = self._pending_batch(conn, device_id, lane)
            if pending:
                return pending
            where, args = ["batch_id IS NULL"], []
            if device_id is not None:
                where.append("device_id = ?")
                args.append(device_id)
            if lane == "live":
                where.append("enqueued_at >= ?")
                args.append(cutoff)
            elif lane == "backlog":
                where.append("enqueued_at < ?")
                args.append(cutoff)
            clause = " AND ".join(where)
            first = conn.execute(
                f"SELECT device_id, stream, enqueued_at FROM readings WHERE {clause} "
                "ORDER BY seq LIMIT 1",
                args,
            ).fetchone()
            if first is None:
                return None
            dev, stream, first_enqueued = first
            if linger_s > 0 and first_enqueued > self._clock() - linger_s:
                available = conn.execute(
                    f"SELECT COUNT(*) FROM (SELECT 1 FROM readings WHERE {clause} AND device_id = ? "
                    "AND stream = ? LIMIT ?)",
                    [*args, dev, stream, max_readings],
                ).fetchone()[0]
                if available < max_readings:
                    return None
            # The lane a batch belongs to is fixed when it is formed, by its oldest member.
            formed_lane = "live" if first_enqueued >= cutoff else "backlog"
            members: list[tuple[int, str]] = []
            total = 0
            for seq, rid, size in conn.execute(
                f"SELECT seq, id, size FROM readings WHERE {clause} AND device_id = ? "
                f"AND stream = ? ORDER BY seq LIMIT ?",
                [*args, dev, stream, max_readings],
            ):
                if members and total + size > max_batch_bytes:
                    break
                members.append((seq, rid))
                total += size
            bid = compute_batch_id([rid for _, rid in members])
            conn.execute(
                "INSERT INTO batches (batch_id, device_id, stream, lane, formed_at, n) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (bid, dev, stream, formed_lane, self._clock(), len(members)),
            )
            conn.executemany(
                "UPDATE readings SET batch_id = ? WHERE seq = ?", [(bid, seq) for seq, _ in members]
            )
            return bid

        bid = self._write("form a batch", form, drain=True)
        if bid is None:
            return None
        return self.batch(bid)

    def _pending_batch(
        self, conn: sqlite3.Connection, device_id: str | None, lane: str
    ) -> str | None:
        where, args = [], []
        if device_id is not None:
            where.append("device_id = ?")
            args.append(device_id)
        if lane != "any":
            where.append("lane = ?")
            args.append(lane)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        row = conn.execute(
            f"SELECT batch_id FROM batches {clause} ORDER BY formed_at, rowid LIMIT 1", args
        ).fetchone()
        return row[0] if row else None

    def batch(self, batch_id: str) -> Batch | None:
        """A formed batch, rebuilt from its persisted members (None if acked or unknown)."""
        with self._lock:
            head = self._conn.execute(
                "SELECT device_id, stream FROM batches WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if head is None:
                return None
            bodies = [
                json.loads(body)
                for (body,) in self._conn.execute(
                    "SELECT body FROM readings WHERE batch_id = ? ORDER BY seq", (batch_id,)
                )
            ]
        return Batch(
            device_id=head[0],
            stream=head[1],
            readings=bodies,
            batch_id=batch_id,
            agent_version=self.agent_version,
        )

    def ack(self, batch_id: str) -> bool:
        """The server holds the batch durably: delete it. False if it was not queued."""

        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM readings WHERE batch_id = ?", (batch_id,))
            return conn.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,)).rowcount > 0

        return self._write(f"acknowledge batch {batch_id}", delete, drain=True)

    def note_attempt(self, batch_id: str, error: str | None) -> None:
        """Record a failed (retryable) attempt so ``status`` can show why a batch waits."""

        def note(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE batches SET attempts = attempts + 1, last_error = ? WHERE batch_id = ?",
                (error, batch_id),
            )

        self._write(f"note an attempt for batch {batch_id}", note)

    def dead_letter(self, batch_id: str, reason: str) -> bool:
        """Move a batch the server refused for good aside (kept, counted, requeueable)."""
        batch = self.batch(batch_id)
        if batch is None:
            return False
        body = batch.to_json().decode("utf-8")

        def move(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT OR REPLACE INTO dead_letters (batch_id, device_id, stream, n, reason, "
                "moved_at, size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch_id,
                    batch.device_id,
                    batch.stream,
                    len(batch.readings),
                    reason,
                    self._clock(),
                    len(body.encode("utf-8")),
                    body,
                ),
            )
            conn.execute("DELETE FROM readings WHERE batch_id = ?", (batch_id,))
            conn.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            return True

        moved = self._write(f"dead-letter batch {batch_id}", move, drain=True)
        log.error(
            "dead letter: batch %s of device %s (%d readings) moved aside: %s. Inspect with "
            "`lantian-agent status`; after fixing, `lantian-agent requeue %s`",
            batch_id,
            batch.device_id,
            len(batch.readings),
            reason,
            batch_id,
        )
        return moved

    def requeue_dead(self, batch_id: str) -> int:
        """Put a dead letter's readings back in the queue; return how many were re-added."""

        def back(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT body FROM dead_letters WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if row is None:
                return -1
            now = self._clock()
            added = 0
            for data in json.loads(row[0])["readings"]:
                body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
                cur = conn.execute(
                    "INSERT OR IGNORE INTO readings (id, device_id, stream, cn, data_time, "
                    "received_at, enqueued_at, size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        data["id"],
                        data["device_id"],
                        data["stream"],
                        data["cn"],
                        data["data_time"],
                        data["received_at"],
                        now,
                        len(body.encode("utf-8")),
                        body,
                    ),
                )
                added += cur.rowcount
            conn.execute("DELETE FROM dead_letters WHERE batch_id = ?", (batch_id,))
            return added

        added = self._write(f"requeue dead letter {batch_id}", back)
        if added < 0:
            raise KeyError(f"no dead letter with batch id {batch_id}")
        return added

    # ------------------------------------------------------------------ state

    def depth(self, device_id: str | None = None) -> int:
        """Readings waiting (in formed batches or not)."""
        if device_id is None:
            return self._stats()[1]
        with self._lock:
            return self._conn.execute(
                "SELECT COUNT(*) FROM readings WHERE device_id = ?", (device_id,)
            ).fetchone()[0]

    def oldest_unsent(self, device_id: str | None = None) -> str | None:
        """The box receive time (ISO 8601) of the oldest waiting reading, or None."""
        sql = "SELECT received_at FROM readings"
        args: tuple[str, ...] = ()
        if device_id is not None:
            sql += " WHERE device_id = ?"
            args = (device_id,)
        with self._lock:
            row = self._conn.execute(sql + " ORDER BY seq LIMIT 1", args).fetchone()
        return row[0] if row else None

    def oldest_enqueued_age_s(self) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT MIN(enqueued_at) FROM readings").fetchone()
        return None if row[0] is None else max(0.0, self._clock() - row[0])

    def bytes_used(self) -> int:
        """Payload bytes held: queued readings plus dead letters (what ``max_bytes`` bounds)."""
        reading_bytes, _, dead_bytes, _, _ = self._stats()
        return reading_bytes + dead_bytes

    def file_bytes(self) -> int:
        """Bytes the database occupies on disk (main file and WAL)."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(f"{self.path}{suffix}")
        return total

    def dropped_realtime(self) -> int:
        """Real-time readings dropped by the overflow policy since the queue was created."""
        return self._stats()[4]

    def devices(self) -> list[str]:
        """Devices with waiting readings, the one with the oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT device_id FROM readings GROUP BY device_id ORDER BY MIN(seq)"
            ).fetchall()
        return [r[0] for r in rows]

    def has_waiting(self, lane: str = "any", device_id: str | None = None) -> bool:
        """Is there a pending batch or an unbatched reading in ``lane``?"""
        cutoff = self._clock() - self.live_window_s
        with self._lock:
            if self._pending_batch(self._conn, device_id, lane):
                return True
            where, args = ["batch_id IS NULL"], []
            if device_id is not None:
                where.append("device_id = ?")
                args.append(device_id)
            if lane == "live":
                where.append("enqueued_at >= ?")
                args.append(cutoff)
            elif lane == "backlog":
                where.append("enqueued_at < ?")
                args.append(cutoff)
            row = self._conn.execute(
                f"SELECT 1 FROM readings WHERE {' AND '.join(where)} LIMIT 1", args
            ).fetchone()
        return row is not None

    def pending_batches(self) -> list[PendingBatch]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT batch_id, device_id, n, lane, attempts, last_error FROM batches "
                "ORDER BY formed_at, rowid"
            ).fetchall()
        return [PendingBatch(*row) for row in rows]

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT batch_id, device_id, stream, n, reason, moved_at FROM dead_letters "
                "ORDER BY moved_at"
            ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], r[3], r[4], _iso(r[5])) for r in rows]

    def fill_ratio(self) -> float:
        return self.bytes_used() / self.max_bytes

    def alarms(self) -> list[str]:
        """Human-readable alarms for logs and the heartbeat (empty when all is well)."""
        found = []
        ratio = self.fill_ratio()
        if ratio >= self.alarm_ratio:
            found.append(
                f"queue {ratio:.0%} full ({self.bytes_used()} of {self.max_bytes} bytes); at 100 % "
                "the oldest real-time readings are dropped"
            )
        dropped = self.dropped_realtime()
        if dropped:
            found.append(f"{dropped} real-time readings dropped by the overflow policy")
        dead = self._stats()[3]
        if dead:
            found.append(f"{dead} dead-letter batches wait for a technician")
        if self.last_storage_error:
            found.append(self.last_storage_error)
        if self.ballast_bytes > 0 and not self.ballast_path.exists():
            found.append(
                f"disk reserve {self.ballast_path} missing: the disk was or is nearly full "
                f"({_free_bytes(self.path.parent)} bytes free)"
            )
        return found

    def _check_alarm(self) -> None:
        ratio = self.fill_ratio()
        if ratio >= self.alarm_ratio and not self._alarm_logged:
            self._alarm_logged = True
            log.warning(
                "queue %s is %.0f%% full (%d of %d bytes): the uplink is not keeping up",
                self.path,
                ratio * 100,
                self.bytes_used(),
                self.max_bytes,
            )
        elif ratio < self.alarm_ratio * 0.9 and self._alarm_logged:
            self._alarm_logged = False
            log.info("queue %s back to %.0f%% full", self.path, ratio * 100)

    def summary(self) -> dict[str, Any]:
        """State for ``status`` and the heartbeat."""
        reading_bytes, readings, dead_bytes, dead_batches, dropped = self._stats()
        return {
            "queue_depth": readings,
            "oldest_unsent": self.oldest_unsent(),
            "queue_bytes": reading_bytes + dead_bytes,
            "queue_max_bytes": self.max_bytes,
            "queue_file_bytes": self.file_bytes(),
            "dead_letters": dead_batches,
            "dropped_realtime": dropped,
        }


def _free_bytes(path: Path) -> int:
    try:
        stat = os.statvfs(path)
    except OSError:
        return -1
    return stat.f_bavail * stat.f_frsize
