"""Run the DAGs on the embedded default: Airflow on SQLite, no scheduler or server needed.

``airflow dags test`` runs a whole DAG run in one process against a migrated SQLite metadata
database under ``$LANTIAN_HOME/airflow``. The same DAG files run unchanged under a scheduler and
Celery workers in the distributed mode (infra/distributed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def run_dag(dag_id: str, conf: dict, *, env: dict[str, str] | None = None) -> None:
    """Run one DAG run to completion; raise with the log tail if any task failed."""
    env = env or airflow_env()
    ensure_db(env)
    proc = subprocess.run(
        [_airflow(), "dags", "test", dag_id, "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
    )
    output = proc.stdout + proc.stderr
    failed = proc.returncode != 0 or "state=failed" in output or "DagRunState.FAILED" in output
    if failed:
        tail = "\n".join(output.splitlines()[-60:])
        raise RuntimeError(f"DAG {dag_id} {conf} failed (exit {proc.returncode}):\n{tail}")
