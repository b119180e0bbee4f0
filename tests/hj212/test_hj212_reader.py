"""FrameReader on serial-line reality: noise, half frames, wrong lengths, missing tails."""

from __future__ import annotations

import pytest

from agents.hj212 import (
    CrcError,
    Frame,
    FrameError,
    FrameReader,
    GarbageError,
    LengthError,
    TruncatedError,
    build_cp,
    build_frame,
    crc16,
)
from agents.hj212.bench import reader_throughput, sample_stream


def make(n: int, *, tail: bytes = b"\r\n", crc_mode: str = "standard") -> bytes:
    cp = build_cp(
        {"a21026": {"Rtd": f"{n}.50", "Flag": "N"}}, data_time=f"201711201030{n % 60:02d}"
    )
    raw = build_frame(st="31", cn="2011", mn="010000A8900016F000169DC0", cp=cp,
                      qn=f"20171120103000{n % 1000:03d}", crc_mode=crc_mode)  # fmt: skip
    return raw[:-2] + tail


def frames(items):
    return [item for item in items if isinstance(item, Frame)]


def errors(items):
    return [item for item in items if isinstance(item, FrameError)]


def run(data: bytes, chunk: int | None = None, **kwargs):
    reader = FrameReader(**kwargs)
    out = []
    if chunk is None:
        out += reader.feed(data)
    else:
        for i in range(0, len(data), chunk):
            out += reader.feed(data[i : i + chunk])
    out += reader.flush()
    return out, reader


@pytest.mark.parametrize("chunk", [None, 1, 2, 7, 64])
def test_clean_stream_any_chunking(chunk):
    data = b"".join(make(n) for n in range(5))
    out, reader = run(data, chunk)
    assert [f.values["a21026"]["Rtd"] for f in frames(out)] == [f"{n}.50" for n in range(5)]
    assert errors(out) == []
    assert reader.stats["frames"] == 5 and reader.stats["garbage_bytes"] == 0
    assert reader.stats["bytes"] == len(data) and reader.pending == 0


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r\n", b"\n\n"])
def test_missing_or_lf_tail(tail):
    out, _ = run(b"".join(make(n, tail=tail) for n in range(3)), 5)
    assert len(frames(out)) == 3 and errors(out) == []


def test_frame_returned_without_waiting_for_tail():
    reader = FrameReader()
    out = reader.feed(make(1, tail=b""))
    assert len(frames(out)) == 1
    assert reader.feed(b"\r\n") == []


def test_garbage_before_and_between():
    data = b"\x00\xffboot v1.2\r\n" + make(1) + b"AT+OK\r\n" + make(2) + b"###" + make(3)
    out, reader = run(data)
    assert len(frames(out)) == 3
    garbage = [e for e in errors(out) if isinstance(e, GarbageError)]
    # "###" + "##0140…": the header is the last two of the five '#'
    assert [g.raw for g in garbage] == [b"\x00\xffboot v1.2", b"AT+OK", b"###"]
    assert garbage[0].stream_offset == 0
    assert garbage[1].stream_offset == len(b"\x00\xffboot v1.2\r\n") + len(make(1))
    assert reader.stats["garbage_bytes"] == 11 + 5 + 3


def test_half_frame_then_good_frame():
    half = make(1)[:40]
    out, reader = run(half + make(2))
    assert isinstance(out[0], TruncatedError) and out[0].raw == half
    assert isinstance(out[1], Frame) and out[1].values["a21026"]["Rtd"] == "2.50"
    assert reader.stats["truncated"] == 1


def test_half_frame_ended_by_line_break_is_reported_at_once():
    reader = FrameReader()
    out = reader.feed(make(1)[:50] + b"\r\n")
    assert len(out) == 1 and isinstance(out[0], TruncatedError)


def test_half_frame_at_end_of_stream():
    reader = FrameReader()
    assert reader.feed(make(1)[:70]) == []
    assert reader.pending == 70
    out = reader.flush()
    assert len(out) == 1 and isinstance(out[0], TruncatedError)
    assert "stream ended" in str(out[0]) and reader.pending == 0


