"""The ingest database: device registry, landing index, replay cache and heartbeats.

One SQLAlchemy Core schema for both modes: a SQLite file in the embedded mode, a PostgreSQL URL in
the distributed mode, so that several ingest replicas share the registry, the replay cache and the
landing index. Importable without FastAPI (the pipeline reads the landing index through it).

Instants are stored as UTC ISO 8601 strings from :func:`utc_iso`. Python's ``isoformat`` of a UTC
datetime sorts lexically in time order (``…:00+00:00`` < ``…:00.500000+00:00`` because ``+`` <
``.``), so range queries compare strings and behave the same on both databases.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

metadata = MetaData()

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("stream", String(16), nullable=False),
    Column("family", String(32), nullable=False),
    Column("owner_kind", String(16), nullable=False),
    Column("owner_id", String(64), nullable=False, default=""),
    Column("state", String(16), nullable=False, default="active"),
    # The PBKDF2-derived signing key (hex); the box's secret never reaches the server.
    Column("key_hex", String(128), nullable=True),
    # The previous key stays valid until prev_key_until (a rotation grace window).
    Column("prev_key_hex", String(128), nullable=True),
    Column("prev_key_until", String(40), nullable=True),
    Column("enrol_code_sha256", String(64), nullable=True),
    Column("created_at", String(40), nullable=False),
    Column("rotated_at", String(40), nullable=True),
)

landed_batches = Table(
    "landed_batches",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(64), nullable=False, unique=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("stream", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("n_readings", Integer, nullable=False),
    Column("first_data_time", String(40), nullable=False, index=True),
    Column("last_data_time", String(40), nullable=False, index=True),
    Column("landed_at", String(40), nullable=False),
    # The request's timestamp and HMAC: with the stored gzip body (the signed bytes) they let an
    # auditor re-check that the device signed exactly this file. NULL when landed without HTTP.
    Column("signed_at", BigInteger, nullable=True),
    Column("signature", String(64), nullable=True),
)

replay_cache = Table(
    "replay_cache",
    metadata,
    Column("signature", String(64), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("box_id", String(64), nullable=True),
    Column("received_at", String(40), nullable=False),
    Column("queue_depth", Integer, nullable=True),
    Column("oldest_unsent", String(40), nullable=True),
    Column("clock_offset_s", Float, nullable=True),
    Column("disk_free_bytes", BigInteger, nullable=True),
    Column("version", String(64), nullable=True),
    Column("ports_json", Text, nullable=True),
    Column("body_json", Text, nullable=False),
)

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()
_SCHEMA_READY: set[str] = set()

#: Advisory-lock key that serialises CREATE TABLE between replicas starting together on PostgreSQL.
_PG_SCHEMA_LOCK = 0x4C414E5449414E


def utc_iso(moment: datetime) -> str:
    """An aware datetime as a UTC ISO 8601 string (the stored form of every instant)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: an instant needs its zone")
    return moment.astimezone(UTC).isoformat()


def utc_now() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI hook
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the pipeline) run beside the writer; FULL makes each commit durable
    # before the 2xx goes out; busy_timeout makes worker processes queue for the write lock.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def get_engine(url: str) -> Engine:
    """One engine per URL and process; SQLite files get WAL and a busy timeout.

    ``hide_parameters``: a database error must not print bound values into a log (a key is one).
    """
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is not None:
            return engine
        if url.startswith("sqlite"):
            # As many pooled connections as the server has worker threads (anyio's 40): a
            # connection opened past the pool is closed on return, and reopening one (WAL
            # pragmas, schema parse) costs more CPU than the query it was opened for.
            engine = create_engine(
                url,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=40,
                max_overflow=20,
                hide_parameters=True,
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # At most 10 connections per process: PostgreSQL's 100 are shared with Airflow,
            # the warehouse and the other replicas (infra/distributed/distributed.env).
            engine = create_engine(
                url, pool_size=4, max_overflow=6, pool_pre_ping=True, hide_parameters=True
            )
        _ENGINES[url] = engine
        return engine


_WRITE_LOCKS: dict[int, threading.Lock] = {}
#: Per process and database file: an open lock file (flock is per open file, so one per process).
_LOCK_FILES: dict[tuple[int, str], int] = {}


def _lock_file(path: str) -> int:
    key = (os.getpid(), path)  # a forked child must open its own
    with _ENGINES_LOCK:
        fd = _LOCK_FILES.get(key)
        if fd is None:
            fd = _LOCK_FILES[key] = os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o640)
    return fd


@contextlib.contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On a SQLite file, one writer at a time across threads and processes.

    SQLite has one write lock per database; writers that collide wait in its busy handler,
    which sleeps in growing steps (up to 100 ms) and collapses throughput under load. A Python
    lock queues the threads of a process, and an ``flock`` on ``<db>-writer.lock`` queues the
    processes (uvicorn workers, the CLI): a waiter is woken by the kernel the moment the holder
    releases. SQLite's busy timeout stays as the backstop. PostgreSQL needs no such lock.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _ENGINES_LOCK:
        lock = _WRITE_LOCKS.setdefault(id(engine), threading.Lock())
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    with lock:
        fd = _lock_file(path) if path and path != ":memory:" else None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)


