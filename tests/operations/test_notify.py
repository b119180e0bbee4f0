"""Notifiers against real loopback servers; delivery failures never raise; the watch's dedup."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lantian import notify
from lantian.notify import (
    Alert,
    LantianEmailNotifier,
    LantianWebhookNotifier,
    WebhookTarget,
    alert_from_context,
    due_findings,
    email_recipients,
    first_line,
    fit_bytes,
    notify_findings,
    post_webhook,
    runbook_for_failure,
    send_email,
    webhook_payload,
    webhook_target,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = "SECRET-KEY-123"


class TaskInstance:
    """The attributes of Airflow's RuntimeTaskInstance that a failure callback reads."""

    def __init__(self, dag_id: str, task_id: str, run_id: str, try_number: int = 3) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.run_id = run_id
        self.try_number = try_number
        self.map_index = -1
        self.log_url = (
            f"http://airflow.bureau.test:8080/dags/{dag_id}/runs/{run_id}/tasks/{task_id}"
            f"?try_number={try_number}"
        )


def daily_context(error: BaseException, *, day_param: str | None = None) -> dict:
    """A failure context of lantian_daily's scheduled run for Beijing day 2017-12-02.

    CronDataIntervalTimetable at Beijing midnight: the run for 2017-12-02 starts its interval at
    2017-12-02 00:00+08:00 = 2017-12-01 16:00 UTC.
    """
    run_id = "scheduled__2017-12-01T16:00:00+00:00"
    return {
        "ti": TaskInstance("lantian_daily", "validate_ambient", run_id),
        "run_id": run_id,
        "params": {"day": day_param},
        "data_interval_start": datetime(2017, 12, 1, 16, 0, tzinfo=UTC),
        "exception": error,
    }


def critical_error():
    from validation.run import CriticalValidationError

    return CriticalValidationError(
        "ambient 2017-12-02: quarantine_share failed: 45.0% quarantined (limit 20%)\n"
        "  rows_due: 0 rows although 3 devices were due"
    )


# -- what a message says ----------------------------------------------------------------------


def test_first_line_takes_type_and_first_non_blank_line():
    assert first_line(ValueError("\n\n  bad unit mg/m3 for a21026  \nsecond")) == (
        "ValueError: bad unit mg/m3 for a21026"
    )
    assert first_line(KeyError()) == "KeyError"
    assert first_line("upstream_failed") == "upstream_failed"
    assert first_line(None) == ""
    long = first_line(RuntimeError("x" * 1000))
    assert len(long) == 300 and long.endswith("…")


def test_runbook_section_follows_the_error_and_the_dag():
    from ingest.landing import EvidenceMissing, EvidenceTampered

    assert runbook_for_failure("lantian_daily", "validate_cems", critical_error()) == (
        "data-quality-failure"
    )
    assert runbook_for_failure("lantian_daily", "validate_cems", EvidenceTampered("x")) == (
        "tampered-or-missing-evidence"
    )
    assert runbook_for_failure("lantian_monthly_report", "write_report", EvidenceMissing("x")) == (
        "tampered-or-missing-evidence"
    )
    assert runbook_for_failure("lantian_monthly_report", "write_report", OSError("disk")) == (
        "failed-monthly-report"
    )
    assert runbook_for_failure("lantian_daily", "sync_registry", OSError("disk")) == (
        "failed-daily-run"
    )
    assert runbook_for_failure("lantian_watch", "check", OSError("db")) == "watch-failed"


def test_alert_from_context_names_the_beijing_day_and_everything_to_look_at():
    alert = alert_from_context(daily_context(critical_error()), "day")
    facts = dict(alert.facts)
    assert facts["DAG"] == "lantian_daily"
    assert facts["Task"] == "validate_ambient (try 3)"
    assert facts["Run"] == "scheduled__2017-12-01T16:00:00+00:00"
    assert facts["Day (Beijing)"] == "2017-12-02"  # 16:00 UTC is midnight in Beijing
    assert facts["Error"] == (
        "CriticalValidationError: ambient 2017-12-02: quarantine_share failed: "
        "45.0% quarantined (limit 20%)"
    )
    assert facts["Log"].startswith("http://airflow.bureau.test:8080/dags/lantian_daily/runs/")
    assert alert.runbook == "data-quality-failure"
    assert alert.title == "[Lantian] FAILED lantian_daily.validate_ambient for 2017-12-02"


