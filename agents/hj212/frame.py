"""One HJ 212 frame: parse it, build it.

``##`` · 4 decimal digits = data-segment length in bytes · data segment · 4 hex CRC · CR LF.
Length and CRC cover the data segment only. Parsing is strict about what makes a frame
trustworthy (header, length, CRC) and, with ``strict=False``, tolerant of the data area's
quirks, recording each one in ``Frame.warnings`` so that nothing is dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from .crc import CRC_MODES, crc16, matching_mode
from .errors import CrcError, HeaderError, LengthError, SegmentError, TruncatedError, _preview

MAX_SEGMENT_LENGTH = 9999  # four decimal digits; the standard's 1024 cap is exceeded in the field
HEADER_LEN = 6  # "##" + 4 digits
CRC_LEN = 4

#: Top-level fields the frame needs to be routed at all (tolerant mode cannot guess them).
_ALWAYS_REQUIRED = ("ST", "CN", "MN")
#: Required by the standard but survivable when absent (tolerant mode warns).
_STRICT_REQUIRED = ("PW", "CP")
#: CP keys holding a YYYYMMDDhhmmss[zzz] time, checked because a CRC collision can pass garbage.
_TIME_KEYS = ("DataTime", "BeginTime", "EndTime", "SystemTime")
#: CP keys that legitimately repeat in one frame (3020 device info lists one PolId per group).
_REPEATABLE_CP_KEYS = frozenset({"PolId"})

FLAG_REPLY = 0x01  # bit 0 (A): the sender wants an answer
FLAG_SPLIT = 0x02  # bit 1 (D): split packet, PNUM/PNO present

_HEX = frozenset(b"0123456789abcdefABCDEF")
_CP_ITEM = re.compile(r"[^;,]+")


@dataclass
class Frame:
    """A decoded frame. Values stay the strings the device sent; codes stay as sent."""

    raw: bytes
    segment: str
    fields: dict[str, str]
    qn: str | None
    st: str | None
    cn: str | None
    pw: str | None
    mn: str | None
    flag: int | None
    pnum: int | None
    pno: int | None
    data_time: str | None
    cp: dict[str, str]
    values: dict[str, dict[str, str]]
    crc_mode: str
    edition: int
    warnings: list[str] = field(default_factory=list)
    #: for a frame merged from split packets: the sub-frames in PNO order, as received
    parts: list[Frame] = field(default_factory=list)

    @property
    def reply_wanted(self) -> bool:
        """Flag bit 0: the sender expects an answer (9014 for uploads)."""
        return bool(self.flag is not None and self.flag & FLAG_REPLY)

    @property
    def is_split(self) -> bool:
        """A packet of a split group (PNUM/PNO present), not yet merged."""
        return self.pnum is not None and self.pno is not None and not self.parts


def edition_of(flag: int | None) -> int:
    """2017 or 2005 from Flag bits 2-7 (absent Flag: a 2005 upload)."""
    if flag is None or (flag >> 2) & 0x3F == 0:
        return 2005
    return 2017


# --------------------------------------------------------------------------------------- parse


def parse_frame(data: bytes | str, *, crc_mode: str = "standard", strict: bool = True) -> Frame:
    """Parse one whole frame (trailing CR/LF optional).

    Raises a ``FrameError`` subclass. Header, length and CRC are always checked. ``strict=False``
    tolerates malformed or duplicate CP items, a missing PW or CP, and unparsable Flag/PNUM/PNO,
    recording each in ``frame.warnings``; ST, CN and MN are required in both modes.
    """
    if crc_mode not in CRC_MODES:
        raise ValueError(f"unknown CRC mode {crc_mode!r}; expected one of {', '.join(CRC_MODES)}")
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    raw = raw.rstrip(b"\r\n")
    segment_bytes = _check_envelope(raw, crc_mode)
    warnings: list[str] = []
    try:
        segment = segment_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"data segment is not UTF-8 at byte {HEADER_LEN + exc.start}"
        if strict:
            raise SegmentError(message, offset=HEADER_LEN + exc.start, raw=raw) from None
        warnings.append(message + " (undecodable bytes replaced)")
        segment = segment_bytes.decode("utf-8", "replace")
    return _frame_from_segment(raw, segment, crc_mode, strict, warnings)


def _check_envelope(raw: bytes, crc_mode: str) -> bytes:
    """Check ``##dddd``, the declared length and the CRC; return the data-segment bytes."""
    if not raw.startswith(b"##"):
        raise HeaderError(f"frame does not start with '##': {_preview(raw)!r}", offset=0, raw=raw)
    digits = raw[2:HEADER_LEN]
    if len(digits) < 4:
        raise TruncatedError(
            f"frame ends inside its header ({len(raw)} bytes)", offset=len(raw), raw=raw
        )
    if not digits.isdigit():
        raise HeaderError(
            f"length field {digits.decode('latin-1')!r} after '##' is not 4 decimal digits",
            offset=2,
            raw=raw,
        )
    declared = int(digits)
    actual = len(raw) - HEADER_LEN - CRC_LEN
    if actual != declared:
        hint = (
            "frame truncated or length wrong"
            if actual < declared
            else "extra bytes or length wrong"
        )
        raise LengthError(
            f"declared data-segment length {declared} bytes, but {max(actual, 0)} bytes lie "
            f"between header and CRC ({hint})",
            declared=declared,
            actual=max(actual, 0),
            offset=2,
            raw=raw,
        )
    segment = raw[HEADER_LEN:-CRC_LEN]
    crc_text = raw[-CRC_LEN:]
    expected = crc16(segment, crc_mode)
    if not all(b in _HEX for b in crc_text):
        raise CrcError(
            f"CRC field {crc_text.decode('latin-1')!r} at byte {len(raw) - CRC_LEN} is not 4 hex "
            f"digits (expected {expected:04X}, mode {crc_mode})",
            expected=expected,
            actual=None,
            mode=crc_mode,
            matching_mode=None,
            offset=len(raw) - CRC_LEN,
            raw=raw,
        )
    sent = int(crc_text, 16)
    if sent != expected:
        other = matching_mode(segment, sent)
        if other:
            hint = f"; it matches mode {other!r}: set the device's crc_mode if that is known"
        else:
            hint = "; no known CRC mode matches (corrupted frame)"
        raise CrcError(
            f"CRC mismatch: frame says {crc_text.decode('ascii')}, {crc_mode} CRC of the "
            f"{declared}-byte data segment is {expected:04X}{hint}",
            expected=expected,
            actual=sent,
            mode=crc_mode,
            matching_mode=other,
            offset=len(raw) - CRC_LEN,
            raw=raw,
        )
    return segment


