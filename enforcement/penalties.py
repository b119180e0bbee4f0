"""Cases and day-by-day penalties (Environmental Protection Law art. 59, MEP order 28, 2014).

Case events are bureau data (``case_events.csv``: case_id, stack_id, event, date, amount_yuan,
document_no, note). ``check_events`` refuses wrong or contradictory events with a reason;
``penalty_ledger`` turns the accepted ones into penalty decisions; ``open_cases`` joins them with the
exceedances found in the data; ``reinspection_due`` says which stacks to re-inspect first.

A round is fine → correction order served → re-inspections. Each failed re-inspection is one
decision whose penalty days run from the day after service (or after the previous failed
re-inspection) to the re-inspection day; a passed re-inspection closes the round; a later
violation opens a new round. A halt stops the daily count until a resume.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from enforcement.cems import limits_in_force
from schemas.enforcement_rules import penalty_setting, setting

EVENTS = (
    "exceedance_found",
    "fine",
    "correction_order_served",
    "halt",
    "resume",
    "reinspection_failed",
    "reinspection_passed",
)
# Same-day order: a fine and its order can be served the day the exceedance is found, and a
# re-inspection can happen on the day of service.
_RANK = {name: rank for rank, name in enumerate(EVENTS)}
EVENT_COLUMNS = ["case_id", "stack_id", "event", "date", "amount_yuan", "document_no", "note"]

DECISION_COLUMNS = [
    "case_id",
    "stack_id",
    "round",
    "decision_no",
    "fine_date",
    "fine_yuan",
    "fine_document_no",
    "served_date",
    "order_document_no",
    "reinspection_date",
    "reinspection_document_no",
    "start_date",
    "end_date",
    "calendar_days",
    "halted_days",
    "penalty_days",
    "amount_yuan",
    "late_reinspection",
    "basis",
]


# --- normalising ------------------------------------------------------------------------------


def _normalise(events: pd.DataFrame) -> pd.DataFrame:
    frame = events.copy()
    for column in EVENT_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    frame["row"] = range(1, len(frame) + 1)
    for column in ("case_id", "stack_id", "event", "document_no", "note"):
        frame[column] = frame[column].astype("str").str.strip()
    frame["document_no"] = frame["document_no"].fillna("")
    frame["note"] = frame["note"].fillna("")
    frame["event"] = frame["event"].str.lower()
    parsed = pd.to_datetime(
        frame["date"].astype("str").str.strip(), errors="coerce", format="mixed"
    )
    frame["date"] = parsed.dt.strftime("%Y-%m-%d").astype("str")
    frame["amount_yuan"] = pd.to_numeric(frame["amount_yuan"], errors="coerce")
    return frame


def _row_problem(row: pd.Series, known_stacks: set[str] | None) -> str | None:
    """Problems a single row has on its own, before the case's history is considered."""
    if row["event"] not in _RANK:
        return f"unknown event {row['event']!r} (expected one of {', '.join(EVENTS)})"
    if pd.isna(row["date"]):
        return "missing or unreadable date"
    if pd.isna(row["case_id"]) or row["case_id"] in ("", "nan"):
        return "missing case_id"
    if known_stacks is not None and row["stack_id"] not in known_stacks:
        return f"unknown stack {row['stack_id']!r}"
    if pd.notna(row["amount_yuan"]) and row["amount_yuan"] < 0:
        return f"negative amount {row['amount_yuan']}"
    if row["event"] == "fine" and not (pd.notna(row["amount_yuan"]) and row["amount_yuan"] > 0):
        return "a fine needs a positive amount_yuan"
    return None


# --- the case state machine -------------------------------------------------------------------


@dataclass
class _Round:
    number: int
    found_date: str | None = None
    fine_date: str | None = None
    fine_yuan: float | None = None
    fine_document_no: str = ""
    served_date: str | None = None
    order_document_no: str = ""
    failed: list[tuple[str, str, bool]] = field(default_factory=list)  # (date, document, late)
    passed_date: str | None = None
    halts: list[tuple[str, str | None]] = field(default_factory=list)  # (halt, resume or None)

    @property
    def state(self) -> str:
        if self.passed_date is not None:
            return "closed"
        if self.served_date is not None:
            return "served"
        if self.fine_date is not None:
            return "fined"
        return "found"

    @property
    def halted(self) -> bool:
        return bool(self.halts) and self.halts[-1][1] is None


