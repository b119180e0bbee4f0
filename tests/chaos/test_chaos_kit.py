"""The chaos test's own machinery, checked on its own (fast): a logger that resends what was not
answered, a link that refuses and severs, processes that are killed, and the chaos schedule."""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import serial
from chaos_kit import (
    ACTIONS,
    ChaosLogger,
    CutProxy,
    LoggerFrame,
    Service,
    answering_devices,
    ask_for_answer,
    chaos_plan,
    free_port,
    logger_frames,
    unique_qn,
    wait_until,
)

from agents.hj212 import FrameReader, build_cp, build_frame, build_reply_9014, parse_frame
from agents.simulate.scenario import build_scenario
from schemas.reading import reading_id

MN = "410105310000000000000001"


def _frame(minute: int, *, flag: int | None = 4, crc_mode: str = "standard") -> bytes:
    data_time = f"2017120108{minute:02d}00"
    cp = build_cp({"a21026": {"Avg": "78.48", "Flag": "N"}}, data_time=data_time)
    return build_frame(
        st="31", cn="2051", mn=MN, pw="750073", cp=cp, qn=data_time + "000", flag=flag,
        crc_mode=crc_mode,
    )  # fmt: skip


@pytest.mark.parametrize("crc_mode", ["standard", "modbus"])
def test_ask_for_answer_sets_flag_bit_a_and_keeps_a_valid_frame(crc_mode):
    original = _frame(3, crc_mode=crc_mode)
    asked = parse_frame(ask_for_answer(original, crc_mode=crc_mode), crc_mode=crc_mode)
    assert asked.flag == 5 and asked.reply_wanted
    assert asked.qn == "20171201080300000"
    assert asked.values == parse_frame(original, crc_mode=crc_mode).values
    renamed = parse_frame(
        ask_for_answer(original, "20171201080300001", crc_mode), crc_mode=crc_mode
    )
    assert renamed.qn == "20171201080300001" and renamed.flag == 5
    # a frame that already asks stays as it is
    assert ask_for_answer(ask_for_answer(original, crc_mode=crc_mode), crc_mode=crc_mode) == (
        ask_for_answer(original, crc_mode=crc_mode)
    )
    with pytest.raises(ValueError, match="not a 2017 upload"):
        ask_for_answer(_frame(3, flag=None))  # a 2005 logger cannot ask for an answer


def test_unique_qn_takes_the_next_free_millisecond():
    assert unique_qn("20171201033700000", set()) == "20171201033700000"
    taken = {"20171201033700000", "20171201033700001"}
    assert unique_qn("20171201033700000", taken) == "20171201033700002"
    # the next millisecond on the calendar, not the next integer
    assert unique_qn("20171201235959999", {"20171201235959999"}) == "20171202000000000"


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(2017, date(2017, 12, 1), 1, "tiny")


def test_logger_frames_carry_the_contract_reading_ids(scenario):
    device = scenario.device_ids("cems")[0]
    frames = logger_frames(scenario, device, 30)
    assert len(frames) == 30
    assert len({f.qn for f in frames}) == 30
    for item in frames:
        frame = parse_frame(item.data)
        assert frame.reply_wanted
        rid = reading_id(device, frame.cn, frame.data_time, "")
        raw = item.data.rstrip(b"\r\n")
        assert item.readings == {rid: hashlib.sha256(raw).hexdigest()}


def test_answering_devices_are_2017_loggers_of_every_family(scenario):
    chosen = answering_devices(scenario)
    families = {scenario.device_config(d)["family"] for d in chosen}
    assert families == {"cems", "ambient", "vapor", "rsd"}
    for device in chosen:
        first = parse_frame(
            next(scenario.emissions(device)).frame,
            crc_mode=scenario.device_config(device)["crc_mode"],
        )
        assert first.qn and first.flag is not None and first.edition == 2017


def test_chaos_plan_is_seeded_and_covers_every_fault():
    plan = chaos_plan(random.Random(5), cycles=10)
    assert plan == chaos_plan(random.Random(5), cycles=10)
    assert plan != chaos_plan(random.Random(6), cycles=10)
    assert len(plan) == 10
    assert set(ACTIONS) <= {action for _, action, _ in plan}
    assert all(1.5 <= wait <= 4.5 and 0.2 <= down <= 5.0 for wait, _, down in plan)


# ---------------------------------------------------------------------- the logger


def _toy_frames(n: int) -> list[LoggerFrame]:
    out = []
    for minute in range(n):
        data = ask_for_answer(_frame(minute))
        out.append(LoggerFrame(parse_frame(data).qn, data, {f"id{minute}": f"sha{minute}"}))
    return out


def _read_frames(port: serial.Serial, seconds: float) -> list:
    reader = FrameReader()
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += [f for f in reader.feed(port.read(4096)) if not isinstance(f, Exception)]
    return got


