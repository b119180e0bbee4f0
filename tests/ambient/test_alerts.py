"""Heavy-pollution alerts built from hour-by-hour rolling-24-hour AQI series.

Counting rule under test (alert_levels.toml): a "day above X" is a 24-hour window above X, and
days are non-overlapping windows, so a run of n consecutive heavy hours holds ceil(n / 24) days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enforcement.alerts import (
    assess_alerts,
    emission_cuts,
    emission_cuts_table,
    level_for,
    rolling_24h_aqi,
)
from schemas.reading import BEIJING

T0 = pd.Timestamp("2017-12-01 01:00", tz=BEIJING)


def series(*segments: tuple[int, float], start: pd.Timestamp = T0) -> pd.Series:
    """Hourly series from (hours, AQI) segments."""
    values = [v for n, v in segments for _ in range(n)]
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="h"))


def at(hours: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=hours)


def steps(result) -> list[tuple[pd.Timestamp, str, str, str]]:
    t = result.transitions
    return list(zip(t["time"], t["from_level"], t["to_level"], t["rule"], strict=True))


def test_blue_for_one_day_above_200_then_lift_after_36_clean_hours():
    # 10 clean hours, 5 at 250, then 40 at 120
    result = assess_alerts(series((10, 100), (5, 250), (40, 120)))
    # heavy from hour 10; 36th clean hour is 15 + 35 = hour 50
    assert steps(result) == [(at(10), "none", "blue", "start"), (at(50), "blue", "none", "lift")]
    episode = result.episodes.iloc[0]
    assert (episode["start"], episode["end"], episode["level"]) == (at(10), at(50), "blue")
    assert episode["peak_aqi"] == 250 and episode["heavy_days"] == 1
    assert episode["required_cuts"] == "PM >= 5 %; VOCs >= 5 %"
    assert "1 day(s) of rolling 24-h AQI above 200" in result.transitions["reason"].iloc[0]
    assert "36 consecutive hours" in result.transitions["reason"].iloc[1]
    assert result.current_level == "none"


def test_yellow_after_a_second_non_overlapping_day():
    # 24 heavy hours are one day; the 25th hour's window does not overlap the first: 2 days
    one_day = assess_alerts(series((24, 250), (40, 100)))
    assert [s[2] for s in steps(one_day)] == ["blue", "none"]
    two_days = assess_alerts(series((25, 250), (40, 100)))
    assert steps(two_days)[:2] == [
        (at(0), "none", "blue", "start"),
        (at(24), "blue", "yellow", "upgrade"),
    ]
    assert two_days.episodes["heavy_days"].iloc[0] == 2


def test_orange_needs_3_days_and_one_above_300():
    only_heavy = assess_alerts(series((49, 250), (40, 100)))
    assert only_heavy.episodes["level"].iloc[0] == "yellow"  # 3 days, none above 300
    with_severe = assess_alerts(series((20, 250), (1, 320), (28, 250), (40, 100)))
    assert [s[2] for s in steps(with_severe)] == ["blue", "yellow", "orange", "none"]
    assert steps(with_severe)[2][0] == at(48)  # third day completes at hour 48
    reason = with_severe.transitions["reason"].iloc[2]
    assert "3 day(s)" in reason and "1 above 300" in reason and "orange" in reason


def test_red_needs_4_days_and_2_above_300():
    one_severe = assess_alerts(series((1, 320), (72, 250), (40, 100)))
    assert one_severe.episodes["level"].iloc[0] == "orange"  # 4 days but 1 above 300
    red = assess_alerts(series((73, 320), (40, 100)))
    assert [s[2] for s in steps(red)] == ["blue", "yellow", "orange", "red", "none"]
    # hour 24: 2 days (2 severe) -> yellow; hour 48: 3 -> orange; hour 72: 4 -> red
    assert [s[0] for s in steps(red)][:4] == [at(0), at(24), at(48), at(72)]
    assert (
        red.episodes["required_cuts"].iloc[0]
        == "SO2 >= 30 %; NOx >= 30 %; PM >= 30 %; VOCs >= 20 %"
    )


def test_red_when_aqi_reaches_500():
    result = assess_alerts(series((3, 150), (1, 500), (40, 100)))
    assert steps(result)[0] == (at(3), "none", "red", "start")
    below = assess_alerts(series((3, 150), (1, 499), (40, 100)))
    assert below.episodes["level"].iloc[0] == "blue"


def test_lift_after_exactly_36_hours_not_35():
    lifted = assess_alerts(series((5, 250), (36, 150), (10, 250)))
    assert [s[3] for s in steps(lifted)] == ["start", "lift", "start"]
    assert steps(lifted)[1][0] == at(40)  # clean hours 5..40
    assert len(lifted.episodes) == 2 and lifted.current_level == "blue"
    held = assess_alerts(series((5, 250), (35, 150), (10, 250)))
    assert [s[3] for s in steps(held)] == ["start", "upgrade"]  # one process, now 2 days
    assert len(held.episodes) == 1 and bool(held.episodes["ongoing"].iloc[0])


def test_moderate_pollution_does_not_lift():
    # 151-200 is above light pollution: 60 hours of it keep the alert
    result = assess_alerts(series((5, 250), (60, 151)))
    assert [s[3] for s in steps(result)] == ["start"]
    assert result.current_level == "blue"


def test_missing_hour_breaks_a_clean_spell():
    s = series((5, 250), (36, 100))
    s.iloc[20] = np.nan
    assert assess_alerts(s).current_level == "blue"
    gap = series((5, 250), (36, 100)).drop(index=at(20))  # an hour that never arrived
    assert assess_alerts(gap).current_level == "blue"


def test_two_episodes_with_a_short_gap_merge_at_the_stricter_level():
    # each run alone is blue (10 heavy hours = 1 day); 20 clean hours do not lift
    merged = assess_alerts(series((10, 250), (20, 100), (10, 250), (40, 100)))
    assert steps(merged) == [
        (at(0), "none", "blue", "start"),
        (at(30), "blue", "yellow", "upgrade"),  # second run's first window: 30 h after the first
        (at(75), "yellow", "none", "lift"),
    ]
    episode = merged.episodes.iloc[0]
    assert len(merged.episodes) == 1
    assert (episode["heavy_runs"], episode["heavy_days"], episode["level"]) == (2, 2, "yellow")
    assert "clause 34: 2 heavy runs are one process" in merged.transitions["reason"].iloc[1]
    # the same runs 36 clean hours apart are two separate blue episodes
    apart = assess_alerts(series((10, 250), (36, 100), (10, 250), (40, 100)))
    assert apart.episodes["level"].tolist() == ["blue", "blue"]


def test_early_start_when_no_improvement_is_forecast_within_12_hours():
    observed = series((10, 120), (3, 260))  # heavy since hour 10: blue
    now = at(12)
    forecast = series((80, 330), start=now + pd.Timedelta(hours=1))
    result = assess_alerts(observed, forecast)
    assert result.forecast_supplied
    assert steps(result) == [
        (at(10), "none", "blue", "start"),
        (now, "blue", "red", "early_start"),
    ]
    reason = result.transitions["reason"].iloc[1]
    assert "observed rolling 24-h AQI 260 > 200" in reason and "forecast minimum 330" in reason
    assert "4 day(s)" in reason and "clause 34" in reason
    assert result.current_level == "red"
    assert result.episodes["basis"].iloc[0] == "observed+forecast"
    assert result.outlook["projected_level"] == "red"


def test_no_early_start_when_improvement_is_forecast_within_12_hours():
    observed = series((10, 120), (3, 260))
    now = at(12)
    forecast = series((5, 330), (1, 190), (74, 330), start=now + pd.Timedelta(hours=1))
    result = assess_alerts(observed, forecast)
    assert [s[3] for s in steps(result)] == ["start"]
    assert result.current_level == "blue"
    assert any("improvement forecast within 12 h" in n for n in result.notes)
    assert result.outlook["projected_level"] == "red"  # the bureau still sees where it is heading
    # improvement only in hour 13 is outside the horizon: the early start applies
    later = series((12, 330), (1, 190), (67, 330), start=now + pd.Timedelta(hours=1))
    assert assess_alerts(observed, later).current_level == "red"


def test_short_forecast_does_not_trigger_early_start():
    observed = series((10, 120), (3, 260))
    forecast = series((11, 400), start=at(13))
    result = assess_alerts(observed, forecast)
    assert result.current_level == "blue"
    assert any("covers 11 of the next 12 hours" in n for n in result.notes)


def test_lift_on_a_forecast_improvement_lasting_36_hours():
    observed = series((5, 250), (20, 100))
    now = at(24)
    lasting = assess_alerts(observed, series((16, 120), (10, 250), start=at(25)))
    assert steps(lasting)[-1] == (now, "blue", "none", "forecast_lift")
    assert lasting.episodes["ended_by"].iloc[0] == "forecast_lift"
    assert "20 h up to" in lasting.transitions["reason"].iloc[-1]
    short = assess_alerts(observed, series((15, 120), (10, 250), start=at(25)))
    assert short.current_level == "blue"
    assert any("lasts 35 h" in n for n in short.notes)


def test_no_forecast_supplied_is_reported():
    result = assess_alerts(series((5, 250)))
    assert not result.forecast_supplied and result.outlook is None
    assert any(n.startswith("no forecast supplied") for n in result.notes)
    with_forecast = assess_alerts(series((5, 250)), series((30, 250), start=at(5)))
    assert not any(n.startswith("no forecast supplied") for n in with_forecast.notes)


def test_forecast_only_process_is_an_outlook_not_a_transition():
    result = assess_alerts(series((10, 100)), series((30, 260), start=at(10)))
    assert result.transitions.empty and result.current_level == "none"
    assert result.outlook["projected_level"] == "yellow"
    assert result.outlook["projected_start"] == at(10)


def test_nullable_integer_aqi_from_compute_aqi_is_accepted():
    values = pd.array([250] * 5 + [None] + [100] * 36, dtype="Int64")
    s = pd.Series(values, index=pd.date_range(T0, periods=len(values), freq="h"))
    # the missing hour 5 is no clean hour: the 36 clean hours run 6..41
    assert steps(assess_alerts(s))[-1] == (at(41), "blue", "none", "lift")


def test_input_checks():
    naive = series((3, 100))
    naive.index = naive.index.tz_localize(None)
    with pytest.raises(ValueError, match="tz-aware"):
        assess_alerts(naive)
    half = series((3, 100))
    half.index = half.index + pd.Timedelta(minutes=30)
    with pytest.raises(ValueError, match="whole hours"):
        assess_alerts(half)
    utc = series((5, 250), (40, 100))
    utc.index = utc.index.tz_convert("UTC")  # same instants in another zone: same answer
    assert steps(assess_alerts(utc))[0][0] == at(0)


def test_levels_and_cuts_come_from_the_plan():
    assert level_for(0, 0, 200.0) is None
    assert level_for(1, 0, 201.0).name == "blue"
    assert level_for(3, 0, 290.0).name == "yellow"
    assert level_for(5, 1, 320.0).name == "orange"
    assert level_for(2, 2, 500.0).name == "red"
    assert emission_cuts("blue") == {"PM": 0.05, "VOCs": 0.05}
    assert emission_cuts("yellow") == {"SO2": 0.10, "NOx": 0.10, "PM": 0.10, "VOCs": 0.10}
    assert emission_cuts("orange") == {"SO2": 0.20, "NOx": 0.20, "PM": 0.20, "VOCs": 0.15}
    assert emission_cuts("none") == {}
    table = emission_cuts_table()
    assert len(table) == 2 + 4 + 4 + 4
    assert table["source"].str.contains("35\\(3\\)").all()


def test_rolling_24h_aqi_from_district_hours():
    n = 30
    hours = pd.date_range(T0, periods=n, freq="h")
    frame = pd.DataFrame({"hour_end": hours, "pm25": [100.0] * 6 + [200.0] * 24})
    aqi = rolling_24h_aqi(frame)
    assert aqi.isna().iloc[:19].all()  # fewer than 20 valid hours
    # hour 20 (index 19): 6 × 100 + 14 × 200 over 20 hours = 170 -> 200 + 100/100 × 20 = 220
    assert aqi.iloc[19] == 220
    # the last window is all 200 -> 250 on the 24-hour PM2.5 table
    assert aqi.iloc[-1] == 250
    assert aqi.index[-1] == hours[-1]
    result = assess_alerts(aqi)
    assert result.transitions["time"].iloc[0] == hours[19]
