"""Tell the data engineers when something needs them: webhook and email notifiers for Airflow.

Two channels, each optional, both looked up when a notification is sent (never while a DAG file
is parsed, which happens every few seconds):

- **webhook**: ``LANTIAN_ALERT_WEBHOOK`` (a URL) with ``LANTIAN_ALERT_WEBHOOK_FORMAT``, else the
  Airflow connection ``lantian_alert_webhook`` (the URL in ``host`` or in extra ``url``, the
  format in extra ``format``). Formats: ``json`` (default: the alert's fields, for any HTTP
  endpoint), ``wecom`` and ``dingtalk`` (a group robot's text message).
- **email**: recipients from ``LANTIAN_ALERT_EMAILS``, else the Airflow Variable
  ``lantian_alert_emails`` (comma-separated or a JSON list); sent with the SMTP provider's
  ``SmtpNotifier`` through ``LANTIAN_ALERT_SMTP_CONN`` or Airflow's ``[email] email_conn_id``
  (``smtp_default``); the sender is ``LANTIAN_ALERT_FROM`` or the connection's ``from_email``.

Every message says what failed and where to look: DAG, task, run, the Beijing day or month, the
error's first line, the log URL, and the section of docs/runbook.md that applies.

A notification that cannot be delivered is logged and dropped: a broken webhook or mail server
must never fail the pipeline, so nothing here raises out of a notifier.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit

from airflow.sdk import BaseNotifier

from schemas.operations import operations_setting

log = logging.getLogger("lantian.notify")

BEIJING = timezone(timedelta(hours=8))

ENV_WEBHOOK = "LANTIAN_ALERT_WEBHOOK"
ENV_WEBHOOK_FORMAT = "LANTIAN_ALERT_WEBHOOK_FORMAT"
ENV_EMAILS = "LANTIAN_ALERT_EMAILS"
ENV_SMTP_CONN = "LANTIAN_ALERT_SMTP_CONN"
ENV_FROM = "LANTIAN_ALERT_FROM"
ENV_RUNBOOK = "LANTIAN_RUNBOOK_URL"
WEBHOOK_CONN_ID = "lantian_alert_webhook"
EMAILS_VARIABLE = "lantian_alert_emails"
NOTIFIED_VARIABLE = "lantian_watch_notified"
RUNBOOK_PATH = "docs/runbook.md"
WEBHOOK_FORMATS = ("json", "wecom", "dingtalk")

#: anchor -> section title in docs/runbook.md (tests check that each anchor exists there)
RUNBOOK_SECTIONS = {
    "alert-channels": "Where alerts go",
    "failed-daily-run": "A failed daily run",
    "data-quality-failure": "A data-quality failure",
    "silent-device": "A silent device",
    "silent-subdistrict": "A silent subdistrict",
    "backlog-growing": "A box's backlog growing",
    "replayed-backlog": "A replayed backlog",
    "full-disk": "A box with a full disk",
    "rule-change-backfill": "A rule or limit change that needs a backfill",
    "rotated-device-secret": "A rotated device secret",
    "failed-monthly-report": "A failed monthly report",
    "tampered-or-missing-evidence": "Tampered or missing evidence",
    "watch-failed": "The watch itself fails",
}

_EVIDENCE_ERRORS = ("EvidenceTampered", "EvidenceMissing")


# -- what a message says ----------------------------------------------------------------------


def runbook_url(anchor: str) -> str:
    """``docs/runbook.md#anchor``, or under ``LANTIAN_RUNBOOK_URL`` (e.g. the repository's web view)."""
    base = os.environ.get(ENV_RUNBOOK, "").strip() or RUNBOOK_PATH
    return f"{base.split('#', 1)[0]}#{anchor}"


def first_line(error: Any, limit: int = 300) -> str:
    """The error's type and the first non-blank line of its message, at most ``limit`` characters."""
    if error is None or error == "":
        return ""
    kind = type(error).__name__ if isinstance(error, BaseException) else ""
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    line = f"{kind}: {text}" if kind and text else kind or text
    return line if len(line) <= limit else line[: limit - 1] + "…"


def runbook_for_failure(dag_id: str, task_id: str, error: Any) -> str:
    """The runbook section for a failed task: by the error's type first, then by DAG."""
    name = type(error).__name__ if isinstance(error, BaseException) else ""
    if name in _EVIDENCE_ERRORS:
        return "tampered-or-missing-evidence"
    if dag_id == "lantian_monthly_report":
        return "failed-monthly-report"
    if dag_id == "lantian_watch":
        return "watch-failed"
    if name == "CriticalValidationError":
        return "data-quality-failure"
    return "failed-daily-run"


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    try:
        return getattr(obj, name, default)
    except Exception:  # a lazy property that needs the API server (log_url, …)
        return default


