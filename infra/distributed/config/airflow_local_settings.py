"""Airflow local settings of the distributed mode (on PYTHONPATH through distributed.env).

Airflow imports this module first thing in every process. It carries one compatibility fix for
the pinned Celery provider and Celery versions; see lantian.distributed.restore_celery_database_retry.
"""

from lantian.distributed import restore_celery_database_retry

restore_celery_database_retry()
