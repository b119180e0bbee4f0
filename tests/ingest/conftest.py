"""Helpers for the ingest tests: realistic batches, signed posts, a real uvicorn on loopback."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from sqlalchemy import func, select

from agents.hj212.frame import build_cp, build_frame
from ingest.app import create_app
from ingest.cli import register_device_key
from ingest.db import get_engine, landed_batches
from ingest.settings import Settings, load_plausibility
from schemas.reading import BEIJING, Batch, Reading
from schemas.signing import derive_key, new_secret, signed_headers

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")

CEMS_MN = "88888880000001"  # 14-char 2005-style MN, still common in the field
AMBIENT_MN = "410100000000000000000022"  # 24-char 2017 MN


def cems_reading(
    device_id: str, minute: datetime, *, so2: str = "12.30", received_lag_s: float = 25.0
) -> dict[str, Any]:
    """One CEMS minute record (CN 2051) as the agent would build it from a real frame."""
    local = minute.astimezone(BEIJING)
    data_time = local.strftime("%Y%m%d%H%M%S")
    values = {
        "a21026": {"Avg": so2, "Flag": "N"},
        "a21002": {"Avg": "45.6", "Flag": "N"},
        "a19001": {"Avg": "9.8", "Flag": "N"},
    }
    frame = build_frame(
        st="31",
        cn="2051",
        mn=device_id,
        qn=local.strftime("%Y%m%d%H%M%S") + "000",
        flag=5,
        cp=build_cp(values, data_time=data_time),
    )
    reading = Reading(
        device_id=device_id,
        stream="cems",
        cn="2051",
        data_time=data_time,
        device_time=local.isoformat(),
        received_at=(local + timedelta(seconds=received_lag_s)).isoformat(),
        values=values,
        raw=frame.decode("ascii").rstrip("\r\n"),
        units={"a21026": "mg/m3", "a21002": "mg/m3", "a19001": "%"},
        clock={"box_synced": True, "device_offset_s": 0.0, "drift": False},
    )
    return reading.to_dict()


def make_batch(
    device_id: str = CEMS_MN, n: int = 5, start: datetime | None = None, **kwargs: Any
) -> dict[str, Any]:
    """``n`` consecutive minute readings starting at ``start`` (default: 2 hours ago)."""
    start = start or (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    readings = [cems_reading(device_id, start + timedelta(minutes=i), **kwargs) for i in range(n)]
    batch = Batch(device_id=device_id, stream="cems", readings=readings, agent_version="test")
    return json.loads(batch.to_json())


def gz(batch: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(batch, separators=(",", ":")).encode(), mtime=0)


@dataclass
class Box:
    """A simulated field box: a device id and the key it derived from its own secret."""

    device_id: str
    key: str
    stream: str = "cems"


def enrol_box(db_url: str, device_id: str, stream: str = "cems") -> Box:
    key = derive_key(new_secret(), device_id)
    register_device_key(db_url, device_id, key, stream)
    return Box(device_id, key, stream)


def signed_post(
    base_url: str,
    path: str,
    box: Box,
    body: bytes,
    *,
    encoding: str | None = "gzip",
    timestamp: int | None = None,
    extra: dict[str, str] | None = None,
    session: requests.Session | None = None,
    timeout: float = 30,
) -> requests.Response:
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/json"}
    if encoding:
        headers["Content-Encoding"] = encoding
    headers |= signed_headers(box.key, "POST", path, ts, box.device_id, body)
    headers |= extra or {}
    return (session or requests).post(base_url + path, data=body, headers=headers, timeout=timeout)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with contextlib.closing(free_socket()) as sock:
        return sock.getsockname()[1]


class ThreadServer:
    """The real app under a real uvicorn in a thread, on a pre-bound loopback socket."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.sock = free_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, date_header=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def serve_subprocess(config: Path, port: int, log: Path, workers: int = 1) -> subprocess.Popen:
    """``lantian ingest serve`` as a real process (the way systemd starts it)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("LANTIAN_INGEST_SETTINGS", None)
    handle = open(log, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [
            PYTHON,
            "-c",
            "import sys; from lantian.cli import main; sys.exit(main(sys.argv[1:]))",
            "ingest",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=REPO,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def start_server(config: Path, log: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    """A ready ``lantian ingest serve`` on a free port (another port if one was taken meanwhile)."""
    for _attempt in range(3):
        port = free_port()
        proc = serve_subprocess(config, port, log, workers)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, timeout=60)
            return proc, url
        except RuntimeError:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
                raise
    raise RuntimeError(f"ingest server did not start; see {log}")


def write_config(path: Path, db_url: str, landing: Path, **limits: Any) -> Path:
    lines = [
        "[database]",
        f'url = "{db_url}"',
        "[landing]",
        f'root = "{landing}"',
        "[limits]",
    ]
    lines += [f"{k} = {v}" for k, v in limits.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def landed_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json.gz")) if root.exists() else []


def index_count(db_url: str) -> int:
    with get_engine(db_url).connect() as conn:
        return conn.execute(select(func.count()).select_from(landed_batches)).scalar_one()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db_url": f"sqlite:///{tmp_path / 'index.sqlite'}",
        "landing_root": tmp_path / "landing",
        "max_body_bytes": 64 * 1024,
        "max_inflated_bytes": 512 * 1024,
        "rate_per_s": 1000.0,
        "rate_burst": 1000,
        "plausibility": load_plausibility(),
    }
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # a helper, not a test


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return test_settings(tmp_path)


@pytest.fixture
def server(settings: Settings) -> Iterator[ThreadServer]:
    with ThreadServer(settings) as running:
        yield running


@pytest.fixture
def box(settings: Settings) -> Box:
    return enrol_box(settings.db_url, CEMS_MN)


def pg_available(url: str = "postgresql://postgres@127.0.0.1:5432/postgres") -> str | None:
    """None if the PostgreSQL of this machine answers, else why not."""
    try:
        import psycopg2

        psycopg2.connect(url, connect_timeout=3).close()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means skip with its reason
        return f"{type(exc).__name__}: {exc}".strip()
