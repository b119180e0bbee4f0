from __future__ import annotations

import pandas as pd
import pytest

from enforcement.warehouse import Warehouse, month_bounds


@pytest.fixture
def wh(tmp_path):
    return Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")


def hourly(day: str, n: int, value: float) -> pd.DataFrame:
    hours = pd.date_range(f"{day}T00:00", periods=n, freq="h", tz="Asia/Shanghai").tz_convert("UTC")
    return pd.DataFrame(
        {
            "stack_id": "S1",
            "pollutant": "a21026",
            "hour_start": hours,
            "day": day,
            "n_valid_minutes": 60,
            "mean_corrected": value,
            "valid": True,
            "reading_ids": [["r1", "r2"]] * n,
        }
    )


def test_replace_partition_is_idempotent(wh):
    wh.replace("cems_hourly", hourly("2017-12-01", 24, 1.0), day="2017-12-01")
    wh.replace("cems_hourly", hourly("2017-12-02", 24, 2.0), day="2017-12-02")
    wh.replace("cems_hourly", hourly("2017-12-01", 24, 3.0), day="2017-12-01")
    assert wh.count("cems_hourly") == 48
    back = wh.read("cems_hourly", day="2017-12-01")
    assert set(back["mean_corrected"]) == {3.0}
    assert back["reading_ids"].iloc[0] == ["r1", "r2"]
    assert str(back["hour_start"].dt.tz) == "UTC"
    assert back["hour_start"].min() == pd.Timestamp("2017-11-30T16:00", tz="UTC")


def test_month_read_and_bounds(wh):
    assert month_bounds("2017-12") == ("2017-12-01", "2018-01-01")
    wh.replace("cems_hourly", hourly("2017-11-30", 2, 1.0), day="2017-11-30")
    wh.replace("cems_hourly", hourly("2017-12-31", 2, 1.0), day="2017-12-31")
    assert len(wh.read("cems_hourly", month="2017-12")) == 2


def test_missing_required_column_is_named(wh):
    frame = hourly("2017-12-01", 1, 1.0).drop(columns=["pollutant"])
    with pytest.raises(ValueError, match="pollutant"):
        wh.replace("cems_hourly", frame, day="2017-12-01")
    assert wh.count("cems_hourly") == 0


def test_registry_load(wh, tmp_path):
    folder = tmp_path / "reg"
    folder.mkdir()
    (folder / "stacks.csv").write_text(
        "stack_id,enterprise_id,name,height_m,fuel,o2_ref_pct,device_id\nS1,E1,1号排口,60,coal,9,D1\n",
        encoding="utf-8",
    )
    assert wh.load_registry(folder) == {"stacks": 1}
    assert wh.read("stacks")["name"].tolist() == ["1号排口"]


def test_derived_figures_round_trip_with_types(wh):
    frame = pd.DataFrame(
        {
            "subdistrict_id": ["SD01", "SD02"],
            "pm25": [80.5, float("nan")],
            "rank": [1, 2],
            "bottom_two": [False, True],
            "week_start": pd.to_datetime(["2017-12-04", "2017-12-04"]),
            "at": pd.to_datetime(["2017-12-04T01:00Z", "2017-12-05T01:00Z"]),
            "reading_ids": [["a"], ["b", "c"]],
        }
    )
    assert wh.replace_derived("weekly_ranking", "2017-12", frame) == 2
    assert wh.replace_derived("weekly_ranking", "2017-12", frame) == 2
    back = wh.read_derived("weekly_ranking", "2017-12")
    assert back["pm25"].iloc[0] == 80.5 and pd.isna(back["pm25"].iloc[1])
    assert back["rank"].dtype == "int64" and back["bottom_two"].tolist() == [False, True]
    assert back["at"].iloc[0] == pd.Timestamp("2017-12-04T01:00", tz="UTC")
    assert back["week_start"].iloc[0] == pd.Timestamp("2017-12-04")
    assert back["reading_ids"].iloc[1] == ["b", "c"]
    assert wh.read_derived("weekly_ranking", "2017-11") is None
    assert wh.derived_names("2017-12") == ["weekly_ranking"]
    wh.replace_derived("weekly_ranking", "2017-12", frame.iloc[:0])
    assert len(wh.read_derived("weekly_ranking", "2017-12")) == 0


def test_daily_derived_parts_add_up_to_the_month(wh):
    for day, value in (("2017-12-01", 1.0), ("2017-12-02", 2.0), ("2018-01-01", 9.0)):
        wh.replace_derived("ambient_hourly", day, pd.DataFrame({"day": [day], "pm25": [value]}))
    wh.replace_derived(
        "ambient_hourly", "2017-12-02", pd.DataFrame({"day": ["2017-12-02"], "pm25": [3.0]})
    )
    month = wh.read_derived("ambient_hourly", "2017-12")
    assert month["pm25"].tolist() == [1.0, 3.0]
    assert wh.read_derived("ambient_hourly", "2017-12-02")["pm25"].tolist() == [3.0]
