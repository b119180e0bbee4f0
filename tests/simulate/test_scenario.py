"""The simulated district at the tiny scale, one day: determinism, what arrives over the wire, and
the planted truth recomputed independently from the frames (through the codec and the decoders,
with the registry CSV files and a hand-written O2 correction)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from agents.devices import get_family
from agents.hj212 import Frame, FrameReader
from agents.simulate.plan import plan_episodes
from agents.simulate.registry import build_registry
from agents.simulate.scenario import build_scenario
from schemas.reading import BEIJING

REPO = Path(__file__).resolve().parents[2]
START = date(2017, 12, 1)
SO2, NOX, PM, O2 = "a21026", "a21002", "a34013", "a19001"


def corrected(measured: float, o2: float, o2_ref: float) -> float:
    """HJ 75-2017 / GB 13271: C = C_measured × (21 − O2_ref) / (21 − O2)."""
    return measured * (21.0 - o2_ref) / (21.0 - o2)


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(seed=2017, start=START, days=1, scale="tiny")


@pytest.fixture(scope="module")
def registry_dir(scenario, tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry")
    scenario.write_registry(folder)
    return folder


def read_csv(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def received(scenario, registry_dir):
    """What an agent gets: the line's bytes framed by FrameReader (the device's CRC mode from
    devices.csv), decoded by the device's family. device -> (readings, error kinds, frames)."""
    devices = {row["device_id"]: row for row in read_csv(registry_dir, "devices.csv")}
    out = {}
    for device_id in scenario.device_ids():
        row = devices[device_id]
        config = {"device_id": device_id, "family": row["family"], "pw": row["pw"],
                  "units": json.loads(row["units"])}  # fmt: skip
        family = get_family(row["family"])
        reader = FrameReader(crc_mode=row["crc_mode"])
        readings, errors, frames = [], Counter(), 0
        for moment, data in scenario.wire_frames(device_id):
            for item in reader.feed(data):
                if isinstance(item, Frame):
                    frames += 1
                    readings.extend(family.decode(item, config, moment))
                else:
                    errors[type(item).__name__] += 1
        for item in reader.flush():
            errors[type(item).__name__] += 1
        out[device_id] = (readings, errors, frames)
    return out


def unique(readings):
    seen = {}
    for reading in readings:
        seen.setdefault(reading.id, reading)
    return list(seen.values())


# ------------------------------------------------------------------------------ determinism


def digest(scenario, device_id: str) -> str:
    sha = hashlib.sha256()
    for _, data in scenario.wire_frames(device_id):
        sha.update(data)
    return sha.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(scenario):
    again = build_scenario(seed=2017, start=START, days=1, scale="tiny")
    other = build_scenario(seed=2018, start=START, days=1, scale="tiny")
    for device_id in scenario.device_ids():
        assert digest(scenario, device_id) == digest(again, device_id)
        assert digest(scenario, device_id) != digest(other, device_id)
    assert scenario.truth.to_dict() == again.truth.to_dict()


def test_tiny_day_is_small_and_merged_in_time_order(scenario):
    merged = list(scenario.all_frames())
    assert 5000 < len(merged) < 20000
    assert all(a[0] <= b[0] for a, b in zip(merged, merged[1:], strict=False))
    assert {device for _, device, _ in merged} == set(scenario.device_ids())
    with pytest.raises(KeyError, match="no simulated device"):
        list(scenario.frames("nope"))


# ------------------------------------------------------------------------------ the wire


def test_every_expected_reading_arrives_and_nothing_else(scenario, received):
    for device_id in scenario.device_ids():
        readings, _, _ = received[device_id]
        assert {r.id for r in readings} == scenario.expected_readings(device_id), device_id


def test_decoded_values_are_what_the_devices_sent(scenario, received):
    for device_id in scenario.device_ids():
        sent = {(e.cn, e.data_time, e.key): e.values for e in scenario.arriving(device_id)}
        for reading in unique(received[device_id][0]):
            assert reading.values == sent[(reading.cn, reading.data_time, reading.key)]


