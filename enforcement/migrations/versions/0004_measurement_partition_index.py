"""One index on measurements (day, stream, device_id) instead of two single-column ones.

Every read of the table names a day partition (and a stream), and the monthly tamper scan and the
daily rules read a partition a group of devices at a time: with single-column indexes SQLite picks
one and scans a device's whole history or a day's every stream. The composite index serves the
day-only reads too (its prefix), and each index costs every insert of millions of rows a day.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_measurements_day", table_name="measurements")
    op.drop_index("ix_measurements_device_id", table_name="measurements")
    op.create_index(
        "ix_measurements_day_stream_device",
        "measurements",
        ["day", "stream", "device_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_measurements_day_stream_device", table_name="measurements")
    op.create_index("ix_measurements_device_id", "measurements", ["device_id"], unique=False)
    op.create_index("ix_measurements_day", "measurements", ["day"], unique=False)
