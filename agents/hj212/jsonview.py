"""The JSON view of a frame printed by ``lantian hj212 decode`` (one object per line)."""

from __future__ import annotations

import math
import re

from .errors import FrameError
from .frame import Frame

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
#: Suffixes that are never numbers even when they look like one.
_TEXT_SUFFIXES = frozenset({"Flag", "EFlag", "SampleTime", "Info"})


def json_value(suffix: str, text: str) -> str | int | float:
    """Numbers as JSON numbers (int for integers, float for decimals), flags and times as text."""
    if suffix in _TEXT_SUFFIXES:
        return text
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


def frame_to_json(frame: Frame) -> dict:
    """The decode CLI object for one frame. Values are keyed by code exactly as sent."""
    return {
        "ok": True,
        "st": frame.st,
        "cn": frame.cn,
        "mn": frame.mn,
        "pw": frame.pw,
        "qn": frame.qn,
        "flag": frame.flag,
        "pnum": frame.pnum,
        "pno": frame.pno,
        "data_time": frame.data_time,
        "values": {
            code: {suffix: json_value(suffix, text) for suffix, text in suffixes.items()}
            for code, suffixes in frame.values.items()
        },
        "cp": {key: value for key, value in frame.cp.items() if key != "DataTime"},
        "edition": frame.edition,
        "crc_mode": frame.crc_mode,
        "warnings": list(frame.warnings),
    }


def error_to_json(error: FrameError) -> dict:
    return {"ok": False, "error": str(error), "kind": error.kind, "offset": error.offset}
