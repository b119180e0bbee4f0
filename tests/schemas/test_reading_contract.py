from __future__ import annotations

import json

import pytest

from schemas.reading import (
    Batch,
    ContractError,
    Reading,
    batch_id,
    check_batch_dict,
    check_reading_dict,
    parse_data_time,
    reading_id,
)

RAW = "##0101QN=20171201000000000;ST=31;CN=2051;PW=123456;MN=DEV1;Flag=4;CP=&&DataTime=20171201000000;a21026-Avg=12.30,a21026-Flag=N&&ABCD"


def make(device="DEV1", data_time="20171201000000", **kw) -> Reading:
    return Reading(
        device_id=device,
        stream="cems",
        cn="2051",
        data_time=data_time,
        device_time="2017-12-01T00:00:00+08:00",
        received_at="2017-12-01T00:00:02+08:00",
        values={"a21026": {"Avg": "12.30", "Flag": "N"}},
        raw=RAW,
        **kw,
    )


def test_id_is_derived_from_content_not_from_receive_time():
    a = make()
    b = make()
    b.received_at = "2017-12-05T10:00:00+08:00"
    assert a.id == b.id == reading_id("DEV1", "2051", "20171201000000")
    assert make(data_time="20171201000100").id != a.id
    assert make(key="nozzle-2").id != a.id


def test_values_stay_decimal_strings_through_json():
    data = json.loads(json.dumps(make().to_dict()))
    check_reading_dict(data)
    assert data["values"]["a21026"]["Avg"] == "12.30"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("raw"), "missing field 'raw'"),
        (lambda d: d.update(stream="water"), "unknown stream"),
        (lambda d: d.update(id="0" * 32), "does not match its content"),
        (lambda d: d.update(raw=d["raw"] + "x"), "raw_sha256 does not match"),
        (lambda d: d.update(data_time="2017-12-01"), "is not YYYYMMDDhhmmss"),
        (lambda d: d.update(device_time="2017-12-01T00:00:00"), "has no UTC offset"),
        (lambda d: d.update(values=[]), "field 'values' must be dict"),
    ],
)
def test_reading_contract_names_the_problem(mutate, message):
    data = make().to_dict()
    mutate(data)
    with pytest.raises(ContractError, match=message):
        check_reading_dict(data)


def test_batch_id_is_stable_and_checked():
    readings = [make().to_dict(), make(data_time="20171201000100").to_dict()]
    batch = Batch(device_id="DEV1", stream="cems", readings=readings)
    assert batch.batch_id == batch_id([r["id"] for r in readings])
    data = json.loads(batch.to_json())
    check_batch_dict(data)
    data["readings"] = data["readings"][:1]
    with pytest.raises(ContractError, match="batch_id .* does not match"):
        check_batch_dict(data)


def test_batch_refuses_readings_of_another_device_or_stream():
    other = make(device="DEV2").to_dict()
    data = json.loads(Batch(device_id="DEV1", stream="cems", readings=[other]).to_json())
    with pytest.raises(ContractError, match="not the batch's device"):
        check_batch_dict(data)
    data = json.loads(
        Batch(device_id="DEV1", stream="ambient", readings=[make().to_dict()]).to_json()
    )
    with pytest.raises(ContractError, match="not the batch's stream"):
        check_batch_dict(data)


def test_data_time_with_milliseconds():
    assert parse_data_time("20171201103000123").microsecond == 123000
    assert parse_data_time("20171201103000").utcoffset().total_seconds() == 8 * 3600


@pytest.mark.parametrize(
    "text", ["20171301000000", "20170230000000", "20171201250000", "2017120100000a"]
)
def test_impossible_data_times_are_contract_errors(text):
    with pytest.raises(ContractError, match="data_time"):
        parse_data_time(text)
