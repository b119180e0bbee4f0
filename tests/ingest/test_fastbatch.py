"""The fast batch decoder (ingest/fastbatch.py) decides exactly as the contract in schemas/ does.

The reference is ``checked_batch(..., fast=False)``: ``json``-compatible decoding, then
``schemas.reading.check_batch_dict`` (through ``ingest.checks.check_batch``) and
``ingest.checks.check_times``. Over realistic batches, every payload refusal of the HTTP tests,
hand-picked edge cases and a few thousand seeded random mutations, the service's
``checked_batch`` must give the same outcome: the same batch id, reading count and data time
span when it accepts, the same status, error code and detail when it refuses. And the fast
decoder itself (``accept``) must never accept what the reference refuses.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import CEMS_MN, make_batch

from ingest.checks import Rejection, checked_batch
from ingest.fastbatch import accept
from ingest.settings import load_plausibility
from schemas.reading import BEIJING, batch_id, reading_id, sha256_hex

BOUNDS = load_plausibility()
NOW = datetime(2017, 11, 2, tzinfo=UTC)
START = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)
OTHER_MN = "88888880000003"


def _outcome(text: bytes, device_id: str, stream: str, *, fast: bool) -> tuple[Any, ...]:
    try:
        batch, (first, last) = checked_batch(
            text, "identity", device_id, stream, BOUNDS, 1 << 26, now=NOW, fast=fast
        )
    except Rejection as exc:
        return ("refused", exc.status, exc.error, exc.detail)
    # The offset is part of the answer: the index stores the reading's own value.
    span = (first, first.utcoffset(), last, last.utcoffset())
    return ("accepted", batch["batch_id"], len(batch["readings"]), span)


def _same_verdict(text: bytes, device_id: str = CEMS_MN, stream: str = "cems") -> tuple:
    """Both paths' outcome (asserted equal), and whether the fast decoder accepted alone."""
    reference = _outcome(text, device_id, stream, fast=False)
    service = _outcome(text, device_id, stream, fast=True)
    assert service == reference, text[:300]
    alone = accept(text, device_id, stream, BOUNDS, NOW)
    if reference[0] == "refused":
        assert alone is None, (reference, text[:300])
    return reference, alone is not None


def _dump(batch: Any) -> bytes:
    return json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode()


def _reseal(batch: dict[str, Any]) -> None:
    """Recompute ids and hashes where the fields allow it, so deeper checks are reached."""
    readings = batch.get("readings")
    if not isinstance(readings, list):
        return
    for reading in readings:
        if not isinstance(reading, dict):
            continue
        with_key = reading.get("key", "")
        parts = (reading.get("device_id"), reading.get("cn"), reading.get("data_time"))
        if all(isinstance(p, str) for p in parts) and isinstance(with_key, str):
            reading["id"] = reading_id(*parts, with_key)
        if isinstance(reading.get("raw"), str):
            with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate: left unsealed
                reading["raw_sha256"] = sha256_hex(reading["raw"])
    ids = [r.get("id") for r in readings if isinstance(r, dict)]
    if ids and all(isinstance(i, str) for i in ids) and len(ids) == len(readings):
        batch["batch_id"] = batch_id(ids)


# -- realistic batches: the fast decoder must take them (else it would be pointless) ---------


def _realistic() -> list[dict[str, Any]]:
    plain = make_batch(start=START, n=7)
    keyed = make_batch(start=START, n=3)
    for i, reading in enumerate(keyed["readings"]):
        reading["key"] = f"nozzle-{i}"
    millis = make_batch(start=START, n=3)
    for reading in millis["readings"]:
        reading["data_time"] += "250"
    offsets = make_batch(start=START, n=3)
    offsets["readings"][1]["device_time"] = "2017-11-01T00:30:00+00:00"
    offsets["readings"][2]["device_time"] = "2017-10-31T22:00:00-02:00"
    sparse = make_batch(start=START, n=2)
    for reading in sparse["readings"]:
        del reading["units"], reading["clock"], reading["key"]
    extras = make_batch(start=START, n=2)
    extras["note"] = {"nested": [1, 2.5, None, True]}
    extras["readings"][0]["extra"] = "kept in the file, ignored by the checks"
    no_contract = make_batch(start=START, n=2)
    del no_contract["contract"]
    backwards = make_batch(start=START, n=5)  # a resent backlog: not in time order
    backwards["readings"] = backwards["readings"][2:] + backwards["readings"][:2]
    edge = make_batch(start=START, n=1, received_lag_s=-3600)  # exactly at the tolerance
    batches = [plain, keyed, millis, offsets, sparse, extras, no_contract, backwards, edge]
    for batch in batches:
        _reseal(batch)
    return batches