@dataclass
class _Case:
    case_id: str
    stack_id: str
    rounds: list[_Round] = field(default_factory=list)

    @property
    def current(self) -> _Round | None:
        return self.rounds[-1] if self.rounds else None


def _later(frame: pd.DataFrame, case_id: str, event: str, after_row: int) -> str | None:
    """Date of a same-case event of kind ``event`` that sorts after this one (for 'out of order')."""
    same = frame[
        (frame["case_id"] == case_id) & (frame["event"] == event) & (frame["order"] > after_row)
    ]
    return None if same.empty else str(same["date"].iloc[0])


def _days(start: str, end: str) -> int:
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


def _apply(case: _Case, row: pd.Series, frame: pd.DataFrame) -> tuple[str | None, str]:
    """Apply one event to its case; returns (refusal reason or None, review flag)."""
    event, day, order = row["event"], row["date"], row["order"]
    current = case.current
    state = current.state if current else "none"
    if row["stack_id"] != case.stack_id:
        return f"stack {row['stack_id']!r} differs from the case's stack {case.stack_id!r}", ""
    if event == "exceedance_found":
        if state in ("none", "closed"):
            case.rounds.append(_Round(len(case.rounds) + 1, found_date=day))
        return None, ""
    if event == "fine":
        if state in ("fined", "served"):
            return (
                f"a second fine in open round {current.number}: a continuing violation is "
                "penalised day by day, or close the round with a passed re-inspection first",
                "",
            )
        if state in ("none", "closed"):
            current = _Round(len(case.rounds) + 1)
            case.rounds.append(current)
        current.fine_date, current.fine_yuan = day, float(row["amount_yuan"])
        current.fine_document_no = row["document_no"]
        return None, ""
    if event == "correction_order_served":
        if state == "served":
            return None, "repeat_order"
        if state != "fined":
            later = _later(frame, case.case_id, "fine", order)
            if later is not None:
                return f"dates out of order: order served on {day} before the fine of {later}", ""
            return "a correction order served before any fine in this round", ""
        current.served_date, current.order_document_no = day, row["document_no"]
        return None, ""
    if event == "halt":
        if state not in ("found", "fined", "served"):
            return "a halt outside an open round", ""
        if current.halted:
            return f"already halted since {current.halts[-1][0]}", ""
        current.halts.append((day, None))
        return None, ""
    if event == "resume":
        if state == "none" or current is None or not current.halted:
            return "a resume without a halt", ""
        current.halts[-1] = (current.halts[-1][0], day)
        return None, ""
    # re-inspections
    if state != "served":
        later = _later(frame, case.case_id, "correction_order_served", order)
        if state == "closed":
            return (
                f"re-inspection after round {current.number} was closed on {current.passed_date}",
                "",
            )
        if later is not None:
            return (
                f"dates out of order: re-inspection on {day} before the order served on {later}",
                "",
            )
        return "a re-inspection before any correction order was served", ""
    late = _days(current.served_date, day) > int(
        penalty_setting("reinspection.max_days_after_service")
    )
    flag = (
        "late_reinspection"
        if late
        else ("same_day_reinspection" if day == current.served_date else "")
    )
    if event == "reinspection_failed":
        if current.halted:
            return (
                f"a failed re-inspection while halted since {current.halts[-1][0]} contradicts the "
                "halt: record the resume first",
                "",
            )
        current.failed.append((day, row["document_no"], late))
        return None, flag
    current.passed_date = day
    return None, flag


def _run_cases(
    frame: pd.DataFrame, stacks: pd.DataFrame | None
) -> tuple[dict[str, _Case], pd.DataFrame]:
    known = None if stacks is None else set(stacks["stack_id"].astype("str"))
    frame = frame.copy()
    frame["rank"] = frame["event"].map(_RANK).fillna(len(_RANK)).astype(int)
    frame = frame.sort_values(
        ["case_id", "date", "rank", "row"], kind="stable", na_position="first"
    )
    frame["order"] = range(len(frame))
    cases: dict[str, _Case] = {}
    reasons, flags, rounds = [], [], []
    seen: set[tuple] = set()
    for _, row in frame.iterrows():
        reason = _row_problem(row, known)
        key = (row["case_id"], row["event"], row["date"], row["document_no"])
        if reason is None and key in seen:
            reason = "duplicate of an earlier row (same case, event, date and document)"
        flag = ""
        if reason is None:
            case = cases.setdefault(row["case_id"], _Case(row["case_id"], row["stack_id"]))
            reason, flag = _apply(case, row, frame)
            seen.add(key)
        reasons.append(reason)
        flags.append(flag)
        current = cases.get(row["case_id"])
        rounds.append(
            current.current.number if reason is None and current and current.current else pd.NA
        )
    frame["reason"] = reasons
    frame["review"] = flags
    frame["round"] = pd.array(rounds, dtype="Int64")
    # drop a case object that never accepted an event
    cases = {k: v for k, v in cases.items() if v.rounds}
    return cases, frame.sort_values("row", kind="stable")


