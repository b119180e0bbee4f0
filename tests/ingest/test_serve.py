"""`lantian ingest serve --workers 2`: one SO_REUSEPORT socket per worker (ingest/serve.py)."""

from __future__ import annotations

import http.client
import os
import signal
import time
from pathlib import Path

from conftest import start_server, write_config


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


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    server, url = start_server(_config(tmp_path), tmp_path / "server.log", workers=2)
    workers = _workers(server.pid)
    assert len(workers) == 2
    os.kill(server.pid, signal.SIGKILL)
    server.wait(10)
    assert _wait_gone(workers), "worker processes kept serving after the supervisor died"
