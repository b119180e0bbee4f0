"""Property-based runs of schemathesis (v4) against the published /openapi.json: never a 5xx.

Two runs, both bounded: the schemathesis CLI over every operation as an unauthenticated client,
and schemathesis-generated bodies (valid and invalid per the schema) *signed with a real device
key*, so the fuzzing reaches the payload checks behind authentication.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from conftest import REPO, Box, ThreadServer, enrol_box, signed_post, test_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.settings import Settings


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadServer, Box]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config: Settings = test_settings(tmp, rate_per_s=10_000.0, rate_burst=10_000)
    with ThreadServer(config) as server:
        yield server, enrol_box(config.db_url, "88888880000077")


def test_schemathesis_cli_finds_no_server_error(
    fuzz_server: tuple[ThreadServer, Box], tmp_path: Path
) -> None:
    server, _ = fuzz_server
    command = [
        str(REPO / ".venv" / "bin" / "schemathesis"),
        "run",
        f"{server.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "10",
        "--workers", "1",
        "--seed", "20171101",
        "--no-shrink",
        "--request-timeout", "10",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert generated and generated.group(1) == generated.group(2) and int(generated.group(1)) > 50


@pytest.mark.parametrize("path", ["/v1/batches", "/v1/heartbeats", "/v1/enroll"])
def test_signed_schema_fuzzing_finds_no_server_error(
    fuzz_server: tuple[ThreadServer, Box], path: str
) -> None:
    server, box = fuzz_server
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operation = schema[path]["POST"]
    strategy = st.one_of(
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    )
    session = requests.Session()
    statuses: list[int] = []
    deadline = time.monotonic() + 8

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=strategy, gzipped=st.booleans())
    def run(case: schemathesis.Case, gzipped: bool) -> None:
        if time.monotonic() > deadline:
            return
        try:
            body = json.dumps(case.body, allow_nan=True).encode()
        except (TypeError, ValueError):
            body = repr(case.body).encode()
        if gzipped:
            body = gzip.compress(body)
        response = signed_post(
            server.url, path, box, body, encoding="gzip" if gzipped else None, session=session
        )
        statuses.append(response.status_code)
        assert response.status_code < 500, (case.body, response.text)
        if response.status_code >= 400:
            assert set(response.json()) >= {"error", "detail"}

    run()
    assert statuses, "no case ran"
    assert any(400 <= s < 500 for s in statuses)
