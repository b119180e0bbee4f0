"""agent.toml: a clear message for every misconfiguration; keys on disk with mode 0600."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from agent_testkit import AMBIENT_MN, CEMS_MN

from agents.config import (
    ConfigError,
    KeyFileError,
    load_config,
    load_keys,
    parse_timezone,
    port_problems,
    read_key,
    write_key,
)
from schemas.reading import BEIJING

GOOD = f"""
[box]
id = "box-jinshui-001"
data_dir = "data"
server = "https://ingest.example.gov.cn/"
queue_max_mb = 64

[[port]]
path = "/dev/ttyUSB0"
baud = 9600
family = "cems"
crc_mode = "modbus"
devices = ["{CEMS_MN}"]

[[port]]
path = "loop://"
baud = 19200
parity = "even"
family = "ambient"
devices = ["{AMBIENT_MN}"]

[[device]]
mn = "{CEMS_MN}"
family = "cems"
pw = "123456"
units = {{ a21026 = "mg/m3", a19001 = "%" }}

[[device]]
mn = "{AMBIENT_MN}"
family = "ambient"
timezone = "Asia/Shanghai"
units = {{ a34004 = "ug/m3", a21005 = "mg/m3" }}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_config(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.box.id == "box-jinshui-001"
    assert cfg.box.server == "https://ingest.example.gov.cn"
    assert cfg.box.data_dir == (tmp_path / "data").resolve()  # relative to the file
    assert cfg.box.queue_max_bytes == 64 * 1024 * 1024
    assert cfg.box.queue_alarm_ratio == 0.8
    cems, ambient = cfg.ports
    assert (cems.baud, cems.parity, cems.crc_mode, cems.devices) == (
        9600,
        "N",
        "modbus",
        (CEMS_MN,),
    )
    assert ambient.parity == "E" and ambient.crc_mode == "standard"
    device = cfg.devices[CEMS_MN]
    # What the family decoders read from the mapping.
    assert device["device_id"] == CEMS_MN and device.get("pw") == "123456"
    assert device["units"] == {"a21026": "mg/m3", "a19001": "%"}
    assert device["tz"] == 8.0 and device.zone is BEIJING
    assert cfg.devices[AMBIENT_MN]["tz"] == 8.0
    assert cfg.port_of(AMBIENT_MN) is ambient
    assert cfg.key_path(CEMS_MN) == cfg.box.data_dir / "keys" / f"{CEMS_MN}.key"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("baud = 9600", "baud = 9601"), "baud 9601 is not a serial speed; use one of"),
        (
            ('family = "cems"\ncrc', 'family = "cem"\ncrc'),
            "unknown family 'cem'; known families: cems",
        ),
        (('crc_mode = "modbus"', 'crc_mode = "xmodem"'), "crc_mode 'xmodem' must be one of"),
        (("baud = 9600", "baudrate = 9600"), "unknown key(s) baudrate"),
        (
            ('server = "https://ingest.example.gov.cn/"', 'server = "ingest.example.gov.cn"'),
            "must be a URL",
        ),
        (('parity = "even"', 'parity = "x"'), "parity 'x' must be N, E, O, M or S"),
        (('path = "/dev/ttyUSB0"\n', ""), "[[port]] #1: missing path"),
        (
            (f'devices = ["{CEMS_MN}"]', 'devices = ["NOPE"]'),
            'device NOPE is not declared; add a [[device]] with mn = "NOPE"',
        ),
        (
            (f'devices = ["{CEMS_MN}"]', f'devices = ["{AMBIENT_MN}"]'),
            "one logger per port speaks one family",
        ),
        (("queue_max_mb = 64", "queue_max_mb = -1"), "queue_max_mb must be > 0"),
        (
            ('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"'),
            "timezone 'Mars/Olympus' must be an offset",
        ),
        (('id = "box-jinshui-001"', 'id = ""'), "id must be a non-empty string"),
    ],
)
def test_each_misconfiguration_is_named(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    assert message in str(err.value)
    assert str(tmp_path / "agent.toml") in str(err.value)  # says which file


def test_structural_mistakes(tmp_path):
    with pytest.raises(ConfigError, match="no such file. Copy infra/agent/agent.example.toml"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[box\nid="))
    with pytest.raises(ConfigError, match=r"missing \[box\]"):
        load_config(write(tmp_path, "[[port]]\npath='x'\n"))
    no_ports = GOOD.split("[[port]]")[0]
    with pytest.raises(ConfigError, match=r"no \[\[port\]\] section: the box reads nothing"):
        load_config(write(tmp_path, no_ports))
    single = GOOD.replace("[[port]]", "[port]", 1).split("[[port]]")[0]
    with pytest.raises(ConfigError, match=r"write \[\[port\]\] \(double brackets\)"):
        load_config(write(tmp_path, single))
    orphan = GOOD.replace(f'devices = ["{AMBIENT_MN}"]', f'devices = ["{CEMS_MN}"]')
    with pytest.raises(ConfigError, match="already on port"):
        load_config(
            write(
                tmp_path, orphan.replace('family = "ambient"\ndevices', 'family = "cems"\ndevices')
            )
        )
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(write(tmp_path, GOOD + "\n[uplink]\nx = 1\n"))


def test_timezones():
    assert parse_timezone("+08:00") is BEIJING
    assert parse_timezone("UTC+8") is BEIJING
    assert parse_timezone("+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    assert parse_timezone("-03").utcoffset(None) == timedelta(hours=-3)
    assert str(parse_timezone("Asia/Shanghai")) == "Asia/Shanghai"
    for bad in ("+25:00", "Beijing", "8"):
        with pytest.raises(ConfigError):
            parse_timezone(bad)


def test_keys_are_written_0600_and_checked(tmp_path):
    key = "ab" * 32
    path = write_key(tmp_path, CEMS_MN, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_key(path) == key
    os.chmod(path, 0o644)
    with pytest.raises(
        KeyFileError, match=f"readable by others \\(mode 0644\\); run: chmod 600 {path}"
    ):
        read_key(path)
    os.chmod(path, 0o600)
    path.write_text("not a key\n")
    with pytest.raises(KeyFileError, match="does not hold a 64-hex-digit key") as err:
        read_key(path)
    assert "not a key" not in str(err.value)  # contents are never echoed
    path.unlink()
    path.mkdir()
    with pytest.raises(KeyFileError, match="cannot be read"):
        read_key(path)


def test_load_keys_reports_devices_that_cannot_upload(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    write_key(cfg.box.data_dir, CEMS_MN, "cd" * 32)
    keys, problems = load_keys(cfg)
    assert keys == {CEMS_MN: "cd" * 32}
    (problem,) = problems
    assert f"device {AMBIENT_MN} is not enrolled" in problem
    assert f"lantian-agent enroll --config {cfg.source} --device {AMBIENT_MN}" in problem


def test_missing_port_device_is_reported(tmp_path):
    cfg = load_config(write(tmp_path, GOOD.replace("/dev/ttyUSB0", str(tmp_path / "ttyUSB9"))))
    (problem,) = port_problems(cfg)  # loop:// is not a path and is not checked
    assert "ttyUSB9 does not exist (unplugged, or a different name)" in problem
