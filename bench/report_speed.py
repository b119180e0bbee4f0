"""Monthly report generation for a whole simulated district-month, against writing CSV.

The data is :func:`reports.synthetic.synthetic_report_data`: 40 stacks with hourly means of three
pollutants for the month (about 89 000 rows), 300 micro-stations, 17 subdistricts, 100 gas stations
with 8 nozzles (24 800 nozzle-days), remote sensing, sampling and disclosure findings.

Target: the whole report (sections, charts, xlsx, PDF, HTML) within 2 minutes. Baseline, in the
same run: the same frames written to CSV with pandas — the cheapest way to hand the numbers over,
so the ratio says what the bureau's layouts, charts and PDF cost on top of the data itself.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

TARGET_S = 120.0
MONTH = "2017-12"


def _csv_baseline(data, folder: Path) -> float:
    from reports.data import ReportData

    started = time.perf_counter()
    for name in ReportData.field_names():
        frame = getattr(data, name)
        if frame is not None:
            frame.to_csv(folder / f"{name}.csv", index=False)
    return time.perf_counter() - started


def run() -> list[dict]:
    from reports.monthly import build_report
    from reports.synthetic import synthetic_report_data

    data = synthetic_report_data(MONTH)
    with tempfile.TemporaryDirectory(prefix="lantian-bench-report-") as tmp:
        folder = Path(tmp)
        baseline = _csv_baseline(data, folder)
        started = time.perf_counter()
        paths = build_report(MONTH, data, folder / "report")
        elapsed = time.perf_counter() - started
        n_charts = len(paths.charts)
    rows = sum(len(getattr(data, n)) for n in data.field_names() if getattr(data, n) is not None)
    return [
        {
            "name": f"report_month_full_district ({rows} rows in, {n_charts} charts, xlsx+pdf+html)",
            "value": round(elapsed, 2),
            "unit": "s",
            "baseline": round(baseline, 3),
            "ratio": round(elapsed / baseline, 1) if baseline > 0 else None,
            "target": TARGET_S,
            "met": elapsed <= TARGET_S,
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
