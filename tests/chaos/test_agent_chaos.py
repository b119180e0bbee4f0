"""Chaos: simulated loggers → the real agent → the real ingest service, on loopback, while the
agent and the ingest service are SIGKILLed at random moments and the network is cut.

Proof that no reading is lost: every reading the loggers were answered for (and, once everything
is back up, that is every reading they sent) is in the landing area exactly once after
de-duplication by id, with the very bytes the logger sent, within a bounded time after recovery.

The schedule is random but seeded (``LANTIAN_CHAOS_SEED``, default 2017; the seed is printed, so
a failing schedule can be replayed). Frames are the tiny scenario's CEMS, ambient, vapor and
remote-sensing frames of 2017-12-01: historical data times are landed (the plausibility bounds
refuse only times before 2000 or in the future) and the agent only flags the clock offsets.
"""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import date
from pathlib import Path

import pytest
from chaos_kit import (
    FAMILIES,
    ChaosLogger,
    CutProxy,
    Service,
    agent_toml,
    answering_devices,
    chaos_plan,
    clean_env,
    command,
    free_port,
    ingest_ready,
    logger_frames,
    wait_until,
)

from agents.config import write_key
from agents.queue import DurableQueue
from agents.simulate.scenario import build_scenario
from ingest.cli import register_device_key
from ingest.landing import LandingIndex
from schemas.signing import derive_key, new_secret

SEED = int(os.environ.get("LANTIAN_CHAOS_SEED", "2017"))
CYCLES = 10
#: Uploads per logger per second (a real logger sends two a minute; time is compressed).
RATE_PER_S = 12.0
#: After the last fault: every upload answered, then every reading landed, within these bounds.
ANSWERED_WITHIN_S = 60.0
LANDED_WITHIN_S = 60.0


def _landed(index: LandingIndex) -> tuple[dict[str, set[str]], int]:
    """reading id → the raw sha256s of its landed copies; and the number of copies."""
    found: dict[str, set[str]] = {}
    copies = 0
    for _, batch in index.iter_batches():
        for reading in batch["readings"]:
            found.setdefault(reading["id"], set()).add(reading["raw_sha256"])
            copies += 1
    return found, copies


