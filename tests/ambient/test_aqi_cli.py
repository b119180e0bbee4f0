"""`lantian aqi`: a CSV in, the same rows with AQI columns out; bad input exits 2 naming line and
column."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from enforcement.aqi_cli import main

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "in.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_daily_file_rows_kept_and_columns_appended(tmp_path):
    src = write(
        tmp_path,
        "station,day,PM25, pm10 ,no2,o3_8h\n"
        "S1,2017-12-01,35.1,40,20,60\n"
        "S2,2017-12-01,75,150,,\n"
        "S3,2017-12-01,,,,\n"
        "S4,2017-12-01,10,10,80.1,NA\n",
    )
    out = tmp_path / "out.csv"
    assert main([str(src), "--kind", "daily", "--out", str(out)]) == 0
    rows = read(out)
    assert list(rows[0]) == [
        "station", "day", "PM25", " pm10 ", "no2", "o3_8h",
        "aqi", "category", "primary_pollutants", "exceeding_pollutants",
    ]  # fmt: skip
    assert [r["station"] for r in rows] == ["S1", "S2", "S3", "S4"]
    assert rows[0]["PM25"] == "35.1"  # input text unchanged
    # S1: PM2.5 35.1 -> 51 (no 50/51 gap); S2: PM2.5 100 and PM10 100 tie; S3: nothing valid;
    # S4: NO2 80.1 on the 24-hour table -> 100.05 -> 101, exceeding
    assert [r["aqi"] for r in rows] == ["51", "100", "", "101"]
    assert [r["category"] for r in rows] == ["good", "good", "", "lightly polluted"]
    assert [r["primary_pollutants"] for r in rows] == ["PM2.5", "PM10;PM2.5", "", "NO2"]
    assert [r["exceeding_pollutants"] for r in rows] == ["", "", "", "NO2"]


def test_hourly_kind_uses_1_hour_tables(tmp_path):
    src = write(tmp_path, "so2,no2,co\n500,200,10\n900,,\n")
    out = tmp_path / "out.csv"
    assert main([str(src), "--kind", "hourly", "--out", str(out)]) == 0
    rows = read(out)
    # 1-hour SO2 500 / NO2 200 / CO 10 are all IAQI 100; SO2 900 -> 24-hour table 212.5 -> 213
    assert [r["aqi"] for r in rows] == ["100", "213"]
    assert rows[0]["primary_pollutants"] == "SO2;NO2;CO"
    assert main([str(src), "--kind", "daily", "--out", str(out)]) == 0
    # daily tables: SO2 500 -> 150 + 50/325 × 25 = 153.8 -> 154; NO2 200 -> 150 + 50/100 × 20
    # = 160; CO 10 -> 100 + 50/10 × 6 = 130: AQI 160, NO2 primary
    daily = read(out)[0]
    assert (daily["aqi"], daily["primary_pollutants"]) == ("160", "NO2")
    assert daily["exceeding_pollutants"] == "SO2;NO2;CO"


def test_excel_bom_and_stdout(tmp_path, capsys):
    src = write(tmp_path, "pm25\n55\n", encoding="utf-8-sig")
    assert main([str(src), "--kind", "daily"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "pm25,aqi,category,primary_pollutants,exceeding_pollutants"
    assert lines[1] == "55,75,good,PM2.5,"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pm25,no2\n12,3\n15,abc\n", "line 3, column 'no2': 'abc' is not a number"),
        ("pm25\n12\n-4\n", "line 3, column 'pm25': negative concentration -4"),
        ("pm25\n1e999\n", "line 2, column 'pm25': '1e999' is not finite"),
        ("station,day\nS1,2017-12-01\n", "no pollutant column"),
        ("", "not a readable CSV"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, text, message):
    src = write(tmp_path, text)
    out = tmp_path / "out.csv"
    assert main([str(src), "--kind", "daily", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_truncated_last_row_is_missing_not_an_error(tmp_path):
    # a file cut off mid-row: the absent fields are missing values
    src = write(tmp_path, "pm25,pm10\n40,50\n80")
    out = tmp_path / "out.csv"
    assert main([str(src), "--kind", "daily", "--out", str(out)]) == 0
    assert [r["aqi"] for r in read(out)] == ["57", "107"]


def test_usage_errors(tmp_path, capsys):
    src = write(tmp_path, "pm25\n1\n")
    assert main([str(src)]) == 2  # --kind is required
    assert main([str(src), "--kind", "daily", "--edition", "1999"]) == 2
    assert "unknown edition" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.csv"), "--kind", "daily"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_through_the_lantian_command(tmp_path):
    src = write(tmp_path, "pm25\n150.1\nx\n")
    good = write(tmp_path, "pm25\n150.1\n", name="good.csv")
    ok = subprocess.run(
        [sys.executable, "-m", "lantian.cli", "aqi", str(good), "--kind", "daily"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[1] == "150.1,201,heavily polluted,PM2.5,PM2.5"
    bad = subprocess.run(
        [sys.executable, "-m", "lantian.cli", "aqi", str(src), "--kind", "daily"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "line 3, column 'pm25'" in bad.stderr
