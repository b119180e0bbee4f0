"""Public disclosure of inspection findings: the plan's annex tables and their deadlines.

The plan (信息公开方案 二(二)) sets two clocks per finding:

- the issue list is published within **2 working days** of the day the ministry published the issue
  (``found_date``), counted on the Chinese working calendar (holidays and make-up working days);
- the investigation, rectification plan and progress are published within **15 days** of the
  supervision letter (``letter_date``). The plan writes 日 there and 工作日 in the line before, so
  these are calendar days; a period ending on a rest day ends on the next working day (民法总则
  art. 203). Both numbers and both choices are data in ``schemas/data/report_layouts.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from reports.layouts import Annex, Deadline, annexes, deadlines, disclosure_defaults, list_names
from reports.model import is_missing, to_date
from schemas.calendar_cn import CalendarCoverageError, add_calendar_days, add_workdays

ON_TIME = "按时"
NOT_DUE = "未到期"
OVERDUE_UNPUBLISHED = "逾期未公开"
NO_START = "无起算日期"
NO_CALENDAR = "日历未覆盖"


def deadline_for(start: date, rule: Deadline) -> date:
    """The last day of a period that starts the day after ``start``."""
    if rule.unit == "working_days":
        return add_workdays(start, rule.value)
    if rule.unit == "calendar_days":
        return add_calendar_days(start, rule.value, roll_to_workday=rule.roll_to_workday)
    raise ValueError(f"deadline {rule.name!r}: unknown unit {rule.unit!r}")


@dataclass(frozen=True)
class DeadlineCheck:
    deadline: date | None
    status: str
    met: bool | None  # None: not decidable yet (not due) or no start date


def check_deadline(
    start: date | None, published: date | None, rule: Deadline, as_of: date
) -> DeadlineCheck:
    """Whether a publication met its deadline, judged on ``as_of`` when it has not happened."""
    if start is None:
        return DeadlineCheck(None, NO_START, None)
    try:
        due = deadline_for(start, rule)
    except CalendarCoverageError:
        return DeadlineCheck(None, NO_CALENDAR, None)
    if published is not None:
        if published <= due:
            return DeadlineCheck(due, ON_TIME, True)
        return DeadlineCheck(due, f"逾期{(published - due).days}日", False)
    if as_of > due:
        return DeadlineCheck(due, OVERDUE_UNPUBLISHED, False)
    return DeadlineCheck(due, NOT_DUE, None)


def normalise(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings with ``list_kind`` as a key, 市/县(区) filled in, dates as ``date`` objects."""
    out = findings.copy()
    names = list_names()
    by_name = {name: key for key, name in names.items()}
    if "list_kind" not in out.columns:
        out["list_kind"] = ""
    out["list_kind"] = out["list_kind"].map(lambda v: by_name.get(str(v), str(v)).strip())
    defaults = disclosure_defaults()
    for column in ("city", "county"):
        if column not in out.columns:
            out[column] = defaults[column]
        out[column] = out[column].map(lambda v, d=defaults[column]: d if _blank(v) else v)
    for column in ("found_date", "published_date", "letter_date", "progress_published_date"):
        if column not in out.columns:
            out[column] = None
        out[column] = out[column].map(to_date).astype(object)
    if "issue_no" not in out.columns:
        out["issue_no"] = ""
    out["issue_no"] = out["issue_no"].map(lambda v: "" if _blank(v) else _issue_text(v))
    return out


def _blank(value: object) -> bool:
    return is_missing(value) or (isinstance(value, str) and not value.strip())