def _as_instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def beijing_period(context: Mapping[str, Any], period: str) -> str:
    """The Beijing day (``YYYY-MM-DD``), month (``YYYY-MM``) or hour a run is about.

    Mirrors the DAGs' own ``resolve_day``/``resolve_month``: the run's ``day``/``month`` param
    wins; otherwise the start of its data interval, in Beijing time.
    """
    params = context.get("params") or {}
    if period in ("day", "month") and _field(params, period):
        return str(_field(params, period))
    dag_run = context.get("dag_run")
    start = None
    for candidate in (
        context.get("data_interval_start"),
        _field(dag_run, "data_interval_start"),
        context.get("logical_date"),
        _field(dag_run, "run_after"),
    ):
        start = _as_instant(candidate)
        if start is not None:
            break
    if start is None:
        return ""
    local = start.astimezone(BEIJING)
    if period == "month":
        return local.strftime("%Y-%m")
    if period == "hour":
        return local.strftime("%Y-%m-%d %H:00")
    return local.date().isoformat()


@dataclass
class Alert:
    """One notification, rendered as plain text (robots), HTML (email) or JSON (any endpoint)."""

    title: str
    severity: str  # "failure", "critical" or "warning"
    runbook: str  # anchor in docs/runbook.md
    facts: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def header(self) -> list[str]:
        out = [self.title]
        out += [f"{label}: {value}" for label, value in self.facts if value not in ("", None)]
        out.append(f"Runbook: {runbook_url(self.runbook)}")
        return out

    def text(self) -> str:
        return "\n".join(self.header() + self.lines)

    def subject(self) -> str:
        return " ".join(self.title.split())[:200]

    def html(self, max_lines: int | None = None) -> str:
        lines = self.lines if max_lines is None else self.lines[:max_lines]
        rows = "".join(
            f"<tr><th align='left'>{html.escape(label)}</th><td>{_html_value(value)}</td></tr>"
            for label, value in self.facts
            if value not in ("", None)
        )
        link = runbook_url(self.runbook)
        items = "".join(f"<li>{html.escape(line.lstrip('- '))}</li>" for line in lines)
        more = len(self.lines) - len(lines)
        tail = f"<p>… {more} more in the task log.</p>" if more > 0 else ""
        return (
            f"<h3>{html.escape(self.title)}</h3><table>{rows}"
            f"<tr><th align='left'>Runbook</th><td>{_html_value(link)}</td></tr></table>"
            + (f"<ul>{items}</ul>" if items else "")
            + tail
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": "lantian",
            "title": self.title,
            "severity": self.severity,
            "runbook": runbook_url(self.runbook),
            "facts": dict(self.facts),
            "lines": list(self.lines),
            **self.data,
        }


def _html_value(value: Any) -> str:
    text = html.escape(str(value))
    if str(value).startswith(("http://", "https://")):
        return f"<a href='{text}'>{text}</a>"
    return text


