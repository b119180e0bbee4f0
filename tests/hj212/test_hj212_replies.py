"""Answers and platform commands, verified by parsing them back."""

from __future__ import annotations

import pytest

from agents.hj212 import (
    build_cp,
    build_frame,
    build_history_request,
    build_reply_9011,
    build_reply_9012,
    build_reply_9014,
    build_set_time,
    parse_frame,
)

MN = "010000A8900016F000169DC0"
QN = "20171120103000123"


def upload(flag: int | None = 5, qn: str | None = QN, crc_mode: str = "standard"):
    cp = build_cp({"a21026": {"Rtd": "1.0", "Flag": "N"}}, data_time="20171120103000")
    return parse_frame(
        build_frame(
            st="31", cn="2011", mn=MN, pw="654321", qn=qn, flag=flag, cp=cp, crc_mode=crc_mode
        ),
        crc_mode=crc_mode,
    )


def test_9014_data_answer_exact_bytes():
    reply = build_reply_9014(upload())
    segment = f"QN={QN};ST=91;CN=9014;PW=654321;MN={MN};Flag=4;CP=&&&&"
    assert reply[6:-6].decode() == segment
    assert reply.startswith(b"##%04d" % len(segment)) and reply.endswith(b"\r\n")
    back = parse_frame(reply)
    assert (back.qn, back.st, back.cn, back.pw, back.mn, back.flag) == (
        QN,
        "91",
        "9014",
        "654321",
        MN,
        4,
    )
    assert not back.reply_wanted and back.cp == {} and back.values == {}


def test_9011_and_9012():
    request = parse_frame(build_set_time(MN, "654321", "20171120103000", QN))
    a = parse_frame(build_reply_9011(request, qn_rtn=3))
    assert (a.qn, a.st, a.cn, a.cp) == (QN, "91", "9011", {"QnRtn": "3"})
    b = parse_frame(build_reply_9012(request))
    assert (b.qn, b.cn, b.cp) == (QN, "9012", {"ExeRtn": "1"})
    with pytest.raises(ValueError):
        build_reply_9011(request, qn_rtn=42)
    with pytest.raises(ValueError):
        build_reply_9012(request, exe_rtn=0)


def test_reply_uses_the_device_crc_mode():
    request = upload(crc_mode="modbus")
    reply = build_reply_9014(request)
    assert parse_frame(reply, crc_mode="modbus").cn == "9014"


def test_2005_answer_carries_qn_and_cn_in_cp():
    old = upload(flag=None)
    reply = parse_frame(build_reply_9014(old))
    assert reply.qn is None and reply.flag == 0 and reply.edition == 2005
    assert reply.cp == {"QN": QN, "CN": "2011"}
    no_qn = parse_frame(build_reply_9011(upload(flag=None, qn=None)))
    assert no_qn.cp == {"QnRtn": "1"}


def test_set_time():
    raw = build_set_time(MN, "100000", "20171120103000", QN, st="32")
    frame = parse_frame(raw)
    assert (frame.qn, frame.st, frame.cn, frame.pw, frame.mn) == (QN, "32", "1012", "100000", MN)
    assert frame.cp == {"SystemTime": "20171120103000"}
    assert frame.flag == 5 and frame.reply_wanted and frame.edition == 2017
    with pytest.raises(ValueError):
        build_set_time(MN, "1", "2017-11-20", QN)
    with pytest.raises(ValueError):
        build_set_time(MN, "1", "20171120103000", "123")


def test_history_request():
    raw = build_history_request(MN, "100000", "2061", "20171120000000", "20171120235959", QN)
    frame = parse_frame(raw)
    assert (frame.cn, frame.st, frame.qn) == ("2061", "31", QN)
    assert frame.cp == {"BeginTime": "20171120000000", "EndTime": "20171120235959"}
    assert frame.reply_wanted
    with pytest.raises(ValueError, match="after"):
        build_history_request(MN, "1", "2061", "20171121000000", "20171120000000", QN)
    with pytest.raises(ValueError):
        build_history_request(MN, "1", "20;61", "20171120000000", "20171120235959", QN)
