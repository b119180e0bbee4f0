"""Run the DAGs on the embedded default: Airflow on SQLite, no scheduler or server needed.

``airflow dags test`` runs a whole DAG run in one process against a migrated SQLite metadata
database under ``$LANTIAN_HOME/airflow``. The same DAG files run unchanged under a scheduler and
Celery workers in the distributed mode (infra/distributed).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lantian import settings

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags"


def airflow_env(home: Path | None = None) -> dict[str, str]:
    """Environment for an embedded Airflow whose state lives under LANTIAN_HOME."""
    home = Path(home or settings.home() / "airflow").resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get(
                "AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"
            ),
            "LANTIAN_HOME": str(settings.home()),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
        }
    )
    return env


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def ensure_db(env: dict[str, str]) -> None:
    marker = Path(env["AIRFLOW_HOME"]) / ".migrated"
    if marker.exists():
        return
    subprocess.run(
        [_airflow(), "db", "migrate"], env=env, check=True, capture_output=True, text=True
    )
    marker.touch()


#: seconds without a task ending before ``run_dag`` says the DAG run is still going
HEARTBEAT_S = 30.0
#: lines of ``airflow dags test`` output quoted when a run fails
TAIL_LINES = 60
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# What Airflow 3.3's ``dags test`` logs around each task at level INFO (see DagTestParser); the
# lines are structlog's console format: "<ISO time>Z [info     ] <event> [<logger>] key=value ...".
_STARTING = re.compile(r"\[DAG TEST\] starting task_id=(?P<task>\S+) map_index=(?P<index>-?\d+)")
_RUNNING = re.compile(r"\[DAG TEST\] running task <TaskInstance: .*?ti_id=(?P<ti>[0-9a-fA-F-]+)")
_NEW_STATE = re.compile(r"\bnew_state=(?:<?TaskInstanceState\.)?(?P<state>\w+)")
_TI_ID = re.compile(r"\bti_id=(?P<ti>[0-9a-fA-F-]+)")
_END = re.compile(r"\[DAG TEST\] end task task_id=(?P<task>\S+) map_index=(?P<index>-?\d+)")
_RECORD_LEVEL = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z? \[(?P<level>[a-z]+)\s*\]")


@dataclass(frozen=True)
class TaskEnd:
    """One task instance of a DAG run that ended (this try), in the state Airflow gave it."""

    task_id: str
    state: str
    map_index: int = -1

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


class DagTestParser:
    """The tasks that end, read from ``airflow dags test`` output (Airflow 3.3, level INFO).

    ``dags test`` runs one task at a time and logs, for each (tests/operations/data/
    dags_test_output.txt holds real captures)::

        [DAG TEST] starting task_id=<task> map_index=<n>
        [DAG TEST] running task <TaskInstance: <dag>.<task> ... ti_id=<uuid>>
        Task instance state updated ... new_state=<state> ... ti_id=<uuid>
        [DAG TEST] end task task_id=<task> map_index=<n>

    A task ends at its "end task" line, in the last state the execution API set for it (a
    deferred task comes back and ends later). At WARNING level none of these lines are printed,
    so ``run_dag`` asks for INFO when it reports progress. Lines it does not know are ignored.
    """

    def __init__(self) -> None:
        self._task: tuple[str, int] | None = None
        self._ti_id: str | None = None
        self._state: str | None = None

    @property
    def running(self) -> str | None:
        """The task started and not yet ended, if any."""
        if self._task is None:
            return None
        return TaskEnd(self._task[0], "running", self._task[1]).label

    def feed(self, line: str) -> list[TaskEnd]:
        """The tasks that ``line`` shows ending (usually none)."""
        if "[DAG TEST]" in line:
            if match := _STARTING.search(line):
                ended = self._pending()
                self._task = (match["task"], int(match["index"]))
                self._ti_id = self._state = None
                return ended
            if match := _RUNNING.search(line):
                if self._task is not None:
                    self._ti_id = match["ti"]
                return []
            if match := _END.search(line):
                task = (match["task"], int(match["index"]))
                state = self._state if task == self._task else None
                self._task = self._ti_id = self._state = None
                return [TaskEnd(task[0], state or "ended", task[1])]
            return []
        if self._task is not None and (match := _NEW_STATE.search(line)):
            ti = _TI_ID.search(line)
            if self._ti_id is None or ti is None or ti["ti"] == self._ti_id:
                self._state = match["state"].lower()
        return []

    def close(self) -> list[TaskEnd]:
        """At the end of the output: a task that got a state but never logged its end."""
        return self._pending()

    def _pending(self) -> list[TaskEnd]:
        # a started task whose "end task" line never came (an exception out of the task runner):
        # reported only if the execution API said how it ended
        ended = []
        if self._task is not None and self._state is not None:
            ended = [TaskEnd(self._task[0], self._state, self._task[1])]
        self._task = self._ti_id = self._state = None
        return ended


def parse_task_ends(lines: Iterable[str]) -> list[TaskEnd]:
    """Every task end in a whole ``airflow dags test`` output."""
    parser = DagTestParser()
    ends = [end for line in lines for end in parser.feed(line)]
    return ends + parser.close()


def task_end_line(end: TaskEnd, seconds: float) -> str:
    """The progress line for one task end, ``seconds`` after the run was launched."""
    return f"      {end.label:<20} {end.state:<8} ({seconds:.0f} s)"


def _level(line: str) -> int | None:
    match = _RECORD_LEVEL.match(line)
    return _LEVELS.get(match["level"]) if match else None


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Reader thread: every line of the child's output, then None at its end."""
    try:
        for line in stream:
            lines.put(line)
    finally:
        lines.put(None)