def _byte_offset(text: str, char_index: int) -> int:
    """Byte offset in the whole frame of a character index in the data segment."""
    return HEADER_LEN + len(text[:char_index].encode("utf-8"))


class _Ctx:
    """What a parse needs to report problems: raise when strict, else record a warning."""

    def __init__(self, raw: bytes, segment: str, strict: bool, warnings: list[str]) -> None:
        self.raw = raw
        self.segment = segment
        self.strict = strict
        self.warnings = warnings

    def error(self, message: str, char_index: int | None) -> SegmentError:
        offset = None if char_index is None else _byte_offset(self.segment, char_index)
        where = "" if offset is None else f" at byte {offset}"
        return SegmentError(f"{message}{where}", offset=offset, raw=self.raw)

    def problem(self, message: str, char_index: int | None) -> None:
        err = self.error(message, char_index)
        if self.strict:
            raise err
        self.warnings.append(str(err))


def _find_cp(segment: str) -> tuple[int, int, int] | None:
    """(start of "CP=", start of CP body, end of CP body) or None when there is no CP field."""
    pos = 0
    while True:
        start = segment.find("CP=&&", pos)
        if start < 0:
            return None
        if start == 0 or segment[start - 1] == ";":
            break
        pos = start + 1
    body = start + 5
    # CP is normally last: then its closing "&&" is the segment's end even if the body holds "&&".
    if segment.endswith("&&") and len(segment) >= body + 2:
        close = len(segment) - 2
        nxt = segment.find("&&;", body)
        if 0 <= nxt < close:  # a field follows CP after all
            close = nxt
    else:
        close = segment.find("&&", body)
    if close < 0:
        return (start, body, -1)
    return (start, body, close)