def alert_from_context(context: Mapping[str, Any], period: str = "day") -> Alert:
    """What failed and where to look, from an Airflow callback context (task or DAG level)."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    dag_id = _field(ti, "dag_id") or _field(dag, "dag_id") or _field(dag_run, "dag_id") or ""
    task_id = _field(ti, "task_id") or ""
    run_id = context.get("run_id") or _field(ti, "run_id") or _field(dag_run, "run_id") or ""
    error = context.get("exception")
    if error is None:
        error = context.get("reason")  # DAG-level callbacks name a reason, not an exception
    when = beijing_period(context, period)
    try_number = _field(ti, "try_number")
    task_text = task_id + (f" (try {try_number})" if task_id and try_number else "")
    map_index = _field(ti, "map_index")
    if task_id and isinstance(map_index, int) and map_index >= 0:
        task_text += f" [map {map_index}]"
    period_label = {"day": "Day (Beijing)", "month": "Month", "hour": "Hour (Beijing)"}.get(
        period, period
    )
    anchor = runbook_for_failure(dag_id, task_id, error)
    where = f"{dag_id}.{task_id}" if task_id else dag_id
    title = f"[Lantian] FAILED {where}" + (f" for {when}" if when else "")
    return Alert(
        title=title,
        severity="failure",
        runbook=anchor,
        facts=[
            ("DAG", dag_id),
            ("Task", task_text),
            ("Run", run_id),
            (period_label, when),
            ("Error", first_line(error)),
            ("Log", _field(ti, "log_url") or ""),
        ],
        data={
            "dag_id": dag_id,
            "task_id": task_id,
            "run_id": run_id,
            period: when,
            "error": first_line(error),
            "log_url": _field(ti, "log_url") or "",
        },
    )


# -- webhook ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTarget:
    url: str = field(repr=False)  # a robot's URL carries its key
    fmt: str = "json"


def _in_task() -> bool:
    """Are we inside an Airflow task (which reaches connections through the API server)?"""
    try:
        from airflow.sdk.execution_time import task_runner
    except Exception:
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def _connection(conn_id: str) -> Any | None:
    """An Airflow connection, or None. Outside a task (a shell, ``python -m lantian.notify``)
    the SDK sees only ``AIRFLOW_CONN_*`` variables, so the metadata database is asked too, as
    the ``airflow`` command does."""
    try:
        from airflow.sdk import Connection

        return Connection.get(conn_id)
    except Exception as exc:
        log.debug("no connection %s through the SDK: %s", conn_id, first_line(exc))
    if _in_task():
        return None
    try:
        from airflow.models.connection import Connection as StoredConnection

        return StoredConnection.get_connection_from_secrets(conn_id)
    except Exception as exc:
        log.debug("no connection %s in the metadata database: %s", conn_id, first_line(exc))
        return None


def _variable(key: str) -> Any | None:
    """An Airflow Variable's value, or None (same lookup order as :func:`_connection`)."""
    try:
        from airflow.sdk import Variable

        return Variable.get(key, default=None)
    except Exception as exc:
        log.debug("no variable %s through the SDK: %s", key, first_line(exc))
    if _in_task():
        return None
    try:
        from airflow.models.variable import Variable as StoredVariable

        return StoredVariable.get(key, default_var=None)
    except Exception as exc:
        log.debug("no variable %s in the metadata database: %s", key, first_line(exc))
        return None


def webhook_target(conn_id: str = WEBHOOK_CONN_ID) -> WebhookTarget | None:
    """The configured webhook: the environment first, then the Airflow connection; else None."""
    url = os.environ.get(ENV_WEBHOOK, "").strip()
    fmt = os.environ.get(ENV_WEBHOOK_FORMAT, "").strip()
    if not url:
        conn = _connection(conn_id)
        if conn is None:
            return None
        extra = conn.extra_dejson or {}
        url = str(extra.get("url") or conn.host or "").strip()
        fmt = fmt or str(extra.get("format") or "")
        if not url.startswith(("http://", "https://")):
            log.warning("connection %s has no http(s) URL in host or extra 'url'", conn_id)
            return None
    fmt = (fmt or "json").lower()
    if fmt not in WEBHOOK_FORMATS:
        log.warning("webhook format %r unknown (one of %s); sending json", fmt, WEBHOOK_FORMATS)
        fmt = "json"
    return WebhookTarget(url, fmt)


def fit_bytes(lines: Sequence[str], max_bytes: int) -> str:
    """Join ``lines`` into at most ``max_bytes`` of UTF-8, cutting at a line and saying so."""

    def size(text: str) -> int:
        return len(text.encode("utf-8"))

    full = "\n".join(lines)
    if size(full) <= max_bytes:
        return full
    for keep in range(len(lines) - 1, 0, -1):
        text = "\n".join([*lines[:keep], f"… {len(lines) - keep} more line(s) not shown"])
        if size(text) <= max_bytes:
            return text
    # Not even the first line fits: cut it at a character boundary.
    head = lines[0].encode("utf-8")[: max(0, max_bytes - size(" …"))]
    return head.decode("utf-8", "ignore") + " …"


def webhook_payload(alert: Alert, fmt: str, max_bytes: int | None = None) -> dict[str, Any]:
    """The body to POST: a robot's text message, or the alert's fields as JSON."""
    if fmt in ("wecom", "dingtalk"):
        limit = int(max_bytes or operations_setting("notify.webhook_max_bytes"))
        return {
            "msgtype": "text",
            "text": {"content": fit_bytes(alert.header() + alert.lines, limit)},
        }
    return dict(alert.as_dict(), text=alert.text())


