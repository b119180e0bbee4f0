"""The box says it is alive: queue, ports, clocks, disk, version, alarms.

One heartbeat per enrolled device (each is signed with that device's key, as the server expects)
every ``heartbeat_interval_s``. The same state is written to ``<data_dir>/state.json`` so that
``lantian-agent status`` can show it without talking to the running process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.uplink import Uplink
from agents.version import VERSION

log = logging.getLogger("lantian.agent.heartbeat")

#: Free space under which the heartbeat raises an alarm even if the queue is far from its cap.
LOW_DISK_BYTES = 64 * 1024 * 1024


def disk_free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def build_payload(
    device_id: str, box_id: str, snapshot: dict[str, Any], device_offsets: dict[str, float | None]
) -> dict[str, Any]:
    """The contract's heartbeat body for one device, from a box snapshot (pure)."""
    per_device = snapshot.get("devices", {}).get(device_id, {})
    return {
        "device_id": device_id,
        "box_id": box_id,
        "queue_depth": snapshot["queue"]["queue_depth"],
        "oldest_unsent": snapshot["queue"]["oldest_unsent"],
        "ports": snapshot["ports"],
        "clock_offset_s": device_offsets.get(device_id),
        "disk_free_bytes": snapshot["disk_free_bytes"],
        "version": VERSION,
        "alarms": snapshot["alarms"],
        "device_queue_depth": per_device.get("queue_depth", 0),
        "box_clock": snapshot["box_clock"],
        "sent_at": snapshot["at"],
    }


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically replace the state file (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class Heartbeat:
    """Periodic heartbeats; ``beat()`` sends one round now and returns the per-device outcome."""

    def __init__(
        self,
        box_id: str,
        uplink: Uplink,
        snapshot: Callable[[], dict[str, Any]],
        device_offsets: Callable[[], dict[str, float | None]],
        state_path: Path,
        interval_s: float = 300.0,
    ) -> None:
        self.box_id = box_id
        self.uplink = uplink
        self.snapshot = snapshot
        self.device_offsets = device_offsets
        self.state_path = state_path
        self.interval_s = interval_s
        self.last_sent: dict[str, dict[str, Any]] = {}

    def beat(self) -> dict[str, str]:
        snap = self.snapshot()
        offsets = self.device_offsets()
        outcomes: dict[str, str] = {}
        for device_id in sorted(self.uplink.keys):
            payload = build_payload(device_id, self.box_id, snap, offsets)
            result = self.uplink.heartbeat(device_id, payload)
            outcomes[device_id] = result.outcome if result.delivered else result.detail
            self.last_sent[device_id] = {
                "at": snap["at"],
                "ok": result.delivered,
                "detail": "" if result.delivered else result.detail,
            }
            if not result.delivered:
                log.warning("heartbeat for %s not delivered: %s", device_id, result.detail)
        for alarm in snap["alarms"]:
            log.warning("alarm: %s", alarm)
        self.save(snap)
        return outcomes

    def save(self, snap: dict[str, Any] | None = None) -> None:
        state = dict(snap or self.snapshot())
        state["last_heartbeat"] = self.last_sent
        try:
            write_state(self.state_path, state)
        except OSError as exc:
            log.error("cannot write %s: %s", self.state_path, exc)

    def run(self, stop: threading.Event, state_every_s: float = 10.0) -> None:
        """Beat every ``interval_s``; refresh the local state file more often."""
        next_beat = 0.0
        waited = 0.0
        while not stop.is_set():
            if waited >= next_beat:
                try:
                    self.beat()
                except Exception:
                    log.exception("heartbeat failed; continuing")
                next_beat = waited + self.interval_s
            else:
                self.save()
            step = min(state_every_s, max(0.1, next_beat - waited))
            if stop.wait(step):
                break
            waited += step
        self.save()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
