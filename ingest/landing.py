"""Durable, idempotent landing of accepted batches, and the index the pipeline reads.

Write side (:class:`Landing`): one immutable gzip file per batch at
``<root>/<YYYY-MM-DD landed, UTC>/<device_id>/<batch_id>.json.gz``, then one row in
``landed_batches``. The file is written to a temporary name in its directory, fsynced, published
under its final name, the directory fsynced, and only then indexed; the caller answers 2xx after
:meth:`Landing.land` returns.

Publishing uses ``os.link`` (fails if the name exists) rather than ``os.rename`` (replaces it):
a file at a final name is never overwritten, so two replicas racing on one batch cannot swap the
bytes under an index row that already names their hash. The UNIQUE ``batch_id`` decides which
replica indexes the batch; the loser deletes its file only if it published it itself *and* the
winner's row names a different path (a race across UTC midnight), so it never removes anything
the winner wrote. Filesystems without hard links fall back to check-then-rename.

What is stored: a gzip body as sent (the very bytes the device signed, so the signature in the
index can be re-checked against the file), or, for an identity body, its deterministic gzip.

Read side (:class:`LandingIndex`): ``batches(start, end, after_seq)`` and ``read_batch(entry)``,
which re-hashes the file and refuses a mismatch. No FastAPI import: the pipeline uses this module.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import re
import secrets
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select

from ingest.db import (
    ensure_schema,
    group_commit,
    insert_ignoring_conflicts,
    landed_batches,
    utc_iso,
    utc_now,
)

GZIP_MAGIC = b"\x1f\x8b"

#: Device ids become directory names: HJ 212 MNs are alphanumeric; allow a little more, no dots
#: at the start (no ``..``, no hidden files) and no separators.
SAFE_DEVICE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
SAFE_BATCH_ID = re.compile(r"^[0-9a-f]{32}$")

#: Built once: a statement object reused across calls skips most of SQLAlchemy's per-call work.
_BY_BATCH_ID = select(landed_batches).where(landed_batches.c.batch_id == bindparam("batch_id"))

#: Landed files are evidence: read-only for the owner and the pipeline's group.
FILE_MODE = 0o440


class LandingError(RuntimeError):
    """The landing area or its index is not in the state the evidence chain requires."""


class EvidenceTampered(LandingError):
    """A landed file no longer matches the hash recorded when it was landed."""


class EvidenceMissing(LandingError):
    """A landed file named by the index is gone."""


class PayloadError(ValueError):
    """A body cannot be decoded (malformed gzip)."""


class PayloadTooLarge(PayloadError):
    """A body decompresses to more than the allowed size (a gzip bomb or an oversized batch)."""


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress gzip (one or more members) refusing more than ``limit`` bytes of output.

    Stricter than :func:`gzip.decompress`: trailing bytes after the last member are an error,
    so a body that parses here reads back identically from the landing file.
    """
    out = bytearray()
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise PayloadError(f"malformed gzip: {exc}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"gzip body inflates to more than {limit} bytes")
        if not inflater.eof:
            raise PayloadError("malformed gzip: truncated stream")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)


def stored_bytes(batch: dict[str, Any], body: bytes | None) -> bytes:
    """What lands on disk: a gzip body verbatim, else a deterministic gzip of the JSON."""
    if body is not None and body[:2] == GZIP_MAGIC:
        return body
    if body is None:
        body = json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    # mtime=0 and a fixed level: two replicas gzip the same JSON to the same bytes.
    return gzip.compress(body, compresslevel=6, mtime=0)


def data_time_range(batch: dict[str, Any]) -> tuple[datetime, datetime]:
    """Earliest and latest reading instant, from each reading's ``device_time`` (with offset)."""
    instants = [datetime.fromisoformat(r["device_time"]) for r in batch["readings"]]
    if not instants:
        raise ValueError("batch has no readings")
    return min(instants), max(instants)


