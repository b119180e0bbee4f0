"""The tamper scan a group of devices at a time (``validation.tamper.detect_chunked``) returns
exactly what ``detect_all`` returns on all the rows at once, whatever the grouping; and the
monthly step's window scan (``lantian.rules_monthly.scan_window``) reading a group's rows from
the warehouse equals the whole window read at once."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.validation.test_validation_tamper import (
    DILUTED,
    EVENT_HOURS,
    START,
    _flagged_device,
    _load_cycle,
    _network,
    _stations,
    minutes_frame,
    noisy,
    stack,
)
from validation import tamper

#: (device, rule) pairs planted in :func:`planted`
PLANTED = {
    ("CEMS001", "flatline"),
    ("CEMS002", "dilution"),
    ("CEMS003", "ratio_step"),
    ("CEMS004", "flag_cluster"),
    ("CEMS005", "dilution"),
    ("AMB005", "neighbour"),
    ("CPY002", "same_series"),
    ("CPZ001", "same_series"),
    ("CPZ002", "same_series"),
    ("CLK001", "clock_jump"),
}


def renamed(rows: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """The rows with their devices (and the device part of their reading ids) renamed."""
    out = rows.copy()
    for old, new in mapping.items():
        mine = out["device_id"] == old
        out.loc[mine, "reading_id"] = out.loc[mine, "reading_id"].str.replace(old, new, n=1)
        out.loc[mine, "device_id"] = new
    return out


def planted() -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame]:
    """The single-rule fixtures of test_validation_tamper.py in one frame of 20 devices:
    rows, registry (the stations) and events."""
    rng = np.random.default_rng(2024)

    def stuck(v):
        v = v.copy()
        v[60:130] = 12.34
        return v

    diluted = DILUTED
    # a stack without flue temperature or velocity channels, diluted the same way: judged on
    # O2 and concentrations alone, whichever stacks are read with it
    no_flue = stack(rng, 24, "CEMS005", **diluted)
    no_flue = no_flue[~no_flue["code"].isin(["a01012", "a01011"])]
    n = 96 * 60
    load = _load_cycle(n)
    so2 = noisy(rng, 80.0, n) * load
    so2[48 * 60 :] *= 0.5
    ratio = minutes_frame(
        "CEMS003",
        {
            "a21026": so2,
            "a21002": noisy(rng, 150.0, n) * load,
            "a34013": noisy(rng, 12.0, n) * load,
        },
    )
    flags = renamed(
        _flagged_device(rng, [h + 1 for h in EVENT_HOURS] + [150]), {"CEMS001": "CEMS004"}
    )
    network, stations = _network(rng, 48, fake=(22, 32))
    copy_later = _stations(rng, 12 * 60, slice(120, 420), copy_lag_s=30)
    copy_later = renamed(copy_later, {f"AMB00{i}": f"CPY00{i}" for i in (1, 2, 3)})
    copy_same_time = _stations(rng, 12 * 60, slice(60, 360), copy_lag_s=0)
    copy_same_time = renamed(copy_same_time, {f"AMB00{i}": f"CPZ00{i}" for i in (1, 2, 3)})
    jumped = minutes_frame("CLK001", {"a34004": np.arange(120.0) + 20}, stream="ambient")
    jumped.loc[jumped.index >= 60, "data_time"] += pd.Timedelta(hours=1)
    rows = pd.concat(
        [
            stack(rng, 3, "CEMS001", a34013=stuck),
            stack(rng, 24, "CEMS002", **diluted),
            ratio,
            flags,
            no_flue,
            network,
            copy_later,
            copy_same_time,
            jumped,
        ],
        ignore_index=True,
    )
    events = pd.DataFrame(
        {
            "device_id": "CEMS004",
            "at": [pd.Timestamp(START) + pd.Timedelta(hours=h, minutes=30) for h in EVENT_HOURS],
            "kind": "exceedance",
        }
    )
    return rows, {"stations": stations}, events


@pytest.fixture(scope="module")
def planted_case(rules):
    rows, registry, events = planted()
    expected = tamper.detect_all(rows, registry, events=events, rules=rules)
    return rows, registry, events, expected


class RecordingFetch:
    """``fetch_rows`` over rows in memory that keeps the device lists it was asked for."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self.fetch = tamper.rows_fetcher(rows)
        self.calls: list[list[str]] = []

    def __call__(self, device_ids: list[str]) -> pd.DataFrame:
        self.calls.append(list(device_ids))
        return self.fetch(device_ids)


