"""Helpers for the agent tests: readings, frames, a scripted HTTP server, pty pairs, configs."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agents.hj212 import build_cp, build_frame
from schemas.reading import BEIJING, Reading

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")

CEMS_MN = "010000A8900016F000169DC0"
CEMS_MN2 = "010000A8900016F000169DC1"
AMBIENT_MN = "410100000000000000000022"


def make_reading(
    device_id: str = CEMS_MN,
    cn: str = "2051",
    data_time: str = "20171101080000",
    *,
    stream: str = "cems",
    value: str = "12.30",
    received_at: datetime | None = None,
) -> Reading:
    """A contract-valid reading (the queue stores whatever the decoder made)."""
    device_time = datetime.strptime(data_time, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
    received = received_at or device_time + timedelta(seconds=2)
    raw = f"QN=;ST=31;CN={cn};MN={device_id};CP=&&DataTime={data_time};a21026-Avg={value}&&"
    return Reading(
        device_id=device_id,
        stream=stream,
        cn=cn,
        data_time=data_time,
        device_time=device_time.isoformat(),
        received_at=received.isoformat(),
        values={"a21026": {"Avg": value, "Flag": "N"}},
        raw=raw,
        units={"a21026": "mg/m3"},
    )


def minute_times(start: str, n: int) -> list[str]:
    """``n`` consecutive minute stamps from ``start`` (YYYYMMDDhhmmss)."""
    t0 = datetime.strptime(start, "%Y%m%d%H%M%S")
    return [(t0 + timedelta(minutes=i)).strftime("%Y%m%d%H%M%S") for i in range(n)]


def cems_frame(
    data_time: str,
    *,
    mn: str = CEMS_MN,
    cn: str = "2011",
    flag: int = 5,
    qn: str | None = None,
    crc_mode: str = "standard",
    so2: str = "12.30",
    pw: str = "123456",
) -> bytes:
    """A CEMS upload frame (Flag 5 = 2017 edition + reply wanted)."""
    suffix = "Rtd" if cn == "2011" else "Avg"
    cp = build_cp(
        {
            "a21026": {suffix: so2, "Flag": "N"},
            "a19001": {suffix: "8.1", "Flag": "N"},
        },
        data_time=data_time,
    )
    return build_frame(
        st="31",
        cn=cn,
        mn=mn,
        pw=pw,
        cp=cp,
        qn=qn or (data_time + "000"),
        flag=flag,
        crc_mode=crc_mode,
    )


# ---------------------------------------------------------------------- scripted HTTP server


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        data = self.body
        if self.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return json.loads(data)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; None -> contract answer for batches
    headers: dict[str, str] = field(default_factory=dict)
    date: str | None = None  # override the Date header (clock-skew tests)


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 answering from a script, recording every request.

    With the script empty it answers like ingest: 200 ``landed`` for batches (``duplicate`` for a
    batch id it has seen), 200 for heartbeats, enrolments and /healthz.
    """

    def __init__(self) -> None:
        self.script: list[Reply] = []
        #: optional per-request decision, consulted before the script (None: fall through)
        self.decide = None
        self.seen: list[Seen] = []
        self.landed: set[str] = set()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                with outer.lock:
                    outer.seen.append(seen)
                    reply = outer.decide(seen) if outer.decide else None
                    if reply is None:
                        reply = outer.script.pop(0) if outer.script else Reply()
                payload = reply.body
                if payload is None and self.path.endswith("/v1/batches") and reply.status == 200:
                    batch = seen.json()
                    status = "duplicate" if batch["batch_id"] in outer.landed else "landed"
                    outer.landed.add(batch["batch_id"])
                    payload = {
                        "status": status,
                        "batch_id": batch["batch_id"],
                        "readings": len(batch["readings"]),
                    }
                elif payload is None:
                    payload = {"status": "ok"}
                data = json.dumps(payload).encode()
                self.send_response_only(reply.status)
                self.send_header("Date", reply.date or self.date_time_string())
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_POST = _handle  # noqa: N815
            do_GET = _handle  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def batches(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.endswith("/v1/batches")]


def free_port_url() -> str:
    """A loopback URL where nothing listens (a stopped server)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------- pty


class Pty:
    """A pty pair: the test writes the logger's side (master), the agent opens ``path``."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._closed = False

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_available(self, timeout: float = 0.0) -> bytes:
        import select

        out = b""
        while True:
            ready, _, _ = select.select([self.master], [], [], timeout)
            if not ready:
                return out
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return out
            if not chunk:
                return out
            out += chunk
            timeout = 0.05

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for fd in (self.master, self.slave):
                with contextlib.suppress(OSError):
                    os.close(fd)


@contextlib.contextmanager
def pty_pair() -> Iterator[Pty]:
    pty = Pty()
    try:
        yield pty
    finally:
        pty.close()


# ---------------------------------------------------------------------- configs


def write_config(
    tmp: Path,
    *,
    server: str,
    ports: list[dict[str, Any]],
    devices: list[dict[str, Any]],
    box_extra: str = "",
) -> Path:
    """An agent.toml for tests."""
    lines = [
        "[box]",
        'id = "box-test"',
        f'data_dir = "{tmp / "data"}"',
        f'server = "{server}"',
        "heartbeat_interval_s = 1",
        "live_window_s = 300",
        box_extra,
    ]
    for port in ports:
        lines.append("[[port]]")
        for key, value in port.items():
            lines.append(f"{key} = {json.dumps(value)}")
    for device in devices:
        lines.append("[[device]]")
        for key, value in device.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    path = tmp / "agent.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
