"""The report as PDF (reportlab platypus, A4 landscape, the CJK TrueType font embedded).

Column widths come from the text they hold, scaled to the page; text cells wrap anywhere (CJK
wrapping), numbers never wrap. Tables longer than :data:`MAX_ROWS` print their first rows and say
that the workbook has the rest.
"""

from __future__ import annotations

import io
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as RLTable

from reports.fonts import register_pdf_font
from reports.model import Chart, Section, Table, format_number

MAX_ROWS = 200
PAGE = landscape(A4)
MARGIN = 12 * mm
BODY_SIZE = 9.5
CELL_SIZE = 7.5
CELL_PAD = 3
EMPTY_SECTION_SPACE = 60 * mm  # room an empty section needs before it shares a page
KEEP_ROWS = 8  # rows kept on the same page as a table's title
ROW_HEIGHT_ESTIMATE = CELL_SIZE * 1.3 + 5  # one line of text plus padding, in points
# a chart this high still fits under a section heading and two lines of notes
CHART_MAX_HEIGHT = 135 * mm
NUMERIC = {"int", "float1", "float2", "float3", "pct"}
# text no wider than this (dates, ids, hour labels) keeps its width: breaking "2017-12-01" or an
# hour label inside a token makes it unreadable, while long text wraps at any character
NOWRAP_MAX = 110


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=font, fontSize=BODY_SIZE, leading=BODY_SIZE * 1.5)
    base.wordWrap = "CJK"
    return {
        "title": ParagraphStyle(
            "title", parent=base, fontSize=20, leading=28, alignment=TA_CENTER, spaceAfter=8
        ),
        "subtitle": ParagraphStyle("subtitle", parent=base, alignment=TA_CENTER, spaceAfter=14),
        "h1": ParagraphStyle(
            "h1", parent=base, fontSize=14, leading=20, spaceBefore=6, spaceAfter=6
        ),
        "h2": ParagraphStyle("h2", parent=base, fontSize=11, leading=16, spaceBefore=6),
        "body": base,
        "empty": ParagraphStyle("empty", parent=base, textColor=colors.HexColor("#666666")),
        "cell": ParagraphStyle("cell", parent=base, fontSize=CELL_SIZE, leading=CELL_SIZE * 1.3),
        "head": ParagraphStyle(
            "head", parent=base, fontSize=CELL_SIZE, leading=CELL_SIZE * 1.3, alignment=TA_CENTER
        ),
        "block": ParagraphStyle(
            "block",
            parent=base,
            fontSize=11,
            leading=16,
            alignment=TA_CENTER,
            spaceBefore=4,
            keepWithNext=1,
        ),
    }


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def column_widths(
    headers: list[str], rows: list[list[str]], numeric: list[bool], font: str, available: float
) -> list[float]:
    """Widths that fit ``available``: numbers get their full width, text shares what is left."""
    pad = 2 * CELL_PAD + 2

    def width(text: str) -> float:
        return stringWidth(text, font, CELL_SIZE) + pad

    natural, minimum = [], []
    for i, head in enumerate(headers):
        cells = [r[i] for r in rows[:300] if i < len(r)]
        widest_cell = max((width(c) for c in cells), default=pad)
        # a header wraps onto at most three lines; a text cell may wrap freely
        head_min = width(head) / 3
        natural.append(max(widest_cell, width(head)))
        if numeric[i] or widest_cell <= NOWRAP_MAX:
            minimum.append(max(widest_cell, head_min, width("0000")))
        else:
            minimum.append(max(head_min, width("中文字")))
    total = sum(natural)
    if total <= available:
        return natural
    fixed = sum(minimum)
    if fixed >= available:
        return [available * m / fixed for m in minimum]
    # shrink every column toward its minimum in proportion to its slack
    slack = [n - m for n, m in zip(natural, minimum, strict=True)]
    factor = (available - fixed) / sum(slack)
    return [m + s * factor for m, s in zip(minimum, slack, strict=True)]


def _table_flowable(
    headers: list[str],
    rows: list[list[str]],
    numeric: list[bool],
    font: str,
    st: dict,
    align: str = "LEFT",
) -> RLTable:
    available = PAGE[0] - 2 * MARGIN
    widths = column_widths(headers, rows, numeric, font, available)
    data = [[Paragraph(_esc(h), st["head"]) for h in headers]]
    for row in rows:
        cells = []
        for text, is_num in zip(row, numeric, strict=False):
            cells.append(text if is_num else Paragraph(_esc(text), st["cell"]))
        data.append(cells)
    table = RLTable(data, colWidths=widths, repeatRows=1, hAlign=align)
    style = [
        ("FONT", (0, 0), (-1, -1), font, CELL_SIZE),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#A0A0A0")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DCE6F1")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    for i, is_num in enumerate(numeric):
        if is_num:
            style.append(("ALIGN", (i, 1), (i, -1), "RIGHT"))
    for r in range(2, len(data), 2):
        style.append(("BACKGROUND", (0, r), (-1, r), colors.HexColor("#F5F7FA")))
    table.setStyle(TableStyle(style))
    return table


def _chart_flowable(chart: Chart, max_height: float) -> Image:
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(chart.png)) as img:
        w_px, h_px = img.size
    available = PAGE[0] - 2 * MARGIN
    width = available * 0.92
    height = width * h_px / w_px
    if height > max_height:
        height, width = max_height, max_height * w_px / h_px
    return Image(io.BytesIO(chart.png), width=width, height=height)


