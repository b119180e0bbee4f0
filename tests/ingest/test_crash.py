"""SIGKILL under load: every batch that got a 2xx survives the crash and verifies."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from conftest import (
    enrol_box,
    gz,
    make_batch,
    signed_post,
    start_server,
    write_config,
)

from ingest.landing import LandingIndex
from schemas.reading import BEIJING

DEVICES = 4
BATCHES_PER_DEVICE = 30
KILL_AFTER_ACKS = 25


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_load_loses_no_acknowledged_batch(
    tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 2 workers every process of the service is SIGKILLed (the workers first, so none
    gets the supervisor's orderly SIGTERM), as in a power cut."""
    # A killed supervisor cannot remove its temporary metrics directory: give it one here.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    db_url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    landing = tmp_path / "landing"
    config = write_config(
        tmp_path / "ingest.toml", db_url, landing, rate_per_s=10000, rate_burst=10000
    )
    boxes = [enrol_box(db_url, f"8888888000{i:04d}") for i in range(DEVICES)]
    t0 = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
    batches = {
        box.device_id: [make_batch(box.device_id, n=10, start=t0 + timedelta(minutes=10 * k)) for k in range(BATCHES_PER_DEVICE)]
        for box in boxes
    }  # fmt: skip

    server, url = start_server(config, tmp_path / "server.log", workers=workers)
    worker_pids = _children(server.pid) if workers > 1 else []
    assert workers == 1 or len(worker_pids) >= 2  # both workers (and maybe a helper)
    acked: dict[str, dict] = {}
    signed_at: dict[str, int] = {}
    lock = threading.Lock()
    enough = threading.Event()
    try:

        def agent(box) -> None:  # noqa: ANN001
            session = requests.Session()
            for batch in batches[box.device_id]:
                ts = signed_at[batch["batch_id"]] = int(time.time())
                try:
                    response = signed_post(
                        url,
                        "/v1/batches",
                        box,
                        gz(batch),
                        session=session,
                        timeout=10,
                        timestamp=ts,
                    )
                except requests.RequestException:
                    return  # the server is gone
                if response.status_code == 200:
                    with lock:
                        acked[batch["batch_id"]] = batch
                        if len(acked) >= KILL_AFTER_ACKS:
                            enough.set()

        agents = [threading.Thread(target=agent, args=(box,)) for box in boxes]
        for thread in agents:
            thread.start()
        assert enough.wait(60), f"only {len(acked)} acknowledgements before the deadline"
        for pid in worker_pids:  # mid-load: other requests are in flight
            os.kill(pid, signal.SIGKILL)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        for thread in agents:
            thread.join(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    total = DEVICES * BATCHES_PER_DEVICE
    assert KILL_AFTER_ACKS <= len(acked) < total, "the kill did not land mid-load"

    # After the restart, every acknowledged batch is indexed and reads back byte-identical.
    server, url = start_server(config, tmp_path / "server.log")
    try:
        index = LandingIndex(db_url, landing)
        for batch_id, batch in acked.items():
            entry = index.get(batch_id)
            assert entry is not None, f"acknowledged batch {batch_id} lost"
            assert index.read_batch(entry) == batch
        report = index.verify()
        assert report.ok, (report.tampered, report.missing)

        # The agents resend everything they still hold: acknowledged ones are duplicates.
        session = requests.Session()
        for box in boxes:
            for batch in batches[box.device_id]:
                # Like the agent's uplink: never the same (timestamp, body) twice, or the
                # server rightly takes the resend of a request cut off by the kill for a replay.
                timestamp = max(int(time.time()), signed_at.get(batch["batch_id"], 0) + 1)
                response = signed_post(
                    url, "/v1/batches", box, gz(batch), session=session, timestamp=timestamp
                )
                assert response.status_code == 200, response.text
                if batch["batch_id"] in acked:
                    assert response.json()["status"] == "duplicate"
        assert len(index.batches()) == total
        final = index.verify()
        assert final.ok and final.checked == total
        # A file published just before the kill but never indexed was indexed by the resend
        # (same UTC landing day; across midnight it would stay as a listed orphan).
        assert final.unindexed == [] or datetime.now(UTC).hour == 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
