"""Draining: live data is never starved by a backlog, the backlog is paced, devices back off alone."""

from __future__ import annotations

import logging

import pytest
from agent_testkit import CEMS_MN, CEMS_MN2, Reply, ScriptedServer, make_reading, minute_times

from agents.drain import Drainer, TokenBucket
from agents.queue import DurableQueue
from agents.uplink import Uplink
from schemas.signing import derive_key


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


KEYS = {CEMS_MN: derive_key("a", CEMS_MN), CEMS_MN2: derive_key("b", CEMS_MN2)}


def test_token_bucket():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock)
    assert bucket.available() == 20
    bucket.take(25)
    assert bucket.available() == -5  # debt from a batch bigger than the tokens
    assert bucket.wait_s(1) == pytest.approx(0.6)
    clock.t += 1.0
    assert bucket.available() == pytest.approx(5)
    clock.t += 100
    assert bucket.available() == 20  # never more than the burst
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


@pytest.fixture
def setup(tmp_path):
    wall = FakeClock(1_000_000.0)
    mono = FakeClock()
    queue = DurableQueue(
        tmp_path / "q.sqlite", 10**8, live_window_s=300, clock=wall, ballast_bytes=0
    )
    with ScriptedServer() as server:
        uplink = Uplink(server.url, KEYS, max_attempts=1)
        yield queue, server, uplink, wall, mono
    queue.close()


def test_live_and_backlog_alternate_and_backlog_is_paced(setup):
    queue, server, uplink, wall, mono = setup
    backlog = [make_reading(data_time=t) for t in minute_times("20171101000000", 40)]
    queue.put(backlog)  # queued during an outage
    wall.t += 7200
    live = [make_reading(data_time=t) for t in minute_times("20171101020000", 3)]
    queue.put(live)
    drainer = Drainer(
        queue, uplink, batch_max_readings=15, backlog_rate=10, backlog_burst=10, clock=mono
    )
    sent = []
    while drainer.step():
        sent.append(server.batches()[-1].json())
        if len(sent) == 1:
            # fresh data keeps arriving while the backlog drains
            queue.put([make_reading(data_time="20171101020300")])
    # live (3) → backlog (10, the burst) → live (the new one); then the bucket is empty.
    assert [len(b["readings"]) for b in sent] == [3, 10, 1]
    assert sent[0]["readings"][0]["data_time"] == "20171101020000"
    assert sent[1]["readings"][0]["data_time"] == "20171101000000"  # backlog oldest first
    assert drainer.lane_counts == {"live": 2, "backlog": 1}
    assert drainer.step() is False  # nothing live, backlog waits for tokens
    assert drainer.next_wakeup_s() == pytest.approx(0.1)  # one token at 10/s
    mono.t += 1.5  # 15 tokens
    assert drainer.step() is True
    assert len(server.batches()[-1].json()["readings"]) == 10  # capped by the burst
    for _ in range(10):  # paced: one burst per second of clock
        mono.t += 1.0
        drainer.step()
    assert queue.depth() == 0
    landed = [r["id"] for b in server.batches() for r in b.json()["readings"]]
    assert sorted(landed) == sorted(
        {r.id for r in backlog + live} | {make_reading(data_time="20171101020300").id}
    )


def test_a_refused_device_backs_off_without_blocking_others(setup, caplog):
    queue, server, uplink, wall, mono = setup

    def decide(seen):
        if seen.headers.get("X-Lantian-Device") == CEMS_MN:
            return Reply(401, {"error": "device_not_enrolled", "detail": "no key registered"})
        return None

    server.decide = decide
    queue.put([make_reading(CEMS_MN, data_time=t) for t in minute_times("20171101080000", 2)])
    queue.put([make_reading(CEMS_MN2, data_time=t) for t in minute_times("20171101080000", 2)])
    drainer = Drainer(queue, uplink, clock=mono)
    assert drainer.step() and drainer.step()
    assert queue.depth(CEMS_MN) == 2 and queue.depth(CEMS_MN2) == 0
    assert drainer.step() is False  # A is backing off
    assert drainer.status()["backing_off"] == [CEMS_MN]
    (pending,) = queue.pending_batches()
    assert pending.attempts == 1 and "device_not_enrolled" in pending.last_error
    mono.t += 3600
    server.decide = None
    assert drainer.step() is True
    assert queue.depth() == 0


def test_dead_letters_and_devices_without_keys(tmp_path, caplog):
    queue = DurableQueue(tmp_path / "q.sqlite", 10**8, ballast_bytes=0)
    with ScriptedServer() as server:
        server.script = [Reply(422, {"error": "invalid_batch", "detail": "readings[0]: bad time"})]
        uplink = Uplink(server.url, {CEMS_MN: KEYS[CEMS_MN]}, max_attempts=1)
        queue.put([make_reading(CEMS_MN, data_time="20171101080000")])
        queue.put([make_reading(CEMS_MN2, data_time="20171101080000")])
        drainer = Drainer(queue, uplink)
        with caplog.at_level(logging.WARNING):
            assert drainer.step() is True
            assert drainer.step() is False
            assert drainer.step() is False
    (dead,) = queue.dead_letters()
    assert dead.device_id == CEMS_MN and "readings[0]: bad time" in dead.reason
    assert queue.depth(CEMS_MN2) == 1  # kept on disk, never sent without a key
    assert caplog.text.count(f"device {CEMS_MN2} has queued readings but no signing key") == 1
    assert "dead letter" in caplog.text
    queue.close()


def test_a_device_enrolled_while_running_starts_uploading(tmp_path):
    queue = DurableQueue(tmp_path / "q.sqlite", 10**8, ballast_bytes=0)
    mono = FakeClock()
    keys_on_disk: dict[str, str] = {}
    with ScriptedServer() as server:
        uplink = Uplink(server.url, {}, max_attempts=1)
        drainer = Drainer(
            queue, uplink, clock=mono, reload_keys=lambda: dict(keys_on_disk), reload_every_s=30
        )
        queue.put([make_reading(CEMS_MN, data_time="20171101080000")])
        assert drainer.step() is False
        keys_on_disk[CEMS_MN] = KEYS[CEMS_MN]  # `lantian-agent enroll` ran meanwhile
        mono.t += 10
        assert drainer.step() is False  # not re-read more often than every 30 s
        mono.t += 25
        assert drainer.step() is True
    assert queue.depth() == 0 and len(server.batches()) == 1
    queue.close()
