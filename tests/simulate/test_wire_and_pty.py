"""The serial line's defects, the pty writer read back through pyserial, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import serial

from agents.devices.sim import seeded
from agents.hj212 import (
    CrcError,
    Frame,
    FrameReader,
    TruncatedError,
    build_cp,
    build_frame,
    parse_frame,
)
from agents.simulate.cli import main
from agents.simulate.pty import PtyDevice
from agents.simulate.scenario import build_scenario
from agents.simulate.wire import (
    WireNoise,
    apply_noise,
    corrupt_frame,
    garbage_burst,
    lost_indices,
    truncate_frame,
)
from schemas.reading import BEIJING

T0 = datetime(2017, 12, 1, tzinfo=BEIJING)


def frames(n: int, *, plate: bool = False) -> list[tuple[datetime, bytes]]:
    out = []
    for i in range(n):
        values = {"a21026": {"Avg": f"{10 + i}.25", "Flag": "N"}}
        if plate:
            values["lr1002"] = {"Info": "豫A12345"}
        cp = build_cp(values, data_time=(T0 + timedelta(minutes=i)).strftime("%Y%m%d%H%M%S"))
        out.append((T0 + timedelta(minutes=i), build_frame(st="31", cn="2051", mn="M" * 24, cp=cp)))
    return out


# ------------------------------------------------------------------------------ wire


def test_a_corrupted_frame_always_fails_its_crc_and_keeps_its_length():
    for i, (_, frame) in enumerate(frames(40, plate=True) * 5):
        bad = corrupt_frame(frame, seeded("corrupt", i))
        assert len(bad) == len(frame) and bad != frame and bad.endswith(b"\r\n")
        assert b"#" not in bad[2:]
        with pytest.raises(CrcError):
            parse_frame(bad)


def test_a_cut_frame_is_reported_and_the_next_one_read():
    (_, first), (_, second) = frames(2)
    cut = truncate_frame(first, seeded("cut", 1))
    assert first.startswith(cut) and len(cut) < len(first) - 6
    items = FrameReader().feed(cut + second)
    assert isinstance(items[0], TruncatedError)
    assert isinstance(items[1], Frame) and items[1].raw == second.rstrip(b"\r\n")


def test_garbage_never_holds_a_header_mark():
    for i in range(200):
        assert b"#" not in garbage_burst(seeded("g", i))


def test_noise_is_deterministic_and_spares_protected_frames():
    items = [(at, data, i % 2 == 0) for i, (at, data) in enumerate(frames(300))]
    noise = WireNoise(garbage=0.1, corrupt=0.2, truncate=0.1, duplicate=0.1, seed=7)
    chunks = list(apply_noise(items, noise))
    assert chunks == list(apply_noise(items, noise))
    assert chunks != list(apply_noise(items, WireNoise(0.1, 0.2, 0.1, 0.1, seed=8)))
    damaged = {c.index for c in chunks if c.kind in ("corrupt", "truncated")}
    assert damaged and all(i % 2 == 1 for i in damaged)
    resent = {c.index for c in chunks if c.kind == "duplicate"}
    assert lost_indices(chunks) == damaged - resent
    assert list(apply_noise(items, WireNoise())) == [
        type(chunks[0])(at, data, "frame", i) for i, (at, data, _) in enumerate(items)
    ]


# ------------------------------------------------------------------------------ pty


def read_all(device: PtyDevice, expected: int, timeout: float = 20.0) -> tuple[bytes, int]:
    """Read like a careful agent (never more than is waiting, so a hang-up loses nothing);
    reopen the port after an unplug. Returns the bytes and the number of hang-ups seen."""
    port = serial.Serial(device.port, timeout=0.2)
    data = bytearray()
    hangups = 0
    deadline = time.monotonic() + timeout
    try:
        while len(data) < expected and time.monotonic() < deadline:
            try:
                data += port.read(max(1, port.in_waiting))
            except serial.SerialException:
                hangups += 1
                port.close()
                while time.monotonic() < deadline:
                    try:
                        port = serial.Serial(device.port, timeout=0.2)
                        break
                    except (serial.SerialException, OSError):
                        time.sleep(0.05)
    finally:
        port.close()
    return bytes(data), hangups


def test_pty_frames_read_back_through_pyserial():
    items = frames(400, plate=True)
    payload = b"".join(data for _, data in items)
    with PtyDevice(items) as device:
        got, hangups = read_all(device, len(payload))
        assert device.wait(5)
    assert got == payload and hangups == 0
    parsed = [i for i in FrameReader().feed(got) if isinstance(i, Frame)]
    assert len(parsed) == 400 and parsed[0].values["lr1002"]["Info"] == "豫A12345"


def test_pty_with_line_noise_sends_what_apply_noise_says():
    items = frames(200)
    noise = WireNoise(garbage=0.05, corrupt=0.05, truncate=0.02, seed=3)
    expected = b"".join(c.data for c in apply_noise(((a, d, False) for a, d in items), noise))
    with PtyDevice(items, noise=noise) as device:
        got, _ = read_all(device, len(expected))
    assert got == expected


def test_unplug_is_seen_as_a_hangup_and_nothing_is_lost():
    items = frames(300)
    payload = b"".join(data for _, data in items)
    with PtyDevice(items, unplugs=[(120, 0.3)]) as device:
        got, hangups = read_all(device, len(payload))
        assert device.plugs == 2  # a new pty behind the same port path
    assert hangups == 1 and got == payload


def test_replies_written_by_the_agent_are_collected():
    with PtyDevice(frames(3)) as device:
        port = serial.Serial(device.port, timeout=0.5)
        try:
            read = port.read(sum(len(d) for _, d in frames(3)))
            port.write(b"##0000reply\r\n")
            deadline = time.monotonic() + 3
            while b"reply" not in device.received and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            port.close()
    assert read.count(b"##") == 3 and bytes(device.received) == b"##0000reply\r\n"


def test_scaled_real_time():
    items = [(T0 + timedelta(seconds=i), data) for i, (_, data) in enumerate(frames(4))]
    with PtyDevice(items, speed=10.0, autostart=False) as device:
        port = serial.Serial(device.port, timeout=0.2)
        try:
            device.start()
            began = time.monotonic()
            got = bytearray()
            while got.count(b"\r\n") < 4 and time.monotonic() - began < 5:
                got += port.read(max(1, port.in_waiting))
            took = time.monotonic() - began
        finally:
            port.close()
    assert got.count(b"\r\n") == 4 and took >= 0.3 - 0.02  # 3 s of frames at 10x


# ------------------------------------------------------------------------------ CLI


def test_cli_registry_frames_and_truth(tmp_path, capsys):
    common = ["--scale", "tiny", "--days", "1"]
    assert main(["registry", "--out", str(tmp_path / "reg"), "--truth", *common]) == 0
    assert (tmp_path / "reg" / "stacks.csv").exists()
    truth = json.loads((tmp_path / "reg" / "truth.json").read_text())
    assert truth["scale"] == "tiny" and truth["exceedances"]
    device = "410105620000000000000001"
    assert main(["frames", "--out", str(tmp_path / "rsd.txt"), "--device", device, *common]) == 0
    lines = (tmp_path / "rsd.txt").read_bytes().split(b"\r\n")
    assert lines[-1] == b"" and all(parse_frame(line).mn == device for line in lines[:-1])
    assert main(["frames", "--out", str(tmp_path / "x"), "--device", "nope", *common]) == 2
    assert main(["devices", *common]) == 0
    assert "smoking_trucks" in capsys.readouterr().out
    assert main(["registry", "--out", str(tmp_path), "--days", "0"]) == 2


def test_cli_serves_a_device_on_a_pty_until_done():
    device = "410105620000000000000001"
    expected = b"".join(d for _, d in build_scenario(scale="tiny", days=1).frames(device))
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "agents.simulate.cli", "pty", "--device", device,
               "--scale", "tiny", "--days", "1", "--exit-when-done"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = serial.Serial(proc.stdout.readline().decode().strip(), timeout=0.5)
        got = bytearray()
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                got += port.read(max(1, port.in_waiting))
        except serial.SerialException:
            pass  # the device hangs up once everything was read
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert bytes(got) == expected