def test_realistic_batches_are_accepted_by_both_paths_and_by_the_fast_decoder() -> None:
    for batch in _realistic()[:-1]:  # the last sits on a bound: the reference decides it
        reference, fast_alone = _same_verdict(_dump(batch))
        assert reference[0] == "accepted" and fast_alone, reference
    reference, _ = _same_verdict(_dump(_realistic()[-1]))
    assert reference[0] == "accepted"


def test_span_is_the_first_earliest_and_latest_reading_across_offsets() -> None:
    batch = _realistic()[3]
    (verdict, _, _, span), fast_alone = _same_verdict(_dump(batch))
    assert verdict == "accepted" and fast_alone
    assert span[0] == datetime(2017, 11, 1, 0, 0, tzinfo=UTC) and span[1] == timedelta(hours=8)


# -- every payload refusal the HTTP tests send, and edge cases ------------------------------


def _m(mutate: Callable[[dict[str, Any]], None], n: int = 4) -> bytes:
    batch = make_batch(start=START, n=n)
    mutate(batch)
    return _dump(batch)


def _set(path: tuple[Any, ...], value: Any, reseal: bool = True) -> Callable[[dict], None]:
    def mutate(batch: dict[str, Any]) -> None:
        target = batch
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        if reseal:
            _reseal(batch)

    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[dict], None]:
    def mutate(batch: dict[str, Any]) -> None:
        target = batch
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


def _other_device_reading(batch: dict[str, Any]) -> None:
    batch["readings"][1] = make_batch(OTHER_MN, start=START, n=1)["readings"][0]
    _reseal(batch)


def _ambient(batch: dict[str, Any]) -> None:
    batch["stream"] = "ambient"
    for reading in batch["readings"]:
        reading["stream"] = "ambient"


def _noise_in_raw(batch: dict[str, Any]) -> None:
    raw = batch["readings"][1]["raw"]
    batch["readings"][1]["raw"] = raw.replace("a21026-Avg=12.30", "a21026-Avg=12.80")


CASES: list[tuple[str, bytes]] = [
    # tests/ingest/test_http.py REFUSALS (payload ones) and test_checks.py
    ("json_array", b"[1, 2, 3]"),
    ("half_json", _dump(make_batch(start=START))[:300]),
    ("not_utf8", b'{"device_id": "\xff\xfe"}'),
    ("missing_raw_sha256", _m(_delete(("readings", 2, "raw_sha256")))),
    ("noise_in_raw", _m(_noise_in_raw)),
    ("reading_lost", _m(_delete(("readings", 3)))),
    ("reading_of_other_device", _m(_other_device_reading)),
    ("batch_of_other_device", _dump(make_batch(OTHER_MN, start=START, n=2))),
    ("other_stream", _m(_ambient)),
    ("contract_v2", _m(_set(("contract",), 2))),
    ("data_time_in_future", _dump(make_batch(start=START, n=2, received_lag_s=-61 * 60))),
    ("one_second_past_tolerance", _dump(make_batch(start=START, n=2, received_lag_s=-3601))),
    ("before_2000", _dump(make_batch(start=datetime(1999, 12, 31, 23, 58, tzinfo=BEIJING), n=1))),
    ("year_2000_beijing", _dump(make_batch(start=datetime(2000, 1, 1, tzinfo=BEIJING), n=1))),
    ("received_in_future", _dump(make_batch(start=datetime(2017, 11, 2, 12, tzinfo=UTC), n=1))),
    ("end_of_calendar", _m(_set(("readings", 0, "device_time"), "9999-12-31T23:59:00-08:00"))),
    ("no_readings", _m(_set(("readings",), []))),
    ("empty_object", b"{}"),
    ("not_an_object", b'"batch"'),
    ("naive_device_time", _m(_set(("readings", 1, "device_time"), "2017-11-01T08:01:00"))),
    ("date_only_received_at", _m(_set(("readings", 1, "received_at"), "2017-11-01"))),
    ("zulu_received_at", _m(_set(("readings", 1, "received_at"), "2017-11-01T00:02:00Z"))),
    ("data_time_padded", _m(_set(("readings", 0, "data_time"), " 20171101080000 "))),
    ("data_time_arabic_digits", _m(_set(("readings", 0, "data_time"), "٢٠١٧١١٠١٠٨٠٠٠٠"))),
    ("data_time_feb_30", _m(_set(("readings", 0, "data_time"), "20170230080000"))),
    ("data_time_hour_24", _m(_set(("readings", 0, "data_time"), "20171101240000"))),
    ("data_time_second_60", _m(_set(("readings", 0, "data_time"), "20171101080060"))),
    ("data_time_13_digits", _m(_set(("readings", 0, "data_time"), "2017110108000"))),
    ("data_time_15_digits", _m(_set(("readings", 0, "data_time"), "201711010800001"))),
    ("data_time_16_digits", _m(_set(("readings", 0, "data_time"), "2017110108000012"))),
    ("received_before_2000", _dump(make_batch(start=datetime(2000, 1, 1, tzinfo=BEIJING), n=1, received_lag_s=-1))),
    ("data_time_year_0", _m(_set(("readings", 0, "data_time"), "00001101080000"))),
    ("data_time_year_1999", _m(_set(("readings", 0, "data_time"), "19991101080000"))),
    ("values_list", _m(_set(("readings", 0, "values"), []))),
    ("values_string", _m(_set(("readings", 0, "values"), "{}"))),
    ("key_int", _m(_set(("readings", 0, "key"), 7))),
    ("key_null", _m(_set(("readings", 0, "key"), None))),
    ("contract_true", _m(_set(("contract",), True))),
    ("contract_float", _m(_set(("contract",), 1.0))),
    ("contract_null", _m(_set(("contract",), None))),
    ("stream_unknown", _m(_set(("stream",), "noise"))),
    ("reading_stream_unknown", _m(_set(("readings", 0, "stream"), "noise"))),
    ("batch_id_upper", _m(lambda b: b.update(batch_id=b["batch_id"].upper()))),
    ("reading_is_list", _m(_set(("readings", 1), ["id"]))),
    ("raw_lone_surrogate", _dump(make_batch(start=START, n=1)).replace(b'"raw":"', b'"raw":"\\ud800', 1)),
    ("nan_in_clock", _dump(make_batch(start=START, n=2)).replace(b'"drift":false', b'"drift":NaN')),
    ("big_int_in_clock", _dump(make_batch(start=START, n=2)).replace(b'"drift":false', b'"drift":1' + b"0" * 30)),
    ("bom", b"\xef\xbb\xbf" + _dump(make_batch(start=START, n=2))),
    ("escaped_key", _dump(make_batch(start=START, n=2)).replace(b'"batch_id"', b'"batch\\u005fid"')),
    ("duplicate_stream_last_wins", _dump(make_batch(start=START, n=2)).replace(b'"stream":"cems","readings"', b'"stream":"ambient","stream":"cems","readings"')),
    ("duplicate_stream_last_loses", _dump(make_batch(start=START, n=2)).replace(b'"stream":"cems","readings"', b'"stream":"cems","stream":"ambient","readings"')),
    ("duplicate_id_wrong_type_first", _dump(make_batch(start=START, n=2)).replace(b'{"device_id"', b'{"id":5,"device_id"', 1)),
]  # fmt: skip