def test_day_param_wins_over_the_interval():
    alert = alert_from_context(daily_context(RuntimeError("x"), day_param="2017-11-30"), "day")
    assert dict(alert.facts)["Day (Beijing)"] == "2017-11-30"


@pytest.mark.parametrize(
    ("start", "month"),
    [
        (datetime(2017, 11, 30, 22, 0, tzinfo=UTC), "2017-12"),  # 1 Dec 06:00 Beijing
        (datetime(2017, 11, 30, 15, 59, tzinfo=UTC), "2017-11"),  # 30 Nov 23:59 Beijing
        (datetime(2017, 11, 30, 16, 0, tzinfo=UTC), "2017-12"),  # 1 Dec 00:00 Beijing
    ],
)
def test_month_is_judged_in_beijing_time(start, month):
    context = {
        "ti": TaskInstance("lantian_monthly_report", "write_report", "manual__x"),
        "params": {"month": None},
        "data_interval_start": start,
        "exception": OSError("no font"),
    }
    alert = alert_from_context(context, "month")
    assert dict(alert.facts)["Month"] == month
    assert alert.runbook == "failed-monthly-report"


def test_dag_level_context_without_task_still_says_which_run():
    context = {
        "dag": type("Dag", (), {"dag_id": "lantian_daily"})(),
        "run_id": "manual__2017-12-05",
        "params": {"day": "2017-12-04"},
        "reason": "task_failure",
    }
    alert = alert_from_context(context, "day")
    assert alert.title == "[Lantian] FAILED lantian_daily for 2017-12-04"
    assert dict(alert.facts)["Error"] == "task_failure"


# -- webhook ----------------------------------------------------------------------------------


def test_webhook_notifier_posts_json_to_a_real_server(webhook_server):
    notifier = LantianWebhookNotifier("day", url=webhook_server.url)
    notifier(daily_context(critical_error()))  # BaseNotifier.__call__, as Airflow calls it
    assert len(webhook_server.received) == 1
    got = webhook_server.received[0]
    assert got["content_type"] == "application/json"
    body = got["json"]
    assert body["source"] == "lantian"
    assert body["dag_id"] == "lantian_daily"
    assert body["task_id"] == "validate_ambient"
    assert body["run_id"] == "scheduled__2017-12-01T16:00:00+00:00"
    assert body["day"] == "2017-12-02"
    assert body["error"].startswith("CriticalValidationError: ambient 2017-12-02")
    assert body["log_url"].endswith("/tasks/validate_ambient?try_number=3")
    assert body["runbook"] == "docs/runbook.md#data-quality-failure"
    for text in ("lantian_daily", "validate_ambient", "2017-12-02", "#data-quality-failure"):
        assert text in body["text"]


def test_webhook_from_environment_in_wecom_format(webhook_server, monkeypatch):
    monkeypatch.setenv("LANTIAN_ALERT_WEBHOOK", webhook_server.url)
    monkeypatch.setenv("LANTIAN_ALERT_WEBHOOK_FORMAT", "wecom")
    monkeypatch.setenv("LANTIAN_RUNBOOK_URL", "https://git.bureau.test/lantian/docs/runbook.md")
    LantianWebhookNotifier("day")(daily_context(critical_error()))
    body = webhook_server.received[0]["json"]
    assert set(body) == {"msgtype", "text"}
    assert body["msgtype"] == "text"
    content = body["text"]["content"]
    assert (
        content.splitlines()[0] == "[Lantian] FAILED lantian_daily.validate_ambient for 2017-12-02"
    )
    assert (
        "Runbook: https://git.bureau.test/lantian/docs/runbook.md#data-quality-failure" in content
    )


def test_webhook_from_an_airflow_connection(monkeypatch, webhook_server):
    monkeypatch.setenv(
        "AIRFLOW_CONN_LANTIAN_ALERT_WEBHOOK",
        json.dumps(
            {"conn_type": "http", "host": webhook_server.url, "extra": {"format": "dingtalk"}}
        ),
    )
    target = webhook_target()
    assert target == WebhookTarget(webhook_server.url, "dingtalk")
    assert SECRET not in repr(target)  # the robot's key stays out of logs and reprs


