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
