"""Builders of small, realistic validation inputs (the shapes validation/load.py produces)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from schemas.reading import BEIJING, reading_id

DAY = "2017-11-15"
DAY_START = datetime(2017, 11, 15, tzinfo=BEIJING)

CEMS_CODES = {  # code -> (unit, typical minute value)
    "a34013": ("mg/m3", 12.0),
    "a21026": ("mg/m3", 80.0),
    "a21002": ("mg/m3", 150.0),
    "a19001": ("%", 9.5),
    "a01012": ("degC", 120.0),
}
AMBIENT_CODES = {"a34004": ("ug/m3", 60.0), "a34002": ("ug/m3", 95.0), "a21005": ("mg/m3", 1.1)}


def devices(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(device_id, stream, install_date) -> the registry's devices frame."""
    return pd.DataFrame(
        {
            "device_id": [r[0] for r in rows],
            "family": [r[1] for r in rows],
            "stream": [r[1] for r in rows],
            "install_date": [r[2] for r in rows],
        }
    )


def measurements(
    device_id: str = "CEMS001",
    stream: str = "cems",
    minutes: int = 5,
    start: datetime = DAY_START,
    codes: dict[str, tuple[str, float]] | None = None,
    cn: str = "2051",
    lag_s: float = 40.0,
    seed: int = 1,
) -> pd.DataFrame:
    """Minute records (CN 2051) in long form: one row per reading and code, all flags N."""
    codes = codes or (CEMS_CODES if stream == "cems" else AMBIENT_CODES)
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(minutes):
        t = start + timedelta(minutes=m)
        data_time = t.strftime("%Y%m%d%H%M%S")
        rid = reading_id(device_id, cn, data_time)
        for code, (unit, level) in codes.items():
            value = round(level * (1 + 0.05 * rng.standard_normal()), 3)
            rows.append(
                {
                    "reading_id": rid,
                    "batch_id": "b" * 32,
                    "device_id": device_id,
                    "stream": stream,
                    "cn": cn,
                    "data_time": t.astimezone(UTC),
                    "received_at": (t + timedelta(seconds=lag_s)).astimezone(UTC),
                    "day": t.strftime("%Y-%m-%d"),
                    "code": code,
                    "rtd": np.nan,
                    "avg": value if cn != "2011" else np.nan,
                    "min": np.nan,
                    "max": np.nan,
                    "cou": np.nan,
                    "zs_rtd": np.nan,
                    "zs_avg": np.nan,
                    "flag": "N",
                    "unit": unit,
                    "raw_sha256": "f" * 64,
                    "clock_drift": False,
                    "clock_jump": False,
                    "device_offset_s": 0.0,
                }
            )
            if cn == "2011":
                rows[-1]["rtd"] = value
    return typed(pd.DataFrame(rows))


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The dtypes the loader produces (pandas 3 strings, float64, tz-aware UTC)."""
    out = frame.copy()
    for column in out.columns:
        if column in ("data_time", "received_at"):
            out[column] = pd.to_datetime(out[column], utc=True)
        elif column in ("clock_drift", "clock_jump"):
            out[column] = out[column].astype("bool")
        elif out[column].dtype == object or str(out[column].dtype) == "str":
            out[column] = out[column].astype("str")
        elif pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].astype("float64")
    return out


def refuellings(device_id: str = "VAP001", n: int = 4, start: datetime = DAY_START) -> pd.DataFrame:
    """Vapor refuelling records (CN 2011, one per refuelling), profile columns as the loader
    writes them (decimals and ints float64, text as strings)."""
    rows = []
    for i in range(n):
        t = start + timedelta(minutes=7 * i + 5)
        nozzle = f"{i % 2 + 1:02d}"
        fuel = 30.0 + i
        rows.append(
            {
                "reading_id": reading_id(device_id, "2011", t.strftime("%Y%m%d%H%M%S"), nozzle),
                "batch_id": "v" * 32,
                "device_id": device_id,
                "stream": "vapor",
                "cn": "2011",
                "data_time": t.astimezone(UTC),
                "received_at": (t + timedelta(seconds=2)).astimezone(UTC),
                "day": t.strftime("%Y-%m-%d"),
                "raw_sha256": "e" * 64,
                "clock_drift": False,
                "clock_jump": False,
                "device_offset_s": 1.0,
                "key": nozzle,
                "nozzle_id": nozzle,
                "al_ratio": 1.1,
                "fuel_volume_l": fuel,
                "vapor_volume_l": round(1.1 * fuel, 2),
                "fuel_flow_l_min": 35.0,
                "vapor_flow_l_min": 38.5,
                "vapor_temp_c": 12.0,
                "vapor_conc_g_m3": 420.0,
                "nozzle_status": 0.0,  # profile ints: the loader writes them as float64
                "duration_s": 60.0,
                "fuel_grade": "92",
            }
        )
    return typed(pd.DataFrame(rows))


def tank_records(device_id: str = "VAP001", minutes: int = 3, start: datetime = DAY_START):
    rows = []
    for m in range(minutes):
        t = start + timedelta(minutes=m)
        rows.append(
            {
                "reading_id": reading_id(device_id, "2051", t.strftime("%Y%m%d%H%M%S")),
                "batch_id": "t" * 32,
                "device_id": device_id,
                "stream": "vapor",
                "cn": "2051",
                "data_time": t.astimezone(UTC),
                "received_at": (t + timedelta(seconds=62)).astimezone(UTC),
                "day": t.strftime("%Y-%m-%d"),
                "raw_sha256": "d" * 64,
                "clock_drift": False,
                "clock_jump": False,
                "device_offset_s": 0.0,
                "key": "",
                "tank_pressure_pa": 120.0,
                "tank_pressure_min_pa": 100.0,
                "tank_pressure_max_pa": 140.0,
                "tank_pressure_flag": "N",
                "zero_pressure_alarm": "0",
            }
        )
    return typed(pd.DataFrame(rows))


def rsd_passes(device_id: str = "RSD001", n: int = 3, start: datetime = DAY_START):
    rows = []
    for i in range(n):
        t = start + timedelta(hours=8, minutes=3 * i)
        pass_id = f"P{i:05d}"
        rows.append(
            {
                "reading_id": reading_id(device_id, "2011", t.strftime("%Y%m%d%H%M%S"), pass_id),
                "batch_id": "r" * 32,
                "device_id": device_id,
                "stream": "rsd",
                "cn": "2011",
                "data_time": t.astimezone(UTC),
                "received_at": (t + timedelta(seconds=1)).astimezone(UTC),
                "day": t.strftime("%Y-%m-%d"),
                "raw_sha256": "c" * 64,
                "clock_drift": False,
                "clock_jump": False,
                "device_offset_s": 0.0,
                "key": pass_id,
                "pass_id": pass_id,
                "lane": 1.0,
                "plate": "豫A12345",
                "plate_color": "黄",
                "fuel_type": "diesel",
                "weight_class": "N3",
                "gross_weight_t": 25.0,
                "speed_km_h": 40.0,
                "accel_m_s2": 0.5,
                "vsp_kw_t": 6.0,
                "co2_pct": 8.0,
                "co_pct": 0.1,
                "hc_ppm": 50.0,
                "no_ppm": 800.0,
                "opacity_pct": 12.0,
                "ringelmann": 0.0,
                "valid": 1.0,
                "invalid_reason": "",
            }
        )
    return typed(pd.DataFrame(rows))
