"""Load what has landed into the DataFrames the validation suites and the rules work on.

A partition is one Beijing calendar day. Every batch whose data overlaps the day is read (its
stored hash verified), readings are kept if their device time falls on the day, and duplicates are
removed by reading id (the earliest landed copy wins), so a batch uploaded twice or two batches that
share readings never count a reading twice.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from schemas.profiles import profile_items
from schemas.reading import BEIJING

#: HJ 212 suffix -> measurements column
SUFFIX_COLUMNS = {
    "Rtd": "rtd",
    "Avg": "avg",
    "Min": "min",
    "Max": "max",
    "Cou": "cou",
    "ZsRtd": "zs_rtd",
    "ZsAvg": "zs_avg",
}
MEASUREMENT_COLUMNS = [
    "reading_id",
    "batch_id",
    "device_id",
    "stream",
    "cn",
    "data_time",
    "received_at",
    "day",
    "code",
    *SUFFIX_COLUMNS.values(),
    "flag",
    "unit",
    "raw_sha256",
    "clock_drift",
    "clock_jump",
    "device_offset_s",
]


@dataclass
class LoadedDay:
    day: str
    frames: dict[str, pd.DataFrame]
    n_batches: int = 0
    n_readings: int = 0
    n_duplicates: int = 0
    landed_seq_max: int = 0
    batch_ids: list[str] = field(default_factory=list)


def day_bounds(day: str) -> tuple[datetime, datetime]:
    """The UTC instants bounding a Beijing calendar day."""
    start = datetime.combine(date.fromisoformat(day), time(0), tzinfo=BEIJING)
    return start, start + timedelta(days=1)


def readings_of_day(
    index: Any, day: str, streams: tuple[str, ...] | None = None
) -> tuple[list[dict[str, Any]], LoadedDay]:
    """Unique readings (by id) of one Beijing day from the landing index, in landing order."""
    info = LoadedDay(day=day, frames={})
    readings = list(iter_readings_of_day(index, day, streams, info))
    return readings, info


def iter_readings_of_day(
    index: Any, day: str, streams: tuple[str, ...] | None, info: LoadedDay
) -> Iterator[dict[str, Any]]:
    """:func:`readings_of_day` one reading at a time; ``info`` counts as it goes (complete once
    the iterator is exhausted)."""
    start, end = day_bounds(day)
    entries = sorted(index.batches(start, end), key=lambda e: e.seq)
    if streams is not None:
        entries = [e for e in entries if e.stream in streams]
    seen: set[str] = set()
    for entry in entries:
        batch = index.read_batch(entry)
        info.n_batches += 1
        info.batch_ids.append(batch["batch_id"])
        info.landed_seq_max = max(info.landed_seq_max, entry.seq)
        for reading in batch["readings"]:
            instant = datetime.fromisoformat(reading["device_time"])
            if not start <= instant < end:
                continue
            if reading["id"] in seen:
                info.n_duplicates += 1
                continue
            seen.add(reading["id"])
            info.n_readings += 1
            yield dict(reading, batch_id=batch["batch_id"])


def load_day(index: Any, day: str, streams: tuple[str, ...] | None = None) -> LoadedDay:
    """One day as DataFrames: measurements, refuellings, tank_pressure, rsd_passes.

    Measurement readings go into columns as they are read: a micro-station day is millions of
    rows, and neither its readings nor a dict per row are ever held all at once."""
    info = LoadedDay(day=day, frames={})
    # cems rows first, then ambient (the order the frame has always had)
    measurements = {"cems": MeasurementColumns(day), "ambient": MeasurementColumns(day)}
    others: dict[str, list[dict[str, Any]]] = {"vapor": [], "rsd": []}
    for reading in iter_readings_of_day(index, day, streams, info):
        stream = reading["stream"]
        if stream in measurements:
            measurements[stream].add(reading)
        elif stream in others:
            others[stream].append(reading)
    filled = [m for m in measurements.values() if m.n_codes] or [measurements["cems"]]
    frames = [m.frame() for m in filled]
    del measurements, filled
    info.frames["measurements"] = (
        frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    )
    vapor = others["vapor"]
    info.frames["refuellings"] = profile_frame(
        [r for r in vapor if r["cn"] == "2011"], day, "vapor_refuelling"
    )
    info.frames["tank_pressure"] = profile_frame(
        [r for r in vapor if r["cn"] != "2011"], day, "vapor_station"
    )
    info.frames["rsd_passes"] = profile_frame(others["rsd"], day, "rsd_pass")
    return info


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _common(reading: dict[str, Any], day: str) -> dict[str, Any]:
    clock = reading.get("clock") or {}
    return {
        "reading_id": reading["id"],
        "batch_id": reading.get("batch_id", ""),
        "device_id": reading["device_id"],
        "stream": reading["stream"],
        "cn": reading["cn"],
        "data_time": reading["device_time"],
        "received_at": reading["received_at"],
        "day": day,
        "raw_sha256": reading["raw_sha256"],
        "clock_drift": bool(clock.get("drift", False)),
        "clock_jump": bool(clock.get("jump", False)),
        "device_offset_s": _float(clock.get("device_offset_s")),
    }


def _finish_times(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("data_time", "received_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


#: reading-level columns of the long form, repeated over the reading's codes
_READING_COLUMNS = [
    c for c in MEASUREMENT_COLUMNS if c not in {"code", "flag", "unit", *SUFFIX_COLUMNS.values()}
]


class MeasurementColumns:
    """The long form (one row per reading and pollutant code) built column by column.

    Reading-level values are kept once per reading and repeated over its codes at the end;
    values go into float arrays, not Python floats."""

    def __init__(self, day: str) -> None:
        self.day = day
        self.per_reading: dict[str, list[Any]] = {c: [] for c in _READING_COLUMNS}
        self.n_codes: list[int] = []
        self.code: list[str] = []
        self.flag: list[str] = []
        self.unit: list[str] = []
        self.values: dict[str, array] = {c: array("d") for c in SUFFIX_COLUMNS.values()}

    def add(self, reading: dict[str, Any]) -> None:
        for column, value in _common(reading, self.day).items():
            self.per_reading[column].append(value)
        units = reading.get("units") or {}
        codes = reading["values"]
        self.n_codes.append(len(codes))
        nan = float("nan")
        for code, fields in codes.items():
            self.code.append(code)
            self.flag.append(fields.get("Flag", ""))
            self.unit.append(units.get(code, ""))
            for suffix, column in SUFFIX_COLUMNS.items():
                text = fields.get(suffix)
                self.values[column].append(nan if text is None else _float(text))

    def frame(self) -> pd.DataFrame:
        repeats = np.asarray(self.n_codes, dtype=np.int64)
        data: dict[str, Any] = {}
        for column in MEASUREMENT_COLUMNS:
            if column in self.per_reading:
                kept = self.per_reading[column]
                dtype = bool if column in ("clock_drift", "clock_jump") else None
                if column == "device_offset_s":
                    dtype = np.float64
                values = np.asarray(kept, dtype=dtype if dtype is not None else object)
                data[column] = np.repeat(values, repeats)
            elif column in self.values:
                data[column] = np.frombuffer(self.values[column], dtype=np.float64).copy()
            else:
                data[column] = np.asarray(getattr(self, column), dtype=object)
        return _finish_times(pd.DataFrame(data, columns=MEASUREMENT_COLUMNS))


def measurements_frame(readings: list[dict[str, Any]], day: str) -> pd.DataFrame:
    """Long form: one row per reading and pollutant code."""
    columns = MeasurementColumns(day)
    for reading in readings:
        columns.add(reading)
    return columns.frame()


def profile_frame(readings: list[dict[str, Any]], day: str, record: str) -> pd.DataFrame:
    """Wide form for families defined by a Lantian profile (vapor, remote sensing)."""
    spec = profile_spec(record)
    key_column = profile_key_column(record)
    rows = []
    for reading in readings:
        row = _common(reading, day)
        row["key"] = reading.get("key", "")
        if key_column:
            row[key_column] = row["key"]
        for column, (code, suffix, kind) in spec.items():
            text = reading["values"].get(code, {}).get(suffix)
            row[column] = _float(text) if kind == "float" else ("" if text is None else text)
        rows.append(row)
    columns = [*_common_columns(), "key", *([key_column] if key_column else []), *spec]
    frame = pd.DataFrame(rows, columns=columns)
    for column, (_, _, kind) in spec.items():
        if kind == "float":
            frame[column] = frame[column].astype("float64")
    return _finish_times(frame)


def _common_columns() -> list[str]:
    return [
        c
        for c in MEASUREMENT_COLUMNS
        if c not in {"code", "flag", "unit", *SUFFIX_COLUMNS.values()}
    ]


#: record -> (family, command) of the device profiles (schemas/data/*_profile.csv)
PROFILE_RECORDS = {
    "vapor_refuelling": ("vapor", "2011"),
    "vapor_station": ("vapor", "2051"),
    "rsd_pass": ("rsd", "2011"),
}


def profile_spec(record: str) -> dict[str, tuple[str, str, str]]:
    """column -> (code, suffix, kind) for one record type of a device profile.

    The key item (nozzle, vehicle pass) is left out: it is the reading's ``key`` and is copied
    into its column by :func:`profile_frame`.
    """
    family, cn = PROFILE_RECORDS[record]
    spec = {}
    for item in profile_items(family):
        if item.cn != cn or item.is_key:
            continue
        kind = "float" if item.type in ("decimal", "int") else "text"
        spec[item.column] = (item.code, item.suffix, kind)
    return spec


def profile_key_column(record: str) -> str | None:
    family, cn = PROFILE_RECORDS[record]
    keys = [i.column for i in profile_items(family) if i.cn == cn and i.is_key]
    return keys[0] if keys else None
