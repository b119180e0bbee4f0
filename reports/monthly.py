"""The monthly report: :func:`build_report` writes the workbook, the PDF, the HTML and the charts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from reports.data import ReportData, conform
from reports.excel import write_xlsx
from reports.html_report import write_html
from reports.pdf import write_pdf
from reports.sections import (
    Context,
    build_sections,
    generated_at,
    sources_table,
    summary_paragraph,
)

DISTRICT = "金水区"
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

#: progress callback: (step number, total steps, what is being done)
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ReportPaths:
    xlsx: Path
    pdf: Path
    html: Path
    charts: list[Path] = field(default_factory=list)
    summary: str = ""


def report_title(ctx: Context) -> str:
    return f"{DISTRICT}大气污染综合治理攻坚月报（{ctx.label}）"


def build_report(
    month: str,
    data: ReportData,
    out_dir: Path,
    *,
    as_of: date | None = None,
    progress: Progress | None = None,
) -> ReportPaths:
    """Write the report of ``month`` (``YYYY-MM``) from ``data`` into ``out_dir``.

    Deadlines not yet met are judged as of ``as_of`` (default: the month's last day), so the same
    data always gives the same report.
    """
    if not MONTH_PATTERN.match(month):
        raise ValueError(f"month must look like 2017-12, got {month!r}")
    ctx = Context.for_month(month, as_of)
    data = conform(data)
    out_dir = Path(out_dir)
    steps = 4  # after the sections: charts, xlsx, pdf, html

    def section_progress(step: int, total: int, label: str) -> None:
        if progress:
            progress(step, total + steps, label)

    sections = build_sections(data, ctx, section_progress)
    total = len(sections) + steps
    sources = sources_table(sections)
    summary = summary_paragraph(sections, ctx)
    title = report_title(ctx)
    subtitle = (
        f"统计期：{ctx.first.isoformat()} 至 {ctx.last.isoformat()}　生成时间：{generated_at()}"
    )
    stem = f"lantian-report-{month}"

    if progress:
        progress(total - 3, total, "图表")
    chart_dir = out_dir / "charts"
    chart_dir.mkdir(parents=True, exist_ok=True)
    chart_paths = []
    for section in sections:
        for chart in section.charts:
            path = chart_dir / f"{chart.name}.png"
            path.write_bytes(chart.png)
            chart_paths.append(path)

    if progress:
        progress(total - 2, total, "xlsx")
    caveats = [f"{s.title}：{n}" for s in sections if s.key == "quality" for n in s.notes]
    xlsx = write_xlsx(
        sections, sources, out_dir / f"{stem}.xlsx", title=title, notes=[summary, *caveats]
    )
    if progress:
        progress(total - 1, total, "pdf")
    pdf = write_pdf(
        sections, sources, out_dir / f"{stem}.pdf", title=title, subtitle=subtitle, summary=summary
    )
    if progress:
        progress(total, total, "html")
    html = write_html(
        sections, sources, out_dir / f"{stem}.html", title=title, subtitle=subtitle, summary=summary
    )
    return ReportPaths(xlsx=xlsx, pdf=pdf, html=html, charts=chart_paths, summary=summary)