def test_no_webhook_configured_is_none():
    assert webhook_target() is None


def test_fit_bytes_cuts_at_a_line_and_counts_what_it_left_out():
    lines = ["0123456789"] * 6
    assert fit_bytes(lines, 65) == "\n".join(lines)  # 6 * 10 + 5 newlines
    # keep k lines: 10k + (k - 1) + 1 + len("… N more line(s) not shown") = 11k + 28 bytes
    assert fit_bytes(lines, 64) == "\n".join(lines[:3] + ["… 3 more line(s) not shown"])
    assert fit_bytes(lines, 60) == "\n".join(lines[:2] + ["… 4 more line(s) not shown"])
    chinese = ["设备离线" * 100]  # 1200 bytes, 3 per character
    cut = fit_bytes(chinese, 100)
    assert len(cut.encode("utf-8")) <= 100
    assert cut.endswith(" …") and cut.startswith("设备离线")


def test_robot_payload_fits_the_wecom_limit_with_many_findings():
    findings = [
        {
            "key": f"silent_device:41010000000000000000{i:04d}",
            "kind": "silent_device",
            "subject": f"41010000000000000000{i:04d}",
            "summary": f"ambient device 41010000000000000000{i:04d} silent: 微站离线 3.5 h",
            "runbook": "silent-device",
            "severity": "warning",
        }
        for i in range(60)
    ]
    alert = notify.alert_from_findings(findings, datetime(2017, 12, 2, 2, 0, tzinfo=UTC))
    content = webhook_payload(alert, "wecom")["text"]["content"]
    assert len(content.encode("utf-8")) <= 2048
    shown = sum(1 for line in content.splitlines() if line.startswith("- "))
    assert 0 < shown < 60
    assert content.endswith(f"… {60 - shown} more line(s) not shown")
    assert webhook_payload(alert, "json")["findings"][59]["subject"].endswith("0059")


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ((500, {"error": "boom"}), "HTTP 500"),
        ((200, {"errcode": 93000, "errmsg": "invalid webhook url"}), "errcode 93000"),
    ],
)
def test_refused_webhook_returns_false_and_logs(webhook_server, caplog, reply, why):
    webhook_server.reply = reply
    alert = Alert("[Lantian] t", "warning", "alert-channels")
    with caplog.at_level(logging.WARNING, logger="lantian.notify"):
        assert post_webhook(WebhookTarget(webhook_server.url), {"x": 1}) is False
    assert why in caplog.text
    assert SECRET not in caplog.text
    assert len(webhook_server.received) == 1 and alert.text()


def test_unreachable_webhooks_never_raise(closed_port_url, hanging_server, caplog):
    with caplog.at_level(logging.WARNING, logger="lantian.notify"):
        assert post_webhook(WebhookTarget(closed_port_url), {"x": 1}) is False
        started = datetime.now(UTC)
        assert post_webhook(WebhookTarget(hanging_server), {"x": 1}, timeout=0.5) is False
        assert datetime.now(UTC) - started < timedelta(seconds=5)
        assert post_webhook(WebhookTarget("not a url"), {"x": 1}) is False
    assert caplog.text.count("not delivered") == 3
    assert SECRET not in caplog.text  # connection errors quote the URL: its key is cut out


def test_broken_webhook_does_not_fail_the_callback(closed_port_url, caplog):
    notifier = LantianWebhookNotifier("day", url=closed_port_url)
    with caplog.at_level(logging.WARNING, logger="lantian.notify"):
        notifier(daily_context(critical_error()))  # must return normally
    assert "not delivered" in caplog.text


def test_notifier_survives_a_context_it_cannot_read(webhook_server, caplog):
    class Exploding:
        @property
        def log_url(self):
            raise RuntimeError("api server unreachable")

        dag_id, task_id, run_id, try_number, map_index = "lantian_daily", "cems_rules", "r", 1, -1

    context = {"ti": Exploding(), "params": None, "exception": ValueError("x")}
    LantianWebhookNotifier("day", url=webhook_server.url)(context)
    body = webhook_server.received[0]["json"]
    assert body["task_id"] == "cems_rules" and body["log_url"] == "" and body["day"] == ""


# -- email ------------------------------------------------------------------------------------


