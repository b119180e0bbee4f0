"""Turn a simulated scenario (agents/simulate) into the frames validation/load.py produces.

The real path is agent -> ingest -> landing -> validation/load.py; the tamper tests only need the
readings that reach the warehouse, so this builds the measurement frame straight from the
scenario's arriving emissions (the values a decoder must produce, under 2017 codes). The box
receives a frame ``RECEIVE_LAG_S`` after the device sends it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from schemas.reading import BEIJING, parse_data_time, reading_id, sha256_hex
from tests.validation.frames import typed

RECEIVE_LAG_S = 0.4
SUFFIXES = {"Rtd": "rtd", "Avg": "avg", "Min": "min", "Max": "max", "Cou": "cou"}
SUFFIXES |= {"ZsRtd": "zs_rtd", "ZsAvg": "zs_avg"}


def registry_frames(scenario, folder: Path) -> dict[str, pd.DataFrame]:
    """The bureau's registry CSVs as the integrator reads them (all text)."""
    from agents.simulate.registry import write_registry

    paths = write_registry(scenario.registry, folder)
    return {p.stem: pd.read_csv(p, dtype="str", keep_default_na=False) for p in paths}


def measurement_frame(scenario, families=("cems", "ambient")) -> pd.DataFrame:
    rows = []
    for family in families:
        for device_id in scenario.device_ids(family):
            units = scenario.device_config(device_id)["units"]
            for emission in scenario.arriving(device_id):
                data_time = parse_data_time(emission.data_time, BEIJING)
                received = emission.at + timedelta(seconds=RECEIVE_LAG_S)
                rid = reading_id(device_id, emission.cn, emission.data_time, emission.key)
                digest = sha256_hex(emission.frame)
                for code, fields in emission.values.items():
                    row = {
                        "reading_id": rid,
                        "batch_id": "sim",
                        "device_id": device_id,
                        "stream": family,
                        "cn": emission.cn,
                        "data_time": data_time,
                        "received_at": received,
                        "day": data_time.astimezone(BEIJING).strftime("%Y-%m-%d"),
                        "code": code,
                        "flag": fields.get("Flag", ""),
                        "unit": units.get(code, ""),
                        "raw_sha256": digest,
                        "clock_drift": False,
                        "clock_jump": False,
                        "device_offset_s": np.nan,
                    }
                    for suffix, column in SUFFIXES.items():
                        row[column] = float(fields[suffix]) if suffix in fields else np.nan
                    rows.append(row)
    return typed(pd.DataFrame(rows))
