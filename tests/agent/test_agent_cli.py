"""lantian-agent: import boundary, decode, doctor, status, enroll, requeue."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import threading
from datetime import datetime

import pytest
from agent_testkit import (
    CEMS_MN,
    PYTHON,
    REPO,
    Reply,
    ScriptedServer,
    cems_frame,
    free_port_url,
    make_reading,
    minute_times,
    pty_pair,
    write_config,
)

from agents.cli import main
from agents.config import load_config, write_key
from agents.doctor import PortListen, decode_all, judge_port
from agents.queue import DurableQueue
from schemas.reading import BEIJING
from schemas.signing import derive_key

FORBIDDEN = ("pandas", "great_expectations", "airflow", "fastapi")


def test_agent_imports_no_central_side_packages(tmp_path):
    frames = tmp_path / "frames.txt"
    frames.write_bytes(cems_frame("20171101080000"))
    code = (
        "import sys, io, contextlib\n"
        "import agents.cli, agents.runner, agents.doctor\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = agents.cli.main(['decode', {str(frames)!r}])\n"
        "assert rc == 0, out.getvalue()\n"
        "from agents.devices import get_family\n"
        "for family in ('cems', 'ambient', 'vapor', 'rsd'): get_family(family)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_decode_delegates_to_the_codec(tmp_path, capsys):
    frames = tmp_path / "frames.txt"
    frames.write_bytes(cems_frame("20171101080000") + b"##0010garbage1234\r\n")
    assert main(["decode", str(frames)]) == 1  # the second line fails
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["cn"] == "2011" and lines[0]["mn"] == CEMS_MN
    assert "error" in json.dumps(lines[1])


def test_usage_and_config_errors(tmp_path, capsys):
    assert main([]) == 2
    assert main(["status", "--config", str(tmp_path / "none.toml")]) == 2
    assert "configuration error" in capsys.readouterr().err


class Logger(threading.Thread):
    """Plays a data logger on the master side of a pty: a frame every ``every`` seconds."""

    def __init__(self, pty, frames: list[bytes], every: float = 0.15) -> None:
        super().__init__(daemon=True)
        self.pty, self.frames, self.every = pty, frames, every
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.wait(self.every):
            self.pty.write(self.frames[i % len(self.frames)])
            i += 1


def doctor_config(tmp_path, port_path: str, server: str, crc_mode: str = "standard"):
    return write_config(
        tmp_path,
        server=server,
        ports=[{"path": port_path, "family": "cems", "devices": [CEMS_MN], "crc_mode": crc_mode}],
        devices=[{"mn": CEMS_MN, "family": "cems", "units": {"a21026": "mg/m3"}}],
    )


def test_doctor_finds_the_crc_mode_and_a_stopped_server(tmp_path, capsys):
    with pty_pair() as pty:
        config = doctor_config(tmp_path, pty.path, free_port_url())
        # The logger's clock is right: Beijing time now (the device's configured zone).
        now = datetime.now(BEIJING).strftime("%Y%m%d%H%M%S")
        logger = Logger(pty, [cems_frame(now, crc_mode="modbus")])
        logger.start()
        try:
            rc = main(["doctor", "--config", str(config), "--listen", "5"])
        finally:
            logger.stop.set()
    out = capsys.readouterr().out
    assert rc == 1
    assert "CRC mode 'standard' rejects" in out and "mode 'modbus' accepts" in out
    assert 'fix: set crc_mode = "modbus" for this [[port]]' in out
    assert f"device {CEMS_MN}: CN 2011" in out and "codes a19001, a21026" in out
    assert "no unit configured for a19001" in out
    assert f"device {CEMS_MN}: clock within" in out
    assert "cannot reach" in out and "check the box's network" in out
    assert f"device {CEMS_MN} is not enrolled" in out
    assert out.strip().splitlines()[-1].startswith("doctor: ")


def test_doctor_silent_port_missing_port_and_enrolment_check(tmp_path, capsys):
    key = derive_key("doctor", CEMS_MN)
    with pty_pair() as pty, ScriptedServer() as server:
        config = doctor_config(tmp_path, pty.path, server.url)
        cfg = load_config(config)
        write_key(cfg.box.data_dir, CEMS_MN, key)
        server.decide = lambda seen: (
            Reply(401, {"error": "bad_signature", "detail": "no match"})
            if seen.path == "/v1/heartbeats"
            else None
        )
        rc = main(["doctor", "--config", str(config), "--listen", "0.5"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "no bytes in" in out and "TX/RX crossed" in out
    assert f"server {server.url} reachable" in out
    assert f"device {CEMS_MN}: the server refuses its signature" in out
    assert "enrol it again" in out
    missing = doctor_config(tmp_path, str(tmp_path / "ttyUSB7"), server.url)
    assert main(["doctor", "--config", str(missing), "--listen", "0.2"]) == 1
    assert "ttyUSB7 does not exist" in capsys.readouterr().out


def test_doctor_judges_garbage_as_a_line_setting_problem():
    from agents.config import DeviceConfig, PortConfig

    port = PortConfig(path="/dev/ttyS0", family="cems", devices=(CEMS_MN,))
    rng = random.Random(3)
    noise = bytes(rng.randrange(256) for _ in range(400)).replace(b"#", b"")
    heard = PortListen(data=noise, seconds=5)
    for mode in ("standard", "modbus", "modbus-swapped"):
        heard.frames[mode], heard.errors[mode] = decode_all(noise, mode)
    findings = judge_port(port, {CEMS_MN: DeviceConfig(mn=CEMS_MN, family="cems")}, heard)
    assert findings[-1].level == "FAIL"
    assert "no HJ 212 frame" in findings[-1].what and "baud rate or parity" in findings[-1].fix


def test_status_requeue_and_enroll(tmp_path, capsys):
    with ScriptedServer() as server:
        config = doctor_config(tmp_path, "loop://", server.url)
        cfg = load_config(config)
        assert main(["status", "--config", str(config)]) == 0
        assert "no queue yet" in capsys.readouterr().out
        queue = DurableQueue(cfg.queue_path, cfg.box.queue_max_bytes, ballast_bytes=0)
        queue.put([make_reading(data_time=t) for t in minute_times("20171101080000", 4)])
        dead = queue.next_batch(max_readings=1)
        queue.dead_letter(dead.batch_id, "422 invalid_batch: bad time")
        pending = queue.next_batch(max_readings=2)
        queue.note_attempt(pending.batch_id, "500 internal_error")
        queue.close()

        assert main(["status", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "queue: 3 readings waiting" in out
        assert f"batch {pending.batch_id}" in out and "500 internal_error" in out
        assert "dead letters: 1" in out and "422 invalid_batch: bad time" in out
        assert main(["status", "--config", str(config), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["queue"]["queue_depth"] == 3 and len(report["dead_letters"]) == 1

        assert main(["requeue", "--config", str(config), "--all"]) == 0
        assert "1 readings back" in capsys.readouterr().out

        assert main(["enroll", "--config", str(config), "--device", CEMS_MN, "--code", "K-77"]) == 0
        key_file = cfg.key_path(CEMS_MN)
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        body = server.seen[-1].json()
        assert body["device_id"] == CEMS_MN and body["enrolment_code"] == "K-77"
        assert key_file.read_text().strip() == body["key"]
        assert body["key"] not in capsys.readouterr().out  # never printed

        assert main(["enroll", "--config", str(config), "--device", CEMS_MN, "--code", "K-78"]) == 2
        assert "already enrolled" in capsys.readouterr().err
        server.script = [Reply(401, {"error": "bad_code", "detail": "code already used"})]
        rc = main(
            ["enroll", "--config", str(config), "--device", CEMS_MN, "--code", "K-78", "--force"]
        )
        assert rc == 1
        err = capsys.readouterr().err
        assert "code already used" in err and "ask the bureau for a new one" in err
        assert key_file.read_text().strip() == body["key"]  # the old key is kept on refusal
        assert main(["enroll", "--config", str(config), "--device", "NOPE", "--code", "x"]) == 2


@pytest.mark.parametrize("argv", [["--version"], ["run", "--help"]])
def test_help_and_version(argv, capsys):
    assert main(argv) == 0
    assert "lantian-agent" in capsys.readouterr().out
