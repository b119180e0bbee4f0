"""Answers and platform commands.

2017 answers echo QN as a top-level field with ``Flag=4``. HJ/T 212-2005 answers carried the
request's QN inside CP instead (``ST=91;CN=9011;…;Flag=0;CP=&&QN=…;QnRtn=1&&``, and a 9014 data
answer names the answered CN in CP), so the answer follows the request's edition.
"""

from __future__ import annotations

from .frame import Frame, build_cp, build_frame

QN_RTN = {1: "ready", 2: "refused", 3: "PW error", 4: "MN error", 5: "ST error",
          6: "Flag error", 7: "QN error", 8: "CN error", 9: "CRC error", 100: "unknown"}  # fmt: skip
EXE_RTN = {1: "success", 2: "failed", 3: "bad request condition", 4: "timeout", 5: "busy",
           6: "fault", 100: "no data"}  # fmt: skip

#: Flag of a 2017 platform command that wants a 9011 answer: edition 1 (bit 2) + A (bit 0).
COMMAND_FLAG = 5


def _answer(request: Frame, cn: str, items: dict[str, str], *, answered_cn: bool = False) -> bytes:
    if request.mn is None:
        raise ValueError("cannot answer a frame without MN")
    if request.edition == 2017:
        return build_frame(
            st="91", cn=cn, mn=request.mn, pw=request.pw or "", qn=request.qn, flag=4,
            cp=build_cp(extra=items), crc_mode=request.crc_mode,
        )  # fmt: skip
    cp_items: dict[str, str] = {}
    if request.qn is not None:
        cp_items["QN"] = request.qn
    if answered_cn and request.cn is not None:
        cp_items["CN"] = request.cn
    cp_items.update(items)
    return build_frame(
        st="91", cn=cn, mn=request.mn, pw=request.pw or "", qn=None, flag=0,
        cp=build_cp(extra=cp_items), crc_mode=request.crc_mode,
    )  # fmt: skip


def build_reply_9011(request: Frame, qn_rtn: int = 1) -> bytes:
    """Request answer (9011) with QnRtn (1 ready, 2 refused, 3 PW error … 100 unknown)."""
    if qn_rtn not in QN_RTN:
        raise ValueError(f"QnRtn {qn_rtn} is not one of {sorted(QN_RTN)}")
    return _answer(request, "9011", {"QnRtn": str(qn_rtn)})


def build_reply_9012(request: Frame, exe_rtn: int = 1) -> bytes:
    """Execution result (9012) with ExeRtn (1 success, 2 failed … 100 no data)."""
    if exe_rtn not in EXE_RTN:
        raise ValueError(f"ExeRtn {exe_rtn} is not one of {sorted(EXE_RTN)}")
    return _answer(request, "9012", {"ExeRtn": str(exe_rtn)})


def build_reply_9014(request: Frame) -> bytes:
    """Data answer to an upload with Flag bit A: ``QN=<same>;ST=91;CN=9014;PW;MN;Flag=4;CP=&&&&``."""
    return _answer(request, "9014", {}, answered_cn=True)


def _check_time(name: str, text: str) -> str:
    if not (text.isascii() and text.isdigit() and len(text) == 14):
        raise ValueError(f"{name} {text!r} is not YYYYMMDDhhmmss")
    return text


def _check_qn(qn: str) -> str:
    if not (qn.isascii() and qn.isdigit() and len(qn) == 17):
        raise ValueError(f"QN {qn!r} is not YYYYMMDDhhmmsszzz")
    return qn


def build_set_time(
    mn: str, pw: str, system_time: str, qn: str, st: str = "31", crc_mode: str = "standard"
) -> bytes:
    """Set the logger's clock (CN=1012, ``CP=&&SystemTime=YYYYMMDDhhmmss&&``), answer wanted."""
    cp = build_cp(extra={"SystemTime": _check_time("SystemTime", system_time)})
    return build_frame(
        st=st, cn="1012", mn=mn, pw=pw, qn=_check_qn(qn), flag=COMMAND_FLAG, cp=cp,
        crc_mode=crc_mode,
    )  # fmt: skip


def build_history_request(
    mn: str,
    pw: str,
    cn: str,
    begin: str,
    end: str,
    qn: str,
    st: str = "31",
    crc_mode: str = "standard",
) -> bytes:
    """Ask a logger to resend stored data (CN 2051 minute, 2061 hourly, 2031 daily, …) between
    ``begin`` and ``end`` (inclusive, device time) — the way to backfill a gap it kept."""
    _check_time("BeginTime", begin)
    _check_time("EndTime", end)
    if begin > end:
        raise ValueError(f"BeginTime {begin} is after EndTime {end}")
    if not (cn.isascii() and cn.isdigit()):
        raise ValueError(f"CN {cn!r} is not a command number")
    cp = build_cp(extra={"BeginTime": begin, "EndTime": end})
    return build_frame(
        st=st, cn=cn, mn=mn, pw=pw, qn=_check_qn(qn), flag=COMMAND_FLAG, cp=cp, crc_mode=crc_mode
    )
