"""The pure request checks: window edges, plausibility edges, token buckets, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_batch

from ingest.checks import Rejection, TokenBuckets, auth_headers, check_times, check_window
from ingest.settings import Plausibility, load_plausibility, load_settings, settings_from_dict
from schemas.reading import BEIJING

BOUNDS = Plausibility(max_future_min=60, earliest_year=2000)


def test_plausibility_bounds_come_from_the_data_file() -> None:
    assert load_plausibility() == BOUNDS


@pytest.mark.parametrize(
    ("skew", "ok"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)]
)
def test_timestamp_window_edges(skew: int, ok: bool) -> None:
    now = 1_700_000_000.0
    if ok:
        check_window(int(now) + skew, now, 300)
    else:
        with pytest.raises(Rejection) as caught:
            check_window(int(now) + skew, now, 300)
        assert caught.value.status == 401 and caught.value.extra == {"server_time": 1_700_000_000}


@pytest.mark.parametrize(
    ("lag_s", "ok"),
    [(25, True), (-3600, True), (-3601, False), (-7200, False)],  # tolerance 60 min = 3600 s
)
def test_device_time_after_receive_time_edges(lag_s: float, ok: bool) -> None:
    start = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
    batch = make_batch(start=start, n=1, received_lag_s=lag_s)
    now = datetime(2017, 11, 2, tzinfo=UTC)
    if ok:
        check_times(batch, now, BOUNDS)
    else:
        with pytest.raises(Rejection, match=r"readings\[0\]: data_time 20171101080000"):
            check_times(batch, now, BOUNDS)


def test_received_at_in_the_future_of_the_server() -> None:
    start = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
    batch = make_batch(start=start, n=1, received_lag_s=0)
    check_times(batch, start + timedelta(minutes=-60), BOUNDS)  # exactly the tolerance
    with pytest.raises(Rejection, match="received_at .* is in the future"):
        check_times(batch, start + timedelta(minutes=-61), BOUNDS)


def test_year_bounds_use_the_device_calendar() -> None:
    now = datetime(2017, 11, 2, tzinfo=UTC)
    # 2000-01-01 00:00 Beijing is 1999-12-31 16:00 UTC: still year 2000 for the device.
    check_times(make_batch(start=datetime(2000, 1, 1, tzinfo=BEIJING), n=1), now, BOUNDS)
    with pytest.raises(Rejection, match="before 2000"):
        check_times(
            make_batch(start=datetime(1999, 12, 31, 23, 59, tzinfo=BEIJING), n=1), now, BOUNDS
        )


def test_token_bucket_refills_at_its_rate() -> None:
    clock = [100.0]
    buckets = TokenBuckets(rate_per_s=0.5, burst=2, clock=lambda: clock[0])
    assert buckets.take("a") == 0.0 and buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(2.0)  # 1 token at 0.5/s
    assert buckets.take("b") == 0.0  # per device
    clock[0] += 1.0
    assert buckets.take("a") == pytest.approx(1.0)
    clock[0] += 1.0
    assert buckets.take("a") == 0.0
    assert TokenBuckets(rate_per_s=0, burst=0).take("a") == 0.0  # disabled


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "missing_auth_header"),
        (
            {
                "X-Lantian-Device": "../x",
                "X-Lantian-Timestamp": "1",
                "X-Lantian-Signature": "a" * 64,
            },
            "unknown_device",
        ),
        (
            {
                "X-Lantian-Device": "M1",
                "X-Lantian-Timestamp": "soon",
                "X-Lantian-Signature": "a" * 64,
            },
            "bad_timestamp",
        ),
        (
            {"X-Lantian-Device": "M1", "X-Lantian-Timestamp": "1", "X-Lantian-Signature": "é" * 64},
            "bad_signature",
        ),
    ],
)
def test_malformed_auth_headers(headers: dict[str, str], error: str) -> None:
    with pytest.raises(Rejection) as caught:
        auth_headers(headers)
    assert caught.value.status == 401 and caught.value.error == error


def test_settings_file_and_unknown_keys(tmp_path: Path) -> None:
    config = tmp_path / "ingest.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///x.sqlite"\n[landing]\nroot = "landing"\n'
        "[auth]\ntimestamp_window_s = 120\n[limits]\nrate_per_s = 2\nmax_body_bytes = 1024\n"
    )
    settings = load_settings(config)
    assert settings.landing_root == tmp_path / "landing"  # relative to the file
    assert (settings.timestamp_window_s, settings.rate_per_s, settings.max_body_bytes) == (
        120.0,
        2.0,
        1024,
    )
    with pytest.raises(ValueError, match=r"unknown setting \[limits\] max_body"):
        settings_from_dict({"limits": {"max_body": 1}})


def test_example_config_in_infra_loads() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "infra" / "ingest" / "ingest.toml")
    assert settings.db_url.startswith("sqlite:///") and settings.timestamp_window_s == 300


def test_end_of_calendar_times_are_refused_not_crashed() -> None:
    batch = make_batch(start=datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING), n=1)
    batch["readings"][0]["device_time"] = "9999-12-31T23:59:00-08:00"
    with pytest.raises(Rejection) as caught:
        check_times(batch, datetime(2017, 11, 2, tzinfo=UTC), BOUNDS)
    assert caught.value.status == 422 and caught.value.error == "implausible_time"


def _timed(device_time: str, received_at: str, data_time: str = "20171101080000") -> dict:
    return {"data_time": data_time, "device_time": device_time, "received_at": received_at}


def test_check_times_returns_the_data_time_span_across_offsets() -> None:
    readings = [
        _timed("2017-11-01T08:00:00+08:00", "2017-11-01T08:00:30+08:00"),  # 00:00 UTC
        _timed("2017-11-01T01:30:00+00:00", "2017-11-01T01:30:10+00:00"),  # 01:30 UTC
        _timed("2017-10-31T23:00:00-02:00", "2017-10-31T23:00:05-02:00"),  # 01:00 UTC
    ]
    first, last = check_times({"readings": readings}, datetime(2017, 11, 2, tzinfo=UTC), BOUNDS)
    assert first == datetime(2017, 11, 1, 0, 0, tzinfo=UTC)
    assert last == datetime(2017, 11, 1, 1, 30, tzinfo=UTC)
    assert first.utcoffset() == timedelta(hours=8)  # the reading's own value, not a conversion


def test_only_the_failing_reading_is_named_in_a_long_batch() -> None:
    start = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
    batch = make_batch(start=start, n=6)
    batch["readings"][4]["received_at"] = "2017-11-01T06:00:00+08:00"  # device 2 h 4 min ahead
    with pytest.raises(Rejection, match=r"readings\[4\]: data_time 20171101080400 .* 124 min"):
        check_times(batch, datetime(2017, 11, 2, tzinfo=UTC), BOUNDS)


# -- JSON decoding: a fast parser for strict JSON, the stdlib for everything else ------------

STDLIB_EXTENSIONS = [
    b'{"drift": NaN, "x": Infinity}',  # json.dumps writes these for float("nan"), float("inf")
    b"[1e400, -1e400]",  # out of double range: inf in the stdlib
    b'{"raw": "\\ud800"}',  # a lone surrogate
    b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte order mark
    '{"a": "\u84dd\u5929"}'.encode("utf-16"),  # UTF-16 with a BOM
    b'{"a": 1, "a": 2}',  # duplicate keys: the last wins
    b"123456789012345678901234567890",  # beyond 64 bits
    b'[0.1, -0.0, 1e-400, 5e-324, 1.7976931348623157e308, "\\u0000"]',
]


@pytest.mark.parametrize("text", STDLIB_EXTENSIONS)
def test_json_decoding_gives_what_the_stdlib_gives(text: bytes) -> None:
    import json

    from ingest.checks import decode_json

    assert repr(decode_json(text, "identity", 1 << 20)) == repr(json.loads(text))


def test_a_real_batch_decodes_to_the_same_objects_as_the_stdlib() -> None:
    import gzip
    import json

    from ingest.checks import decode_json

    body = gzip.compress(json.dumps(make_batch(n=20), ensure_ascii=False).encode(), mtime=0)
    decoded = decode_json(body, "gzip", 1 << 20)
    assert decoded == json.loads(gzip.decompress(body))
    assert list(decoded) == list(json.loads(gzip.decompress(body)))  # key order too


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (b'{"a": ', "body is not JSON: Expecting value at line 1"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not"),  # too deep for either parser
        (b'{"a": 1} x', "body is not JSON: Extra data at line 1"),
        (b'{"device_id": "\xff"}', "body is not UTF-8"),
    ],
)
def test_json_refusals_are_worded_by_the_stdlib(text: bytes, detail: str) -> None:
    from ingest.checks import decode_json

    with pytest.raises(Rejection) as refused:
        decode_json(text, "identity", 1 << 21)
    assert (refused.value.status, refused.value.error) == (400, "malformed_json")
    assert refused.value.detail.startswith(detail)
