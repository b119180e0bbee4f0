"""`lantian hj212 decode` / `python -m agents.hj212.cli decode`: frames per line in, JSON lines out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from agents.hj212 import build_cp, build_frame, crc16
from agents.hj212.cli import main
from lantian.cli import main as lantian_main

ROOT = Path(__file__).resolve().parents[2]
MN = "010000A8900016F000169DC0"


def good_line() -> bytes:
    cp = build_cp(
        {"a21026": {"Rtd": "12.30", "Flag": "N"}, "a19001": {"Rtd": "8", "Flag": "N"},
         "i12001": {"Info": "正常"}},
        data_time="20171120103000",
    )  # fmt: skip
    return build_frame(st="31", cn="2011", mn=MN, cp=cp, qn="20171120103000123", flag=5)


def modbus_line() -> bytes:
    return build_frame(
        st="31", cn="2011", mn=MN, cp="DataTime=20171120103000;a21026-Rtd=1", crc_mode="modbus"
    )


def test_subprocess_file_good_and_bad(tmp_path):
    bad = bytearray(good_line())
    bad[40] ^= 0x02
    path = tmp_path / "frames.txt"
    path.write_bytes(good_line() + b"\n" + bytes(bad) + b"\r\n" + modbus_line())
    result = subprocess.run(
        [sys.executable, "-m", "agents.hj212.cli", "decode", str(path)],
        cwd=ROOT, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert len(lines) == 3  # the blank line between is skipped
    first = lines[0]
    assert first["ok"] is True
    assert (first["st"], first["cn"], first["mn"], first["pw"], first["qn"]) == (
        "31",
        "2011",
        MN,
        "123456",
        "20171120103000123",
    )
    assert (first["flag"], first["pnum"], first["pno"], first["data_time"]) == (
        5,
        None,
        None,
        "20171120103000",
    )
    assert first["values"] == {
        "a21026": {"Rtd": 12.3, "Flag": "N"},
        "a19001": {"Rtd": 8, "Flag": "N"},
        "i12001": {"Info": "正常"},
    }
    assert isinstance(first["values"]["a19001"]["Rtd"], int)
    assert "正常".encode() in result.stdout  # ensure_ascii=False
    assert lines[1]["ok"] is False and "CRC" in lines[1]["error"] and lines[1]["line"] == 3
    assert lines[2]["ok"] is False and "modbus" in lines[2]["error"]


def test_subprocess_stdin_crc_mode():
    result = subprocess.run(
        [sys.executable, "-m", "agents.hj212.cli", "decode", "--crc-mode", "modbus"],
        input=modbus_line(), cwd=ROOT, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (
        record["ok"]
        and record["values"] == {"a21026": {"Rtd": 1}}
        and record["crc_mode"] == "modbus"
    )


def test_via_lantian_cli(tmp_path, capsys):
    path = tmp_path / "ok.txt"
    path.write_bytes(good_line() + b"  " + good_line().rstrip() + b" \t\n\n")
    assert lantian_main(["hj212", "decode", str(path)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["ok"] for r in out] == [True, True]


def test_tolerant_flag(monkeypatch, capsys):
    seg = f"ST=31;CN=2011;PW=1;MN={MN};CP=&&DataTime=20171120103000;a21026-Rtd=1;junk&&".encode()
    line = b"##%04d" % len(seg) + seg + b"%04X\r\n" % crc16(seg)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(line)))
    assert main(["decode"]) == 1
    strict = json.loads(capsys.readouterr().out)
    assert strict["ok"] is False and "junk" in strict["error"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(line)))
    assert main(["decode", "--tolerant"]) == 0
    tolerant = json.loads(capsys.readouterr().out)
    assert (
        tolerant["ok"] is True
        and tolerant["values"] == {"a21026": {"Rtd": 1}}
        and tolerant["warnings"]
    )


def test_usage_errors(capsys, tmp_path):
    assert main([]) == 2
    assert main(["decode", "--crc-mode", "crc32"]) == 2
    assert main(["decode", str(tmp_path / "missing.txt")]) == 2
    assert main(["--help"]) == 0
    capsys.readouterr()
