"""bench/agent_backlog.py: the arithmetic of its target, its frame rewriting, and its measured
pipelines on small streams (the full benchmark runs under ``make bench`` and the slow test)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agents.hj212 import build_cp, build_frame, parse_frame
from bench import agent_backlog as ab

REPO = Path(__file__).resolve().parents[2]
MN = "410105310000000000000001"
UNITS = {"a21026": "mg/m3", "a19001": "%"}


def _frame(minute: int, cn: str = "2051") -> bytes:
    suffix = "Avg" if cn == "2051" else "Rtd"
    data_time = f"20171201{minute // 60:02d}{minute % 60:02d}00"
    cp = build_cp(
        {"a21026": {suffix: "78.48", "Flag": "N"}, "a19001": {suffix: "9.59", "Flag": "N"}},
        data_time=data_time,
    )
    return build_frame(st="31", cn=cn, mn=MN, pw="750073", cp=cp, qn=data_time + "000", flag=4)


def test_required_frame_rate_is_eight_lines_of_115200_baud():
    # 115200 baud, 8N1 = 10 line bits per byte: 11 520 bytes/s per port, 92 160 for 8 ports
    assert ab.BYTES_PER_S_PER_PORT == 11_520
    assert ab.required_frames_per_s(480) == pytest.approx(192.0)
    assert ab.required_frames_per_s(474, ports=1) == pytest.approx(11_520 / 474)


def test_reframe_changes_mn_and_flag_and_keeps_a_valid_frame():
    original = _frame(5)
    again = ab.reframe(original, mn="410105310000000000000057", flag=5)
    frame = parse_frame(again)  # strict: length and CRC must be right
    assert frame.mn == "410105310000000000000057"
    assert frame.flag == 5 and frame.reply_wanted
    assert frame.values == parse_frame(original).values
    assert frame.data_time == "20171201000500"
    # an MN of another length changes the declared length accordingly
    shorter = parse_frame(ab.reframe(original, mn="88888880000001"))
    assert shorter.mn == "88888880000001" and shorter.flag == 4
    assert len(ab.reframe(original, mn="88888880000001")) == len(original) - 10


def test_paced_frames_leave_at_line_speed():
    frames = [_frame(m) for m in range(10)]
    paced = ab._paced(frames, 1.0)
    sent = sum(len(f) for _, f in paced)
    assert sent >= ab.BYTES_PER_S_PER_PORT  # enough for the second
    assert sent - len(paced[-1][1]) < ab.BYTES_PER_S_PER_PORT  # and not more
    # frame k leaves when the bytes before it have gone at 11 520 bytes/s
    k = 7
    before = sum(len(f) for _, f in paced[:k])
    offset = (paced[k][0] - paced[0][0]).total_seconds()
    assert offset == pytest.approx(before / 11_520, abs=1e-6)


def _stream(tmp_path: Path, frames: list[bytes]) -> Path:
    path = tmp_path / "stream.hj212"
    path.write_bytes(b"".join(frames))
    return path


def test_baseline_counts_frames_and_catches_a_bad_crc(tmp_path):
    frames = [_frame(m) for m in range(40)]
    good = frames[3]
    wrong = b"0000" if good[-6:-2] != b"0000" else b"1111"
    frames[3] = good[:-6] + wrong + b"\r\n"  # the CRC digits flipped, the frame intact
    got = ab._child_baseline(_stream(tmp_path, frames), 256)
    assert got["frames"] == 40
    assert got["mismatches"] == 1
    assert got["bytes"] == sum(len(f) for f in frames)


@pytest.mark.parametrize("batched", [True, False])
def test_pipeline_child_queues_every_reading_once(tmp_path, batched):
    frames = [_frame(m, cn) for m in range(30) for cn in ("2011", "2051")]
    frames.insert(10, b"\x00\xffline noise##12")  # garbage and a broken header, as on a real line
    device = {"device_id": MN, "units": UNITS, "pw": "750073"}
    work = tmp_path / ("batched" if batched else "per_frame")
    work.mkdir()
    got = ab._child_pipeline(_stream(tmp_path, frames), 512, work, device, batched=batched)
    assert got["frames"] == 60
    assert got["readings"] == 60 and got["queued"] == 60
    assert got["errors"] >= 1  # the noise is reported, not silently skipped
    if batched:
        # one put per read that completed a frame; 512-byte reads of ~220-byte frames
        assert 1 <= got["puts"] < 60


def test_child_entry_point_prints_json_with_peak_rss(tmp_path):
    stream = _stream(tmp_path, [_frame(m) for m in range(5)])
    done = subprocess.run(
        [ab.PYTHON, "-m", "bench.agent_backlog", "child", "baseline", str(stream), "4096",
         str(tmp_path), "{}"],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["frames"] == 5 and result["mismatches"] == 0
    assert 5 < result["peak_rss_mb"] < 200


@pytest.mark.slow
def test_agent_benchmark_through_the_runner_quick(tmp_path):
    """The whole module, quick sizes, through ``python -m bench`` (about 30 s)."""
    out = tmp_path / "results.json"
    done = subprocess.run(
        [ab.PYTHON, "-m", "bench", "--only", "agent_backlog", "--quick", "--out", str(out)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    rows = json.loads(out.read_text())
    assert len(rows) == 6
    assert all(r["benchmark"] == "agent_backlog" and "error" not in r for r in rows)
    units = [r["unit"] for r in rows]
    assert units == ["frames/s", "frames/s", "MB", "frames/s", "%", "MB"]
    for item in rows:
        assert item["value"] is not None and item["value"] > 0
        assert item["baseline"] is not None and item["baseline"] > 0
    # the targets are the issue's: 40 MB and 8 x 115200 baud worth of frames
    assert rows[2]["target"] == rows[5]["target"] == 40.0
    assert rows[0]["target"] == pytest.approx(ab.required_frames_per_s(474), abs=1)
