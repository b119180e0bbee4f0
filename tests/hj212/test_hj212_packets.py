"""Split packets: any order, changing QN, duplicates, timeouts."""

from __future__ import annotations

import itertools

import pytest

from agents.hj212 import (
    Frame,
    IncompletePacketError,
    PacketAssembler,
    TruncatedError,
    build_cp,
    build_frame,
    parse_frame,
)

MN = "010000A8900016F000169DC0"
CODES = ["a34013", "a21026", "a21002", "a19001", "a01011", "a01012"]


def packet(pno: int, pnum: int, *, data_time: str | None = "20171120100000", qn: str | None = None,
           mn: str = MN, codes: list[str] | None = None) -> Frame:  # fmt: skip
    """Packet ``pno`` carries every pnum-th code; DataTime in each (most vendors)."""
    mine = (codes or CODES)[pno - 1 :: pnum]
    values = {code: {"Avg": f"{i}.{pno}0", "Flag": "N"} for i, code in enumerate(mine)}
    raw = build_frame(st="31", cn="2061", mn=mn, cp=build_cp(values, data_time=data_time),
                      qn=qn or f"2017112010000000{pno}", flag=6, pnum=pnum, pno=pno)  # fmt: skip
    return parse_frame(raw)


@pytest.mark.parametrize("order", list(itertools.permutations([1, 2, 3])))
def test_any_order_merges(order):
    assembler = PacketAssembler()
    results = [assembler.add(packet(n, 3), now=float(i)) for i, n in enumerate(order)]
    assert results[0] is None and results[1] is None
    merged = results[2]
    assert isinstance(merged, Frame)
    assert set(merged.values) == set(CODES)
    assert merged.values["a34013"] == {"Avg": "0.10", "Flag": "N"}  # from packet 1
    assert merged.values["a21002"] == {"Avg": "0.30", "Flag": "N"}  # from packet 3
    # evidence: each sub-frame as received, in PNO order, joined by "\n"
    assert merged.raw == b"\n".join(packet(n, 3).raw for n in (1, 2, 3))
    assert [p.pno for p in merged.parts] == [1, 2, 3]
    assert merged.pnum == 3 and merged.pno is None and merged.data_time == "20171120100000"
    assert assembler.open_groups == 0 and assembler.stats["merged"] == 1


def test_qn_changes_between_packets_is_a_warning():
    assembler = PacketAssembler()
    assert assembler.add(packet(1, 2, qn="20171120100000001"), 0) is None
    merged = assembler.add(packet(2, 2, qn="20171120100000999"), 1)
    assert merged is not None and merged.qn == "20171120100000001"
    assert any("QN differs" in w for w in merged.warnings)


def test_non_split_frames_pass_through():
    assembler = PacketAssembler()
    plain = parse_frame(build_frame(st="31", cn="2011", mn=MN, cp="DataTime=20171120100000"))
    assert assembler.add(plain, 0) is plain
    assert assembler.stats["passed_through"] == 1


def test_groups_kept_apart_by_data_time_and_mn():
    assembler = PacketAssembler()
    assert assembler.add(packet(1, 2, data_time="20171120100000"), 0) is None
    assert assembler.add(packet(1, 2, data_time="20171120110000"), 0) is None
    assert assembler.add(packet(1, 2, mn="OTHER"), 0) is None
    assert assembler.open_groups == 3
    merged = assembler.add(packet(2, 2, data_time="20171120110000"), 1)
    assert merged is not None and merged.data_time == "20171120110000"
    assert all(p.data_time == "20171120110000" for p in merged.parts)


def test_packet_without_data_time_joins_open_group():
    assembler = PacketAssembler()
    assert assembler.add(packet(2, 2, data_time=None), 0) is None  # arrives first, no DataTime
    merged = assembler.add(packet(1, 2), 1)
    assert merged is not None and merged.data_time == "20171120100000"
    assert len(merged.parts) == 2


def test_duplicate_packet_ignored():
    assembler = PacketAssembler()
    assert assembler.add(packet(1, 2), 0) is None
    assert assembler.add(packet(1, 2), 1) is None
    assert assembler.stats["duplicates"] == 1
    merged = assembler.add(packet(2, 2), 2)
    assert merged is not None and len(merged.parts) == 2
    # a late re-send after completion must not open a group that would time out
    assert assembler.add(packet(2, 2), 3) is None
    assert assembler.open_groups == 0 and assembler.expire(1000) == []


def test_incomplete_group_times_out_naming_missing_packets():
    assembler = PacketAssembler(timeout_s=60)
    assert assembler.add(packet(1, 4), 100.0) is None
    assert assembler.add(packet(3, 4), 130.0) is None
    assert assembler.expire(159.0) == []  # 59 s after the first packet
    errors = assembler.expire(160.0)
    assert len(errors) == 1
    err = errors[0]
    assert isinstance(err, IncompletePacketError) and isinstance(err, TruncatedError)
    assert err.missing == [2, 4] and err.received == [1, 3] and err.pnum == 4
    assert "missing 2, 4 of 4" in str(err) and MN in str(err)
    assert err.raw == packet(1, 4).raw + b"\n" + packet(3, 4).raw
    assert assembler.open_groups == 0 and assembler.stats["timed_out"] == 1
    # packet 2 arriving late starts a new group rather than resurrecting the expired one
    assert assembler.add(packet(2, 4), 170.0) is None


def test_conflicting_values_keep_first_and_warn():
    a = packet(1, 2, codes=["a21026", "a19001"])
    raw_b = build_frame(st="31", cn="2061", mn=MN, flag=6, pnum=2, pno=2, qn="20171120100000002",
                        cp=build_cp({"a21026": {"Avg": "9.99"}}, data_time="20171120100000"))  # fmt: skip
    assembler = PacketAssembler()
    assembler.add(a, 0)
    merged = assembler.add(parse_frame(raw_b), 1)
    assert merged.values["a21026"]["Avg"] == "0.10"
    assert any("9.99" in w for w in merged.warnings)


def test_bad_timeout():
    with pytest.raises(ValueError):
        PacketAssembler(timeout_s=0)
