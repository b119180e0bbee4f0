"""``run_dag`` reports each task as it ends (read from what ``airflow dags test`` prints) and says
when a run is still going; a failing run still raises with the tail of its output.

The parser is checked on real captured output (data/dags_test_output.txt, how it was captured is
written at its top); two real runs check the streaming: the watch DAG on the operations story (the
run tests/operations/test_dags.py does) and a probe DAG whose tasks succeed, are mapped, skip,
retry and fail (PROBE_DAG below, also the source of the probe capture).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from lantian.airflow_local import (
    TAIL_LINES,
    DagTestParser,
    TaskEnd,
    airflow_env,
    parse_task_ends,
    run_dag,
    task_end_line,
)

CAPTURE = Path(__file__).parent / "data" / "dags_test_output.txt"
WATCH_CONF = {"now": "2017-12-02T10:00:00+08:00"}
TASK_LINE = re.compile(r"^ {6}(?P<task>\S+) +(?P<state>\S+) +\((?P<s>\d+) s\)$")
HEARTBEAT = re.compile(r"^ {6}(?P<dag>\S+) still running \((?P<s>\d+) s(?:, in (?P<task>\S+))?\)$")
PROBE_DAG = """
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException


@dag(
    dag_id="lantian_progress_probe",
    schedule=None,
    start_date=datetime(2017, 12, 1),
    catchup=False,
    default_args={"retries": 0},
)
def lantian_progress_probe():
    @task
    def ok() -> int:
        return 1

    @task
    def skip(value: int) -> None:
        raise AirflowSkipException("nothing to do")

    @task(retries=1, retry_delay=timedelta(seconds=1))
    def boom(value: int) -> None:
        raise ValueError(f"probe failure {value}")

    @task
    def part(n: int) -> int:
        return n

    value = ok()
    part.expand(n=[1, 2])
    skip(value)
    boom(value)


