"""Reassemble split packets (Flag bit D, PNUM total, PNO 1-based).

Vendors cut the CP differently and some change QN between packets, so packets are grouped by
MN + CN + DataTime (+ PNUM), not by QN. A packet without DataTime joins the open group of the same
MN, CN and PNUM that still lacks its PNO. Each sub-frame is kept as received (``Frame.parts``, and
``raw`` joins them with ``\\n``) because the raw frames are the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import FrameError, IncompletePacketError
from .frame import Frame

_Key = tuple[str | None, str | None, str | None, int]


@dataclass
class _Group:
    key: _Key
    pnum: int
    started: float
    parts: dict[int, Frame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _describe(key: _Key) -> str:
    mn, cn, data_time, pnum = key
    return f"MN={mn} CN={cn} DataTime={data_time or '(none)'} PNUM={pnum}"


def merge_packets(parts: list[Frame], extra_warnings: list[str] | None = None) -> Frame:
    """One frame from the packets of a complete group, in PNO order. The first packet gives the
    header fields; CP keys and values are merged, the first occurrence winning on conflict (each
    conflict is a warning)."""
    ordered = sorted(parts, key=lambda f: f.pno or 0)
    first = ordered[0]
    warnings = list(extra_warnings or [])
    cp: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    for part in ordered:
        warnings += [f"packet {part.pno}: {w}" for w in part.warnings]
        for key, value in part.cp.items():
            if key in cp and cp[key] != value:
                warnings.append(f"packet {part.pno}: CP {key}={value!r} differs from {cp[key]!r}")
            cp.setdefault(key, value)
        for code, suffixes in part.values.items():
            slot = values.setdefault(code, {})
            for suffix, value in suffixes.items():
                if suffix in slot and slot[suffix] != value:
                    warnings.append(
                        f"packet {part.pno}: {code}-{suffix}={value!r} differs from {slot[suffix]!r}"
                    )
                slot.setdefault(suffix, value)
    qns = {part.qn for part in ordered}
    if len(qns) > 1:
        warnings.append(f"QN differs between packets: {', '.join(sorted(q or '-' for q in qns))}")
    return Frame(
        raw=b"\n".join(part.raw for part in ordered),
        segment="\n".join(part.segment for part in ordered),
        fields=dict(first.fields),
        qn=first.qn,
        st=first.st,
        cn=first.cn,
        pw=first.pw,
        mn=first.mn,
        flag=first.flag,
        pnum=first.pnum,
        pno=None,  # a merged frame is no single packet
        data_time=cp.get("DataTime"),
        cp=cp,
        values=values,
        crc_mode=first.crc_mode,
        edition=first.edition,
        warnings=warnings,
        parts=ordered,
    )


class PacketAssembler:
    """Collect split packets until each group is complete; time out the others.

    ``now`` is any monotonic clock in seconds supplied by the caller (testable, no hidden time).
    """

    def __init__(self, timeout_s: float = 60.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.timeout_s = timeout_s
        self._groups: dict[_Key, _Group] = {}
        # Recently completed groups: a late duplicate packet must not open a group that would
        # only time out and raise a false alarm.
        self._done: dict[_Key, tuple[float, frozenset[int]]] = {}
        self.stats: dict[str, int] = {
            "packets": 0,
            "merged": 0,
            "passed_through": 0,
            "duplicates": 0,
            "timed_out": 0,
        }

    @property
    def open_groups(self) -> int:
        return len(self._groups)

    def _find_group(self, frame: Frame, key: _Key, now: float) -> _Group | None:
        pno = frame.pno
        group = self._groups.get(key)
        if group is not None:
            return group
        mn, cn, data_time, pnum = key
        # Vendors that put DataTime in some packets only: match an open group without it.
        candidates = [
            g
            for g in self._groups.values()
            if g.key[0] == mn
            and g.key[1] == cn
            and g.key[3] == pnum
            and pno not in g.parts
            and (data_time is None or g.key[2] is None)
        ]
        if not candidates:
            return None
        group = max(candidates, key=lambda g: g.started)
        if data_time is not None:  # the group learns its DataTime
            del self._groups[group.key]
            group.key = key
            self._groups[key] = group
        return group

    def add(self, frame: Frame, now: float) -> Frame | None:
        """A complete frame (merged, or non-split passed through), or None while incomplete."""
        if frame.pnum is None or frame.pno is None or frame.parts:
            self.stats["passed_through"] += 1
            return frame
        self.stats["packets"] += 1
        key: _Key = (frame.mn, frame.cn, frame.data_time, frame.pnum)
        done = self._done.get(key)
        if done is not None and now - done[0] < self.timeout_s and frame.pno in done[1]:
            self.stats["duplicates"] += 1
            return None
        group = self._find_group(frame, key, now)
        if group is None:
            group = _Group(key=key, pnum=frame.pnum, started=now)
            self._groups[key] = group
        held = group.parts.get(frame.pno)
        if held is not None:
            self.stats["duplicates"] += 1
            if held.raw != frame.raw:
                group.warnings.append(
                    f"packet {frame.pno} received twice with different content; kept the first"
                )
            return None
        group.parts[frame.pno] = frame
        if len(group.parts) < group.pnum:
            return None
        del self._groups[group.key]
        self._done[group.key] = (now, frozenset(group.parts))
        self.stats["merged"] += 1
        return merge_packets(list(group.parts.values()), group.warnings)

    def expire(self, now: float) -> list[FrameError]:
        """Drop groups older than the timeout; one error per group naming the missing packets."""
        errors: list[FrameError] = []
        for key, group in list(self._groups.items()):
            age = now - group.started
            if age < self.timeout_s:
                continue
            del self._groups[key]
            received = sorted(group.parts)
            missing = [n for n in range(1, group.pnum + 1) if n not in group.parts]
            self.stats["timed_out"] += 1
            errors.append(
                IncompletePacketError(
                    f"split packet group {_describe(key)} incomplete after {age:.0f} s: "
                    f"received {_ranges(received)}, missing {_ranges(missing)} of {group.pnum}",
                    mn=key[0],
                    cn=key[1],
                    data_time=key[2],
                    pnum=group.pnum,
                    received=received,
                    missing=missing,
                    raw=b"\n".join(group.parts[n].raw for n in received),
                )
            )
        for key, (finished, _) in list(self._done.items()):
            if now - finished >= self.timeout_s:
                del self._done[key]
        return errors


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5' (short, for messages)."""
    if not numbers:
        return "none"
    spans: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [None]:  # type: ignore[list-item]
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(spans)
