"""Daily pipeline for one Beijing calendar day: validate every stream, then apply the rules.

Wiring only: each task calls one step of ``lantian.pipeline`` (imported inside the task so that
parsing this file stays cheap). Re-running a day replaces its partitions, so retries, backfills and
late data are safe.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from lantian.notify import failure_notifiers

BEIJING = timezone(timedelta(hours=8))
STREAMS = ("cems", "ambient", "vapor", "rsd")
#: lantian.rules_daily step -> the validate_<stream> tasks whose data it reads
DAILY_RULES = {
    "ambient_day": ("ambient",),
    "vapor_day": ("vapor",),
    "rsd_day": ("rsd",),
    "transmission_day": ("cems", "ambient"),
}


@dag(
    dag_id="lantian_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="Asia/Shanghai"),
    start_date=datetime(2017, 10, 1, tzinfo=BEIJING),
    catchup=False,
    max_active_runs=2,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": failure_notifiers("day"),
    },
    params={"day": Param(None, type=["null", "string"], description="Beijing day YYYY-MM-DD")},
    tags=["lantian"],
)
def lantian_daily():
    @task
    def resolve_day(params=None, data_interval_start=None) -> str:
        if params and params.get("day"):
            return params["day"]
        return data_interval_start.astimezone(BEIJING).date().isoformat()

    @task
    def sync_registry() -> dict:
        from lantian.pipeline import sync_registry

        return sync_registry()

    @task(queue="validation")
    def validate(stream: str, day: str) -> dict:
        from airflow.sdk import get_current_context

        from lantian.pipeline import validate_day

        run_id = get_current_context()["run_id"]
        return validate_day(stream, day, run_id=run_id)

    @task
    def cems_rules(day: str) -> dict:
        from lantian.pipeline import cems_day

        return cems_day(day)

    @task
    def daily_rules(step: str, day: str) -> dict:
        from airflow.sdk import get_current_context

        from lantian import rules_daily

        return getattr(rules_daily, step)(day, run_id=get_current_context()["run_id"])

    day = resolve_day()
    registry = sync_registry()
    validated = {}
    for stream in STREAMS:
        validated[stream] = validate.override(task_id=f"validate_{stream}")(stream, day)
        registry >> validated[stream]
    validated["cems"] >> cems_rules(day)
    for step, streams in DAILY_RULES.items():
        rules = daily_rules.override(task_id=step.removesuffix("_day") + "_rules")(step, day)
        for stream in streams:
            validated[stream] >> rules


lantian_daily()
