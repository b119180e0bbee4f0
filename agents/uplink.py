"""Signed, gzip-compressed uploads to the ingest service (``docs/ARCHITECTURE.md`` → Wire).

``Uplink.send(batch)`` answers what the queue should do with the batch:

- ``landed`` / ``duplicate``: the server holds it durably → ``ack``;
- ``dead``: refused for good (400, 403, 413, 415, 422) → ``dead_letter``;
- ``retry``: keep it and try later (network error, 401, 408, 429, 5xx, any other status); the
  result says when (``retry_after_s``: exponential backoff with jitter, at least Retry-After).

A 401 can mean the box clock is off: the server's ``Date`` header gives the offset, the request is
signed again with corrected time and retried at once. Keys are never logged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from schemas.reading import Batch
from schemas.signing import signed_headers

log = logging.getLogger("lantian.agent.uplink")

BATCH_PATH = "/v1/batches"
HEARTBEAT_PATH = "/v1/heartbeats"
ENROLL_PATH = "/v1/enroll"
HEALTH_PATH = "/healthz"

#: Statuses after which resending the same bytes cannot succeed (the contract's list).
PERMANENT_STATUSES = frozenset({400, 403, 413, 415, 422})

MAX_RETRY_AFTER_S = 3600.0  # a server asking for more is probably wrong; check back within an hour

OUTCOMES = ("landed", "duplicate", "retry", "dead")


@dataclass
class Result:
    """What happened to one upload and what to do next."""

    outcome: str  # landed | duplicate | retry | dead
    status: int | None = None
    detail: str = ""
    retry_after_s: float | None = None
    attempts: int = 0
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def delivered(self) -> bool:
        return self.outcome in ("landed", "duplicate")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from ``now``: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)


def server_offset(date_header: str | None, local_now: float) -> float | None:
    """Seconds the server clock is ahead of the box clock, from an HTTP ``Date`` header."""
    if not date_header:
        return None
    try:
        when = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp() - local_now


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries from many boxes
    spread out yet never collapse to zero. ``attempt`` counts from 1."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def network_reason(exc: BaseException) -> str:
    """A short reason for a network failure ("[Errno 111] Connection refused", "timed out")
    instead of urllib3's nested repr."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if found:
        return found.group().strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return f"{exc.__class__.__name__}: {text[:160]}"


