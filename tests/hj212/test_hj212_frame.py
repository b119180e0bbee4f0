"""parse_frame / build_frame / build_cp on the standard's example and on field quirks."""

from __future__ import annotations

import pytest

from agents.hj212 import (
    CrcError,
    FrameError,
    HeaderError,
    LengthError,
    SegmentError,
    TruncatedError,
    build_cp,
    build_frame,
    crc16,
    format_value,
    parse_frame,
)

EXAMPLE_SEGMENT = (
    "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    "Flag=5;CP=&&RtdInterval=30&&"
)
EXAMPLE_FRAME = b"##0101" + EXAMPLE_SEGMENT.encode() + b"1C80\r\n"


def wrap(
    segment: str, crc: str | None = None, tail: bytes = b"\r\n", length: int | None = None
) -> bytes:
    """A frame written by hand, so tests can break each part on purpose."""
    body = segment.encode("utf-8")
    crc = crc if crc is not None else f"{crc16(body):04X}"
    size = len(body) if length is None else length
    return b"##%04d" % size + body + crc.encode() + tail


# ------------------------------------------------------------------ the standard's example


def test_example_frame_parses():
    frame = parse_frame(EXAMPLE_FRAME)
    assert len(EXAMPLE_SEGMENT) == 101
    assert frame.raw == EXAMPLE_FRAME[:-2]
    assert frame.segment == EXAMPLE_SEGMENT
    assert (frame.qn, frame.st, frame.cn, frame.pw) == ("20160801085857223", "32", "1062", "100000")
    assert frame.mn == "010000A8900016F000169DC0"
    assert frame.flag == 5 and frame.reply_wanted and frame.edition == 2017
    assert frame.cp == {"RtdInterval": "30"} and frame.values == {}
    assert frame.crc_mode == "standard" and frame.warnings == []
    assert frame.fields["CP"] == "RtdInterval=30"


def test_build_reproduces_example():
    built = build_frame(
        st="32", cn="1062", mn="010000A8900016F000169DC0", pw="100000",
        qn="20160801085857223", flag=5, cp="RtdInterval=30",
    )  # fmt: skip
    assert built == EXAMPLE_FRAME


def test_lower_case_crc_accepted():
    frame = parse_frame(wrap(EXAMPLE_SEGMENT, crc="1c80"))
    assert frame.cn == "1062"
    seg = "ST=31;CN=2011;PW=123456;MN=A;Flag=4;CP=&&&&"
    crc = f"{crc16(seg.encode()):04x}"
    assert parse_frame(wrap(seg, crc=crc)).st == "31"


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r\n", b"\r\n\r\n"])
def test_tail_optional(tail):
    frame = parse_frame(EXAMPLE_FRAME[:-2] + tail)
    assert frame.raw == EXAMPLE_FRAME[:-2]


def test_str_input():
    assert parse_frame(EXAMPLE_FRAME.decode()).qn == "20160801085857223"


# ------------------------------------------------------------------ framing errors


def test_wrong_length_names_both_numbers():
    bad = wrap(EXAMPLE_SEGMENT, length=100)
    with pytest.raises(LengthError) as info:
        parse_frame(bad)
    assert info.value.declared == 100 and info.value.actual == 101
    assert "100" in str(info.value) and "101" in str(info.value)
    assert info.value.raw == bad.rstrip()


def test_half_frame_is_length_error():
    with pytest.raises(LengthError) as info:
        parse_frame(EXAMPLE_FRAME[:60])
    assert info.value.declared == 101 and info.value.actual == 50


@pytest.mark.parametrize("raw", [b"#0101" + EXAMPLE_FRAME[6:], b"QN=1;ST=2", b" ##0101"])
def test_missing_header(raw):
    with pytest.raises(HeaderError):
        parse_frame(raw)


def test_non_digit_length():
    with pytest.raises(HeaderError, match="'01a1'"):
        parse_frame(b"##01a1" + EXAMPLE_FRAME[6:])


def test_header_only_is_truncated():
    with pytest.raises(TruncatedError):
        parse_frame(b"##01")


def test_crc_mismatch_names_values_and_mode():
    modbus_crc = crc16(EXAMPLE_SEGMENT.encode(), "modbus")
    frame = wrap(EXAMPLE_SEGMENT, crc=f"{modbus_crc:04X}")
    with pytest.raises(CrcError) as info:
        parse_frame(frame)
    err = info.value
    assert err.expected == 0x1C80 and err.actual == modbus_crc
    assert err.matching_mode == "modbus"
    assert "1C80" in str(err) and f"{modbus_crc:04X}" in str(err) and "modbus" in str(err)
    assert err.offset == len(frame.rstrip()) - 4
    # the technician's per-device setting makes it pass
    assert parse_frame(frame, crc_mode="modbus").crc_mode == "modbus"