def _text_rows(table: Table, rows: list[list[object]]) -> list[list[str]]:
    return [
        [format_number(v, c.kind) for v, c in zip(row, table.columns, strict=False)] for row in rows
    ]


def table_flowables(table: Table, font: str, st: dict) -> list:
    table = table.printed()
    title = [Paragraph(_esc(table.title), st["h2"])] if table.title else []
    if table.block_titles:
        return title + _block_flowables(table, font, st)
    if not table.rows:
        return [KeepTogether([*title, Paragraph(_esc(table.empty_text or "本月无"), st["empty"])])]
    numeric = [c.kind in NUMERIC for c in table.columns]
    rows = _text_rows(table, table.rows[:MAX_ROWS])
    # A title must not end a page: start a new one unless the title, the header and the first
    # rows fit (one table, so the columns keep one width and the header repeats only on new pages).
    head_height = 20 + (min(len(rows), KEEP_ROWS) + 1) * ROW_HEIGHT_ESTIMATE
    flowable = _table_flowable(table.headers, rows, numeric, font, st)
    # the estimate misses wrapped headers and cells: a short table moves with its title whole
    if len(rows) <= KEEP_ROWS:
        return [KeepTogether([*title, flowable])]
    out: list = [CondPageBreak(head_height), *title, flowable]
    if len(table.rows) > MAX_ROWS:
        out.append(
            Paragraph(
                f"（共 {len(table.rows)} 行，此处列出前 {MAX_ROWS} 行；"
                f"完整数据见 xlsx “{_esc(table.sheet)}”表。）",
                st["empty"],
            )
        )
    return out


def _block_flowables(table: Table, font: str, st: dict) -> list:
    """Annex tables: each block as its own titled table, as the plan prints them."""
    numeric = [False] * len(table.columns)
    if not table.rows:
        return [Paragraph(_esc(table.empty_text or "本月无"), st["empty"])]
    out: list = []
    title, body = None, []
    for values in [*table.rows, None]:
        if values is None or len(values) == 1:
            if title is not None:
                rows = [[str(v) for v in r] for r in body[1:]]  # body[0] is the header row
                out.append(Paragraph(_esc(title), st["block"]))
                out.append(_table_flowable(table.headers, rows, numeric, font, st, "CENTER"))
            if values is not None:
                title, body = str(values[0]), []
        else:
            body.append(values)
    return out


def _footer(title: str, font: str):
    def draw(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(MARGIN, 7 * mm, title)
        canvas.drawRightString(PAGE[0] - MARGIN, 7 * mm, f"第 {doc.page} 页")
        canvas.restoreState()

    return draw


def write_pdf(
    sections: list[Section],
    sources: Table,
    path: Path,
    *,
    title: str,
    subtitle: str,
    summary: str,
) -> Path:
    font = register_pdf_font()
    st = _styles(font)
    story: list = [
        Paragraph(_esc(title), st["title"]),
        Paragraph(_esc(subtitle), st["subtitle"]),
        Paragraph("概述", st["h1"]),
        Paragraph(_esc(summary), st["body"]),
        Spacer(1, 6 * mm),
        Paragraph("目录", st["h1"]),
    ]
    story += [Paragraph(_esc(s.title), st["body"]) for s in sections]
    chart_height = CHART_MAX_HEIGHT
    for section in sections:
        # a section with content starts a page; empty ones follow each other on shared pages
        story.append(CondPageBreak(EMPTY_SECTION_SPACE) if section.is_empty else PageBreak())
        story.append(Paragraph(_esc(section.title), st["h1"]))
        if section.is_empty and not section.tables:
            story.append(Paragraph(_esc(section.empty_reason or "本月无"), st["empty"]))
        for note in section.notes:
            story.append(Paragraph(_esc(note), st["body"]))
        for chart in section.charts:
            story.append(Spacer(1, 3 * mm))
            story.append(KeepTogether([_chart_flowable(chart, chart_height)]))
        printed_sheets = {t.sheet for t in section.tables if t.in_print}
        for table in section.tables:
            if not table.in_print and table.sheet in printed_sheets:
                continue  # its printable digest is in the section
            if not table.in_print:
                story.append(Spacer(1, 2 * mm))
                story.append(
                    Paragraph(
                        f"{_esc(table.title)}：见 xlsx “{_esc(table.sheet)}”表。", st["empty"]
                    )
                )
                continue
            story.append(Spacer(1, 2 * mm))
            story += table_flowables(table, font, st)
    story.append(PageBreak())
    story.append(Paragraph("附：数据来源与依据", st["h1"]))
    story += table_flowables(sources, font, st)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = SimpleDocTemplate(
        str(path),
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=title,
        author="Lantian",
    )
    footer = _footer(title, font)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return path
