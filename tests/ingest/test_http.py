"""The ingest API over real HTTP on loopback: every acceptance and every refusal of the contract."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import logging
import socket
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import (
    CEMS_MN,
    Box,
    ThreadServer,
    enrol_box,
    gz,
    index_count,
    landed_files,
    make_batch,
    signed_post,
    test_settings,
)
from sqlalchemy import select

from ingest.db import get_engine, heartbeats
from ingest.landing import LandingIndex
from ingest.registry import Registry
from schemas.reading import BEIJING, batch_id
from schemas.signing import derive_key, new_secret, signed_headers

BATCHES = "/v1/batches"


def assert_nothing_landed(server: ThreadServer) -> None:
    assert landed_files(server.settings.landing_root) == []
    assert index_count(server.settings.db_url) == 0


# -- acceptance -----------------------------------------------------------------------------


def test_good_batch_is_fsynced_indexed_and_reads_back(server: ThreadServer, box: Box) -> None:
    start = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)  # 00:00 UTC
    batch = make_batch(start=start, n=5)
    body = gz(batch)
    before = datetime.now(UTC)
    response = signed_post(server.url, BATCHES, box, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "landed", "batch_id": batch["batch_id"], "readings": 5}

    files = landed_files(server.settings.landing_root)
    assert len(files) == 1
    day = before.strftime("%Y-%m-%d")  # landing day, UTC (the test does not straddle midnight)
    expected = server.settings.landing_root / day / CEMS_MN / f"{batch['batch_id']}.json.gz"
    assert files[0] == expected
    assert files[0].read_bytes() == body  # the signed bytes, verbatim
    assert json.loads(gzip.decompress(files[0].read_bytes())) == batch
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o440
    assert not [p for p in server.settings.landing_root.rglob("*.tmp")]

    index = LandingIndex(server.settings.db_url, server.settings.landing_root)
    [entry] = index.batches()
    assert entry.sha256 == hashlib.sha256(body).hexdigest()
    assert entry.path == f"{day}/{CEMS_MN}/{batch['batch_id']}.json.gz"
    assert entry.n_readings == 5
    assert entry.first_data_time == datetime(2017, 11, 1, 0, 0, tzinfo=UTC)
    assert entry.last_data_time == datetime(2017, 11, 1, 0, 4, tzinfo=UTC)
    assert entry.stream == "cems" and entry.device_id == CEMS_MN
    assert index.read_batch(entry) == batch


def test_identity_body_lands_as_gzip(server: ThreadServer, box: Box) -> None:
    batch = make_batch(n=3)
    body = json.dumps(batch).encode()
    response = signed_post(server.url, BATCHES, box, body, encoding=None)
    assert response.status_code == 200, response.text
    [path] = landed_files(server.settings.landing_root)
    assert json.loads(gzip.decompress(path.read_bytes())) == batch


def test_same_batch_twice_is_the_same_200_and_changes_nothing(
    server: ThreadServer, box: Box
) -> None:
    batch = make_batch(n=4)
    now = int(time.time())
    first = signed_post(server.url, BATCHES, box, gz(batch), timestamp=now)
    assert first.json()["status"] == "landed"
    [path] = landed_files(server.settings.landing_root)
    stored, inode = path.read_bytes(), path.stat().st_ino
    # A resend (new signature) and a resend re-encoded without gzip: both duplicates.
    again = signed_post(server.url, BATCHES, box, gz(batch), timestamp=now + 1)
    plain = signed_post(
        server.url, BATCHES, box, json.dumps(batch).encode(), encoding=None, timestamp=now + 2
    )
    for response in (again, plain):
        assert response.status_code == 200
        assert response.json() == {
            "status": "duplicate",
            "batch_id": batch["batch_id"],
            "readings": 4,
        }
    assert landed_files(server.settings.landing_root) == [path]
    assert path.read_bytes() == stored and path.stat().st_ino == inode
    assert index_count(server.settings.db_url) == 1


def test_unset_clock_year_2000_lands(server: ThreadServer, box: Box) -> None:
    """HJ212.md: loggers with unset clocks send year 2000; that is landed (judged downstream)."""
    batch = make_batch(start=datetime(2000, 1, 1, 0, 0, tzinfo=BEIJING), n=2)
    response = signed_post(server.url, BATCHES, box, gz(batch))
    assert response.status_code == 200, response.text


def test_device_time_just_inside_future_tolerance_lands(server: ThreadServer, box: Box) -> None:
    # 59 min ahead of the box's receive time; the tolerance is 60 min.
    batch = make_batch(n=1, received_lag_s=-59 * 60)
    assert signed_post(server.url, BATCHES, box, gz(batch)).status_code == 200


# -- refusals: each names the problem and lands nothing --------------------------------------


def _post(server: ThreadServer, box: Box, body: bytes, **kwargs: Any) -> requests.Response:
    return signed_post(server.url, BATCHES, box, body, **kwargs)


def _missing_signature(server: ThreadServer, box: Box) -> requests.Response:
    headers = signed_headers(box.key, "POST", BATCHES, int(time.time()), box.device_id, b"x")
    del headers["X-Lantian-Signature"]
    return requests.post(server.url + BATCHES, data=gz(make_batch()), headers=headers)


def _unknown_device(server: ThreadServer, box: Box) -> requests.Response:
    stranger = Box("99999990000009", derive_key(new_secret(), "99999990000009"))
    return _post(server, stranger, gz(make_batch("99999990000009")))


def _not_enrolled(server: ThreadServer, box: Box) -> requests.Response:
    Registry(server.settings.db_url).add("88888880000002", "cems")
    pretender = Box("88888880000002", derive_key(new_secret(), "88888880000002"))
    return _post(server, pretender, gz(make_batch("88888880000002")))


def _wrong_key(server: ThreadServer, box: Box) -> requests.Response:
    return _post(
        server, Box(box.device_id, derive_key(new_secret(), box.device_id)), gz(make_batch())
    )


def _body_changed_after_signing(server: ThreadServer, box: Box) -> requests.Response:
    body = gz(make_batch())
    headers = signed_headers(box.key, "POST", BATCHES, int(time.time()), box.device_id, body)
    noisy = body[:40] + bytes([body[40] ^ 0x01]) + body[41:]  # one bit of line noise
    headers |= {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return requests.post(server.url + BATCHES, data=noisy, headers=headers)


def _signed_for_other_path(server: ThreadServer, box: Box) -> requests.Response:
    body = gz(make_batch())
    headers = signed_headers(
        box.key, "POST", "/v1/heartbeats", int(time.time()), box.device_id, body
    )
    headers |= {"Content-Encoding": "gzip"}
    return requests.post(server.url + BATCHES, data=body, headers=headers)


def _stale(server: ThreadServer, box: Box) -> requests.Response:
    return _post(server, box, gz(make_batch()), timestamp=int(time.time()) - 302)


def _ahead(server: ThreadServer, box: Box) -> requests.Response:
    return _post(server, box, gz(make_batch()), timestamp=int(time.time()) + 302)


def _fractional_timestamp(server: ThreadServer, box: Box) -> requests.Response:
    body = gz(make_batch())
    headers = signed_headers(box.key, "POST", BATCHES, int(time.time()), box.device_id, body)
    headers["X-Lantian-Timestamp"] = f"{time.time():.3f}"
    return requests.post(server.url + BATCHES, data=body, headers=headers)


def _suspended(server: ThreadServer, box: Box) -> requests.Response:
    Registry(server.settings.db_url).set_state(box.device_id, "suspended")
    return _post(server, box, gz(make_batch()))


def _retired(server: ThreadServer, box: Box) -> requests.Response:
    Registry(server.settings.db_url).set_state(box.device_id, "retired")
    return _post(server, box, gz(make_batch()))


def _too_large_declared(server: ThreadServer, box: Box) -> requests.Response:
    # 200 readings of incompressible noise do not fit in the 64 KiB test limit.
    body = json.dumps(make_batch(n=60)).encode() + b" " * 70_000
    return _post(server, box, body, encoding=None)


def _too_large_chunked(server: ThreadServer, box: Box) -> requests.Response:
    body = json.dumps(make_batch()).encode() + b" " * 70_000
    headers = signed_headers(box.key, "POST", BATCHES, int(time.time()), box.device_id, body)
    chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))  # no Content-Length
    return requests.post(server.url + BATCHES, data=chunks, headers=headers)


def _gzip_bomb(server: ThreadServer, box: Box) -> requests.Response:
    bomb = gzip.compress(b'{"pad":"' + b"0" * 2_000_000 + b'"}', mtime=0)  # ~2 KB → 2 MB
    return _post(server, box, bomb)


def _brotli(server: ThreadServer, box: Box) -> requests.Response:
    return _post(server, box, gz(make_batch()), encoding="br")


def _text_plain(server: ThreadServer, box: Box) -> requests.Response:
    return _post(server, box, gz(make_batch()), extra={"Content-Type": "text/plain"})


def _truncated_gzip(server: ThreadServer, box: Box) -> requests.Response:
    return _post(server, box, gz(make_batch())[:-12])  # the upload was cut mid-trailer


def _bad_json(server: ThreadServer, box: Box) -> requests.Response:
    text = json.dumps(make_batch())
    return _post(server, box, gzip.compress(text[: len(text) // 2].encode()))


def _not_utf8(server: ThreadServer, box: Box) -> requests.Response:
    return _post(server, box, b'{"device_id": "\xff\xfe"}', encoding=None)


def _json_array(server: ThreadServer, box: Box) -> requests.Response:
    return _post(server, box, gzip.compress(b"[1, 2, 3]"))


def _mutated(mutate: Callable[[dict[str, Any]], None]) -> Callable[..., requests.Response]:
    def send(server: ThreadServer, box: Box) -> requests.Response:
        batch = make_batch(n=4)
        mutate(batch)
        return _post(server, box, gz(batch))

    return send


def _drop_raw_sha(batch: dict[str, Any]) -> None:
    del batch["readings"][2]["raw_sha256"]


def _noise_in_raw(batch: dict[str, Any]) -> None:
    raw = batch["readings"][1]["raw"]
    batch["readings"][1]["raw"] = raw.replace("a21026-Avg=12.30", "a21026-Avg=12.80")


def _reading_lost(batch: dict[str, Any]) -> None:
    del batch["readings"][3]  # batch_id still names four readings


def _other_device_in_batch(batch: dict[str, Any]) -> None:
    other = make_batch("88888880000003", n=1)["readings"][0]
    batch["readings"][1] = other
    batch["batch_id"] = batch_id([r["id"] for r in batch["readings"]])


def _batch_of_other_device(batch: dict[str, Any]) -> None:
    batch.clear()
    batch.update(make_batch("88888880000003", n=2))


def _ambient_for_cems_device(batch: dict[str, Any]) -> None:
    batch["stream"] = "ambient"
    for reading in batch["readings"]:
        reading["stream"] = "ambient"


def _contract_v2(batch: dict[str, Any]) -> None:
    batch["contract"] = 2


def _future(server: ThreadServer, box: Box) -> requests.Response:
    # The device clock is 61 min fast relative to the box that received the reading.
    return _post(server, box, gz(make_batch(n=2, received_lag_s=-61 * 60)))


def _before_2000(server: ThreadServer, box: Box) -> requests.Response:
    start = datetime(1999, 12, 31, 23, 58, tzinfo=BEIJING)
    return _post(server, box, gz(make_batch(start=start, n=1)))


def _received_in_future(server: ThreadServer, box: Box) -> requests.Response:
    start = datetime.now(UTC) + timedelta(hours=3)
    return _post(server, box, gz(make_batch(start=start, n=1)))


REFUSALS = [
    ("missing_signature", _missing_signature, 401, "missing_auth_header", "X-Lantian-Signature"),
    ("unknown_device", _unknown_device, 401, "unknown_device", "99999990000009"),
    ("not_enrolled", _not_enrolled, 401, "device_not_enrolled", "88888880000002"),
    ("wrong_key", _wrong_key, 401, "bad_signature", "SHA-256 of the body"),
    ("line_noise_in_body", _body_changed_after_signing, 401, "bad_signature", "signature"),
    ("other_path", _signed_for_other_path, 401, "bad_signature", "path"),
    ("stale_timestamp", _stale, 401, "stale_timestamp", "behind the server clock"),
    ("timestamp_ahead", _ahead, 401, "stale_timestamp", "ahead of the server clock"),
    ("fractional_timestamp", _fractional_timestamp, 401, "bad_timestamp", "integer"),
    ("suspended", _suspended, 403, "device_suspended", "suspended"),
    ("retired", _retired, 403, "device_retired", "retired"),
    ("too_large", _too_large_declared, 413, "body_too_large", "65536"),
    ("too_large_chunked", _too_large_chunked, 413, "body_too_large", "65536"),
    ("gzip_bomb", _gzip_bomb, 413, "body_too_large", "inflates"),
    ("brotli", _brotli, 415, "unsupported_encoding", "'br'"),
    ("text_plain", _text_plain, 415, "unsupported_media_type", "text/plain"),
    ("truncated_gzip", _truncated_gzip, 400, "malformed_gzip", "truncated"),
    ("half_json", _bad_json, 400, "malformed_json", "not JSON"),
    ("not_utf8", _not_utf8, 400, "malformed_json", "UTF-8"),
    ("json_array", _json_array, 422, "contract_violation", "expected an object"),
    ("missing_field", _mutated(_drop_raw_sha), 422, "contract_violation", "readings[2]: missing field 'raw_sha256'"),
    ("noise_in_raw", _mutated(_noise_in_raw), 422, "contract_violation", "readings[1]: raw_sha256"),
    ("reading_lost", _mutated(_reading_lost), 422, "contract_violation", "batch_id"),
    ("reading_of_other_device", _mutated(_other_device_in_batch), 422, "contract_violation", "readings[1]: device '88888880000003'"),
    ("batch_of_other_device", _mutated(_batch_of_other_device), 422, "wrong_device", "'88888880000003'"),
    ("other_stream", _mutated(_ambient_for_cems_device), 422, "wrong_stream", "'ambient'"),
    ("contract_v2", _mutated(_contract_v2), 422, "contract_violation", "contract version 2"),
    ("data_time_in_future", _future, 422, "implausible_time", "61 min after received_at"),
    ("before_2000", _before_2000, 422, "implausible_time", "before 2000"),
    ("received_in_future", _received_in_future, 422, "implausible_time", "received_at"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("send", "status", "error", "detail"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSALS],
)
def test_refusal(
    server: ThreadServer,
    box: Box,
    send: Callable[[ThreadServer, Box], requests.Response],
    status: int,
    error: str,
    detail: str,
) -> None:
    response = send(server, box)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert detail in body["detail"]
    assert box.key not in response.text
    assert_nothing_landed(server)
    metrics = requests.get(server.url + "/metrics").text
    assert f'lantian_ingest_rejections_total{{reason="{error}"}} 1.0' in metrics


def test_stale_timestamp_tells_the_server_time(server: ThreadServer, box: Box) -> None:
    response = _stale(server, box)
    now = time.time()
    assert abs(response.json()["server_time"] - now) < 5
    assert abs(parsedate_to_datetime(response.headers["Date"]).timestamp() - now) < 5
    # Re-signed with the server's time, the same upload goes through.
    retry = signed_post(
        server.url, BATCHES, box, gz(make_batch()), timestamp=response.json()["server_time"]
    )
    assert retry.status_code == 200


def test_replayed_request_is_refused(server: ThreadServer, box: Box) -> None:
    body = gz(make_batch())
    headers = signed_headers(box.key, "POST", BATCHES, int(time.time()), box.device_id, body)
    headers |= {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert requests.post(server.url + BATCHES, data=body, headers=headers).status_code == 200
    [path] = landed_files(server.settings.landing_root)
    replay = requests.post(server.url + BATCHES, data=body, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["error"] == "replay"
    assert "already used" in replay.json()["detail"]
    assert landed_files(server.settings.landing_root) == [path]
    assert index_count(server.settings.db_url) == 1


def test_oversized_body_refused_before_it_is_read(server: ThreadServer, box: Box) -> None:
    """413 from the headers: the server answers while the client still holds 10 MB unsent."""
    head = (
        f"POST {BATCHES} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {10 * 1024 * 1024}\r\n"
    )
    signed = signed_headers(box.key, "POST", BATCHES, int(time.time()), box.device_id, b"")
    head += "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\x1f\x8b" + b"\0" * 1000)
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "body_too_large" in answer
    assert_nothing_landed(server)


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = test_settings(tmp_path, rate_per_s=0.2, rate_burst=2)
    with ThreadServer(settings) as server:
        box = enrol_box(settings.db_url, CEMS_MN)
        start = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
        sent = [
            _post(server, box, gz(make_batch(start=start + timedelta(hours=i), n=2)))
            for i in range(3)
        ]
        assert [r.status_code for r in sent] == [200, 200, 429]
        assert sent[2].json()["error"] == "rate_limited"
        # Empty bucket at 0.2 tokens/s: one token in 5 s (give or take the requests' own time).
        assert 4 <= int(sent[2].headers["Retry-After"]) <= 5
        assert index_count(settings.db_url) == 2
        assert len(landed_files(settings.landing_root)) == 2


# -- heartbeats, enrolment, probes, logs -----------------------------------------------------


def _heartbeat_rows(server: ThreadServer) -> list[Any]:
    with get_engine(server.settings.db_url).connect() as conn:
        return conn.execute(select(heartbeats)).all()


def test_heartbeat_is_stored(server: ThreadServer, box: Box) -> None:
    beat = {
        "device_id": box.device_id,
        "box_id": "box-jinshui-07",
        "queue_depth": 12,
        "oldest_unsent": "2017-11-01T08:05:00+08:00",
        "ports": {"/dev/ttyUSB0": {"open": True, "frames": 1200, "crc_errors": 3}},
        "clock_offset_s": -1.5,
        "disk_free_bytes": 12_884_901_888,  # 12 GiB: more than 32 bits
        "version": "0.1.0",
        "alarms": ["port /dev/ttyUSB1 silent for 600 s"],
    }
    body = json.dumps(beat).encode()
    response = signed_post(server.url, "/v1/heartbeats", box, body, encoding=None)
    assert response.status_code == 200, response.text
    [row] = _heartbeat_rows(server)
    assert (row.device_id, row.box_id, row.queue_depth) == (box.device_id, "box-jinshui-07", 12)
    assert row.clock_offset_s == -1.5 and row.disk_free_bytes == 12_884_901_888
    assert json.loads(row.ports_json) == beat["ports"]
    assert json.loads(row.body_json)["alarms"] == beat["alarms"]


@pytest.mark.parametrize(
    ("beat", "sign_as", "status", "error"),
    [
        ({"device_id": "88888880000099", "queue_depth": 1}, "box", 422, "wrong_device"),
        ({"device_id": CEMS_MN, "queue_depth": -3}, "box", 422, "invalid_heartbeat"),
        ({"device_id": CEMS_MN}, "stranger", 401, "bad_signature"),
    ],
)
def test_heartbeat_refusals(
    server: ThreadServer, box: Box, beat: dict, sign_as: str, status: int, error: str
) -> None:
    signer = (
        box if sign_as == "box" else Box(box.device_id, derive_key(new_secret(), box.device_id))
    )
    response = signed_post(
        server.url, "/v1/heartbeats", signer, json.dumps(beat).encode(), encoding=None
    )
    assert response.status_code == status
    assert response.json()["error"] == error
    assert _heartbeat_rows(server) == []


def test_enrolment_then_upload_then_rotation_with_grace(server: ThreadServer) -> None:
    registry = Registry(server.settings.db_url)
    code = registry.add("88888880000010", "cems", "stack", "ST-0107")
    secret = new_secret()
    key = derive_key(secret, "88888880000010")
    enroll = server.url + "/v1/enroll"

    wrong = requests.post(
        enroll, json={"device_id": "88888880000010", "enrolment_code": "AAAAA-BBBBB", "key": key}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "bad_enrolment_code"
    assert key not in wrong.text
    bad_key = requests.post(
        enroll, json={"device_id": "88888880000010", "enrolment_code": code, "key": "zz"}
    )
    assert bad_key.status_code == 422 and "key" in bad_key.json()["detail"]

    # The code is typed by a person: lower case and spaces instead of dashes still match.
    typed = code.lower().replace("-", " ")
    ok = requests.post(
        enroll, json={"device_id": "88888880000010", "enrolment_code": typed, "key": key}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"status": "enrolled", "device_id": "88888880000010"}
    reuse = requests.post(
        enroll, json={"device_id": "88888880000010", "enrolment_code": code, "key": key}
    )
    assert reuse.status_code == 401 and reuse.json()["error"] == "no_enrolment_pending"

    old_box = Box("88888880000010", key)
    start = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
    first = signed_post(server.url, BATCHES, old_box, gz(make_batch("88888880000010", start=start)))
    assert first.status_code == 200

    # Rotation: a new code, the box derives a key from a new secret and re-enrols.
    code2 = registry.issue_code("88888880000010")
    new_key = derive_key(new_secret(), "88888880000010")
    assert (
        requests.post(
            enroll, json={"device_id": "88888880000010", "enrolment_code": code2, "key": new_key}
        ).status_code
        == 200
    )
    new_box = Box("88888880000010", new_key)
    for i, signer in enumerate((new_box, old_box), start=1):  # old key: inside the grace window
        batch = make_batch("88888880000010", start=start + timedelta(hours=i))
        assert signed_post(server.url, BATCHES, signer, gz(batch)).status_code == 200
    # Once the grace window is over, the old key is refused.
    registry.set_key("88888880000010", derive_key(new_secret(), "88888880000010"), grace_s=0)
    late = signed_post(
        server.url,
        BATCHES,
        new_box,
        gz(make_batch("88888880000010", start=start + timedelta(hours=5))),
    )
    assert late.status_code == 401 and late.json()["error"] == "bad_signature"
    assert index_count(server.settings.db_url) == 3


def test_probes_and_openapi(server: ThreadServer, tmp_path: Path) -> None:
    assert requests.get(server.url + "/healthz").json() == {"status": "ok"}
    assert requests.get(server.url + "/readyz").json() == {"status": "ready"}
    spec = requests.get(server.url + "/openapi.json").json()
    assert {
        "/v1/batches",
        "/v1/heartbeats",
        "/v1/enroll",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(spec["paths"])
    params = {p["name"] for p in spec["paths"]["/v1/batches"]["post"]["parameters"]}
    assert {"X-Lantian-Device", "X-Lantian-Timestamp", "X-Lantian-Signature"} <= params
    # The landing root replaced by a file: not writable, so not ready (503 naming it).
    root = server.settings.landing_root
    root.rename(tmp_path / "landing-moved")
    root.write_text("not a directory")
    not_ready = requests.get(server.url + "/readyz")
    assert not_ready.status_code == 503
    assert "landing directory" in not_ready.json()["detail"]


def test_metrics_count_batches_and_readings(server: ThreadServer, box: Box) -> None:
    batch = make_batch(n=7)
    now = int(time.time())
    signed_post(server.url, BATCHES, box, gz(batch), timestamp=now)
    signed_post(server.url, BATCHES, box, gz(batch), timestamp=now + 1)
    text = requests.get(server.url + "/metrics").text
    assert 'lantian_ingest_batches_total{status="landed"} 1.0' in text
    assert 'lantian_ingest_batches_total{status="duplicate"} 1.0' in text
    assert "lantian_ingest_readings_total 7.0" in text
    assert "lantian_ingest_landing_seconds_count 1.0" in text


def test_one_json_log_line_per_request_and_no_key(
    server: ThreadServer, box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lantian.ingest.access")
    batch = make_batch(n=3)
    signed_post(server.url, BATCHES, box, gz(batch))
    _wrong_key(server, box)
    requests.post(
        server.url + "/v1/enroll",
        json={"device_id": box.device_id, "enrolment_code": "X", "key": box.key},
    )
    # The access line is written once the response has gone out: the client can be faster.
    deadline = time.monotonic() + 5.0
    while True:
        lines = [
            json.loads(r.getMessage()) for r in caplog.records if r.name == "lantian.ingest.access"
        ]
        if len(lines) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(lines) == 3
    landed, refused, enrol = lines
    assert (landed["device"], landed["batch"], landed["status"], landed["readings"]) == (
        box.device_id, batch["batch_id"], 200, 3,
    )  # fmt: skip
    assert landed["latency_ms"] > 0 and landed["reason"] is None
    assert (refused["status"], refused["reason"]) == (401, "bad_signature")
    assert enrol["status"] == 401 and enrol["reason"] == "no_enrolment_pending"
    assert box.key not in caplog.text


def test_unknown_route_answers_in_the_error_shape(server: ThreadServer) -> None:
    response = requests.get(server.url + "/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_received_batch_is_deep_copied_evidence(server: ThreadServer, box: Box) -> None:
    """The landed file is the bytes signed: later edits to the sender's object change nothing."""
    batch = make_batch(n=2)
    body = gz(batch)
    signed_post(server.url, BATCHES, box, body)
    edited = copy.deepcopy(batch)
    edited["readings"][0]["values"]["a21026"]["Avg"] = "0.00"  # same ids, different values
    response = signed_post(server.url, BATCHES, box, gz(edited), timestamp=int(time.time()) + 1)
    assert response.json()["status"] == "duplicate"
    [path] = landed_files(server.settings.landing_root)
    assert path.read_bytes() == body