def check_names(device_id: str, batch_id: str) -> None:
    """Refuse ids that would escape the landing tree or clash with temporary names."""
    if not SAFE_DEVICE_ID.match(device_id):
        raise ValueError(f"device_id {device_id!r} is not usable as a directory name")
    if not SAFE_BATCH_ID.match(batch_id):
        raise ValueError(f"batch_id {batch_id!r} is not 32 lowercase hex digits")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(root: Path, relative: Path) -> Path:
    """Create ``root/relative`` one level at a time, fsyncing each parent that gained an entry."""
    current = root
    for part in relative.parts:
        child = current / part
        if not child.is_dir():
            # Another worker or replica may create it first; fsyncing the parent is then harmless.
            with contextlib.suppress(FileExistsError):
                child.mkdir(mode=0o750)
            _fsync_dir(current)
        current = child
    return current


def _write_temp(directory: Path, name: str, data: bytes) -> Path:
    temp = directory / f".{name}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)  # a full disk must not leave half a file behind
        raise
    os.close(fd)
    return temp


def publish(final: Path, data: bytes) -> bool:
    """Durably create ``final`` with ``data`` unless it exists; True if this call created it.

    Either way, on return a complete, fsynced file is at ``final`` and its directory entry is
    fsynced (a file found there was itself fsynced before it was published).
    """
    temp = _write_temp(final.parent, final.name, data)
    try:
        try:
            os.link(temp, final)
            created = True
        except FileExistsError:
            created = False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # No hard links on this filesystem (some network shares): check, then rename.
            created = not final.exists()
            if created:
                os.rename(temp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):  # already renamed in the fallback
            os.unlink(temp)
    _fsync_dir(final.parent)
    return created


@dataclass(frozen=True)
class LandResult:
    status: str  # "landed" (this call indexed it) or "duplicate" (already indexed)
    batch_id: str
    device_id: str
    stream: str
    path: str  # relative to the landing root
    sha256: str
    n_readings: int
    seq: int


@dataclass(frozen=True)
class LandedBatch:
    """One row of ``landed_batches``; instants are aware UTC datetimes."""

    seq: int
    batch_id: str
    device_id: str
    stream: str
    path: str
    sha256: str
    n_readings: int
    first_data_time: datetime
    last_data_time: datetime
    landed_at: datetime
    signed_at: int | None = None
    signature: str | None = field(default=None, repr=False)


def _entry(row: Any) -> LandedBatch:
    return LandedBatch(
        seq=row.seq,
        batch_id=row.batch_id,
        device_id=row.device_id,
        stream=row.stream,
        path=row.path,
        sha256=row.sha256,
        n_readings=row.n_readings,
        first_data_time=datetime.fromisoformat(row.first_data_time),
        last_data_time=datetime.fromisoformat(row.last_data_time),
        landed_at=datetime.fromisoformat(row.landed_at),
        signed_at=row.signed_at,
        signature=row.signature,
    )


def _bound(moment: datetime | None, name: str) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {moment!r})")
    return utc_iso(moment)


@dataclass
class VerifyReport:
    """Outcome of re-hashing the landing area against its index."""

    checked: int = 0
    tampered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unindexed: list[str] = field(default_factory=list)  # published but never indexed (crash)
    temporaries: list[str] = field(default_factory=list)  # interrupted writes, never published

    @property
    def ok(self) -> bool:
        return not self.tampered and not self.missing


