"""The DAGs carry the failure notifiers; the hourly watch DAG runs its checks and notifies once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lantian.notify import LantianEmailNotifier, LantianWebhookNotifier

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venv" / "bin" / "airflow"
PERIODS = {"lantian_daily": "day", "lantian_monthly_report": "month", "lantian_watch": "hour"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_watch_dag_wiring(dagbag):
    assert dagbag.import_errors == {}
    dag = dagbag.dags["lantian_watch"]
    assert set(dag.task_dict) == {"check", "notify"}
    assert dag.task_dict["notify"].upstream_task_ids == {"check"}
    assert dag.timetable.__class__.__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 * * * *"  # hourly, on the Beijing clock
    assert dag.catchup is False and dag.max_active_runs == 1


@pytest.mark.parametrize("dag_id", sorted(PERIODS))
def test_every_task_notifies_its_failure(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        kinds = {type(c) for c in callbacks}
        assert kinds == {LantianWebhookNotifier, LantianEmailNotifier}, task.task_id
        assert {c.period for c in callbacks} == {PERIODS[dag_id]}
        assert not task.on_retry_callback  # a retry is not an incident


@pytest.mark.slow
def test_watch_dag_notifies_findings_once(story_home, webhook_server, tmp_path):
    """``airflow dags test lantian_watch`` twice on the story: one alert, then silence (the
    Variable remembers what was sent)."""
    home = tmp_path / "airflow"
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__PARALLELISM="2",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        LANTIAN_HOME=str(story_home),
        LANTIAN_ALERT_WEBHOOK=webhook_server.url,
        PYTHONPATH=str(REPO),
    )

    def airflow(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    airflow("db", "migrate")
    conf = json.dumps({"now": "2017-12-02T10:00:00+08:00"})
    airflow("dags", "test", "lantian_watch", "-c", conf)
    assert len(webhook_server.received) == 1
    alert = webhook_server.received[0]["json"]
    keys = {f["key"] for f in alert["findings"]}
    assert "silent_subdistrict:sd01" in keys and "late_data:2017-12-01 cems" in keys
    assert len(keys) == 8
    assert alert["title"].startswith("[Lantian] watch 2017-12-02 10:00 Beijing: 8 finding(s)")

    airflow("dags", "test", "lantian_watch", "-c", conf)
    assert len(webhook_server.received) == 1  # the same findings an hour later: not repeated
    stored = airflow("variables", "get", "lantian_watch_notified").stdout
    assert set(json.loads(stored.strip().splitlines()[-1])) == keys
