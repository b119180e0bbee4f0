"""The uplink against a real HTTP server on 127.0.0.1 answering from a script."""

from __future__ import annotations

import gzip
import random
import threading
import time
from email.utils import formatdate

import pytest
from agent_testkit import CEMS_MN, Reply, ScriptedServer, free_port_url, make_reading, minute_times

from agents.uplink import Uplink, backoff_delay, parse_retry_after, server_offset
from schemas.reading import Batch
from schemas.signing import (
    HEADER_DEVICE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    derive_key,
    verify,
)

KEY = derive_key("test-secret", CEMS_MN)


class RecordingStop(threading.Event):
    """A stop event whose waits return at once and are recorded (no real sleeping)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return False


def make_batch(n: int = 3) -> Batch:
    readings = [make_reading(data_time=t).to_dict() for t in minute_times("20171101080000", n)]
    return Batch(device_id=CEMS_MN, stream="cems", readings=readings, agent_version="test")


def uplink_for(server: ScriptedServer, **kwargs) -> tuple[Uplink, RecordingStop]:
    stop = RecordingStop()
    options = {"rng": random.Random(7), "stop": stop}
    options.update(kwargs)
    return Uplink(server.url, {CEMS_MN: KEY}, **options), stop


def assert_signed(seen, path: str = "/v1/batches", key: str = KEY) -> int:
    ts = int(seen.headers[HEADER_TIMESTAMP])
    assert seen.headers[HEADER_DEVICE] == CEMS_MN
    assert verify(key, "POST", path, ts, CEMS_MN, seen.body, seen.headers[HEADER_SIGNATURE])
    return ts


def test_landed_batch_is_gzipped_and_signed():
    batch = make_batch()
    with ScriptedServer() as server:
        uplink, stop = uplink_for(server)
        result = uplink.send(batch)
    assert result.outcome == "landed" and result.delivered and result.attempts == 1
    (seen,) = server.batches()
    assert seen.headers["Content-Encoding"] == "gzip"
    assert seen.headers["Content-Type"] == "application/json"
    assert gzip.decompress(seen.body) == batch.to_json()
    ts = assert_signed(seen)
    assert abs(ts - time.time()) < 5
    assert stop.waits == []


def test_duplicate_is_delivered_too():
    batch = make_batch()
    with ScriptedServer() as server:
        uplink, _ = uplink_for(server)
        assert uplink.send(batch).outcome == "landed"
        second = uplink.send(batch)
    assert second.outcome == "duplicate" and second.delivered
    first_seen, second_seen = server.batches()
    # Resent within the same second, the request still differs (no false replay refusal).
    assert first_seen.headers[HEADER_SIGNATURE] != second_seen.headers[HEADER_SIGNATURE]
    assert first_seen.body == second_seen.body  # deterministic gzip: same bytes each time


def test_429_honours_retry_after():
    with ScriptedServer() as server:
        server.script = [
            Reply(429, {"error": "rate_limited", "detail": "slow down"}, {"Retry-After": "7"})
        ]
        uplink, stop = uplink_for(server)
        result = uplink.send(make_batch())
    assert result.outcome == "landed" and result.attempts == 2
    assert len(stop.waits) == 1 and stop.waits[0] >= 7.0


def test_5xx_backs_off_exponentially_then_gives_the_batch_back():
    with ScriptedServer() as server:
        server.script = [Reply(500, {"error": "internal_error", "detail": "x"})] * 4
        uplink, stop = uplink_for(server, max_attempts=4, backoff_base_s=1.0, backoff_cap_s=300)
        result = uplink.send(make_batch())
    assert result.outcome == "retry" and result.status == 500 and result.attempts == 4
    assert len(server.batches()) == 4
    # waits after attempts 1..3 (then the 4th result's delay is handed back)
    ceilings = [1, 2, 4]
    assert len(stop.waits) == 3
    for wait, ceiling in zip(stop.waits, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert 4 <= result.retry_after_s <= 8


def test_401_with_skewed_server_clock_is_resigned_at_once():
    skewed = formatdate(time.time() + 3600, usegmt=True)  # the box is an hour behind
    with ScriptedServer() as server:
        server.script = [
            Reply(401, {"error": "stale_timestamp", "detail": "1 h behind"}, date=skewed),
            Reply(200, date=skewed),
        ]
        uplink, stop = uplink_for(server)
        result = uplink.send(make_batch())
    assert result.outcome == "landed"
    first, second = server.batches()
    t1, t2 = assert_signed(first), assert_signed(second)
    assert 3590 <= t2 - t1 <= 3610
    assert stop.waits == []  # re-signed at once, no backoff
    assert uplink.clock_offset_s == pytest.approx(3600, abs=3)


def test_401_server_time_in_body_is_used():
    with ScriptedServer() as server:
        ahead = int(time.time()) - 900
        server.script = [
            Reply(401, {"error": "stale_timestamp", "detail": "ahead", "server_time": ahead})
        ]
        uplink, _ = uplink_for(server)
        assert uplink.send(make_batch()).delivered
    first, second = server.batches()
    assert assert_signed(second) - assert_signed(first) == pytest.approx(-900, abs=3)


def test_401_not_caused_by_the_clock_backs_off_and_says_why():
    with ScriptedServer() as server:
        server.script = [Reply(401, {"error": "bad_signature", "detail": "no match"})] * 2
        uplink, stop = uplink_for(server, max_attempts=2)
        result = uplink.send(make_batch())
    assert result.outcome == "retry" and result.status == 401
    assert "bad_signature" in result.detail and "enrolment" in result.detail
    assert len(stop.waits) == 1


@pytest.mark.parametrize("status", [400, 403, 413, 415, 422])
def test_permanent_refusals_go_to_dead_letter(status):
    with ScriptedServer() as server:
        server.script = [Reply(status, {"error": "contract", "detail": "readings[0]: missing raw"})]
        uplink, stop = uplink_for(server)
        result = uplink.send(make_batch())
    assert result.outcome == "dead" and result.status == status
    assert "readings[0]: missing raw" in result.detail
    assert len(server.batches()) == 1 and stop.waits == []


def test_unknown_statuses_are_retried_not_dropped():
    with ScriptedServer() as server:
        server.script = [Reply(404, {"error": "not_found", "detail": "wrong URL"})]
        uplink, _ = uplink_for(server, max_attempts=1)
        result = uplink.send(make_batch())
    assert result.outcome == "retry" and result.status == 404


def test_server_down_is_retryable():
    stop = RecordingStop()
    uplink = Uplink(free_port_url(), {CEMS_MN: KEY}, max_attempts=2, stop=stop, timeout=2)
    result = uplink.send(make_batch())
    assert result.outcome == "retry" and result.status is None
    assert "cannot reach" in result.detail
    assert len(stop.waits) == 1


def test_no_key_means_wait_not_drop():
    with ScriptedServer() as server:
        uplink = Uplink(server.url, {})
        result = uplink.send(make_batch())
    assert result.outcome == "retry" and "enroll" in result.detail
    assert server.seen == []


def test_server_url_prefix_is_signed():
    with ScriptedServer() as server:
        uplink = Uplink(server.url + "/lantian/", {CEMS_MN: KEY})
        assert uplink.send(make_batch()).delivered
    (seen,) = server.batches()
    assert seen.path == "/lantian/v1/batches"
    assert_signed(seen, path="/lantian/v1/batches")


def test_heartbeat_enroll_and_health():
    with ScriptedServer() as server:
        uplink, _ = uplink_for(server)
        beat = uplink.heartbeat(CEMS_MN, {"device_id": CEMS_MN, "queue_depth": 3})
        enrolled = uplink.enroll(CEMS_MN, "CODE-1234", KEY)
        healthy, detail = uplink.healthz()
        server.script = [Reply(401, {"error": "bad_code", "detail": "code used"})]
        refused = uplink.enroll(CEMS_MN, "CODE-1234", KEY)
    heartbeat, enroll, health, _ = server.seen
    assert beat.delivered and heartbeat.path == "/v1/heartbeats"
    assert "Content-Encoding" not in heartbeat.headers
    assert heartbeat.json() == {"device_id": CEMS_MN, "queue_depth": 3}
    assert_signed(heartbeat, path="/v1/heartbeats")
    assert enrolled.delivered
    assert enroll.json() == {"device_id": CEMS_MN, "enrolment_code": "CODE-1234", "key": KEY}
    assert HEADER_SIGNATURE not in enroll.headers
    assert healthy and health.path == "/healthz" and "ok" in detail
    assert refused.outcome == "dead" and "bad_code" in refused.detail


def test_retry_after_and_date_parsing():
    now = 1_500_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0
    assert parse_retry_after("10000000", now) == 3600  # capped
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert server_offset(formatdate(now + 42, usegmt=True), now) == pytest.approx(42)
    assert server_offset("garbage", now) is None


def test_backoff_delay_bounds():
    rng = random.Random(1)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (10, 60)]:
        delays = [backoff_delay(attempt, 2.0, 60.0, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant


def test_bad_server_url_is_refused():
    with pytest.raises(ValueError, match="http"):
        Uplink("ingest.example.gov.cn", {})
