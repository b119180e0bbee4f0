"""Real loopback servers for the notifier tests: an HTTP endpoint that records JSON, an SMTP server."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

ALERT_ENV = (
    "LANTIAN_ALERT_WEBHOOK",
    "LANTIAN_ALERT_WEBHOOK_FORMAT",
    "LANTIAN_ALERT_EMAILS",
    "LANTIAN_ALERT_SMTP_CONN",
    "LANTIAN_ALERT_FROM",
    "LANTIAN_RUNBOOK_URL",
)


@pytest.fixture(autouse=True)
def no_alert_config(monkeypatch):
    """Each test configures its own channels; nothing leaks in from the shell."""
    for name in ALERT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_LANTIAN_ALERT_WEBHOOK", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_LANTIAN_ALERT_EMAILS", raising=False)


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(
            {
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "body": body,
                "json": json.loads(body),
            }
        )
        status, answer = self.server.reply
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[ThreadingHTTPServer]:
    """A JSON endpoint on 127.0.0.1; ``.received`` holds each POST, ``.reply`` sets the answer."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []
    server.reply = (200, {"errcode": 0, "errmsg": "ok"})
    server.url = (
        f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/webhook/send?key=SECRET-KEY-123"
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """Accepts connections and never answers (a webhook behind a dead proxy)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook?key=SECRET-KEY-123"
    sock.close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on a loopback port nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key=SECRET-KEY-123"


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 test.local ESMTP")
        envelope: dict = {"rcpt": []}
        data: list[bytes] | None = None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            if data is not None:
                if line in (b".\r\n", b".\n"):
                    body = b"".join(d[1:] if d.startswith(b"..") else d for d in data)
                    self.server.messages.append(
                        {**envelope, "message": message_from_bytes(body, policy=policy.default)}
                    )
                    envelope, data = {"rcpt": []}, None
                    self.reply("250 OK queued")
                else:
                    data.append(line)
                continue
            command = line.decode("ascii", "replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-test.local")
                self.reply("250 8BITMIME")
            elif verb in ("HELO", "RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "MAIL":
                envelope["from"] = command.split(":", 1)[1].strip().strip("<>")
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope["rcpt"].append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                data = []
                self.reply("354 end with .")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


@pytest.fixture
def smtp_server(monkeypatch) -> Iterator[socketserver.ThreadingTCPServer]:
    """A loopback SMTP server and the Airflow connection ``lantian_test_smtp`` pointing at it."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": server.server_address[1],
        "extra": {
            "from_email": "lantian@bureau.test",
            "disable_ssl": True,
            "disable_tls": True,
            "timeout": 5,
            "retry_limit": 0,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_LANTIAN_TEST_SMTP", json.dumps(conn))
    yield server
    server.shutdown()
    server.server_close()


BJ = timezone(timedelta(hours=8))


def iso(text: str) -> str:
    """Beijing wall-clock text as the UTC ISO string the ingest database stores."""
    return datetime.fromisoformat(text).replace(tzinfo=BJ).astimezone(UTC).isoformat()


@pytest.fixture
def story_home(tmp_path, monkeypatch) -> Path:
    """LANTIAN_HOME with the story of tests/operations/test_run_checks.py (see its docstring)."""
    monkeypatch.setenv("LANTIAN_HOME", str(tmp_path))
    for name in ("LANTIAN_WAREHOUSE_URL", "LANTIAN_LANDING_INDEX_URL", "LANTIAN_LANDING_DIR"):
        monkeypatch.delenv(name, raising=False)
    from enforcement.warehouse import Warehouse
    from ingest.db import devices, ensure_schema, heartbeats, landed_batches
    from lantian import settings

    wh = Warehouse(settings.warehouse_url())
    wh.replace_all(
        "devices",
        pd.DataFrame(
            [
                ("C1", "cems", "cems", "2017-10-01"),
                ("C2", "cems", "cems", "2017-10-01"),
                ("C3", "cems", "cems", "2017-10-01"),
                ("A1", "ambient", "ambient", "2017-10-01"),
                ("A2", "ambient", "ambient", "2017-10-01"),
                ("A3", "ambient", "ambient", "2017-10-01"),
                ("V1", "vapor", "vapor", "2017-10-01"),
            ],
            columns=["device_id", "family", "stream", "install_date"],
        ),
    )
    wh.replace_all(
        "stations",
        pd.DataFrame(
            [("S1", "A1", "sd01"), ("S2", "A2", "sd01"), ("S3", "A3", "sd02")],
            columns=["station_id", "device_id", "subdistrict_id"],
        ),
    )
    wh.replace_all(
        "subdistricts",
        pd.DataFrame(
            [("sd01", "经八路街道"), ("sd02", "花园路街道")], columns=["subdistrict_id", "name"]
        ),
    )
    wh.replace(
        "validation_results",
        pd.DataFrame(
            [
                ("r2", "2017-12-02", "ambient", "ambient", "rows_due", "critical", False, 0, 1, []),
                (
                    "r2",
                    "2017-12-02",
                    "cems",
                    "cems",
                    "quarantine_share",
                    "critical",
                    True,
                    1440,
                    3,
                    [],
                ),
            ],
            columns=[
                "run_id",
                "day",
                "stream",
                "suite",
                "expectation",
                "severity",
                "success",
                "element_count",
                "unexpected_count",
                "unexpected_ids",
            ],
        ),
    )
    wh.replace(
        "partitions",
        pd.DataFrame(
            [
                ("2017-12-01", "cems", "r1", 3, 3, 3000),
                ("2017-12-01", "ambient", "r1", 3, 1, 100),
            ],
            columns=["day", "stream", "run_id", "landed_seq_max", "n_batches", "n_readings"],
        ),
    )

    engine = ensure_schema(settings.landing_index_url())
    registered = iso("2017-10-01T00:00:00")
    with engine.begin() as conn:
        conn.execute(
            sa.insert(devices),
            [
                {
                    "device_id": d,
                    "stream": s,
                    "family": s,
                    "owner_kind": "stack" if s == "cems" else "station",
                    "state": state,
                    "created_at": registered,
                    "key_hex": "ab" * 32,
                }
                for d, s, state in [
                    ("C1", "cems", "active"),
                    ("C2", "cems", "active"),
                    ("C3", "cems", "active"),
                    ("A1", "ambient", "active"),
                    ("A2", "ambient", "active"),
                    ("A3", "ambient", "active"),
                    ("V1", "vapor", "suspended"),  # silent on purpose: not watched
                ]
            ],
        )
        batches = [
            # seq 1-3: read by the builds of 2017-12-01
            ("C1", "cems", "2017-12-01T00:00:00", "2017-12-01T23:59:00", "2017-12-02T00:01:00"),
            ("C2", "cems", "2017-12-01T00:00:00", "2017-12-01T19:59:00", "2017-12-01T20:00:00"),
            ("A1", "ambient", "2017-12-01T00:00:00", "2017-12-01T18:00:00", "2017-12-01T18:01:00"),
            # seq 4-7: landed this morning
            ("C1", "cems", "2017-12-02T09:00:00", "2017-12-02T09:50:00", "2017-12-02T09:51:00"),
            ("C2", "cems", "2017-12-01T20:00:00", "2017-12-01T21:00:00", "2017-12-02T09:50:00"),
            ("C3", "cems", "2017-12-02T12:00:00", "2017-12-02T12:30:00", "2017-12-02T09:30:00"),
            ("A3", "ambient", "2017-12-02T09:00:00", "2017-12-02T09:55:00", "2017-12-02T09:56:00"),
        ]
        conn.execute(
            sa.insert(landed_batches),
            [
                {
                    "batch_id": f"{seq:032x}",
                    "device_id": device,
                    "stream": stream,
                    "path": f"x/{device}/{seq:032x}.json.gz",
                    "sha256": "0" * 64,
                    "n_readings": 60,
                    "first_data_time": iso(first),
                    "last_data_time": iso(last),
                    "landed_at": iso(landed),
                }
                for seq, (device, stream, first, last, landed) in enumerate(batches, start=1)
            ],
        )
        beats = []
        for i in range(13):  # one heartbeat round every 5 min up to 09:55, queue growing
            at = datetime(2017, 12, 2, 8, 55, tzinfo=BJ) + timedelta(minutes=5 * i)
            for device in ("C1", "C2"):
                beats.append(
                    {
                        "device_id": device,
                        "box_id": "box-1",
                        "received_at": at.astimezone(UTC).isoformat(),
                        "queue_depth": 1000 + 60 * i,
                        "oldest_unsent": "2017-12-01T20:00:05+08:00",
                        "disk_free_bytes": 2 * 1024**3,
                        "body_json": json.dumps({"alarms": ["queue 41% full"]}),
                    }
                )
        conn.execute(sa.insert(heartbeats), beats)
    return tmp_path
