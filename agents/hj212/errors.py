"""Errors raised (or, by the streaming reader, returned) for frames that cannot be trusted.

Every message says what is wrong and where: the byte offset inside the frame, and for frames cut
from a serial stream also the byte offset in that stream.
"""

from __future__ import annotations


def _preview(raw: bytes, limit: int = 80) -> str:
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return text + ("…" if len(raw) > limit else "")


class FrameError(ValueError):
    """Base class: a frame (or a run of bytes) that is not a valid HJ 212 frame.

    ``offset`` is the byte position of the problem inside ``raw`` (None if not meaningful);
    ``stream_offset`` is where ``raw`` began in a byte stream, set by ``FrameReader``.
    """

    kind = "frame"

    def __init__(self, message: str, *, offset: int | None = None, raw: bytes = b"") -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.raw = bytes(raw)
        self.stream_offset: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.stream_offset is not None:
            where = f" (stream byte {self.stream_offset})"
        return f"{self.message}{where}"


class HeaderError(FrameError):
    """The frame does not start with ``##`` and four decimal length digits."""

    kind = "header"


class LengthError(FrameError):
    """The declared data-segment length differs from the bytes actually present."""

    kind = "length"

    def __init__(
        self, message: str, *, declared: int, actual: int | None, offset=None, raw=b""
    ) -> None:
        super().__init__(message, offset=offset, raw=raw)
        self.declared = declared
        self.actual = actual


class CrcError(FrameError):
    """The CRC field is malformed or does not match the data segment.

    ``expected`` is the CRC computed in the configured mode, ``actual`` the value sent (None when
    the field is not four hex digits), ``matching_mode`` the mode that would have accepted it.
    """

    kind = "crc"

    def __init__(
        self,
        message: str,
        *,
        expected: int,
        actual: int | None,
        mode: str,
        matching_mode: str | None,
        offset=None,
        raw=b"",
    ) -> None:
        super().__init__(message, offset=offset, raw=raw)
        self.expected = expected
        self.actual = actual
        self.mode = mode
        self.matching_mode = matching_mode


class SegmentError(FrameError):
    """The data segment is malformed: a missing field, a pair without ``=``, a bad number."""

    kind = "segment"


class TruncatedError(FrameError):
    """Only part of a frame arrived (end of stream, or the next frame started early)."""

    kind = "truncated"


class IncompletePacketError(TruncatedError):
    """A split-packet group (PNUM/PNO) timed out before all its packets arrived."""

    kind = "incomplete"

    def __init__(
        self,
        message: str,
        *,
        mn: str | None,
        cn: str | None,
        data_time: str | None,
        pnum: int,
        received: list[int],
        missing: list[int],
        raw: bytes = b"",
    ) -> None:
        super().__init__(message, offset=None, raw=raw)
        self.mn = mn
        self.cn = cn
        self.data_time = data_time
        self.pnum = pnum
        self.received = received
        self.missing = missing


class GarbageError(FrameError):
    """Bytes between frames that belong to no frame (line noise, a logger's debug output)."""

    kind = "garbage"


__all__ = [
    "FrameError",
    "HeaderError",
    "LengthError",
    "CrcError",
    "SegmentError",
    "TruncatedError",
    "IncompletePacketError",
    "GarbageError",
    "_preview",
]