def run_dag(
    dag_id: str,
    conf: dict,
    *,
    env: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    heartbeat_s: float = HEARTBEAT_S,
) -> None:
    """Run one DAG run to completion; raise with the log tail if any task failed.

    With ``progress``, it is called (in this thread) with one line per task as the task ends,
    and with a "still running" line whenever no task has ended for ``heartbeat_s`` seconds.
    """
    env = dict(env or airflow_env())
    ensure_db(env)
    # Airflow's own default level is INFO; airflow_env() asks for WARNING unless told otherwise
    wanted = _LEVELS.get(env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO").lower(), 20)
    hide_below = 0
    if progress is not None and wanted > _LEVELS["info"]:
        # the task lines are INFO records: ask for them, and keep them out of the failure tail
        # so that it reads as it would at the level the caller asked for
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
        hide_below = wanted
    env["PYTHONUNBUFFERED"] = "1"  # lines as they are written, not when a pipe buffer fills
    started = time.monotonic()
    proc = subprocess.Popen(
        [_airflow(), "dags", "test", dag_id, "-c", json.dumps(conf)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(
        target=_pump, args=(proc.stdout, lines), name=f"airflow-{dag_id}", daemon=True
    )
    reader.start()
    kept: list[str] = []
    parser = DagTestParser()
    news = started  # when the user last heard of this run
    try:
        while True:
            wait = None if progress is None else max(0.0, news + heartbeat_s - time.monotonic())
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                news = time.monotonic()
                task = parser.running
                progress(
                    f"      {dag_id} still running ({news - started:.0f} s"
                    + (f", in {task})" if task else ")")
                )
                continue
            if line is None:
                break
            level = _level(line)
            if level is None or level >= hide_below:
                kept.append(line)
            if progress is not None:
                for end in parser.feed(line):
                    news = time.monotonic()
                    progress(task_end_line(end, news - started))
        if progress is not None:
            for end in parser.close():
                progress(task_end_line(end, time.monotonic() - started))
        returncode = proc.wait()
    except BaseException:
        # as subprocess.run does: Ctrl-C or SIGTERM here must not leave Airflow running
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    output = "".join(kept)
    failed = returncode != 0 or "state=failed" in output or "DagRunState.FAILED" in output
    if failed:
        tail = "\n".join(output.splitlines()[-TAIL_LINES:])
        raise RuntimeError(f"DAG {dag_id} {conf} failed (exit {returncode}):\n{tail}")