class LandingIndex:
    """Read side of the landing area for the pipeline: list batches, read them back verified."""

    def __init__(self, url: str, root: Path | str) -> None:
        self.url = url
        self.root = Path(root)
        self.engine: Engine = ensure_schema(url)

    def get(self, batch_id: str) -> LandedBatch | None:
        with self.engine.connect() as conn:
            row = conn.execute(_BY_BATCH_ID, {"batch_id": batch_id}).first()
        return None if row is None else _entry(row)

    def batches(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        after_seq: int | None = None,
        stream: str | None = None,
    ) -> list[LandedBatch]:
        """Batches whose data time span overlaps ``[start, end)``, oldest landing first.

        ``after_seq`` lets an incremental reader continue where it stopped; ``stream`` narrows to
        one stream. Bounds must be timezone-aware.
        """
        query = select(landed_batches).order_by(landed_batches.c.seq)
        low, high = _bound(start, "start"), _bound(end, "end")
        if high is not None:
            query = query.where(landed_batches.c.first_data_time < high)
        if low is not None:
            query = query.where(landed_batches.c.last_data_time >= low)
        if after_seq is not None:
            query = query.where(landed_batches.c.seq > after_seq)
        if stream is not None:
            query = query.where(landed_batches.c.stream == stream)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def _file(self, entry: LandedBatch) -> Path:
        relative = Path(entry.path)
        if relative.is_absolute() or ".." in relative.parts:
            raise EvidenceTampered(f"index path {entry.path!r} leaves the landing root")
        return self.root / relative

    def read_bytes(self, entry: LandedBatch) -> bytes:
        """The stored bytes of a batch, after checking them against the index hash."""
        path = self._file(entry)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise EvidenceMissing(
                f"evidence missing: batch {entry.batch_id} should be at {path}"
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256:
            raise EvidenceTampered(
                f"evidence tampered: {path} has sha256 {actual}, the index recorded "
                f"{entry.sha256} when batch {entry.batch_id} landed"
            )
        return data

    def read_batch(self, entry: LandedBatch) -> dict[str, Any]:
        """The batch as landed; raises :class:`EvidenceTampered` if the file was changed."""
        batch = json.loads(gunzip_limited(self.read_bytes(entry), limit=1 << 32))
        if batch.get("batch_id") != entry.batch_id:
            raise EvidenceTampered(
                f"evidence tampered: {entry.path} holds batch {batch.get('batch_id')!r}, "
                f"the index names {entry.batch_id}"
            )
        return batch

    def iter_batches(self, **query: Any) -> Iterator[tuple[LandedBatch, dict[str, Any]]]:
        for entry in self.batches(**query):
            yield entry, self.read_batch(entry)

    def verify(self) -> VerifyReport:
        """Re-hash every indexed file, and list files the index does not know."""
        report = VerifyReport()
        known: set[str] = set()
        for entry in self.batches():
            known.add(entry.path)
            report.checked += 1
            try:
                self.read_bytes(entry)
            except EvidenceMissing:
                report.missing.append(entry.path)
            except EvidenceTampered:
                report.tampered.append(entry.path)
        if self.root.is_dir():
            for path in sorted(self.root.glob("*/*/*")):
                relative = path.relative_to(self.root).as_posix()
                if path.name.endswith(".tmp"):
                    report.temporaries.append(relative)
                elif path.name.endswith(".json.gz") and relative not in known:
                    report.unindexed.append(relative)
        return report


#: What :meth:`Landing.land` may run in the transaction that indexes a batch (see there).
Claim = Callable[[Connection], None]


class Landing(LandingIndex):
    """Write side: ``land(batch, body)`` returns only once the batch is durable and indexed."""

    def __init__(
        self,
        root: Path | str,
        index_url: str,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(index_url, root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.commits = group_commit(self.engine)
        self._insert = insert_ignoring_conflicts(self.engine, landed_batches, "batch_id").returning(
            landed_batches.c.seq
        )

    def writable(self) -> bool:
        """Can a file be created and fsynced in the landing root right now (readiness)?"""
        try:
            temp = _write_temp(self.root, "ready-probe", b"ok")
            os.unlink(temp)
            return True
        except OSError:
            return False

    def land(
        self,
        batch: dict[str, Any],
        body: bytes | None = None,
        *,
        signed_at: int | None = None,
        signature: str | None = None,
        span: tuple[datetime, datetime] | None = None,
        claim: Claim | None = None,
    ) -> LandResult:
        """Land a checked batch. ``body`` is the request body (gzip or JSON) or None.

        The caller has already checked the batch (``schemas.reading.check_batch_dict``) and that
        ``body`` decodes to it; ``span`` is its earliest and latest ``device_time`` if the caller
        has it (else it is computed). A batch id already indexed returns ``duplicate`` and writes
        no file.

        ``claim(conn)`` runs first in the transaction that indexes the batch, or alone for a
        duplicate (the service records the request's signature there, so the replay-cache row
        and the index row are durable together, in one commit). It may refuse by raising, having
        written nothing; the batch is then not indexed and the exception propagates.

        The index row is committed through the process's :class:`ingest.db.GroupCommit`: one
        fsync for all the batches that are waiting at that moment, and no return before it.
        """
        device_id, batch_id = batch["device_id"], batch["batch_id"]
        check_names(device_id, batch_id)
        existing = self.get(batch_id)
        if existing is not None:
            if claim is not None:
                self.commits.run(claim)
            return _result("duplicate", existing)

        data = stored_bytes(batch, body)
        now = self.clock().astimezone(UTC)
        relative = Path(f"{now:%Y-%m-%d}") / device_id / f"{batch_id}.json.gz"
        final = _ensure_dir(self.root, relative.parent) / relative.name
        created = publish(final, data)
        if not created:
            # A file is already there (a racing replica, or a crash between publish and index):
            # index what is on disk, never what we meant to write.
            data = final.read_bytes()
            batch = json.loads(gunzip_limited(data, limit=1 << 32))
            if batch.get("batch_id") != batch_id:
                raise LandingError(f"{final} holds batch {batch.get('batch_id')!r}, not {batch_id}")
            span = None
        first, last = span or data_time_range(batch)
        row = {
            "batch_id": batch_id,
            "device_id": device_id,
            "stream": batch["stream"],
            "path": relative.as_posix(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "n_readings": len(batch["readings"]),
            "first_data_time": utc_iso(first),
            "last_data_time": utc_iso(last),
            "landed_at": utc_iso(now),
            "signed_at": signed_at,
            "signature": signature,
        }

        def index(conn: Connection) -> tuple[int | None, Any]:
            if claim is not None:
                claim(conn)
            seq = conn.execute(self._insert, row).scalar()
            if seq is not None:
                return seq, None
            # Indexed meanwhile by another replica or request: read the winner's row.
            return None, conn.execute(_BY_BATCH_ID, {"batch_id": batch_id}).first()

        try:
            seq, winner_row = self.commits.run(index)
        except Exception:
            if created:
                self._drop_if_superseded(final, batch_id, row["path"])
            raise
        if seq is None:
            if winner_row is None:
                raise LandingError(f"batch {batch_id}: conflicting index row vanished")
            winner = _entry(winner_row)
            if created and winner.path != row["path"]:
                final.unlink()  # ours alone: the winner's file is at another path
                _fsync_dir(final.parent)
            return _result("duplicate", winner)
        return LandResult(
            "landed",
            batch_id,
            device_id,
            row["stream"],
            row["path"],
            row["sha256"],
            row["n_readings"],
            int(seq),
        )

    def _drop_if_superseded(self, final: Path, batch_id: str, path: str) -> None:
        """After a failed index, remove our file only if the index names another file.

        With no index row the file stays (as after a crash): another request may be indexing
        it right now, and a resend indexes it; ``verify`` lists it meanwhile.
        """
        with contextlib.suppress(Exception):
            winner = self.get(batch_id)
            if winner is not None and winner.path != path:
                final.unlink()
                _fsync_dir(final.parent)


def _result(status: str, entry: LandedBatch) -> LandResult:
    return LandResult(
        status,
        entry.batch_id,
        entry.device_id,
        entry.stream,
        entry.path,
        entry.sha256,
        entry.n_readings,
        entry.seq,
    )
