"""HJ 212-2017 (and HJ/T 212-2005) frames: CRC, parse, build, stream framing, split packets,
replies. Stdlib only: this runs on the field agent."""

from __future__ import annotations

from .crc import CRC_MODES, crc16, crc_hex, matching_mode
from .errors import (
    CrcError,
    FrameError,
    GarbageError,
    HeaderError,
    IncompletePacketError,
    LengthError,
    SegmentError,
    TruncatedError,
)
from .frame import (
    MAX_SEGMENT_LENGTH,
    Frame,
    build_cp,
    build_frame,
    build_segment,
    edition_of,
    format_value,
    parse_frame,
    wrap_segment,
)
from .jsonview import error_to_json, frame_to_json, json_value
from .packets import PacketAssembler, merge_packets
from .reader import FrameReader
from .replies import (
    build_history_request,
    build_reply_9011,
    build_reply_9012,
    build_reply_9014,
    build_set_time,
)

__all__ = [
    "CRC_MODES",
    "MAX_SEGMENT_LENGTH",
    "CrcError",
    "Frame",
    "FrameError",
    "FrameReader",
    "GarbageError",
    "HeaderError",
    "IncompletePacketError",
    "LengthError",
    "PacketAssembler",
    "SegmentError",
    "TruncatedError",
    "build_cp",
    "build_frame",
    "build_history_request",
    "build_reply_9011",
    "build_reply_9012",
    "build_reply_9014",
    "build_segment",
    "build_set_time",
    "crc16",
    "crc_hex",
    "edition_of",
    "error_to_json",
    "format_value",
    "frame_to_json",
    "json_value",
    "matching_mode",
    "merge_packets",
    "parse_frame",
    "wrap_segment",
]
