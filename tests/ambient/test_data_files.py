"""The ambient rules are data: every number has a source and a mark, and a new edition of the
standards is added as data only (no code change)."""

from __future__ import annotations

import csv
import shutil
import tomllib

import pandas as pd
import pytest

import schemas.ambient as ambient
from enforcement.aqi import compute_aqi, daily_from_hourly, iaqi
from schemas.reading import BEIJING

MARKS = {"std", "impl", "plan", "config"}
CSV_FILES = ["aqi_breakpoints.csv", "aqi_categories.csv", "ambient_codes.csv"]
TOML_FILES = [
    "aqi_rules.toml",
    "ambient_validity.toml",
    "ambient_targets.toml",
    "alert_levels.toml",
]


def _entries(node):
    """Every table holding a ``value`` (or a level's cuts) in a TOML document."""
    if isinstance(node, dict):
        if "value" in node or "cuts" in node:
            yield node
        else:
            for child in node.values():
                yield from _entries(child)


@pytest.mark.parametrize("name", CSV_FILES)
def test_csv_rows_have_source_and_mark(name):
    with open(ambient.DATA_DIR / name, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    for row in rows:
        assert row["source"].strip() and row["mark"] in MARKS, row


@pytest.mark.parametrize("name", TOML_FILES)
def test_toml_values_have_source_and_mark(name):
    with open(ambient.DATA_DIR / name, "rb") as handle:
        doc = tomllib.load(handle)
    entries = list(_entries(doc))
    assert entries
    for entry in entries:
        assert entry["source"].strip() and entry["mark"] in MARKS, entry
        if "cuts" in entry:
            assert entry["cuts_mark"] == "plan" and "35(3)" in entry["cuts_source"]


def test_loaders_read_the_documented_numbers():
    assert ambient.validity("hour_min_minutes") == 45
    assert ambient.validity("day_min_hours") == 20
    assert ambient.validity("o3_8h_min_hours") == 6
    assert ambient.validity("o3_max8h_min_means") == 14
    assert ambient.validity("month_min_days") == 27
    assert ambient.validity("month_min_days_february") == 25
    rules = ambient.alert_rules()
    assert (rules.lift_aqi_at_most, rules.lift_hours, rules.early_start_horizon_hours) == (
        150,
        36,
        12,
    )
    assert [lv.name for lv in rules.levels] == ["blue", "yellow", "orange", "red"]
    assert ambient.target("campaign.pm25_reduction_min") == 0.20
    assert ambient.target("campaign.heavy_days_reduction_min") == 0.15
    assert ambient.ambient_codes()["a34004"] == "pm25"
    with pytest.raises(KeyError, match="no target"):
        ambient.target("campaign.nothing")


def _clear_caches():
    for name in (
        "aqi_editions",
        "aqi_breakpoints",
        "aqi_categories",
        "aqi_rules",
        "ambient_validity",
        "ambient_codes",
        "ambient_targets",
        "alert_rules",
    ):
        getattr(ambient, name).cache_clear()


@pytest.fixture
def data_with_new_edition(tmp_path, monkeypatch):
    """A copy of schemas/data with a made-up edition "2099": PM2.5 50 -> IAQI 100 and a daily
    mean needing 18 hours, to prove that the edition is only data."""
    data = tmp_path / "data"
    shutil.copytree(ambient.DATA_DIR, data)
    with open(data / "aqi_breakpoints.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    extra = []
    for row in rows:
        if row["edition"] == "2012":
            new = dict(row, edition="2099", source="test edition", mark="config")
            if row["kind"] == "pm25_24h" and row["iaqi"] == "100":
                new["concentration"] = "50"
            extra.append(new)
    with open(data / "aqi_breakpoints.csv", "a", encoding="utf-8", newline="") as handle:
        csv.DictWriter(handle, fieldnames=list(rows[0])).writerows(extra)
    with open(data / "aqi_categories.csv", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    with open(data / "aqi_categories.csv", "a", encoding="utf-8") as handle:
        handle.write("\n".join(line.replace("2012,", "2099,", 1) for line in lines[1:]) + "\n")
    for name, swap in (("aqi_rules.toml", None), ("ambient_validity.toml", ("= 20\n", "= 18\n"))):
        text = (data / name).read_text(encoding="utf-8")
        body = text[text.index('[editions."2012') :].split("\n[pollutants]")[0]
        body = body.replace('editions."2012"', 'editions."2099"')
        if swap:
            start = body.index('[editions."2099".day_min_hours]')
            head, tail = body[:start], body[start:]
            body = head + tail.replace(*swap, 1)
        (data / name).write_text(text + "\n" + body + "\n", encoding="utf-8")
    monkeypatch.setattr(ambient, "DATA_DIR", data)
    _clear_caches()
    yield
    monkeypatch.undo()
    _clear_caches()


def test_a_new_edition_is_data_only(data_with_new_edition):
    assert ambient.aqi_editions() == ("2012", "2099")
    # PM2.5 50: 2012 -> 50 + 50/40 × 15 = 68.75 -> 69; 2099 table puts 50 at IAQI 100
    assert iaqi("pm25_24h", 50) == 69
    assert iaqi("pm25_24h", 50, edition="2099") == 100
    frame = pd.DataFrame({"pm25": [50.0]})
    assert compute_aqi(frame, "daily", edition="2099")["aqi"].iloc[0] == 100
    hours = pd.DataFrame(
        {
            "device_id": "D",
            "hour_end": pd.date_range("2017-12-01 01:00", periods=24, freq="h", tz=BEIJING),
            "pm25": [30.0] * 18 + [float("nan")] * 6,
        }
    )
    assert pd.isna(daily_from_hourly(hours)["pm25"].iloc[0])  # 18 hours: too few in 2012
    assert daily_from_hourly(hours, edition="2099")["pm25"].iloc[0] == 30.0
