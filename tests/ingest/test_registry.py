"""The device registry: enrolment codes, keys and rotation, states, the bureau's files."""

from __future__ import annotations

import csv
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.registry import EnrolmentRefused, Registry, RegistryError, code_hash
from schemas.signing import derive_key, new_secret


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'index.sqlite'}")


def test_code_is_stored_hashed_and_spent_once(registry: Registry, tmp_path: Path) -> None:
    code = registry.add("88888880000001", "cems", "stack", "ST-0001")
    assert len(code.replace("-", "")) == 25
    registry.engine.dispose()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("index.sqlite*"))
    assert code.encode() not in database and code.replace("-", "").encode() not in database
    assert code_hash(code).encode() in database

    key = derive_key(new_secret(), "88888880000001")
    with pytest.raises(EnrolmentRefused) as wrong:
        registry.enroll("88888880000001", "ABCDE-FGHJK-MNPQR-STUVW-XYZ23", key)
    assert wrong.value.reason == "bad_enrolment_code"
    device = registry.enroll("88888880000001", code, key)
    assert device.enrolled and not device.enrolment_pending
    assert key not in repr(device)
    with pytest.raises(EnrolmentRefused) as again:
        registry.enroll("88888880000001", code, key)
    assert again.value.reason == "no_enrolment_pending"


def test_rotation_keeps_the_old_key_for_the_grace_window(registry: Registry) -> None:
    registry.add("M1", "ambient")
    old, new = (derive_key(new_secret(), "M1") for _ in range(2))
    registry.set_key("M1", old)
    registry.enroll("M1", registry.issue_code("M1"), new, grace_s=600)
    device = registry.get("M1")
    now = datetime.now(UTC)
    assert device.keys_valid_at(now) == [new, old]
    assert device.keys_valid_at(now + timedelta(seconds=601)) == [new]
    assert device.rotated_at is not None


def test_states(registry: Registry) -> None:
    registry.add("M1", "vapor", "gas_station", "GS-12")
    registry.set_key("M1", derive_key(new_secret(), "M1"))
    registry.set_state("M1", "suspended")
    with pytest.raises(EnrolmentRefused) as refused:
        registry.enroll("M1", registry.issue_code("M1"), derive_key(new_secret(), "M1"))
    assert refused.value.reason == "device_suspended"
    registry.set_state("M1", "active")
    registry.set_state("M1", "retired")
    retired = registry.get("M1")
    assert retired.state == "retired" and not retired.enrolled and not retired.enrolment_pending
    with pytest.raises(RegistryError, match="retired"):
        registry.set_state("M1", "active")
    with pytest.raises(RegistryError, match="retired"):
        registry.issue_code("M1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("../M1", "cems"), "letters, digits"),
        (("M1", "water"), "unknown stream 'water'"),
        (("M1", "cems", "factory"), "unknown owner kind 'factory'"),
    ],
)
def test_bad_registrations_are_named(registry: Registry, args: tuple, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        registry.add(*args)


def test_bad_key_is_refused_without_echo(registry: Registry) -> None:
    code = registry.add("M1", "cems")
    with pytest.raises(EnrolmentRefused) as refused:
        registry.enroll("M1", code, "secret-looking-but-not-hex")
    assert refused.value.reason == "bad_key"
    assert "secret-looking" not in str(refused.value)


def test_export_import_round_trip_with_private_keys_file(
    registry: Registry, tmp_path: Path
) -> None:
    registry.add("M1", "cems", "stack", "ST-1")
    registry.add("M2", "rsd", "rsd_unit", "RSD-3")
    key = derive_key(new_secret(), "M1")
    registry.set_key("M1", key)
    registry.set_state("M2", "suspended")
    devices_csv, keys_csv = tmp_path / "devices.csv", tmp_path / "keys.csv"
    registry.export_csv(devices_csv, keys_csv)
    assert stat.S_IMODE(keys_csv.stat().st_mode) == 0o600
    assert key not in devices_csv.read_text()
    assert key in keys_csv.read_text()
    rows = list(csv.DictReader(devices_csv.open()))
    assert [(r["device_id"], r["state"], r["enrolled"]) for r in rows] == [
        ("M1", "active", "1"),
        ("M2", "suspended", "0"),
    ]

    copy = Registry(f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert copy.import_csv(devices_csv, keys_csv) == 2
    assert copy.all() == registry.all()


def test_keys_file_readable_by_others_is_refused(registry: Registry, tmp_path: Path) -> None:
    registry.add("M1", "cems")
    registry.export_csv(tmp_path / "devices.csv", tmp_path / "keys.csv")
    os.chmod(tmp_path / "keys.csv", 0o644)
    with pytest.raises(RegistryError, match="chmod 600"):
        registry.import_csv(tmp_path / "devices.csv", tmp_path / "keys.csv")


def test_import_of_the_bureau_devices_csv_layout(registry: Registry, tmp_path: Path) -> None:
    """docs/ARCHITECTURE.md's devices.csv: owner kind follows the stream; pw is not ours."""
    path = tmp_path / "devices.csv"
    path.write_text(
        "device_id,family,stream,owner_id,crc_mode,units,install_date,pw\n"
        '88888880000001,cems,cems,ST-0107,standard,"{""a21026"": ""mg/m3""}",2016-05-01,123456\n'
        "410100000000000000000022,ambient,ambient,STN-03,modbus,{},2017-03-01,654321\n"
        "VAP0000000000001,vapor,vapor,GS-0007,standard,{},2017-09-01,111111\n",
        encoding="utf-8",
    )
    assert registry.import_csv(path) == 3
    kinds = {d.device_id: (d.owner_kind, d.owner_id, d.state, d.enrolled) for d in registry.all()}
    assert kinds == {
        "88888880000001": ("stack", "ST-0107", "active", False),
        "410100000000000000000022": ("station", "STN-03", "active", False),
        "VAP0000000000001": ("gas_station", "GS-0007", "active", False),
    }
    # Re-importing updates in place (an owner changed) and keeps what the file does not carry.
    registry.set_key("88888880000001", derive_key(new_secret(), "88888880000001"))
    path.write_text("device_id,stream,owner_id\n88888880000001,cems,ST-0200\n", encoding="utf-8")
    registry.import_csv(path)
    device = registry.get("88888880000001")
    assert device.owner_id == "ST-0200" and device.enrolled


def test_import_names_the_bad_line(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_text("device_id,stream\nM1,cems\nM2,sewage\n", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"devices.csv:3: .*'sewage'"):
        registry.import_csv(path)
    assert registry.all() == []  # all or nothing