def chunks(devices: list[str], size: int) -> list[list[str]]:
    return [devices[i : i + size] for i in range(0, len(devices), size)]


def split_pairs(devices: list[str]) -> list[list[str]]:
    """Groups of three in a shuffled order, each copy pair cut across the first and last group."""
    pairs = ["CPY001", "CPY002", "CPZ001", "CPZ002"]
    rest = [d for d in devices if d not in pairs]
    order = list(np.random.default_rng(7).permutation(rest))
    groups = chunks(order, 3)
    groups[0] = ["CPY001", "CPZ002", *groups[0]]
    groups[-1] = [*groups[-1], "CPY002", "CPZ001"]
    return groups


GROUPINGS = {
    "one device per group": lambda d: chunks(d, 1),
    "pairs": lambda d: chunks(d, 2),
    "threes, reversed": lambda d: chunks(d[::-1], 3),
    "one group of all": lambda d: [d],
    "copy pairs split": split_pairs,
}


def test_the_planted_cases_are_found_at_once(planted_case):
    rows, _, _, expected = planted_case
    found = set(zip(expected["device_id"], expected["rule"], strict=True))
    assert found >= PLANTED, sorted(PLANTED - found)
    assert rows["device_id"].nunique() == 20
    copy = expected[(expected["device_id"] == "CPY002") & (expected["rule"] == "same_series")]
    assert "identical to CPY001" in copy["detail"].iloc[0]
    no_flue = expected[(expected["device_id"] == "CEMS005") & (expected["rule"] == "dilution")]
    assert "flue not judged" in no_flue["detail"].iloc[0]


@pytest.mark.parametrize("grouping", sorted(GROUPINGS))
def test_chunked_equals_all_at_once(planted_case, rules, grouping):
    rows, registry, events, expected = planted_case
    devices = sorted(rows["device_id"].unique())
    groups = GROUPINGS[grouping](devices)
    assert sorted(d for g in groups for d in g) == devices
    fetch = RecordingFetch(rows)
    got = tamper.detect_chunked(fetch, groups, registry, events=events, rules=rules)
    pd.testing.assert_frame_equal(got, expected)
    # one group's rows at a time; then only the devices the cross-device rules name
    assert fetch.calls[: len(groups)] == groups
    assert fetch.calls[len(groups) :] == [["CPY001", "CPY002"], ["CPZ001", "CPZ002"], ["AMB005"]]


def test_chunked_takes_only_the_groups_devices_from_a_fetch(planted_case, rules):
    rows, registry, events, expected = planted_case
    devices = sorted(rows["device_id"].unique())

    def everything(device_ids: list[str]) -> pd.DataFrame:
        return rows  # more than asked: each device must still be judged once

    got = tamper.detect_chunked(everything, chunks(devices, 4), registry, events=events)
    pd.testing.assert_frame_equal(got, expected)


def test_a_device_in_two_groups_is_refused(planted_case):
    rows, registry, _, _ = planted_case
    fetch = tamper.rows_fetcher(rows)
    with pytest.raises(ValueError, match="CEMS001"):
        tamper.detect_chunked(fetch, [["CEMS001", "CEMS002"], ["CEMS001"]], registry)
    with pytest.raises(ValueError, match="more than one group"):
        tamper.detect_chunked(fetch, [["CEMS001", "CEMS001"]], registry)


def test_nothing_to_scan_gives_the_empty_frame(planted_case):
    rows, registry, _, _ = planted_case
    got = tamper.detect_chunked(tamper.rows_fetcher(rows), [[], ["NO-SUCH"]], registry)
    assert got.empty and list(got.columns) == tamper.SUSPICION_COLUMNS


def test_dilution_judges_each_stack_on_its_own_channels(planted_case, rules):
    """A stack without flue channels is judged the same alone and beside a stack with them."""
    rows, _, _, _ = planted_case
    alone = tamper.dilution(rows[rows["device_id"] == "CEMS005"], rules)
    both = tamper.dilution(rows[rows["device_id"].isin(["CEMS002", "CEMS005"])], rules)
    assert alone["device_id"].tolist() == ["CEMS005"]
    pd.testing.assert_frame_equal(
        both[both["device_id"] == "CEMS005"].reset_index(drop=True), alone
    )


