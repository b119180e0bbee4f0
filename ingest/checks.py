"""Request checks of the ingest service as small pure functions (no FastAPI, no database).

Each check raises :class:`Rejection` carrying the HTTP status and the ``{"error", "detail"}``
body of docs/ARCHITECTURE.md → Wire. Details name what is wrong and where, and never contain
key material.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.landing import SAFE_DEVICE_ID, PayloadError, PayloadTooLarge, gunzip_limited
from ingest.settings import Plausibility
from schemas import signing
from schemas.reading import ContractError, check_batch_dict

_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")

try:  # a pinned dependency of the server (requirements/server.lock); stdlib json without it
    import msgspec

    from ingest.fastbatch import accept as _fast_accept

    _fast_json = msgspec.json.Decoder().decode
    _FAST_JSON_REFUSALS: tuple[type[Exception], ...] = (msgspec.DecodeError, RecursionError)
except ImportError:  # pragma: no cover - the agent's environment has no msgspec
    _fast_accept = None
    _fast_json = None
    _FAST_JSON_REFUSALS = ()


@dataclass
class Rejection(Exception):
    """A refused request: ``status``, machine-readable ``error``, human ``detail``."""

    status: int
    error: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.extra}


@dataclass(frozen=True)
class AuthHeaders:
    device_id: str
    timestamp: int
    signature: str


def auth_headers(headers: Any) -> AuthHeaders:
    """The three signing headers, well-formed, or 401 naming the one that is not."""
    values = {}
    for name in (signing.HEADER_DEVICE, signing.HEADER_TIMESTAMP, signing.HEADER_SIGNATURE):
        value = headers.get(name)
        if not value:
            raise Rejection(401, "missing_auth_header", f"header {name} is required")
        values[name] = value.strip()
    device_id = values[signing.HEADER_DEVICE]
    if not SAFE_DEVICE_ID.match(device_id):
        raise Rejection(401, "unknown_device", f"{signing.HEADER_DEVICE} is not a device id")
    try:
        timestamp = int(values[signing.HEADER_TIMESTAMP])
    except ValueError:
        raise Rejection(
            401, "bad_timestamp", f"{signing.HEADER_TIMESTAMP} must be Unix seconds (an integer)"
        ) from None
    signature = values[signing.HEADER_SIGNATURE]
    if not _SIGNATURE.match(signature):
        raise Rejection(
            401, "bad_signature", f"{signing.HEADER_SIGNATURE} must be 64 hexadecimal digits"
        )
    return AuthHeaders(device_id, timestamp, signature.lower())


def check_window(timestamp: int, now: float, window_s: float) -> None:
    """401 with the server's time when the request's timestamp is outside the window."""
    skew = timestamp - now
    if abs(skew) > window_s:
        where = "ahead of" if skew > 0 else "behind"
        raise Rejection(
            401,
            "stale_timestamp",
            f"{signing.HEADER_TIMESTAMP} {timestamp} is {abs(skew):.0f} s {where} the server "
            f"clock (window {window_s:.0f} s); re-sign with server_time or the Date header",
            extra={"server_time": int(now)},
        )


def check_signature(keys: list[str], method: str, path: str, auth: AuthHeaders, body: bytes) -> int:
    """Index of the key that signed the request (0 current, 1 previous), else 401."""
    for index, key_hex in enumerate(keys):
        if signing.verify(
            key_hex, method, path, auth.timestamp, auth.device_id, body, auth.signature
        ):
            return index
    raise Rejection(
        401,
        "bad_signature",
        f"signature does not match method, path, timestamp, device {auth.device_id} and the "
        "SHA-256 of the body as sent",
    )


def check_content_headers(content_encoding: str | None, content_type: str | None) -> str:
    """The body's encoding (``gzip`` or ``identity``), else 415."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("gzip", "identity"):
        raise Rejection(
            415,
            "unsupported_encoding",
            f"Content-Encoding {content_encoding!r} is not supported (gzip or identity)",
        )
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media != "application/json":
        raise Rejection(
            415, "unsupported_media_type", f"Content-Type {content_type!r}: send application/json"
        )
    return encoding


