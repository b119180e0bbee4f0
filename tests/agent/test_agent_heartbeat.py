"""Heartbeats: the contract's fields, one per enrolled device, and the local state file."""

from __future__ import annotations

import json

from agent_testkit import CEMS_MN, CEMS_MN2, Reply, ScriptedServer

from agents.heartbeat import Heartbeat, build_payload, read_state, write_state
from agents.uplink import Uplink
from agents.version import VERSION
from schemas.signing import derive_key

SNAPSHOT = {
    "at": "2017-11-01T00:00:05+00:00",
    "queue": {"queue_depth": 12, "oldest_unsent": "2017-11-01T07:58:00+08:00"},
    "devices": {CEMS_MN: {"queue_depth": 10}, CEMS_MN2: {"queue_depth": 2}},
    "ports": {"/dev/ttyUSB0": {"open": True, "last_frame_at": "2017-11-01T00:00:04+00:00"}},
    "disk_free_bytes": 123456789,
    "alarms": ["queue 85% full (…)"],
    "box_clock": {"ntp_synced": True, "server_offset_s": 0.4},
}


def test_payload_has_the_contract_fields():
    payload = build_payload(CEMS_MN, "box-1", SNAPSHOT, {CEMS_MN: -3.0})
    assert payload["device_id"] == CEMS_MN and payload["box_id"] == "box-1"
    assert payload["queue_depth"] == 12 and payload["device_queue_depth"] == 10
    assert payload["oldest_unsent"] == "2017-11-01T07:58:00+08:00"
    assert payload["ports"]["/dev/ttyUSB0"]["last_frame_at"] == "2017-11-01T00:00:04+00:00"
    assert payload["clock_offset_s"] == -3.0
    assert payload["disk_free_bytes"] == 123456789
    assert payload["version"] == VERSION
    assert payload["alarms"] == ["queue 85% full (…)"]
    assert build_payload(CEMS_MN2, "box-1", SNAPSHOT, {})["clock_offset_s"] is None


def test_beat_sends_one_per_device_and_records_the_outcome(tmp_path):
    keys = {CEMS_MN: derive_key("a", CEMS_MN), CEMS_MN2: derive_key("b", CEMS_MN2)}
    state_path = tmp_path / "state.json"
    with ScriptedServer() as server:
        server.decide = lambda seen: (
            Reply(403, {"error": "device_retired", "detail": "retired 2017-10-01"})
            if seen.headers.get("X-Lantian-Device") == CEMS_MN2
            else None
        )
        beat = Heartbeat(
            "box-1", Uplink(server.url, keys), lambda: dict(SNAPSHOT), dict, state_path
        )
        outcomes = beat.beat()
    assert outcomes[CEMS_MN] == "landed"
    assert "retired 2017-10-01" in outcomes[CEMS_MN2]
    assert sorted(s.json()["device_id"] for s in server.seen) == sorted(keys)
    state = read_state(state_path)
    assert state["queue"]["queue_depth"] == 12
    assert state["last_heartbeat"][CEMS_MN]["ok"] is True
    assert state["last_heartbeat"][CEMS_MN2]["ok"] is False


def test_state_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "state.json"
    write_state(path, {"a": 1})
    write_state(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert not (tmp_path / "state.tmp").exists()
    path.write_text("{half")
    assert read_state(path) is None