def error_text(response: requests.Response) -> str:
    """``error: detail`` from the contract's 4xx body, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and ("error" in data or "detail" in data):
        return f"{data.get('error', '?')}: {data.get('detail', '')}"
    return (response.text or "")[:200].strip() or response.reason or ""


class Uplink:
    """HTTP client for one ingest server; one signing key per device."""

    def __init__(
        self,
        server_url: str,
        keys: dict[str, str],
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        *,
        max_attempts: int = 4,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 300.0,
        skew_tolerance_s: float = 5.0,
        agent_version: str = "",
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if not server_url.startswith(("http://", "https://")):
            raise ValueError(f"server URL {server_url!r} must start with http:// or https://")
        self.server_url = server_url.rstrip("/")
        self._base_path = urlsplit(self.server_url).path.rstrip("/")
        self.keys = dict(keys)
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.skew_tolerance_s = skew_tolerance_s
        self.agent_version = agent_version
        self._stop = stop or threading.Event()
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        #: seconds to add to the box clock when signing (0 while the box agrees with the server)
        self.clock_offset_s = 0.0
        #: last measured server-minus-box offset, whatever its size (for the heartbeat)
        self.measured_offset_s: float | None = None
        self._recent_signed: dict[str, deque[tuple[int, str]]] = {}
        self.last_contact: float | None = None

    # ------------------------------------------------------------------ signing and posting

    def _timestamp(self, device_id: str, body: bytes) -> int:
        """Signing time; never the same (device, body, second) twice, which the server would
        take for a replay when a batch is resent within one second."""
        ts = int(self._clock() + self.clock_offset_s)
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            recent = self._recent_signed.setdefault(device_id, deque(maxlen=64))
            while (ts, digest) in recent:
                ts += 1
            recent.append((ts, digest))
        return ts

    def _note_date(self, response: requests.Response) -> bool:
        """Learn the clock offset from ``Date`` (or a 401's ``server_time``); True if the
        signing offset changed."""
        now = self._clock()
        offset = server_offset(response.headers.get("Date"), now)
        if response.status_code == 401:
            try:
                server_time = response.json().get("server_time")
            except (ValueError, AttributeError):
                server_time = None
            if isinstance(server_time, int | float) and not isinstance(server_time, bool):
                offset = float(server_time) - now
        if offset is None:
            return False
        self.measured_offset_s = offset
        wanted = offset if abs(offset) > self.skew_tolerance_s else 0.0
        if abs(wanted - self.clock_offset_s) > self.skew_tolerance_s or (
            wanted == 0.0 and self.clock_offset_s != 0.0
        ):
            if wanted:
                log.warning(
                    "box clock differs from the server by %.0f s; signing with the server's "
                    "time (check NTP on the box)",
                    offset,
                )
            else:
                log.info("box clock agrees with the server again (%.1f s)", offset)
            self.clock_offset_s = wanted
            return True
        return False

    def post_signed(
        self, path: str, device_id: str, body: bytes, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """POST ``body`` signed with the device's key (raises KeyError without a key)."""
        key = self.keys[device_id]
        ts = self._timestamp(device_id, body)
        # Sign the path exactly as requested (a server URL may carry a prefix).
        full_path = self._base_path + path
        all_headers = {"Content-Type": "application/json", "User-Agent": self._user_agent()}
        all_headers.update(headers or {})
        all_headers.update(signed_headers(key, "POST", full_path, ts, device_id, body))
        response = self.session.post(
            self.server_url + path, data=body, headers=all_headers, timeout=self.timeout
        )
        self.last_contact = self._clock()
        return response

    def _user_agent(self) -> str:
        return f"lantian-agent/{self.agent_version or 'dev'}"

    # ------------------------------------------------------------------ batches

    def send(self, batch: Batch) -> Result:
        """Upload one batch, retrying retryable failures up to ``max_attempts`` times."""
        device = batch.device_id
        if device not in self.keys:
            return Result(
                "retry",
                detail=f"no signing key for device {device}: run `lantian-agent enroll` for it",
                retry_after_s=self.backoff_cap_s,
            )
        body = gzip.compress(batch.to_json(), mtime=0)
        skew_retried = False
        attempt = 0
        while True:
            attempt += 1
            result = self._attempt(batch, body)
            result.attempts = attempt
            if result.outcome != "retry":
                return result
            if result.status == 401 and result.response.get("_skew_fixed") and not skew_retried:
                skew_retried = True  # the clock was the problem: re-sign now, once
                attempt -= 1
                continue
            delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_cap_s, self._rng)
            if result.retry_after_s is not None:
                delay = max(delay, result.retry_after_s)
            result.retry_after_s = delay
            log.warning(
                "batch %s (device %s, %d readings) attempt %d: %s; retry in %.1f s",
                batch.batch_id,
                device,
                len(batch.readings),
                attempt,
                result.detail,
                delay,
            )
            if attempt >= self.max_attempts or self._stop.wait(delay):
                return result

    def _attempt(self, batch: Batch, body: bytes) -> Result:
        try:
            response = self.post_signed(
                BATCH_PATH, batch.device_id, body, {"Content-Encoding": "gzip"}
            )
        except requests.RequestException as exc:
            return Result("retry", detail=f"cannot reach {self.server_url}: {network_reason(exc)}")
        skew_fixed = self._note_date(response)
        return classify(response, batch.batch_id, self._clock(), skew_fixed)

    # ------------------------------------------------------------------ other endpoints

    def heartbeat(self, device_id: str, payload: dict[str, Any]) -> Result:
        """POST one heartbeat (plain JSON, signed); a single attempt, the next one is soon."""
        if device_id not in self.keys:
            return Result("retry", detail=f"no signing key for device {device_id}")
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            response = self.post_signed(HEARTBEAT_PATH, device_id, body)
        except requests.RequestException as exc:
            return Result("retry", detail=f"cannot reach {self.server_url}: {network_reason(exc)}")
        self._note_date(response)
        if 200 <= response.status_code < 300:
            return Result("landed", status=response.status_code, attempts=1)
        outcome = "dead" if response.status_code in PERMANENT_STATUSES else "retry"
        return Result(outcome, response.status_code, error_text(response), attempts=1)

    def enroll(self, device_id: str, enrolment_code: str, key_hex: str) -> Result:
        """Register the device's derived key with its one-time enrolment code (unsigned)."""
        body = {"device_id": device_id, "enrolment_code": enrolment_code, "key": key_hex}
        try:
            response = self.session.post(
                self.server_url + ENROLL_PATH,
                json=body,
                headers={"User-Agent": self._user_agent()},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return Result("retry", detail=f"cannot reach {self.server_url}: {network_reason(exc)}")
        if 200 <= response.status_code < 300:
            return Result("landed", status=response.status_code, attempts=1)
        return Result("dead", response.status_code, error_text(response), attempts=1)

    def healthz(self) -> tuple[bool, str]:
        """Is the server up? (True, text) or (False, what went wrong)."""
        try:
            response = self.session.get(self.server_url + HEALTH_PATH, timeout=self.timeout)
        except requests.RequestException as exc:
            return False, f"cannot reach {self.server_url}: {network_reason(exc)}"
        self._note_date(response)
        if response.status_code == 200:
            return True, (response.text or "ok").strip()[:200]
        return False, f"{HEALTH_PATH} answered {response.status_code}: {error_text(response)}"


def classify(
    response: requests.Response, batch_id: str, now: float, skew_fixed: bool = False
) -> Result:
    """Map an HTTP answer to landed / duplicate / retry / dead (pure, for tests and doctor)."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        state = data.get("status")
        if state not in ("landed", "duplicate"):
            # Any 2xx means durable by contract; an odd body is worth a log line, not a resend.
            log.warning("batch %s: %d with unexpected body %r", batch_id, status, data)
            state = "landed"
        if data.get("batch_id") not in (None, batch_id):
            log.warning("batch %s: server answered for batch %s", batch_id, data.get("batch_id"))
        return Result(
            state, status, f"{state} ({data.get('readings', '?')} readings)", None, 0, data
        )
    detail = f"{status} {error_text(response)}"
    if status in PERMANENT_STATUSES:
        return Result("dead", status, detail)
    result = Result("retry", status, detail)
    result.retry_after_s = parse_retry_after(response.headers.get("Retry-After"), now)
    if status == 401:
        result.response = {"_skew_fixed": skew_fixed}
        if not skew_fixed:
            result.detail += " (not clock skew: check the device's enrolment and key)"
    return result
