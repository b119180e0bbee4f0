"""The pieces of the agent's chaos test: loggers on ptys that resend what was not answered, a TCP
link that can be cut, and the real agent and ingest processes that can be SIGKILLed.

A real data logger keeps every upload the platform did not answer with 9014 and sends it again
(HJ 212: Flag bit A asks for the answer). That is what makes the agent's ordering safe: the agent
answers only what is already fsynced in its queue, so whatever it loses by dying (bytes in the
pty buffer, a half-read frame, a frame decoded but not stored) was never answered and comes back.
:class:`ChaosLogger` behaves that way, so the set that must arrive is the set it got answers for.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from agents.devices import get_family
from agents.hj212 import Frame, FrameReader, parse_frame, wrap_segment

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
PYTHON = str(BIN / "python")


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------- frames


def ask_for_answer(frame: bytes, qn: str | None = None, crc_mode: str = "standard") -> bytes:
    """The frame with Flag bit A set (Flag=4 → 5) and, if given, another QN; length and CRC
    recomputed."""
    segment = frame.rstrip(b"\r\n")[6:-4]
    head, sep, cp = segment.partition(b";CP=&&")
    fields = head.split(b";")
    flags = [i for i, item in enumerate(fields) if item.startswith(b"Flag=")]
    qns = [i for i, item in enumerate(fields) if item.startswith(b"QN=")]
    if len(flags) != 1 or len(qns) != 1:
        raise ValueError(f"not a 2017 upload with one QN and one Flag: {frame[:80]!r}")
    value = int(fields[flags[0]][5:])
    fields[flags[0]] = b"Flag=%d" % (value | 1)
    if qn is not None:
        fields[qns[0]] = b"QN=" + qn.encode("ascii")
    return wrap_segment(b";".join(fields) + sep + cp, crc_mode)


def unique_qn(qn: str, taken: set[str]) -> str:
    """``qn``, or the next free millisecond after it: a logger's QN names one request, and the
    simulator stamps a minute record and a refuelling sent in the same millisecond alike."""
    while qn in taken:
        moment = datetime.strptime(qn[:14], "%Y%m%d%H%M%S") + timedelta(
            milliseconds=int(qn[14:]) + 1
        )
        qn = moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"
    return qn


@dataclass(frozen=True)
class LoggerFrame:
    """One upload of a simulated logger: its QN (what the 9014 answer echoes), its bytes, and
    the readings the agent's decoder makes of it (id → sha256 of the raw frame)."""

    qn: str
    data: bytes
    readings: dict[str, str]


def logger_frames(scenario: Any, device_id: str, limit: int) -> list[LoggerFrame]:
    """The first ``limit`` reading frames the simulated device sends, asking for answers."""
    config = scenario.device_config(device_id)
    family = get_family(config["family"])
    crc_mode = config.get("crc_mode", "standard")
    received = datetime(2017, 12, 1, tzinfo=UTC)  # any instant: ids do not depend on it
    out: list[LoggerFrame] = []
    seen: set[str] = set()
    for emission in scenario.emissions(device_id):
        if not emission.reading:
            continue
        sent_qn = parse_frame(emission.frame, crc_mode=crc_mode).qn or ""
        data = ask_for_answer(emission.frame, unique_qn(sent_qn, seen), crc_mode)
        frame = parse_frame(data, crc_mode=crc_mode)
        seen.add(frame.qn)
        readings = {r.id: r.raw_sha256 for r in family.decode(frame, config, received)}
        if not readings:
            raise ValueError(f"device {device_id}: frame {frame.qn} decodes to no reading")
        out.append(LoggerFrame(frame.qn, data, readings))
        if len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------------- the schedule

FAMILIES = ("cems", "ambient", "vapor", "rsd")
ACTIONS = ("kill_agent", "kill_ingest", "cut_network", "kill_both")


