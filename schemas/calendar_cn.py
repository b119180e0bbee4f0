"""The Chinese working calendar (stdlib only).

A day is a working day when it is Monday to Friday and not a public holiday, or when the State
Council's annual notice makes it a make-up working day (调休上班, usually a Saturday or Sunday next to
a long holiday). The holidays and make-up days are data, one row per date, in
``schemas/data/cn_workdays_2017_2018.csv`` with the notice each comes from.

Outside the covered range the calendar does not guess: a deadline computed on an unknown calendar
would be a legal statement without basis, so :func:`is_workday` raises :class:`CalendarCoverageError`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

CALENDAR_FILE = Path(__file__).parent / "data" / "cn_workdays_2017_2018.csv"

_SATURDAY = 5


class CalendarCoverageError(ValueError):
    """A date outside the range the holiday notices in the calendar file cover."""


@dataclass(frozen=True)
class WorkCalendar:
    holidays: dict[date, str]
    workdays: dict[date, str]
    covered_from: date
    covered_until: date
    sources: tuple[str, ...]


@cache
def calendar() -> WorkCalendar:
    """The calendar file, loaded once."""
    with open(CALENDAR_FILE, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    holidays: dict[date, str] = {}
    workdays: dict[date, str] = {}
    bounds: dict[str, date] = {}
    sources: list[str] = []
    for row in rows:
        day = date.fromisoformat(row["date"])
        kind = row["kind"]
        if kind == "holiday":
            holidays[day] = row["festival_zh"]
        elif kind == "workday":
            workdays[day] = row["festival_zh"]
        elif kind in ("covered_from", "covered_until"):
            bounds[kind] = day
            continue
        else:
            raise ValueError(f"{CALENDAR_FILE.name}: unknown kind {kind!r} on {row['date']}")
        notice = row["notice"].split(" (")[0]
        if notice not in sources:
            sources.append(notice)
    clash = set(holidays) & set(workdays)
    if clash:
        raise ValueError(f"{CALENDAR_FILE.name}: dates both holiday and workday: {sorted(clash)}")
    return WorkCalendar(
        holidays, workdays, bounds["covered_from"], bounds["covered_until"], tuple(sources)
    )


def _check_covered(day: date) -> WorkCalendar:
    cal = calendar()
    if not cal.covered_from <= day <= cal.covered_until:
        raise CalendarCoverageError(
            f"{day.isoformat()} is outside the working calendar "
            f"({cal.covered_from.isoformat()} to {cal.covered_until.isoformat()}); add the State "
            f"Council holiday notice for that year to {CALENDAR_FILE.name}"
        )
    return cal


def is_workday(day: date) -> bool:
    """True on a Chinese working day (make-up working days included, holidays excluded)."""
    cal = _check_covered(day)
    if day in cal.workdays:
        return True
    if day in cal.holidays:
        return False
    return day.weekday() < _SATURDAY


def add_workdays(start: date, n: int) -> date:
    """The n-th working day after ``start`` (``start`` itself is not counted).

    This is how "within n working days from the day of X" (自X之日起n个工作日内) is counted: the day
    of X does not count, so a notice published on a Friday with n=2 is due by Tuesday. n=0 gives
    ``start`` back; a negative n counts backwards.
    """
    step = 1 if n >= 0 else -1
    remaining = abs(n)
    day = start
    while remaining:
        day += timedelta(days=step)
        if is_workday(day):
            remaining -= 1
    return day


def next_workday_on_or_after(day: date) -> date:
    """``day`` if it is a working day, else the first working day after it."""
    while not is_workday(day):
        day += timedelta(days=1)
    return day


def add_calendar_days(start: date, n: int, *, roll_to_workday: bool = True) -> date:
    """The deadline of a period of n calendar days starting the day after ``start``.

    With ``roll_to_workday`` a period whose last day falls on a rest day ends on the next working
    day, the rule of 民法总则 (2017) art. 201 and 203 for periods counted in days.
    """
    end = start + timedelta(days=n)
    return next_workday_on_or_after(end) if roll_to_workday else end


def holiday_name(day: date) -> str:
    """The festival a holiday or make-up working day belongs to ("" for an ordinary day)."""
    cal = calendar()
    return cal.holidays.get(day) or cal.workdays.get(day) or ""
