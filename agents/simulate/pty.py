"""Serve simulated frames on a pseudo-terminal, as a data logger on a serial cable would.

``PtyDevice(frames)`` opens a pty pair (``os.openpty``), sets the slave raw (no echo, no CR/LF
translation) and writes the frames into the master from a thread. The agent opens ``.port`` with
pyserial like any serial port. ``.port`` is a stable symlink (like ``/dev/serial/by-id/...``)
to the current slave (``.pts``).

Frames are written only while someone has the port open (the master reports a hang-up
otherwise), starting a moment after the open: pyserial flushes the input buffer when it opens a
port, and bytes written before that would vanish. Writing goes as fast as the reader takes the
bytes (a pty holds about 20 KiB) or, with ``speed=N``, at N times the frames' own timing. Bytes
the agent writes back (replies to Flag=5 uploads, time settings) are collected in ``.received``.

Unplugging closes the master and removes the symlink. What the agent sees: a read on its open
port fails (pyserial raises SerialException: "device reports readiness to read but returned no
data"); opening ``.port`` fails while unplugged (no such file); after ``seconds`` a new pty
appears behind the same ``.port`` path (often another ``/dev/pts/N``) and writing resumes with the
next frame once the agent has reopened the port. The logger holds its frames while unplugged:
they arrive late, not never. A scripted unplug (``unplugs=[(frame_index, seconds)]``) waits until
the agent has read everything written so far, so it loses nothing; ``unplug()`` called from
another thread pulls the cable at once and the bytes still in the pty buffer are lost, as on a
real cable. An agent that closes and reopens the port also loses what sat in the buffer (the
flush on open).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import struct
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from agents.simulate.wire import WireNoise, apply_noise

_EPOCH = datetime(2000, 1, 1)
#: Pause after a reader appears before writing: its open() flushes the input buffer.
SETTLE_S = 0.2


def _normalise(frames: Iterable) -> Iterator[tuple[datetime | None, bytes]]:
    for item in frames:
        if isinstance(item, bytes | bytearray):
            yield None, bytes(item)
        else:
            moment, data = item[0], item[-1]
            yield moment, bytes(data)


class PtyDevice:
    """A simulated device on a pseudo-terminal (see the module docstring)."""

    def __init__(
        self,
        frames: Iterable,
        *,
        noise: WireNoise | None = None,
        speed: float | None = None,
        unplugs: Sequence[tuple[int, float]] = (),
        name: str = "ttyLantian0",
        autostart: bool = True,
    ) -> None:
        self._items = _normalise(frames)
        if noise is not None and not noise.quiet:
            items = ((m or _EPOCH, d, False) for m, d in self._items)
            self._items = ((c.at, c.data) for c in apply_noise(items, noise))
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (None: as fast as possible)")
        self.speed = speed
        self._unplugs = sorted(unplugs)
        self._dir = Path(tempfile.mkdtemp(prefix="lantian-pty-"))
        self.port = str(self._dir / name)
        self.pts = ""
        self.received = bytearray()
        self.chunks_written = 0
        self.plugs = 0  # how many times a pty was plugged in (1 + replugs)
        self.bytes_written = 0
        self.unplugged = threading.Event()
        self.done = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._master = -1
        self._reader_since = 0.0
        self._error: BaseException | None = None
        self._plug()
        self._thread = threading.Thread(target=self._run, name=f"pty {name}", daemon=True)
        if autostart:
            self.start()

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        if not self._thread.is_alive() and not self.done.is_set():
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every frame is written; True if so. Re-raises a writer failure."""
        finished = self.done.wait(timeout)
        if self._error is not None:
            raise RuntimeError(f"pty writer failed: {self._error}") from self._error
        return finished

    def unplug(self, seconds: float) -> None:
        """Pull the cable now and plug it back in after ``seconds`` (from any thread)."""
        self._unplug()
        timer = threading.Timer(seconds, self._plug)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._close_fds()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PtyDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plug

    def _plug(self) -> None:
        with self._lock:
            if self._stop.is_set() or self._master >= 0:
                return
            master, slave = os.openpty()
            tty.setraw(slave)
            self.pts = os.ttyname(slave)
            # Keep no slave fd: the master then reports a hang-up exactly when no reader has the
            # port open, which is when the writer must wait.
            os.close(slave)
            os.set_blocking(master, False)
            self._master = master
            link = Path(self.port)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(self.pts)
            self.plugs += 1
            self.unplugged.clear()

    def _unplug(self) -> None:
        with self._lock:
            self.unplugged.set()
            Path(self.port).unlink(missing_ok=True)
            self._close_fds_locked()

    def _close_fds(self) -> None:
        with self._lock:
            self._close_fds_locked()

    def _close_fds_locked(self) -> None:
        if self._master >= 0:
            with contextlib.suppress(OSError):
                os.close(self._master)
        self._master = -1

    # ------------------------------------------------------------------ writer

    def _drain(self, master: int) -> None:
        """Keep what the agent writes back (its replies), so its writes never block."""
        try:
            while True:
                data = os.read(master, 4096)
                if not data:
                    return
                self.received += data
        except (BlockingIOError, OSError):
            return

    def _reader_ready(self, master: int) -> bool:
        """A reader has had the port open for SETTLE_S (so its open-time flush is over)."""
        poller = select.poll()
        poller.register(master, select.POLLOUT | select.POLLIN | select.POLLHUP)
        events = dict(poller.poll(100)).get(master, 0)
        if events & select.POLLIN:
            self._drain(master)
        if events & select.POLLHUP:
            self._reader_since = 0.0
            return False
        now = time.monotonic()
        if not self._reader_since:
            self._reader_since = now
        return now - self._reader_since >= SETTLE_S and bool(events & select.POLLOUT)

    def _write(self, data: bytes) -> bool:
        """Write all of ``data``, waiting for a reader and out unplugs; False when stopped."""
        view = memoryview(data)
        while view:
            if self._stop.is_set():
                return False
            with self._lock:
                master = self._master
            if master < 0:
                self._reader_since = 0.0
                time.sleep(0.02)
                continue
            try:
                if not self._reader_ready(master):
                    continue
                sent = os.write(master, view)
                view = view[sent:]
                self.bytes_written += sent
            except (BlockingIOError, InterruptedError):
                continue
            except (OSError, ValueError):
                time.sleep(0.02)  # unplugged under our feet: wait for the new pty
        return True

    def pending_input(self) -> int:
        """Bytes written but not yet read by the agent (0 when unplugged)."""
        if not self.pts or self._master < 0:
            return 0
        try:
            fd = os.open(self.pts, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
            return struct.unpack("i", raw)[0]
        finally:
            os.close(fd)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the agent has read everything written so far (True) or ``timeout``
        passes (False). A scripted unplug does this first, so it loses nothing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.05)  # let the kernel move written bytes into the reader's queue
            if self.pending_input() == 0:
                return True
        return False

    def _pace(self, first: tuple[float, datetime] | None, moment: datetime | None) -> None:
        if self.speed is None or first is None or moment is None:
            return
        due = first[0] + (moment - first[1]).total_seconds() / self.speed
        while not self._stop.is_set():
            left = due - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def _run(self) -> None:
        first: tuple[float, datetime] | None = None
        unplugs = list(self._unplugs)
        try:
            for index, (moment, data) in enumerate(self._items):
                while unplugs and unplugs[0][0] <= index:
                    _, seconds = unplugs.pop(0)
                    self.drain()
                    self.unplug(seconds)
                if moment is not None and first is None:
                    first = (time.monotonic(), moment)
                self._pace(first, moment)
                if not self._write(data):
                    return
                self.chunks_written += 1
            self.done.set()
            # Stay plugged in and keep reading replies until closed.
            while not self._stop.is_set():
                with self._lock:
                    master = self._master
                if master < 0:
                    time.sleep(0.05)
                    continue
                try:
                    self._reader_ready(master)
                except (OSError, ValueError):
                    time.sleep(0.05)
        except BaseException as exc:  # surfaced by wait()
            self._error = exc
            self.done.set()