def test_wire_truth_matches_what_the_reader_saw(scenario, received):
    wire = scenario.truth.wire
    assert wire, "the tiny scenario has noisy lines"
    for device_id, counts in wire.items():
        readings, errors, frames = received[device_id]
        assert errors["CrcError"] == counts["corrupted"] > 0
        assert errors["TruncatedError"] + errors["LengthError"] == counts["truncated"]
        assert (
            frames
            == counts["frames"] - counts["corrupted"] - counts["truncated"] + counts["duplicates"]
        )
        got = {r.id for r in readings}
        assert not got & set(counts["lost_reading_ids"])
        assert len(readings) > len(got) or counts["duplicates"] == 0  # resent frames arrive twice


# ------------------------------------------------------------------------------ CEMS truth


def limit_in_force(limits, stack_id: str, pollutant: str, day: str) -> float | None:
    found = [
        float(row["limit_mg_m3"])
        for row in limits
        if row["stack_id"] == stack_id and row["pollutant"] == pollutant
        and (row["valid_from"] or "0000") <= day < (row["valid_to"] or "9999")
    ]  # fmt: skip
    return min(found) if found else None


def hourly(readings, o2_ref: float):
    """(hour 'YYYYMMDDhh', pollutant) -> (counted minutes, mean corrected, mean of all minutes)."""
    counted, everything = defaultdict(list), defaultdict(list)
    for reading in readings:
        if reading.cn != "2051":
            continue
        oxygen = reading.values[O2]
        o2 = float(oxygen["Avg"])
        for pollutant in (PM, SO2, NOX):
            item = reading.values[pollutant]
            value = corrected(float(item["Avg"]), o2, o2_ref)
            key = (reading.data_time[:10], pollutant)
            everything[key].append(value)
            if item.get("Flag", "N") in ("N", "T") and oxygen.get("Flag", "N") in ("N", "T"):
                counted[key].append(value)
    return {
        key: (len(counted[key]), statistics.fmean(counted[key]) if counted[key] else None,
              statistics.fmean(values))
        for key, values in everything.items()
    }  # fmt: skip


@pytest.fixture(scope="module")
def recomputed(scenario, received, registry_dir):
    stacks = read_csv(registry_dir, "stacks.csv")
    limits = read_csv(registry_dir, "stack_limits.csv")
    found, hours = set(), {}
    for stack in stacks:
        stats = hourly(unique(received[stack["device_id"]][0]), float(stack["o2_ref_pct"]))
        for (hour, pollutant), (n, mean, mean_all) in stats.items():
            day = f"{hour[:4]}-{hour[4:6]}-{hour[6:8]}"
            limit = limit_in_force(limits, stack["stack_id"], pollutant, day)
            start = datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=BEIJING).isoformat()
            key = (stack["stack_id"], pollutant, start)
            hours[key] = (n, mean, mean_all, limit)
            if n >= 45 and limit is not None and mean > limit:
                found.add(key)
    return found, hours


def test_exceedances_recomputed_from_frames_equal_the_truth(scenario, recomputed):
    found, hours = recomputed
    truth = {
        (e["stack_id"], e["pollutant"], e["hour_start"]): e for e in scenario.truth.exceedances
    }
    assert found == set(truth)
    for key, row in truth.items():
        n, mean, _, limit = hours[key]
        assert row["n_valid"] == n and row["mean_corrected"] == pytest.approx(mean, abs=1e-3)
        assert row["limit"] == limit
    tags = Counter(row["tag"] for row in truth.values())
    assert tags["exceed"] >= 2 and tags["exceed_45_valid"] == 1


def test_the_44_minute_hour_and_the_traps_are_not_exceedances(scenario, recomputed):
    found, hours = recomputed
    non = {row["tag"]: row for row in scenario.truth.non_exceedances}
    assert set(non) == {"invalid_44_valid", "calibration_spike", "before_limit_change"}
    for tag, row in non.items():
        key = (row["stack_id"], row["pollutant"], row["hour_start"])
        assert key not in found
        n, mean, mean_all, limit = hours[key]
        assert row["n_valid"] == n
        if tag == "invalid_44_valid":
            assert n == 44 and mean > limit  # high enough, but one valid minute short
        elif tag == "calibration_spike":
            assert mean < limit < mean_all  # only the flagged span-gas minutes are high
        else:
            change = scenario.truth.limit_changes[0]
            assert change["new_limit"] < mean < change["old_limit"] == limit
    edge = next(e for e in scenario.truth.exceedances if e["tag"] == "exceed_45_valid")
    assert edge["n_valid"] == 45