def insert_ignoring_conflicts(engine: Engine, table: Table, *key: str) -> Insert:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` for SQLite and PostgreSQL.

    A conflict is then an answer (no row inserted) rather than an error, so one transaction can
    carry the inserts of many requests (:class:`GroupCommit`) without one conflict aborting the
    others (PostgreSQL aborts a whole transaction on an error).
    """
    dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    make = dialects.get(engine.dialect.name)
    if make is None:
        raise NotImplementedError(f"database {engine.dialect.name!r} is not supported")
    return make(table).on_conflict_do_nothing(index_elements=list(key))


T = TypeVar("T")


@dataclass(eq=False)
class _Pending(Generic[T]):
    work: Callable[[Connection], T]
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Many threads' small write transactions committed as one: one fsync for all of them.

    ``run(work)`` queues ``work(conn)`` and returns its result once a commit that includes it
    is durable, so a caller that answers after ``run`` still answers only after its rows are on
    disk. The first caller to find no commit in progress leads: it takes every queued piece of
    work, runs it in one transaction, commits, wakes the callers, and hands the lead to the
    oldest caller that queued meanwhile. Under load the queue fills while a commit's fsync is in
    progress, so the cost of an fsync is shared by everyone who arrived during the previous one.

    A piece of work that raises must have written nothing (conflicts are answered with
    :func:`insert_ignoring_conflicts`, not errors); its caller gets the exception and the others
    go on. A database error (``DBAPIError``) rolls the whole transaction back; each piece of
    work is then committed alone, so only the one at fault gets the error. Work is therefore
    run again after such a rollback and must not depend on having run before.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._mutex = threading.Lock()
        self._queue: list[_Pending[Any]] = []
        self._busy = False
        #: Commits made and pieces of work they carried (for tests and the metrics).
        self.commits = 0
        self.items = 0

    def run(self, work: Callable[[Connection], T]) -> T:
        item: _Pending[T] = _Pending(work)
        with self._mutex:
            self._queue.append(item)
            lead = not self._busy
            self._busy = True
        while True:
            if lead:
                self._lead()
            item.wake.wait()
            if item.done:
                break
            # Promoted to leader while waiting: commit the queue, own work included.
            item.wake.clear()
            lead = True
        if item.error is not None:
            raise item.error
        return item.result

    def _lead(self) -> None:
        with self._mutex:
            group, self._queue = self._queue, []
        try:
            self._commit(group)
        finally:
            for item in group:
                item.done = True
                item.wake.set()
            with self._mutex:
                if self._queue:
                    self._queue[0].wake.set()  # not done: it wakes as the next leader
                else:
                    self._busy = False

    def _commit(self, group: list[_Pending[Any]]) -> None:
        try:
            self._transaction(group)
        except DBAPIError:
            # One piece of work broke the shared transaction (everything was rolled back):
            # commit each alone, so only the one at fault fails.
            for item in group:
                if item.error is None:
                    self._transaction([item])

    def _transaction(self, group: list[_Pending[Any]]) -> None:
        """Run ``group`` in one transaction; on a database error nothing of it is written."""
        try:
            with begin_write(self.engine) as conn:
                for item in group:
                    try:
                        item.result = item.work(conn)
                    except DBAPIError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - handed to its own caller
                        item.error = exc
        except BaseException as exc:
            for item in group:
                if item.error is None:
                    item.error, item.result = exc, None
            if len(group) > 1 and isinstance(exc, DBAPIError):
                for item in group:  # retried one by one by _commit
                    if item.error is exc:
                        item.error = None
                raise
            if not isinstance(exc, Exception):
                raise
            return
        self.commits += 1
        self.items += len(group)


_GROUPS: dict[int, GroupCommit] = {}


def group_commit(engine: Engine) -> GroupCommit:
    """The process's :class:`GroupCommit` for ``engine`` (one per engine, so all writers share)."""
    with _ENGINES_LOCK:
        group = _GROUPS.get(id(engine))
        if group is None or group.engine is not engine:
            group = _GROUPS[id(engine)] = GroupCommit(engine)
        return group


def dispose_engine(url: str) -> None:
    """Close the pooled connections of one URL (tests dropping a database need this)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(url, None)
        _SCHEMA_READY.discard(url)
    if engine is not None:
        engine.dispose()


_SCHEMA_ATTEMPTS = 10
_SCHEMA_RETRY_S = 0.05


def ensure_schema(url: str) -> Engine:
    """Create the tables if missing (idempotent, safe when replicas start at the same time)."""
    engine = get_engine(url)
    if url in _SCHEMA_READY:
        return engine
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK}
                    )
                metadata.create_all(conn, checkfirst=True)
            break
        except OperationalError as exc:
            # SQLite has no advisory lock: processes opening a new index at once both find a
            # table missing and one loses the race to create it, or SQLite refuses a lock
            # upgrade at once (no busy wait: it would deadlock); the next look finds it there
            lost = "already exists" in str(exc) or "database is locked" in str(exc)
            if not lost or attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(_SCHEMA_RETRY_S * (attempt + 1))
    _SCHEMA_READY.add(url)
    return engine


def sqlite_path(url: str) -> str | None:
    """The file behind a ``sqlite:///`` URL, or None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :]
    return path or None