def test_crc_swapped_mode():
    seg = EXAMPLE_SEGMENT.encode()
    swapped = crc16(seg, "modbus-swapped")
    frame = wrap(EXAMPLE_SEGMENT, crc=f"{swapped:04X}")
    with pytest.raises(CrcError) as info:
        parse_frame(frame, crc_mode="modbus")
    assert info.value.matching_mode == "modbus-swapped"
    assert parse_frame(frame, crc_mode="modbus-swapped").cn == "1062"


def test_corrupt_crc_no_mode_matches():
    with pytest.raises(CrcError) as info:
        parse_frame(wrap(EXAMPLE_SEGMENT, crc="0000"))
    assert info.value.matching_mode is None and info.value.actual == 0


def test_crc_not_hex():
    with pytest.raises(CrcError) as info:
        parse_frame(wrap(EXAMPLE_SEGMENT, crc="1C8G"))
    assert info.value.actual is None and info.value.expected == 0x1C80


def test_tolerant_still_checks_crc_and_length():
    with pytest.raises(CrcError):
        parse_frame(wrap(EXAMPLE_SEGMENT, crc="1C81"), strict=False)
    with pytest.raises(LengthError):
        parse_frame(wrap(EXAMPLE_SEGMENT, length=99), strict=False)


def test_length_above_1024_accepted():
    values = {f"a{n:05d}": {"Rtd": "1.000", "Flag": "N"} for n in range(60)}
    cp = build_cp(values, data_time="20171120103000")
    raw = build_frame(st="31", cn="2011", mn="M" * 24, cp=cp, qn="20171120103000000")
    assert int(raw[2:6]) > 1024
    assert len(parse_frame(raw).values) == 60


def test_build_refuses_more_than_9999_bytes():
    with pytest.raises(ValueError, match="9999"):
        build_frame(st="31", cn="2011", mn="M", cp="x-Info=" + "y" * 9999)


# ------------------------------------------------------------------ editions, fields


def test_2005_frame_without_flag_and_qn():
    seg = "ST=31;CN=2051;PW=123456;MN=88888880000001;CP=&&DataTime=20171120103000;01-Avg=1.230,01-Flag=N;S01-Avg=8.5,S01-Flag=N;B02-Cou=1200&&"
    frame = parse_frame(wrap(seg))
    assert frame.qn is None and frame.flag is None
    assert frame.edition == 2005 and not frame.reply_wanted
    # 2005 codes are kept exactly as sent; mapping to 2017 is the device decoder's job
    assert frame.values == {
        "01": {"Avg": "1.230", "Flag": "N"},
        "S01": {"Avg": "8.5", "Flag": "N"},
        "B02": {"Cou": "1200"},
    }


@pytest.mark.parametrize(
    ("flag", "edition", "reply"),
    [(0, 2005, False), (1, 2005, True), (4, 2017, False), (5, 2017, True), (7, 2017, True)],
)
def test_flag_bits(flag, edition, reply):
    pn = ";PNUM=1;PNO=1" if flag & 2 else ""
    frame = parse_frame(wrap(f"ST=31;CN=2011;PW=1;MN=M;Flag={flag}{pn};CP=&&&&"))
    assert frame.edition == edition and frame.reply_wanted is reply


def test_fields_in_any_order_and_unknown_fields():
    seg = "CP=&&DataTime=20171120103000;a21026-Rtd=5&&;PNO=2;MN=M1;Vendor=x;PNUM=3;Flag=7;CN=2011;ST=31;PW=9;QN=20171120103000001"
    frame = parse_frame(wrap(seg))
    assert (frame.st, frame.cn, frame.mn, frame.pw) == ("31", "2011", "M1", "9")
    assert (frame.flag, frame.pnum, frame.pno) == (7, 3, 2)
    assert frame.fields["Vendor"] == "x"
    assert frame.values == {"a21026": {"Rtd": "5"}}


def test_comma_and_semicolon_parse_alike():
    a = parse_frame(
        wrap(
            "ST=31;CN=2011;PW=1;MN=M;Flag=4;CP=&&DataTime=20171120103000;a21026-Rtd=1.0,a21026-Flag=N;a21002-Rtd=2&&"
        )
    )
    b = parse_frame(
        wrap(
            "ST=31;CN=2011;PW=1;MN=M;Flag=4;CP=&&DataTime=20171120103000,a21026-Rtd=1.0;a21026-Flag=N,a21002-Rtd=2&&"
        )
    )
    assert a.values == b.values == {"a21026": {"Rtd": "1.0", "Flag": "N"}, "a21002": {"Rtd": "2"}}
    assert a.data_time == b.data_time == "20171120103000"