def _issue_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def relevant_to_month(findings: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """Findings with any of their dates, or a still-open deadline, inside the month.

    A finding from November whose progress is due in December belongs to December's report.
    """
    if findings.empty:
        return findings
    checks = deadline_table(findings, as_of=last)
    date_cols = ["found_date", "published_date", "letter_date", "progress_published_date"]
    dates = pd.concat(
        [findings[date_cols], checks[["list_deadline", "progress_deadline"]]], axis=1
    ).to_numpy()

    def inside(row: object) -> bool:
        return any(d is not None and not is_missing(d) and first <= d <= last for d in row)

    open_items = checks["list_status"].isin([NOT_DUE, OVERDUE_UNPUBLISHED]) | checks[
        "progress_status"
    ].isin([NOT_DUE, OVERDUE_UNPUBLISHED])
    mask = [inside(row) for row in dates]
    return findings[pd.Series(mask, index=findings.index) | open_items.to_numpy()]


def deadline_table(findings: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """One row per finding: both deadlines, the publication dates and whether each was met."""
    rules = deadlines()
    list_rule, progress_rule = rules["list_publication"], rules["progress_publication"]
    names = list_names()
    rows = []
    for rec in findings.to_dict(orient="records"):
        listed = check_deadline(
            rec.get(list_rule.counted_from), rec.get("published_date"), list_rule, as_of
        )
        progress = check_deadline(
            rec.get(progress_rule.counted_from),
            rec.get("progress_published_date"),
            progress_rule,
            as_of,
        )
        rows.append(
            {
                "list_name": names.get(rec["list_kind"], rec["list_kind"]),
                "issue_no": rec.get("issue_no", ""),
                "source_name": _source_label(rec),
                "found_date": rec.get("found_date"),
                "list_deadline": listed.deadline,
                "published_date": rec.get("published_date"),
                "list_status": listed.status,
                "list_met": listed.met,
                "letter_date": rec.get("letter_date"),
                "progress_deadline": progress.deadline,
                "progress_published_date": rec.get("progress_published_date"),
                "progress_status": progress.status,
                "progress_met": progress.met,
            }
        )
    columns = [
        "list_name",
        "issue_no",
        "source_name",
        "found_date",
        "list_deadline",
        "published_date",
        "list_status",
        "list_met",
        "letter_date",
        "progress_deadline",
        "progress_published_date",
        "progress_status",
        "progress_met",
    ]
    return pd.DataFrame(rows, columns=columns, index=findings.index)


def _source_label(rec: dict) -> str:
    for key in ("source_name", "special_plan", "problem"):
        value = rec.get(key)
        if not _blank(value):
            return str(value)
    return ""


@dataclass
class AnnexBlock:
    """One published table: an annex layout for one list and one issue (期)."""

    annex: Annex
    issue: str
    title: str
    rows: list[list[str]]  # in the annex's column order, 序号 first


def annex_blocks(findings: pd.DataFrame) -> dict[str, list[AnnexBlock]]:
    """annex key -> its blocks (one per issue number present), rows numbered from 1 per block."""
    city_default = disclosure_defaults()["city"]
    out: dict[str, list[AnnexBlock]] = {}
    for annex in annexes():
        blocks: list[AnnexBlock] = []
        mine = findings[findings["list_kind"] == annex.list_kind] if len(findings) else findings
        if len(mine):
            order = [c for c in ("issue_no", "found_date", "source_name") if c in mine.columns]
            mine = mine.sort_values(order, kind="stable", key=_sort_key)
            for issue, group in mine.groupby("issue_no", sort=False):
                cities = group["city"].dropna().unique()
                city = str(cities[0]) if len(cities) == 1 else city_default
                rows = [
                    [str(seq), *(_cell(rec.get(col)) for _, col in annex.columns[1:])]
                    for seq, rec in enumerate(group.to_dict(orient="records"), start=1)
                ]
                blocks.append(AnnexBlock(annex, str(issue), annex.title_for(city, issue), rows))
        out[annex.key] = blocks
    return out


def _sort_key(series: pd.Series) -> pd.Series:
    # issue numbers sort numerically when they are numbers; dates may be None
    if series.name == "issue_no":
        return series.map(lambda v: f"0{int(v):09d}" if str(v).isdigit() else f"1{v}")
    return series.map(lambda v: "" if is_missing(v) else str(v))


def _cell(value: object) -> str:
    if _blank(value):
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def unknown_lists(findings: pd.DataFrame) -> list[str]:
    """List kinds in the findings that no annex layout knows."""
    known = {a.list_kind for a in annexes()}
    return sorted({str(k) for k in findings.get("list_kind", []) if str(k) not in known})
