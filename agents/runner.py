"""The agent's run loop.

    port thread:  bytes → FrameReader → PacketAssembler → family decoder → clock check
                  → queue.put (committed, fsynced) → then, and only then, the 9014 answer
    drain thread: queue → Uplink (live first, backlog paced) → ack / dead letter
    heartbeat thread: queue, ports, clocks, disk → server and state.json

Ordering is the safety argument: a logger is told "received" (9014) only for data already on
disk, so a SIGKILL or a power cut at any instant loses nothing a logger believes delivered; if the
queue refuses data (full, disk full) the logger gets no answer and keeps the record. Graceful stop
on SIGTERM / SIGINT: ports close, the drain finishes its current request, state is saved.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.clock import BoxClock, ClockWatch, ReplayClockWatch
from agents.config import AgentConfig, DeviceConfig, PortConfig, load_keys, port_problems
from agents.drain import Drainer
from agents.heartbeat import Heartbeat, disk_free_bytes, now_iso, write_state
from agents.hj212 import CrcError, Frame, FrameError, FrameReader, PacketAssembler, build_reply_9014
from agents.queue import DurableQueue, QueueError
from agents.serial_port import PortReader, open_port
from agents.uplink import Uplink
from agents.version import VERSION
from schemas.reading import BEIJING, Reading

log = logging.getLogger("lantian.agent.runner")

Decoder = Callable[[Frame, DeviceConfig, datetime], list[Reading]]

#: Rejected frames kept as evidence, rotated at this size.
REJECTS_MAX_BYTES = 8 * 1024 * 1024


def family_decoder(family: str) -> Decoder:
    """The family's ``decode`` from ``agents.devices`` (imported late: only the run needs it)."""
    from agents.devices import get_family

    return get_family(family).decode


def is_upload(cn: str | None) -> bool:
    """Data uploads (CN 2xxx) are answered with 9014 when they ask for an answer."""
    return bool(cn) and cn.startswith("2") and len(cn) == 4