def test_limit_change_at_midnight_is_in_the_registry(scenario, registry_dir):
    rows = [
        r
        for r in read_csv(registry_dir, "stack_limits.csv")
        if r["stack_id"] == "S002" and r["pollutant"] == NOX
    ]
    (change,) = scenario.truth.limit_changes
    assert change["at"] == "2017-12-02T00:00:00+08:00"
    assert {(r["valid_from"], r["valid_to"], r["limit_mg_m3"]) for r in rows} == {
        ("2017-01-01", "2017-12-02", "150"), ("2017-12-02", "", "30"),
    }  # fmt: skip


def test_outage_leaves_a_gap_and_a_restart_notice(scenario):
    outages = [o for o in scenario.truth.offline if o["device_id"].startswith("41010531")]
    assert outages
    for outage in outages:
        start, end = (datetime.fromisoformat(outage[k]) for k in ("start", "end"))
        sent = [at for at, _ in scenario.frames(outage["device_id"])]
        assert not [at for at in sent if start <= at < end]
        restart = [e for e in scenario.emissions(outage["device_id"]) if e.cn == "2081"]
        assert len(restart) == 1 and restart[0].at >= end and not restart[0].reading
    row = next(t for t in scenario.truth.transmission if t["device_id"] == outages[0]["device_id"])
    assert row["received"] < 0.9 * row["due"]  # three hours offline: below the 90 % target


def test_flatline_and_dilution(scenario, received):
    (flat,) = scenario.truth.flatlines
    (dilution,) = scenario.truth.dilutions
    minutes = [r for r in unique(received[flat["device_id"]][0]) if r.cn == "2051"]

    def during(reading, period):
        moment = datetime.fromisoformat(reading.device_time)
        return (
            datetime.fromisoformat(period["start"])
            <= moment
            < datetime.fromisoformat(period["end"])
        )

    stuck = {r.values[PM]["Avg"] for r in minutes if during(r, flat)}
    assert len(stuck) == 1  # a blocked probe: the same string for four hours
    assert len({r.values[PM]["Avg"] for r in minutes if not during(r, flat)}) > 100
    diluted = [r for r in minutes if during(r, dilution)]
    normal = [r for r in minutes if not during(r, dilution)]
    assert min(float(r.values[O2]["Avg"]) for r in diluted) > 17
    assert max(float(r.values[O2]["Avg"]) for r in normal) < 8
    assert statistics.median(
        float(r.values[SO2]["Avg"]) for r in diluted
    ) < 0.3 * statistics.median(float(r.values[SO2]["Avg"]) for r in normal)


# ------------------------------------------------------------------------------ ambient truth


def test_clock_drift_and_jump(scenario, received):
    drift = next(c for c in scenario.truth.clocks if c["kind"] == "drift")
    jump = next(c for c in scenario.truth.clocks if c["kind"] == "jump")
    last = max(unique(received[drift["device_id"]][0]), key=lambda r: r.data_time)
    minute_end = datetime.fromisoformat(last.device_time) + timedelta(minutes=1)
    offset = (minute_end - datetime.fromisoformat(last.received_at)).total_seconds()
    assert offset == pytest.approx(drift["offset_at_end_s"], abs=5)  # 3 s send latency
    jumped = unique(received[jump["device_id"]][0])
    # at 16:00 the clock showed 17:00: the device minutes in between never happened
    assert not [r for r in jumped if "1600" <= r.data_time[8:12] < "1659"]
    after = [r for r in jumped if r.data_time[8:10] == "18"]
    ahead = [
        (
            datetime.fromisoformat(r.device_time) - datetime.fromisoformat(r.received_at)
        ).total_seconds()
        for r in after
    ]
    assert ahead and all(3500 < s < 3600 for s in ahead)


