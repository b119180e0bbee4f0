"""CEMS hourly means and exceedances: expectations computed by hand from HJ 75-2017's definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from enforcement.cems import exceedance_id, exceedances, hourly_means, limit_overlaps, o2_correct
from tests.enforcement._helpers import SO2, STACKS, beijing, minute_rows

# --- O2 correction -------------------------------------------------------------------------------


def test_o2_correct_scalar_hand_computed():
    # 100 × (21 − 9) / (21 − 12) = 100 × 12 / 9
    assert o2_correct(100.0, 12.0, 9.0) == pytest.approx(133.3333333, rel=1e-9)
    # gas boiler, ref 3.5 %: 40 × 17.5 / 15 = 46.666…
    assert o2_correct(40.0, 6.0, 3.5) == pytest.approx(46.6666667, rel=1e-9)


@pytest.mark.parametrize("oxygen", [21.0, 20.5, 25.0, -1.0, np.nan, None])
def test_o2_fault_is_nan_not_a_division(oxygen):
    assert math.isnan(o2_correct(100.0, oxygen, 9.0))


def test_o2_just_under_cut_off_still_corrects():
    assert o2_correct(10.0, 20.4, 9.0) == pytest.approx(10.0 * 12.0 / 0.6)


def test_o2_correct_series_with_faults_and_series_ref():
    measured = pd.Series([100.0, 100.0, 100.0, 50.0])
    oxygen = pd.Series([12.0, 21.0, np.nan, 3.5])
    ref = pd.Series([9.0, 9.0, 9.0, 3.5])
    out = o2_correct(measured, oxygen, ref)
    assert out.iloc[0] == pytest.approx(400.0 / 3.0)
    assert out.iloc[1:3].isna().all()
    assert out.iloc[3] == pytest.approx(50.0)


# --- hourly means ------------------------------------------------------------------------------


def test_exactly_45_valid_minutes_is_a_valid_hour_44_is_not():
    good = minute_rows("2017-11-01 10:00", 45)
    short = minute_rows("2017-11-01 11:00", 44)
    hourly = hourly_means(pd.concat([good, short], ignore_index=True), STACKS)
    by_hour = hourly.set_index(hourly["hour_start"].dt.tz_convert("Asia/Shanghai").dt.hour)
    assert by_hour.loc[10, "n_valid_minutes"] == 45
    assert bool(by_hour.loc[10, "valid"]) is True
    assert by_hour.loc[11, "n_valid_minutes"] == 44
    assert bool(by_hour.loc[11, "valid"]) is False
    assert by_hour.loc[10, "mean_corrected"] == pytest.approx(400.0 / 3.0)


@pytest.mark.parametrize("bad_flag", ["M", "C", "D", "F", "B"])
def test_flags_m_c_d_f_b_do_not_count(bad_flag):
    flags = ["N"] * 44 + [bad_flag] * 16
    avg = [100.0] * 44 + [900.0] * 16
    hourly = hourly_means(minute_rows("2017-11-01 10:00", 60, avg=avg, flag=flags), STACKS)
    row = hourly.iloc[0]
    assert row["n_valid_minutes"] == 44
    assert not row["valid"]
    # the excluded minutes do not leak into the means
    assert row["mean_measured"] == pytest.approx(100.0)


def test_t_counts_but_is_flagged_for_review():
    flags = ["N"] * 40 + ["T"] * 5
    hourly = hourly_means(minute_rows("2017-11-01 10:00", 45, flag=flags), STACKS)
    row = hourly.iloc[0]
    assert row["n_valid_minutes"] == 45 and row["valid"]
    assert row["n_review_minutes"] == 5


def test_s_counts_only_with_an_audit_record():
    flags = ["N"] * 40 + ["S"] * 5
    rows = minute_rows("2017-11-01 10:00", 45, flag=flags)
    without = hourly_means(rows, STACKS).iloc[0]
    assert without["n_valid_minutes"] == 40 and not without["valid"]
    s_rows = rows[(rows["flag"] == "S") & (rows["code"] == SO2)]
    # audit records as validation reads them: device, code, and the period they cover
    audits = s_rows[["device_id", "code"]].assign(
        start=s_rows["data_time"], end=s_rows["data_time"]
    )
    with_audit = hourly_means(rows, STACKS, audits=audits).iloc[0]
    assert with_audit["n_valid_minutes"] == 45 and with_audit["valid"]
    # an audit for a single minute adds one minute only
    one = hourly_means(rows, STACKS, audits=audits.head(1)).iloc[0]
    assert one["n_valid_minutes"] == 41


def test_s_on_the_validated_table_follows_validations_audit_verdict():
    # validation (rule 3) leaves an S value valid only when an audit record covers it
    flags = ["N"] * 40 + ["S"] * 5
    rows = minute_rows("2017-11-01 10:00", 45, flag=flags).assign(invalid_reason="")
    unaudited = (rows["flag"] == "S") & (rows.index % 4 == 0)  # some S minutes lack an audit
    rows.loc[unaudited, "valid"] = False
    rows.loc[unaudited, "invalid_reason"] = "flag:S-unaudited"
    expected = 40 + int(((rows["flag"] == "S") & (rows["code"] == SO2) & ~unaudited).sum())
    assert hourly_means(rows, STACKS).iloc[0]["n_valid_minutes"] == expected < 45


def test_a_value_sent_without_a_flag_counts_as_normal():
    rows = minute_rows("2017-11-01 10:00", 45)
    rows["flag"] = pd.Series([None] * len(rows), dtype="str")
    assert hourly_means(rows, STACKS).iloc[0]["n_valid_minutes"] == 45
    assert hourly_means(rows.drop(columns="flag"), STACKS).iloc[0]["valid"]


def test_invalid_row_does_not_count_even_with_flag_n():
    rows = minute_rows("2017-11-01 10:00", 50)
    rows.loc[(rows["code"] == SO2) & (rows.index < 20), "valid"] = False  # 10 pollutant minutes
    row = hourly_means(rows, STACKS).iloc[0]
    assert row["n_valid_minutes"] == 40


def test_minute_without_valid_o2_does_not_count():
    oxygen = [12.0] * 44 + [21.0] * 3 + [np.nan] * 3
    rows = minute_rows("2017-11-01 10:00", 50, o2=oxygen)
    # a further 2 minutes whose O2 carries a maintenance flag
    rows2 = minute_rows("2017-11-01 10:50", 2, o2_flag="M", prefix="m")
    row = hourly_means(pd.concat([rows, rows2], ignore_index=True), STACKS).iloc[0]
    assert row["n_valid_minutes"] == 44
    assert not row["valid"]
    assert row["o2_mean"] == pytest.approx(12.0)


def test_correction_is_per_minute_then_averaged():
    avg = [100.0] * 30 + [200.0] * 30
    oxygen = [12.0] * 30 + [15.0] * 30
    row = hourly_means(minute_rows("2017-11-01 10:00", 60, avg=avg, o2=oxygen), STACKS).iloc[0]
    # per minute: 100×12/9 = 133.33…, 200×12/6 = 400 → mean 266.66…
    assert row["mean_corrected"] == pytest.approx((400.0 / 3.0 + 400.0) / 2.0)
    assert row["mean_measured"] == pytest.approx(150.0)
    assert row["o2_mean"] == pytest.approx(13.5)
    # correcting the means would give 150 × 12 / 7.5 = 240: a different (wrong) number
    assert row["mean_corrected"] != pytest.approx(240.0)
    # the device's own ZsAvg is kept for comparison only (our fixture sends 1.1 × Avg)
    assert row["zs_device_mean"] == pytest.approx(165.0)


def test_hours_follow_the_beijing_clock_and_day():
    rows = minute_rows("2017-11-01 23:30", 60)  # 23:30 Nov 1 to 00:29 Nov 2, Beijing
    hourly = hourly_means(rows, STACKS).sort_values("hour_start")
    assert list(hourly["day"]) == ["2017-11-01", "2017-11-02"]
    assert list(hourly["n_valid_minutes"]) == [30, 30]
    assert hourly["hour_start"].iloc[0] == pd.Timestamp("2017-11-01 15:00", tz="UTC")
    assert str(hourly["hour_start"].dtype) == "datetime64[ns, UTC]"
    assert hourly["day"].dtype == "str"


def test_duplicate_minute_under_two_ids_counts_once():
    rows = minute_rows("2017-11-01 10:00", 44)
    again = minute_rows("2017-11-01 10:43", 1, prefix="dup")
    row = hourly_means(pd.concat([rows, again], ignore_index=True), STACKS).iloc[0]
    assert row["n_valid_minutes"] == 44


def test_reading_ids_are_the_counted_minutes():
    flags = ["N"] * 45 + ["D"] * 2
    rows = minute_rows("2017-11-01 10:00", 47, flag=flags)
    row = hourly_means(rows, STACKS).iloc[0]
    expected = sorted(rows[(rows["code"] == SO2) & (rows["flag"] == "N")]["reading_id"])
    assert row["reading_ids"] == expected


def test_other_streams_and_hourly_cn_are_ignored_and_unknown_device_dropped():
    rows = minute_rows("2017-11-01 10:00", 45)
    hourly_cn = rows.assign(cn="2061", reading_id=rows["reading_id"] + "h")
    ambient = rows.assign(stream="ambient", reading_id=rows["reading_id"] + "a")
    stranger = minute_rows("2017-11-01 10:00", 45, device="DEV9")
    hourly = hourly_means(
        pd.concat([rows, hourly_cn, ambient, stranger], ignore_index=True), STACKS
    )
    assert len(hourly) == 1
    assert hourly.iloc[0]["n_valid_minutes"] == 45


def test_no_cems_rows_gives_empty_frame_with_columns():
    hourly = hourly_means(minute_rows("2017-11-01 10:00", 3).iloc[0:0], STACKS)
    assert hourly.empty
    assert "mean_corrected" in hourly.columns and "reading_ids" in hourly.columns


# --- exceedances -------------------------------------------------------------------------------

LIMITS = pd.DataFrame(
    {
        "stack_id": ["S1", "S1"],
        "pollutant": [SO2, SO2],
        "limit_mg_m3": [200.0, 100.0],
        "o2_ref_pct": [9.0, 9.0],
        "valid_from": ["2017-01-01", "2017-11-02"],
        "valid_to": ["2017-11-02", ""],
        "standard": ["GB 13271-2014", "GB 13271-2014"],
        "category": ["new", "special"],
        "source": ["permit 2017-001", "permit 2017-001 amendment"],
    }
)


def hour_at(start: str, corrected_mean: float) -> pd.DataFrame:
    # O2 = 9 % equals the reference: corrected == measured, so the mean is exactly the input
    return minute_rows(start, 60, avg=corrected_mean, o2=9.0, prefix=start[-5:-3])


def test_limit_change_at_beijing_midnight():
    rows = pd.concat(
        [hour_at("2017-11-01 23:00", 150.0), hour_at("2017-11-02 00:00", 150.0)], ignore_index=True
    )
    hourly = hourly_means(rows, STACKS)
    found = exceedances(hourly, STACKS, LIMITS)
    assert len(found) == 1
    hit = found.iloc[0]
    assert hit["day"] == "2017-11-02"
    assert hit["hour_start"] == pd.Timestamp("2017-11-01 16:00", tz="UTC")
    assert hit["limit_value"] == 100.0
    assert hit["hourly_mean"] == pytest.approx(150.0)
    assert hit["enterprise_id"] == "E1"
    assert "special" in hit["limit_source"] and "amendment" in hit["limit_source"]
    assert hit["n_readings"] == 60 and len(hit["reading_ids"]) == 60


def test_equal_to_limit_is_not_an_exceedance():
    hourly = hourly_means(hour_at("2017-11-02 05:00", 100.0), STACKS)
    assert exceedances(hourly, STACKS, LIMITS).empty
    hourly = hourly_means(hour_at("2017-11-02 05:00", 100.01), STACKS)
    assert len(exceedances(hourly, STACKS, LIMITS)) == 1


def test_corrected_value_decides_not_measured():
    # measured 80 at O2 15 % → corrected 80 × 12 / 6 = 160 > 100
    rows = minute_rows("2017-11-02 06:00", 60, avg=80.0, o2=15.0)
    found = exceedances(hourly_means(rows, STACKS), STACKS, LIMITS)
    assert found.iloc[0]["hourly_mean"] == pytest.approx(160.0)


def test_invalid_hour_is_never_an_exceedance():
    rows = minute_rows("2017-11-02 07:00", 44, avg=900.0, o2=9.0)
    assert exceedances(hourly_means(rows, STACKS), STACKS, LIMITS).empty


def test_no_limit_in_force_no_exceedance():
    limits = LIMITS.iloc[[0]].assign(valid_from="2017-01-01", valid_to="2017-06-01")
    hourly = hourly_means(hour_at("2017-11-02 05:00", 900.0), STACKS)
    assert exceedances(hourly, STACKS, limits).empty


def test_exceedance_id_is_stable_and_distinct():
    hour = pd.Timestamp("2017-11-01 16:00", tz="UTC")
    a = exceedance_id("S1", SO2, hour)
    assert a == exceedance_id("S1", SO2, hour.tz_convert("Asia/Shanghai"))
    assert a != exceedance_id("S1", "a21002", hour)
    assert a != exceedance_id("S1", SO2, hour + pd.Timedelta(hours=1))
    rows = hour_at("2017-11-02 05:00", 150.0)
    first = exceedances(hourly_means(rows, STACKS), STACKS, LIMITS)
    second = exceedances(
        hourly_means(rows.sample(frac=1.0, random_state=3), STACKS), STACKS, LIMITS
    )
    assert (
        list(first["exceedance_id"])
        == list(second["exceedance_id"])
        == [exceedance_id("S1", SO2, beijing("2017-11-02 05:00"))]
    )


def test_overlapping_limits_use_the_strictest_and_are_reported():
    limits = pd.concat(
        [LIMITS, LIMITS.iloc[[1]].assign(limit_mg_m3=120.0, valid_from="2017-10-01")],
        ignore_index=True,
    )
    overlaps = limit_overlaps(limits)
    assert len(overlaps) >= 1
    hourly = hourly_means(hour_at("2017-11-02 05:00", 110.0), STACKS)
    hit = exceedances(hourly, STACKS, limits)
    assert list(hit["limit_value"]) == [100.0]