@pytest.mark.slow
def test_no_reading_is_lost_when_agent_and_ingest_are_killed_and_the_network_cut(tmp_path: Path):
    rng = random.Random(SEED)
    plan = chaos_plan(rng, CYCLES)
    print(f"chaos seed {SEED}: {[(round(w, 1), a, round(d, 1)) for w, a, d in plan]}")
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    db_url = f"sqlite:///{home / 'landing-index.sqlite'}"
    landing_root = home / "landing"
    data_dir = tmp_path / "agent-data"

    scenario = build_scenario(2017, date(2017, 12, 1), 1, "tiny")
    chosen = answering_devices(scenario)
    assert {scenario.device_config(d)["family"] for d in chosen} == set(FAMILIES)
    budget = int(RATE_PER_S * 90)  # enough for the chaos phase; a logger that runs out stops
    loggers = [
        ChaosLogger(
            d,
            logger_frames(scenario, d, budget),
            interval_s=1.0 / RATE_PER_S,
            crc_mode=scenario.device_config(d)["crc_mode"],
        )
        for d in chosen
    ]
    for logger in loggers:
        device = scenario.device_config(logger.device_id)
        key = derive_key(new_secret(), logger.device_id)
        register_device_key(db_url, logger.device_id, key, device["stream"])
        write_key(data_dir, logger.device_id, key)

    ingest_port = free_port()
    ingest_url = f"http://127.0.0.1:{ingest_port}"
    proxy = CutProxy(ingest_port)
    config = agent_toml(
        tmp_path / "agent.toml",
        data_dir=data_dir,
        server=proxy.url,
        loggers=[(lg.path, scenario.device_config(lg.device_id)) for lg in loggers],
    )
    ingest = Service(
        "ingest",
        [*command("lantian", "lantian.cli"), "ingest", "serve", "--port", str(ingest_port)],
        env,
        tmp_path / "ingest.log",
    )
    agent = Service(
        "agent",
        [*command("lantian-agent", "agents.cli"), "run", "--config", str(config)],
        env,
        tmp_path / "agent.log",
    )
    index = LandingIndex(db_url, landing_root)

    def logs() -> str:
        return f"\n--- agent log ---\n{agent.tail()}\n--- ingest log ---\n{ingest.tail()}"

    try:
        ingest.start()
        assert wait_until(lambda: ingest_ready(ingest_url), 60), "ingest not ready" + logs()
        for logger in loggers:
            logger.start()  # logging before the agent runs: those bytes are flushed on open
        agent.start()

        # ---------------------------------------------------------- chaos
        for wait_s, action, down_s in plan:
            time.sleep(wait_s)
            # Only the test kills: a process that died by itself is a failure, not chaos.
            assert agent.alive(), f"the agent exited on its own: {agent.proc.poll()}" + logs()
            assert ingest.alive(), f"ingest exited on its own: {ingest.proc.poll()}" + logs()
            if action in ("kill_agent", "kill_both"):
                agent.kill()
            if action in ("kill_ingest", "kill_both"):
                ingest.kill()
            if action == "cut_network":
                proxy.cut()
            time.sleep(down_s)
            proxy.restore()
            agent.start()
            ingest.start()
        for logger in loggers:
            logger.stop_emitting()
        recovered = time.monotonic()

        # ---------------------------------------------------------- recovery
        assert wait_until(lambda: ingest_ready(ingest_url), 60), "ingest not back" + logs()
        all_answered = wait_until(
            lambda: not any(lg.unanswered() for lg in loggers), ANSWERED_WITHIN_S, 0.25
        )
        unanswered = {lg.device_id: len(lg.unanswered()) for lg in loggers}
        assert all_answered, f"uploads never answered: {unanswered}" + logs()
        sent: dict[str, str] = {}
        for logger in loggers:
            assert logger.error is None, f"logger {logger.device_id} failed: {logger.error!r}"
            assert logger.answered_readings() == logger.emitted_readings()
            sent.update(logger.emitted_readings())

        def all_landed() -> bool:
            return set(sent) <= set(_landed(index)[0])

        assert wait_until(all_landed, LANDED_WITHIN_S, 0.5), (
            f"{len(set(sent) - set(_landed(index)[0]))} of {len(sent)} readings not landed "
            f"{LANDED_WITHIN_S:.0f} s after recovery" + logs()
        )
        landed_after_s = time.monotonic() - recovered
        assert agent.alive() and ingest.alive(), "a process exited on its own" + logs()
        assert agent.stop() == 0, "agent did not stop cleanly on SIGTERM" + logs()
        # uvicorn re-raises the SIGTERM it handled once shut down: -15 after a clean shutdown
        assert ingest.stop() in (0, -signal.SIGTERM), "ingest did not stop on SIGTERM" + logs()
        assert "Finished server process" in ingest.tail(3), "ingest stop was not clean" + logs()
    finally:
        for service in (agent, ingest):
            if service.alive():
                service.kill()
        proxy.close()
        for logger in loggers:
            logger.close()

    landed, copies = _landed(index)
    # exactly the readings sent: none missing, none invented
    assert set(landed) == set(sent), (
        f"missing {len(set(sent) - set(landed))}, unexpected {len(set(landed) - set(sent))}"
    )
    # every copy of a reading is the very frame the logger sent (same raw bytes)
    assert all(shas == {sent[rid]} for rid, shas in landed.items())
    # the chaos happened: every kind of fault, and the loss it causes was really repaired
    assert agent.kills >= 2 and ingest.kills >= 2 and proxy.cuts >= 2
    assert agent.starts == agent.kills + 1 and ingest.starts == ingest.kills + 1
    assert sum(lg.resends for lg in loggers) > 0
    # the agent's queue is empty and nothing was set aside as refused
    with DurableQueue(data_dir / "queue.sqlite", ballast_bytes=0) as queue:
        assert queue.depth() == 0
        assert queue.dead_letters() == []
    # the evidence chain: every indexed file matches its hash
    report = index.verify()
    assert report.ok, f"tampered {report.tampered}, missing {report.missing}"
    emitted = sum(len(lg.emitted) for lg in loggers)
    print(
        f"chaos seed {SEED}: {emitted} uploads, {len(sent)} readings, {copies} landed copies "
        f"({copies - len(sent)} duplicates removed by id), "
        f"{sum(lg.resends for lg in loggers)} resends, agent killed {agent.kills}x, ingest "
        f"killed {ingest.kills}x, network cut {proxy.cuts}x ({proxy.severed} connections "
        f"severed), all landed {landed_after_s:.1f} s after recovery; "
        f"interrupted writes left: {len(report.temporaries)} temporaries, "
        f"{len(report.unindexed)} unindexed files"
    )
