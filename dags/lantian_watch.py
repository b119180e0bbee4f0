"""Hourly health checks: silent devices and subdistricts, boxes' backlogs and disks, data quality,
late data. Notifies the data engineers when there are findings (docs/runbook.md).

Wiring only: ``lantian.watch.run_checks`` and ``lantian.notify.notify_findings`` do the work,
imported inside the tasks so that parsing this file stays cheap.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from lantian.notify import failure_notifiers

BEIJING = timezone(timedelta(hours=8))


@dag(
    dag_id="lantian_watch",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="Asia/Shanghai"),
    start_date=datetime(2017, 10, 1, tzinfo=BEIJING),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "on_failure_callback": failure_notifiers("hour"),
    },
    params={
        "now": Param(
            None,
            type=["null", "string"],
            description="check as of this ISO instant (Beijing if no offset); default: the run's hour end",
        )
    },
    tags=["lantian", "operations"],
)
def lantian_watch():
    @task
    def check(params=None, data_interval_end=None) -> list[dict]:
        from lantian.watch import resolve_now, run_checks

        now = resolve_now(params, data_interval_end)
        return [finding.as_dict() for finding in run_checks(now)]

    @task
    def notify(findings: list[dict], params=None, data_interval_end=None) -> dict:
        from airflow.sdk import get_current_context

        from lantian.notify import notify_findings
        from lantian.watch import resolve_now

        now = resolve_now(params, data_interval_end)
        return notify_findings(findings, now, context=get_current_context())

    notify(check())


lantian_watch()
