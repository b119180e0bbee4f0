"""Device-family decoders on frames built with the HJ 212 codec: codes normalised to 2017, values
kept as sent, units from the device configuration, times with offsets, and clear errors for frames
a device must not send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agents.devices import (
    FAMILIES,
    DecodeError,
    DeviceFamily,
    MissingFieldError,
    UnexpectedFrameError,
    UnknownFamilyError,
    get_family,
)
from agents.hj212 import build_cp, build_frame, parse_frame
from schemas.reading import Reading, check_reading_dict, reading_id

MN = "410105310000000000000099"
RECEIVED = datetime(2017, 12, 1, 0, 31, 5, tzinfo=UTC)


def frame(*, st="31", cn="2051", mn=MN, pw="123456", values=None, data_time="20171201083000",
          extra=None, flag=4, crc_mode="standard"):  # fmt: skip
    cp = build_cp(values or {}, data_time=data_time, extra=extra)
    raw = build_frame(st=st, cn=cn, mn=mn, pw=pw, cp=cp, flag=flag, crc_mode=crc_mode)
    return parse_frame(raw, crc_mode=crc_mode), raw


def device(**overrides):
    base = {"device_id": MN, "family": "cems", "units": {}, "pw": "123456"}
    base.update(overrides)
    return base


def test_registry_lists_four_families_and_rejects_unknown_names():
    assert FAMILIES == ("cems", "ambient", "vapor", "rsd")
    for name in FAMILIES:
        family = get_family(name)
        assert isinstance(family, DeviceFamily)
        assert family.name == name and family.stream == name
    with pytest.raises(UnknownFamilyError) as info:
        get_family("cem")
    assert "cem" in str(info.value) and "cems, ambient, vapor, rsd" in str(info.value)


def test_cems_2017_minute_frame_becomes_one_reading():
    values = {
        "a21026": {"Avg": "12.30", "Min": "11.9", "Max": "13.0", "ZsAvg": "14.20", "Flag": "N"},
        "a19001": {"Avg": "10.50", "Flag": "N"},
    }
    parsed, raw = frame(values=values)
    cfg = device(units={"a21026": "mg/m3"})
    (reading,) = get_family("cems").decode(parsed, cfg, RECEIVED)
    assert isinstance(reading, Reading)
    assert reading.values == values  # strings exactly as sent: "12.30" stays "12.30"
    assert reading.stream == "cems" and reading.cn == "2051" and reading.key == ""
    assert reading.data_time == "20171201083000"
    assert reading.device_time == "2017-12-01T08:30:00+08:00"
    assert reading.received_at == "2017-12-01T00:31:05+00:00"
    assert reading.raw == raw.decode().removesuffix("\r\n")
    # configured unit first, hj212_codes.csv default for the rest
    assert reading.units == {"a21026": "mg/m3", "a19001": "%"}
    assert reading.id == reading_id(MN, "2051", "20171201083000", "")
    check_reading_dict(reading.to_dict())


def test_cems_2005_codes_are_mapped_to_2017_and_values_kept():
    values = {
        "01": {"Avg": "1.230", "Flag": "N"},
        "02": {"Avg": "95.10", "Flag": "N"},
        "03": {"Avg": "120.0", "Flag": "C"},
        "S01": {"Avg": "9.80"},
        "B02": {"Avg": "152340.0", "Cou": "2539.0"},
        "xyz9": {"Avg": "7"},  # unknown vendor code: passed through, never a reason to refuse
    }
    old_mn = "41010531000001"  # 14 characters, as 2005 loggers have
    parsed, _ = frame(values=values, mn=old_mn, flag=None)
    assert parsed.edition == 2005
    (reading,) = get_family("cems").decode(parsed, device(device_id=old_mn), RECEIVED)
    assert reading.values == {
        "a34013": {"Avg": "1.230", "Flag": "N"},
        "a21026": {"Avg": "95.10", "Flag": "N"},
        "a21002": {"Avg": "120.0", "Flag": "C"},
        "a19001": {"Avg": "9.80"},
        "a00000": {"Avg": "152340.0", "Cou": "2539.0"},
        "xyz9": {"Avg": "7"},
    }
    assert reading.units["a00000"] == "m3/h" and "xyz9" not in reading.units


def test_ambient_vendor_names_and_units_from_configuration():
    values = {
        "O3": {"Avg": "48.0", "Flag": "N"},
        "PM2.5": {"Avg": "156.3", "Flag": "N"},
        "a21005": {"Avg": "1.250", "Flag": "N"},
        "a01006": {"Avg": "1016.2", "Flag": "N"},
    }
    amn = "410105220000000000000099"
    parsed, _ = frame(st="22", mn=amn, values=values)
    cfg = device(device_id=amn, family="ambient", units={"a01006": "hPa"})
    (reading,) = get_family("ambient").decode(parsed, cfg, RECEIVED)
    assert set(reading.values) == {"a05024", "a34004", "a21005", "a01006"}
    assert reading.values["a05024"] == {"Avg": "48.0", "Flag": "N"}
    # ambient defaults: µg/m³ except CO (mg/m³); the device's own configuration wins (hPa)
    assert reading.units == {
        "a05024": "ug/m3", "a34004": "ug/m3", "a21005": "mg/m3", "a01006": "hPa",
    }  # fmt: skip


def test_ambient_family_does_not_apply_flue_gas_2005_codes():
    parsed, _ = frame(st="22", mn=MN, values={"02": {"Avg": "5"}})
    (reading,) = get_family("ambient").decode(parsed, device(family="ambient"), RECEIVED)
    assert reading.values == {"02": {"Avg": "5"}}


def test_missing_data_time_is_a_clear_error():
    parsed, _ = frame(values={"a21026": {"Avg": "1"}}, data_time=None)
    with pytest.raises(MissingFieldError) as info:
        get_family("cems").decode(parsed, device(), RECEIVED)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, DecodeError)
    assert err.field == "DataTime" and err.device_id == MN and err.st == "31" and err.cn == "2051"
    assert (
        MN in str(err) and "ST=31" in str(err) and "CN=2051" in str(err) and "DataTime" in str(err)
    )


@pytest.mark.parametrize(
    ("family", "st", "cn", "needle"),
    [
        ("cems", "22", "2051", "ST=22 is not a cems system code"),
        ("ambient", "31", "2051", "ST=31 is not a ambient system code"),
        ("cems", "31", "2099", "CN=2099 is not a cems data command"),
        ("rsd", "R1", "2051", "CN=2051 is not a rsd data command"),
        ("vapor", "31", "2011", "ST=31 is not a vapor system code"),
    ],
)
def test_frames_from_an_unexpected_st_or_cn_are_refused(family, st, cn, needle):
    parsed, _ = frame(
        st=st, cn=cn, values={"a21026": {"Avg": "1"}}, extra={"Nozzle": "1", "PassId": "1"}
    )
    with pytest.raises(UnexpectedFrameError) as info:
        get_family(family).decode(parsed, device(family=family), RECEIVED)
    assert needle in str(info.value) and MN in str(info.value)


@pytest.mark.parametrize(
    "cn", ["9011", "9012", "9013", "9014", "1011", "1013", "3020", "2081", "2021"]
)
def test_control_and_status_commands_are_not_readings(cn):
    parsed, _ = frame(
        st="91" if cn.startswith("9") else "31", cn=cn, values={}, extra={"QnRtn": "1"}
    )
    assert get_family("cems").decode(parsed, device(), RECEIVED) == []


def test_a_frame_from_another_device_or_with_a_wrong_password_is_refused():
    parsed, _ = frame(values={"a21026": {"Avg": "1"}}, mn="410105310000000000000001")
    with pytest.raises(UnexpectedFrameError, match="MN"):
        get_family("cems").decode(parsed, device(), RECEIVED)
    parsed, _ = frame(values={"a21026": {"Avg": "1"}}, pw="000000")
    with pytest.raises(UnexpectedFrameError, match="PW"):
        get_family("cems").decode(parsed, device(), RECEIVED)


def test_device_zone_and_millisecond_data_time():
    parsed, _ = frame(values={"a21026": {"Rtd": "1"}}, cn="2011", data_time="20171201083000250")
    (reading,) = get_family("cems").decode(parsed, device(tz=0), RECEIVED)
    assert reading.data_time == "20171201083000250"  # as sent: the id depends on it
    assert reading.device_time == "2017-12-01T08:30:00.250000+00:00"
    with pytest.raises(ValueError, match="time zone"):
        get_family("cems").decode(parsed, device(), datetime(2017, 12, 1, 8, 31))


def test_unreadable_data_time_names_the_field():
    parsed, _ = frame(values={"a21026": {"Rtd": "1"}}, cn="2011", data_time="20171301083000")
    with pytest.raises(MissingFieldError, match="DataTime '20171301083000'"):
        get_family("cems").decode(parsed, device(), RECEIVED)


VMN = "410105610000000000000099"


def test_vapor_refuellings_are_keyed_by_nozzle_and_minute_records_are_not():
    refuel = {"lv1001": {"Rtd": "1.08"}, "lv1002": {"Rtd": "35.20"}, "lv1008": {"Info": "0"}}
    cfg = device(device_id=VMN, family="vapor")
    fam = get_family("vapor")
    one, _ = frame(
        st="V1",
        cn="2011",
        mn=VMN,
        values=refuel,
        data_time="20171201083512",
        extra={"Nozzle": "03"},
    )
    two, _ = frame(
        st="V1",
        cn="2011",
        mn=VMN,
        values=refuel,
        data_time="20171201083512",
        extra={"Nozzle": "04"},
    )
    (r1,) = fam.decode(one, cfg, RECEIVED)
    (r2,) = fam.decode(two, cfg, RECEIVED)
    assert (r1.key, r2.key) == ("03", "04") and r1.id != r2.id
    assert r1.id == reading_id(VMN, "2011", "20171201083512", "03")
    assert r1.units == {"lv1001": "ratio", "lv1002": "L"}  # from vapor_profile.csv
    minute, _ = frame(
        st="V1", cn="2051", mn=VMN, values={"lv2001": {"Avg": "-12.5"}, "lv2002": {"Info": "0"}}
    )
    (r3,) = fam.decode(minute, cfg, RECEIVED)
    assert r3.key == "" and r3.units == {"lv2001": "Pa"}
    missing, _ = frame(st="V1", cn="2011", mn=VMN, values=refuel)
    with pytest.raises(MissingFieldError, match="Nozzle") as info:
        fam.decode(missing, cfg, RECEIVED)
    assert info.value.field == "Nozzle"


def test_rsd_pass_with_a_chinese_plate():
    rmn = "410105620000000000000099"
    values = {
        "lr1002": {"Info": "豫A12345"}, "lr1004": {"Info": "diesel"}, "lr1013": {"Rtd": "2315"},
        "lr1014": {"Rtd": "52.4"}, "lr1016": {"Info": "1"},
    }  # fmt: skip
    parsed, raw = frame(
        st="R1", cn="2011", mn=rmn, values=values, extra={"PassId": "01201712010042"}
    )
    # the length field counts bytes: each Chinese character is 3 bytes of UTF-8
    assert int(raw[2:6]) == len(raw) - 12
    (reading,) = get_family("rsd").decode(parsed, device(device_id=rmn, family="rsd"), RECEIVED)
    assert reading.values["lr1002"] == {"Info": "豫A12345"}
    assert reading.key == "01201712010042"
    assert "豫A12345" in reading.raw
    assert reading.units["lr1013"] == "ppm" and reading.units["lr1014"] == "%"


def test_decoding_is_the_same_with_a_modbus_crc_logger():
    values = {"a34004": {"Avg": "75.0", "Flag": "N"}}
    parsed, _ = frame(st="22", values=values, crc_mode="modbus")
    (reading,) = get_family("ambient").decode(parsed, device(family="ambient"), RECEIVED)
    assert reading.values == values


def test_received_at_keeps_the_box_offset():
    parsed, _ = frame(values={"a21026": {"Avg": "1"}})
    box = datetime(2017, 12, 1, 8, 31, 5, tzinfo=timezone(timedelta(hours=8)))
    (reading,) = get_family("cems").decode(parsed, device(), box)
    assert reading.received_at == "2017-12-01T08:31:05+08:00"


def test_units_given_as_the_json_text_of_devices_csv():
    parsed, _ = frame(values={"a21026": {"Avg": "1"}})
    (reading,) = get_family("cems").decode(parsed, device(units='{"a21026": "ppm"}'), RECEIVED)
    assert reading.units == {"a21026": "ppm"}
