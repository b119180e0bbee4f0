"""The report's content, independent of the output format: sections of tables, charts and notes.

Builders (``reports.sections``) turn :class:`~reports.data.ReportData` into :class:`Section` objects;
writers (``reports.excel``, ``reports.pdf``, ``reports.html_report``) only lay them out, so the
three outputs always carry the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone

import pandas as pd

from reports import headers, vocabulary

BEIJING = timezone(timedelta(hours=8))

#: display kinds -> Excel number format
EXCEL_FORMATS = {
    "int": "0",
    "float1": "0.0",
    "float2": "0.00",
    "float3": "0.000",
    "pct": "0.0%",
}


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str
    in_print: bool = True  # False: workbook only (an original beside its translation, sub-indices)


@dataclass
class Table:
    """Rows in display form: numbers stay numbers (Excel formats them), the rest is text."""

    columns: list[Column]
    rows: list[list[object]]
    title: str = ""
    sheet: str = ""
    note: str = ""  # shown under the table (e.g. "PDF shows the first N rows")
    empty_text: str = ""  # shown instead of rows when there are none
    block_titles: bool = False  # annex tables: a title row above each block
    empty_block_title: str = ""  # annex tables: the title printed above an empty table
    in_print: bool = True  # False: xlsx only (evidence lists too long for PDF and HTML)
    in_xlsx: bool = True  # False: PDF and HTML only (a printable digest of an xlsx table)

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def printed(self) -> Table:
        """The table as PDF and HTML print it: without its workbook-only columns."""
        keep = [i for i, c in enumerate(self.columns) if c.in_print]
        if len(keep) == len(self.columns):
            return self
        columns = [self.columns[i] for i in keep]
        # block tables carry title rows of one cell; they have no workbook-only columns
        rows = [[row[i] for i in keep if i < len(row)] for row in self.rows]
        return replace(self, columns=columns, rows=rows)


@dataclass
class Chart:
    name: str  # file stem
    title: str
    png: bytes = b""


@dataclass(frozen=True)
class SourceRef:
    item: str
    value: str
    file: str
    source: str
    mark: str


@dataclass
class Section:
    key: str
    title: str
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    empty_reason: str | None = None  # set: the section has nothing this month, and why
    sources: list[SourceRef] = field(default_factory=list)
    summary: str = ""  # one sentence for the report's opening paragraph

    @property
    def is_empty(self) -> bool:
        return self.empty_reason is not None

    def summarise(self, sentence: str) -> None:
        """The section's sentence: it opens the report and is the section's first note."""
        self.summary = sentence
        self.notes.append(sentence)


# -- values -------------------------------------------------------------------------------------


def infer_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if series.dtype == object:
        present = series.dropna()
        # True/False read back from the derived store as objects are still yes/no
        if len(present) and all(isinstance(v, bool) for v in present):
            return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float2"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def columns_for(frame: pd.DataFrame, keys: list[str]) -> list[Column]:
    out = []
    for key in keys:
        kind = headers.kind(key) or infer_kind(frame[key])
        out.append(Column(key, headers.header(key), kind))
    return out


def pick_columns(
    frame: pd.DataFrame, preferred: list[str], *, extras: bool = True, drop: tuple = ()
) -> list[str]:
    """``preferred`` columns the frame has, in that order, then (optionally) its other columns."""
    keys = [c for c in preferred if c in frame.columns]
    if extras:
        skip = set(keys) | headers.HIDDEN | set(drop) | {"reading_ids", "raw_sha256s"}
        keys += [c for c in frame.columns if c not in skip]
    return keys


def is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def to_beijing(value: object) -> datetime | None:
    """An instant as Beijing time; a naive value is taken as UTC (the warehouse stores UTC)."""
    if is_missing(value):
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert(BEIJING).to_pydatetime()


def to_date(value: object) -> date | None:
    if is_missing(value) or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return pd.Timestamp(str(value)).date()
    except ValueError:
        return None


def display(value: object, kind: str) -> object:
    """One cell in display form: numbers as float/int, everything else as text ('' if missing)."""
    if isinstance(value, list | tuple | set):
        return "; ".join(str(v) for v in value)
    if is_missing(value):
        return ""
    if kind == "int":
        try:
            return int(round(float(value)))
        except (TypeError, ValueError):
            return str(value)
    if kind in EXCEL_FORMATS:
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    if kind == "bool":
        return _bool_text(value)
    if kind == "date":
        day = to_date(value)
        return day.isoformat() if day else str(value)
    if kind == "datetime":
        if isinstance(value, str):
            try:
                value = pd.Timestamp(value)
            except ValueError:
                return value
        moment = to_beijing(value)
        return moment.strftime("%Y-%m-%d %H:%M") if moment else ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bool_text(value: object) -> str:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "y", "是"):
            return "是"
        if lowered in ("false", "0", "no", "n", "否"):
            return "否"
        return value
    return "是" if bool(value) else "否"


def make_table(
    frame: pd.DataFrame,
    keys: list[str],
    *,
    title: str = "",
    sheet: str = "",
    empty_text: str = "",
) -> Table:
    """Rows of ``keys`` in display form, their codes and sentences in Chinese
    (:mod:`reports.vocabulary`). A sentence column some of whose values could not be translated
    exactly keeps the originals beside it, in the workbook only."""
    kinds = {key: headers.kind(key) or infer_kind(frame[key]) for key in keys}
    frame, inexact = vocabulary.localise(frame, keys)
    columns = [Column(key, headers.header(key), kinds[key]) for key in keys]
    for key in inexact:
        at = keys.index(key) + 1
        original = key + vocabulary.ORIGINAL_SUFFIX
        keys = [*keys[:at], original, *keys[at:]]
        column = Column(original, f"{headers.header(key)}（原文）", "text", in_print=False)
        columns.insert(at, column)
    rows = [
        [display(value, col.kind) for value, col in zip(record, columns, strict=True)]
        for record in frame[keys].itertuples(index=False, name=None)
    ]
    return Table(columns, rows, title=title, sheet=sheet, empty_text=empty_text)


def format_number(value: object, kind: str) -> str:
    """A display value as the text PDF and HTML print (Excel keeps the number)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "是" if value else "否"
    if kind == "pct" and isinstance(value, int | float):
        return f"{value * 100:.1f}%"
    if kind == "int" and isinstance(value, int | float):
        return f"{int(value)}"
    if kind in ("float1", "float2", "float3") and isinstance(value, int | float):
        return f"{value:.{kind[-1]}f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
