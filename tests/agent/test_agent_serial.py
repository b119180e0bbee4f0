"""Serial reading through pyserial on a real pty: noise, half frames, unplugging, the watchdog."""

from __future__ import annotations

import logging
import os
import threading
import time

from agent_testkit import Pty, cems_frame, minute_times, pty_pair

from agents.config import PortConfig
from agents.hj212 import Frame, FrameError, FrameReader, TruncatedError
from agents.serial_port import PortReader, open_port


class RecordingSink:
    """A ByteSink that frames with the real FrameReader and records what came out."""

    def __init__(self) -> None:
        self.reader = FrameReader()
        self.frames: list[Frame] = []
        self.errors: list[FrameError] = []
        self.resets: list[str] = []
        self.lock = threading.Lock()

    def feed(self, data: bytes) -> int:
        good = 0
        with self.lock:
            for item in self.reader.feed(data):
                if isinstance(item, Frame):
                    self.frames.append(item)
                    good += 1
                else:
                    self.errors.append(item)
        return good

    def tick(self) -> None:
        pass

    def reset(self, reason: str) -> None:
        with self.lock:
            self.resets.append(reason)
            self.errors.extend(self.reader.flush())


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def port_config(path: str, **kw) -> PortConfig:
    options = {"read_timeout_s": 0.05, "watchdog_s": 60.0}
    options.update(kw)
    return PortConfig(path=path, family="cems", devices=("x",), **options)


def start_reader(path: str, sink, **kw) -> tuple[PortReader, threading.Event]:
    stop = threading.Event()
    reader = PortReader(port_config(path, **kw), sink, stop, reopen_delays_s=(0.05, 0.1))
    reader.start()
    return reader, stop


def test_frames_noise_and_half_frames_through_a_pty():
    times = minute_times("20171101080000", 4)
    frames = [cems_frame(t) for t in times]
    with pty_pair() as pty:
        sink = RecordingSink()
        reader, stop = start_reader(pty.path, sink)
        try:
            # pyserial flushes the input buffer when it opens: write only once it is open.
            assert wait_until(lambda: reader.is_open)
            pty.write(b"\x00\xff line noise \x13")
            pty.write(frames[0])
            pty.write(frames[1][:30])  # a logger reset mid-frame: half a frame ...
            pty.write(frames[2])  # ... then a whole one
            for i in range(0, len(frames[3]), 7):  # and one dribbled out in small pieces
                pty.write(frames[3][i : i + 7])
                time.sleep(0.005)
            assert wait_until(lambda: len(sink.frames) == 3)
        finally:
            stop.set()
            reader.join(5)
    assert [f.data_time for f in sink.frames] == [times[0], times[2], times[3]]
    kinds = [e.kind for e in sink.errors]
    assert "garbage" in kinds and ("truncated" in kinds or "length" in kinds)
    assert reader.frames == 3 and reader.opens == 1
    assert not reader.is_alive()


def test_unplugged_port_is_reopened(tmp_path, caplog):
    """A by-id style symlink: the adapter goes away (pty closed, link dangling), comes back as
    another device node, and the reader picks it up without a restart."""
    link = tmp_path / "usb-logger"
    first = Pty()
    os.symlink(first.path, link)
    sink = RecordingSink()
    with caplog.at_level(logging.INFO, logger="lantian.agent.serial"):
        reader, stop = start_reader(str(link), sink)
        second = None
        try:
            assert wait_until(lambda: reader.is_open)
            first.write(cems_frame("20171101080000"))
            assert wait_until(lambda: len(sink.frames) == 1)
            first.write(cems_frame("20171101080100")[:25])  # cut by the unplug
            time.sleep(0.1)
            first.close()  # unplugged
            assert wait_until(lambda: reader.failures >= 2)  # lost, then cannot reopen
            assert not reader.is_open
            second = Pty()
            tmp = tmp_path / "usb-logger.new"
            os.symlink(second.path, tmp)
            os.replace(tmp, link)  # plugged back in
            assert wait_until(lambda: reader.opens == 2)
            second.write(cems_frame("20171101080200"))
            assert wait_until(lambda: len(sink.frames) == 2)
        finally:
            stop.set()
            reader.join(5)
            if second:
                second.close()
    assert [f.data_time for f in sink.frames] == ["20171101080000", "20171101080200"]
    assert sink.resets, "the reader must tell the sink the stream broke"
    assert any(isinstance(e, TruncatedError) for e in sink.errors)  # the cut frame is reported
    assert "reopening" in caplog.text and "cannot open" in caplog.text and "reopened" in caplog.text


def test_watchdog_is_about_frames_not_bytes(caplog):
    with pty_pair() as pty:
        sink = RecordingSink()
        with caplog.at_level(logging.WARNING, logger="lantian.agent.serial"):
            reader, stop = start_reader(pty.path, sink, watchdog_s=0.3)
            try:
                assert wait_until(lambda: reader.is_open)
                pty.write(b"garbage with no frame in it\r\n")
                assert wait_until(lambda: reader.watchdog_alarm, timeout=3)
                assert reader.bytes > 0  # bytes came, frames did not
                pty.write(cems_frame("20171101080000"))
                assert wait_until(lambda: not reader.watchdog_alarm)
                status = reader.status()
            finally:
                stop.set()
                reader.join(5)
    assert "no frame for" in caplog.text
    assert status["frames"] == 1 and status["open"] is True
    assert status["last_frame_at"] is not None and status["silent_s"] < 1


def test_write_sends_answers_to_the_logger():
    with pty_pair() as pty:
        sink = RecordingSink()
        reader, stop = start_reader(pty.path, sink)
        try:
            assert wait_until(lambda: reader.is_open)
            assert reader.write(b"##0010ST=91;CN=9014&&\r\n")
            assert pty.read_available(timeout=2) == b"##0010ST=91;CN=9014&&\r\n"
        finally:
            stop.set()
            reader.join(5)
    assert reader.write(b"x") is False  # closed port: refused, not raised


def test_open_port_applies_line_settings_and_urls():
    cfg = port_config("loop://", baud=19200, parity="E", bytesize=7, stopbits=2)
    port = open_port(cfg)
    try:
        assert (port.baudrate, port.parity, port.bytesize, port.stopbits) == (19200, "E", 7, 2)
        port.write(b"abc")
        assert port.read(3) == b"abc"
    finally:
        port.close()
