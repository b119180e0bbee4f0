"""Two ingest replicas on one PostgreSQL index and one landing directory (the distributed mode).

Needs the PostgreSQL of this machine (postgresql://postgres@127.0.0.1:5432/, trust auth). Each
run creates and drops its own database.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from conftest import (
    enrol_box,
    gz,
    landed_files,
    make_batch,
    pg_available,
    signed_post,
    start_server,
    write_config,
)
from sqlalchemy import create_engine, text

from ingest.db import dispose_engine
from ingest.landing import LandingIndex
from schemas.reading import BEIJING
from schemas.signing import signed_headers

pytestmark = pytest.mark.distributed

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = pg_available(ADMIN_URL)
    if reason:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({reason})")
    name = f"lantian_ingest_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        dispose_engine(url)
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def replicas(pg_url: str, tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    landing = tmp_path / "shared-landing"
    config = write_config(
        tmp_path / "ingest.toml", pg_url, landing, rate_per_s=10000, rate_burst=10000
    )
    # Replica A with two worker processes, replica B with one: three processes in all.
    procs, urls = [], []
    try:
        for log, workers in (("a.log", 2), ("b.log", 1)):
            proc, url = start_server(config, tmp_path / log, workers)
            procs.append(proc)
            urls.append(url)
        yield urls, landing
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except Exception:  # noqa: BLE001
                proc.kill()


def test_same_batches_to_both_replicas_land_exactly_once(
    pg_url: str, replicas: tuple[list[str], Path]
) -> None:
    urls, landing = replicas
    boxes = [enrol_box(pg_url, f"8888888100{i:04d}") for i in range(3)]
    t0 = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
    work = [
        (box, make_batch(box.device_id, n=10, start=t0 + timedelta(minutes=10 * k)))
        for box in boxes
        for k in range(20)
    ]
    outcomes: dict[str, list[str]] = {b["batch_id"]: [] for _, b in work}
    lock = threading.Lock()

    def send(url: str, offset: int, barrier: threading.Barrier) -> None:
        session = requests.Session()
        for box, batch in work:
            barrier.wait()
            # Four signatures of one batch, as an agent's resends would be; the offsets are far
            # apart so that two senders can never sign with the same second.
            response = signed_post(
                url,
                "/v1/batches",
                box,
                gz(batch),
                session=session,
                timestamp=int(time.time()) + 60 * offset,
            )
            with lock:
                outcomes[batch["batch_id"]].append(
                    f"{response.status_code}:{response.json().get('status', response.json().get('error'))}"
                )

    barrier = threading.Barrier(4)
    threads = [
        threading.Thread(target=send, args=(urls[i % 2], i, barrier)) for i in range(4)
    ]  # two concurrent senders per replica
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    for batch_id, results in outcomes.items():
        counts = Counter(results)
        assert counts["200:landed"] == 1, (batch_id, results)
        assert counts["200:duplicate"] == 3, (batch_id, results)
    index = LandingIndex(pg_url, landing)
    assert len(index.batches()) == len(work)
    assert len(landed_files(landing)) == len(work)
    report = index.verify()
    assert report.ok and report.checked == len(work) and not report.unindexed
    assert not report.temporaries
    assert all(entry.n_readings == 10 for entry in index.batches())
    sample = index.get(work[0][1]["batch_id"])
    assert index.read_batch(sample) == work[0][1]


def test_replay_cache_is_shared_between_replicas(
    pg_url: str, replicas: tuple[list[str], Path]
) -> None:
    urls, landing = replicas
    box = enrol_box(pg_url, "88888881009999")
    body = gz(make_batch(box.device_id, n=3))
    headers = signed_headers(box.key, "POST", "/v1/batches", int(time.time()), box.device_id, body)
    headers |= {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    first = requests.post(urls[0] + "/v1/batches", data=body, headers=headers, timeout=30)
    assert first.status_code == 200
    replay = requests.post(urls[1] + "/v1/batches", data=body, headers=headers, timeout=30)
    assert replay.status_code == 401 and replay.json()["error"] == "replay"
    assert len(landed_files(landing)) == 1


def test_suspension_on_one_replica_applies_to_both(
    pg_url: str, replicas: tuple[list[str], Path]
) -> None:
    from ingest.registry import Registry

    urls, _ = replicas
    box = enrol_box(pg_url, "88888881008888")
    Registry(pg_url).set_state(box.device_id, "suspended")
    for url in urls:
        response = signed_post(url, "/v1/batches", box, gz(make_batch(box.device_id, n=2)))
        assert response.status_code == 403 and response.json()["error"] == "device_suspended"


def test_control_characters_are_refused_not_a_postgres_error(
    pg_url: str, replicas: tuple[list[str], Path]
) -> None:
    """PostgreSQL refuses NUL in text: such input must be a 4xx, never a 500."""
    urls, _ = replicas
    box = enrol_box(pg_url, "88888881007777")
    beat = {"device_id": box.device_id, "box_id": "box\u0000-7", "version": "0.1"}
    response = signed_post(urls[1], "/v1/heartbeats", box, json.dumps(beat).encode(), encoding=None)
    assert response.status_code == 422 and "box_id" in response.json()["detail"]
    enrol = requests.post(
        urls[0] + "/v1/enroll",
        json={"device_id": "M\u00001", "enrolment_code": "X\u0000", "key": "0" * 64},
        timeout=30,
    )
    assert enrol.status_code == 401 and enrol.json()["error"] == "unknown_device"
