"""Airflow local settings of the distributed mode (on PYTHONPATH through distributed.env).

Airflow imports this module first thing in every process (``airflow.settings.initialize``).
It carries one compatibility fix: the Celery provider pinned here (3.26) imports ``retry`` from
``celery.backends.database``, which Celery 5.7 (also pinned) no longer has, so neither the
scheduler nor a worker can even load the CeleryExecutor. The decorator is restored with the same
meaning: re-run a result-backend query on a transient database error, at most three times.
When the pins move to a matching pair the ``hasattr`` guard makes this a no-op; delete it then.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lantian.airflow_local_settings")
DB_RETRIES = 3


def _restore_celery_database_retry() -> None:
    try:
        import celery.backends.database as database
    except ImportError:  # no Celery (embedded mode, or SQLAlchemy missing): nothing to fix
        return
    if hasattr(database, "retry"):
        return
    transient = getattr(database, "RETRYABLE_DB_ERRORS", ())

    def retry(fun: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fun)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(1, DB_RETRIES + 1):
                try:
                    return fun(*args, **kwargs)
                except transient:
                    if attempt == DB_RETRIES:
                        raise
                    log.warning("%s failed, retrying (%d/%d)", fun.__name__, attempt, DB_RETRIES)
            return None  # unreachable: the last attempt returns or raises

        return wrapper

    database.retry = retry


_restore_celery_database_retry()
