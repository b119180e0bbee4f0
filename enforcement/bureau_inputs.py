"""The bureau's non-device CSV inputs: readers that validate them, and a deterministic simulator.

Files (UTF-8, one folder with the registry; layouts documented in docs/enforcement.md):
``case_events.csv``, ``fuel_samples.csv``, ``inspection_agencies.csv``, ``agency_checks.csv``,
``inspection_findings.csv`` (量化问责), ``disclosure_findings.csv`` (the ministry's supervised issues
and their publication, 信息公开方案 二(二)) and ``dustfall_records.csv`` (manual dustfall jars). A reader raises ``BureauInputError`` naming the file, the line (the
header is line 1) and the column of every problem; semantic checks of case events (order, state)
are ``enforcement.penalties.check_events``'s job.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from enforcement.accountability import escalation_levels, finding_kinds
from schemas.calendar_cn import (
    CalendarCoverageError,
    add_calendar_days,
    add_workdays,
    holiday_name,
    is_workday,
)
from schemas.enforcement_rules import penalty_setting
from schemas.rules import DATA_DIR, threshold

#: the disclosure layouts and deadlines (read by reports.layouts; enforcement never imports reports)
LAYOUTS_FILE = DATA_DIR / "report_layouts.toml"


def _layouts() -> dict[str, Any]:
    with open(LAYOUTS_FILE, "rb") as handle:
        return tomllib.load(handle)


def disclosure_list_kinds() -> tuple[str, ...]:
    """The list kinds the plan's annexes know, as keys and as the lists' Chinese names."""
    keys, names = [], []
    for annex in _layouts()["annex"]:
        if annex["list"] not in keys:
            keys.append(annex["list"])
        if annex["version"] == "list":
            names.append(annex["sheet"].removesuffix("名单").removesuffix("清单"))
    return (*keys, *names)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text | date | number | choice
    required: bool = True
    choices: tuple[str, ...] = ()
    minimum: float | None = None


def _specs() -> dict[str, tuple[Column, ...]]:
    kinds = tuple(sorted(finding_kinds()))
    return {
        "case_events.csv": (
            Column("case_id", "text"),
            Column("stack_id", "text"),
            # an unknown event or a negative amount is refused row by row by check_events, so that
            # one bad row does not block the whole file
            Column("event", "text"),
            Column("date", "date"),
            Column("amount_yuan", "number", required=False),
            Column("document_no", "text", required=False),
            Column("note", "text", required=False),
        ),
        "fuel_samples.csv": (
            Column("sample_id", "text"),
            Column("gas_station_id", "text"),
            Column("date", "date"),
            Column("product", "text", required=False),
            Column("sulfur_mg_kg", "number", required=False, minimum=0.0),
            Column("result", "text", required=False),
        ),
        "inspection_agencies.csv": (
            Column("agency_id", "text"),
            Column("name", "text"),
            Column("subdistrict_id", "text", required=False),
        ),
        "agency_checks.csv": (
            Column("check_id", "text"),
            Column("agency_id", "text"),
            Column("date", "date"),
            Column("result", "text", required=False),
            Column("note", "text", required=False),
        ),
        "inspection_findings.csv": (
            Column("finding_id", "text"),
            Column("subdistrict_id", "text"),
            Column("date", "date"),
            Column("kind", "choice", choices=kinds),
            Column("count", "number", required=False, minimum=0.0),
            Column("assigned_deadline", "date", required=False),
            Column("rectified_date", "date", required=False),
            Column("note", "text", required=False),
        ),
        "disclosure_findings.csv": (
            Column("finding_id", "text"),
            Column("list_kind", "choice", choices=disclosure_list_kinds()),
            Column("issue_no", "text", required=False),
            Column("city", "text", required=False),
            Column("county", "text", required=False),
            Column("source_name", "text", required=False),
            Column("special_plan", "text", required=False),
            Column("task_requirement", "text", required=False),
            Column("problem", "text"),
            Column("investigation", "text", required=False),
            Column("rectification", "text", required=False),
            Column("rectify_by", "text", required=False),
            Column("found_date", "date"),
            Column("published_date", "date", required=False),
            Column("letter_date", "date", required=False),
            Column("progress_published_date", "date", required=False),
        ),
        "dustfall_records.csv": (
            Column("sample_id", "text"),
            Column("site_id", "text"),
            Column("site_name", "text", required=False),
            Column("subdistrict_id", "text"),
            Column("start_date", "date"),
            Column("end_date", "date"),
            # a missing value (broken jar) is kept: enforcement.ambient.dustfall_normalise marks
            # the sample invalid and the report names it among the data-quality caveats
            Column("dustfall_t_km2", "number", required=False, minimum=0.0),
            Column("note", "text", required=False),
        ),
    }


_ID_COLUMNS = {
    "fuel_samples.csv": "sample_id",
    "inspection_agencies.csv": "agency_id",
    "agency_checks.csv": "check_id",
    "inspection_findings.csv": "finding_id",
    "disclosure_findings.csv": "finding_id",
    "dustfall_records.csv": "sample_id",
}


class BureauInputError(ValueError):
    """Problems in one bureau file; ``problems`` lists (file, line, column, message)."""

    def __init__(self, problems: list[tuple[str, int | None, str | None, str]]):
        self.problems = problems
        shown = "; ".join(_describe(p) for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} problem(s): {shown}{more}")


def _describe(problem: tuple[str, int | None, str | None, str]) -> str:
    file_name, line, column, message = problem
    where = (
        file_name + (f" line {line}" if line else "") + (f" column {column!r}" if column else "")
    )
    return f"{where}: {message}"


def validate_frame(frame: pd.DataFrame, file_name: str) -> pd.DataFrame:
    """Check and type one bureau file given as text columns; returns the typed frame.

    Dates become ``YYYY-MM-DD`` strings, numbers floats, text stripped strings (empty → missing).
    """
    specs = _specs()
    if file_name not in specs:
        raise KeyError(f"no layout for {file_name!r} (known: {', '.join(sorted(specs))})")
    spec = specs[file_name]
    problems: list[tuple[str, int | None, str | None, str]] = []
    missing = [c.name for c in spec if c.required and c.name not in frame.columns]
    if missing:
        problems.append((file_name, 1, ", ".join(missing), "missing column(s) in the header"))
        raise BureauInputError(problems)
    # an optional column may be left out of the file altogether
    frame = frame.assign(**{c.name: "" for c in spec if c.name not in frame.columns})
    out = pd.DataFrame(index=frame.index)
    lines = pd.Series(range(2, len(frame) + 2), index=frame.index)
    for column in spec:
        text = frame[column.name].astype("str").str.strip()
        text = text.mask(text.isin(["", "nan", "None", "NaN"]))
        empty = text.isna()
        if column.required:
            for index in text.index[empty]:
                problems.append(
                    (file_name, int(lines[index]), column.name, "required value is empty")
                )
        if column.kind == "date":
            parsed = pd.to_datetime(text, errors="coerce", format="%Y-%m-%d")
            for index in text.index[~empty & parsed.isna()]:
                problems.append(
                    (
                        file_name,
                        int(lines[index]),
                        column.name,
                        f"{text[index]!r} is not a YYYY-MM-DD date",
                    )
                )
            out[column.name] = parsed.dt.strftime("%Y-%m-%d").astype("str")
        elif column.kind == "number":
            number = pd.to_numeric(text, errors="coerce")
            for index in text.index[~empty & number.isna()]:
                problems.append(
                    (file_name, int(lines[index]), column.name, f"{text[index]!r} is not a number")
                )
            if column.minimum is not None:
                for index in number.index[number < column.minimum]:
                    problems.append(
                        (
                            file_name,
                            int(lines[index]),
                            column.name,
                            f"{number[index]:g} is below {column.minimum:g}",
                        )
                    )
            out[column.name] = number.astype("float64")
        elif column.kind == "choice":
            for index in text.index[~empty & ~text.isin(column.choices)]:
                problems.append(
                    (
                        file_name,
                        int(lines[index]),
                        column.name,
                        f"{text[index]!r} is not one of {', '.join(column.choices)}",
                    )
                )
            out[column.name] = text
        else:
            out[column.name] = text
    id_column = _ID_COLUMNS.get(file_name)
    if id_column:
        dup = out[id_column].notna() & out[id_column].duplicated(keep="first")
        for index in out.index[dup]:
            problems.append(
                (file_name, int(lines[index]), id_column, f"duplicate id {out[id_column][index]!r}")
            )
    if file_name == "inspection_findings.csv":
        needs = (out["kind"] == "assigned_issue") & out["assigned_deadline"].isna()
        for index in out.index[needs]:
            problems.append(
                (
                    file_name,
                    int(lines[index]),
                    "assigned_deadline",
                    "an assigned issue needs a deadline",
                )
            )
    if problems:
        problems.sort(key=lambda p: (p[1] or 0, p[2] or ""))
        raise BureauInputError(problems)
    return out.reset_index(drop=True)


def read_bureau_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate one bureau file; its name decides its layout."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype="str", keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise BureauInputError([(path.name, None, None, f"not UTF-8: {error}")]) from None
    except pd.errors.ParserError as error:
        raise BureauInputError([(path.name, None, None, f"unreadable CSV: {error}")]) from None
    return validate_frame(frame, path.name)


def read_case_events(path: str | Path) -> pd.DataFrame:
    return read_bureau_csv(path)


def read_fuel_samples(path: str | Path) -> pd.DataFrame:
    return read_bureau_csv(path)


def read_inspection_agencies(path: str | Path) -> pd.DataFrame:
    return read_bureau_csv(path)


def read_agency_checks(path: str | Path) -> pd.DataFrame:
    return read_bureau_csv(path)


def read_inspection_findings(path: str | Path) -> pd.DataFrame:
    return read_bureau_csv(path)


def read_disclosure_findings(path: str | Path) -> pd.DataFrame:
    return read_bureau_csv(path)


def read_dustfall_records(path: str | Path) -> pd.DataFrame:
    return read_bureau_csv(path)


def read_bureau_inputs(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Every bureau file present in ``folder``, validated, keyed by file stem."""
    folder = Path(folder)
    return {
        name.removesuffix(".csv"): read_bureau_csv(folder / name)
        for name in sorted(_specs())
        if (folder / name).exists()
    }