def check_events(
    events: pd.DataFrame, stacks: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split case events into (accepted, refused).

    Refused rows carry ``reason``: an unknown event or stack, a missing date, a negative amount, a
    fine without an amount, a duplicate, an order before the fine, a re-inspection before an order,
    events in an order their dates contradict, a second fine in an open round, a failed
    re-inspection during a halt. Accepted rows carry ``round`` and ``review`` (``late_reinspection``
    more than 30 days after service, ``same_day_reinspection``, ``repeat_order``).
    """
    frame = _normalise(events)
    _, judged = _run_cases(frame, stacks)
    keep = [*EVENT_COLUMNS, "row"]
    accepted = judged[judged["reason"].isna()][[*keep, "round", "review"]].reset_index(drop=True)
    refused = judged[judged["reason"].notna()][[*keep, "reason"]].reset_index(drop=True)
    refused["reason"] = refused["reason"].astype("str")
    return accepted, refused


# --- the ledger -------------------------------------------------------------------------------


def _halted_days(start: str, end: str, halts: list[tuple[str, str | None]]) -> int:
    """Days in [start, end] on which a halt was in force (halt date counted per penalties.toml)."""
    if _days(start, end) < 0:
        return 0
    halt_day_counts = bool(penalty_setting("ledger.halt_day_counts"))
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    halted: set[date] = set()
    for halt, resume in halts:
        begin = date.fromisoformat(halt) + timedelta(days=1 if halt_day_counts else 0)
        stop = date.fromisoformat(resume) if resume else last + timedelta(days=1)
        day = max(begin, first)
        while day < stop and day <= last:
            halted.add(day)
            day += timedelta(days=1)
    return len(halted)


def _decisions(case: _Case) -> list[dict]:
    rows = []
    offset = int(penalty_setting("ledger.first_day_offset"))
    for rnd in case.rounds:
        if rnd.served_date is None or rnd.fine_yuan is None:
            continue
        previous_end = None
        for number, (day, document, late) in enumerate(rnd.failed, start=1):
            anchor = rnd.served_date if previous_end is None else previous_end
            start = (date.fromisoformat(anchor) + timedelta(days=offset)).isoformat()
            calendar = max(0, _days(start, day) + 1)
            halted = _halted_days(start, day, rnd.halts)
            days = max(0, calendar - halted)
            amount = round(rnd.fine_yuan * days, 2)
            row = {
                "case_id": case.case_id,
                "stack_id": case.stack_id,
                "round": rnd.number,
                "decision_no": number,
                "fine_date": rnd.fine_date,
                "fine_yuan": rnd.fine_yuan,
                "fine_document_no": rnd.fine_document_no,
                "served_date": rnd.served_date,
                "order_document_no": rnd.order_document_no,
                "reinspection_date": day,
                "reinspection_document_no": document,
                "start_date": start,
                "end_date": day,
                "calendar_days": calendar,
                "halted_days": halted,
                "penalty_days": days,
                "amount_yuan": amount,
                "late_reinspection": late,
            }
            row["basis"] = _basis(row)
            rows.append(row)
            previous_end = day
    return rows


def _basis(row: dict) -> str:
    halt_note = ""
    if row["halted_days"]:
        halt_note = penalty_setting("basis.halt_note_template").format(
            halted_days=row["halted_days"]
        )
    return penalty_setting("basis.decision_template").format(
        law=penalty_setting("basis.law"), halt_note=halt_note, **row
    )


def penalty_ledger(events: pd.DataFrame, stacks: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per day-by-day penalty decision (case, round, failed re-inspection), accepted events only.

    penalty days = calendar days from the day after service (or after the previous failed
    re-inspection of the round) to the re-inspection day, minus halted days; amount = the round's
    original fine × penalty days. No cap on rounds or days. A re-inspection on the day of service
    gives 0 days.
    """
    cases, _ = _run_cases(_normalise(events), stacks)
    rows = [row for case_id in sorted(cases) for row in _decisions(cases[case_id])]
    frame = pd.DataFrame(rows, columns=DECISION_COLUMNS)
    return frame.astype({"round": "int64", "decision_no": "int64", "penalty_days": "int64"})


def case_rounds(events: pd.DataFrame, stacks: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per case and round: dates, state, failed re-inspections, penalty days and total."""
    cases, _ = _run_cases(_normalise(events), stacks)
    decisions = penalty_ledger(events, stacks)
    rows = []
    for case_id in sorted(cases):
        case = cases[case_id]
        for rnd in case.rounds:
            mine = decisions[(decisions["case_id"] == case_id) & (decisions["round"] == rnd.number)]
            rows.append(
                {
                    "case_id": case_id,
                    "stack_id": case.stack_id,
                    "round": rnd.number,
                    "state": "halted" if rnd.halted and rnd.state != "closed" else rnd.state,
                    "found_date": rnd.found_date,
                    "fine_date": rnd.fine_date,
                    "fine_yuan": rnd.fine_yuan,
                    "served_date": rnd.served_date,
                    "n_failed_reinspections": len(rnd.failed),
                    "last_failed_date": rnd.failed[-1][0] if rnd.failed else None,
                    "closed_date": rnd.passed_date,
                    "penalty_days": int(mine["penalty_days"].sum()),
                    "penalty_yuan": float(mine["amount_yuan"].sum()),
                    "first_date": _first_date(rnd),
                }
            )
    return pd.DataFrame(rows)


def _first_date(rnd: _Round) -> str | None:
    candidates = [d for d in (rnd.found_date, rnd.fine_date, rnd.served_date) if d]
    candidates += [h for h, _ in rnd.halts]
    return min(candidates) if candidates else None


# --- cases from exceedances -------------------------------------------------------------------

_NEXT_ACTION = {
    "found": "fine at once (即超即罚)",
    "fined": "serve the correction order",
    "served": "re-inspect (unannounced) by {due}",
    "halted": "verify the halt; record the resume before re-inspecting",
    "closed": "closed",
}


def case_id_for(stack_id: str, first_exceedance_id: str) -> str:
    """Deterministic id of a case proposed from data (the bureau may file it under its own id)."""
    digest = hashlib.sha256(f"{stack_id}\n{first_exceedance_id}".encode()).hexdigest()
    return f"CASE-{digest[:12]}"


def open_cases(
    exceedances: pd.DataFrame, events: pd.DataFrame, stacks: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Cases: the bureau's (from accepted events) joined with the exceedances they cover, plus a new
    proposed case (``source`` "exceedances", state "found": fine at once) per stack whose
    exceedances no case covers.

    An exceedance on day d belongs to the stack's case whose window covers it: after the previous
    case's closure and up to this case's closure (open cases have no end). The current round of each
    case decides its state and next action.
    """
    rounds = case_rounds(events, stacks) if len(events) else pd.DataFrame()
    windows = _case_windows(rounds)
    ex = exceedances.sort_values(["stack_id", "hour_start"], kind="stable")
    owner = [_owner(windows, s, d) for s, d in zip(ex["stack_id"], ex["day"], strict=True)]
    ex = ex.assign(case_id=owner)
    rows = []
    for window in windows:
        mine = ex[ex["case_id"] == window["case_id"]]
        rows.append(_case_row(window, mine, "events"))
    for stack_id, group in ex[ex["case_id"].isna()].groupby("stack_id", sort=True):
        first = group.iloc[0]
        window = {
            "case_id": case_id_for(stack_id, first["exceedance_id"]),
            "stack_id": stack_id,
            "round": 1,
            "state": "found",
            "fine_date": None,
            "fine_yuan": None,
            "served_date": None,
            "last_failed_date": None,
            "closed_date": None,
        }
        rows.append(_case_row(window, group, "exceedances"))
    return pd.DataFrame(rows)


def _case_windows(rounds: pd.DataFrame) -> list[dict]:
    if rounds.empty:
        return []
    last = rounds.sort_values(["case_id", "round"]).groupby("case_id", sort=False).tail(1)
    first = rounds.groupby("case_id")["first_date"].min()
    windows = []
    for _, row in last.iterrows():
        window = {key: _none(value) for key, value in row.to_dict().items()}
        window["opened"] = first[row["case_id"]]
        windows.append(window)
    windows.sort(key=lambda w: (w["stack_id"], w["opened"] or ""))
    previous: dict[str, str | None] = {}
    for window in windows:
        window["after"] = previous.get(window["stack_id"])
        previous[window["stack_id"]] = window["closed_date"] or "9999-12-31"
    return windows


def _owner(windows: list[dict], stack_id: str, day: str) -> str | None:
    for window in windows:
        if window["stack_id"] != stack_id:
            continue
        after, end = window["after"], window["closed_date"]
        if (after is None or day > after) and (end is None or pd.isna(end) or day <= end):
            return window["case_id"]
    return None


def _case_row(window: dict, mine: pd.DataFrame, source: str) -> dict:
    state = window["state"]
    anchor = _none(window.get("last_failed_date")) or _none(window.get("served_date"))
    due = None
    if state == "served" and anchor:
        span = int(penalty_setting("reinspection.next_due_days"))
        due = (date.fromisoformat(anchor) + timedelta(days=span)).isoformat()
    enterprise = mine["enterprise_id"].iloc[0] if len(mine) and "enterprise_id" in mine else None
    return {
        "case_id": window["case_id"],
        "stack_id": window["stack_id"],
        "enterprise_id": enterprise,
        "source": source,
        "round": int(window["round"]),
        "state": state,
        "fine_date": _none(window.get("fine_date")),
        "fine_yuan": _none(window.get("fine_yuan")),
        "served_date": _none(window.get("served_date")),
        "last_failed_date": _none(window.get("last_failed_date")),
        "closed_date": _none(window.get("closed_date")),
        "reinspection_due_by": due,
        "n_exceedances": len(mine),
        "first_exceedance_id": mine["exceedance_id"].iloc[0] if len(mine) else None,
        "first_hour": mine["hour_start"].iloc[0] if len(mine) else None,
        "last_day": mine["day"].iloc[-1] if len(mine) else None,
        "pollutants": sorted(set(mine["pollutant"])) if len(mine) else [],
        "exceedance_ids": list(mine["exceedance_id"]),
        "next_action": _NEXT_ACTION[state].format(due=due),
    }


def _none(value: object) -> object:
    return (
        None if value is None or (not isinstance(value, list | str) and pd.isna(value)) else value
    )


# --- what to re-inspect -----------------------------------------------------------------------


def reinspection_due(
    cases: pd.DataFrame,
    hourly: pd.DataFrame,
    stack_limits: pd.DataFrame | None = None,
    as_of: str | None = None,
) -> pd.DataFrame:
    """Cases awaiting a re-inspection, ranked by what the data says since the order was served.

    ``hourly`` is either an exceedances frame (it has ``limit_value``) or the hourly means, in which
    case ``stack_limits`` decides which valid hours exceed. Hours count from the day after service
    (or after the last failed re-inspection). Priority 1: still exceeding; 2: no valid data since
    (the monitor may be off); 3: valid data within limits. Due within 30 days of service.
    """
    waiting = cases[cases["state"] == "served"]
    decimals = int(setting("cems.compare_decimals"))
    if "limit_value" in hourly.columns:
        judged = hourly.rename(columns={"hourly_mean": "mean_corrected"}).assign(valid=True)
    elif stack_limits is not None:
        judged = limits_in_force(hourly[hourly["valid"].eq(True)], stack_limits)
    else:
        raise ValueError("reinspection_due needs exceedances, or hourly means with stack_limits")
    judged = judged.assign(exceeds=judged["mean_corrected"].round(decimals) > judged["limit_value"])
    rows = []
    for _, case in waiting.iterrows():
        since = _none(case["last_failed_date"]) or case["served_date"]
        due_by = _none(case["reinspection_due_by"])
        after = judged[(judged["stack_id"] == case["stack_id"]) & (judged["day"] > since)]
        exceeding = after[after["exceeds"]]
        still = len(exceeding) > 0
        priority = 1 if still else (2 if after.empty else 3)
        rows.append(
            {
                "case_id": case["case_id"],
                "stack_id": case["stack_id"],
                "served_date": case["served_date"],
                "since": since,
                "due_by": due_by,
                "overdue": bool(as_of is not None and due_by is not None and due_by < as_of),
                "n_hours_after": len(after),
                "n_exceeding_hours_after": len(exceeding),
                "last_exceeding_day": exceeding["day"].max() if still else None,
                "max_ratio": float((exceeding["mean_corrected"] / exceeding["limit_value"]).max())
                if still
                else None,
                "still_exceeding": still,
                "priority": priority,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["priority", "due_by", "case_id"], kind="stable").reset_index(
        drop=True
    )