def _parse_pairs(ctx: _Ctx, text: str, base: int, into: dict[str, str]) -> None:
    """Top-level ``key=value`` pairs separated by ';' (base: char index of text in segment)."""
    pos = 0
    for piece in text.split(";"):
        here = base + pos
        pos += len(piece) + 1
        if not piece:
            continue
        key, eq, value = piece.partition("=")
        if not eq or not key:
            ctx.problem(f"malformed field {piece!r} (expected key=value)", here)
            continue
        if key in into:
            if into[key] != value:
                ctx.problem(f"field {key} given twice ({into[key]!r} and {value!r})", here)
            else:
                ctx.warnings.append(f"field {key} repeated with the same value")
            continue
        into[key] = value


def _get(fields: dict[str, str], name: str) -> str | None:
    """Field lookup tolerating case (some loggers write FLAG or Pnum)."""
    if name in fields:
        return fields[name]
    lowered = name.lower()
    for key, value in fields.items():
        if key.lower() == lowered:
            return value
    return None


def _int_field(ctx: _Ctx, fields: dict[str, str], name: str, top: int) -> int | None:
    text = _get(fields, name)
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or int(text) > top:
        ctx.problem(
            f"field {name}={text!r} is not an integer 0..{top}", ctx.segment.find(name + "=")
        )
        return None
    return int(text)


def _parse_cp(ctx: _Ctx, body: str, base: int) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """CP items: ';' and ',' both separate items; key=value on the first '=', code-suffix on the
    last '-'. Keys without '-' (DataTime, QnRtn, RtdInterval ...) go to ``cp``."""
    cp: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    for match in _CP_ITEM.finditer(body):
        item = match.group()
        here = base + match.start()
        key, eq, value = item.partition("=")
        if not eq or not key:
            ctx.problem(f"malformed CP item {item!r} (expected key=value)", here)
            continue
        if "-" in key:
            code, _, suffix = key.rpartition("-")
            if not code or not suffix:
                ctx.problem(f"malformed CP item {item!r} (expected code-suffix=value)", here)
                continue
            slot = values.setdefault(code, {})
            if suffix in slot:
                if slot[suffix] != value:
                    ctx.problem(f"CP item {key} given twice ({slot[suffix]!r} and {value!r})", here)
                else:
                    ctx.warnings.append(f"CP item {key} repeated with the same value")
                continue
            slot[suffix] = value
        elif key in cp:
            if cp[key] != value and key not in _REPEATABLE_CP_KEYS:
                ctx.problem(f"CP key {key} given twice ({cp[key]!r} and {value!r})", here)
            elif cp[key] != value:
                ctx.warnings.append(f"CP key {key} repeats; only the first ({cp[key]!r}) is kept")
        else:
            cp[key] = value
    for key in _TIME_KEYS:
        text = cp.get(key)
        if text is not None and not (text.isascii() and text.isdigit() and len(text) in (14, 17)):
            ctx.problem(f"CP {key}={text!r} is not YYYYMMDDhhmmss[zzz]", base + body.find(key))
    return cp, {code: slot for code, slot in values.items() if slot}


def _frame_from_segment(
    raw: bytes, segment: str, crc_mode: str, strict: bool, warnings: list[str]
) -> Frame:
    ctx = _Ctx(raw, segment, strict, warnings)
    fields: dict[str, str] = {}
    cp_text = ""
    located = _find_cp(segment)
    if located is None:
        _parse_pairs(ctx, segment, 0, fields)
        cp_body_base = 0
    else:
        start, body, close = located
        if close < 0:
            ctx.problem("CP=&& is not closed with &&", start)
            close = len(segment)
            rest = ""
        else:
            rest = segment[close + 2 :]
            if rest and not rest.startswith(";"):
                ctx.problem(f"unexpected text {rest[:20]!r} after the CP field", close + 2)
        _parse_pairs(ctx, segment[:start], 0, fields)
        cp_text = segment[body:close]
        cp_body_base = body
        if "CP" in fields:
            ctx.problem("field CP given twice", start)
        fields["CP"] = cp_text
        _parse_pairs(ctx, rest, close + 2, fields)

    for name in _ALWAYS_REQUIRED:
        if _get(fields, name) is None:
            raise ctx.error(f"missing field {name}", None)
    for name in _STRICT_REQUIRED:
        if _get(fields, name) is None:
            ctx.problem(f"missing field {name}", None)

    flag = _int_field(ctx, fields, "Flag", 255)
    pnum = _int_field(ctx, fields, "PNUM", 9999)
    pno = _int_field(ctx, fields, "PNO", 9999)
    if (pnum is None) != (pno is None):
        ctx.problem("PNUM and PNO must come together", None)
        pnum = pno = None
    elif pnum is not None and pno is not None and not 1 <= pno <= pnum:
        ctx.problem(f"PNO={pno} is outside 1..PNUM={pnum}", None)
        pnum = pno = None
    if flag is not None and flag & FLAG_SPLIT and pnum is None:
        ctx.problem(f"Flag={flag} marks a split packet but PNUM/PNO are missing", None)
    elif flag is not None and pnum is not None and not flag & FLAG_SPLIT:
        warnings.append(f"PNUM/PNO present but Flag={flag} lacks the split bit")
    if flag is not None and (flag >> 2) & 0x3F > 1:
        warnings.append(
            f"Flag={flag} carries unknown edition bits {(flag >> 2) & 0x3F}; read as 2017"
        )

    qn = _get(fields, "QN")
    if qn is not None and not (qn.isascii() and qn.isdigit() and len(qn) == 17):
        warnings.append(f"QN={qn!r} is not YYYYMMDDhhmmsszzz")

    cp, values = _parse_cp(ctx, cp_text, cp_body_base)
    return Frame(
        raw=raw,
        segment=segment,
        fields=fields,
        qn=qn,
        st=_get(fields, "ST"),
        cn=_get(fields, "CN"),
        pw=_get(fields, "PW"),
        mn=_get(fields, "MN"),
        flag=flag,
        pnum=pnum,
        pno=pno,
        data_time=cp.get("DataTime"),
        cp=cp,
        values=values,
        crc_mode=crc_mode,
        edition=edition_of(flag),
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------- build

_FIELD_FORBIDDEN = frozenset(";=&\r\n")
_CP_FORBIDDEN = frozenset(";,&\r\n")


def _check_text(what: str, text: str, forbidden: frozenset[str]) -> str:
    bad = sorted(set(text) & forbidden)
    if bad:
        raise ValueError(f"{what} {text!r} contains {''.join(bad)!r}, which would break the frame")
    return text


def format_value(value: str | float | int) -> str:
    """A value as written in CP: strings as given, ints in decimal, floats without exponent."""
    if isinstance(value, bool):
        raise TypeError("booleans are not HJ 212 values; pass 0/1 or a flag string")
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} cannot be sent in a frame")
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    raise TypeError(f"unsupported value type {type(value).__name__}")