lantian_progress_probe()
"""
PROBE_ENDS = [
    ("ok", "success"),
    ("part[0]", "success"),
    ("part[1]", "success"),
    ("skip", "skipped"),
    ("boom", "up_for_retry"),
    ("boom", "failed"),
]


def captures() -> dict[str, list[str]]:
    """The captured outputs by DAG id, without the notes."""
    runs: dict[str, list[str]] = {}
    current: list[str] = []
    for line in CAPTURE.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("# ==== "):
            current = runs.setdefault(line.removeprefix("# ==== ").strip(), [])
        elif not line.startswith("#"):
            current.append(line)
    return runs


def labels(ends: list[TaskEnd]) -> list[tuple[str, str]]:
    return [(end.label, end.state) for end in ends]


def task_lines(messages: list[tuple[float, str]]) -> list[tuple[str, str]]:
    return [
        (m["task"], m["state"]) for _, text in messages if (m := TASK_LINE.match(text)) is not None
    ]


def test_parser_finds_every_task_end_of_the_captured_runs():
    runs = captures()
    assert set(runs) == {"lantian_watch", "lantian_progress_probe"}
    assert labels(parse_task_ends(runs["lantian_watch"])) == [
        ("check", "success"),
        ("notify", "success"),
    ]
    # the capture's order (part before skip and boom) is Airflow's; the live run may differ
    assert labels(parse_task_ends(runs["lantian_progress_probe"])) == PROBE_ENDS


def test_parser_reports_a_task_at_its_end_line_and_knows_what_runs():
    lines = captures()["lantian_watch"]
    parser = DagTestParser()
    seen = []
    for number, line in enumerate(lines):
        for end in parser.feed(line):
            seen.append((number, end.task_id))
        if "[DAG TEST] starting task_id=notify" in line:
            assert parser.running == "notify"
    ends = [n for n, line in enumerate(lines) if "[DAG TEST] end task" in line]
    assert [n for n, _ in seen] == ends
    assert parser.running is None and parser.close() == []


def test_parser_lets_lines_it_does_not_know_pass():
    probe = captures()["lantian_progress_probe"]
    state_line = next(line for line in probe if "new_state=skipped" in line)
    parser = DagTestParser()
    odd = [
        "",
        "DagRun failed\n",
        "[DAG TEST] starting task_id=\n",  # cut short: not a start
        "[DAG TEST] end task\n",
        "\x00\ufffd garbage new_state=\n",
        state_line,  # a state with no task started: nobody to give it to
    ]
    assert [end for line in odd for end in parser.feed(line)] == []
    # a task whose end line never comes is reported only if a state for it was seen
    parser.feed("[DAG TEST] starting task_id=lonely map_index=-1\n")
    assert parser.close() == []
    parser.feed("[DAG TEST] starting task_id=skip map_index=-1\n")
    parser.feed(state_line)
    assert labels(parser.feed("[DAG TEST] starting task_id=next map_index=-1\n")) == [
        ("skip", "skipped")
    ]
    # an end line without a state seen for the task still ends it
    assert labels(parser.feed("[DAG TEST] end task task_id=next map_index=-1\n")) == [
        ("next", "ended")
    ]


def test_task_end_line_reads_as_in_the_demo():
    assert task_end_line(TaskEnd("validate_ambient", "success"), 41.4) == (
        "      validate_ambient     success  (41 s)"
    )
    assert TASK_LINE.match(task_end_line(TaskEnd("part", "up_for_retry", 3), 7))["task"] == (
        "part[3]"
    )


@pytest.mark.slow
def test_watch_run_reports_its_tasks_while_it_runs(story_home, webhook_server, monkeypatch):
    """The line for ``check`` arrives before ``notify`` has sent its alert, so it came while the
    run went on; with a 1 s heartbeat the wait before the first task end is reported too."""
    monkeypatch.setenv("LANTIAN_ALERT_WEBHOOK", webhook_server.url)
    messages: list[tuple[float, str]] = []
    alerts_seen: dict[str, int] = {}

    def progress(text: str) -> None:
        messages.append((time.monotonic(), text))
        if match := TASK_LINE.match(text):
            alerts_seen[match["task"]] = len(webhook_server.received)

    started = time.monotonic()
    run_dag(
        "lantian_watch",
        WATCH_CONF,
        env=airflow_env(story_home / "airflow"),
        progress=progress,
        heartbeat_s=1.0,
    )
    finished = time.monotonic()

    assert task_lines(messages) == [("check", "success"), ("notify", "success")]
    assert alerts_seen == {"check": 0, "notify": 1}  # check's line came before notify ran
    assert len(webhook_server.received) == 1
    first_end = next(at for at, text in messages if TASK_LINE.match(text))
    beats = [(at, HEARTBEAT.match(text)) for at, text in messages if HEARTBEAT.match(text)]
    assert len(beats) + 2 == len(messages)  # nothing else was said
    assert any(at < first_end for at, _ in beats)
    assert {m["dag"] for _, m in beats} == {"lantian_watch"}
    seconds = [int((TASK_LINE.match(t) or HEARTBEAT.match(t))["s"]) for _, t in messages]
    assert seconds == sorted(seconds) and seconds[-1] <= finished - started + 1
    print(f"watch run {finished - started:.1f} s: " + " | ".join(t.strip() for _, t in messages))


@pytest.mark.slow
def test_failing_run_reports_retry_and_failure_and_raises_with_the_tail(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "lantian_progress_probe.py").write_text(PROBE_DAG, encoding="utf-8")
    env = airflow_env(tmp_path / "airflow")
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"  # what airflow_env asks for by default
    messages: list[tuple[float, str]] = []

    with pytest.raises(RuntimeError) as failure:
        run_dag(
            "lantian_progress_probe",
            {},
            env=env,
            progress=lambda text: messages.append((time.monotonic(), text)),
        )

    reported = task_lines(messages)
    assert sorted(reported) == sorted(PROBE_ENDS)
    assert reported.index(("boom", "up_for_retry")) < reported.index(("boom", "failed"))
    message = str(failure.value)
    head, _, tail = message.partition("\n")
    assert head == "DAG lantian_progress_probe {} failed (exit 1):"
    assert len(tail.splitlines()) <= TAIL_LINES
    assert "ValueError: probe failure 1" in tail and tail.endswith("DagRun failed")
    # INFO records were asked for only to read the task ends: the tail is the WARNING output
    assert "[info " not in tail and "[DAG TEST]" not in tail
    assert "[error    ] Task failed with exception" in tail
