"""Draining the durable queue into the uplink: live data first, backlog at a bounded rate.

After an outage a box may hold days of readings. Replaying them as fast as possible would starve
the live data (the bureau watches it), and a district's worth of boxes coming back at once would
hammer the server. So two lanes, alternated:

- *live*: readings queued within ``live_window_s``; sent as they come;
- *backlog*: older readings, oldest first, paced by a token bucket of ``backlog_rate`` readings
  per second (``burst`` deep).

After a live batch the backlog gets the next turn and the other way round, so neither lane can
starve the other. Devices take turns too, and a device the server refuses (say, not yet enrolled)
backs off on its own without holding up the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agents.queue import DurableQueue, QueueError
from agents.uplink import Result, Uplink

log = logging.getLogger("lantian.agent.drain")


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; may go negative (debt)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def available(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, n: float) -> None:
        self.available()
        self._tokens -= n

    def wait_s(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are available."""
        missing = n - self.available()
        return max(0.0, missing / self.rate)


class Drainer:
    """Send what the queue holds; ``step`` sends at most one batch."""

    def __init__(
        self,
        queue: DurableQueue,
        uplink: Uplink,
        *,
        batch_max_readings: int = 500,
        linger_s: float = 0.0,
        backlog_rate: float = 50.0,
        backlog_burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        reload_keys: Callable[[], dict[str, str]] | None = None,
        reload_every_s: float = 30.0,
    ) -> None:
        self.queue = queue
        self.uplink = uplink
        self.batch_max_readings = batch_max_readings
        self.linger_s = linger_s
        self.bucket = TokenBucket(
            backlog_rate, backlog_burst or max(float(batch_max_readings), backlog_rate), clock
        )
        self._clock = clock
        self._not_before: dict[str, float] = {}
        self._prefer_live = True
        self._turn = 0
        self._warned_no_key: set[str] = set()
        self._reload_keys = reload_keys
        self._reload_every_s = reload_every_s
        self._keys_loaded_at = clock()
        self.sent_batches = 0
        self.sent_readings = 0
        self.dead_batches = 0
        self.last_success_at: float | None = None
        self.last_result: Result | None = None
        self.lane_counts = {"live": 0, "backlog": 0}

    def _maybe_reload_keys(self, waiting: list[str], now: float) -> None:
        """A device enrolled while the agent runs starts uploading without a restart."""
        if self._reload_keys is None or now - self._keys_loaded_at < self._reload_every_s:
            return
        if all(device in self.uplink.keys for device in waiting):
            return
        self._keys_loaded_at = now
        fresh = self._reload_keys()
        added = sorted(set(fresh) - set(self.uplink.keys))
        if added:
            self.uplink.keys.update(fresh)
            self._warned_no_key -= set(added)
            log.info("signing key found for %s: uploading its queued readings", ", ".join(added))

    def _eligible(self, now: float) -> list[str]:
        devices = []
        waiting = self.queue.devices()
        self._maybe_reload_keys(waiting, now)
        for device in waiting:
            if device not in self.uplink.keys:
                if device not in self._warned_no_key:
                    self._warned_no_key.add(device)
                    log.warning(
                        "device %s has queued readings but no signing key: they wait on disk "
                        "until it is enrolled (`lantian-agent enroll`)",
                        device,
                    )
                continue
            if self._not_before.get(device, 0.0) <= now:
                devices.append(device)
        if devices:  # rotate so devices take turns
            k = self._turn % len(devices)
            devices = devices[k:] + devices[:k]
        return devices

    def step(self) -> bool:
        """Send one batch if one is due; False when there was nothing to do now."""
        now = self._clock()
        devices = self._eligible(now)
        if not devices:
            return False
        lanes = ("live", "backlog") if self._prefer_live else ("backlog", "live")
        for lane in lanes:
            for device in devices:
                size = self.batch_max_readings
                if lane == "backlog":
                    tokens = self.bucket.available()
                    if tokens < 1:
                        break
                    size = max(1, min(size, int(tokens)))
                linger = self.linger_s if lane == "live" else 0.0
                batch = self.queue.next_batch(device, size, lane=lane, linger_s=linger)
                if batch is None:
                    continue
                if lane == "backlog":
                    self.bucket.take(len(batch.readings))
                self._prefer_live = lane != "live"
                self._turn += 1
                self.lane_counts[lane] += 1
                self._deliver(batch)
                return True
        return False

    def _deliver(self, batch) -> None:
        result = self.uplink.send(batch)
        self.last_result = result
        device = batch.device_id
        try:
            if result.delivered:
                self.queue.ack(batch.batch_id)
                self._not_before.pop(device, None)
                self.sent_batches += 1
                self.sent_readings += len(batch.readings)
                self.last_success_at = time.time()
                log.info(
                    "batch %s (device %s, %d readings): %s",
                    batch.batch_id,
                    device,
                    len(batch.readings),
                    result.outcome,
                )
            elif result.outcome == "dead":
                self.dead_batches += 1
                self.queue.dead_letter(batch.batch_id, result.detail or f"HTTP {result.status}")
            else:
                self.queue.note_attempt(batch.batch_id, result.detail)
                self._not_before[device] = self._clock() + (result.retry_after_s or 1.0)
        except QueueError as exc:
            # Acknowledging failed (disk full): the batch stays and is resent; the server
            # answers "duplicate", so nothing is lost or doubled.
            log.error("batch %s: %s", batch.batch_id, exc)
            self._not_before[device] = self._clock() + 5.0

    def next_wakeup_s(self, idle_s: float = 1.0) -> float:
        """How long the loop may sleep when ``step`` found nothing."""
        now = self._clock()
        waits = [t - now for t in self._not_before.values() if t > now]
        if self.queue.has_waiting("backlog"):
            waits.append(self.bucket.wait_s(1.0))
        return max(0.05, min([idle_s, *waits]))

    def run(self, stop: threading.Event, idle_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                busy = self.step()
            except QueueError as exc:
                log.error("drain: %s", exc)
                busy = False
            except Exception:
                log.exception("drain: unexpected failure; continuing")
                busy = False
            if not busy:
                stop.wait(self.next_wakeup_s(idle_s))

    def status(self) -> dict[str, Any]:
        last = self.last_result
        return {
            "sent_batches": self.sent_batches,
            "sent_readings": self.sent_readings,
            "dead_batches": self.dead_batches,
            "last_success_at": self.last_success_at,
            "last_outcome": None if last is None else last.outcome,
            "last_detail": None if last is None else last.detail,
            "backing_off": sorted(d for d, t in self._not_before.items() if t > self._clock()),
        }