# -- the replay cache committed with the outcome ---------------------------------------------


def _signed(box: Box, body: bytes, path: str = BATCHES, encoding: str | None = "gzip") -> dict:
    headers = signed_headers(box.key, "POST", path, int(time.time()), box.device_id, body)
    headers["Content-Type"] = "application/json"
    if encoding:
        headers["Content-Encoding"] = encoding
    return headers


def test_replay_of_a_refused_upload_is_refused_as_a_replay(server: ThreadServer, box: Box) -> None:
    body = gz(make_batch(n=2, received_lag_s=-61 * 60))  # device clock 61 min fast: 422
    headers = _signed(box, body)
    first = requests.post(server.url + BATCHES, data=body, headers=headers)
    assert (first.status_code, first.json()["error"]) == (422, "implausible_time")
    again = requests.post(server.url + BATCHES, data=body, headers=headers)
    assert (again.status_code, again.json()["error"]) == (401, "replay")
    assert_nothing_landed(server)


def test_copies_of_one_signed_request_in_flight_together_land_once(
    server: ThreadServer, box: Box
) -> None:
    """The replay check before decoding cannot see a copy still in flight; the commit can."""
    from concurrent.futures import ThreadPoolExecutor

    body = gz(make_batch(n=60))
    headers = _signed(box, body)
    start = threading.Barrier(8)

    def send(_: int) -> tuple[int, str]:
        start.wait(10)
        answer = requests.post(server.url + BATCHES, data=body, headers=headers, timeout=30)
        return answer.status_code, answer.json().get("status") or answer.json()["error"]

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(send, range(8)))
    assert outcomes == [(200, "landed")] + [(401, "replay")] * 7
    assert len(landed_files(server.settings.landing_root)) == 1
    assert index_count(server.settings.db_url) == 1
    report = LandingIndex(server.settings.db_url, server.settings.landing_root).verify()
    assert report.ok and report.unindexed == [] and report.temporaries == []