def test_faked_station_copies_its_source(scenario, received):
    (fake,) = [f for f in scenario.truth.fakes if f["kind"] == "copied"]
    source = {r.data_time: r.values for r in unique(received[fake["source_device_id"]][0])}
    copied = unique(received[fake["device_id"]][0])
    common = [r for r in copied if r.data_time in source]
    assert len(common) > 1000
    assert all(r.values["a34004"]["Avg"] == source[r.data_time]["a34004"]["Avg"] for r in common)
    assert (
        sum(r.values["a21004"]["Avg"] != source[r.data_time]["a21004"]["Avg"] for r in common) > 900
    )


def test_heavy_pollution_episode_across_stations(scenario, received):
    (episode,) = scenario.truth.episodes
    assert episode["planned_peak_pm25"] > 250 and episode["hours_above"] >= 12
    by_hour = defaultdict(list)
    for device_id in scenario.device_ids("ambient"):
        for reading in unique(received[device_id][0]):
            by_hour[reading.data_time[8:10]].append(float(reading.values["a34004"]["Avg"]))
    means = {hour: statistics.fmean(v) for hour, v in by_hour.items()}
    assert all(means[f"{h:02d}"] > 150 for h in range(9, 18))
    assert all(means[f"{h:02d}"] < 150 for h in (0, 1))
    # the default demo window holds a whole day and more above the level
    longest = max(e.end - e.start for e in plan_episodes(START, 3))
    assert longest >= timedelta(hours=36)


def test_vendor_code_names_decode_to_2017_codes(scenario, received):
    (device_id,) = [d for d, style in scenario.truth.code_styles.items() if "vendor" in style]
    _, data = next(iter(scenario.frames(device_id)))
    assert b"O3-Avg=" in data and b"PM2.5-Avg=" in data
    reading = received[device_id][0][0]
    assert "a05024" in reading.values and "O3" not in reading.values
    (modbus,) = scenario.truth.crc_modes
    assert received[modbus][1] == Counter()  # read cleanly in the configured mode


# ------------------------------------------------------------------------------ vapor truth


def test_nozzle_drift_low_use_nozzle_and_zero_pressure(scenario, received):
    (drift,) = scenario.truth.nozzle_drift
    readings = unique(received[drift["device_id"]][0])
    per_nozzle = defaultdict(list)
    for reading in readings:
        if reading.cn == "2011":
            per_nozzle[reading.key].append(float(reading.values["lv1001"]["Rtd"]))
    assert drift["days"] == ["2017-12-01"]
    assert all(r < 1.0 for r in per_nozzle[drift["nozzle"]])
    others = [r for nozzle, rs in per_nozzle.items() if nozzle != drift["nozzle"] for r in rs]
    assert others and all(1.0 <= r <= 1.2 for r in others)
    days = {row["nozzle"]: row for row in scenario.truth.nozzle_days}
    assert {n: row["refuellings"] for n, row in days.items()} == {
        n: len(v) for n, v in per_nozzle.items()
    }
    assert (
        days["08"]["status"] == "insufficient" and days[drift["nozzle"]]["status"] == "out_of_range"
    )
    (zero,) = scenario.truth.zero_pressure
    alarms = {
        r.data_time[8:12] for r in readings if r.cn == "2051" and r.values["lv2002"]["Info"] == "1"
    }
    assert alarms == {f"{h:02d}{m:02d}" for h in (2, 3, 4) for m in range(60)}
    assert scenario.truth.unmonitored_large_stations == ["G002"]


# ------------------------------------------------------------------------------ remote sensing truth