def test_values_kept_as_sent_and_unknown_suffixes_pass():
    seg = "ST=31;CN=2061;PW=1;MN=M;Flag=4;CP=&&DataTime=20171120100000;a34013-Avg=1.230,a34013-ZsAvg=0010.50,a34013-ValidNum=58,a34013-InstrState=0x1F;a-b-Rtd=3;i12001-Info=k=v&&"
    frame = parse_frame(wrap(seg))
    assert frame.values["a34013"] == {
        "Avg": "1.230",
        "ZsAvg": "0010.50",
        "ValidNum": "58",
        "InstrState": "0x1F",
    }
    assert frame.values["a-b"] == {"Rtd": "3"}  # code/suffix split on the last '-'
    assert frame.values["i12001"] == {"Info": "k=v"}  # key/value split on the first '='


def test_cp_keys_go_to_cp():
    seg = "QN=20171120103000001;ST=91;CN=9012;PW=1;MN=M;Flag=4;CP=&&ExeRtn=1;BeginTime=20171120000000;EndTime=20171120235959;Nozzle=3&&"
    frame = parse_frame(wrap(seg))
    assert frame.cp == {
        "ExeRtn": "1",
        "BeginTime": "20171120000000",
        "EndTime": "20171120235959",
        "Nozzle": "3",
    }
    assert frame.data_time is None and frame.values == {}


@pytest.mark.parametrize("dt", ["20171120103000", "20171120103000123", "20000101000012"])
def test_data_time_14_or_17_digits_and_unset_clock(dt):
    assert parse_frame(wrap(f"ST=31;CN=2011;PW=1;MN=M;CP=&&DataTime={dt}&&")).data_time == dt


def test_bad_data_time():
    raw = wrap("ST=31;CN=2011;PW=1;MN=M;CP=&&DataTime=2017112010&&")
    with pytest.raises(SegmentError, match="DataTime"):
        parse_frame(raw)
    frame = parse_frame(raw, strict=False)
    assert frame.data_time == "2017112010" and any("DataTime" in w for w in frame.warnings)


def test_utf8_content_length_counts_bytes():
    seg = "ST=31;CN=3020;PW=1;MN=M;Flag=4;CP=&&DataTime=20171120103000;i12001-Info=烟道温度异常&&"
    body = seg.encode("utf-8")
    assert len(body) == len(seg) + 12  # six CJK characters, three bytes each
    frame = parse_frame(wrap(seg))
    assert int(frame.raw[2:6]) == len(body)
    assert frame.values["i12001"]["Info"] == "烟道温度异常"
    # a logger that counted characters instead of bytes
    with pytest.raises(LengthError) as info:
        parse_frame(wrap(seg, length=len(seg)))
    assert info.value.actual == len(body)


def test_build_utf8_length():
    raw = build_frame(st="31", cn="3020", mn="M", cp=build_cp({"i12001": {"Info": "正常"}}))
    assert int(raw[2:6]) == len(raw) - 12
    assert parse_frame(raw).values == {"i12001": {"Info": "正常"}}


def test_non_utf8_segment():
    body = b"ST=31;CN=3020;PW=1;MN=M;CP=&&i12001-Info=\xd5\xfd\xb3\xa3&&"  # GBK text
    raw = b"##%04d" % len(body) + body + b"%04X" % crc16(body)
    with pytest.raises(SegmentError, match="UTF-8"):
        parse_frame(raw)
    frame = parse_frame(raw, strict=False)
    assert "i12001" in frame.values and frame.warnings


# ------------------------------------------------------------------ malformed data areas


def test_malformed_cp_item_strict_and_tolerant():
    seg = "ST=31;CN=2011;PW=1;MN=M;Flag=4;CP=&&DataTime=20171120103000;a21026-Rtd=1,garbage,a21002-Rtd=2;-Rtd=3;a21003-=4&&"
    raw = wrap(seg)
    with pytest.raises(SegmentError) as info:
        parse_frame(raw)
    assert "garbage" in str(info.value)
    assert info.value.offset == 6 + seg.index("garbage")
    frame = parse_frame(raw, strict=False)
    assert frame.values == {"a21026": {"Rtd": "1"}, "a21002": {"Rtd": "2"}}
    assert len(frame.warnings) == 3


def test_duplicate_item_conflict():
    raw = wrap("ST=31;CN=2011;PW=1;MN=M;CP=&&a21026-Rtd=1;a21026-Rtd=2&&")
    with pytest.raises(SegmentError, match="twice"):
        parse_frame(raw)
    frame = parse_frame(raw, strict=False)
    assert frame.values == {"a21026": {"Rtd": "1"}} and frame.warnings


