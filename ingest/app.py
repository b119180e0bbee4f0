"""The ingest HTTP service (FastAPI): authenticated, idempotent, durable landing of batches.

Order of checks on ``POST /v1/batches`` (cheap and header-only first, so a refused upload costs
little and nothing is written):

1. signing headers present and well-formed, timestamp inside the window (401, with server time);
2. Content-Encoding / Content-Type (415), declared Content-Length (413, body not read);
3. device known, enrolled (401) and active (403) (the same query reads whether the request's
   signature is already in the replay cache; that is acted on in step 4);
4. body read up to the limit (413), signature over it (401), rate limit (429), replay (401:
   the signature is already in the replay cache);
5. gunzip and JSON (400 / 413), batch contract, device and stream, plausible times (422);
6. landing: fsynced file, fsynced directory, then one commit holding the index row *and* the
   request's signature in the replay cache; only then ``200``.

A request whose signature was valid has its signature recorded whatever the outcome (a refused
payload and a duplicate too, each in its own commit), so a replay is refused as one. The rows
are committed through :class:`ingest.db.GroupCommit`: concurrent requests share one commit and
its fsync, and each still answers only after the commit that holds its rows.

The blocking work (database, checks, fsync) runs in worker threads, one hop after the body is
read; the event loop only parses headers and reads bodies.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, bindparam, delete, exists, insert, select, text
from starlette.datastructures import Headers, State
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ingest.checks import (
    AuthHeaders,
    Rejection,
    TokenBuckets,
    auth_headers,
    check_content_headers,
    check_declared_length,
    check_signature,
    check_window,
    checked_batch,
    decode_json,
    rate_limited,
)
from ingest.db import (
    devices,
    group_commit,
    heartbeats,
    insert_ignoring_conflicts,
    replay_cache,
    utc_iso,
)
from ingest.landing import Claim, Landing, LandResult
from ingest.registry import Device, EnrolmentRefused, Registry, device_from_row
from ingest.settings import Settings
from schemas import signing

ACCESS_LOG = logging.getLogger("lantian.ingest.access")
BATCH_PATH = "/v1/batches"
#: An enrolment is three short strings; nothing bigger is read.
ENROL_BODY_LIMIT = 64 * 1024
ERROR_LOG = logging.getLogger("lantian.ingest")

_SIGNATURE_SEEN = select(replay_cache.c.signature).where(
    replay_cache.c.signature == bindparam("signature")
)
#: The device's row and whether the request's signature was already used, in one statement.
_DEVICE_AND_SEEN = select(
    devices,
    exists().where(replay_cache.c.signature == bindparam("signature")).label("seen"),
).where(devices.c.device_id == bindparam("device_id"))

# -- request and response documents (OpenAPI) ----------------------------------------------


#: Text stored in a column: bounded, and no control characters (PostgreSQL refuses NUL).
_NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"


def _text(max_length: int) -> Any:
    return Field(None, max_length=max_length, pattern=_NO_CONTROLS)


class Heartbeat(BaseModel):
    """What a box reports about itself; unknown fields are kept in ``body_json``."""

    model_config = ConfigDict(extra="allow")

    device_id: str = Field(max_length=64)
    box_id: str | None = _text(64)
    queue_depth: int | None = Field(None, ge=0, le=2**31 - 1)
    oldest_unsent: str | None = _text(40)
    ports: Any = None
    clock_offset_s: float | None = Field(None, allow_inf_nan=False)
    disk_free_bytes: int | None = Field(None, ge=0, le=2**63 - 1)
    version: str | None = _text(64)


class Enrolment(BaseModel):
    device_id: str = Field(max_length=64)
    enrolment_code: str = Field(max_length=64)
    key: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="derive_key(secret, device_id)")


class BatchAccepted(BaseModel):
    status: str = Field(description="landed, or duplicate when the batch id was already landed")
    batch_id: str
    readings: int


class ErrorBody(BaseModel):
    error: str
    detail: str


_READING_SCHEMA = {
    "type": "object",
    "required": [
        "id",
        "device_id",
        "stream",
        "cn",
        "data_time",
        "device_time",
        "received_at",
        "values",
        "raw",
        "raw_sha256",
    ],
    "properties": {
        "id": {"type": "string"},
        "device_id": {"type": "string"},
        "stream": {"type": "string", "enum": ["cems", "ambient", "vapor", "rsd"]},
        "cn": {"type": "string"},
        "data_time": {"type": "string", "description": "YYYYMMDDhhmmss[zzz] as sent"},
        "device_time": {"type": "string", "format": "date-time"},
        "received_at": {"type": "string", "format": "date-time"},
        "values": {"type": "object"},
        "units": {"type": "object"},
        "raw": {"type": "string"},
        "raw_sha256": {"type": "string"},
        "key": {"type": "string"},
        "clock": {"type": "object"},
    },
}
_BATCH_SCHEMA = {
    "type": "object",
    "required": ["device_id", "stream", "batch_id", "readings"],
    "properties": {
        "device_id": {"type": "string"},
        "stream": {"type": "string", "enum": ["cems", "ambient", "vapor", "rsd"]},
        "batch_id": {"type": "string"},
        "readings": {"type": "array", "items": _READING_SCHEMA},
        "agent_version": {"type": "string"},
        "contract": {"type": "integer"},
    },
}
_SIGNED_PARAMETERS = [
    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
    for name in (signing.HEADER_DEVICE, signing.HEADER_TIMESTAMP, signing.HEADER_SIGNATURE)
] + [
    {
        "name": "Content-Encoding",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["gzip", "identity"]},
    }
]


def _body_doc(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


#: Threads of a process that decode and check batches at the same time. The work is pure
#: Python under the GIL, so more threads do not add throughput; they interleave batches every
#: few milliseconds instead, and each switch finds the other batch's objects out of the CPU
#: caches (measured with the pure-Python checks of 500-reading batches: 6.5 ms of CPU per batch
#: with one thread, 11.4 ms with 25; the typed fast path is cheaper but just as GIL-bound).
CHECKING_THREADS = 1
#: Worker threads of the batch route (ingest/db.py sizes the SQLite pool for 40).
BLOCKING_THREADS = 40

# -- the service ----------------------------------------------------------------------------


class Metrics:
    """The service's counters; summed over worker processes in multiprocess mode.

    Under ``lantian ingest serve --workers N`` the supervisor sets ``PROMETHEUS_MULTIPROC_DIR``
    before the workers start, so prometheus_client keeps these values in per-process files
    and :meth:`exposition` adds up every worker's (see ingest/serve.py).
    """

    def __init__(self) -> None:
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.multiprocess = bool(metrics_dir)
        if metrics_dir:  # also set by an operator for a single process: make sure it exists
            os.makedirs(metrics_dir, exist_ok=True)
        self.registry = CollectorRegistry()
        self.batches = Counter(
            "lantian_ingest_batches", "Accepted batches", ["status"], registry=self.registry
        )
        self.readings = Counter(
            "lantian_ingest_readings", "Readings in newly landed batches", registry=self.registry
        )
        self.rejections = Counter(
            "lantian_ingest_rejections", "Refused requests", ["reason"], registry=self.registry
        )
        self.heartbeats = Counter("lantian_ingest_heartbeats", "Heartbeats", registry=self.registry)
        self.landing_seconds = Histogram(
            "lantian_ingest_landing_seconds",
            "Write + fsync + index of one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


class IngestService:
    """State shared by the requests of one process; every method here may block."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.landing = Landing(settings.landing_root, settings.db_url)
        self.registry = Registry(settings.db_url)
        self.engine = self.landing.engine
        self.commits = group_commit(self.engine)
        self.buckets = TokenBuckets(settings.rate_per_s, settings.rate_burst)
        self.metrics = Metrics()
        self._last_purge = 0.0
        self._purge_lock = threading.Lock()
        # RETURNING, not rowcount: drivers need not report a rowcount for an INSERT.
        self._remember = insert_ignoring_conflicts(
            self.engine, replay_cache, "signature"
        ).returning(replay_cache.c.signature)
        self._checking = threading.BoundedSemaphore(CHECKING_THREADS)
        #: Worker threads of the batch route: as many as anyio's default limiter, which the
        #: SQLite pool is sized for (ingest/db.py). Created on demand, stopped with the app.
        self.threads = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="ingest-batch")

    def device_for(self, device_id: str, signature: str | None = None) -> Device:
        """The device allowed to upload, else 401/403.

        With ``signature``, the same query also reads whether that signature is already in
        the replay cache (one statement instead of two per upload); :meth:`authenticate`
        acts on it only after the signature is verified, as it would on its own read.
        """
        if signature is None:
            device = self.registry.get(device_id)
        else:
            with self.engine.connect() as conn:
                row = conn.execute(
                    _DEVICE_AND_SEEN, {"device_id": device_id, "signature": signature}
                ).first()
            device = None if row is None else replace(device_from_row(row), seen=bool(row.seen))
        if device is None:
            raise Rejection(401, "unknown_device", f"device {device_id!r} is not registered")
        if device.state != "active":
            raise Rejection(
                403,
                f"device_{device.state}",
                f"device {device_id} is {device.state}; uploads are refused",
            )
        if not device.enrolled:
            raise Rejection(
                401, "device_not_enrolled", f"device {device_id} has not enrolled a key yet"
            )
        return device

    def authenticate(
        self, device: Device, method: str, path: str, auth: AuthHeaders, body: bytes
    ) -> Claim:
        """Signature, then rate, then replay; returns the claim that records the signature.

        The replay check here is a read (a signature already recorded is refused before any
        payload work); the claim, committed with the request's outcome, is what makes a
        signature single-use, also between two copies of a request that are in flight at once.
        """
        now = time.time()
        check_signature(
            device.keys_valid_at(datetime.fromtimestamp(now, UTC)), method, path, auth, body
        )
        wait = self.buckets.take(device.device_id)
        if wait > 0:
            raise rate_limited(wait, device.device_id)
        if device.seen is None:
            with self.engine.connect() as conn:
                seen = conn.execute(_SIGNATURE_SEEN, {"signature": auth.signature}).first()
            device = replace(device, seen=seen is not None)
        if device.seen:
            raise _replay()
        return self._claim(auth, now)

    def _claim(self, auth: AuthHeaders, now: float) -> Claim:
        values = {
            "signature": auth.signature,
            "device_id": auth.device_id,
            "expires_at": max(auth.timestamp, now) + self.settings.timestamp_window_s + 1,
        }
        purge = self._purge_due(now)

        def claim(conn: Connection) -> None:
            if conn.execute(self._remember, values).first() is None:
                raise _replay()
            if purge:
                conn.execute(delete(replay_cache).where(replay_cache.c.expires_at < now))

        return claim

    def _purge_due(self, now: float) -> bool:
        """True for one request per purge interval: it deletes expired replay-cache rows."""
        with self._purge_lock:
            if now - self._last_purge <= self.settings.replay_purge_interval_s:
                return False
            self._last_purge = now
            return True

    def _refused(self, claim: Claim, refusal: Rejection) -> Rejection:
        """Record the signature of a refused request (a replay of it is refused as a replay)."""
        self.commits.run(claim)
        return refusal

    def receive_batch(
        self,
        device: Device,
        method: str,
        path: str,
        auth: AuthHeaders,
        body: bytes,
        encoding: str,
        note: Any,
    ) -> LandResult:
        """Steps 4-6 of the module docstring for one batch, in one worker thread."""
        claim = self.authenticate(device, method, path, auth, body)
        refusal = None
        with self._checking:
            try:
                batch, span = checked_batch(
                    body,
                    encoding,
                    device.device_id,
                    device.stream,
                    self.settings.plausibility,
                    self.settings.max_inflated_bytes,
                    note=note,
                )
            except Rejection as exc:
                refusal = exc
        if refusal is not None:
            raise self._refused(claim, refusal)
        started = time.perf_counter()
        result = self.landing.land(
            batch, body, signed_at=auth.timestamp, signature=auth.signature, span=span, claim=claim
        )
        self.metrics.batches.labels(result.status).inc()
        if result.status == "landed":
            self.metrics.landing_seconds.observe(time.perf_counter() - started)
            self.metrics.readings.inc(result.n_readings)
        note.readings = result.n_readings
        return result

    def store_heartbeat(
        self, device: Device, method: str, path: str, auth: AuthHeaders, body: bytes, encoding: str
    ) -> str:
        claim = self.authenticate(device, method, path, auth, body)
        try:
            raw = decode_json(body, encoding, self.settings.max_inflated_bytes)
            beat = _heartbeat(raw, device.device_id)
        except Rejection as refusal:
            raise self._refused(claim, refusal) from None
        received = utc_iso(datetime.now(UTC))
        row = {
            "device_id": beat.device_id,
            "box_id": beat.box_id,
            "received_at": received,
            "queue_depth": beat.queue_depth,
            "oldest_unsent": beat.oldest_unsent,
            "clock_offset_s": beat.clock_offset_s,
            "disk_free_bytes": beat.disk_free_bytes,
            "version": beat.version,
            "ports_json": json.dumps(beat.ports, ensure_ascii=False),
            "body_json": json.dumps(raw, ensure_ascii=False),
        }

        def store(conn: Connection) -> None:
            claim(conn)
            conn.execute(insert(heartbeats).values(**row))

        self.commits.run(store)
        self.metrics.heartbeats.inc()
        return received

    def enroll(self, body: bytes, encoding: str = "identity") -> Device:
        raw = decode_json(body, encoding, ENROL_BODY_LIMIT)
        try:
            request = Enrolment.model_validate(raw)
        except ValidationError as exc:
            raise Rejection(422, "invalid_enrolment", _validation_detail(exc.errors())) from None
        wait = self.buckets.take(f"enroll:{request.device_id}")
        if wait > 0:
            raise rate_limited(wait, request.device_id)
        try:
            return self.registry.enroll(
                request.device_id, request.enrolment_code, request.key, self.settings.key_grace_s
            )
        except EnrolmentRefused as exc:
            status = (
                403 if exc.reason.startswith("device_") else 422 if exc.reason == "bad_key" else 401
            )
            raise Rejection(status, exc.reason, str(exc)) from None

    def ready(self) -> list[str]:
        problems = []
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            problems.append(f"database unreachable: {type(exc).__name__}")
        if not self.landing.writable():
            problems.append(f"landing directory {self.settings.landing_root} is not writable")
        return problems


