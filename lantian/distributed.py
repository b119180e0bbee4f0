"""Start, stop, check and drive the distributed mode (infra/distributed) from Python.

The shell scripts in ``infra/distributed`` own the processes; this module reads the same
``distributed.env`` (by letting bash source it), so there is one definition of every setting.
``python -m lantian.distributed preflight|wait-ready|status`` is what those scripts call for the
parts that are easier in Python (database creation, HTTP health checks);
``python -m lantian.distributed airflow <args>`` runs any airflow command against this installation.

Typical use (the demo, the tests)::

    cluster = Cluster.from_overrides(home, LANTIAN_API_PORT="8181")
    cluster.start()
    cluster.run_dag("lantian_daily", {"day": "2017-12-01"})
    cluster.stop()
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra" / "distributed"
ENV_FILE = INFRA / "distributed.env"

#: In start order. Names are the pid and log file names under $LANTIAN_DIST_DIR.
COMPONENTS = (
    "api-server",
    "scheduler",
    "dag-processor",
    "triggerer",
    "worker-a",
    "worker-b",
    "ingest-1",
    "ingest-2",
)
WORKERS = ("worker-a", "worker-b")
#: What the Airflow API's /monitor/health must report healthy.
AIRFLOW_HEALTH = ("metadatabase", "scheduler", "triggerer", "dag_processor")
#: dag_run / task_instance states after which nothing more happens.
FINISHED_RUN = {"success", "failed"}
FINISHED_TASK = {"success", "failed", "skipped", "upstream_failed", "removed"}


class DistributedError(RuntimeError):
    """The distributed mode could not be started or a run did not finish as it should."""


# --- settings -----------------------------------------------------------------------------------


def environment(
    overrides: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The full environment of the distributed mode: ``distributed.env`` sourced over ``base``
    (default ``os.environ``) plus ``overrides``, and the generated secrets if they exist."""
    env = dict(os.environ if base is None else base)
    env.update(overrides or {})
    env.setdefault("LANTIAN_REPO", str(REPO))
    script = (
        'set -a; . "$1"; '
        'if [ -f "$LANTIAN_DIST_DIR/secrets.env" ]; then . "$LANTIAN_DIST_DIR/secrets.env"; fi; '
        "env -0"
    )
    proc = subprocess.run(
        ["bash", "-c", script, "bash", str(ENV_FILE)], env=env, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise DistributedError(f"cannot source {ENV_FILE}: {proc.stderr.decode().strip()}")
    pairs = (item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
    return dict(pairs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def private_overrides(home: Path, pg_url: str, redis_url: str, label: str) -> dict[str, str]:
    """Overrides that give one cluster its own databases, Redis prefix and loopback ports, so
    that a test or benchmark cluster can run beside others on the same PostgreSQL and Redis.
    ``label`` names it (``test``, ``bench``) in the database names and the Redis prefix."""
    tag = f"{label[0]}{uuid.uuid4().hex[:10]}"
    overrides = {
        "LANTIAN_HOME": str(home),
        "LANTIAN_PG_URL": pg_url,
        "LANTIAN_REDIS_URL": redis_url,
        "LANTIAN_AIRFLOW_DB": f"lantian_{tag}_airflow",
        "LANTIAN_WAREHOUSE_DB": f"lantian_{tag}_warehouse",
        "LANTIAN_LANDING_DB": f"lantian_{tag}_landing",
        "LANTIAN_REDIS_PREFIX": f"lantian-{label}-{tag[1:]}:",
        # only the runs a caller triggers (no scheduled run of "yesterday" on unpause)
        "LANTIAN_USE_JOB_SCHEDULE": "False",
    }
    for name in (
        "LANTIAN_API_PORT",
        "LANTIAN_INGEST_PORT_1",
        "LANTIAN_INGEST_PORT_2",
        "LANTIAN_WORKER_A_LOG_PORT",
        "LANTIAN_WORKER_B_LOG_PORT",
        "LANTIAN_TRIGGER_LOG_PORT",
    ):
        overrides[name] = str(_free_port())
    return overrides


def database_names(env: Mapping[str, str]) -> tuple[str, str, str]:
    return env["LANTIAN_AIRFLOW_DB"], env["LANTIAN_WAREHOUSE_DB"], env["LANTIAN_LANDING_DB"]


# --- services and databases ---------------------------------------------------------------------


def check_postgres(server_url: str, timeout_s: float = 3.0) -> str | None:
    """None if PostgreSQL answers at ``server_url`` (no database part), else what is wrong."""
    import sqlalchemy as sa

    engine = sa.create_engine(
        f"{server_url}/postgres",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": max(1, round(timeout_s))},
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable", reported as text
        return f"PostgreSQL at {server_url} is not reachable: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()


def check_redis(url: str, timeout_s: float = 3.0) -> str | None:
    """None if Redis answers PING at ``url``, else what is wrong."""
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        client.ping()
        client.close()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"Redis at {url} is not reachable: {exc}"


def check_services(env: Mapping[str, str]) -> list[str]:
    """What is missing for the distributed mode (empty: PostgreSQL and Redis both answer)."""
    problems = [check_postgres(env["LANTIAN_PG_URL"]), check_redis(env["LANTIAN_REDIS_URL"])]
    return [p for p in problems if p]


def ensure_databases(server_url: str, names: Iterable[str]) -> list[str]:
    """Create each database that does not exist yet; return the ones created."""
    import sqlalchemy as sa

    created = []
    engine = sa.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for name in names:
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
                if not exists:
                    conn.execute(sa.text(f'CREATE DATABASE "{_identifier(name)}"'))
                    created.append(name)
    finally:
        engine.dispose()
    return created


def drop_databases(server_url: str, names: Iterable[str]) -> None:
    """Drop databases (closing their sessions first). For tests and ``make distributed-clean``."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for name in names:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :n AND pid <> pg_backend_pid()"
                    ),
                    {"n": name},
                )
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{_identifier(name)}"'))
    finally:
        engine.dispose()


def clear_broker(url: str, prefix: str) -> int:
    """Delete this installation's Redis keys (those starting with ``prefix``); return how many."""
    import redis

    if not prefix:
        raise ValueError("refusing to clear a Redis database without a key prefix")
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name {name!r}: letters, digits and _ only")
    return name


# --- health -----------------------------------------------------------------------------------


def http_status(url: str, timeout_s: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def airflow_health(body: str) -> dict[str, str]:
    """``/api/v2/monitor/health`` JSON → component → status (``unknown`` when absent)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    return {name: (data.get(name) or {}).get("status", "unknown") for name in AIRFLOW_HEALTH}


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


#: start.sh writes this line into a component's log just before it starts the process.
START_MARK = "--- start.sh: starting "


def worker_ready(log: Path) -> bool:
    """Celery prints ``<name> ready.`` once it has connected to the broker and its queues;
    only lines after the latest start count (a restarted worker appends to the same log)."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return False
    return " ready." in text.rsplit(START_MARK, 1)[-1]


def _parents() -> dict[int, int]:
    """pid → parent pid of every process visible in /proc (Linux)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` in the process tree, parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    out, queue = [], list(children.get(pid, []))
    while queue:
        current = queue.pop(0)
        out.append(current)
        queue.extend(children.get(current, []))
    return out


def ancestors(pid: int) -> list[int]:
    """Parent, grandparent, … of ``pid`` up to (not including) pid 1."""
    parents = _parents()
    out = []
    current = parents.get(pid)
    while current and current != 1 and current not in out:
        out.append(current)
        current = parents.get(current)
    return out


def describe_progress(dag_id: str, tasks: Mapping[str, Mapping[str, Any]], elapsed_s: float) -> str:
    """One line: how many of a run's tasks finished, which run now, how long it has been."""
    done = sum(i["state"] in FINISHED_TASK for i in tasks.values())
    running = sorted(t for t, i in tasks.items() if i["state"] == "running")
    failed = sorted(t for t, i in tasks.items() if i["state"] in ("failed", "upstream_failed"))
    text = f"{dag_id}: {done}/{len(tasks) or '?'} tasks done after {elapsed_s:.0f} s"
    if running:
        text += f"; running {', '.join(running)}"
    if failed:
        text += f"; FAILED {', '.join(failed)}"
    return text


def day_range(first: str, last: str) -> list[str]:
    """Beijing days from ``first`` to ``last`` inclusive (``YYYY-MM-DD``)."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    if end < start:
        raise ValueError(f"{last} is before {first}")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@dataclass
class Check:
    component: str
    pid: int | None
    alive: bool
    healthy: bool
    detail: str = ""


# --- the cluster ------------------------------------------------------------------------------


class Cluster:
    """One installation of the distributed mode, described by its environment."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.dist_dir = Path(self.env["LANTIAN_DIST_DIR"])
        self.run_dir = self.dist_dir / "run"
        self.log_dir = self.dist_dir / "logs"

    @classmethod
    def from_overrides(cls, home: Path | str | None = None, **overrides: str) -> Cluster:
        if home is not None:
            overrides["LANTIAN_HOME"] = str(Path(home).resolve())
        return cls(environment(overrides))

    # -- processes ------------------------------------------------------------------------------
    def _script(self, name: str, args: Iterable[str], timeout_s: float) -> str:
        # secrets.env may be generated by start.sh: re-read the environment afterwards.
        proc = subprocess.run(
            ["bash", str(INFRA / name), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise DistributedError(f"{name} {' '.join(args)} failed ({proc.returncode}):\n{output}")
        return output

    def start(self, components: Iterable[str] = (), timeout_s: float = 300.0) -> str:
        """Run ``start.sh`` (everything, or only ``components``); returns its output."""
        output = self._script("start.sh", list(components), timeout_s)
        self.env = environment(base=self.env)  # picks up the secrets start.sh generated
        return output

    def stop(self, components: Iterable[str] = (), timeout_s: float = 120.0) -> str:
        return self._script("stop.sh", list(components), timeout_s)

    def pid(self, component: str) -> int | None:
        try:
            return int((self.run_dir / f"{component}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def kill(self, component: str, sig: int = signal.SIGKILL) -> list[int]:
        """Signal everything a component runs, as a crashed machine would stop it: its process
        group (start.sh gives each component a session) and the groups of its descendants (an
        Airflow task process leads a group of its own). Returns the groups signalled."""
        leader = self.pid(component)
        if not pid_alive(leader):
            raise DistributedError(f"{component} is not running")
        members = [leader, *descendants(leader)]
        groups = []
        for pid in members:
            try:
                group = os.getpgid(pid)
            except ProcessLookupError:
                continue
            if group not in groups:
                groups.append(group)
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
        if sig == signal.SIGKILL:  # gone for sure once we return: a restart must not see them
            deadline = time.monotonic() + 10.0
            while any(pid_alive(p) for p in members) and time.monotonic() < deadline:
                time.sleep(0.05)
        return groups

    def component_of(self, pid: int) -> str | None:
        """The component whose process tree ``pid`` belongs to (None: not one of ours)."""
        leaders = {self.pid(c): c for c in COMPONENTS}
        for ancestor in [pid, *ancestors(pid)]:
            if ancestor in leaders:
                return leaders[ancestor]
        return None

    def log_tail(self, component: str, lines: int = 40) -> str:
        try:
            text = (self.log_dir / f"{component}.log").read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log for {component})"
        return "\n".join(text.splitlines()[-lines:])

    # -- health ---------------------------------------------------------------------------------
    def checks(self) -> list[Check]:
        """Every component's process and health, as ``status.sh`` prints them."""
        api = f"http://127.0.0.1:{self.env['LANTIAN_API_PORT']}/api/v2/monitor/health"
        code, body = http_status(api)
        health = airflow_health(body) if code == 200 else {}
        results = []
        for component in COMPONENTS:
            pid = self.pid(component)
            alive = pid_alive(pid)
            healthy, detail = alive, ""
            if component == "api-server":
                healthy = alive and code == 200
                detail = f"GET {api} -> {code or body}"
            elif component in ("scheduler", "triggerer", "dag-processor"):
                status = health.get(component.replace("-", "_"), "unknown")
                healthy = alive and status == "healthy"
                detail = f"heartbeat {status}"
            elif component in WORKERS:
                healthy = alive and worker_ready(self.log_dir / f"{component}.log")
                detail = "connected to the broker" if healthy else "not ready"
            else:
                port = self.env[f"LANTIAN_INGEST_PORT_{component[-1]}"]
                status, _ = http_status(f"http://127.0.0.1:{port}/readyz")
                healthy = alive and status == 200
                detail = f"GET :{port}/readyz -> {status}"
            results.append(Check(component, pid, alive, healthy, detail))
        return results

    def wait_ready(self, components: Iterable[str] = (), timeout_s: float = 180.0) -> None:
        wanted = set(components) or set(COMPONENTS)
        deadline = time.monotonic() + timeout_s
        while True:
            checks = [c for c in self.checks() if c.component in wanted]
            dead = [c for c in checks if not c.alive]
            if dead:
                raise DistributedError(
                    "exited during start: "
                    + ", ".join(
                        f"{c.component} (see {self.log_dir / c.component}.log)" for c in dead
                    )
                )
            waiting = [c for c in checks if not c.healthy]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise DistributedError(
                    f"not ready after {timeout_s:.0f} s: "
                    + "; ".join(f"{c.component}: {c.detail}" for c in waiting)
                )
            time.sleep(1.0)

    # -- Airflow --------------------------------------------------------------------------------
    def airflow(self, *args: str, timeout_s: float = 120.0) -> str:
        airflow = Path(self.env["LANTIAN_VENV"]) / "bin" / "airflow"
        proc = subprocess.run(
            [str(airflow), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise DistributedError(
                f"airflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def _metadata(self) -> Any:
        import sqlalchemy as sa

        return sa.create_engine(
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], poolclass=sa.pool.NullPool
        )

    def _query(self, sql: str, **params: Any) -> list[Any]:
        import sqlalchemy as sa

        engine = self._metadata()
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(sql), params))
        finally:
            engine.dispose()

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120.0) -> None:
        """Wait until the dag-processor has parsed and stored ``dag_id``."""
        deadline = time.monotonic() + timeout_s
        while not self._query("SELECT 1 FROM serialized_dag WHERE dag_id = :d", d=dag_id):
            if time.monotonic() > deadline:
                raise DistributedError(
                    f"DAG {dag_id} not parsed after {timeout_s:.0f} s "
                    f"(see {self.log_dir / 'dag-processor.log'})"
                )
            time.sleep(1.0)

    def trigger(self, dag_id: str, conf: Mapping[str, Any], run_id: str | None = None) -> str:
        """Unpause (new DAGs start paused) and trigger one run; return its run id."""
        self.wait_for_dag(dag_id)
        self.airflow("dags", "unpause", dag_id)
        # Our own run id: the CLI's output format is for people, not for parsing.
        run_id = run_id or f"manual__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"
        self.airflow("dags", "trigger", dag_id, "-c", json.dumps(dict(conf)), "-r", run_id)
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self._query(
            "SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
        )
        return rows[0][0] if rows else None

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """task_id → state, try_number, pid, hostname, queue of the run's task instances."""
        rows = self._query(
            "SELECT task_id, state, try_number, pid, hostname, queue FROM task_instance "
            "WHERE dag_id = :d AND run_id = :r",
            d=dag_id,
            r=run_id,
        )
        return {
            row.task_id: {
                "state": row.state,
                "try_number": row.try_number,
                "pid": row.pid,
                "hostname": row.hostname,
                "queue": row.queue,
            }
            for row in rows
        }

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout_s: float = 600.0,
        progress: Callable[[str], None] | None = None,
        every_s: float = 15.0,
    ) -> str:
        """Wait for the run to finish; return ``success`` or ``failed``. With ``progress``, say
        every ``every_s`` seconds (and whenever a task finishes) how far the run is."""
        started = time.monotonic()
        deadline = started + timeout_s
        last_note, last_done = started, -1
        while True:
            state = self.run_state(dag_id, run_id)
            if state in FINISHED_RUN:
                return state
            now = time.monotonic()
            if progress is not None:
                tasks = self.task_instances(dag_id, run_id)
                done = sum(i["state"] in FINISHED_TASK for i in tasks.values())
                if done != last_done or now - last_note >= every_s:
                    progress(describe_progress(dag_id, tasks, now - started))
                    last_note, last_done = now, done
            if now > deadline:
                tasks = self.task_instances(dag_id, run_id)
                raise DistributedError(
                    f"{dag_id} {run_id} still {state} after {timeout_s:.0f} s: "
                    + ", ".join(f"{t}={i['state']}" for t, i in sorted(tasks.items()))
                )
            time.sleep(1.0)

    def run_dag(
        self,
        dag_id: str,
        conf: Mapping[str, Any],
        timeout_s: float = 1800.0,
        progress: Callable[[str], None] | None = None,
    ) -> str:
        """Trigger a run and wait for it; raise with the failed tasks if it fails (the same
        contract as ``lantian.airflow_local.run_dag``). Returns the run id."""
        run_id = self.trigger(dag_id, conf)
        state = self.wait_for_run(dag_id, run_id, timeout_s, progress=progress)
        if state != "success":
            raise DistributedError(self._failure(dag_id, conf, run_id, state))
        return run_id

    def _failure(self, dag_id: str, conf: Mapping[str, Any], run_id: str, state: str) -> str:
        tasks = self.task_instances(dag_id, run_id)
        failed = sorted(t for t, i in tasks.items() if i["state"] not in ("success", "skipped"))
        return (
            f"DAG {dag_id} {dict(conf)} {state}: tasks {failed}; task logs under "
            f"{self.env['AIRFLOW_HOME']}/logs/dag_id={dag_id}/run_id={run_id}"
        )

    def run_days(
        self,
        days: Iterable[str],
        *,
        max_active: int = 2,
        timeout_s: float = 1800.0,
        progress: Callable[[str], None] = print,
    ) -> dict[str, str]:
        """Build ``lantian_daily`` for each day (a backfill with a progress line per finished
        day and an estimate of the time left), at most ``max_active`` runs at once (the DAG's
        own ``max_active_runs`` is 2). Returns day -> final state; failed days are reported,
        not raised, so one bad day does not stop the others."""
        dag_id = "lantian_daily"
        pending, running, states = list(days), {}, {}
        total, started = len(pending), time.monotonic()
        while pending or running:
            while pending and len(running) < max_active:
                day = pending.pop(0)
                running[day] = (self.trigger(dag_id, {"day": day}), time.monotonic())
            for day, (run_id, since) in list(running.items()):
                state = self.run_state(dag_id, run_id)
                if state in FINISHED_RUN:
                    del running[day]
                    states[day] = state
                    elapsed = time.monotonic() - started
                    left = elapsed / len(states) * (total - len(states))
                    note = (
                        ""
                        if state == "success"
                        else f" — {self._failure(dag_id, {}, run_id, state)}"
                    )
                    progress(
                        f"[{len(states)}/{total}] {day}: {state} in {time.monotonic() - since:.0f} s"
                        f"; elapsed {elapsed / 60:.1f} min, about {left / 60:.1f} min left{note}"
                    )
                elif time.monotonic() - since > timeout_s:
                    raise DistributedError(f"{dag_id} {day} still {state} after {timeout_s:.0f} s")
            time.sleep(1.0)
        return states

    @property
    def ingest_urls(self) -> list[str]:
        return [
            f"http://127.0.0.1:{self.env['LANTIAN_INGEST_PORT_1']}",
            f"http://127.0.0.1:{self.env['LANTIAN_INGEST_PORT_2']}",
        ]


# --- command line (called by the scripts) -------------------------------------------------------


def cmd_preflight(cluster: Cluster) -> int:
    problems = check_services(cluster.env)
    if problems:
        for problem in problems:
            print(f"missing: {problem}", file=sys.stderr)
        print(
            "Start them with `bash infra/local/ensure-services.sh` (this machine), or point "
            "LANTIAN_PG_URL / LANTIAN_REDIS_URL at running servers.",
            file=sys.stderr,
        )
        return 1
    created = ensure_databases(cluster.env["LANTIAN_PG_URL"], database_names(cluster.env))
    for name in created:
        print(f"created database {name}")
    print(f"postgresql and redis: up; databases {', '.join(database_names(cluster.env))} ready")
    return 0


def cmd_status(cluster: Cluster) -> int:
    checks = cluster.checks()
    for c in checks:
        state = "up" if c.healthy else ("starting" if c.alive else "down")
        print(f"{c.component:<14} {state:<9} pid {c.pid or '-':<8} {c.detail}")
    print(f"logs: {cluster.log_dir}")
    return 0 if all(c.healthy for c in checks) else 1


def cmd_run(cluster: Cluster, args: argparse.Namespace) -> int:
    """``run-days`` / ``run-month``: trigger, then print progress until the runs finish."""

    def say(text: str) -> None:
        print(f"{datetime.now():%H:%M:%S} {text}", flush=True)

    try:
        if args.action == "run-days":
            states = cluster.run_days(
                day_range(args.first, args.last or args.first),
                max_active=args.max_active,
                progress=say,
            )
            failed = sorted(d for d, s in states.items() if s != "success")
            say(f"{len(states) - len(failed)}/{len(states)} days built" + (
                f"; failed: {', '.join(failed)}" if failed else ""))  # fmt: skip
            return 1 if failed else 0
        run_id = cluster.run_dag("lantian_monthly_report", {"month": args.month}, progress=say)
        say(f"lantian_monthly_report {args.month}: success ({run_id})")
        return 0
    except DistributedError as exc:
        print(f"lantian distributed: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lantian.distributed")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("preflight", help="check PostgreSQL and Redis; create the databases")
    sub.add_parser("status", help="each component's process and health")
    passthrough = sub.add_parser("airflow", help="run an airflow CLI command in this environment")
    passthrough.add_argument("args", nargs=argparse.REMAINDER)
    days = sub.add_parser("run-days", help="build lantian_daily for a range of days (backfill)")
    days.add_argument("first", help="first Beijing day, YYYY-MM-DD")
    days.add_argument("last", nargs="?", help="last day, inclusive (default: the first)")
    days.add_argument("--max-active", type=int, default=2)
    month = sub.add_parser("run-month", help="build lantian_monthly_report for a month")
    month.add_argument("month", help="YYYY-MM")
    ready = sub.add_parser("wait-ready", help="wait until components are healthy")
    ready.add_argument("components", nargs="*")
    ready.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)

    cluster = Cluster(environment())
    if args.action == "preflight":
        return cmd_preflight(cluster)
    if args.action == "status":
        return cmd_status(cluster)
    if args.action == "airflow":
        airflow = str(Path(cluster.env["LANTIAN_VENV"]) / "bin" / "airflow")
        os.execve(airflow, [airflow, *args.args], cluster.env)
    if args.action in ("run-days", "run-month"):
        return cmd_run(cluster, args)
    try:
        cluster.wait_ready(args.components, args.timeout)
    except DistributedError as exc:
        print(f"lantian distributed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
