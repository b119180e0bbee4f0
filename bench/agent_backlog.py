"""The field agent's throughput and memory (issue "The field agent").

Targets: the agent keeps up with 8 serial ports at 115200 baud on one core, and stays under 40 MB
of resident memory. 115200 baud with 8N1 framing is 10 line bits per byte, 11 520 bytes/s per port,
92 160 bytes/s for 8 ports; divided by the average frame size of the stream this is the frames/s
the agent must sustain.

Rows (all frames come from the CEMS simulator, ``agents.simulate.scenario``, tiny district):

1. *backlog, batched*: a logger's backlog (one device, whole days of minute and real-time
   records) read from a byte stream in 4096-byte reads (the port reader's largest read) through
   the agent's pipeline: ``FrameReader`` → ``PacketAssembler`` → the cems family decoder → clock
   check → ``DurableQueue.put`` (SQLite WAL, synchronous=FULL: fsynced), one put per read.
2. *backlog, as the Runner does it*: the same bytes through ``agents.runner.PortPipeline``, which
   puts (and fsyncs) once per frame, because each frame is answered only once it is on disk.
3. *peak RSS* (VmHWM) of the process of row 1, which imports what ``lantian-agent run`` imports.

   Baseline of rows 1-3, measured in the same run in a separate process: read the same bytes in
   the same chunks, cut them at CR LF and compute ``agents.hj212.crc16`` of each frame's data
   segment, nothing else (its frames/s and its own VmHWM).
4. *Runner on 8 ptys*: the real ``lantian-agent run`` reading 8 pseudo-terminals
   (``agents.simulate.pty.PtyDevice``), each fed at 11 520 bytes/s with Flag=5 frames; the
   figure is the 9014 answers per second the agent wrote back (an answer is written only after the
   frame's readings are fsynced), the baseline is the frames/s actually offered to the ptys.
5. *Runner CPU*: CPU share of that agent process (100 % = one core); baseline: the CPU share the
   raw read + CRC of row 1's baseline would need at the same byte rate.
6. *Runner peak RSS* of that process.

Each measured pipeline runs in its own process so that the peak RSS is its own.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    CpuMeter,
    child_env,
    free_port,
    peak_rss_mb,
    row,
)

#: Issue "The field agent": 8 ports at 115200 baud on one core, under 40 MB RSS.
PORTS = 8
BAUD = 115200
LINE_BITS_PER_BYTE = 10  # 8N1: start bit + 8 data bits + stop bit
BYTES_PER_S_PER_PORT = BAUD / LINE_BITS_PER_BYTE
TARGET_RSS_MB = 40.0
#: The port reader's largest read (agents/serial_port.py reads up to 4096 bytes at a time).
READ_CHUNK = 4096
#: Sustained must be this share of the offered rate: the window's edges cut a frame or two.
KEEP_UP_SHARE = 0.98

SEED = 2017
START = date(2017, 12, 1)
CHILD_TIMEOUT_S = 600.0
TIMEOUT_S = 1200.0  # the runner's wall-clock bound for this module


def required_frames_per_s(avg_frame_bytes: float, ports: int = PORTS) -> float:
    """Frames/s that ``ports`` lines at 115200 baud carry when full of frames of that size."""
    return ports * BYTES_PER_S_PER_PORT / avg_frame_bytes


# ---------------------------------------------------------------------- frames


def cems_stream(days: int, seed: int = SEED) -> tuple[str, dict[str, Any], list[bytes]]:
    """(device id, its decoder config, its frames in send order) of one simulated CEMS logger."""
    from agents.simulate.scenario import build_scenario

    scenario = build_scenario(seed, START, days, "tiny")
    # A 2017-edition logger with the standard CRC: its frames can be re-flagged to ask for
    # answers, and the baseline checks the standard CRC.
    device_id = next(
        d
        for d in scenario.device_ids("cems")
        if scenario.device_config(d)["crc_mode"] == "standard"
        and b";Flag=" in next(scenario.frames(d))[1]
    )
    frames = [frame for _, frame in scenario.frames(device_id)]
    return device_id, scenario.device_config(device_id), frames


def reframe(frame: bytes, *, mn: str | None = None, flag: int | None = None) -> bytes:
    """The same frame for another MN and/or Flag, with length and CRC recomputed."""
    from agents.hj212 import wrap_segment

    segment = frame.rstrip(b"\r\n")[6:-4]
    fields = segment.split(b";CP=&&", 1)
    head = fields[0].split(b";")
    for i, item in enumerate(head):
        key, _, _ = item.partition(b"=")
        if key == b"MN" and mn is not None:
            head[i] = b"MN=" + mn.encode("ascii")
        elif key == b"Flag" and flag is not None:
            head[i] = b"Flag=%d" % flag
    return wrap_segment(b";".join(head) + b";CP=&&" + fields[1])


# ---------------------------------------------------------------------- child processes


def _child_baseline(stream: Path, chunk: int) -> dict[str, Any]:
    """Read the bytes in ``chunk``-sized reads, cut at CR LF, CRC each data segment."""
    from agents.hj212 import crc16

    fd = os.open(stream, os.O_RDONLY)
    frames = mismatches = total = 0
    pending = b""
    started = time.perf_counter()
    while True:
        data = os.read(fd, chunk)
        if not data:
            break
        total += len(data)
        lines = (pending + data).split(b"\r\n")
        pending = lines.pop()
        for line in lines:
            if crc16(line[6:-4]) != int(line[-4:], 16):
                mismatches += 1
            frames += 1
    seconds = time.perf_counter() - started
    os.close(fd)
    return {"frames": frames, "mismatches": mismatches, "bytes": total, "seconds": seconds}


def _child_pipeline(stream: Path, chunk: int, work: Path, device: dict, batched: bool) -> dict:
    """The agent's pipeline over the stream; ``batched``: one put per read, else PortPipeline."""
    import agents.runner  # noqa: F401 - the agent process has it loaded: count its memory
    from agents.clock import ClockWatch
    from agents.config import DeviceConfig, PortConfig
    from agents.hj212 import Frame, FrameReader, PacketAssembler
    from agents.queue import DurableQueue
    from agents.runner import PortPipeline, family_decoder
    from schemas.reading import BEIJING

    config = DeviceConfig(
        mn=device["device_id"], family="cems", units=dict(device["units"]), pw=device["pw"]
    )
    queue = DurableQueue(work / "queue.sqlite")
    clock = ClockWatch()
    decode = family_decoder("cems")
    fd = os.open(stream, os.O_RDONLY)
    frames = readings = errors = puts = total = 0
    started = time.perf_counter()
    if batched:
        reader = FrameReader(strict=False)
        assembler = PacketAssembler()
        while data := os.read(fd, chunk):
            total += len(data)
            batch = []
            for item in reader.feed(data):
                if not isinstance(item, Frame):
                    errors += 1
                    continue
                frames += 1
                merged = assembler.add(item, time.monotonic())
                if merged is None:
                    continue
                got = decode(merged, config, datetime.now(UTC).astimezone(BEIJING))
                for reading in got:
                    clock.observe_reading(reading)
                batch.extend(got)
            if batch:
                readings += queue.put(batch)
                puts += 1
    else:
        port = PortConfig(path="bench", family="cems", devices=(config.mn,))
        pipeline = PortPipeline(port, {config.mn: config}, queue, clock, decoders={"cems": decode})
        while data := os.read(fd, chunk):
            total += len(data)
            pipeline.feed(data)
        frames = pipeline.counts["frames"]
        readings = pipeline.counts["new_readings"]
        errors = pipeline.counts["errors"]
        puts = readings  # one put per frame that yields readings (cems: one reading each)
    seconds = time.perf_counter() - started
    os.close(fd)
    queued = queue.depth()
    queue.close()
    return {
        "frames": frames,
        "readings": readings,
        "queued": queued,
        "errors": errors,
        "puts": puts,
        "bytes": total,
        "seconds": seconds,
    }


