"""Each tamper/fault rule: one planted positive, and the honest look-alikes it must leave alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from validation import tamper

START = datetime(2017, 11, 14, 16, 0, tzinfo=UTC)  # 2017-11-15 00:00 Beijing


def minutes_frame(
    device_id: str,
    values: dict[str, np.ndarray],
    *,
    stream: str = "cems",
    start: datetime = START,
    lag_s: float = 62.0,
    cn: str = "2051",
    step_s: float = 60.0,
) -> pd.DataFrame:
    """Rows as ValidationOutcome.rows carries them: one per minute and code, all valid, flag N."""
    n = len(next(iter(values.values())))
    times = pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=step_s))
    ids = [f"{device_id}-{cn}-{i:06d}" for i in range(n)]
    parts = []
    for code, series in values.items():
        parts.append(
            pd.DataFrame(
                {
                    "reading_id": ids,
                    "device_id": device_id,
                    "stream": stream,
                    "cn": cn,
                    "data_time": times,
                    "received_at": times + pd.Timedelta(seconds=lag_s),
                    "code": code,
                    "avg": np.asarray(series, dtype="float64") if cn != "2011" else np.nan,
                    "rtd": np.asarray(series, dtype="float64") if cn == "2011" else np.nan,
                    "flag": "N",
                    "valid": True,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def noisy(rng, level: float, n: int, rel: float = 0.05) -> np.ndarray:
    return np.round(level * (1 + rel * rng.standard_normal(n)), 2)


def stack(rng, hours: int, device_id: str = "CEMS001", **changes) -> pd.DataFrame:
    n = hours * 60
    values = {
        "a34013": noisy(rng, 12.0, n),
        "a21026": noisy(rng, 80.0, n),
        "a21002": noisy(rng, 150.0, n),
        "a19001": np.round(9.8 + 0.15 * rng.standard_normal(n), 2),
        "a01012": np.round(120.0 + 0.8 * rng.standard_normal(n), 1),
        "a01011": np.round(10.0 * (1 + 0.02 * rng.standard_normal(n)), 2),
    }
    for code, change in changes.items():
        values[code] = change(values[code])
    return minutes_frame(device_id, values)


# --- flatline ------------------------------------------------------------------------------------


def test_flatline_found(rules):
    rng = np.random.default_rng(1)

    def stuck(v):
        v = v.copy()
        v[60:130] = 12.34  # a blocked probe: 70 minutes of one value
        return v

    rows = stack(rng, 3, a34013=stuck)
    found = tamper.flatline(rows, rules)
    assert len(found) == 1
    hit = found.iloc[0]
    assert (hit["device_id"], hit["rule"], hit["code"]) == ("CEMS001", "flatline", "a34013")
    assert (hit["statistic"], hit["threshold"]) == (70.0, 60.0)
    assert hit["window_start"] == pd.Timestamp(START + timedelta(minutes=60))
    assert hit["window_end"] == pd.Timestamp(START + timedelta(minutes=130))
    assert len(json.loads(hit["evidence"])) == 70
    assert hit["detail"] == "a34013 held 12.34 for 70 valid minutes"


def test_flatline_leaves_honest_look_alikes(rules):
    rng = np.random.default_rng(2)

    def short_and_zero_and_gapped(v):
        v = v.copy()
        v[0:59] = 12.34  # 59 minutes: under the 60 required
        v[60:140] = 0.0  # a clean stack reads exactly zero: not judged
        return v

    rows = stack(rng, 4, a34013=short_and_zero_and_gapped)
    # 80 minutes of one value on SO2, broken by a 15-minute outage into 40 + 40
    so2 = rows["code"] == "a21026"
    minute = (rows["data_time"] - pd.Timestamp(START)).dt.total_seconds() // 60
    rows.loc[so2 & minute.between(150, 244), "avg"] = 55.5
    rows = rows[~(minute.between(190, 204))]
    assert tamper.flatline(rows, rules).empty
    # invalid rows are not judged: a maintenance period holding one value is not a flatline
    flat = stack(rng, 2, a21002=lambda v: np.full_like(v, 77.7))
    flat.loc[flat["code"] == "a21002", "valid"] = False
    assert tamper.flatline(flat, rules).empty


# --- dilution ------------------------------------------------------------------------------------


def _hours(v, first: int, last: int, f) -> np.ndarray:
    v = v.copy()
    v[first * 60 : last * 60] = f(v[first * 60 : last * 60])
    return v


#: a stack diluted 10:00-13:00: O2 up, concentrations down, the flue cooler and faster
DILUTED = {
    "a19001": lambda v: _hours(v, 10, 13, lambda x: x + 7.5),
    "a21026": lambda v: _hours(v, 10, 13, lambda x: x * 0.35),
    "a21002": lambda v: _hours(v, 10, 13, lambda x: x * 0.35),
    "a34013": lambda v: _hours(v, 10, 13, lambda x: x * 0.35),
    "a01012": lambda v: _hours(v, 10, 13, lambda x: x - 20),
    "a01011": lambda v: _hours(v, 10, 13, lambda x: x * 1.5),
}


def test_dilution_found(rules):
    rng = np.random.default_rng(3)
    diluted = DILUTED
    found = tamper.dilution(stack(rng, 24, **diluted), rules)
    assert len(found) == 1
    hit = found.iloc[0]
    assert hit["rule"] == "dilution" and hit["code"] == "a19001"
    assert hit["window_start"] == pd.Timestamp(START + timedelta(hours=10))
    assert hit["window_end"] == pd.Timestamp(START + timedelta(hours=13))
    assert hit["statistic"] == pytest.approx(7.5, abs=0.1) and hit["threshold"] == 3.0
    assert "flue -20" in hit["detail"] and "velocity x1.5" in hit["detail"]
    assert len(json.loads(hit["evidence"])) == 180


def test_low_load_and_short_events_are_not_dilution(rules):
    rng = np.random.default_rng(4)
    low_load = {  # turndown: more excess air, lower concentration, cooler AND slower flue
        "a19001": lambda v: _hours(v, 2, 8, lambda x: x + 3.5),
        "a21026": lambda v: _hours(v, 2, 8, lambda x: x * 0.6),
        "a01012": lambda v: _hours(v, 2, 8, lambda x: x - 15),
        "a01011": lambda v: _hours(v, 2, 8, lambda x: x * 0.7),
    }
    assert tamper.dilution(stack(rng, 24, **low_load), rules).empty
    one_hour = {
        "a19001": lambda v: _hours(v, 5, 6, lambda x: x + 7.5),
        "a21026": lambda v: _hours(v, 5, 6, lambda x: x * 0.3),
        "a01012": lambda v: _hours(v, 5, 6, lambda x: x - 20),
        "a01011": lambda v: _hours(v, 5, 6, lambda x: x * 1.5),
    }
    assert tamper.dilution(stack(rng, 24, **one_hour), rules).empty


# --- ratio step ----------------------------------------------------------------------------------


def _load_cycle(n: int) -> np.ndarray:
    minute = np.arange(n)
    return 1 + 0.3 * np.sin(2 * np.pi * minute / 1440)


def test_changed_coefficient_found(rules):
    rng = np.random.default_rng(5)
    n = 96 * 60
    load = _load_cycle(n)
    so2 = noisy(rng, 80.0, n) * load
    so2[48 * 60 :] *= 0.5  # the SO2 channel's coefficient halved on day 3
    rows = minutes_frame(
        "CEMS001",
        {
            "a21026": so2,
            "a21002": noisy(rng, 150.0, n) * load,
            "a34013": noisy(rng, 12.0, n) * load,
        },
    )
    found = tamper.ratio_step(rows, rules)
    assert set(found["code"]) == {"a21026/a21002", "a34013/a21026"}
    hit = found.set_index("code").loc["a21026/a21002"]
    assert hit["statistic"] == pytest.approx(2.0, rel=0.1) and hit["threshold"] == 1.5
    assert "fell" in hit["detail"] and "2017-11-16T16:00:00+00:00" in hit["detail"]


def test_load_changes_move_both_pollutants_and_are_not_a_step(rules):
    rng = np.random.default_rng(6)
    n = 96 * 60
    load = _load_cycle(n)
    load[30 * 60 : 60 * 60] *= 0.5  # a long turndown: everything halves together
    rows = minutes_frame(
        "CEMS001", {"a21026": noisy(rng, 80.0, n) * load, "a21002": noisy(rng, 150.0, n) * load}
    )
    assert tamper.ratio_step(rows, rules).empty


# --- flags clustering around events ---------------------------------------------------------------


def _flagged_device(rng, flag_hours: list[int]) -> pd.DataFrame:
    rows = minutes_frame("CEMS001", {"a21026": noisy(rng, 80.0, 192 * 60)})  # 8 days
    hour = ((rows["data_time"] - pd.Timestamp(START)).dt.total_seconds() // 3600).astype(int)
    rows.loc[hour.isin(flag_hours) & (rows["data_time"].dt.minute < 20), "flag"] = "D"
    return rows


EVENT_HOURS = [13, 37, 61, 85, 109, 133]


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device_id": "CEMS001",
            "at": [pd.Timestamp(START) + pd.Timedelta(hours=h, minutes=30) for h in EVENT_HOURS],
            "kind": "exceedance",
        }
    )


def test_fault_flags_right_after_exceedances_found(rules):
    rng = np.random.default_rng(7)
    rows = _flagged_device(rng, [h + 1 for h in EVENT_HOURS] + [150])
    found = tamper.flag_cluster(rows, rules, events=_events())
    assert len(found) == 1
    hit = found.iloc[0]
    assert hit["rule"] == "flag_cluster" and hit["threshold"] == 3.0
    assert hit["statistic"] >= 3.0
    assert len(json.loads(hit["evidence"])) == 6 * 20


def test_scattered_maintenance_flags_are_not_a_cluster(rules):
    rng = np.random.default_rng(8)
    rows = _flagged_device(rng, [3, 27, 50, 75, 98, 122, 146, 170])  # daily, away from events
    assert tamper.flag_cluster(rows, rules, events=_events()).empty
    # and under a week of data nothing is judged at all
    short = _flagged_device(rng, [h + 1 for h in EVENT_HOURS])
    short = short[short["data_time"] < pd.Timestamp(START) + pd.Timedelta(days=6)]
    assert tamper.flag_cluster(short, rules, events=_events()).empty


# --- two devices, one series ----------------------------------------------------------------------


def _stations(rng, n_minutes: int, copy_hours: slice | None, copy_lag_s: float):
    a = np.round(60 + 10 * rng.standard_normal(n_minutes), 1)
    b = np.round(60 + 10 * rng.standard_normal(n_minutes), 1)
    if copy_hours is not None:
        b[copy_hours] = a[copy_hours]
    return pd.concat(
        [
            minutes_frame("AMB001", {"a34004": a}, stream="ambient"),
            minutes_frame("AMB002", {"a34004": b}, stream="ambient", lag_s=62 + copy_lag_s),
            minutes_frame(
                "AMB003",
                {"a34004": np.round(60 + 10 * rng.standard_normal(n_minutes), 1)},
                stream="ambient",
            ),
        ],
        ignore_index=True,
    )


def test_copied_series_names_the_later_device(rules):
    rng = np.random.default_rng(9)
    rows = _stations(rng, 12 * 60, slice(120, 420), copy_lag_s=30)  # hours 2-6 copied
    found = tamper.same_series(rows, rules)
    assert found["device_id"].tolist() == ["AMB002"]
    hit = found.iloc[0]
    assert hit["statistic"] == 5 and hit["code"] == "a34004"
    assert hit["window_start"] == pd.Timestamp(START + timedelta(hours=2))
    assert hit["window_end"] == pd.Timestamp(START + timedelta(hours=7))
    assert "identical to AMB001" in hit["detail"] and "30 s later" in hit["detail"]


def test_copied_series_without_lag_names_both(rules):
    rng = np.random.default_rng(10)
    rows = _stations(rng, 12 * 60, slice(120, 420), copy_lag_s=0)
    found = tamper.same_series(rows, rules)
    assert sorted(found["device_id"]) == ["AMB001", "AMB002"]
    assert all("cannot tell the copy" in d for d in found["detail"])


def test_independent_and_flat_stations_are_not_copies(rules):
    rng = np.random.default_rng(11)
    rows = _stations(rng, 12 * 60, None, copy_lag_s=0)
    # two stations both stuck at the same value: the flatline rule's business, not a copy
    rows.loc[rows["device_id"].isin(["AMB001", "AMB002"]), "avg"] = 35.0
    assert tamper.same_series(rows, rules).empty


# --- clock jumps ---------------------------------------------------------------------------------


def test_forward_clock_jump_found(rules):
    rows = minutes_frame("AMB001", {"a34004": np.arange(120.0)}, stream="ambient")
    later = rows["data_time"] >= pd.Timestamp(START + timedelta(minutes=60))
    rows.loc[later, "data_time"] += pd.Timedelta(hours=1)  # the clock jumped an hour ahead
    found = tamper.clock_jumps(rows, rules)
    assert len(found) == 1
    hit = found.iloc[0]
    assert (hit["rule"], hit["statistic"], hit["threshold"]) == ("clock_jump", 3600.0, 120.0)
    assert json.loads(hit["evidence"]) == ["AMB001-2051-000059", "AMB001-2051-000060"]


def test_backward_jump_of_realtime_records_found_but_replays_ignored(rules):
    realtime = minutes_frame("CEMS001", {"a21026": np.full(30, 80.0)}, cn="2011", lag_s=1)
    back = realtime["reading_id"] >= "CEMS001-2011-000020"
    realtime.loc[back, "data_time"] -= pd.Timedelta(minutes=10)
    found = tamper.clock_jumps(realtime, rules)
    assert found["statistic"].tolist() == [-600.0]

    # a logger replaying 60 stored minutes after an outage: received late, in one burst
    minute = minutes_frame("CEMS002", {"a21026": np.full(180, 80.0)})
    stored = minute["data_time"].between(
        pd.Timestamp(START + timedelta(minutes=60)), pd.Timestamp(START + timedelta(minutes=119))
    )
    minute.loc[stored, "received_at"] = pd.Timestamp(START + timedelta(minutes=121))
    assert tamper.clock_jumps(minute, rules).empty


# --- neighbours ----------------------------------------------------------------------------------


def _network(rng, hours: int, fake: tuple[int, int] | None, biased: bool = False):
    n = hours * 60
    minute = np.arange(n)
    regional = 70 * (1 + 0.3 * np.sin(2 * np.pi * minute / 1440)) + 60 * (minute > 20 * 60)
    frames, lats, lons, ids = [], [], [], []
    for i in range(8):
        factor = 1.5 if (biased and i == 3) else 1 + 0.05 * i
        pm = np.round(regional * factor * (1 + 0.06 * rng.standard_normal(n)), 1)
        if fake is not None and i == 5:
            pm[fake[0] * 60 : fake[1] * 60] = np.round(pm[fake[0] * 60 : fake[1] * 60] * 0.3, 1)
        device = f"AMB{i:03d}"
        frames.append(minutes_frame(device, {"a34004": pm}, stream="ambient"))
        ids.append(device)
        lats.append(34.77 + 0.005 * (i % 3))
        lons.append(113.66 + 0.005 * (i // 3))
    stations = pd.DataFrame(
        {"station_id": [f"M{i}" for i in range(8)], "device_id": ids, "lat": lats, "lon": lons}
    )
    return pd.concat(frames, ignore_index=True), stations


def test_station_far_from_its_neighbours_found(rules):
    rng = np.random.default_rng(12)
    rows, stations = _network(rng, 48, fake=(22, 32))
    found = tamper.neighbour(rows, stations, rules)
    assert found["device_id"].tolist() == ["AMB005"]
    hit = found.iloc[0]
    assert hit["window_start"] == pd.Timestamp(START + timedelta(hours=22))
    assert hit["window_end"] == pd.Timestamp(START + timedelta(hours=32))
    assert hit["statistic"] >= 5.0 and "x0.30" in hit["detail"]


def test_steady_bias_and_shared_episodes_are_usual(rules):
    rng = np.random.default_rng(13)
    rows, stations = _network(rng, 48, fake=None, biased=True)  # one station always reads 1.5x
    assert tamper.neighbour(rows, stations, rules).empty


def test_detect_all_collects_every_rule(rules):
    rng = np.random.default_rng(14)
    rows = stack(rng, 3, a34013=lambda v: np.where(np.arange(len(v)) < 90, 9.99, v))
    jumped = minutes_frame("AMB001", {"a34004": np.arange(90.0) + 20}, stream="ambient")
    jumped.loc[jumped.index >= 45, "data_time"] += pd.Timedelta(minutes=30)
    found = tamper.detect_all(pd.concat([rows, jumped], ignore_index=True), {"stations": None})
    assert list(zip(found["device_id"], found["rule"], strict=True)) == [
        ("AMB001", "clock_jump"),
        ("CEMS001", "flatline"),
    ]
    assert list(found.columns) == tamper.SUSPICION_COLUMNS


def test_per_device_suspicion_and_rates(rules):
    """Every judged device gets a row; rates come from the planted set, clock jumps apart."""
    rng = np.random.default_rng(3)

    def stuck(v):
        v = v.copy()
        v[30:150] = 7.5
        return v

    rows = pd.concat(
        [
            stack(rng, 3, "CEMS001", a34013=stuck),
            stack(rng, 3, "CEMS002"),
            stack(rng, 3, "CEMS003"),
        ],
        ignore_index=True,
    )
    found = tamper.detect_all(rows, {}, rules=rules)
    per_device = tamper.device_suspicion(found, ["CEMS001", "CEMS002", "CEMS003", "CEMS004"])
    assert list(per_device["device_id"]) == ["CEMS001", "CEMS002", "CEMS003", "CEMS004"]
    assert list(per_device["suspected"]) == [True, False, False, False]
    assert "flatline" in per_device.loc[0, "rules"].split(",")
    assert per_device.loc[0, "n_suspicions"] >= 1

    rates = tamper.suspicion_rates(per_device, {"CEMS001", "CEMS003"})
    assert rates["detected"] == ["CEMS001"] and rates["missed"] == ["CEMS003"]
    assert rates["detection_rate"] == 0.5
    assert rates["honest"] == 2 and rates["false_positive_rate"] == 0.0