def test_header_cut_at_end_of_stream():
    reader = FrameReader()
    assert reader.feed(b"##01") == []
    out = reader.flush()
    assert isinstance(out[0], TruncatedError) and out[0].raw == b"##01"


def relength(raw: bytes, declared: int) -> bytes:
    return raw[:2] + b"%04d" % declared + raw[6:]


def test_declared_length_too_long_does_not_swallow_next_frame():
    good = make(1)
    actual = len(good) - 12
    bad = relength(good, actual + 40)
    out, reader = run(bad + make(2))
    assert isinstance(out[0], LengthError)
    assert out[0].declared == actual + 40 and out[0].actual == actual
    assert "CRC matches the actual length" in str(out[0])
    assert isinstance(out[1], Frame) and out[1].values["a21026"]["Rtd"] == "2.50"
    assert reader.stats["length_errors"] == 1


def test_declared_length_too_long_without_tail():
    good = make(1, tail=b"")
    bad = relength(good, len(good) - 10 + 30)
    out, _ = run(bad + make(2, tail=b""))
    assert isinstance(out[0], LengthError) and isinstance(out[1], Frame)


def test_declared_length_too_short():
    good = make(1)
    actual = len(good) - 12
    out, _ = run(relength(good, actual - 5) + make(2))
    assert isinstance(out[0], LengthError)
    assert out[0].declared == actual - 5 and out[0].actual == actual
    assert isinstance(out[1], Frame)


def test_crc_error_reported_and_next_frame_read():
    bad = bytearray(make(1))
    bad[30] ^= 0x01
    out, reader = run(bytes(bad) + make(2))
    assert isinstance(out[0], CrcError) and out[0].stream_offset == 0
    assert isinstance(out[1], Frame)
    assert reader.stats["crc_errors"] == 1


def test_modbus_device_mode():
    data = make(1, crc_mode="modbus") + make(2, crc_mode="modbus")
    out, _ = run(data)
    assert all(isinstance(e, CrcError) and e.matching_mode == "modbus" for e in out)
    out, _ = run(data, crc_mode="modbus")
    assert len(frames(out)) == 2


def test_length_above_max_is_garbage():
    reader = FrameReader(max_length=200)
    big = build_frame(st="31", cn="2011", mn="M", cp="x-Info=" + "y" * 300)
    out = reader.feed(big + make(1)) + reader.flush()
    assert isinstance(out[0], GarbageError) and "not a length" in str(out[0])
    assert isinstance(out[-1], Frame)


def test_error_messages_carry_stream_offset():
    first = make(1)
    out, _ = run(first + b"noise" + make(2))
    err = errors(out)[0]
    assert err.stream_offset == len(first)
    assert f"stream byte {len(first)}" in str(err)


def test_errors_are_values_not_exceptions():
    reader = FrameReader()
    out = reader.feed(b"##9999" + b"\xff" * 20 + b"\r\n##abcd" + bytes(range(256)))
    out += reader.flush()
    assert out and all(isinstance(item, FrameError) for item in out)


def test_bad_arguments():
    with pytest.raises(ValueError):
        FrameReader(crc_mode="crc32")
    with pytest.raises(ValueError):
        FrameReader(max_length=10000)


def test_strict_reader_rejects_malformed_cp():
    seg = b"ST=31;CN=2011;PW=1;MN=M;CP=&&a21026-Rtd=1;junk&&"
    raw = b"##%04d" % len(seg) + seg + b"%04X\r\n" % crc16(seg)
    out, _ = run(raw, strict=True)
    assert len(out) == 1 and type(out[0]).__name__ == "SegmentError"
    out, _ = run(raw)  # default tolerant
    assert isinstance(out[0], Frame) and out[0].warnings


def test_throughput_probe_reports_numbers():
    # not a timing assertion (shared CI cores); the probe must run and count every frame
    result = reader_throughput(sample_stream(50), chunk=64)
    assert result["frames"] == 50 and result["bytes_per_second"] > 0