def _redact(text: str, url: str) -> str:
    """``text`` without the URL's path and query (a robot's key lives there)."""
    parts = urlsplit(url)
    secret_parts = [url, parts.path + ("?" + parts.query if parts.query else ""), parts.query]
    for secret in sorted((s for s in secret_parts if s and s != "/"), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.netloc else "(no host)"


def post_webhook(
    target: WebhookTarget, payload: Mapping[str, Any], timeout: float | None = None
) -> bool:
    """POST ``payload`` as JSON; True when the endpoint accepted it. Never raises."""
    timeout = float(timeout or operations_setting("notify.webhook_timeout_s"))
    try:
        import requests

        response = requests.post(target.url, json=dict(payload), timeout=timeout)
    except Exception as exc:
        log.warning(
            "webhook %s not delivered: %s", _where(target.url), _redact(first_line(exc), target.url)
        )
        return False
    if response.status_code >= 400:
        log.warning(
            "webhook %s refused the notification: HTTP %s %s",
            _where(target.url),
            response.status_code,
            _redact(response.text[:200], target.url),
        )
        return False
    try:
        answer = response.json()
    except ValueError:
        answer = None
    # Group robots answer 200 with an error code (bad key, keyword not in the message, …).
    if isinstance(answer, dict) and answer.get("errcode") not in (None, 0):
        log.warning(
            "webhook %s refused the notification: errcode %s %s",
            _where(target.url),
            answer.get("errcode"),
            str(answer.get("errmsg", ""))[:200],
        )
        return False
    return True


# -- email ------------------------------------------------------------------------------------


def _address_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return _address_list(json.loads(text))
            except ValueError:
                pass
        return [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]
    if isinstance(value, Iterable):
        return [str(a).strip() for a in value if str(a).strip()]
    return []


def email_recipients(variable: str = EMAILS_VARIABLE) -> list[str]:
    """Recipients from ``LANTIAN_ALERT_EMAILS``, else the Airflow Variable; [] when neither."""
    env = os.environ.get(ENV_EMAILS, "")
    if env.strip():
        return _address_list(env)
    return _address_list(_variable(variable))


def send_email(
    alert: Alert,
    to: Sequence[str],
    *,
    smtp_conn_id: str | None = None,
    from_email: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Send ``alert`` with the SMTP provider's notifier; True when the server took it. Never raises."""
    try:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifier = SmtpNotifier(
            to=list(to),
            from_email=from_email or os.environ.get(ENV_FROM) or None,
            subject=alert.subject(),
            html_content=alert.html(int(operations_setting("notify.max_findings_listed"))),
            smtp_conn_id=smtp_conn_id or os.environ.get(ENV_SMTP_CONN) or None,
        )
        # notify() directly, not __call__: our text is final and must not go through Jinja
        # (an error message may contain braces).
        notifier.notify(dict(context or {}))
        return True
    except Exception as exc:
        log.warning("email to %s not delivered: %s", ", ".join(to), first_line(exc))
        return False


def deliver(alert: Alert, context: Mapping[str, Any] | None = None) -> dict[str, bool | None]:
    """Send ``alert`` on every configured channel: True delivered, False failed, None not set up."""
    outcome: dict[str, bool | None] = {"webhook": None, "email": None}
    try:
        target = webhook_target()
        if target is not None:
            outcome["webhook"] = post_webhook(target, webhook_payload(alert, target.fmt))
        recipients = email_recipients()
        if recipients:
            outcome["email"] = send_email(alert, recipients, context=context)
    except Exception:
        log.exception("notification %r not delivered", alert.title)
    if all(v is None for v in outcome.values()):
        log.warning(
            "no alert channel configured (see %s); the alert was:\n%s",
            runbook_url("alert-channels"),
            alert.text(),
        )
    return outcome


# -- Airflow notifiers ------------------------------------------------------------------------


class LantianWebhookNotifier(BaseNotifier):
    """``on_failure_callback`` that POSTs what failed to the configured webhook.

    ``url``/``fmt`` override the configuration (tests, a DAG with its own robot).
    """

    def __init__(
        self,
        period: str = "day",
        *,
        url: str | None = None,
        fmt: str | None = None,
        conn_id: str = WEBHOOK_CONN_ID,
    ) -> None:
        super().__init__()
        self.period = period
        self.url = url
        self.fmt = fmt
        self.conn_id = conn_id

    def notify(self, context: Any) -> None:
        try:
            alert = alert_from_context(context, self.period)
            target = (
                WebhookTarget(self.url, self.fmt or "json")
                if self.url
                else webhook_target(self.conn_id)
            )
            if target is None:
                log.info("no webhook configured; not sent: %s", alert.title)
                return
            post_webhook(target, webhook_payload(alert, target.fmt))
        except Exception:
            log.exception("webhook notification failed; the pipeline carries on")


class LantianEmailNotifier(BaseNotifier):
    """``on_failure_callback`` that emails what failed through the SMTP provider."""

    def __init__(
        self,
        period: str = "day",
        *,
        to: Sequence[str] | str | None = None,
        smtp_conn_id: str | None = None,
        from_email: str | None = None,
    ) -> None:
        super().__init__()
        self.period = period
        self.to = to
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email

    def notify(self, context: Any) -> None:
        try:
            alert = alert_from_context(context, self.period)
            to = _address_list(self.to) if self.to else email_recipients()
            if not to:
                log.info("no alert recipients configured; not emailed: %s", alert.title)
                return
            send_email(
                alert,
                to,
                smtp_conn_id=self.smtp_conn_id,
                from_email=self.from_email,
                context=context,
            )
        except Exception:
            log.exception("email notification failed; the pipeline carries on")


def failure_notifiers(period: str = "day") -> list[BaseNotifier]:
    """The callbacks a Lantian DAG attaches: ``default_args={"on_failure_callback": ...}``.

    ``period`` is what a run is about: ``day``, ``month`` or ``hour``. Cheap to build at parse
    time: nothing is looked up until a task fails.
    """
    return [LantianWebhookNotifier(period), LantianEmailNotifier(period)]


# -- the watch's findings ---------------------------------------------------------------------


class NotifiedState(Protocol):
    """Where the watch remembers when it last notified each finding."""

    def load(self) -> dict[str, str]: ...

    def save(self, state: Mapping[str, str]) -> None: ...


class VariableState:
    """The state in an Airflow Variable (shared by every worker, survives restarts)."""

    def __init__(self, key: str = NOTIFIED_VARIABLE) -> None:
        self.key = key

    def load(self) -> dict[str, str]:
        raw = _variable(self.key)
        try:
            state = json.loads(raw) if isinstance(raw, str) else raw
            return {str(k): str(v) for k, v in (state or {}).items()}
        except (ValueError, AttributeError) as exc:
            log.warning(
                "variable %s is not a JSON object (%s): all findings count as new", self.key, exc
            )
            return {}

    def save(self, state: Mapping[str, str]) -> None:
        value = json.dumps(dict(state), sort_keys=True)
        try:
            if _in_task():
                from airflow.sdk import Variable

                Variable.set(self.key, value)
            else:
                from airflow.models.variable import Variable as StoredVariable

                StoredVariable.set(self.key, value)
        except Exception as exc:
            log.warning("cannot store variable %s: %s", self.key, first_line(exc))


def due_findings(
    findings: Sequence[Mapping[str, Any]],
    sent: Mapping[str, str],
    now: datetime,
    repeat_hours: float,
) -> tuple[list[Mapping[str, Any]], dict[str, str]]:
    """Which findings to notify now, and the state to keep if they are delivered.

    A finding is due when its key was never notified, or last notified ``repeat_hours`` or more
    ago. The state keeps only the keys of current findings, so one that was resolved and comes
    back is new again.
    """
    due: list[Mapping[str, Any]] = []
    state: dict[str, str] = {}
    for finding in findings:
        key = str(finding["key"])
        last = _as_instant(sent.get(key))
        if last is None or now - last >= timedelta(hours=repeat_hours):
            due.append(finding)
            state[key] = now.isoformat()
        else:
            state[key] = sent[key]
    return due, state


def finding_line(finding: Mapping[str, Any]) -> str:
    anchor = finding.get("runbook") or "watch-failed"
    mark = "!" if finding.get("severity") == "critical" else "-"
    return f"{mark} {finding.get('summary', finding.get('key'))} → {runbook_url(anchor)}"


def alert_from_findings(
    due: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    total: int | None = None,
    context: Mapping[str, Any] | None = None,
) -> Alert:
    """One message for the findings of one watch run, the most severe first."""
    context = context or {}
    ordered = sorted(
        due,
        key=lambda f: (f.get("severity") != "critical", f.get("kind", ""), f.get("subject", "")),
    )
    kinds = sorted({f.get("kind", "") for f in ordered})
    anchors = [f.get("runbook") for f in ordered if f.get("runbook")]
    critical = any(f.get("severity") == "critical" for f in ordered)
    hour = now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    total = len(due) if total is None else total
    title = f"[Lantian] watch {hour} Beijing: {len(due)} finding(s) need attention" + (
        f" ({total} open)" if total != len(due) else ""
    )
    ti = context.get("ti")
    return Alert(
        title=title,
        severity="critical" if critical else "warning",
        runbook=anchors[0] if anchors else "watch-failed",
        facts=[
            ("DAG", _field(ti, "dag_id") or "lantian_watch"),
            ("Run", context.get("run_id") or _field(ti, "run_id") or ""),
            ("Checked at (Beijing)", hour),
            ("Kinds", ", ".join(kinds)),
            ("Log", _field(ti, "log_url") or ""),
        ],
        lines=[finding_line(f) for f in ordered],
        data={"findings": [dict(f) for f in ordered], "checked_at": now.isoformat()},
    )


def notify_findings(
    findings: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    state: NotifiedState | None = None,
    context: Mapping[str, Any] | None = None,
    repeat_hours: float | None = None,
) -> dict[str, Any]:
    """Notify the findings that are due (new, or open past ``notify.repeat_hours``). Never raises.

    A finding counts as notified only when a channel took the message, so an alert lost to a
    broken webhook is tried again at the next run.
    """
    summary: dict[str, Any] = {"findings": len(findings), "notified": 0, "delivered": {}}
    try:
        for finding in findings:
            log.warning("finding %s: %s", finding.get("key"), finding.get("summary"))
        state = state or VariableState()
        repeat = float(
            repeat_hours if repeat_hours is not None else operations_setting("notify.repeat_hours")
        )
        sent = state.load()
        due, new_state = due_findings(findings, sent, now, repeat)
        if due:
            alert = alert_from_findings(due, now, total=len(findings), context=context)
            delivered = deliver(alert, context)
            summary["delivered"] = delivered
            if any(delivered.values()) or all(v is None for v in delivered.values()):
                summary["notified"] = len(due)
            else:
                # every channel failed: keep the old marks so that these stay due
                for finding in due:
                    key = str(finding["key"])
                    if key in sent:
                        new_state[key] = sent[key]
                    else:
                        new_state.pop(key, None)
        state.save(new_state)
    except Exception:
        log.exception("notifying the watch's findings failed; the findings are in this log")
    return summary


# -- command line -----------------------------------------------------------------------------


def _smtp_conn_id() -> str:
    explicit = os.environ.get(ENV_SMTP_CONN)
    if explicit:
        return explicit
    try:
        from airflow.configuration import conf

        return conf.get("email", "email_conn_id", fallback="smtp_default")
    except Exception:
        return "smtp_default"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lantian.notify show|test``: which channels are set up; send a test alert."""
    import argparse
    import socket
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m lantian.notify",
        description="Check the alert channels (docs/runbook.md#alert-channels).",
    )
    parser.add_argument(
        "action",
        choices=("show", "test"),
        help="show: the channels found (no URL keys printed); test: send a test alert on each",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    target = webhook_target()
    recipients = email_recipients()
    smtp = _smtp_conn_id()
    print(
        f"webhook: {_where(target.url) + ' (' + target.fmt + ')' if target else 'not configured'}"
    )
    print(f"email:   {', '.join(recipients) + ' via ' + smtp if recipients else 'not configured'}")
    if args.action == "show":
        return 0 if target or recipients else 2
    env_name = f"AIRFLOW_CONN_{smtp.upper()}"
    if recipients and env_name not in os.environ:
        # SmtpHook looks connections up through the SDK, which outside a task sees only the
        # environment: hand it the stored connection for this process only.
        conn = _connection(smtp)
        if conn is not None:
            os.environ[env_name] = conn.as_json()
    alert = Alert(
        title=f"[Lantian] test alert from {socket.gethostname()}",
        severity="warning",
        runbook="alert-channels",
        facts=[("Sent at (Beijing)", datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"))],
        lines=["If you read this, Lantian's alerts reach you on this channel."],
    )
    outcome = deliver(alert)
    for channel, result in outcome.items():
        print(
            f"{channel}: {'not configured' if result is None else 'delivered' if result else 'FAILED (see the log line above)'}"
        )
    if all(v is None for v in outcome.values()):
        return 2
    return 0 if all(v is not False for v in outcome.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
