"""The column-at-a-time write and the chunked read store and return exactly what SQLAlchemy's
own per-row path does, on SQLite and on PostgreSQL, for every kind of column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from enforcement import warehouse as warehouse_module
from enforcement.warehouse import Warehouse


def measurement_rows(n: int) -> pd.DataFrame:
    """Rows with missing values in every nullable kind: floats, booleans, times, text."""
    rng = np.random.default_rng(7)
    times = pd.date_range("2017-11-30T16:00:00.123456", periods=n, freq="min", tz="UTC")
    avg = rng.normal(50, 10, n).round(3)
    avg[::7] = np.nan
    valid = pd.Series([True, False, None] * (n // 3) + [True] * (n % 3), dtype=object)
    received = pd.Series(times + pd.Timedelta(seconds=61)).astype(object)
    received.iloc[::11] = None
    return pd.DataFrame(
        {
            "reading_id": [f"r{i:06d}" for i in range(n)],
            "batch_id": [f"b{i // 100}" for i in range(n)],
            "device_id": [f"D{i % 5}" for i in range(n)],
            "stream": "ambient",
            "cn": "2051",
            "data_time": times,
            "received_at": received,
            "day": "2017-12-01",
            "code": ["a34004", "a34002"] * (n // 2) + ["a34004"] * (n % 2),
            "avg": avg,
            "rtd": np.nan,
            "min": avg - 1,
            "flag": [None if i % 13 == 0 else "N" for i in range(n)],
            "unit": "ug/m3",
            "valid": valid,
            "invalid_reason": [None if i % 3 != 1 else "flag D" for i in range(n)],
        }
    )


def stored(engine: sa.Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY 1, 9'))]


def reference_insert(wh: Warehouse, name: str, frame: pd.DataFrame) -> None:
    """SQLAlchemy Core's insert, a dict per row and its type processors: the path replaced."""
    table = wh.table(name)
    data = frame.astype(object).where(frame.notna(), None)
    for column in ("data_time", "received_at"):
        stamps = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
        data[column] = stamps.astype(object).where(stamps.notna(), None)
    with wh.engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert(), data.to_dict(orient="records"))


def reference_read(wh: Warehouse, name: str) -> pd.DataFrame:
    """SQLAlchemy's own result processing (a datetime, a bool per value): the read replaced."""
    table = wh.table(name)
    with wh.engine.connect() as conn:
        result = conn.execute(sa.select(table))
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in ("data_time", "received_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in ("rtd", "avg", "min", "max", "cou", "zs_rtd", "zs_avg"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame.sort_values(["reading_id", "code"], ignore_index=True)


def check_same(wh: Warehouse, monkeypatch) -> None:
    # small chunks: several write and read chunks, a chunk boundary inside the data
    monkeypatch.setattr(warehouse_module, "WRITE_CHUNK_ROWS", 97)
    monkeypatch.setattr(warehouse_module, "READ_CHUNK_ROWS", 89)
    frame = measurement_rows(600)
    reference_insert(wh, "measurements", frame)
    expected_rows = stored(wh.engine, "measurements")
    expected_read = reference_read(wh, "measurements")
    assert wh.replace("measurements", frame, day="2017-12-01") == 600
    assert stored(wh.engine, "measurements") == expected_rows
    read = wh.read("measurements").sort_values(["reading_id", "code"], ignore_index=True)
    pd.testing.assert_frame_equal(read, expected_read)
    # the values that went in come back
    assert read["avg"].isna().sum() == frame["avg"].isna().sum()
    assert read["received_at"].isna().sum() == frame["received_at"].isna().sum()
    assert read["data_time"].iloc[0] == pd.Timestamp("2017-11-30T16:00:00.123456", tz="UTC")
    assert read["valid"].tolist()[:3] == [True, False, None]
    some = wh.read_columns(
        "measurements", ["reading_id", "device_id", "avg"], day="2017-12-01", device_ids=["D1"]
    )
    assert list(some.columns) == ["reading_id", "device_id", "avg"]
    assert set(some["device_id"]) == {"D1"} and len(some) == 120
    assert wh.distinct("measurements", "device_id", day="2017-12-01") == [f"D{i}" for i in range(5)]


def test_bulk_write_and_chunked_read_match_sqlalchemy_on_sqlite(tmp_path, monkeypatch):
    check_same(Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}"), monkeypatch)


def test_device_filter_on_a_table_without_devices_is_refused(tmp_path):
    wh = Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")
    with pytest.raises(KeyError, match="quarantine.*device_id"):
        wh.read("quarantine", device_ids=["D1"])