def _replay() -> Rejection:
    return Rejection(
        401, "replay", "this signature was already used; sign each request with a fresh timestamp"
    )


def _heartbeat(raw: Any, device_id: str) -> Heartbeat:
    try:
        beat = Heartbeat.model_validate(raw)
    except ValidationError as exc:
        raise Rejection(422, "invalid_heartbeat", _validation_detail(exc.errors())) from None
    if beat.device_id != device_id:
        raise Rejection(
            422,
            "wrong_device",
            f"heartbeat: device_id {beat.device_id!r} is not the signing device {device_id!r}",
        )
    return beat


def _validation_detail(errors: list[Any]) -> str:
    """Pydantic errors as ``field: message`` (never the input: it may be a key)."""
    parts = []
    for error in errors[:5]:
        location = ".".join(str(p) for p in error.get("loc", ())) or "body"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (also when chunked)."""
    check_declared_length(request.headers.get("content-length"), limit)
    received = bytearray()
    try:
        async for chunk in request.stream():
            received += chunk
            if len(received) > limit:
                raise Rejection(413, "body_too_large", f"body exceeds the limit of {limit} bytes")
    except ClientDisconnect:
        raise Rejection(400, "client_disconnected", "the body ended early") from None
    return bytes(received)


async def _signed_request(
    request: Request, service: IngestService
) -> tuple[Device, AuthHeaders, bytes, str]:
    """Steps 1-4 of the module docstring up to reading the body (batches and heartbeats)."""
    auth = auth_headers(request.headers)
    request.state.device = auth.device_id
    check_window(auth.timestamp, time.time(), service.settings.timestamp_window_s)
    encoding = check_content_headers(
        request.headers.get("content-encoding"), request.headers.get("content-type")
    )
    check_declared_length(request.headers.get("content-length"), service.settings.max_body_bytes)
    device = await to_thread.run_sync(service.device_for, auth.device_id)
    body = await read_body(request, service.settings.max_body_bytes)
    return device, auth, body, encoding


# -- access log and Date header (pure ASGI, so bodies stream untouched) ---------------------


class AccessLog:
    """One JSON line per request, and a ``Date`` header on every response (clock correction)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500

        async def send_with_date(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"date"]
                headers.append((b"date", formatdate(usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_date)
        except Exception:
            state.setdefault("reason", "internal_error")
            raise
        finally:
            record = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "device": state.get("device"),
                "batch": state.get("batch"),
                "readings": state.get("readings"),
                "reason": state.get("reason"),
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            if scope.get("path") not in ("/healthz", "/metrics") and ACCESS_LOG.isEnabledFor(
                logging.INFO
            ):
                ACCESS_LOG.info(json.dumps(record, ensure_ascii=False))


# -- the batch route without the framework (pure ASGI) --------------------------------------


_JSON_HEADERS = [(b"content-type", b"application/json")]


def _json_bytes(content: Any) -> bytes:
    # As starlette's JSONResponse renders it, so both routes answer byte for byte alike.
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


class BatchRoute:
    """``POST /v1/batches`` served straight from ASGI; every other request goes to FastAPI.

    The upload is the only hot path of the service. Through FastAPI it cost about 1 ms of
    event-loop CPU per request (routing, the Request object, the body stream, the exception
    handlers, the response class), as much as checking 150 readings. This does the same steps
    (:func:`_signed_request`, then :meth:`IngestService.receive_batch` in a worker thread) and
    answers the same bodies, statuses and headers, with the same metrics and access-log state.
    The FastAPI route stays declared: it documents the endpoint in the OpenAPI schema and
    serves the request if this class is not mounted.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], service: IngestService) -> None:
        self.app = app
        self.service = service
        self.path = BATCH_PATH
        # A plain executor (anyio's to_thread costs several times more event-loop CPU per hop),
        # owned by the service, which shuts it down with the app.
        self.threads = service.threads

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        service = self.service
        state = State(scope.setdefault("state", {}))
        try:
            headers = Headers(scope=scope)
            auth = auth_headers(headers)
            state.device = auth.device_id
            check_window(auth.timestamp, time.time(), service.settings.timestamp_window_s)
            encoding = check_content_headers(
                headers.get("content-encoding"), headers.get("content-type")
            )
            limit = service.settings.max_body_bytes
            check_declared_length(headers.get("content-length"), limit)
            loop = asyncio.get_running_loop()
            device = await loop.run_in_executor(
                self.threads, service.device_for, auth.device_id, auth.signature
            )
            body = await _receive_body(receive, limit)
            result = await loop.run_in_executor(
                self.threads,
                service.receive_batch,
                device,
                "POST",
                scope["path"],
                auth,
                body,
                encoding,
                state,
            )
            state.batch = result.batch_id
            status, answer, extra = (
                200,
                {
                    "status": result.status,
                    "batch_id": result.batch_id,
                    "readings": result.n_readings,
                },
                {},
            )
        except Rejection as exc:
            state.reason = exc.error
            service.metrics.rejections.labels(exc.error).inc()
            status, answer, extra = exc.status, exc.body(), exc.headers
        except Exception:
            ERROR_LOG.exception("unhandled error on POST %s", scope["path"])
            state.reason = "internal_error"
            service.metrics.rejections.labels("internal_error").inc()
            status, answer, extra = 500, _INTERNAL_ERROR, {}
        content = _json_bytes(answer)
        response_headers = [
            (b"content-length", str(len(content)).encode()),
            *_JSON_HEADERS,
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})


async def _receive_body(receive: Any, limit: int) -> bytes:
    """The body from ASGI messages, refused with 413 as soon as it passes ``limit``."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Rejection(400, "client_disconnected", "the body ended early")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejection(413, "body_too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_INTERNAL_ERROR = {"error": "internal_error", "detail": "the batch was not landed; retry later"}


# -- the app --------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ingest app for ``settings`` (tables are created if missing)."""
    settings = settings or Settings()
    service = IngestService(settings)
    app = FastAPI(
        title="Lantian ingest",
        version="1",
        description="Signed, idempotent, durable landing of device batches "
        "(docs/ARCHITECTURE.md → Wire: agent → ingest).",
    )
    app.state.service = service

    def reject(request: Request, exc: Rejection) -> JSONResponse:
        request.state.reason = exc.error
        service.metrics.rejections.labels(exc.error).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Rejection)
    async def on_rejection(request: Request, exc: Rejection) -> JSONResponse:
        return reject(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return reject(request, Rejection(422, "invalid_request", _validation_detail(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return reject(
            request,
            Rejection(exc.status_code, error, str(exc.detail), headers=dict(exc.headers or {})),
        )

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        ERROR_LOG.exception("unhandled error on %s %s", request.method, request.url.path)
        request.state.reason = "internal_error"
        service.metrics.rejections.labels("internal_error").inc()
        return JSONResponse(_INTERNAL_ERROR, status_code=500)

    @app.post(
        BATCH_PATH,
        response_model=BatchAccepted,
        responses=_errors(400, 401, 403, 413, 415, 422, 429),
        openapi_extra={
            "parameters": _SIGNED_PARAMETERS,
            **_body_doc(_BATCH_SCHEMA, "The batch JSON, usually gzip (Content-Encoding: gzip)"),
        },
    )
    async def post_batch(request: Request) -> JSONResponse:
        """Land one batch; 200 only once it is fsynced and indexed."""
        device, auth, body, encoding = await _signed_request(request, service)
        result = await to_thread.run_sync(
            service.receive_batch,
            device,
            request.method,
            request.url.path,
            auth,
            body,
            encoding,
            request.state,
        )
        request.state.batch = result.batch_id
        return JSONResponse(
            {"status": result.status, "batch_id": result.batch_id, "readings": result.n_readings}
        )

    @app.post(
        "/v1/heartbeats",
        responses=_errors(400, 401, 403, 413, 415, 422, 429),
        openapi_extra={
            "parameters": _SIGNED_PARAMETERS,
            **_body_doc(Heartbeat.model_json_schema(), "The box's health report"),
        },
    )
    async def post_heartbeat(request: Request) -> JSONResponse:
        device, auth, body, encoding = await _signed_request(request, service)
        received = await to_thread.run_sync(
            service.store_heartbeat, device, request.method, request.url.path, auth, body, encoding
        )
        return JSONResponse(
            {"status": "ok", "received_at": received, "server_time": int(time.time())}
        )

    @app.post(
        "/v1/enroll",
        responses=_errors(400, 401, 403, 413, 422, 429),
        openapi_extra=_body_doc(Enrolment.model_json_schema(), "One-time enrolment of a box's key"),
    )
    async def post_enroll(request: Request) -> JSONResponse:
        encoding = check_content_headers(
            request.headers.get("content-encoding"), request.headers.get("content-type")
        )
        body = await read_body(request, ENROL_BODY_LIMIT)
        device = await to_thread.run_sync(service.enroll, body, encoding)
        request.state.device = device.device_id
        return JSONResponse({"status": "enrolled", "device_id": device.device_id})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up (no dependencies checked)."""
        return {"status": "ok"}

    @app.get("/readyz", responses=_errors(503))
    async def readyz() -> JSONResponse:
        """The database answers and the landing directory takes an fsynced file."""
        problems = await to_thread.run_sync(service.ready)
        if problems:
            return JSONResponse(
                {"error": "not_ready", "detail": "; ".join(problems)}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Totals of all worker processes (ingest/serve.py), or of this process alone."""
        return PlainTextResponse(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.router.on_shutdown.append(lambda: service.threads.shutdown(wait=False))
    app.add_middleware(BatchRoute, service=service)
    app.add_middleware(AccessLog)  # added last: outermost, so it sees both routes
    return app


#: Allocations between two young-generation collections in a server process (CPython: 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc_for_serving() -> None:
    """Make the cyclic garbage collector cheap for a process that parses large batches.

    A 500-reading batch is ~20,000 new containers, so at the default threshold (700) the
    collector runs dozens of times per request and its older generations walk every object of
    every batch in flight plus all of FastAPI, SQLAlchemy and pydantic. The batches hold no
    reference cycles (reference counting frees them), so collecting far less often loses
    nothing; measured: -25 % CPU for decoding and checking a batch. ``gc.freeze`` moves the
    objects that exist after start-up out of the collector's sight for good.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings from $LANTIAN_INGEST_CONFIG."""
    from ingest.settings import load_settings

    app = create_app(load_settings())
    tune_gc_for_serving()
    return app