def child_main(argv: list[str]) -> int:
    """``python -m bench.agent_backlog child MODE STREAM CHUNK WORKDIR DEVICE_JSON``."""
    import logging

    logging.basicConfig(level=logging.ERROR)  # the 2017 clocks are judged "off": not news here
    mode, stream, chunk, work, device = argv
    if mode == "baseline":
        result = _child_baseline(Path(stream), int(chunk))
    else:
        result = _child_pipeline(
            Path(stream), int(chunk), Path(work), json.loads(device), batched=mode == "batched"
        )
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


def _run_child(mode: str, stream: Path, work: Path, device: dict[str, Any]) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    command = [
        PYTHON, "-m", "bench.agent_backlog", "child", mode, str(stream), str(READ_CHUNK),
        str(work), json.dumps(device),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def backlog_rows(days: int, work: Path) -> tuple[list[dict[str, Any]], float, float]:
    """Rows 1-3: the pipeline over a backlog of ``days`` device-days, against read + CRC; and
    the baseline's bytes/s and peak RSS."""
    device_id, device, frames = cems_stream(days)
    data = b"".join(frames)
    work.mkdir(parents=True, exist_ok=True)
    stream = work / "backlog.hj212"
    stream.write_bytes(data)
    avg = len(data) / len(frames)
    need = required_frames_per_s(avg)
    base = _run_child("baseline", stream, work / "baseline", device)
    if base["frames"] != len(frames) or base["mismatches"]:
        raise RuntimeError(f"baseline cut {base['frames']} frames of {len(frames)}: {base}")
    base_fps = base["frames"] / base["seconds"]
    out = []
    results = {}
    for mode in ("batched", "per_frame"):
        got = _run_child(mode, stream, work / mode, device)
        if got["frames"] != len(frames) or got["errors"]:
            raise RuntimeError(f"{mode}: decoded {got['frames']} of {len(frames)} frames: {got}")
        results[mode] = got
        fps = got["frames"] / got["seconds"]
        print(
            f"backlog {mode}: {got['frames']} frames ({avg:.0f} B avg), {got['readings']} readings "
            f"queued in {got['puts']} puts, {got['seconds']:.2f} s = {fps:.0f} frames/s; "
            f"baseline {base_fps:.0f} frames/s; need {need:.0f} frames/s; "
            f"peak RSS {got['peak_rss_mb']:.1f} MB",
            flush=True,
        )
        how = "put per 4096-B read" if mode == "batched" else "PortPipeline, put per frame"
        out.append(
            row(
                f"backlog {days} day(s), {avg:.0f}-B frames: decoded+queued ({how})",
                fps,
                "frames/s",
                baseline=base_fps,
                target=round(need, 1),
                met=fps >= need,
            )
        )
    rss = results["batched"]["peak_rss_mb"]
    out.append(
        row(
            "backlog: peak RSS (VmHWM) of the decoding+queueing process",
            rss,
            "MB",
            baseline=base["peak_rss_mb"],
            target=TARGET_RSS_MB,
            met=rss is not None and rss < TARGET_RSS_MB,
        )
    )
    return out, base["bytes"] / base["seconds"], base["peak_rss_mb"]


# ---------------------------------------------------------------------- the Runner on 8 ptys


def _agent_toml(work: Path, paths: list[str], mns: list[str], device: dict[str, Any]) -> Path:
    """agent.toml for 8 CEMS ports; the server refuses (nobody listens) and no device is
    enrolled, so the drain only waits: what is measured is reading, queueing and answering."""
    units = ", ".join(f'{code} = "{unit}"' for code, unit in device["units"].items())
    lines = [
        "[box]",
        'id = "bench-box"',
        f'data_dir = "{work / "data"}"',
        f'server = "http://127.0.0.1:{free_port()}"',
        "heartbeat_interval_s = 3600",
        'log_level = "ERROR"',
    ]
    for path, mn in zip(paths, mns, strict=True):
        lines += [
            "[[port]]",
            f'path = "{path}"',
            f"baud = {BAUD}",
            'family = "cems"',
            f'devices = ["{mn}"]',
            "reply = true",
        ]
    for mn in mns:
        lines += [
            "[[device]]",
            f'mn = "{mn}"',
            'family = "cems"',
            f'pw = "{device["pw"]}"',
            f"units = {{ {units} }}",
        ]
    path = work / "agent.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _paced(frames: list[bytes], seconds: float) -> list[tuple[datetime, bytes]]:
    """Enough frames for ``seconds``, stamped so that they leave at 11 520 bytes/s."""
    at = datetime(2017, 12, 1, tzinfo=UTC)
    out: list[tuple[datetime, bytes]] = []
    sent = 0
    while sent < seconds * BYTES_PER_S_PER_PORT:
        for frame in frames:
            out.append((at + timedelta(seconds=sent / BYTES_PER_S_PER_PORT), frame))
            sent += len(frame)
            if sent >= seconds * BYTES_PER_S_PER_PORT:
                break
    return out


def _answers(devices: list) -> int:
    return sum(bytes(d.received).count(b"CN=9014") for d in devices)


def _agent_command() -> list[str]:
    script = Path(PYTHON).parent / "lantian-agent"
    return [str(script)] if script.exists() else [PYTHON, "-m", "agents.cli"]


def runner_rows(
    window_s: float, warmup_s: float, work: Path, baseline_bps: float, baseline_rss: float
) -> list[dict]:
    """Rows 4-6: ``lantian-agent run`` on 8 ptys fed at 115200 baud-equivalent."""
    from agents.simulate.pty import PtyDevice

    device_id, device, frames = cems_stream(1)
    mns = [device_id[:-2] + f"{50 + i:02d}" for i in range(PORTS)]
    slack_s = 20.0  # agent start-up and port opening come before the warm-up
    devices = []
    proc = None
    try:
        for i, mn in enumerate(mns):
            own = [reframe(f, mn=mn, flag=5) for f in frames]
            devices.append(
                PtyDevice(_paced(own, warmup_s + window_s + slack_s), speed=1.0, name=f"ttyB{i}")
            )
        offered_frames = [f for _, f in _paced(frames, warmup_s + window_s)]
        avg = sum(len(f) for f in offered_frames) / len(offered_frames)
        config = _agent_toml(work, [d.port for d in devices], mns, device)
        log = (work / "agent.log").open("wb")
        proc = subprocess.Popen(
            [*_agent_command(), "run", "--config", str(config)],
            cwd=REPO,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + slack_s
        while time.monotonic() < deadline and not all(d.bytes_written for d in devices):
            if proc.poll() is not None:
                raise RuntimeError(f"agent exited ({proc.returncode}); see {work / 'agent.log'}")
            time.sleep(0.1)
        if not all(d.bytes_written for d in devices):
            raise RuntimeError("the agent did not open all 8 ports within 20 s")
        time.sleep(warmup_s)
        answers0 = _answers(devices)
        written0 = sum(d.chunks_written for d in devices)
        meter = CpuMeter(proc.pid)
        began = time.monotonic()
        time.sleep(window_s)
        answers1 = _answers(devices)
        written1 = sum(d.chunks_written for d in devices)
        elapsed = time.monotonic() - began
        cpu = meter.percent()
        rss = peak_rss_mb(proc.pid)
        lag = written1 - answers1
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for d in devices:
            d.close()
    sustained = (answers1 - answers0) / elapsed
    offered = (written1 - written0) / elapsed
    need = required_frames_per_s(avg)
    raw_cpu = 100.0 * PORTS * BYTES_PER_S_PER_PORT / baseline_bps
    print(
        f"runner: {elapsed:.1f} s window, offered {offered:.0f} frames/s, answered "
        f"{sustained:.0f} frames/s (need {need:.0f}), unanswered at the end {lag}, "
        f"CPU {cpu:.0f} %, peak RSS {rss:.1f} MB",
        flush=True,
    )
    keeps_up = sustained >= KEEP_UP_SHARE * need and sustained >= KEEP_UP_SHARE * offered
    return [
        row(
            "Runner on 8 ptys at 115200 baud: frames answered after fsync",
            sustained,
            "frames/s",
            baseline=offered,
            target=round(need, 1),
            met=keeps_up,
        ),
        row(
            "Runner on 8 ptys at 115200 baud: CPU of the agent (100 % = 1 core)",
            cpu,
            "%",
            baseline=raw_cpu,
            target=100.0,
            met=cpu is not None and cpu < 100.0 and keeps_up,
        ),
        row(
            "Runner on 8 ptys at 115200 baud: peak RSS (VmHWM) of the agent",
            rss,
            "MB",
            baseline=baseline_rss,
            target=TARGET_RSS_MB,
            met=rss is not None and rss < TARGET_RSS_MB,
        ),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The six rows of the module docstring (``quick``: 1 device-day and a 5 s window)."""
    days, window_s, warmup_s = (1, 5.0, 2.0) if quick else (3, 20.0, 3.0)
    with tempfile.TemporaryDirectory(prefix="lantian-bench-agent-") as tmp:
        work = Path(tmp)
        rows, baseline_bps, baseline_rss = backlog_rows(days, work / "backlog")
        (work / "runner").mkdir()
        rows += runner_rows(window_s, warmup_s, work / "runner", baseline_bps, baseline_rss)
    for item in rows:
        if isinstance(item["value"], float) and not math.isfinite(item["value"]):
            item["value"] = None
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2:]))
    for item in run(quick="--quick" in sys.argv):
        print(item)
