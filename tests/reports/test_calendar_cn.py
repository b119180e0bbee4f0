"""The Chinese working calendar against the State Council holiday notices for 2017 and 2018."""

from __future__ import annotations

import csv
from datetime import date, timedelta

import pytest

from schemas.calendar_cn import (
    CALENDAR_FILE,
    CalendarCoverageError,
    add_calendar_days,
    add_workdays,
    calendar,
    holiday_name,
    is_workday,
)


def test_national_day_mid_autumn_2017_is_eight_days_off_with_sep_30_worked():
    # 国办发明电〔2016〕17号: 10月1日至8日放假调休，共8天。9月30日（星期六）上班。
    for day in range(1, 9):
        assert not is_workday(date(2017, 10, day)), f"2017-10-0{day} is a holiday"
    assert date(2017, 9, 30).weekday() == 5  # a Saturday ...
    assert is_workday(date(2017, 9, 30))  # ... worked as a make-up day
    assert is_workday(date(2017, 9, 29))
    assert is_workday(date(2017, 10, 9))  # Monday after the holiday
    assert holiday_name(date(2017, 10, 4)) == "中秋节、国庆节"


def test_spring_festival_2018_with_feb_11_and_feb_24_worked():
    # 国办发明电〔2017〕12号: 2月15日至21日放假调休，共7天。2月11日（星期日）、2月24日（星期六）上班。
    for day in range(15, 22):
        assert not is_workday(date(2018, 2, day))
    assert date(2018, 2, 11).weekday() == 6 and is_workday(date(2018, 2, 11))
    assert date(2018, 2, 24).weekday() == 5 and is_workday(date(2018, 2, 24))
    assert not is_workday(date(2018, 2, 10))  # the Saturday before stays a rest day
    assert not is_workday(date(2018, 2, 25))  # the Sunday after too
    assert is_workday(date(2018, 2, 14)) and is_workday(date(2018, 2, 22))


def test_ordinary_weeks_follow_monday_to_friday():
    assert is_workday(date(2017, 12, 1))  # Friday
    assert not is_workday(date(2017, 12, 2))  # Saturday
    assert not is_workday(date(2017, 12, 3))  # Sunday
    assert is_workday(date(2017, 12, 4))  # Monday


def test_new_year_2018_and_2019_edges():
    assert not is_workday(date(2018, 1, 1))  # 1月1日放假，与周末连休
    assert is_workday(date(2018, 1, 2))
    # 国办发明电〔2018〕15号: 2018年12月30日至2019年1月1日放假调休，2018年12月29日（星期六）上班
    assert is_workday(date(2018, 12, 29))
    assert not is_workday(date(2018, 12, 31))  # a Monday, off
    assert is_workday(date(2019, 1, 2))


def test_add_workdays_across_national_day_2017():
    # Published on Friday 29 Sep: Sat 30 Sep is a make-up workday (1), then the holiday, Mon 9 Oct (2)
    assert add_workdays(date(2017, 9, 29), 2) == date(2017, 10, 9)
    # Published on the make-up Saturday, the last working day before the holiday
    assert add_workdays(date(2017, 9, 30), 1) == date(2017, 10, 9)
    assert add_workdays(date(2017, 9, 30), 2) == date(2017, 10, 10)
    # Published during the holiday: the clock starts after it
    assert add_workdays(date(2017, 10, 3), 2) == date(2017, 10, 10)


def test_add_workdays_across_spring_festival_2018():
    # Sat 10 Feb is a rest day; Sun 11 Feb is worked
    assert add_workdays(date(2018, 2, 10), 1) == date(2018, 2, 11)
    # Wed 14 Feb: the holiday Feb 15-21, then Thu 22 Feb (1), Fri 23 (2), Sat 24 make-up (3)
    assert add_workdays(date(2018, 2, 14), 1) == date(2018, 2, 22)
    assert add_workdays(date(2018, 2, 14), 3) == date(2018, 2, 24)
    assert add_workdays(date(2018, 2, 14), 4) == date(2018, 2, 26)


def test_add_workdays_zero_and_backwards():
    assert add_workdays(date(2017, 10, 4), 0) == date(2017, 10, 4)
    assert add_workdays(date(2017, 10, 9), -1) == date(2017, 9, 30)
    assert add_workdays(date(2018, 2, 26), -4) == date(2018, 2, 14)


def test_calendar_days_roll_over_rest_days_only_when_asked():
    # 15 days after 15 Dec 2017 is Sat 30 Dec; Sun 31 Dec and 1 Jan (holiday) follow
    assert add_calendar_days(date(2017, 12, 15), 15, roll_to_workday=False) == date(2017, 12, 30)
    assert add_calendar_days(date(2017, 12, 15), 15) == date(2018, 1, 2)
    # ending on a make-up working Sunday needs no roll
    assert add_calendar_days(date(2018, 1, 27), 15) == date(2018, 2, 11)


def test_dates_outside_the_notices_are_refused_not_guessed():
    with pytest.raises(CalendarCoverageError, match="outside the working calendar"):
        is_workday(date(2016, 12, 30))
    with pytest.raises(CalendarCoverageError):
        is_workday(date(2019, 5, 1))
    # a deadline that runs off the end is refused too
    with pytest.raises(CalendarCoverageError):
        add_workdays(date(2019, 1, 30), 5)


def test_calendar_file_is_consistent_with_the_notices():
    cal = calendar()
    # make-up working days are always weekend days; holidays never fall on a make-up day
    assert all(day.weekday() >= 5 for day in cal.workdays)
    assert not set(cal.holidays) & set(cal.workdays)
    # the number of working days in the 2017 golden week month and Feb 2018
    oct_2017 = [date(2017, 10, 1) + timedelta(days=i) for i in range(31)]
    assert (
        sum(is_workday(d) for d in oct_2017) == 17
    )  # 22 weekdays minus the holiday weekdays Oct 2-6
    feb_2018 = [date(2018, 2, 1) + timedelta(days=i) for i in range(28)]
    assert sum(is_workday(d) for d in feb_2018) == 17  # 20 weekdays - 5 holiday + 2 make-up
    with open(CALENDAR_FILE, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["kind"] in ("holiday", "workday"):
            assert "国办发明电" in row["notice"], row
            assert row["mark"] == "std"
