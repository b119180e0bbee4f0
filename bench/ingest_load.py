"""Load benchmark of the ingest service: 50 simulated agents, durability on.

``run(duration_s, agents)`` starts ``lantian ingest serve`` (embedded mode: SQLite index, local
landing directory) on a loopback port, lets ``agents`` threads post signed gzip batches for
``duration_s`` seconds, and compares with a baseline that writes the same bytes durably with no
HTTP, no checks and no index (temp file, fsync, rename, directory fsync) at the same concurrency.

Rows: readings/s against that baseline (target: at least 40 % of it), readings/s absolute
(target: 50,000), and the p99 request latency (reported beside the baseline's p99 per-file write).

Batches are built before the clock starts so the load generator spends its time on HTTP only;
each agent is one device and every batch is new (duplicates would short-cut the landing).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from schemas.reading import BEIJING, batch_id, reading_id  # noqa: E402
from schemas.signing import derive_key, signed_headers  # noqa: E402

#: The agent's default batch_max_readings (agents/config.py): a backlog drains in batches this size.
READINGS_PER_BATCH = 500
TARGET_RATIO = 0.40
TARGET_READINGS_PER_S = 50_000


def _readings(device_id: str, start: datetime, n: int) -> list[dict[str, Any]]:
    """``n`` CEMS minute records, built with string operations (the bench must be cheap)."""
    out = []
    for i in range(n):
        local = start + timedelta(minutes=i)
        data_time = local.strftime("%Y%m%d%H%M%S")
        iso = local.isoformat()
        raw = (
            f"##0200QN={data_time}000;ST=31;CN=2051;PW=123456;MN={device_id};Flag=5;"
            f"CP=&&DataTime={data_time};a21026-Avg=12.30,a21026-Flag=N;"
            f"a21002-Avg=45.60,a21002-Flag=N;a19001-Avg=9.8,a19001-Flag=N&&4A80"
        )
        out.append(
            {
                "id": reading_id(device_id, "2051", data_time),
                "device_id": device_id,
                "stream": "cems",
                "cn": "2051",
                "data_time": data_time,
                "device_time": iso,
                "received_at": iso,
                "values": {
                    "a21026": {"Avg": "12.30", "Flag": "N"},
                    "a21002": {"Avg": "45.60", "Flag": "N"},
                    "a19001": {"Avg": "9.8", "Flag": "N"},
                },
                "units": {"a21026": "mg/m3", "a21002": "mg/m3", "a19001": "%"},
                "raw": raw,
                "raw_sha256": hashlib.sha256(raw.encode()).hexdigest(),
                "key": "",
                "clock": {"box_synced": True},
            }
        )
    return out


def _bodies(device_id: str, count: int) -> list[bytes]:
    start = datetime(2017, 11, 1, 0, 0, tzinfo=BEIJING)
    bodies = []
    for k in range(count):
        readings = _readings(
            device_id, start + timedelta(minutes=READINGS_PER_BATCH * k), READINGS_PER_BATCH
        )
        batch = {
            "device_id": device_id,
            "stream": "cems",
            "readings": readings,
            "batch_id": batch_id([r["id"] for r in readings]),
            "agent_version": "bench",
            "contract": 1,
        }
        bodies.append(gzip.compress(json.dumps(batch, separators=(",", ":")).encode(), mtime=0))
    return bodies


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def _baseline(bodies: dict[str, list[bytes]], root: Path, duration_s: float) -> tuple[float, float]:
    """readings/s and p99 seconds of temp+fsync+rename+dir-fsync, same threads, same bytes."""
    latencies: list[float] = []
    count = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration_s

    def writer(device_id: str, items: list[bytes]) -> None:
        directory = root / device_id
        directory.mkdir(parents=True, exist_ok=True)
        for k, body in enumerate(items):
            if time.monotonic() > stop:
                return
            began = time.perf_counter()
            temp, final = directory / f".{k}.tmp", directory / f"{k}.json.gz"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
            os.write(fd, body)
            os.fsync(fd)
            os.close(fd)
            os.rename(temp, final)
            dfd = os.open(directory, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
            with lock:
                latencies.append(time.perf_counter() - began)
                count[0] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=writer, args=item) for item in bodies.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    return count[0] * READINGS_PER_BATCH / elapsed, _p99(latencies)


def _http_load(
    url: str, keys: dict[str, str], bodies: dict[str, list[bytes]], duration_s: float
) -> tuple[float, float, int]:
    import requests

    latencies: list[float] = []
    failures = [0]
    count = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration_s

    def agent(device_id: str, items: list[bytes]) -> None:
        session = requests.Session()
        for body in items:
            if time.monotonic() > stop:
                return
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            headers |= signed_headers(
                keys[device_id], "POST", "/v1/batches", int(time.time()), device_id, body
            )
            began = time.perf_counter()
            response = session.post(url + "/v1/batches", data=body, headers=headers, timeout=60)
            elapsed = time.perf_counter() - began
            with lock:
                if response.status_code == 200 and response.json()["status"] == "landed":
                    latencies.append(elapsed)
                    count[0] += 1
                else:
                    failures[0] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=agent, args=item) for item in bodies.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    return count[0] * READINGS_PER_BATCH / elapsed, _p99(latencies), failures[0]


def run(duration_s: float = 10, agents: int = 50, workers: int = 2) -> list[dict[str, Any]]:
    """Benchmark rows: {name, value, unit, baseline, ratio, target, met}."""
    from ingest.cli import register_device_key

    work = Path(tempfile.mkdtemp(prefix="lantian-ingest-bench-"))
    db_url = f"sqlite:///{work / 'index.sqlite'}"
    landing = work / "landing"
    config = work / "ingest.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[landing]\nroot = "{landing}"\n'
        '[limits]\nrate_per_s = 0\nmax_body_bytes = 67108864\n[server]\nlog_level = "WARNING"\n'
    )
    # Enough new batches for 1.2 × the target over the run, spread over the agents.
    per_agent = max(
        4, int(TARGET_READINGS_PER_S * 1.2 * duration_s / READINGS_PER_BATCH / agents) + 1
    )
    device_ids = [f"BENCH{i:09d}" for i in range(agents)]
    keys = {d: derive_key(f"bench-secret-{d}", d) for d in device_ids}
    for device_id in device_ids:
        register_device_key(db_url, device_id, keys[device_id], "cems")
    bodies = {d: _bodies(d, per_agent) for d in device_ids}

    base_rate, base_p99 = _baseline(bodies, work / "baseline", duration_s)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("LANTIAN_INGEST_SETTINGS", None)
    log = open(work / "server.log", "wb")  # noqa: SIM115 - handed to the child
    server = subprocess.Popen(
        [sys.executable, "-m", "lantian.cli", "ingest", "serve", "--config", str(config),
         "--port", str(port), "--workers", str(workers)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"ingest server did not start; see {work / 'server.log'}")
            time.sleep(0.1)
        rate, p99, failures = _http_load(url, keys, bodies, duration_s)
    finally:
        server.terminate()
        server.wait(30)
        log.close()

    shutil.rmtree(work, ignore_errors=True)  # ~100 MB of landed batches; kept on failure
    ratio = rate / base_rate if base_rate else float("nan")
    note = f"{agents} agents, {READINGS_PER_BATCH} readings/batch, {workers} workers, SQLite index"
    return [
        {
            "name": "ingest readings/s vs fsync-only baseline",
            "value": round(rate, 1),
            "unit": "readings/s",
            "baseline": round(base_rate, 1),
            "ratio": round(ratio, 3),
            "target": TARGET_RATIO,
            "met": ratio >= TARGET_RATIO and failures == 0,
            "note": note,
        },
        {
            "name": "ingest readings/s absolute",
            "value": round(rate, 1),
            "unit": "readings/s",
            "baseline": round(base_rate, 1),
            "ratio": round(ratio, 3),
            "target": TARGET_READINGS_PER_S,
            "met": rate >= TARGET_READINGS_PER_S and failures == 0,
            "note": note,
        },
        {
            "name": "ingest p99 request latency",
            "value": round(p99 * 1000, 1),
            "unit": "ms",
            "baseline": round(base_p99 * 1000, 1),
            "ratio": round(p99 / base_p99, 2) if base_p99 else None,
            "target": None,
            "met": None,
            "note": f"baseline: p99 of one durable file write; failed requests: {failures}",
        },
    ]


if __name__ == "__main__":
    for row in run(float(sys.argv[1]) if len(sys.argv) > 1 else 10):
        print(json.dumps(row, ensure_ascii=False))
