"""The whole report (xlsx, PDF, HTML, charts) from hand-built and empty data.

The PDF checks are the machine-checkable part of looking at it: the CJK font is embedded, every
character printed has a glyph in it (no tofu boxes), the text extracts back as Chinese, and the
pages render to PNG.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from openpyxl import load_workbook

from reports import fonts
from reports.data import ReportData
from reports.monthly import build_report
from reports.sections import Context, build_sections, sources_table, summary_paragraph


def all_text(sections) -> str:
    parts = []
    for section in sections:
        parts += [section.title, section.empty_reason or "", section.summary, *section.notes]
        for table in section.tables:
            parts += [table.title, table.empty_text, table.empty_block_title, *table.headers]
            parts += [str(v) for row in table.rows for v in row]
    table = sources_table(sections)
    parts += [str(v) for row in table.rows for v in row]
    return "".join(parts)


def test_every_character_of_the_report_has_a_glyph_in_the_font(hand_data):
    sections = build_sections(hand_data, Context.for_month("2017-10"))
    text = all_text(sections) + summary_paragraph(sections, Context.for_month("2017-10"))
    assert "超标" in text and "（第3期）" in text
    assert fonts.missing_glyphs(text) == set()


def test_full_report_from_hand_built_data(hand_data, tmp_path):
    steps = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = build_report(
            "2017-12", hand_data, tmp_path, progress=lambda i, n, label: steps.append((i, n, label))
        )
    glyph_warnings = [w for w in caught if "missing from font" in str(w.message)]
    assert glyph_warnings == []  # matplotlib found every glyph of every chart
    assert [s[0] for s in steps] == list(range(1, steps[0][1] + 1))  # every step reported, in order
    assert paths.xlsx.exists() and paths.pdf.exists() and paths.html.exists()
    assert {p.name for p in paths.charts} == {
        "stack_hourly_01.png",
        "aqi_calendar.png",
        "transmission.png",
    }
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths.charts)
    pdf = paths.pdf.read_bytes()
    assert pdf[:5] == b"%PDF-" and b"WenQuanYiMicroHei" in pdf and b"FontFile2" in pdf
    assert "3 个超标小时" in paths.summary
    html = paths.html.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3
    assert 'src="http' not in html and "<link" not in html  # self-contained
    assert "小时均值（折算，mg/m³）" in html and "郑州甲热力有限公司" in html
    wb = load_workbook(paths.xlsx)
    assert wb.sheetnames[0] == "超标情况" and wb.sheetnames[-1] == "说明"


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_text_extracts_as_chinese(hand_data, tmp_path):
    paths = build_report("2017-10", hand_data, tmp_path)
    text = subprocess.run(
        ["pdftotext", "-layout", str(paths.pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for expected in ("一、污染源在线监测超标情况", "二氧化硫", "郑州市突出问题督办企业名单（第3期）",
                     "县（区）", "整改（进展）情况", "2017-12-05 15:00-16:00"):  # fmt: skip
        assert expected in text, expected


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_pdf_pages_render_to_png(hand_data, tmp_path):
    paths = build_report("2017-12", hand_data, tmp_path)
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", str(paths.pdf), str(tmp_path / "page")], check=True
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    info = subprocess.run(["pdfinfo", str(paths.pdf)], capture_output=True, text=True).stdout
    n_pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert len(pages) == n_pages >= 5  # cover, exceedances, transmission, AQI, disclosure
    assert all(p.stat().st_size > 2000 for p in pages)


def test_empty_month_builds_every_output(tmp_path):
    paths = build_report("2018-02", ReportData(), tmp_path)
    assert paths.pdf.exists() and paths.html.exists() and paths.charts == []
    assert "本月无数据或无事项的部分" in paths.summary
    html = paths.html.read_text(encoding="utf-8")
    assert html.count("本月无：未取得该项数据") >= 15


def test_bad_month_is_refused(tmp_path):
    with pytest.raises(ValueError, match="2017-12"):
        build_report("2017-13", ReportData(), tmp_path)


def test_missing_font_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(fonts, "CANDIDATES", ((str(tmp_path / "none.ttc"), 0, "x"),))
    monkeypatch.setenv("LANTIAN_CJK_FONT", str(tmp_path / "also-none.ttf"))
    fonts.find_cjk_font.cache_clear()
    try:
        with pytest.raises(fonts.FontNotFoundError, match="apt-get install fonts-wqy-microhei"):
            fonts.find_cjk_font()
    finally:
        fonts.find_cjk_font.cache_clear()


def test_cff_fonts_are_not_taken(tmp_path):
    # a file that is not TrueType (here: not a font at all) is skipped, not embedded broken
    bogus = tmp_path / "fake.otf"
    bogus.write_bytes(b"OTTO" + b"\0" * 64)
    assert not fonts._usable_by_reportlab(Path(bogus), 0)
