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
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    text,
)

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
            engine = create_engine(
                url,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=10,
                max_overflow=30,
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


@contextlib.contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite, one writer per process at a time.

    SQLite has one write lock per database; threads that collide wait in its busy handler,
    which sleeps in growing steps (up to 100 ms) and collapses throughput under load. A Python
    lock queues the threads of a process instead and wakes the next one at once; only the
    worker processes still meet in SQLite's handler. PostgreSQL needs no such lock.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _ENGINES_LOCK:
        lock = _WRITE_LOCKS.setdefault(id(engine), threading.Lock())
    with lock, engine.begin() as conn:
        yield conn


def dispose_engine(url: str) -> None:
    """Close the pooled connections of one URL (tests dropping a database need this)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(url, None)
        _SCHEMA_READY.discard(url)
    if engine is not None:
        engine.dispose()


def ensure_schema(url: str) -> Engine:
    """Create the tables if missing (idempotent, safe when replicas start at the same time)."""
    engine = get_engine(url)
    if url in _SCHEMA_READY:
        return engine
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
        metadata.create_all(conn, checkfirst=True)
    _SCHEMA_READY.add(url)
    return engine


def sqlite_path(url: str) -> str | None:
    """The file behind a ``sqlite:///`` URL, or None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :]
    return path or None