def test_identical_duplicate_item_is_warning_only():
    frame = parse_frame(wrap("ST=31;CN=2011;PW=1;MN=M;CP=&&a21026-Rtd=1;a21026-Rtd=1&&"))
    assert frame.values == {"a21026": {"Rtd": "1"}} and len(frame.warnings) == 1


def test_repeated_polid_is_not_an_error():
    frame = parse_frame(
        wrap(
            "ST=32;CN=3020;PW=1;MN=M;Flag=4;CP=&&DataTime=20171120103000;PolId=w01018;i12001-Info=1;PolId=w21003;i12002-Info=2&&"
        )
    )
    assert frame.cp["PolId"] == "w01018" and frame.warnings


@pytest.mark.parametrize("missing", ["ST", "CN", "MN"])
def test_routing_fields_required_in_both_modes(missing):
    fields = {"ST": "31", "CN": "2011", "PW": "1", "MN": "M"}
    del fields[missing]
    seg = ";".join(f"{k}={v}" for k, v in fields.items()) + ";CP=&&&&"
    for strict in (True, False):
        with pytest.raises(SegmentError, match=f"missing field {missing}"):
            parse_frame(wrap(seg), strict=strict)


def test_missing_cp_and_pw_tolerated_when_asked():
    raw = wrap("ST=31;CN=2011;MN=M;Flag=4")
    with pytest.raises(SegmentError, match="missing field PW"):
        parse_frame(raw)
    frame = parse_frame(raw, strict=False)
    assert frame.pw is None and frame.cp == {} and len(frame.warnings) == 2


def test_bad_flag_and_split_fields():
    with pytest.raises(SegmentError, match="Flag"):
        parse_frame(wrap("ST=31;CN=2011;PW=1;MN=M;Flag=x;CP=&&&&"))
    with pytest.raises(SegmentError, match="PNO=4"):
        parse_frame(wrap("ST=31;CN=2011;PW=1;MN=M;Flag=6;PNUM=3;PNO=4;CP=&&&&"))
    with pytest.raises(SegmentError, match="together"):
        parse_frame(wrap("ST=31;CN=2011;PW=1;MN=M;Flag=6;PNUM=3;CP=&&&&"))
    with pytest.raises(SegmentError, match="split"):
        parse_frame(wrap("ST=31;CN=2011;PW=1;MN=M;Flag=6;CP=&&&&"))
    frame = parse_frame(wrap("ST=31;CN=2011;PW=1;MN=M;Flag=300;CP=&&&&"), strict=False)
    assert frame.flag is None and frame.warnings


def test_unclosed_cp():
    raw = wrap("ST=31;CN=2011;PW=1;MN=M;CP=&&a21026-Rtd=1")
    with pytest.raises(SegmentError, match="not closed"):
        parse_frame(raw)
    assert parse_frame(raw, strict=False).values == {"a21026": {"Rtd": "1"}}


def test_empty_cp():
    frame = parse_frame(wrap("QN=20171120103000001;ST=91;CN=9014;PW=1;MN=M;Flag=4;CP=&&&&"))
    assert frame.cp == {} and frame.values == {} and frame.fields["CP"] == ""


def test_frame_error_hierarchy():
    for cls in (CrcError, HeaderError, LengthError, SegmentError, TruncatedError):
        assert issubclass(cls, FrameError) and issubclass(cls, ValueError)


# ------------------------------------------------------------------ build_cp


def test_build_cp_layout():
    cp = build_cp(
        {"a21026": {"Rtd": 12.3, "Flag": "N"}, "a19001": {"Rtd": 8, "Flag": "N"}},
        data_time="20171120103000",
        extra={"RtdInterval": "30"},
    )
    assert (
        cp
        == "DataTime=20171120103000;RtdInterval=30;a21026-Rtd=12.3,a21026-Flag=N;a19001-Rtd=8,a19001-Flag=N"
    )
    assert build_cp() == ""


def test_format_value():
    assert format_value("1.230") == "1.230"
    assert format_value(7) == "7"
    assert format_value(0.1) == "0.1"
    assert format_value(1e-7) == "0.0000001"
    assert format_value(1.5e20) == "150000000000000000000"
    with pytest.raises(TypeError):
        format_value(True)
    with pytest.raises(ValueError):
        format_value(float("nan"))


@pytest.mark.parametrize(
    "bad", [{"a;b": {"Rtd": 1}}, {"a": {"Rtd": "1,2"}}, {"a": {"R-td": 1}}, {"a": {"Rtd": "x&&"}}]
)
def test_build_cp_refuses_separators(bad):
    with pytest.raises(ValueError):
        build_cp(bad)


def test_build_frame_refuses_separators_in_fields():
    with pytest.raises(ValueError):
        build_frame(st="31", cn="2011", mn="M;X")
    with pytest.raises(ValueError):
        build_frame(st="31", cn="2011", mn="M", cp="a=1&&")