def test_replayed_heartbeat_is_refused_and_stored_once(server: ThreadServer, box: Box) -> None:
    body = json.dumps({"device_id": box.device_id, "queue_depth": 3}).encode()
    headers = _signed(box, body, "/v1/heartbeats", encoding=None)
    assert requests.post(server.url + "/v1/heartbeats", data=body, headers=headers).ok
    again = requests.post(server.url + "/v1/heartbeats", data=body, headers=headers)
    assert (again.status_code, again.json()["error"]) == (401, "replay")
    assert len(_heartbeat_rows(server)) == 1


def test_many_devices_at_once_all_land_and_verify(tmp_path: Path) -> None:
    """Concurrent uploads of 12 devices share commits; every 200 is indexed and intact."""
    from concurrent.futures import ThreadPoolExecutor

    settings = test_settings(tmp_path)
    with ThreadServer(settings) as server:
        boxes = [enrol_box(settings.db_url, f"8888888200{i:04d}") for i in range(12)]
        start = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)

        def upload(box: Box) -> list[int]:
            session = requests.Session()
            return [
                signed_post(
                    server.url,
                    BATCHES,
                    box,
                    gz(make_batch(box.device_id, n=5, start=start + timedelta(hours=k))),
                    session=session,
                ).status_code
                for k in range(4)
            ]

        with ThreadPoolExecutor(12) as pool:
            statuses = [s for answers in pool.map(upload, boxes) for s in answers]
        assert statuses == [200] * 48
        report = LandingIndex(settings.db_url, settings.landing_root).verify()
        assert report.ok and report.checked == 48 and report.unindexed == []
        group = server.app.state.service.commits
        assert group.items >= 48  # index rows; each commit holds one or more
