"""What a serial line does to frames: line noise, bad CRCs, cut-off frames, resent frames.

``apply_noise`` is deterministic from ``WireNoise.seed`` and the order of the frames, so the
scenario's truth can say exactly which readings are lost to the wire, and ``PtyDevice`` (or a
frames file) reproduces the same bytes.

What each defect does to a reader that frames by header and length:
- ``garbage``: a burst of random bytes between two frames (never a ``#``, so it cannot fake a
  header): reported as garbage, no frame lost.
- ``corrupt``: one byte of the data segment or one CRC digit changed: the CRC fails (a single
  changed byte is always caught, HJ212.md), the frame is lost.
- ``truncate``: the frame is cut off (a power blip) and the next frame follows at once: the
  reader reports a half frame at the next ``##``, the frame is lost, the next one is not.
- ``duplicate``: the logger sends the frame again, intact (no reply came): the reading arrives
  twice, or, if the first copy was damaged, arrives after all.
Frames marked ``protected`` (planted evidence) are never corrupted or cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from agents.devices.sim import seeded

KINDS = ("frame", "corrupt", "truncated", "garbage", "duplicate")
_ALNUM = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz"
_HEX = "0123456789ABCDEF"
#: Bytes a garbage burst is drawn from: anything but '#', which could start a fake header.
_NOISE = bytes(b for b in range(256) if b != ord("#"))


@dataclass(frozen=True)
class WireNoise:
    """Per-frame probabilities of each defect (0 disables it)."""

    garbage: float = 0.0
    corrupt: float = 0.0
    truncate: float = 0.0
    duplicate: float = 0.0
    seed: int = 0

    @property
    def quiet(self) -> bool:
        return not (self.garbage or self.corrupt or self.truncate or self.duplicate)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes put on the line at ``at``. ``index`` is the frame's position in the input (-1 for
    garbage); ``kind`` one of KINDS."""

    at: datetime
    data: bytes
    kind: str
    index: int


def corrupt_frame(frame: bytes, rng) -> bytes:
    """The frame with one data-segment byte or one CRC digit changed (CR LF kept)."""
    body = frame.rstrip(b"\r\n")
    tail = frame[len(body) :]
    if rng.random() < 0.5 and len(body) > 10:
        pos = 6 + int(rng.random() * (len(body) - 10))  # inside the data segment
        old = body[pos]
        choices = bytes(b for b in _ALNUM if b != old)
        new = choices[int(rng.random() * len(choices))]
        return body[:pos] + bytes([new]) + body[pos + 1 :] + tail
    pos = len(body) - 4 + int(rng.random() * 4)
    old = chr(body[pos]).upper()
    choices = [c for c in _HEX if c != old]
    new = choices[int(rng.random() * len(choices))].encode()
    return body[:pos] + new + body[pos + 1 :] + tail


def truncate_frame(frame: bytes, rng) -> bytes:
    """The first part of the frame: cut somewhere after its header, before its CRC."""
    body = frame.rstrip(b"\r\n")
    cut = 8 + int(rng.random() * max(1, len(body) - 14))
    return body[:cut]


def garbage_burst(rng) -> bytes:
    length = 1 + int(rng.random() * 40)
    return bytes(_NOISE[int(rng.random() * len(_NOISE))] for _ in range(length))


def apply_noise(
    frames: Iterable[tuple[datetime, bytes, bool]], noise: WireNoise
) -> Iterator[Chunk]:
    """The line's bytes for ``(at, frame, protected)`` items, in order.

    Four uniform draws are made per frame whatever happens, so one defect never shifts another;
    the bytes of each defect come from a generator seeded by the frame's index.
    """
    rng = seeded(noise.seed, "wire")
    for index, (at, frame, protected) in enumerate(frames):
        u_garbage, u_corrupt, u_truncate, u_duplicate = (rng.random() for _ in range(4))
        local = seeded(noise.seed, "wire", index)
        if u_garbage < noise.garbage:
            yield Chunk(at, garbage_burst(local), "garbage", -1)
        if not protected and u_corrupt < noise.corrupt:
            yield Chunk(at, corrupt_frame(frame, local), "corrupt", index)
        elif not protected and u_truncate < noise.truncate:
            yield Chunk(at, truncate_frame(frame, local), "truncated", index)
        else:
            yield Chunk(at, frame, "frame", index)
        if u_duplicate < noise.duplicate:
            yield Chunk(at + timedelta(seconds=1), frame, "duplicate", index)


def lost_indices(chunks: Iterable[Chunk]) -> set[int]:
    """Indices of frames that never arrived intact (damaged and not resent)."""
    damaged: set[int] = set()
    arrived: set[int] = set()
    for chunk in chunks:
        if chunk.kind in ("corrupt", "truncated"):
            damaged.add(chunk.index)
        elif chunk.kind in ("frame", "duplicate"):
            arrived.add(chunk.index)
    return damaged - arrived
