"""Shared builders for the enforcement tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SO2 = "a21026"
O2 = "a19001"


def beijing(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="Asia/Shanghai").tz_convert("UTC")


def minute_rows(
    start: str,
    n: int,
    *,
    avg: float | list[float] = 100.0,
    o2: float | list[float] = 12.0,
    flag: str | list[str] = "N",
    o2_flag: str = "N",
    valid: bool = True,
    device: str = "DEV1",
    code: str = SO2,
    prefix: str = "r",
) -> pd.DataFrame:
    """n minute records from ``start`` (Beijing), one reading per minute with the pollutant and O2."""
    first = beijing(start)
    rows = []
    for i in range(n):
        value = avg[i] if isinstance(avg, list) else avg
        oxygen = o2[i] if isinstance(o2, list) else o2
        fl = flag[i] if isinstance(flag, list) else flag
        rid = f"{prefix}{device}{first.value}{i:04d}"
        when = first + pd.Timedelta(minutes=i)
        base = {"reading_id": rid, "device_id": device, "stream": "cems", "cn": "2051"}
        rows.append(
            {
                **base,
                "data_time": when,
                "code": code,
                "avg": value,
                "zs_avg": value * 1.1,
                "flag": fl,
                "valid": valid,
            }
        )
        rows.append(
            {
                **base,
                "data_time": when,
                "code": O2,
                "avg": oxygen,
                "zs_avg": np.nan,
                "flag": o2_flag,
                "valid": True,
            }
        )
    frame = pd.DataFrame(rows)
    frame["data_time"] = frame["data_time"].astype("datetime64[ns, UTC]")
    return frame


STACKS = pd.DataFrame(
    {
        "stack_id": ["S1"],
        "enterprise_id": ["E1"],
        "name": ["boiler 1"],
        "height_m": [60.0],
        "fuel": ["coal"],
        "o2_ref_pct": [9.0],
        "device_id": ["DEV1"],
    }
)