def test_logger_resends_until_answered():
    logger = ChaosLogger(MN, _toy_frames(6), interval_s=0.01, resend_after_s=0.5)
    try:
        port = serial.serial_for_url(logger.path, baudrate=115200, timeout=0.05)
        logger.start()
        first = _read_frames(port, 0.4)
        assert [f.qn for f in first] == [f.qn for f in logger.frames]
        for frame in first[::2]:  # answer every other upload
            port.write(build_reply_9014(frame))
        assert wait_until(lambda: len(logger.unanswered()) == 3, 2)
        again = _read_frames(port, 1.5)  # the unanswered ones come back, and only those
        assert {f.qn for f in again} == {f.qn for f in first[1::2]}
        assert logger.resends >= 3
        for frame in again:
            port.write(build_reply_9014(frame))
        assert wait_until(lambda: not logger.unanswered(), 2)
        assert logger.answered_readings() == logger.emitted_readings()
        assert len(logger.emitted_readings()) == 6
        port.close()
    finally:
        logger.close()
    assert logger.error is None


def test_bytes_waiting_when_the_port_is_opened_are_flushed_and_only_resending_brings_them():
    """What the agent loses by dying: pyserial discards the pty's input on open."""
    logger = ChaosLogger(MN, _toy_frames(3), interval_s=0.01, resend_after_s=2.5)
    try:
        logger.start()
        total = sum(len(f.data) for f in logger.frames)
        assert wait_until(lambda: logger.bytes_written >= total, 2)
        port = serial.serial_for_url(logger.path, baudrate=115200, timeout=0.05)
        assert _read_frames(port, 0.5) == []  # flushed on open
        back = _read_frames(port, 3.0)
        assert {f.qn for f in back} == {f.qn for f in logger.frames}
        port.close()
    finally:
        logger.close()


def test_stop_emitting_keeps_resending_but_sends_nothing_new():
    logger = ChaosLogger(MN, _toy_frames(50), interval_s=0.05, resend_after_s=0.3)
    try:
        port = serial.serial_for_url(logger.path, baudrate=115200, timeout=0.05)
        logger.start()
        assert wait_until(lambda: len(logger.emitted) >= 3, 2)
        logger.stop_emitting()
        count = len(logger.emitted)
        seen = _read_frames(port, 1.0)
        assert len(logger.emitted) == count < 50
        assert {f.qn for f in seen} == set(logger.emitted)  # resent, none new
        port.close()
    finally:
        logger.close()


# ---------------------------------------------------------------------- the link


class _Upstream:
    """A loopback HTTP server; ``/slow`` answers after a second."""

    def __init__(self) -> None:
        self.handled: list[str] = []

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/slow":
                    time.sleep(1.0)
                outer.handled.append(self.path)
                body = b"ok"
                # the proxy may have severed the connection meanwhile: the answer goes nowhere
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cut_refuses_then_restores_and_severs_requests_in_flight():
    upstream = _Upstream()
    proxy = CutProxy(upstream.port)
    try:
        assert requests.get(proxy.url + "/a", timeout=5).text == "ok"
        proxy.cut()
        with pytest.raises(requests.ConnectionError, match="refused"):
            requests.get(proxy.url + "/b", timeout=5)
        proxy.restore()
        assert requests.get(proxy.url + "/c", timeout=5).text == "ok"
        # a request on its way: it reaches the server, its answer never comes back
        failed: list[BaseException] = []

        def slow() -> None:
            try:
                requests.get(proxy.url + "/slow", timeout=5)
            except requests.RequestException as exc:
                failed.append(exc)

        thread = threading.Thread(target=slow)
        thread.start()
        assert wait_until(lambda: proxy.connections >= 3, 2, 0.01)
        time.sleep(0.3)
        proxy.cut()
        thread.join(5)
        assert failed and isinstance(failed[0], requests.ConnectionError)
        assert proxy.severed >= 1
        assert wait_until(lambda: "/slow" in upstream.handled, 3)
        proxy.restore()
        assert requests.get(proxy.url + "/d", timeout=5).text == "ok"
        assert proxy.cuts == 2
    finally:
        proxy.close()
        upstream.close()


def test_proxy_to_a_dead_server_drops_the_connection():
    proxy = CutProxy(free_port())  # nobody listens upstream
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(proxy.url + "/x", timeout=5)
    finally:
        proxy.close()


def test_service_is_killed_and_restarted(tmp_path):
    service = Service(
        "sleeper",
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        {},
        tmp_path / "sleeper.log",
    )
    service.start()
    assert service.alive()
    assert wait_until(lambda: "up" in service.tail(), 10)
    service.kill()
    assert not service.alive() and service.exits == [-9] and service.kills == 1
    service.start()
    assert service.starts == 2
    assert wait_until(lambda: service.tail().count("up") == 2, 10)
    assert service.stop() == -15
    assert "===== sleeper start #2 =====" in service.tail()
