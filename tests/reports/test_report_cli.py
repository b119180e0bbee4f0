"""``lantian report`` against a real (SQLite) warehouse."""

from __future__ import annotations

import pandas as pd
from openpyxl import load_workbook

from enforcement.warehouse import Warehouse
from reports.cli import main
from reports.data import load_report_data


def make_warehouse(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    wh = Warehouse(url)
    wh.replace_all(
        "subdistricts", pd.DataFrame({"subdistrict_id": ["SD01"], "name": ["丰产路街道"]})
    )
    wh.replace_all(
        "enterprises",
        pd.DataFrame(
            {
                "enterprise_id": ["E1"],
                "name": ["郑州甲热力有限公司"],
                "subdistrict_id": ["SD01"],
                "industry": ["热力"],
            }
        ),
    )
    wh.replace_all(
        "stacks",
        pd.DataFrame(
            {"stack_id": ["S1"], "enterprise_id": ["E1"], "name": ["1号锅炉排口"], "height_m": ["60"],
             "fuel": ["gas"], "o2_ref_pct": ["3.5"], "device_id": ["D1"]}
        ),
    )  # fmt: skip
    rows = pd.DataFrame(
        {
            "exceedance_id": ["x1", "x2"],
            "stack_id": ["S1", "S1"],
            "enterprise_id": ["E1", "E1"],
            "pollutant": ["a21002", "a21002"],
            # 30 Nov 16:00 UTC is 1 Dec 00:00 Beijing: December's partition
            "hour_start": pd.to_datetime(["2017-11-30 16:00", "2017-12-31 15:00"], utc=True),
            "day": ["2017-12-01", "2017-12-31"],
            "hourly_mean": [45.0, 61.2],
            "limit_value": [30.0, 30.0],
            "limit_source": ["郑州市燃气锅炉低氮改造 30 mg/m³"] * 2,
            "n_readings": [47, 52],
            "reading_ids": [["a", "b"], ["c"]],
            "raw_sha256s": [["h1"], ["h2"]],
        }
    )
    for day, part in rows.groupby("day"):
        wh.replace("exceedances", part, day=day)
    # a row of November must not appear in December's report
    november = rows.iloc[[0]].assign(exceedance_id="x0", day="2017-11-30")
    wh.replace("exceedances", november, day="2017-11-30")
    return url


def test_load_report_data_reads_the_month_and_adds_registry_names(tmp_path):
    url = make_warehouse(tmp_path)
    data = load_report_data(Warehouse(url), "2017-12")
    frame = data.exceedances
    assert sorted(frame["exceedance_id"]) == ["x1", "x2"]
    assert set(frame["stack_name"]) == {"1号锅炉排口"}
    assert set(frame["enterprise_name"]) == {"郑州甲热力有限公司"}
    assert set(frame["subdistrict"]) == {"丰产路街道"}
    assert data.transmission is None  # no such table (yet): the report says so


def test_cli_writes_the_report_and_prints_paths_and_summary(tmp_path, capsys):
    url = make_warehouse(tmp_path)
    out = tmp_path / "out"
    assert main(["--month", "2017-12", "--out", str(out), "--warehouse", url]) == 0
    captured = capsys.readouterr()
    assert "xlsx:" in captured.out and "pdf:" in captured.out and "html:" in captured.out
    assert "1 家企业 1 个排口共出现 2 个超标小时（氮氧化物 2 小时）" in captured.out
    assert "[ 1/" in captured.err and "超标情况" in captured.err  # progress per section
    wb = load_workbook(out / "lantian-report-2017-12.xlsx")
    rows = list(wb["超标情况"].iter_rows(values_only=True))
    assert [r[3] for r in rows[1:]] == ["2017-12-01 00:00-01:00", "2017-12-31 23:00-24:00"]
    assert rows[1][:3] == ("郑州甲热力有限公司", "1号锅炉排口", "氮氧化物")


def test_cli_refuses_a_missing_warehouse_and_a_bad_month(tmp_path, capsys):
    missing = f"sqlite:///{tmp_path / 'nothing.sqlite'}"
    assert main(["--month", "2017-12", "--out", str(tmp_path), "--warehouse", missing]) == 2
    assert "no warehouse" in capsys.readouterr().err
    url = make_warehouse(tmp_path)
    assert main(["--month", "2017/12", "--out", str(tmp_path), "--warehouse", url]) == 2
