"""`lantian ingest serve --workers 2`: one SO_REUSEPORT socket per worker (ingest/serve.py)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import time
from pathlib import Path

import requests
from conftest import enrol_box, gz, make_batch, signed_post, start_server, write_config


def _workers(supervisor: int) -> list[int]:
    """The spawned worker processes of a supervisor (not multiprocessing's helpers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == supervisor and b"spawn_main" in cmdline:
            found.append(int(entry))
    return sorted(found)


def _established(pid: int, port: int) -> int:
    """TCP connections to ``port`` that process ``pid`` holds (Linux /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in inodes:  # 01 = ESTABLISHED
            count += 1
    return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] != "Z"


def _wait_gone(pids: list[int], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _config(tmp_path: Path) -> Path:
    db_url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    return write_config(tmp_path / "ingest.toml", db_url, tmp_path / "landing")


def test_connections_opened_at_once_are_spread_over_both_workers(tmp_path: Path) -> None:
    server, url = start_server(_config(tmp_path), tmp_path / "server.log", workers=2)
    connections: list[http.client.HTTPConnection] = []
    try:
        workers = _workers(server.pid)
        assert len(workers) == 2
        port = int(url.rsplit(":", 1)[1])
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(40)]
        for conn in connections:
            conn.connect()
        for conn in connections:  # keep-alive: every connection stays with its worker
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b'{"status":"ok"}'
        held = [_established(pid, port) for pid in workers]
        assert sum(held) >= 40  # (+ a readiness probe the server may not have closed yet)
        # Hash-spread: 40 connections over 2 sockets; fewer than 8 on one is ~1e-4 likely.
        assert min(held) >= 8, held
    finally:
        for conn in connections:
            conn.close()
        server.send_signal(signal.SIGTERM)
        assert server.wait(40) == 0
    assert _wait_gone(workers)


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    # A killed supervisor cannot remove its temporary metrics directory: give it one here.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    server, url = start_server(_config(tmp_path), tmp_path / "server.log", workers=2)
    workers = _workers(server.pid)
    assert len(workers) == 2
    os.kill(server.pid, signal.SIGKILL)
    server.wait(10)
    assert _wait_gone(workers), "worker processes kept serving after the supervisor died"


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def _landed_in(files: list[Path], work: Path) -> float:
    """``batches{status="landed"}`` as counted in the given per-process metric files only."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    work.mkdir()
    for path in files:
        shutil.copy(path, work / path.name)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(work))
    text = generate_latest(registry).decode()
    return _sample(text, 'lantian_ingest_batches_total{status="landed"}') or 0.0


def test_metrics_are_totals_over_both_workers(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Every scrape, whichever worker answers it, reports the requests of both workers."""
    metrics_dir = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))  # the operator's choice
    db_url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    config = write_config(
        tmp_path / "ingest.toml", db_url, tmp_path / "landing", rate_per_s=1000, rate_burst=1000
    )
    boxes = [enrol_box(db_url, f"8888888100{i:04d}") for i in range(2)]
    server, url = start_server(config, tmp_path / "server.log", workers=2)
    try:
        workers = _workers(server.pid)
        assert len(workers) == 2
        landed = 0
        for k in range(12):  # a new connection per request: the kernel spreads them
            for box in boxes:
                batch = make_batch(box.device_id, n=3 + k)
                answer = signed_post(url, "/v1/batches", box, gz(batch))
                assert answer.status_code == 200, answer.text
                landed += 1
        readings = sum(3 + k for k in range(12)) * len(boxes)
        refused = signed_post(url, "/v1/batches", boxes[0], b"[]", encoding=None)
        assert refused.status_code == 422
        scrapes = []
        for _ in range(10):  # fresh connections again: both workers answer some of these
            with requests.get(url + "/metrics", timeout=10) as answer:
                assert answer.status_code == 200
                scrapes.append(answer.text)
        for text in scrapes:
            assert _sample(text, 'lantian_ingest_batches_total{status="landed"}') == landed
            assert _sample(text, "lantian_ingest_readings_total") == readings
            assert _sample(text, "lantian_ingest_landing_seconds_count") == landed
            assert (
                _sample(text, 'lantian_ingest_rejections_total{reason="contract_violation"}') == 1
            )
        # Both workers served uploads: the totals above are sums, not one worker's share.
        shares = [
            _landed_in(sorted(metrics_dir.glob(f"*_{pid}.db")), tmp_path / f"share-{pid}")
            for pid in workers
        ]
        assert sum(shares) == landed and min(shares) > 0, shares
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(40) == 0
    assert _wait_gone(workers)