def _html(message) -> str:
    part = message.get_body(preferencelist=("html",))
    return part.get_content()


def test_email_notifier_sends_through_the_smtp_provider(smtp_server):
    error = ValueError("bad value {{ ti.task_id }} in column a21026\ntraceback …")
    notifier = LantianEmailNotifier(
        "day", to="ops@bureau.test; oncall@bureau.test", smtp_conn_id="lantian_test_smtp"
    )
    notifier(daily_context(error))
    assert len(smtp_server.messages) == 1
    sent = smtp_server.messages[0]
    assert sent["from"] == "lantian@bureau.test"
    assert sent["rcpt"] == ["ops@bureau.test", "oncall@bureau.test"]
    message = sent["message"]
    assert message["Subject"] == "[Lantian] FAILED lantian_daily.validate_ambient for 2017-12-02"
    body = _html(message)
    assert "scheduled__2017-12-01T16:00:00+00:00" in body
    assert "2017-12-02" in body
    # the error text goes out as written: never through Jinja
    assert "ValueError: bad value {{ ti.task_id }} in column a21026" in body
    assert "traceback" not in body
    assert "docs/runbook.md#failed-daily-run" in body
    assert "href='http://airflow.bureau.test:8080/dags/lantian_daily/runs/" in body


def test_email_recipients_from_environment(monkeypatch):
    monkeypatch.setenv("LANTIAN_ALERT_EMAILS", "a@bureau.test; b@bureau.test,")
    assert email_recipients() == ["a@bureau.test", "b@bureau.test"]
    monkeypatch.setenv("LANTIAN_ALERT_EMAILS", '["c@bureau.test", "d@bureau.test"]')
    assert email_recipients() == ["c@bureau.test", "d@bureau.test"]


def test_email_recipients_from_an_airflow_variable(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_LANTIAN_ALERT_EMAILS", "ops@bureau.test")
    assert email_recipients() == ["ops@bureau.test"]


def test_dead_mail_server_does_not_raise(monkeypatch, closed_port_url, caplog):
    port = int(closed_port_url.split(":")[2].split("/")[0])
    monkeypatch.setenv(
        "AIRFLOW_CONN_LANTIAN_DEAD_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "from_email": "x@bureau.test",
                    "disable_ssl": True,
                    "disable_tls": True,
                    "timeout": 2,
                    "retry_limit": 0,
                },
            }
        ),
    )
    alert = Alert("[Lantian] t", "warning", "alert-channels")
    with caplog.at_level(logging.WARNING, logger="lantian.notify"):
        assert send_email(alert, ["ops@bureau.test"], smtp_conn_id="lantian_dead_smtp") is False
        LantianEmailNotifier("day", to="ops@bureau.test", smtp_conn_id="lantian_dead_smtp")(
            daily_context(RuntimeError("x"))
        )
    assert caplog.text.count("not delivered") == 2


# -- the watch's findings ---------------------------------------------------------------------


def finding(
    kind: str, subject: str, severity: str = "warning", runbook: str = "silent-device"
) -> dict:
    return {
        "key": f"{kind}:{subject}",
        "kind": kind,
        "subject": subject,
        "summary": f"{kind} {subject}",
        "runbook": runbook,
        "severity": severity,
        "details": {},
    }


class MemoryState:
    def __init__(self, state=None):
        self.state = dict(state or {})
        self.saves = 0

    def load(self):
        return dict(self.state)

    def save(self, state):
        self.state = dict(state)
        self.saves += 1


NOW = datetime(2017, 12, 2, 2, 0, tzinfo=UTC)


def test_due_findings_new_or_past_the_repeat_interval():
    sent = {
        "silent_device:A": (NOW - timedelta(hours=25)).isoformat(),
        "silent_device:B": (NOW - timedelta(hours=1)).isoformat(),
        "silent_device:C": (NOW - timedelta(hours=24)).isoformat(),
        "silent_device:gone": (NOW - timedelta(hours=2)).isoformat(),
    }
    current = [finding("silent_device", s) for s in ("A", "B", "C", "D")]
    due, state = due_findings(current, sent, NOW, repeat_hours=24)
    assert [f["subject"] for f in due] == ["A", "C", "D"]  # C: exactly 24 h is due again
    assert state == {
        "silent_device:A": NOW.isoformat(),
        "silent_device:B": sent["silent_device:B"],
        "silent_device:C": NOW.isoformat(),
        "silent_device:D": NOW.isoformat(),
    }  # "gone" was resolved: forgotten, so it is new if it comes back


