"""Reading one serial port, for as long as the box runs.

One :class:`PortReader` thread per port. It opens the port with ``serial.serial_for_url`` (a device
path, a pty, or ``loop://`` in tests), hands every chunk of bytes to a *sink* (the runner's
pipeline: framing, decoding, the durable queue, the 9014 answer) and survives the port going away:
a USB adapter unplugged, a cable pulled, a pty closed. Then it reopens with backoff, for ever; data
already queued is untouched because the queue is on disk, and bytes of a frame cut in half are
reported as a half frame, never stitched to the next.

The watchdog is about the *device*: "no frame from this port for N seconds" (a logger that stopped
talking, a wrong baud rate that produces only garbage). It is independent of the uplink, which has
its own health in the heartbeat.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import serial

from agents.config import PortConfig

log = logging.getLogger("lantian.agent.serial")

#: Seconds to wait between reopen attempts (the last value repeats).
REOPEN_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

_READ_CHUNK = 4096


class ByteSink(Protocol):
    """What a port feeds. ``feed`` returns how many good frames the bytes completed."""

    def feed(self, data: bytes) -> int: ...

    def tick(self) -> None: ...

    def reset(self, reason: str) -> None: ...


def open_port(config: PortConfig, **overrides: Any) -> serial.SerialBase:
    """Open a port with the configured line settings (a URL such as ``loop://`` works too)."""
    options: dict[str, Any] = {
        "baudrate": config.baud,
        "parity": config.parity,
        "bytesize": config.bytesize,
        "stopbits": config.stopbits,
        "timeout": config.read_timeout_s,
        "write_timeout": 2.0,
    }
    if "://" not in config.path:
        options["exclusive"] = True  # a second agent (or a stray minicom) must not steal bytes
    options.update(overrides)
    return serial.serial_for_url(config.path, **options)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PortReader(threading.Thread):
    """Read one port into a sink until ``stop`` is set; reopen whenever the port fails."""

    def __init__(
        self,
        config: PortConfig,
        sink: ByteSink,
        stop: threading.Event,
        *,
        reopen_delays_s: Sequence[float] = REOPEN_DELAYS_S,
        opener: Callable[[PortConfig], serial.SerialBase] = open_port,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name=f"port {config.label}", daemon=True)
        self.config = config
        self.sink = sink
        self.stop = stop
        self.reopen_delays_s = tuple(reopen_delays_s) or (1.0,)
        self._opener = opener
        self._monotonic = monotonic
        self._serial: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        started = monotonic()
        self._last_frame_mono = started
        self.last_frame_at: str | None = None
        self.last_byte_at: str | None = None
        self.frames = 0
        self.bytes = 0
        self.opens = 0
        self.failures = 0
        self.last_error: str | None = None
        self.watchdog_alarm = False

    # ------------------------------------------------------------------ thread body

    def run(self) -> None:
        delay_index = 0
        while not self.stop.is_set():
            port = self._try_open()
            if port is None:
                delay = self.reopen_delays_s[min(delay_index, len(self.reopen_delays_s) - 1)]
                delay_index += 1
                self._check_watchdog()
                self.stop.wait(delay)
                continue
            delay_index = 0
            try:
                self._read_loop(port)
            except (serial.SerialException, OSError) as exc:
                self._lost(f"{exc.__class__.__name__}: {exc}")
            finally:
                self._close()
        self._close()

    def _try_open(self) -> serial.SerialBase | None:
        try:
            port = self._opener(self.config)
        except (serial.SerialException, OSError, ValueError) as exc:
            message = f"cannot open {self.config.path}: {exc}"
            if message != self.last_error:
                log.error("port %s: %s; retrying until it is back", self.config.label, message)
            self.last_error = message
            self.failures += 1
            return None
        with self._write_lock:
            self._serial = port
        self.opens += 1
        if self.opens > 1 or self.last_error:
            log.warning("port %s: reopened %s", self.config.label, self.config.path)
        else:
            log.info(
                "port %s: open (%d %d%s%s)",
                self.config.label,
                self.config.baud,
                self.config.bytesize,
                self.config.parity,
                self.config.stopbits,
            )
        self.last_error = None
        return port

    def _read_loop(self, port: serial.SerialBase) -> None:
        while not self.stop.is_set():
            waiting = port.in_waiting if hasattr(port, "in_waiting") else 0
            data = port.read(min(max(1, waiting), _READ_CHUNK))
            if data:
                self.bytes += len(data)
                self.last_byte_at = _iso_now()
                try:
                    good = self.sink.feed(bytes(data))
                except Exception:  # a decoder bug must not stop the port
                    log.exception("port %s: processing failed", self.config.label)
                    good = 0
                if good:
                    self._frame_seen(good)
            try:
                self.sink.tick()
            except Exception:
                log.exception("port %s: periodic work failed", self.config.label)
            self._check_watchdog()

    def _lost(self, reason: str) -> None:
        self.failures += 1
        self.last_error = f"port lost: {reason}"
        log.error(
            "port %s: %s; queued data is safe on disk, reopening %s",
            self.config.label,
            reason,
            self.config.path,
        )
        try:
            self.sink.reset(reason)
        except Exception:
            log.exception("port %s: reset failed", self.config.label)

    def _close(self) -> None:
        with self._write_lock:
            port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    # ------------------------------------------------------------------ watchdog and state

    def _frame_seen(self, count: int) -> None:
        with self._state_lock:
            self.frames += count
            self._last_frame_mono = self._monotonic()
            self.last_frame_at = _iso_now()
            if self.watchdog_alarm:
                self.watchdog_alarm = False
                log.info("port %s: frames arrive again", self.config.label)

    def silent_s(self) -> float:
        """Seconds since the last good frame (or since the reader started)."""
        return max(0.0, self._monotonic() - self._last_frame_mono)

    def _check_watchdog(self) -> None:
        silent = self.silent_s()
        if silent >= self.config.watchdog_s and not self.watchdog_alarm:
            self.watchdog_alarm = True
            log.warning(
                "port %s: no frame for %.0f s (watchdog %.0f s): check the logger, the cable and "
                "the baud rate (%d); `lantian-agent doctor` listens and tells",
                self.config.label,
                silent,
                self.config.watchdog_s,
                self.config.baud,
            )

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def write(self, data: bytes) -> bool:
        """Send bytes to the device (a 9014 answer); False if the port is not open or fails."""
        with self._write_lock:
            port = self._serial
            if port is None:
                return False
            try:
                port.write(data)
                port.flush()
            except (serial.SerialException, OSError) as exc:
                log.warning("port %s: cannot write answer: %s", self.config.label, exc)
                return False
        return True

    def status(self) -> dict[str, Any]:
        """Per-port state for the heartbeat and ``status``."""
        return {
            "path": self.config.path,
            "open": self.is_open,
            "last_frame_at": self.last_frame_at,
            "last_byte_at": self.last_byte_at,
            "silent_s": round(self.silent_s(), 1),
            "watchdog_alarm": self.watchdog_alarm,
            "frames": self.frames,
            "bytes": self.bytes,
            "opens": self.opens,
            "failures": self.failures,
            "last_error": self.last_error,
        }