def check_declared_length(content_length: str | None, limit: int) -> None:
    """413 from the Content-Length header alone, before any of the body is read."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise Rejection(400, "bad_content_length", "Content-Length is not a number") from None
    if declared > limit:
        raise Rejection(
            413, "body_too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes"
        )


def inflate(body: bytes, encoding: str, inflated_limit: int) -> bytes:
    """The JSON text of a gzip or identity body; 400 if the gzip is malformed, 413 if too big."""
    if encoding != "gzip":
        return body
    try:
        return gunzip_limited(body, inflated_limit)
    except PayloadTooLarge as exc:
        raise Rejection(413, "body_too_large", str(exc)) from None
    except PayloadError as exc:
        raise Rejection(400, "malformed_gzip", str(exc)) from None


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``, else 400 naming what is wrong."""
    if _fast_json is not None:
        # msgspec parses a batch about 3x faster than json.loads and gives the same objects
        # for strict JSON. Whatever it refuses (NaN, 1e400, lone surrogates, a BOM, UTF-16,
        # deep nesting, malformed text) goes to json.loads, which decides as it always did and
        # words the error: the service accepts exactly what it accepted before.
        try:
            return _fast_json(body)
        except _FAST_JSON_REFUSALS:
            pass
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise Rejection(400, "malformed_json", f"body is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise Rejection(
            400, "malformed_json", f"body is not JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    except (RecursionError, ValueError) as exc:
        raise Rejection(400, "malformed_json", f"body is not usable JSON: {exc}") from None


def decode_json(body: bytes, encoding: str, inflated_limit: int) -> Any:
    """The JSON document in a gzip or identity body; 400 if malformed, 413 if it inflates too far."""
    return parse_json(inflate(body, encoding, inflated_limit))


def check_batch(batch: Any, device_id: str, stream: str) -> None:
    """The batch contract, and that it belongs to the authenticated device and its stream."""
    try:
        check_batch_dict(batch)
    except ContractError as exc:
        raise Rejection(422, "contract_violation", str(exc)) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # Shapes check_batch_dict does not name (e.g. a non-string key): still the sender's fault.
        raise Rejection(422, "contract_violation", f"batch: {type(exc).__name__}: {exc}") from None
    if batch["device_id"] != device_id:
        raise Rejection(
            422,
            "wrong_device",
            f"batch: device_id {batch['device_id']!r} is not the signing device {device_id!r}",
        )
    if batch["stream"] != stream:
        raise Rejection(
            422,
            "wrong_stream",
            f"batch: stream {batch['stream']!r} is not device {device_id}'s stream {stream!r}",
        )


def check_times(
    batch: dict[str, Any], now: datetime, bounds: Plausibility
) -> tuple[datetime, datetime]:
    """422 for a reading time that cannot be true (see schemas/data/ingest_plausibility.toml).

    ``device_time`` (the device's ``data_time`` with its offset) may not be after the box's
    ``received_at`` by more than the tolerance, nor ``received_at`` after the server's clock;
    no time may be before the earliest year.

    Returns the earliest and latest ``device_time`` (the landing index's data time span), so the
    times of a batch are parsed once per request. Each reading is tested with one combined
    condition; only a reading that fails it goes through :func:`_check_reading_times`, which
    names the rule it breaks.
    """
    tolerance = timedelta(minutes=bounds.max_future_min)
    latest_received = now + tolerance
    earliest_year = bounds.earliest_year
    parse = datetime.fromisoformat
    first = last = None
    for i, reading in enumerate(batch["readings"]):
        try:
            measured = parse(reading["device_time"])
            received = parse(reading["received_at"])
            if (
                measured - received > tolerance
                or received > latest_received
                or measured.year < earliest_year
                or received.year < earliest_year
                or int(reading["data_time"][:4]) < earliest_year
            ):
                _check_reading_times(f"readings[{i}]", reading, now, bounds)
            if first is None or measured < first:
                first = measured
            if last is None or measured > last:
                last = measured
        except OverflowError:  # e.g. 9999-12-31T23:59-08:00 has no UTC instant
            raise Rejection(
                422, "implausible_time", f"readings[{i}]: a time is outside the calendar"
            ) from None
    if first is None or last is None:
        raise Rejection(422, "contract_violation", "batch: no readings")
    return first, last


def checked_batch(
    body: bytes,
    encoding: str,
    device_id: str,
    stream: str,
    bounds: Plausibility,
    inflated_limit: int,
    now: datetime | None = None,
    note: Any = None,
    *,
    fast: bool = True,
) -> tuple[dict[str, Any], tuple[datetime, datetime]]:
    """A request body decoded and checked: the batch and its data time span, else a Rejection.

    This is all the per-reading work of a request (gunzip, JSON, the batch contract, the time
    checks), each done once. ``note.batch`` gets the batch id as soon as it is known, so the
    access log names the batch of a refused upload too.

    With ``fast`` (and msgspec installed) :func:`ingest.fastbatch.accept` tries first; it only
    ever accepts a batch the reference path below accepts too, with the same span. Anything it
    cannot vouch for goes through the reference path: ``schemas.reading.check_batch_dict`` on
    the decoded dict, then :func:`check_times`, which decide and word every refusal. The
    accepted batch is then a dict of ``device_id``, ``stream``, ``batch_id`` and ``readings``
    (whose items are only to be counted).
    """
    text = inflate(body, encoding, inflated_limit)
    now = now or datetime.now(UTC)
    if fast and _fast_accept is not None:
        accepted = _fast_accept(text, device_id, stream, bounds, now)
        if accepted is not None:
            if note is not None:
                note.batch = accepted[0]["batch_id"]
            return accepted
    batch = parse_json(text)
    if note is not None and isinstance(batch, dict) and isinstance(batch.get("batch_id"), str):
        note.batch = batch["batch_id"][:64]
    check_batch(batch, device_id, stream)
    return batch, check_times(batch, now, bounds)


def _check_reading_times(
    where: str, reading: dict[str, Any], now: datetime, bounds: Plausibility
) -> None:
    tolerance_s = bounds.max_future_min * 60
    if int(reading["data_time"][:4]) < bounds.earliest_year:
        raise Rejection(
            422,
            "implausible_time",
            f"{where}: data_time {reading['data_time']} is before {bounds.earliest_year}",
        )
    measured = datetime.fromisoformat(reading["device_time"])
    received = datetime.fromisoformat(reading["received_at"])
    for name, moment in (("device_time", measured), ("received_at", received)):
        if moment.year < bounds.earliest_year:
            raise Rejection(
                422,
                "implausible_time",
                f"{where}: {name} {reading[name]} is before {bounds.earliest_year}",
            )
    ahead = (measured - received).total_seconds()
    if ahead > tolerance_s:
        raise Rejection(
            422,
            "implausible_time",
            f"{where}: data_time {reading['data_time']} ({reading['device_time']}) is "
            f"{ahead / 60:.0f} min after received_at {reading['received_at']} "
            f"(tolerance {bounds.max_future_min:g} min)",
        )
    if (received - now).total_seconds() > tolerance_s:
        raise Rejection(
            422,
            "implausible_time",
            f"{where}: received_at {reading['received_at']} is in the future "
            f"(server time {now.isoformat(timespec='seconds')})",
        )


class TokenBuckets:
    """Per-key token buckets (in-process: with N replicas a device may reach N × the rate)."""

    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic) -> None:  # noqa: ANN001
        self.rate = rate_per_s
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 if a token was taken, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def rate_limited(wait_s: float, device_id: str) -> Rejection:
    retry_after = max(1, math.ceil(wait_s))
    return Rejection(
        429,
        "rate_limited",
        f"device {device_id} is over its request rate; retry after {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )
