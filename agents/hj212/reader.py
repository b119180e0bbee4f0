"""Cut HJ 212 frames out of a serial byte stream.

Frames are found by header and declared length, not by CR LF (the tail may be missing or only LF).
Every byte that does not end up in a good frame is reported: garbage runs, bad headers, wrong
lengths, half frames, CRC failures. The reader never raises; it returns errors as values so that
the agent can log them as evidence and keep reading. All scanning uses ``bytes.find`` so that the
per-byte Python work is the CRC table lookup only.
"""

from __future__ import annotations

import re

from .crc import CRC_MODES, crc16
from .errors import (
    CrcError,
    FrameError,
    GarbageError,
    HeaderError,
    LengthError,
    SegmentError,
    TruncatedError,
    _preview,
)
from .frame import CRC_LEN, HEADER_LEN, MAX_SEGMENT_LENGTH, Frame, parse_frame

_HEX = frozenset(b"0123456789abcdefABCDEF")
_GARBAGE_LINE = re.compile(rb"[^\r\n]+")
_BOUNDARIES = (b"\r", b"\n", b"##")


def _first_boundary(buf: bytearray, start: int, stop: int) -> int:
    """Index of the first CR, LF or '##' in buf[start:stop], or -1."""
    best = -1
    for mark in _BOUNDARIES:
        found = buf.find(mark, start, stop)
        if found >= 0 and (best < 0 or found < best):
            best = found
            stop = found  # anything later is irrelevant
    return best


class FrameReader:
    """Streaming framer: ``feed`` bytes as they arrive, get frames and errors back in order."""

    def __init__(
        self,
        *,
        crc_mode: str = "standard",
        strict: bool = False,
        max_length: int = MAX_SEGMENT_LENGTH,
    ) -> None:
        if crc_mode not in CRC_MODES:
            raise ValueError(
                f"unknown CRC mode {crc_mode!r}; expected one of {', '.join(CRC_MODES)}"
            )
        if not 1 <= max_length <= MAX_SEGMENT_LENGTH:
            raise ValueError(f"max_length must be 1..{MAX_SEGMENT_LENGTH}")
        self.crc_mode = crc_mode
        self.strict = strict
        self.max_length = max_length
        self._buf = bytearray()
        self._base = 0  # stream offset of self._buf[0]
        self._checked = (-1, -1)  # (stream offset of a waiting header, stream offset searched to)
        self._waiting_until = -1  # stream offset where the waiting frame's CRC ends, -1 if none
        self.stats: dict[str, int] = {
            "bytes": 0,
            "frames": 0,
            "errors": 0,
            "crc_errors": 0,
            "length_errors": 0,
            "header_errors": 0,
            "segment_errors": 0,
            "truncated": 0,
            "garbage_runs": 0,
            "garbage_bytes": 0,
        }

    # ------------------------------------------------------------------ public

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Add bytes; return the frames completed and the errors found, in stream order."""
        self.stats["bytes"] += len(data)
        self._buf += data
        # Fast path for small reads in the middle of a frame: nothing can be decided until the
        # declared end arrives or a line break / '#' shows up.
        waiting = self._waiting_until
        if (
            waiting >= 0
            and self._base + len(self._buf) < waiting
            and b"#" not in data
            and b"\n" not in data
            and b"\r" not in data
        ):
            self._checked = (self._checked[0], self._base + len(self._buf))
            return []
        self._waiting_until = -1
        out: list[Frame | FrameError] = []
        consumed = self._scan(out, final=False)
        del self._buf[:consumed]
        self._base += consumed
        return out

    def flush(self) -> list[FrameError]:
        """End of stream: report whatever is left (a half frame, trailing garbage)."""
        out: list[Frame | FrameError] = []
        consumed = self._scan(out, final=True)
        rest = bytes(self._buf[consumed:])
        if rest.strip(b" \t\r\n"):
            if rest.startswith(b"##") and rest[2:HEADER_LEN].isdigit() and len(rest) >= HEADER_LEN:
                declared = int(rest[2:HEADER_LEN])
                have = len(rest) - HEADER_LEN
                err: FrameError = TruncatedError(
                    f"stream ended inside a frame: {have} of {declared}+{CRC_LEN} bytes after "
                    f"the header arrived: {_preview(rest)!r}",
                    offset=len(rest),
                    raw=rest,
                )
            else:
                err = TruncatedError(
                    f"stream ended inside a frame header: {_preview(rest)!r}",
                    offset=len(rest),
                    raw=rest,
                )
            self._report(out, err, self._base + consumed)
        self._base += len(self._buf)
        self._buf.clear()
        self._waiting_until = -1
        # Complete good frames are always returned by feed(), so only errors can remain here.
        return [item for item in out if isinstance(item, FrameError)]

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    # ------------------------------------------------------------------ internals

    def _report(self, out: list, err: FrameError, stream_offset: int) -> None:
        err.stream_offset = stream_offset
        self.stats["errors"] += 1
        key = {
            CrcError: "crc_errors",
            LengthError: "length_errors",
            HeaderError: "header_errors",
            SegmentError: "segment_errors",
            TruncatedError: "truncated",
        }.get(type(err))
        if key:
            self.stats[key] += 1
        out.append(err)

    def _garbage(self, out: list, start: int, stop: int, reason: str) -> None:
        """Report buf[start:stop] as garbage, one error per line (a logger's debug output or
        line noise reads best line by line); blanks and line ends alone are not reported."""
        for match in _GARBAGE_LINE.finditer(self._buf, start, stop):
            line = match.group()
            chunk = line.strip(b" \t")
            if not chunk:
                continue
            first = match.start() + len(line) - len(line.lstrip(b" \t"))
            self.stats["garbage_runs"] += 1
            self.stats["garbage_bytes"] += len(chunk)
            if chunk.startswith(b"##"):
                self.stats["header_errors"] += 1
            err = GarbageError(
                f"{len(chunk)} bytes outside any frame ({reason}): {_preview(chunk)!r}",
                offset=0,
                raw=chunk,
            )
            self._report(out, err, self._base + first)

    def _scan(self, out: list, *, final: bool) -> int:
        """Consume as much of the buffer as can be decided now; return bytes consumed."""
        buf = self._buf
        pos = 0
        gstart = -1  # start of the current garbage run, -1 when none
        reason = ""
        while True:
            i = buf.find(b"##", pos)
            if i < 0:
                start = pos if gstart < 0 else gstart
                end = len(buf)
                if not final:
                    # Keep a lone trailing '#' (it may begin the next header) and an unfinished
                    # garbage line (so it is reported whole, whatever the read sizes were).
                    if buf.endswith(b"#"):
                        end -= 1
                    if end - start <= self.max_length + HEADER_LEN + CRC_LEN:
                        last_break = max(buf.rfind(b"\n", start, end), buf.rfind(b"\r", start, end))
                        end = last_break + 1 if last_break >= 0 else start
                self._garbage(out, start, end, reason or "no '##' header")
                return end
            if gstart < 0 and i > pos:
                gstart, reason = pos, "no '##' header"
            if len(buf) < i + HEADER_LEN:
                if buf[i + 2 :].isdigit() or i + 2 == len(buf):
                    # Wait for the rest of the header. If it turns out bad, the garbage run
                    # before it continues, so only finished garbage lines are reported now.
                    if gstart < 0:
                        return i
                    keep = gstart
                    if i - gstart > self.max_length:
                        keep = i
                    else:
                        last_break = max(buf.rfind(b"\n", gstart, i), buf.rfind(b"\r", gstart, i))
                        keep = last_break + 1 if last_break >= 0 else gstart
                    self._garbage(out, gstart, keep, reason)
                    return keep
                gstart, reason = (i, "bad length digits") if gstart < 0 else (gstart, reason)
                pos = i + 1
                continue
            digits = bytes(buf[i + 2 : i + HEADER_LEN])
            if not digits.isdigit() or not 1 <= int(digits) <= self.max_length:
                if gstart < 0:
                    gstart = i
                    reason = f"'##' followed by {digits!r}, not a length 1..{self.max_length}"
                pos = i + 1
                continue
            if gstart >= 0:
                self._garbage(out, gstart, i, reason)
                gstart, reason = -1, ""
            step = self._candidate(out, i, int(digits), final)
            if step < 0:
                return i  # need more bytes
            pos = step

    def _candidate(self, out: list, start: int, declared: int, final: bool) -> int:
        """Decide the frame whose header is at ``start``; return where scanning resumes, or -1
        when more bytes are needed."""
        buf = self._buf
        seg_start = start + HEADER_LEN
        crc_end = seg_start + declared + CRC_LEN
        # Bytes already searched for a boundary on an earlier feed need no second look (keeps
        # byte-at-a-time feeding linear); back off one byte for a '##' split across feeds.
        origin = self._base + start
        scan_from = seg_start
        if self._checked[0] == origin:
            scan_from = max(seg_start, self._checked[1] - self._base - 1)
        early = _first_boundary(buf, scan_from, min(len(buf), crc_end))
        # A '#' inside the CRC field means the next header began early ("…&&49" + "##0139…").
        crc_start = seg_start + declared
        hash_in_crc = buf.find(b"#", crc_start, min(len(buf), crc_end))
        if hash_in_crc >= 0 and (early < 0 or hash_in_crc < early):
            early = hash_in_crc
        if early >= 0:
            self._short(out, start, early, declared)
            return early
        if len(buf) < crc_end:
            self._checked = (origin, self._base + len(buf))
            self._waiting_until = self._base + crc_end
            return -1
        candidate = bytes(buf[start:crc_end])
        try:
            frame = parse_frame(candidate, crc_mode=self.crc_mode, strict=self.strict)
        except FrameError as err:
            follows = buf[crc_end : crc_end + 1]
            if not follows and not final:
                # Whether the length was too short shows only in the next byte; wait for it so
                # that the verdict does not depend on how the serial reads were cut.
                return -1
            if follows and follows not in (b"\r", b"\n", b"#"):
                # Not at a boundary: the declared length is probably too short.
                limit = seg_start + self.max_length + CRC_LEN + 1
                later = _first_boundary(buf, crc_end, min(len(buf), limit))
                if later >= 0:
                    self._short(out, start, later, declared)
                    return later
                if len(buf) < limit and not final:
                    return -1
            self._report(out, err, self._base + start)
            return crc_end
        self.stats["frames"] += 1
        out.append(frame)
        return crc_end

    def _short(self, out: list, start: int, stop: int, declared: int) -> None:
        """The frame at ``start`` ends at ``stop`` (a line break or the next '##'), not where its
        header says: a length error if it looks whole, else a half frame."""
        raw = bytes(self._buf[start:stop])
        actual = len(raw) - HEADER_LEN - CRC_LEN
        crc_text = raw[-CRC_LEN:]
        # A whole frame ends in "&&" + 4 hex digits (or at least carries a CRC that fits); four
        # hex-looking bytes alone are no proof: "CN=2011" ends in four of them.
        segment = raw[HEADER_LEN:-CRC_LEN] if actual > 0 else b""
        crc_ok = False
        looks_whole = False
        if actual > 0 and all(b in _HEX for b in crc_text):
            crc_ok = crc16(segment, self.crc_mode) == int(crc_text, 16)
            looks_whole = crc_ok or segment.endswith(b"&&")
        if looks_whole:
            note = (
                "; its CRC matches the actual length (the logger miscounts)"
                if crc_ok
                else "; its CRC does not match either"
            )
            err: FrameError = LengthError(
                f"declared data-segment length {declared} bytes, but the frame ends after "
                f"{actual}{note}: {_preview(raw)!r}",
                declared=declared,
                actual=actual,
                offset=2,
                raw=raw,
            )
        else:
            err = TruncatedError(
                f"half frame: {len(raw) - HEADER_LEN} of {declared}+{CRC_LEN} bytes arrived "
                f"before a line break or a new header: {_preview(raw)!r}",
                offset=len(raw),
                raw=raw,
            )
        self._report(out, err, self._base + start)
