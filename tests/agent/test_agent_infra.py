"""infra/agent: the example config loads, the unit is hardened and valid, the installer parses."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from agent_testkit import REPO

from agents.config import load_config

INFRA = REPO / "infra" / "agent"


def unit_directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (INFRA / "lantian-agent.service").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_example_config_is_valid():
    cfg = load_config(INFRA / "agent.example.toml")
    assert cfg.box.data_dir.as_posix() == "/var/lib/lantian-agent"  # the unit's StateDirectory
    assert [p.family for p in cfg.ports] == ["cems", "ambient"]
    assert all(d.units for d in cfg.devices.values())


def test_unit_is_hardened():
    unit = unit_directives()
    expected = {
        "ProtectSystem": "strict",
        "SupplementaryGroups": "dialout",
        "StateDirectory": "lantian-agent",
        "Restart": "always",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "StandardOutput": "journal",
        "User": "lantian-agent",
        "KillSignal": "SIGTERM",
    }
    for key, value in expected.items():
        assert unit.get(key) == [value], key
    assert unit["ExecStart"][0].endswith("lantian-agent run --config /etc/lantian-agent/agent.toml")
    assert "char-ttyUSB rw" in unit["DeviceAllow"]
    assert unit["CapabilityBoundingSet"] == [""]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_passes_systemd_analyze(tmp_path):
    unit = tmp_path / "lantian-agent.service"
    unit.write_text((INFRA / "lantian-agent.service").read_text())
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "is not executable" not in line  # not installed on this machine
    ]
    assert problems == []


def test_installer_parses_and_installs_only_the_agent_lock():
    assert subprocess.run(["sh", "-n", str(INFRA / "install.sh")], timeout=30).returncode == 0
    script = (INFRA / "install.sh").read_text()
    assert '--no-deps -r "$SRC/requirements/agent.lock"' in script
    lock = (REPO / "requirements" / "agent.lock").read_text().lower()
    packages = {line.split("==")[0] for line in lock.splitlines() if "==" in line}
    assert {"pyserial", "requests"} <= packages
    assert not packages & {"pandas", "apache-airflow", "great-expectations", "fastapi"}


def test_readme_states_the_overflow_policy():
    text = (INFRA / "README.md").read_text()
    assert "oldest real-time readings (CN 2011) are dropped first" in text
    assert "new data is **refused**" in text