# --- the monthly step's window scan over a warehouse -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_warehouse(validate, tmp_path_factory):
    """The tiny simulated district's two days validated and stored as ``validate_day`` stores
    them (valid rows in ``measurements``, quarantined rows as JSON in ``quarantine``)."""
    from agents.simulate.scenario import build_scenario
    from enforcement.warehouse import Warehouse
    from tests.validation.sim_frames import measurement_frame, registry_frames

    scenario = build_scenario(seed=2017, start=date(2017, 12, 1), days=2, scale="tiny")
    folder = tmp_path_factory.mktemp("tamper-chunked")
    registry = registry_frames(scenario, folder / "registry")
    wh = Warehouse(f"sqlite:///{folder / 'warehouse.sqlite'}")
    wh.load_registry(folder / "registry")
    frame = measurement_frame(scenario)
    for (stream, day), part in frame.groupby(["stream", "day"], sort=True):
        outcome = validate(stream, part, reg=registry, day=day)
        wh.replace("measurements", outcome.valid, day=day, stream=stream)
        wh.replace("quarantine", outcome.quarantine.assign(stream=stream), day=day, stream=stream)
    return wh, scenario, registry


def test_window_scan_in_groups_equals_the_whole_window(tiny_warehouse):
    from lantian.rules_monthly import scan_window, tamper_windows, window_rows

    wh, scenario, registry = tiny_warehouse
    days, _ = tamper_windows("2017-12")[0]  # 2017-11-30 .. 2017-12-07: the two days and none
    rows = window_rows(wh, days)
    assert (~rows["valid"]).sum() > 0  # quarantined rows came back (the clock rule needs them)
    expected = tamper.detect_all(rows, registry)
    truth = scenario.truth
    copied = {f["device_id"] for f in truth.fakes if f["kind"] == "copied"}
    jumps = {c["device_id"] for c in truth.clocks if c["kind"] == "jump"}
    assert copied <= set(expected.loc[expected["rule"] == "same_series", "device_id"])
    assert jumps <= set(expected.loc[expected["rule"] == "clock_jump", "device_id"])
    for size in (1, 2, 3, 100):
        pd.testing.assert_frame_equal(scan_window(wh, days, registry, group_size=size), expected)


def test_window_rows_of_some_devices_are_theirs_in_order(tiny_warehouse):
    from lantian.rules_monthly import tamper_windows, window_rows

    wh, scenario, _ = tiny_warehouse
    days, _ = tamper_windows("2017-12")[0]
    rows = window_rows(wh, days)
    some = sorted(scenario.device_ids("ambient"))[:2]
    mine = window_rows(wh, days, device_ids=some)
    pd.testing.assert_frame_equal(
        mine, rows[rows["device_id"].isin(some)].reset_index(drop=True), check_dtype=False
    )
    assert set(mine["device_id"]) == set(some) and (~mine["valid"]).any()


def test_suspicions_month_stores_what_the_whole_window_finds(tiny_warehouse, monkeypatch):
    """``suspicions_month`` scans in groups; its figure is what the whole windows find."""
    from lantian.rules_monthly import (
        suspicion_rows,
        suspicions_month,
        tamper_windows,
        window_rows,
    )

    wh, _, _ = tiny_warehouse
    monkeypatch.setenv("LANTIAN_WAREHOUSE_URL", wh.url)
    registry = {name: wh.read(name) for name in ("stacks", "enterprises", "stations")}
    found = []
    for days, reported in tamper_windows("2017-12"):
        rows = window_rows(wh, days)
        if rows.empty:
            continue
        hits = tamper.detect_all(rows, registry)
        last = pd.to_datetime(hits["window_end"], utc=True).dt.tz_convert("Asia/Shanghai")
        found.append(hits[(last - timedelta(seconds=1)).dt.strftime("%Y-%m-%d").isin(reported)])
    whole = pd.concat(found, ignore_index=True).drop_duplicates(
        ["device_id", "rule", "code", "window_start"]
    )
    result = suspicions_month("2017-12", run_id="test")
    stored = wh.read_derived("suspicions", "2017-12")
    assert result["rows_out"] == len(whole) > 0
    expected = suspicion_rows(whole, registry)
    assert stored["device_id"].tolist() == expected["device_id"].tolist()
    assert stored["pattern"].tolist() == expected["pattern"].tolist()
    assert stored["reading_ids"].tolist() == expected["reading_ids"].tolist()
