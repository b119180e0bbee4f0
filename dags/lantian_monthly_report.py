"""Monthly bureau report: runs on the 1st (Beijing) for the month that just ended."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from lantian.notify import failure_notifiers

BEIJING = timezone(timedelta(hours=8))
#: lantian.rules_monthly steps that store the report's figures; each reads the month's daily
#: figures and the bureau's files on its own, so they run side by side before the report
MONTHLY_STEPS = (
    "transmission_month",
    "supervision_month",
    "ambient_month",
    "vapor_month",
    "rsd_month",
    "cases_month",
    "bureau_month",
    "dustfall_month",
    "disclosure_month",
    "quality_month",
    "suspicions_month",
)


@dag(
    dag_id="lantian_monthly_report",
    schedule=CronDataIntervalTimetable("0 6 1 * *", timezone="Asia/Shanghai"),
    start_date=datetime(2017, 10, 1, tzinfo=BEIJING),
    catchup=False,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "on_failure_callback": failure_notifiers("month"),
    },
    params={"month": Param(None, type=["null", "string"], description="YYYY-MM")},
    tags=["lantian"],
)
def lantian_monthly_report():
    @task
    def resolve_month(params=None, data_interval_start=None) -> str:
        if params and params.get("month"):
            return params["month"]
        return data_interval_start.astimezone(BEIJING).strftime("%Y-%m")

    @task
    def monthly_rules(step: str, month: str) -> dict:
        from airflow.sdk import get_current_context

        from lantian import rules_monthly

        return getattr(rules_monthly, step)(month, run_id=get_current_context()["run_id"])

    @task
    def write_report(month: str) -> dict:
        from lantian.pipeline import monthly_report

        return monthly_report(month)

    month = resolve_month()
    report = write_report(month)
    for step in MONTHLY_STEPS:
        (
            monthly_rules.override(task_id=step.removesuffix("_month") + "_figures")(step, month)
            >> report
        )


lantian_monthly_report()