class RejectLog:
    """Frames and byte runs that produced no reading, as JSON lines: evidence for a technician."""

    def __init__(self, path: Path, max_bytes: int = REJECTS_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def write(self, port: str, kind: str, message: str, raw: bytes) -> None:
        record = {
            "at": now_iso(),
            "port": port,
            "kind": kind,
            "message": message,
            "raw": raw.decode("utf-8", "backslashreplace"),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                if self.path.exists() and self.path.stat().st_size > self.max_bytes:
                    os.replace(self.path, self.path.with_suffix(".jsonl.1"))
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line)
            except OSError as exc:
                log.error("cannot write %s: %s", self.path, exc)


class PortPipeline:
    """Everything between one port's bytes and the durable queue (a ``ByteSink``)."""

    def __init__(
        self,
        port: PortConfig,
        devices: dict[str, DeviceConfig],
        queue: DurableQueue,
        clock_watch: ClockWatch,
        *,
        decoders: dict[str, Decoder],
        write: Callable[[bytes], bool] | None = None,
        rejects: RejectLog | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC).astimezone(BEIJING),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.devices = devices
        self.queue = queue
        self.clock_watch = clock_watch
        self.decoders = decoders
        self.write = write
        self.rejects = rejects
        self._now = now
        self._monotonic = monotonic
        self.reader = FrameReader(crc_mode=port.crc_mode, strict=False)
        self.assembler = PacketAssembler(timeout_s=port.packet_timeout_s)
        self._warned: set[str] = set()
        self._error_counts: dict[str, int] = {}
        self.counts = {
            "frames": 0,
            "readings": 0,
            "new_readings": 0,
            "replies": 0,
            "refused": 0,
            "errors": 0,
            "unknown_device": 0,
        }

    # ByteSink ------------------------------------------------------------

    def feed(self, data: bytes) -> int:
        """Frames of one read are stored in one transaction (one fsync), then answered."""
        good = 0
        decoded: list[tuple[Frame, list[Reading]]] = []
        for item in self.reader.feed(data):
            if isinstance(item, FrameError):
                self._frame_error(item)
            else:
                good += 1
                pair = self._decode(item)
                if pair is not None:
                    decoded.append(pair)
        self._store_and_answer(decoded)
        return good

    def tick(self) -> None:
        for err in self.assembler.expire(self._monotonic()):
            self._frame_error(err)

    def reset(self, reason: str) -> None:
        """The port went away mid-stream: what was buffered is a half frame, reported as such."""
        for err in self.reader.flush():
            self._frame_error(err)

    # frames --------------------------------------------------------------

    def handle_frame(self, frame: Frame) -> list[Reading]:
        """Decode, queue durably, then answer. Returns the readings put (for tests and doctor)."""
        pair = self._decode(frame)
        if pair is None:
            return []
        return pair[1] if self._store_and_answer([pair]) else []

    def _decode(self, frame: Frame) -> tuple[Frame, list[Reading]] | None:
        """A whole (reassembled) frame and its readings; None while a split group is open or
        when the frame cannot be decoded (reported and kept in the rejects file)."""
        self.counts["frames"] += 1
        received_at = self._now()
        merged = self.assembler.add(frame, self._monotonic())
        if merged is None:
            return None  # a packet of an incomplete split group; answered once the group is queued
        for warning in merged.warnings:
            log.debug("port %s: %s", self.port.label, warning)
        device = self._device(merged)
        try:
            readings = self.decoders[device.family](merged, device, received_at)
        except Exception as exc:
            self.counts["errors"] += 1
            log.error(
                "port %s: device %s CN %s: cannot decode: %s",
                self.port.label,
                merged.mn,
                merged.cn,
                exc,
            )
            if self.rejects:
                self.rejects.write(self.port.label, "decode", str(exc), merged.raw)
            return None
        for reading in readings:
            self.clock_watch.observe_reading(reading)
        return merged, readings

    def _store_and_answer(self, decoded: list[tuple[Frame, list[Reading]]]) -> bool:
        """Queue every reading durably, and only then answer the frames that asked."""
        if not decoded:
            return True
        readings = [r for _, rs in decoded for r in rs]
        try:
            self.counts["new_readings"] += self.queue.put(readings) if readings else 0
        except QueueError as exc:
            # Not stored: do not answer, so the logger keeps the records and sends them again.
            self.counts["refused"] += len(decoded)
            log.error(
                "port %s: %d readings not queued, logger not answered: %s",
                self.port.label,
                len(readings),
                exc,
            )
            return False
        self.counts["readings"] += len(readings)
        for merged, _ in decoded:
            self._answer(merged)
        return True

    def _device(self, frame: Frame) -> DeviceConfig:
        mn = frame.mn or ""
        if mn in self.devices and mn in self.port.devices:
            return self.devices[mn]
        self.counts["unknown_device"] += 1
        if mn not in self._warned:
            self._warned.add(mn)
            log.warning(
                "port %s: frame from MN %s, which is not configured on this port; queued with "
                "family %s and no units. Add a [[device]] for it and enrol it",
                self.port.label,
                mn,
                self.port.family,
            )
        return DeviceConfig(mn=mn, family=self.port.family)

    def _answer(self, frame: Frame) -> None:
        if not (self.port.reply and self.write and is_upload(frame.cn)):
            return
        for part in frame.parts or [frame]:
            if not part.reply_wanted:
                continue
            try:
                reply = build_reply_9014(part)
            except ValueError as exc:
                log.warning("port %s: cannot build 9014 answer: %s", self.port.label, exc)
                continue
            if self.write(reply):
                self.counts["replies"] += 1

    def _frame_error(self, err: FrameError) -> None:
        self.counts["errors"] += 1
        kind = getattr(err, "kind", "frame")
        hint = ""
        if isinstance(err, CrcError) and err.matching_mode:
            hint = f" — the logger uses CRC mode {err.matching_mode!r}: set crc_mode in agent.toml"
        # The first of each kind at WARNING, then every 100th with a count: a noisy line must
        # not flood the journal, nor fall silent.
        key = f"{kind}:{getattr(err, 'matching_mode', '')}"
        seen = self._error_counts.get(key, 0) + 1
        self._error_counts[key] = seen
        if seen == 1 or seen % 100 == 0:
            count = f" ({seen} so far)" if seen > 1 else ""
            log.warning("port %s: %s%s%s", self.port.label, err, hint, count)
        else:
            log.debug("port %s: %s%s", self.port.label, err, hint)
        if self.rejects:
            self.rejects.write(self.port.label, kind, str(err), err.raw)


class Runner:
    """Owns the queue, the ports, the drain and the heartbeat of one box."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        opener: Callable[[PortConfig], Any] = open_port,
        uplink: Uplink | None = None,
        decoders: dict[str, Decoder] | None = None,
        box_clock: Callable[[], bool | None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()
        box = cfg.box
        cfg.box.data_dir.mkdir(parents=True, exist_ok=True)
        self.queue = DurableQueue(
            cfg.queue_path,
            box.queue_max_bytes,
            alarm_ratio=box.queue_alarm_ratio,
            live_window_s=box.live_window_s,
            agent_version=VERSION,
        )
        keys, self.key_problems = load_keys(cfg)
        for problem in self.key_problems + port_problems(cfg):
            log.error("%s", problem)
        self.uplink = uplink or Uplink(
            box.server,
            keys,
            timeout=(min(10.0, box.upload_timeout_s), box.upload_timeout_s),
            agent_version=VERSION,
            stop=self.stop_event,
        )
        self.box_clock = box_clock or BoxClock()
        watch_class = ReplayClockWatch if box.replay else ClockWatch
        self.clock_watch = watch_class(box.clock_tolerance_s, box.clock_jump_s, self.box_clock)
        if box.replay:
            log.warning("replay mode: device clocks are not compared with the box clock")
        if decoders is None:
            decoders = {p.family: family_decoder(p.family) for p in cfg.ports}
        self.decoders = decoders
        self.rejects = RejectLog(box.data_dir / "rejects.jsonl")
        self.pipelines: list[PortPipeline] = []
        self.readers: list[PortReader] = []
        for port in cfg.ports:
            pipeline = PortPipeline(
                port,
                cfg.devices,
                self.queue,
                self.clock_watch,
                decoders=decoders,
                rejects=self.rejects,
            )
            reader = PortReader(port, pipeline, self.stop_event, opener=opener)
            pipeline.write = reader.write
            self.pipelines.append(pipeline)
            self.readers.append(reader)
        self.drainer = Drainer(
            self.queue,
            self.uplink,
            batch_max_readings=box.batch_max_readings,
            linger_s=box.upload_linger_s,
            backlog_rate=box.backlog_rate,
            reload_keys=lambda: load_keys(cfg)[0],
        )
        self.heartbeat = Heartbeat(
            box.id,
            self.uplink,
            self.snapshot,
            self.clock_watch.offsets,
            cfg.state_path,
            box.heartbeat_interval_s,
        )
        self._threads: list[threading.Thread] = []

    def snapshot(self) -> dict[str, Any]:
        """The box's state right now (heartbeat, state.json, ``status``)."""
        queue = self.queue.summary()
        ports = {}
        for reader, pipeline in zip(self.readers, self.pipelines, strict=True):
            entry = reader.status()
            entry.update({k: v for k, v in pipeline.counts.items() if k != "frames"})
            ports[reader.config.label] = entry
        alarms = list(self.queue.alarms())
        for reader in self.readers:
            if reader.watchdog_alarm:
                alarms.append(f"port {reader.config.label}: no frame for {reader.silent_s():.0f} s")
        for device in self.clock_watch.drifting():
            alarms.append(
                f"device {device}: clock off beyond {self.cfg.box.clock_tolerance_s:.0f} s"
            )
        synced = self.box_clock()
        if synced is False:
            alarms.append("box clock not NTP-synchronised")
        free = disk_free_bytes(self.cfg.box.data_dir)
        if free is not None and free < 64 * 1024 * 1024:
            alarms.append(f"disk nearly full: {free} bytes free under {self.cfg.box.data_dir}")
        alarms += load_keys(self.cfg)[1]  # re-read: a device enrolled meanwhile clears its alarm
        return {
            "at": now_iso(),
            "running": not self.stop_event.is_set(),
            "box_id": self.cfg.box.id,
            "version": VERSION,
            "pid": os.getpid(),
            "queue": queue,
            "devices": {d: {"queue_depth": self.queue.depth(d)} for d in self.cfg.devices},
            "ports": ports,
            "upload": self.drainer.status(),
            "clock_offsets_s": self.clock_watch.offsets(),
            "box_clock": {
                "ntp_synced": synced,
                "server_offset_s": self.uplink.measured_offset_s,
            },
            "disk_free_bytes": free,
            "alarms": alarms,
        }

    def start(self) -> None:
        for reader in self.readers:
            reader.start()
        self._threads = [
            threading.Thread(
                target=self.drainer.run, args=(self.stop_event,), name="drain", daemon=True
            ),
            threading.Thread(
                target=self.heartbeat.run, args=(self.stop_event,), name="heartbeat", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()
        log.info(
            "lantian-agent %s running: box %s, %d port(s), %d device(s), queue %s (%d waiting)",
            VERSION,
            self.cfg.box.id,
            len(self.readers),
            len(self.cfg.devices),
            self.cfg.queue_path,
            self.queue.depth(),
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for thread in [*self.readers, *self._threads]:
            if thread.is_alive():
                thread.join(max(0.1, deadline - time.monotonic()))
        try:  # leave a last state for `status`: ports closed, agent not running
            state = self.snapshot()
            state["running"] = False
            state["last_heartbeat"] = self.heartbeat.last_sent
            write_state(self.cfg.state_path, state)
        except Exception:
            log.exception("cannot write the final state")
        self.queue.close()
        log.info("lantian-agent stopped")

    def run_forever(self) -> int:
        """Run until SIGTERM or SIGINT; return the exit status."""

        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal %s: stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not self.stop_event.wait(1.0):
            pass
        self.stop()
        return 0