def chaos_plan(rng: random.Random, cycles: int = 10) -> list[tuple[float, str, float]]:
    """(seconds to wait, action, seconds down): each action ``cycles // 4`` times, the rest
    drawn, in a shuffled order."""
    actions = list(ACTIONS) * (cycles // len(ACTIONS))
    actions += [rng.choice(ACTIONS) for _ in range(cycles - len(actions))]
    rng.shuffle(actions)
    down = {
        "kill_agent": (0.2, 2.5),
        "kill_ingest": (0.5, 3.0),
        "cut_network": (2.0, 5.0),
        "kill_both": (0.5, 2.5),
    }
    return [(rng.uniform(1.5, 4.5), a, rng.uniform(*down[a])) for a in actions]


def answering_devices(scenario: Any, per_family: int = 2) -> list[str]:
    """Devices whose loggers speak the 2017 edition (QN and Flag, so they can ask for 9014).

    A 2005-edition logger never asks for an answer and never resends: bytes it sent while the
    agent was down are discarded when the next agent opens the port (pyserial flushes input on
    open) and nothing brings them back, so no agent can promise it those readings.
    """
    chosen = []
    for family in FAMILIES:
        ids = [
            d
            for d in scenario.device_ids(family)
            if b"QN=" in (first := next(scenario.emissions(d)).frame) and b";Flag=" in first
        ]
        chosen += ids[:per_family]
    return chosen


# ---------------------------------------------------------------------- the logger


class ChaosLogger(threading.Thread):
    """A data logger on a pty that sends uploads every ``interval_s`` and resends each upload
    not answered with 9014 every ``resend_after_s``, until answered or closed.

    It keeps its own end of the slave open, so the pty never hangs up while the agent is dead:
    bytes written then wait in the pty buffer and are discarded when the next agent opens the
    port (pyserial flushes input on open); only resending brings them back.
    """

    def __init__(
        self,
        device_id: str,
        frames: list[LoggerFrame],
        *,
        interval_s: float = 0.07,
        resend_after_s: float = 2.0,
        max_buffered: int = 4096,
        crc_mode: str = "standard",
    ) -> None:
        super().__init__(name=f"logger {device_id}", daemon=True)
        self.device_id = device_id
        self.frames = frames
        self.by_qn = {f.qn: f for f in frames}
        self.interval_s = interval_s
        self.resend_after_s = resend_after_s
        self.max_buffered = max_buffered
        self.crc_mode = crc_mode  # the agent answers in the logger's own CRC mode
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.emitting = threading.Event()
        self.emitting.set()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # QN -> last sent (monotonic), oldest send first
        self.emitted: list[str] = []
        self.acked: set[str] = set()
        self.answers = 0
        self.resends = 0
        self.bytes_written = 0
        self.error: BaseException | None = None

    # -------------------------------------------------------------- what the test asks

    def stop_emitting(self) -> None:
        self.emitting.clear()

    def unanswered(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    def emitted_readings(self) -> dict[str, str]:
        """reading id → raw sha256 of every upload sent so far."""
        with self._lock:
            qns = list(self.emitted)
        return {rid: sha for qn in qns for rid, sha in self.by_qn[qn].readings.items()}

    def answered_readings(self) -> dict[str, str]:
        with self._lock:
            qns = list(self.acked)
        return {rid: sha for qn in qns for rid, sha in self.by_qn[qn].readings.items()}

    def close(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -------------------------------------------------------------- the loop

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def _loop(self) -> None:
        reader = FrameReader(crc_mode=self.crc_mode, strict=False)
        out = bytearray()
        next_index = 0
        next_emit = time.monotonic()
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        while not self._halt.is_set():
            poller.poll(10)
            self._read_answers(reader)
            now = time.monotonic()
            if self.emitting.is_set() and next_index < len(self.frames) and now >= next_emit:
                frame = self.frames[next_index]
                next_index += 1
                next_emit = max(next_emit + self.interval_s, now - 1.0)
                out += frame.data
                with self._lock:
                    self.emitted.append(frame.qn)
                    self._pending[frame.qn] = now
            if len(out) < self.max_buffered:
                out += self._due_resends(now)
            if out:
                try:
                    sent = os.write(self.master, out)
                except (BlockingIOError, InterruptedError):
                    sent = 0  # the pty buffer is full: nobody reads (the agent is dead)
                del out[:sent]
                self.bytes_written += sent

    def _read_answers(self, reader: FrameReader) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for item in reader.feed(data):
                if isinstance(item, Frame) and item.cn == "9014" and item.qn:
                    self.answers += 1
                    with self._lock:
                        if self._pending.pop(item.qn, None) is not None:
                            self.acked.add(item.qn)

    def _due_resends(self, now: float, at_most: int = 8) -> bytes:
        """Unanswered uploads last sent ``resend_after_s`` ago, oldest first."""
        chunk = bytearray()
        with self._lock:
            due = [qn for qn, last in self._pending.items() if now - last >= self.resend_after_s]
            for qn in due[:at_most]:
                del self._pending[qn]
                self._pending[qn] = now  # to the back of the line
                chunk += self.by_qn[qn].data
                self.resends += 1
        return bytes(chunk)


# ---------------------------------------------------------------------- the network


class CutProxy:
    """A loopback TCP relay in front of the ingest service that can be cut: while cut, its port
    refuses connections and every open connection is reset mid-flight (a request may have
    reached the server, its answer never reaches the agent)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()  # the open connections
        self._listen_lock = threading.Lock()  # the listener: only the accept loop uses it inside
        self._closed = threading.Event()
        self.connections = 0
        self.severed = 0
        self.cuts = 0
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, name="cut proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        with self._listen_lock:
            self._listener = sock

    def cut(self) -> None:
        with self._listen_lock:
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.close()  # from now on: connection refused
        self.cuts += 1
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            self._reset(conn)
            self.severed += 1

    def restore(self) -> None:
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._thread.join(5)

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            client = None
            # Poll rather than block in accept(): cut() closes the listener, and a thread
            # blocked on a closed (and maybe reused) descriptor is a race.
            with self._listen_lock:
                listener = self._listener
                if listener is not None:
                    ready, _, _ = select.select([listener], [], [], 0)
                    if ready:
                        with contextlib.suppress(OSError):
                            client, _ = listener.accept()
            if client is None:
                time.sleep(0.005)
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(None)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
        except OSError:  # the ingest process is down: the agent sees the connection drop
            self._reset(client)
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns.update((client, upstream))
        if self._listener is None:  # cut while we connected
            self._reset(client)
            self._reset(upstream)
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()
        with self._lock:
            self._conns.difference_update((client, upstream))
        client.close()
        upstream.close()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)


# ---------------------------------------------------------------------- processes


def clean_env(home: Path) -> dict[str, str]:
    """The children's environment: LANTIAN_HOME in the test's folder, nothing pointing
    elsewhere."""
    env = dict(os.environ, LANTIAN_HOME=str(home), PYTHONPATH=str(REPO))
    for name in (
        "LANTIAN_INGEST_SETTINGS",
        "LANTIAN_INGEST_CONFIG",
        "LANTIAN_LANDING_INDEX_URL",
        "LANTIAN_LANDING_DIR",
        "LANTIAN_AGENT_CONFIG",
    ):
        env.pop(name, None)
    return env


def command(script: str, module: str) -> list[str]:
    """The installed console script (what systemd runs), else ``python -m``."""
    path = BIN / script
    return [str(path)] if path.exists() else [PYTHON, "-m", module]


@dataclass
class Service:
    """One long-running child process that the test starts, SIGKILLs and restarts."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    kills: int = 0
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        if self.alive():
            return
        with self.log.open("ab") as handle:
            handle.write(f"\n===== {self.name} start #{self.starts + 1} =====\n".encode())
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=handle, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, no buffer is flushed, no goodbye."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.kills += 1
        self.exits.append(self.proc.wait(10))

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait: the graceful stop systemd does."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.exits.append(self.proc.returncode)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def ingest_ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def agent_toml(
    path: Path,
    *,
    data_dir: Path,
    server: str,
    loggers: list[tuple[str, dict[str, Any]]],
) -> Path:
    """agent.toml for one port per logger: ``loggers`` = (pty path, device config)."""
    lines = [
        "[box]",
        'id = "chaos-box"',
        f'data_dir = "{data_dir}"',
        f'server = "{server}"',
        "backlog_rate = 1000",
        "live_window_s = 300",
        "heartbeat_interval_s = 5",
        "upload_timeout_s = 5",
        'log_level = "INFO"',
    ]
    for port, device in loggers:
        lines += [
            "[[port]]",
            f'path = "{port}"',
            "baud = 115200",
            f'family = "{device["family"]}"',
            f'devices = ["{device["device_id"]}"]',
            f'crc_mode = "{device.get("crc_mode", "standard")}"',
            "read_timeout_s = 0.2",
            "reply = true",
        ]
    for _, device in loggers:
        units = ", ".join(f'{code} = "{unit}"' for code, unit in device["units"].items())
        lines += [
            "[[device]]",
            f'mn = "{device["device_id"]}"',
            f'family = "{device["family"]}"',
            f'pw = "{device["pw"]}"',
            f"units = {{ {units} }}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
