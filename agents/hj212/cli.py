"""``lantian hj212 decode [FILE]`` / ``lantian-agent decode [FILE]``: frames in, JSON lines out.

One frame per input line (stdin without FILE), one JSON object per output line. Exit status 0 when
every non-blank line decoded, 1 when any failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import BinaryIO, TextIO

from .crc import CRC_MODES
from .errors import FrameError
from .frame import parse_frame
from .jsonview import error_to_json, frame_to_json


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="HJ 212 tools")
    sub = parser.add_subparsers(dest="command", required=True)
    decode = sub.add_parser("decode", help="decode frames, one per line, to JSON lines")
    decode.add_argument("file", nargs="?", help="input file (default: stdin)")
    decode.add_argument(
        "--crc-mode", choices=CRC_MODES, default="standard", help="CRC routine (default standard)"
    )
    decode.add_argument(
        "--tolerant",
        action="store_true",
        help="skip malformed CP items with a warning (framing and CRC stay strict)",
    )
    return parser


def decode_stream(source: BinaryIO, out: TextIO, *, crc_mode: str, strict: bool) -> int:
    """Decode each non-blank line of ``source``; return the number of failed lines."""
    failures = 0
    for number, line in enumerate(source, start=1):
        line = line.strip(b" \t\r\n")  # copied log lines carry stray blanks
        if not line:
            continue
        try:
            record = frame_to_json(parse_frame(line, crc_mode=crc_mode, strict=strict))
        except FrameError as exc:
            failures += 1
            record = error_to_json(exc)
        record["line"] = number
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
    return failures


def main(argv: list[str] | None = None, *, prog: str = "lantian hj212") -> int:
    try:
        args = _parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return int(exc.code or 0)
    strict = not args.tolerant
    try:
        if args.file:
            with open(args.file, "rb") as source:
                failures = decode_stream(source, sys.stdout, crc_mode=args.crc_mode, strict=strict)
        else:
            failures = decode_stream(
                sys.stdin.buffer, sys.stdout, crc_mode=args.crc_mode, strict=strict
            )
    except OSError as exc:
        print(f"{prog} decode: {exc}", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
