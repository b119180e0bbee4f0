"""Monthly bureau report: runs on the 1st (Beijing) for the month that just ended."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

BEIJING = timezone(timedelta(hours=8))


@dag(
    dag_id="lantian_monthly_report",
    schedule=CronDataIntervalTimetable("0 6 1 * *", timezone="Asia/Shanghai"),
    start_date=datetime(2017, 10, 1, tzinfo=BEIJING),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
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
    def write_report(month: str) -> dict:
        from lantian.pipeline import monthly_report

        return monthly_report(month)

    write_report(resolve_month())


lantian_monthly_report()