def test_notify_findings_sends_once_then_waits(webhook_server, monkeypatch):
    monkeypatch.setenv("LANTIAN_ALERT_WEBHOOK", webhook_server.url)
    state = MemoryState()
    found = [
        finding("silent_device", "A"),
        finding("quality_critical", "2017-12-01 ambient", "critical", "data-quality-failure"),
    ]
    summary = notify_findings(found, NOW, state=state, repeat_hours=24)
    assert summary == {"findings": 2, "notified": 2, "delivered": {"webhook": True, "email": None}}
    body = webhook_server.received[0]["json"]
    assert body["severity"] == "critical"
    assert body["lines"][0].startswith("! quality_critical 2017-12-01 ambient")  # most severe first
    assert body["lines"][0].endswith("docs/runbook.md#data-quality-failure")
    assert body["lines"][1].endswith("docs/runbook.md#silent-device")
    assert set(state.state) == {"silent_device:A", "quality_critical:2017-12-01 ambient"}

    later = notify_findings(found, NOW + timedelta(hours=1), state=state, repeat_hours=24)
    assert later["notified"] == 0 and len(webhook_server.received) == 1

    found.append(finding("disk_low", "box-7", runbook="full-disk"))
    notify_findings(found, NOW + timedelta(hours=2), state=state, repeat_hours=24)
    assert len(webhook_server.received) == 2
    assert [f["subject"] for f in webhook_server.received[1]["json"]["findings"]] == ["box-7"]
    assert "1 finding(s) need attention (3 open)" in webhook_server.received[1]["json"]["title"]


def test_findings_lost_to_a_broken_webhook_stay_due(closed_port_url, webhook_server, monkeypatch):
    monkeypatch.setenv("LANTIAN_ALERT_WEBHOOK", closed_port_url)
    state = MemoryState({"silent_device:A": (NOW - timedelta(hours=2)).isoformat()})
    found = [finding("silent_device", "A"), finding("silent_device", "B")]
    summary = notify_findings(found, NOW, state=state, repeat_hours=24)
    assert summary["notified"] == 0 and summary["delivered"]["webhook"] is False
    assert state.state == {"silent_device:A": (NOW - timedelta(hours=2)).isoformat()}

    monkeypatch.setenv("LANTIAN_ALERT_WEBHOOK", webhook_server.url)
    summary = notify_findings(found, NOW + timedelta(hours=1), state=state, repeat_hours=24)
    assert summary["notified"] == 1  # B is still due; A was notified 3 h ago
    assert [f["subject"] for f in webhook_server.received[0]["json"]["findings"]] == ["B"]


def test_without_channels_the_findings_go_to_the_log(caplog):
    state = MemoryState()
    with caplog.at_level(logging.WARNING, logger="lantian.notify"):
        summary = notify_findings(
            [finding("box_silent", "box-3")], NOW, state=state, repeat_hours=24
        )
    assert summary["delivered"] == {"webhook": None, "email": None}
    assert "no alert channel configured" in caplog.text and "box_silent box-3" in caplog.text


def test_notify_findings_never_raises_on_a_broken_state(webhook_server, monkeypatch):
    monkeypatch.setenv("LANTIAN_ALERT_WEBHOOK", webhook_server.url)

    class Broken:
        def load(self):
            raise OSError("variable store down")

        def save(self, state):
            raise OSError("variable store down")

    summary = notify_findings([finding("silent_device", "A")], NOW, state=Broken())
    assert summary["notified"] == 0


# -- the command line -------------------------------------------------------------------------


def test_cli_sends_a_test_alert(webhook_server):
    env = dict(
        os.environ, LANTIAN_ALERT_WEBHOOK=webhook_server.url, LANTIAN_ALERT_WEBHOOK_FORMAT="wecom"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lantian.notify", "test"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "webhook: delivered" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr
    content = webhook_server.received[0]["json"]["text"]["content"]
    assert content.startswith("[Lantian] test alert from ")
    assert "docs/runbook.md#alert-channels" in content
