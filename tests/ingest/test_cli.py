"""`lantian ingest devices …` and `lantian ingest landing …` through the real entry point."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import CEMS_MN, make_batch

from ingest.landing import Landing
from ingest.registry import Registry, code_hash
from lantian.cli import main as lantian
from schemas.reading import BEIJING
from schemas.signing import derive_key, new_secret


@pytest.fixture
def where(tmp_path: Path) -> list[str]:
    return [
        "--db",
        f"sqlite:///{tmp_path / 'index.sqlite'}",
        "--landing",
        str(tmp_path / "landing"),
    ]


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = lantian(["ingest", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_devices_lifecycle(capsys: pytest.CaptureFixture, where: list[str], tmp_path: Path) -> None:
    db = where[1]
    code, out, _ = run(
        capsys,
        "devices",
        "add",
        *where,
        "--device",
        CEMS_MN,
        "--stream",
        "cems",
        "--owner",
        "stack:ST-0107",
    )
    assert code == 0
    enrolment_code = out.strip().splitlines()[-1]
    assert Registry(db).get(CEMS_MN).owner_id == "ST-0107"
    Registry(db).enroll(CEMS_MN, enrolment_code, derive_key(new_secret(), CEMS_MN))

    assert run(capsys, "devices", "suspend", *where, "--device", CEMS_MN)[0] == 0
    code, out, _ = run(capsys, "devices", "list", *where)
    assert out.split("\t")[:6] == [
        CEMS_MN,
        "cems",
        "cems",
        "stack:ST-0107",
        "suspended",
        "enrolled\n",
    ]
    assert run(capsys, "devices", "activate", *where, "--device", CEMS_MN)[0] == 0

    code, out, _ = run(capsys, "devices", "rotate", *where, "--device", CEMS_MN)
    new_code = out.strip().splitlines()[-1]
    assert code == 0 and Registry(db).get(CEMS_MN).enrolment_pending
    assert code_hash(new_code) != code_hash(enrolment_code)

    key_file = tmp_path / "new.key"
    key = derive_key(new_secret(), CEMS_MN)
    key_file.write_text(key + "\n")
    code, out, _ = run(
        capsys,
        "devices",
        "rotate",
        *where,
        "--device",
        CEMS_MN,
        "--key-file",
        str(key_file),
        "--grace",
        "60",
    )
    assert code == 0 and key not in out
    assert Registry(db).get(CEMS_MN).key_hex == key

    devices_csv, keys_csv = tmp_path / "devices.csv", tmp_path / "keys.csv"
    assert (
        run(capsys, "devices", "export", *where, str(devices_csv), "--keys", str(keys_csv))[0] == 0
    )
    other = ["--db", f"sqlite:///{tmp_path / 'other.sqlite'}"]
    assert (
        run(capsys, "devices", "import", *other, str(devices_csv), "--keys", str(keys_csv))[0] == 0
    )
    assert Registry(other[1]).get(CEMS_MN).key_hex == key

    code, _, err = run(capsys, "devices", "retire", *where, "--device", "NOPE")
    assert code == 1 and "'NOPE' is not in the registry" in err


def test_landing_list_and_verify(
    capsys: pytest.CaptureFixture, where: list[str], tmp_path: Path
) -> None:
    landing = Landing(tmp_path / "landing", where[1])
    t0 = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
    results = [landing.land(make_batch(start=t0 + timedelta(hours=h))) for h in range(2)]
    code, out, _ = run(capsys, "landing", "list", *where, "--after-seq", "1")
    assert code == 0
    [line] = out.strip().splitlines()
    assert line.split("\t")[:3] == ["2", results[1].batch_id, CEMS_MN]

    code, out, _ = run(capsys, "landing", "verify", *where)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["checked"] == 2

    tampered = tmp_path / "landing" / results[0].path
    os.chmod(tampered, 0o640)
    data = tampered.read_bytes()
    tampered.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
    code, out, _ = run(capsys, "landing", "verify", *where)
    assert code == 1
    assert f"tampered\t{results[0].path}" in out
    assert json.loads(out.strip().splitlines()[-1])["tampered"] == 1


def test_landing_list_needs_zoned_bounds(capsys: pytest.CaptureFixture, where: list[str]) -> None:
    with pytest.raises(SystemExit, match="UTC offset"):
        lantian(["ingest", "landing", "list", *where, "--start", "2017-11-01T00:00:00"])