def build_cp(
    values: dict[str, dict[str, str | float | int]] | None = None,
    *,
    data_time: str | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    """The CP body (without ``&&``): ``DataTime=…;a21026-Rtd=12.3,a21026-Flag=N;…``.

    Order: DataTime, then ``extra`` keys, then one item per code (its suffixes joined by ',').
    """
    items: list[str] = []
    if data_time is not None:
        items.append(f"DataTime={_check_text('DataTime', data_time, _CP_FORBIDDEN)}")
    for key, value in (extra or {}).items():
        _check_text("CP key", key, _CP_FORBIDDEN | {"="})
        items.append(f"{key}={_check_text(f'CP {key}', format_value(value), _CP_FORBIDDEN)}")
    for code, suffixes in (values or {}).items():
        _check_text("code", code, _CP_FORBIDDEN | {"="})
        parts = []
        for suffix, value in suffixes.items():
            _check_text("suffix", suffix, _CP_FORBIDDEN | {"=", "-"})
            text = _check_text(f"{code}-{suffix}", format_value(value), _CP_FORBIDDEN)
            parts.append(f"{code}-{suffix}={text}")
        if parts:
            items.append(",".join(parts))
    return ";".join(items)


def build_segment(
    *,
    st: str,
    cn: str,
    mn: str,
    pw: str = "123456",
    cp: str = "",
    qn: str | None = None,
    flag: int | None = 4,
    pnum: int | None = None,
    pno: int | None = None,
    extra_fields: dict[str, str] | None = None,
) -> str:
    """The data segment, fields in the standard's order, CP last."""
    parts: list[str] = []
    if qn is not None:
        parts.append(f"QN={qn}")
    parts += [f"ST={st}", f"CN={cn}", f"PW={pw}", f"MN={mn}"]
    if flag is not None:
        if not 0 <= int(flag) <= 255:
            raise ValueError(f"Flag {flag} is outside 0..255")
        parts.append(f"Flag={int(flag)}")
    if pnum is not None:
        parts.append(f"PNUM={int(pnum)}")
    if pno is not None:
        parts.append(f"PNO={int(pno)}")
    for key, value in (extra_fields or {}).items():
        parts.append(f"{_check_text('field name', key, _FIELD_FORBIDDEN)}={value}")
    for part in parts:
        _check_text("field", part.partition("=")[2], _FIELD_FORBIDDEN)
    if "&&" in cp or "\r" in cp or "\n" in cp:
        raise ValueError("CP body must not contain '&&' or line breaks")
    parts.append(f"CP=&&{cp}&&")
    return ";".join(parts)


def wrap_segment(segment: str | bytes, crc_mode: str = "standard") -> bytes:
    """``##`` + byte length + segment + CRC + CRLF."""
    body = segment.encode("utf-8") if isinstance(segment, str) else bytes(segment)
    if len(body) > MAX_SEGMENT_LENGTH:
        raise ValueError(
            f"data segment is {len(body)} bytes; the header allows {MAX_SEGMENT_LENGTH}"
        )
    return b"##%04d%s%04X\r\n" % (len(body), body, crc16(body, crc_mode))


def build_frame(
    *,
    st: str,
    cn: str,
    mn: str,
    pw: str = "123456",
    cp: str = "",
    qn: str | None = None,
    flag: int | None = 4,
    pnum: int | None = None,
    pno: int | None = None,
    crc_mode: str = "standard",
    extra_fields: dict[str, str] | None = None,
) -> bytes:
    """A whole frame ``##dddd…CRCC\\r\\n``. ``cp`` is the CP body, e.g. from ``build_cp``.

    The Flag is written as given: set bit 1 yourself for split packets (simulators need to be
    able to produce the defects real loggers produce).
    """
    segment = build_segment(
        st=st, cn=cn, mn=mn, pw=pw, cp=cp, qn=qn, flag=flag, pnum=pnum, pno=pno,
        extra_fields=extra_fields,
    )  # fmt: skip
    return wrap_segment(segment, crc_mode)