def write_bureau_inputs(inputs: dict[str, pd.DataFrame], folder: str | Path) -> list[Path]:
    """Write simulated inputs as the bureau would (UTF-8 CSV, empty for missing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, frame in sorted(inputs.items()):
        if not isinstance(frame, pd.DataFrame):
            continue
        path = folder / f"{stem}.csv"
        frame.to_csv(path, index=False, encoding="utf-8")
        written.append(path)
    return written


# --- the simulator ------------------------------------------------------------------------------


def _day(start: date, offset: int) -> str:
    return (start + timedelta(days=offset)).isoformat()


def _doc(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:6].upper()
    return f"金环{prefix}〔2017〕{digest}号"


def _case_stacks(
    registry: dict[str, pd.DataFrame], exceedances: pd.DataFrame | None, rng
) -> list[tuple[str, str | None]]:
    """Up to four (stack, first exceedance day) pairs: stacks that exceeded first, then others."""
    chosen: list[tuple[str, str | None]] = []
    if exceedances is not None and len(exceedances):
        first = exceedances.groupby("stack_id")["day"].min().sort_values(kind="stable")
        chosen = [(str(s), str(d)) for s, d in first.items()]
    others = sorted(set(registry["stacks"]["stack_id"].astype("str")) - {s for s, _ in chosen})
    rng.shuffle(others)
    chosen += [(s, None) for s in others]
    if len(chosen) < 4:
        raise ValueError("the registry needs at least four stacks to simulate case events")
    return chosen[:4]


def _simulate_cases(registry, exceedances, rng, month: str) -> tuple[pd.DataFrame, dict]:
    month_start = date.fromisoformat(f"{month}-01")
    stacks = _case_stacks(registry, exceedances, rng)
    rows: list[dict] = []
    truth: dict = {"cases": {}, "refused": []}

    def add(case_id, stack_id, event, day, amount=None, doc_prefix="", note=""):
        rows.append(
            {
                "case_id": case_id,
                "stack_id": stack_id,
                "event": event,
                "date": day,
                "amount_yuan": amount,
                "document_no": _doc(doc_prefix, case_id, event, day),
                "note": note,
            }
        )
        return rows[-1]["document_no"]

    fines = [float(x) for x in rng.choice([50_000, 100_000, 200_000], size=4)]
    starts = []
    for i, (_, first_day) in enumerate(stacks):
        found = date.fromisoformat(first_day) if first_day else month_start + timedelta(days=1 + i)
        # keep the whole story inside the month when the exceedance came late in it
        if found > month_start + timedelta(days=12):
            found = month_start + timedelta(days=1 + i)
        starts.append(found)
    span = int(penalty_setting("ledger.first_day_offset"))

    # 1. closed by a passed re-inspection: no penalty day
    (s1, _), d = stacks[0], starts[0]
    c1 = f"CASE-{month}-1"
    add(c1, s1, "exceedance_found", _day(d, 0), doc_prefix="监")
    add(c1, s1, "fine", _day(d, 1), fines[0], "罚")
    add(c1, s1, "correction_order_served", _day(d, 2), doc_prefix="责改")
    add(c1, s1, "reinspection_passed", _day(d, 10), doc_prefix="复查")
    truth["cases"][c1] = {"stack_id": s1, "state": "closed", "penalty_days": [], "amounts": []}

    # 2. two failed re-inspections: days accumulate
    (s2, _), d = stacks[1], starts[1]
    c2 = f"CASE-{month}-2"
    add(c2, s2, "exceedance_found", _day(d, 0), doc_prefix="监")
    add(c2, s2, "fine", _day(d, 1), fines[1], "罚")
    add(c2, s2, "correction_order_served", _day(d, 1), doc_prefix="责改")
    add(c2, s2, "reinspection_failed", _day(d, 8), doc_prefix="复查")
    add(c2, s2, "reinspection_failed", _day(d, 15), doc_prefix="复查")
    days2 = [8 - (1 + span) + 1, 15 - 8]  # (d+2 .. d+8), (d+9 .. d+15)
    truth["cases"][c2] = {
        "stack_id": s2,
        "state": "served",
        "penalty_days": days2,
        "amounts": [fines[1] * n for n in days2],
    }

    # 3. a halt in the middle of the round stops the count
    (s3, _), d = stacks[2], starts[2]
    c3 = f"CASE-{month}-3"
    add(c3, s3, "exceedance_found", _day(d, 0), doc_prefix="监")
    add(c3, s3, "fine", _day(d, 1), fines[2], "罚")
    add(c3, s3, "correction_order_served", _day(d, 2), doc_prefix="责改")
    add(c3, s3, "halt", _day(d, 5), doc_prefix="停产", note="停产整治")
    add(c3, s3, "resume", _day(d, 9), doc_prefix="恢复")
    add(c3, s3, "reinspection_failed", _day(d, 12), doc_prefix="复查")
    calendar = 12 - (2 + span) + 1  # d+3 .. d+12
    halted = 9 - 5 if not penalty_setting("ledger.halt_day_counts") else 9 - 5 - 1
    truth["cases"][c3] = {
        "stack_id": s3,
        "state": "served",
        "penalty_days": [calendar - halted],
        "amounts": [fines[2] * (calendar - halted)],
        "halted_days": [halted],
    }

    # 4. wrong events the checks must refuse
    (s4, _), d = stacks[3], starts[3]
    c4 = f"CASE-{month}-4"
    add(c4, s4, "fine", _day(d, 1), fines[3], "罚")
    bad1 = add(c4, s4, "reinspection_failed", _day(d, 4), doc_prefix="复查", note="no order served")
    bad2 = add(c4, "NO-SUCH-STACK", "fine", _day(d, 2), fines[3], "罚", note="unknown stack")
    truth["refused"] = [
        {"case_id": c4, "document_no": bad1, "reason": "before any correction order"},
        {"case_id": c4, "document_no": bad2, "reason": "unknown stack"},
    ]
    truth["cases"][c4] = {"stack_id": s4, "state": "fined", "penalty_days": [], "amounts": []}
    return pd.DataFrame(rows), truth


def _simulate_fuel(registry, rng, month: str) -> tuple[pd.DataFrame, dict]:
    stations = sorted(registry["gas_stations"]["gas_station_id"].astype("str"))
    need = max(1, math.ceil(len(stations) * threshold("fuel.station_sampling_min") * 1.2))
    picked = sorted(rng.choice(stations, size=min(need, len(stations)), replace=False).tolist())
    month_start = date.fromisoformat(f"{month}-01")
    limit = threshold("fuel.sulfur_max_mg_kg")
    rows = []
    for i, station in enumerate(picked):
        sulfur = round(float(rng.uniform(0.3, 0.95)) * limit, 1)
        rows.append(
            {
                "sample_id": f"FS-{month}-{i + 1:03d}",
                "gas_station_id": station,
                "date": _day(month_start, int(rng.integers(0, 27))),
                "product": str(rng.choice(["92#", "95#", "0# 柴油"])),
                "sulfur_mg_kg": sulfur,
                "result": "合格",
            }
        )
    failing = int(rng.integers(0, len(rows)))
    rows[failing]["sulfur_mg_kg"] = round(limit * 1.5, 1)
    rows[failing]["result"] = "不合格"
    truth = {
        "sampled_stations": picked,
        "n_stations": len(stations),
        "complies": True,
        "failed_sample_ids": [rows[failing]["sample_id"]],
        "failed_station_ids": [rows[failing]["gas_station_id"]],
    }
    return pd.DataFrame(rows), truth


def _previous_month(month: str) -> str:
    first = date.fromisoformat(f"{month}-01") - timedelta(days=1)
    return first.strftime("%Y-%m")


def _simulate_agencies(registry, rng, month: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    subdistricts = sorted(registry["subdistricts"]["subdistrict_id"].astype("str"))
    n = 10
    agencies = pd.DataFrame(
        {
            "agency_id": [f"AG{i + 1:02d}" for i in range(n)],
            "name": [f"机动车排放检验机构{i + 1}" for i in range(n)],
            "subdistrict_id": [
                subdistricts[int(rng.integers(0, len(subdistricts)))] for _ in range(n)
            ],
        }
    )
    ratio = threshold("inspection.agency_sampling_min")
    good = math.ceil(n * ratio) + 1  # this month: above the minimum
    bad = max(0, math.ceil(n * ratio) - 1)  # last month: one short of it
    previous = _previous_month(month)
    rows = []
    for which, count in ((previous, bad), (month, good)):
        chosen = sorted(rng.choice(agencies["agency_id"], size=count, replace=False).tolist())
        start = date.fromisoformat(f"{which}-01")
        for j, agency in enumerate(chosen):
            rows.append(
                {
                    "check_id": f"AC-{which}-{j + 1:02d}",
                    "agency_id": agency,
                    "date": _day(start, int(rng.integers(0, 27))),
                    "result": "合格",
                    "note": "",
                }
            )
    checks = pd.DataFrame(rows)
    failed_row = checks.index[checks["check_id"].str.startswith(f"AC-{month}")][0]
    checks.loc[failed_row, "result"] = "不合格"
    checks.loc[failed_row, "note"] = "出具虚假检验报告"
    truth = {
        "month_under": previous,
        "month_ok": month,
        "n_agencies": n,
        "failed_agency_ids": [checks.loc[failed_row, "agency_id"]],
    }
    return agencies, checks, truth


def _simulate_findings(registry, rng, month: str) -> tuple[pd.DataFrame, dict]:
    subdistricts = sorted(registry["subdistricts"]["subdistrict_id"].astype("str"))
    if len(subdistricts) < 4:
        raise ValueError("the registry needs at least four subdistricts to simulate findings")
    picked = [subdistricts[i] for i in sorted(rng.choice(len(subdistricts), size=4, replace=False))]
    month_start = f"{month}-01"
    kinds = finding_kinds()
    unit_kinds = sorted(
        k
        for k, v in kinds.items()
        if v["category"] == "b" and v["score"] == 1 and v["effective_from"] <= month_start
    )
    if not unit_kinds:
        raise ValueError(f"no new-issue kind scoring 1 is in force in {month}")
    levels = escalation_levels()
    start = date.fromisoformat(month_start)
    rows = []

    def add(subdistrict, kind, day, deadline="", rectified="", note=""):
        rows.append(
            {
                "finding_id": f"IF-{month}-{len(rows) + 1:03d}",
                "subdistrict_id": subdistrict,
                "date": _day(start, day),
                "kind": kind,
                "count": 1,
                "assigned_deadline": deadline,
                "rectified_date": rectified,
                "note": note,
            }
        )

    # plant (a) and (b) totals just past each level's cut-offs, read from accountability.toml
    deputy, head, secretary = levels[0], levels[1], levels[2]
    plan = {
        picked[0]: ("b", int(deputy["b_over"]) + 1, deputy["name"]),
        picked[1]: ("a", int(head["a_over"]) + 1, head["name"]),
        picked[2]: ("b", int(secretary["b_over"]) + 1, secretary["name"]),
        picked[3]: ("b", int(deputy["b_over"]), ""),  # exactly at the cut-off: nobody
    }
    for subdistrict, (category, count, _) in plan.items():
        for _ in range(count):
            day = int(rng.integers(1, 20))
            if category == "b":
                add(subdistrict, unit_kinds[int(rng.integers(0, len(unit_kinds)))], day)
            else:
                add(subdistrict, "assigned_issue", 0, deadline=_day(start, day), note="交办问题")
    # an assigned issue rectified on time never counts
    add(picked[3], "assigned_issue", 0, deadline=_day(start, 15), rectified=_day(start, 14))
    truth = {"month": month, "levels": {s: lvl for s, (_, _, lvl) in plan.items()}}
    return pd.DataFrame(rows), truth


DISCLOSURE_COLUMNS = [
    "finding_id", "list_kind", "issue_no", "city", "county", "source_name", "special_plan",
    "task_requirement", "problem", "investigation", "rectification", "rectify_by", "found_date",
    "published_date", "letter_date", "progress_published_date",
]  # fmt: skip


def _due(start: date, rule: dict) -> date:
    """The last day of a publication period (report_layouts.toml ``[deadlines]``)."""
    if rule["unit"] == "working_days":
        return add_workdays(start, int(rule["value"]))
    return add_calendar_days(
        start, int(rule["value"]), roll_to_workday=bool(rule["roll_to_workday"])
    )


def _workdays_before(day: date, n: int) -> date:
    out = day
    for _ in range(n):
        out -= timedelta(days=1)
        while not is_workday(out):
            out -= timedelta(days=1)
    return out


def _verdict(due: date | None, published: date | None, as_of: date) -> str:
    """The expected verdict by construction: on_time, late:N, overdue_unpublished, not_due,
    no_start (the report's 按时, 逾期N日, 逾期未公开, 未到期, 无起算日期)."""
    if due is None:
        return "no_start"
    if published is not None:
        return "on_time" if published <= due else f"late:{(published - due).days}"
    return "overdue_unpublished" if as_of > due else "not_due"


def _issue_base(month: str) -> int:
    """Issue numbers (期) of the ministry's lists, counted from the campaign's first month."""
    year, mon = (int(p) for p in month.split("-"))
    return max(1, 2 * ((year - 2017) * 12 + mon - 9) + 1)


def _simulate_disclosure(registry, rng, month: str) -> tuple[pd.DataFrame, dict]:
    """Supervised issues around rest days, each with its publication dates (some late).

    The days are chosen on the working calendar: the last working day of the month whose
    2-working-day period crosses a public holiday (else a weekend), Fridays whose periods cross a
    weekend, a letter whose 15 days end on a rest day (rolled to the next working day), a finding of
    the month before whose progress falls due in the month and one of two months before that does not
    belong to the month's report. ``truth["findings"]`` holds each finding's list, deadlines and the
    expected verdicts, judged as of the month's last day.
    """
    rules = _layouts()["deadlines"]
    list_rule, progress_rule = rules["list_publication"], rules["progress_publication"]
    first = date.fromisoformat(f"{month}-01")
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    truth: dict = {"month": month, "as_of": last.isoformat(), "findings": {}}
    try:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        workdays = [d for d in days if is_workday(d)]

        def crosses_holiday(day: date) -> bool:
            due = _due(day, list_rule)
            span = [day + timedelta(days=i) for i in range(1, (due - day).days)]
            return any(holiday_name(d) and not is_workday(d) for d in span)

        def before_rest(day: date) -> bool:
            return not is_workday(day + timedelta(days=1))

        holiday_edge = [d for d in workdays if crosses_holiday(d)]
        fridays = [d for d in workdays if d.day >= 4 and before_rest(d)]
        edge = holiday_edge[-1] if holiday_edge else fridays[-1]
        early, middle = fridays[0], fridays[min(1, len(fridays) - 1)]
        previous = date.fromisoformat(f"{_previous_month(month)}-01")
        prev_days = [previous + timedelta(days=i) for i in range(3, 28)]
        prev_friday = [d for d in prev_days if is_workday(d) and before_rest(d)][-1]
        older = date.fromisoformat(f"{_previous_month(_previous_month(month))}-01")
        older = next(
            older + timedelta(days=i) for i in range(2, 20) if is_workday(older + timedelta(days=i))
        )
        _due(last, progress_rule)  # the calendar must cover what the month's deadlines reach
    except CalendarCoverageError as error:
        truth["note"] = f"no disclosure findings simulated: {error}"
        return pd.DataFrame(columns=DISCLOSURE_COLUMNS), truth

    enterprises = registry.get("enterprises")
    names = (
        sorted(enterprises["name"].astype("str"))
        if enterprises is not None and len(enterprises)
        else [f"模拟企业{i}" for i in range(1, 5)]
    )
    picked = [names[int(i)] for i in rng.choice(len(names), size=min(3, len(names)), replace=False)]
    while len(picked) < 3:
        picked.append(f"模拟企业{len(picked) + 1}")
    subdistricts = registry["subdistricts"].sort_values("subdistrict_id")["name"].astype("str")
    sub = list(subdistricts)[:2] + ["金水区"] * 2
    issue = _issue_base(month)
    rows: list[dict] = []

    def add(kind, issue_no, found, published, letter, progress, in_report, **text):
        finding_id = f"DF-{month}-{len(rows) + 1:02d}"
        list_due = _due(found, list_rule)
        progress_due = _due(letter, progress_rule) if letter else None
        rows.append(
            {
                "finding_id": finding_id,
                "list_kind": kind,
                "issue_no": str(issue_no),
                "city": "郑州市",
                "county": "金水区",
                "found_date": found.isoformat(),
                "published_date": published.isoformat() if published else "",
                "letter_date": letter.isoformat() if letter else "",
                "progress_published_date": progress.isoformat() if progress else "",
                **text,
            }
        )
        truth["findings"][finding_id] = {
            "list_kind": kind,
            "issue_no": str(issue_no),
            "name": text.get("source_name") or text.get("special_plan"),
            "list_deadline": list_due.isoformat(),
            "list_verdict": _verdict(list_due, published, last),
            "progress_deadline": progress_due.isoformat() if progress_due else None,
            "progress_verdict": _verdict(progress_due, progress, last),
            "in_report": in_report,
        }

    one_day = timedelta(days=1)
    # 1. found on the last working day before a holiday: published on the deadline (days later
    #    in the calendar), progress not yet due on the month's last day
    add(
        "key_enterprise", issue, edge, _due(edge, list_rule), edge, None, True,
        source_name=picked[0], problem="在线监测数据超标排放", investigation="已立案调查",
        rectification="整改中", rectify_by=(last + timedelta(days=30)).isoformat(),
    )  # fmt: skip
    # 2. the working day before: published one day after its deadline; no letter yet
    found = _workdays_before(edge, 1)
    add(
        "key_enterprise", issue, found, _due(found, list_rule) + one_day, None, None, True,
        source_name=picked[1], problem="除尘设施未正常运行",
    )  # fmt: skip
    # 3. a Friday: list on time across the weekend; progress one day after the rolled deadline
    add(
        "scattered", issue, early, _due(early, list_rule), early,
        _due(early, progress_rule) + one_day, True,
        source_name=f"{sub[0]}某家具加工作坊", problem="露天喷漆，无治污设施",
        investigation="已取缔", rectification="已完成两断三清", rectify_by=last.isoformat(),
    )  # fmt: skip
    # 4. the next Friday: list one day late; progress published on the rolled deadline
    add(
        "scattered", issue + 1, middle, _due(middle, list_rule) + one_day, middle,
        _due(middle, progress_rule), True,
        source_name=f"{sub[1]}某塑料颗粒加工点", problem="无环评手续，废气直排",
        investigation="已断水断电", rectification="已拆除生产设备", rectify_by=last.isoformat(),
    )  # fmt: skip
    # 5. a special-task issue never published
    found = _workdays_before(middle, 2)
    add(
        "special_task", issue + 1, found, None, found, None, True,
        special_plan="燃煤锅炉综合整治专项方案", task_requirement="辖区内燃煤小锅炉全部拆除",
        problem="2台燃煤小锅炉未拆除", rectification="已拆除1台", rectify_by=last.isoformat(),
    )  # fmt: skip
    # 6. from the month before: progress falls due (rolled) in the month, published on time
    add(
        "special_task", max(1, issue - 1), prev_friday, _due(prev_friday, list_rule), prev_friday,
        _due(prev_friday, progress_rule), _due(prev_friday, progress_rule) >= first,
        special_plan="扬尘污染专项治理方案", task_requirement="建筑工地落实六个百分之百",
        problem="工地裸土未覆盖", rectification="已覆盖防尘网", rectify_by=first.isoformat(),
    )  # fmt: skip
    # 7. two months before, published and closed on time: not in the month's report
    add(
        "key_enterprise", max(1, issue - 3), older, older, older, older + timedelta(days=3), False,
        source_name=picked[2], problem="未按规定安装在线监测设备", investigation="已罚款",
        rectification="已安装并联网", rectify_by=(older + timedelta(days=20)).isoformat(),
    )  # fmt: skip
    frame = pd.DataFrame(rows).reindex(columns=DISCLOSURE_COLUMNS).fillna("")
    return frame, truth


def _simulate_dustfall(registry, rng, month: str) -> tuple[pd.DataFrame, dict]:
    """Manual dustfall jars (sampling month-long, t/km² over the exposure) for one site in each of
    up to six subdistricts and a second site in the first two; planted: a site above the limit in
    a subdistrict whose mean still meets it, a subdistrict above on its mean, a site whose jar was
    replaced mid-month (two samples pooled by time), a broken jar (no value) and last month's jar.
    ``truth``: the expected per-30-day value per site and subdistrict, the invalid samples."""
    limit = threshold("dustfall.max_t_km2_30d")
    subs = registry["subdistricts"].sort_values("subdistrict_id")
    ids = subs["subdistrict_id"].astype("str").tolist()[:6]
    names = dict(zip(subs["subdistrict_id"].astype("str"), subs["name"].astype("str"), strict=True))
    if len(ids) < 4:
        raise ValueError("the registry needs at least four subdistricts to simulate dustfall")
    first = date.fromisoformat(f"{month}-01")
    nxt = (first + timedelta(days=32)).replace(day=1)
    whole = (nxt - first).days
    sites = [(f"DF{i + 1:02d}", sub) for i, sub in enumerate(ids)]
    sites += [(f"DF{len(ids) + 1:02d}", ids[0]), (f"DF{len(ids) + 2:02d}", ids[1])]
    # per-30-day targets: most sites under the limit, with planted ones around it
    target = {site: round(float(rng.uniform(0.45, 0.85)) * limit, 2) for site, _ in sites}
    above_alone, above_mean_a, above_mean_b = sites[0][0], sites[1][0], sites[-1][0]
    partner, pooled, broken = sites[-2][0], sites[2][0], sites[3][0]
    target[above_alone] = round(limit * 1.3, 2)
    target[partner] = round(limit * 0.5, 2)  # its subdistrict's mean stays under the limit
    target[pooled] = round(limit * 0.8, 2)  # above the first half's share: both samples positive
    target[above_mean_a], target[above_mean_b] = round(limit * 1.12, 2), round(limit * 1.05, 2)
    rows: list[dict] = []

    def add(site, sub, start, end, value, note=""):
        rows.append(
            {
                "sample_id": f"DS-{month}-{len(rows) + 1:03d}",
                "site_id": site,
                "site_name": f"{names[sub]}降尘点{site[-2:]}",
                "subdistrict_id": sub,
                "start_date": start.isoformat(),
                "end_date": end.isoformat(),
                "dustfall_t_km2": value,
                "note": note,
            }
        )
        return rows[-1]["sample_id"]

    expected: dict[str, dict] = {}
    for site, sub in sites:
        if site == broken:
            bad = add(site, sub, first, nxt, None, "集尘缸破损，样品作废")
            continue
        if site == pooled:
            middle = first + timedelta(days=14)
            raw1 = round(limit * 1.1 * 14 / 30, 3)  # the first half alone would exceed
            raw2 = round(target[site] * whole / 30 - raw1, 3)
            add(site, sub, first, middle, raw1, "集尘缸更换")
            add(site, sub, middle, nxt, raw2)
            value = (raw1 + raw2) * 30 / whole
        else:
            raw = round(target[site] * whole / 30, 3)
            add(site, sub, first, nxt, raw)
            value = raw * 30 / whole
        expected[site] = {"subdistrict_id": sub, "dustfall_30d": value, "meets": value < limit}
    # last month's jar ends on the 1st: its midpoint is in the month before, it does not count here
    previous = date.fromisoformat(f"{_previous_month(month)}-01")
    add(sites[0][0], sites[0][1], previous, first, round(limit * 2, 3), "上月样品")
    by_sub: dict[str, list[float]] = {}
    for rec in expected.values():
        by_sub.setdefault(rec["subdistrict_id"], []).append(rec["dustfall_30d"])
    subdistricts = {
        sub: {"dustfall_30d": sum(v) / len(v), "n_sites": len(v), "meets": sum(v) / len(v) < limit}
        for sub, v in by_sub.items()
    }
    truth = {
        "month": month,
        "limit": limit,
        "sites": expected,
        "subdistricts": subdistricts,
        "invalid_samples": [bad],
        "above_alone": above_alone,
        "pooled_site": pooled,
    }
    return pd.DataFrame(rows), truth


def simulate_bureau_inputs(
    registry: dict[str, pd.DataFrame], exceedances: pd.DataFrame | None, seed: int, month: str
) -> dict[str, Any]:
    """Deterministic bureau inputs for ``month`` (``YYYY-MM``) and the ``truth`` they plant.

    Needs registry frames ``stacks``, ``gas_stations`` and ``subdistricts``. Case events: a round
    closed by a passed re-inspection, one with two failed re-inspections, one with a halt in the
    middle, and two wrong events to refuse; fuel samples covering just over the 10 % minimum with one
    failing on sulfur; ten inspection agencies checked above 20 % this month and under it the month
    before; inspection findings reaching each escalation level; supervised issues for public
    disclosure published on time or late around rest days (:func:`_simulate_disclosure`); dustfall
    jars with sites and a subdistrict above the limit (:func:`_simulate_dustfall`).
    ``result["truth"]`` is a dict.
    """
    rng = np.random.default_rng(seed)
    case_events, case_truth = _simulate_cases(registry, exceedances, rng, month)
    fuel_samples, fuel_truth = _simulate_fuel(registry, rng, month)
    agencies, checks, agency_truth = _simulate_agencies(registry, rng, month)
    findings, finding_truth = _simulate_findings(registry, rng, month)
    # their own generators: adding them leaves the other files of a seed as they were
    disclosure, disclosure_truth = _simulate_disclosure(
        registry, np.random.default_rng([seed, 1]), month
    )
    dustfall, dustfall_truth = _simulate_dustfall(registry, np.random.default_rng([seed, 2]), month)
    return {
        "case_events": case_events,
        "fuel_samples": fuel_samples,
        "inspection_agencies": agencies,
        "agency_checks": checks,
        "inspection_findings": findings,
        "disclosure_findings": disclosure,
        "dustfall_records": dustfall,
        "truth": {
            "cases": case_truth,
            "fuel": fuel_truth,
            "agencies": agency_truth,
            "accountability": finding_truth,
            "disclosure": disclosure_truth,
            "dustfall": dustfall_truth,
        },
    }
