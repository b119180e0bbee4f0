"""The run loop: frames → readings → durable queue → (then) 9014 → uploads; stop and kill."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import time
from datetime import datetime

import pytest
from agent_testkit import (
    CEMS_MN,
    PYTHON,
    REPO,
    ScriptedServer,
    cems_frame,
    free_port_url,
    minute_times,
    pty_pair,
    write_config,
)

from agents.clock import ClockWatch
from agents.config import DeviceConfig, PortConfig, load_config, write_key
from agents.devices import get_family
from agents.hj212 import build_cp, build_frame, parse_frame
from agents.queue import DurableQueue
from agents.runner import PortPipeline, RejectLog, Runner
from schemas.reading import BEIJING
from schemas.signing import derive_key

KEY = derive_key("runner-test", CEMS_MN)
DEVICE = DeviceConfig(mn=CEMS_MN, family="cems", units={"a21026": "mg/m3"}, pw="123456")
PORT = PortConfig(path="loop://", family="cems", devices=(CEMS_MN,), packet_timeout_s=30)


def queued_ids(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM readings")}


def make_pipeline(tmp_path, queue, writes, **kw):
    def write(reply: bytes) -> bool:
        # At the moment the logger is answered, the reading must already be on disk.
        writes.append((reply, queued_ids(queue.path)))
        return True

    return PortPipeline(
        PORT,
        {CEMS_MN: DEVICE},
        queue,
        ClockWatch(),
        decoders={"cems": get_family("cems").decode},
        write=write,
        rejects=RejectLog(tmp_path / "rejects.jsonl"),
        now=lambda: datetime(2017, 11, 1, 8, 0, 3, tzinfo=BEIJING),
        **kw,
    )


def split_packets(data_time: str) -> list[bytes]:
    parts = [{"a21026": {"Avg": "10.0", "Flag": "N"}}, {"a19001": {"Avg": "8.0", "Flag": "N"}}]
    return [
        build_frame(
            st="31",
            cn="2051",
            mn=CEMS_MN,
            pw="123456",
            qn=f"{data_time}00{pno}",
            cp=build_cp(values, data_time=data_time),
            flag=7,
            pnum=2,
            pno=pno,
        )  # fmt: skip
        for pno, values in enumerate(parts, start=1)
    ]


def test_pipeline_queues_before_answering(tmp_path, caplog):
    queue = DurableQueue(tmp_path / "q.sqlite", 10**8, ballast_bytes=0)
    writes: list = []
    pipe = make_pipeline(tmp_path, queue, writes)
    frame = cems_frame("20171101080000")
    assert pipe.feed(b"\xff\x00noise" + frame[:40]) == 0
    assert pipe.feed(frame[40:]) == 1
    (reading_id,) = queued_ids(queue.path)
    ((reply, on_disk),) = writes
    assert reading_id in on_disk
    answer = parse_frame(reply)
    assert (answer.cn, answer.st, answer.qn, answer.mn) == (
        "9014",
        "91",
        "20171101080000000",
        CEMS_MN,
    )
    # The reading carries the clock verdict (device 3 s behind the box here).
    batch = queue.next_batch()
    assert batch.readings[0]["clock"]["device_offset_s"] == -3.0
    assert batch.readings[0]["units"]["a21026"] == "mg/m3"
    queue.close()


def test_split_packets_are_queued_whole_then_each_packet_answered(tmp_path):
    queue = DurableQueue(tmp_path / "q.sqlite", 10**8, ballast_bytes=0)
    writes: list = []
    pipe = make_pipeline(tmp_path, queue, writes)
    first, second = split_packets("20171101080000")
    pipe.feed(first)
    assert queue.depth() == 0 and writes == []  # half a record: not stored, not answered
    pipe.feed(second)
    assert queue.depth() == 1
    assert [parse_frame(w[0]).qn for w in writes] == ["20171101080000001", "20171101080000002"]
    reading = queue.next_batch().readings[0]
    assert set(reading["values"]) == {"a21026", "a19001"}
    assert reading["raw"].count("\n") == 1  # both sub-frames kept as evidence
    queue.close()


def test_bad_frames_are_kept_as_evidence_and_not_answered(tmp_path, caplog):
    queue = DurableQueue(tmp_path / "q.sqlite", 10**8, ballast_bytes=0)
    writes: list = []
    pipe = make_pipeline(tmp_path, queue, writes)
    with caplog.at_level(logging.WARNING):
        pipe.feed(cems_frame("20171101080000", crc_mode="modbus"))
        pipe.feed(cems_frame("20171101080100", pw="999999"))
    assert queue.depth() == 0 and writes == []
    assert "the logger uses CRC mode 'modbus': set crc_mode" in caplog.text
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rejects] == ["crc", "decode"]
    assert "PW" in rejects[1]["message"]
    assert rejects[1]["raw"].startswith("##") and "20171101080100" in rejects[1]["raw"]
    queue.close()


def test_full_queue_means_no_answer(tmp_path, caplog):
    queue = DurableQueue(tmp_path / "q.sqlite", 1500, ballast_bytes=0)
    writes: list = []
    pipe = make_pipeline(tmp_path, queue, writes)
    frames = [cems_frame(t, cn="2051") for t in minute_times("20171101080000", 4)]
    with caplog.at_level(logging.ERROR):
        for frame in frames:
            pipe.feed(frame)
    stored = queue.depth()
    assert 0 < stored < 4
    assert len(writes) == stored  # only what was stored was answered
    assert pipe.counts["refused"] == 4 - stored
    assert "logger not answered" in caplog.text
    queue.close()


def test_unknown_device_is_queued_with_a_warning(tmp_path, caplog):
    queue = DurableQueue(tmp_path / "q.sqlite", 10**8, ballast_bytes=0)
    pipe = make_pipeline(tmp_path, queue, [])
    with caplog.at_level(logging.WARNING):
        pipe.feed(cems_frame("20171101080000", mn="STRANGER0001"))
        pipe.feed(cems_frame("20171101080100", mn="STRANGER0001"))
    assert queue.depth("STRANGER0001") == 2
    assert caplog.text.count("MN STRANGER0001, which is not configured") == 1
    queue.close()


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def agent_config(tmp_path, pty_path: str, server: str):
    path = write_config(
        tmp_path,
        server=server,
        ports=[{"path": pty_path, "family": "cems", "devices": [CEMS_MN], "read_timeout_s": 0.05}],
        devices=[{"mn": CEMS_MN, "family": "cems", "pw": "123456", "units": {"a21026": "mg/m3"}}],
    )
    cfg = load_config(path)
    write_key(cfg.box.data_dir, CEMS_MN, KEY)
    return path, cfg


def test_runner_end_to_end_in_process(tmp_path):
    times = minute_times("20171101080000", 5)
    with pty_pair() as pty, ScriptedServer() as server:
        _, cfg = agent_config(tmp_path, pty.path, server.url)
        runner = Runner(cfg, box_clock=lambda: True)
        runner.start()
        try:
            assert wait_until(lambda: runner.readers[0].is_open)
            for t in times:
                pty.write(cems_frame(t))
            replies = b""
            deadline = time.monotonic() + 10
            while replies.count(b"CN=9014") < 5 and time.monotonic() < deadline:
                replies += pty.read_available(timeout=0.2)
            assert wait_until(lambda: runner.queue.depth() == 0 and server.batches())
            assert wait_until(lambda: any(s.path == "/v1/heartbeats" for s in server.seen))
            assert wait_until(lambda: cfg.state_path.exists())
        finally:
            runner.stop()
    assert replies.count(b"CN=9014") == 5
    landed = sorted(r["data_time"] for s in server.batches() for r in s.json()["readings"])
    assert landed == times
    beat = next(s for s in server.seen if s.path == "/v1/heartbeats").json()
    assert beat["device_id"] == CEMS_MN and beat["box_id"] == "box-test"
    assert set(beat) >= {
        "queue_depth",
        "oldest_unsent",
        "ports",
        "clock_offset_s",
        "disk_free_bytes",
        "version",
        "alarms",
    }
    state = json.loads(cfg.state_path.read_text())
    assert state["ports"][pty.path]["frames"] == 5
    assert state["running"] is False and state["ports"][pty.path]["open"] is False
    assert not any(t.is_alive() for t in runner.readers)


def _spawn_agent(config_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [PYTHON, "-m", "agents.cli", "run", "--config", str(config_path), "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )


def _port_open(cfg, path: str) -> bool:
    try:
        state = json.loads(cfg.state_path.read_text())
    except (OSError, ValueError):
        return False
    return bool(state.get("ports", {}).get(path, {}).get("open"))


def _read_replies(pty, want: int, timeout: float = 15.0) -> bytes:
    replies = b""
    deadline = time.monotonic() + timeout
    while replies.count(b"CN=9014") < want and time.monotonic() < deadline:
        replies += pty.read_available(timeout=0.2)
    return replies


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_agent_process_survives_stop_and_kill(tmp_path, sig):
    """Every reading the logger was answered for is in the queue after SIGTERM or SIGKILL.
    The server is down, so nothing leaves the queue."""
    times = minute_times("20171101080000", 6)
    with pty_pair() as pty:
        config_path, cfg = agent_config(tmp_path, pty.path, free_port_url())
        proc = _spawn_agent(config_path)
        try:
            # pyserial flushes input on open: write once the agent reports the port open.
            assert wait_until(lambda: _port_open(cfg, pty.path), timeout=20)
            for t in times:
                pty.write(cems_frame(t))
            replies = _read_replies(pty, len(times))
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    answered = [parse_frame(line + b"\r\n").qn for line in replies.split(b"\r\n") if line]
    assert answered == [t + "000" for t in times]
    queue = DurableQueue(cfg.queue_path, 10**8, ballast_bytes=0)
    queued = {r["data_time"] for r in queue.next_batch().readings}
    queue.close()
    assert queued == set(times)
    if sig == signal.SIGTERM:
        assert proc.returncode == 0
        assert b"signal SIGTERM: stopping" in err and b"lantian-agent stopped" in err
    else:
        assert proc.returncode == -signal.SIGKILL