def test_high_emitters_recomputed_from_passes(scenario, received, registry_dir):
    weights = {
        row["plate"]: float(row["gross_weight_t"]) for row in read_csv(registry_dir, "vehicles.csv")
    }
    passes = defaultdict(list)
    for device_id in scenario.device_ids("rsd"):
        for reading in unique(received[device_id][0]):
            values = reading.values
            if values["lr1016"]["Info"] != "1":
                continue
            exceeded = set()
            if "lr1014" in values and float(values["lr1014"]["Rtd"]) > 30:
                exceeded.add("opacity_pct")
            if float(values["lr1013"]["Rtd"]) > 1500:
                exceeded.add("no_ppm")
            passes[values["lr1002"]["Info"]].append((reading.data_time, exceeded))
    emitters = {}
    for plate, seen in passes.items():
        seen.sort()
        for pollutant in ("opacity_pct", "no_ppm"):
            flags = [pollutant in e for _, e in seen]
            if any(a and b for a, b in zip(flags, flags[1:], strict=False)):
                emitters.setdefault(plate, set()).add(pollutant)
    truth = {
        row["plate"]: set(row["pollutants"]) - {"ringelmann"}
        for row in scenario.truth.high_emitters
    }
    assert emitters == truth and len(truth) == 3
    for row in scenario.truth.high_emitters:
        heavy = weights[row["plate"]] > 3.5
        assert row["route"] == ("environment_bureau" if heavy else "traffic_police")
    (trap,) = scenario.truth.not_high_emitters
    assert len(trap["exceeding_pass_ids"]) == 2 and trap["plate"] not in emitters


# ------------------------------------------------------------------------------ registry


def documented_columns() -> dict[str, list[str]]:
    """The registry layout as docs/ARCHITECTURE.md states it."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## The bureau's registry files", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*`([a-z_]+\.csv)`\s*\|(.*)\|\s*$", line)
        if match:
            columns = re.sub(r"\([^)]*\)", "", match.group(2))
            out[match.group(1)] = re.findall(r"`([a-z0-9_]+)`", columns)
    return out


def test_registry_files_have_the_documented_layout(registry_dir):
    layout = documented_columns()
    assert len(layout) == 9
    for name, columns in layout.items():
        with open(registry_dir / name, encoding="utf-8", newline="") as handle:
            assert next(csv.reader(handle)) == columns, name


def test_tiny_registry_contents(registry_dir):
    stacks = read_csv(registry_dir, "stacks.csv")
    assert len(stacks) == 2 and all(float(s["height_m"]) > 45 for s in stacks)
    assert {(s["fuel"], s["o2_ref_pct"]) for s in stacks} == {("coal", "9"), ("gas", "3.5")}
    devices = read_csv(registry_dir, "devices.csv")
    assert all(len(d["device_id"]) == 24 for d in devices)
    assert [d["crc_mode"] for d in devices].count("modbus") == 1
    assert len(read_csv(registry_dir, "stations.csv")) == 3
    gas = read_csv(registry_dir, "gas_stations.csv")
    assert [
        g
        for g in gas
        if g["has_online_monitor"] == "0" and int(g["annual_gasoline_sales_t"]) > 5000
    ]
    names = [row["name"] for row in read_csv(registry_dir, "subdistricts.csv")]
    assert len(names) == 17 and "花园路街道" in names and "龙子湖街道" in names
    shares = defaultdict(list)
    for vehicle in read_csv(registry_dir, "vehicles.csv"):
        if vehicle["key_enterprise"] == "1":
            shares[vehicle["transport_enterprise"]].append(vehicle["emission_standard"] != "III")
    assert sorted(sum(v) / len(v) for v in shares.values()) == [0.7, 0.8, 0.9]


@pytest.mark.parametrize(
    ("scale", "stacks", "enterprises", "stations", "monitored", "rsd"),
    [("demo", 6, 4, 17, 3, 1), ("district", 40, 25, 300, 30, 4)],
)
def test_bigger_scales(scale, stacks, enterprises, stations, monitored, rsd):
    registry = build_registry(2017, START, 3, scale)
    assert len(registry.stacks) == stacks and len(registry.enterprises) == enterprises
    assert len(registry.stations) == stations
    assert len({s.subdistrict_id for s in registry.stations}) == 17
    assert sum(g.has_online_monitor for g in registry.gas_stations) == monitored
    assert len(registry.rsd_units) == rsd
    assert len({d.device_id for d in registry.devices}) == len(registry.devices)


def test_clean_frames_lose_nothing(scenario):
    device_id = next(iter(scenario.truth.wire))
    clean = scenario.expected_readings(device_id, wire=False)
    lost = set(scenario.truth.wire[device_id]["lost_reading_ids"])
    assert lost and clean == scenario.expected_readings(device_id) | lost
    assert len(clean) == sum(1 for e in scenario.emissions(device_id) if e.reading)