@pytest.mark.parametrize("text", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_every_case_gets_the_same_verdict(text: bytes) -> None:
    _same_verdict(text)


def test_the_http_refusals_are_refused_with_their_codes() -> None:
    """A check that the cases reach the checks they were written for (not an earlier one)."""
    expected = {
        "json_array": "expected an object",
        "missing_raw_sha256": "readings[2]: missing field 'raw_sha256'",
        "noise_in_raw": "readings[1]: raw_sha256",
        "reading_lost": "batch_id",
        "reading_of_other_device": "readings[1]: device '88888880000003'",
        "batch_of_other_device": "'88888880000003'",
        "other_stream": "'ambient'",
        "contract_v2": "contract version 2",
        "data_time_in_future": "61 min after received_at",
        "before_2000": "before 2000",
        "received_in_future": "is in the future",
        "data_time_feb_30": "not a real date",
        "key_int": "does not match its content",
    }
    cases = dict(CASES)
    for name, words in expected.items():
        verdict, _ = _same_verdict(cases[name])
        assert verdict[0] == "refused" and words in verdict[3], (name, verdict)
    for name in ("year_2000_beijing", "zulu_received_at", "contract_true", "contract_float"):
        assert _same_verdict(cases[name])[0][0] == "accepted", name


def test_device_and_stream_of_the_signer_are_compared() -> None:
    text = _dump(make_batch(start=START, n=2))
    assert _same_verdict(text, OTHER_MN)[0][2] == "wrong_device"
    assert _same_verdict(text, CEMS_MN, "ambient")[0][2] == "wrong_stream"


def test_gzip_bodies_take_the_same_way() -> None:
    batch = make_batch(start=START, n=3)
    body = gzip.compress(_dump(batch), mtime=0)
    fast = checked_batch(body, "gzip", CEMS_MN, "cems", BOUNDS, 1 << 20, now=NOW)
    slow = checked_batch(body, "gzip", CEMS_MN, "cems", BOUNDS, 1 << 20, now=NOW, fast=False)
    assert fast[0]["batch_id"] == slow[0]["batch_id"] == batch["batch_id"]
    assert fast[1] == slow[1]


# -- fuzzing: seeded random mutations, resealed half of the time ------------------------------

VALUES: list[Any] = [
    None, 0, 1, -1, 1.0, 2.5, True, False, "", "x", [], {}, {"a": {"b": "c"}}, ["x"],
    "20171101080000", "20171101080000123", " 20171101080000", "2017110108000", "20171131080000",
    "2017-11-01T08:00:00+08:00", "2017-11-01T08:00:00", "2017-11-01T09:01:00+08:00",
    "2017-11-01T08:00:00.000001+08:00", "2017-11-01T07:00:00+08:00", "1999-12-31T23:59:59+08:00",
    "2000-01-01T00:00:00+08:00", "2017-11-02T01:00:00+00:00", "2017-11-02T00:59:59.999999+00:00",
    "cems", "ambient", "vapor", "rsd", "CEMS", CEMS_MN, OTHER_MN, "2051", "蓝天", "\u0000",
]  # fmt: skip
BATCH_FIELDS = ["device_id", "stream", "readings", "batch_id", "contract", "agent_version"]
READING_FIELDS = [
    "id", "device_id", "stream", "cn", "data_time", "device_time", "received_at", "values",
    "units", "raw", "raw_sha256", "key", "clock",
]  # fmt: skip


def _mutate(batch: dict[str, Any], rng: random.Random) -> None:
    kind = rng.random()
    readings = batch.get("readings")
    if kind < 0.15:
        field = rng.choice(BATCH_FIELDS)
        if rng.random() < 0.3:
            batch.pop(field, None)
        else:
            batch[field] = rng.choice(VALUES)
    elif kind < 0.65 and readings and isinstance(readings, list):
        reading = rng.choice(readings)
        if not isinstance(reading, dict):
            return
        field = rng.choice(READING_FIELDS)
        if rng.random() < 0.2:
            reading.pop(field, None)
        else:
            reading[field] = rng.choice(VALUES)
    elif kind < 0.8 and readings and isinstance(readings, list):
        reading = rng.choice(readings)
        if isinstance(reading, dict) and isinstance(reading.get("received_at"), str):
            # Times near the bounds: the tolerance (60 min) and the server's clock.
            base = START + timedelta(seconds=rng.choice([0, 3599, 3600, 3601]))
            shift = timedelta(microseconds=rng.choice([-1, 0, 1, 999_999]))
            zone = rng.choice([BEIJING, UTC, datetime(2017, 1, 1).astimezone().tzinfo])
            moment = (base + shift).astimezone(zone)
            target = rng.choice(["device_time", "received_at"])
            reading[target] = moment.isoformat()
    elif kind < 0.9 and isinstance(readings, list) and readings:
        if rng.random() < 0.5:
            readings.append(copy.deepcopy(rng.choice(readings)))
        else:
            readings.pop(rng.randrange(len(readings)))
    else:
        reading = rng.choice(readings) if isinstance(readings, list) and readings else None
        if isinstance(reading, dict):
            reading["data_time"] = rng.choice(
                ["20171101080000", "20171101235959", "20171101080000999", "20000101000000",
                 "19991231235959", "20171101086000", "2O171101080000", "20171101080000 "]
            )  # fmt: skip


def _text_mutation(text: bytes, rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.3:
        return text.replace(b'"cn":"2051"', b'"cn":"2011","cn":"2051"', 1)
    if choice < 0.5:
        return text.replace(b'"values":{', b'"values": \n {', 1)
    if choice < 0.7:
        return text.replace(b'"key":""', b'"key":"","key":7', 1)
    if choice < 0.85:
        cut = rng.randrange(len(text))
        return text[:cut] + text[cut + 1 :]
    return text.replace(b'"device_id"', b'"device\\u005fid"')


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_batches_get_the_same_verdict(seed: int) -> None:
    rng = random.Random(seed)
    seeds = _realistic()
    verdicts = {"accepted": 0, "refused": 0}
    fast_alone = 0
    for _ in range(400):
        batch = copy.deepcopy(rng.choice(seeds))
        for _ in range(rng.choice([1, 1, 2, 3])):
            _mutate(batch, rng)
        if rng.random() < 0.6:
            _reseal(batch)
        text = _dump(batch)
        if rng.random() < 0.15:
            text = _text_mutation(text, rng)
        verdict, alone = _same_verdict(text, CEMS_MN, "cems")
        verdicts[verdict[0]] += 1
        fast_alone += alone
    # Both outcomes must be well represented, and the fast decoder must have done real work.
    assert verdicts["accepted"] > 40 and verdicts["refused"] > 40, verdicts
    assert fast_alone > 30, fast_alone
