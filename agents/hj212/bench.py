"""A small, dependency-free throughput probe for the stream framer.

The field box reads up to 8 serial ports at 115200 baud (about 11.5 kB/s each, 92 kB/s in all) on
one core; ``reader_throughput`` tells how much of a core that costs on the machine at hand.
"""

from __future__ import annotations

import time

from .frame import build_cp, build_frame
from .reader import FrameReader

#: 115200 baud with 8N1 framing is 10 bits per byte.
BYTES_PER_SECOND_115200 = 115200 // 10


def sample_stream(frames: int = 1000, *, noise_every: int = 50) -> bytes:
    """A realistic CEMS minute-data stream with an occasional burst of line noise."""
    out = bytearray()
    for n in range(frames):
        values = {
            code: {
                "Avg": f"{10 + n % 7}.{n % 1000:03d}",
                "Min": "1.000",
                "Max": "99.9",
                "Flag": "N",
            }
            for code in ("a34013", "a21026", "a21002", "a19001", "a01011", "a01012", "a01013")
        }
        cp = build_cp(values, data_time=f"20171120{n // 60 % 24:02d}{n % 60:02d}00")
        out += build_frame(st="31", cn="2051", mn="010000A8900016F000169DC0", cp=cp,
                           qn=f"20171120103000{n % 1000:03d}", flag=4)  # fmt: skip
        if noise_every and n % noise_every == noise_every - 1:
            out += b"\x00\xff#noise\r\n"
    return bytes(out)


def reader_throughput(data: bytes | None = None, *, chunk: int = 256) -> dict[str, float]:
    """Feed ``data`` in ``chunk``-byte reads; return bytes/s and the share of one core that
    8 ports at 115200 baud would take."""
    data = sample_stream() if data is None else data
    reader = FrameReader()
    started = time.perf_counter()
    frames = 0
    for i in range(0, len(data), chunk):
        frames += sum(
            1 for item in reader.feed(data[i : i + chunk]) if not isinstance(item, Exception)
        )
    reader.flush()
    elapsed = max(time.perf_counter() - started, 1e-9)
    rate = len(data) / elapsed
    return {
        "bytes": float(len(data)),
        "frames": float(frames),
        "seconds": elapsed,
        "bytes_per_second": rate,
        "core_share_8_ports": 8 * BYTES_PER_SECOND_115200 / rate,
    }


if __name__ == "__main__":
    for size in (1, 64, 4096):
        print(size, reader_throughput(chunk=size))
