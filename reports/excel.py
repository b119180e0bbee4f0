"""The report workbook (openpyxl): one sheet per table, header on row 1, a 说明 sheet last.

Annex tables follow the plan's printed layout instead: a title row (…名单（第X期）) above its header
row, one block per issue.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from reports.model import EXCEL_FORMATS, Section, Table

FONT_NAME = "宋体"
HEADER_FILL = PatternFill("solid", fgColor="DCE6F1")
TITLE_FONT = Font(name=FONT_NAME, bold=True, size=12)
HEADER_FONT = Font(name=FONT_NAME, bold=True, size=10)
BODY_FONT = Font(name=FONT_NAME, size=10)
EMPTY_FONT = Font(name=FONT_NAME, italic=True, color="808080", size=10)
THIN = Side(style="thin", color="A0A0A0")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="center")
CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
MIN_WIDTH, MAX_WIDTH = 6, 48
SHEET_NAME_MAX = 31  # Excel's limit


def text_width(text: str) -> int:
    """Display width in Excel character units: CJK and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _sheet_name(wanted: str, taken: set[str]) -> str:
    base = "".join(ch for ch in wanted if ch not in "[]:*?/\\")[:SHEET_NAME_MAX] or "表"
    name, n = base, 2
    while name in taken:
        suffix = f"({n})"
        name, n = base[: SHEET_NAME_MAX - len(suffix)] + suffix, n + 1
    taken.add(name)
    return name


def _cell_text(value: object, kind: str) -> str:
    if isinstance(value, float) and kind == "pct":
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _set_widths(ws: Worksheet, table: Table, sample: list[list[object]]) -> None:
    for idx, column in enumerate(table.columns, start=1):
        widest = text_width(column.header)
        for row in sample:
            if idx - 1 < len(row):
                widest = max(widest, text_width(_cell_text(row[idx - 1], column.kind)))
        ws.column_dimensions[get_column_letter(idx)].width = min(
            MAX_WIDTH, max(MIN_WIDTH, widest + 2)
        )


def _header_row(ws: Worksheet, row: int, headers: list[str]) -> None:
    for col, text in enumerate(headers, start=1):
        cell = ws.cell(row=row, column=col, value=text)
        cell.font, cell.fill, cell.alignment, cell.border = HEADER_FONT, HEADER_FILL, CENTER, BORDER


def _data_row(ws: Worksheet, row: int, values: list[object], table: Table) -> None:
    for col, (value, column) in enumerate(zip(values, table.columns, strict=False), start=1):
        cell = ws.cell(row=row, column=col, value=value)
        cell.font, cell.border = BODY_FONT, BORDER
        fmt = EXCEL_FORMATS.get(column.kind)
        if fmt and isinstance(value, int | float):
            cell.number_format = fmt
        else:
            cell.alignment = WRAP


def _empty_row(ws: Worksheet, row: int, table: Table) -> None:
    cell = ws.cell(row=row, column=1, value=table.empty_text or "本月无")
    cell.font = EMPTY_FONT
    if len(table.columns) > 1:
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=len(table.columns))


def write_table(ws: Worksheet, table: Table) -> None:
    """A plain table: header on row 1 (frozen, filtered), one row per record."""
    _header_row(ws, 1, table.headers)
    for offset, values in enumerate(table.rows, start=2):
        _data_row(ws, offset, values, table)
    if not table.rows:
        _empty_row(ws, 2, table)
    else:
        last = get_column_letter(len(table.columns))
        ws.auto_filter.ref = f"A1:{last}{len(table.rows) + 1}"
    ws.freeze_panes = "A2"
    ws.row_dimensions[1].height = 30
    _set_widths(ws, table, table.rows[:500])


def write_block_table(ws: Worksheet, table: Table) -> None:
    """An annex table: title row, header row, rows, per block; rows are already laid out."""
    n_cols = len(table.columns)
    if not table.rows:
        rows: list[list[object]] = [[table.empty_block_title or table.title], table.headers]
    else:
        rows = table.rows
    row_no = 0
    expect_header = False
    for values in rows:
        row_no += 1
        if len(values) == 1:  # a block title
            cell = ws.cell(row=row_no, column=1, value=values[0])
            cell.font, cell.alignment = TITLE_FONT, CENTER
            ws.merge_cells(start_row=row_no, start_column=1, end_row=row_no, end_column=n_cols)
            ws.row_dimensions[row_no].height = 24
            expect_header = True
        elif expect_header:
            _header_row(ws, row_no, [str(v) for v in values])
            expect_header = False
        else:
            _data_row(ws, row_no, values, table)
    if not table.rows:
        _empty_row(ws, row_no + 1, table)
    ws.freeze_panes = "A3"
    data_rows = [r for r in rows if len(r) == n_cols and r != table.headers]
    _set_widths(ws, table, data_rows[:500])


def write_xlsx(
    sections: list[Section], sources: Table, path: Path, *, title: str, notes: list[str]
) -> Path:
    """The workbook: every table of every section, then the 说明 sheet (sources and notes)."""
    wb = Workbook()
    wb.remove(wb.active)
    taken: set[str] = set()
    for section in sections:
        for table in section.tables:
            if not table.in_xlsx:
                continue
            ws = wb.create_sheet(_sheet_name(table.sheet or section.title, taken))
            if table.block_titles:
                write_block_table(ws, table)
            else:
                write_table(ws, table)
    ws = wb.create_sheet(_sheet_name(sources.sheet or "说明", taken))
    write_table(ws, sources)
    ws.auto_filter.ref = None
    row = len(sources.rows) + 3
    for line in [title, *notes]:
        cell = ws.cell(row=row, column=1, value=line)
        cell.font = BODY_FONT
        row += 1
    wb.properties.title = title
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path
