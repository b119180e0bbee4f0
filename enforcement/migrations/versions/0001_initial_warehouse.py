"""Initial warehouse: registry tables, measurements, quarantine, validation results, CEMS rules.

A frozen snapshot of ``enforcement/warehouse_schema.py`` as it stood when migrations were
introduced: later schema changes come as new revisions, never as edits here.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The bureau's registry files, kept as the CSV text they were sent in.
REGISTRY = {
    "subdistricts": ["subdistrict_id", "name"],
    "enterprises": ["enterprise_id", "name", "subdistrict_id", "industry"],
    "stacks": ["stack_id", "enterprise_id", "name", "height_m", "fuel", "o2_ref_pct", "device_id"],
    "stack_limits": [
        "stack_id",
        "pollutant",
        "limit_mg_m3",
        "o2_ref_pct",
        "valid_from",
        "valid_to",
        "standard",
        "category",
        "source",
    ],
    "stations": ["station_id", "device_id", "subdistrict_id", "name", "lat", "lon", "install_date"],
    "gas_stations": [
        "gas_station_id",
        "name",
        "subdistrict_id",
        "annual_gasoline_sales_t",
        "has_online_monitor",
        "device_id",
        "nozzles",
    ],
    "rsd_units": ["unit_id", "device_id", "site", "subdistrict_id", "calibrated_until"],
    "vehicles": [
        "plate",
        "owner",
        "transport_enterprise",
        "key_enterprise",
        "fuel_type",
        "gross_weight_t",
        "emission_standard",
    ],
    "devices": [
        "device_id",
        "family",
        "stream",
        "owner_id",
        "crc_mode",
        "units",
        "install_date",
        "pw",
    ],
}

#: Fact tables, in creation order; each has a ``day`` partition column with an index.
FACT_TABLES = (
    "measurements",
    "quarantine",
    "validation_results",
    "cems_hourly",
    "exceedances",
    "partitions",
)


def _text(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _day() -> sa.Column:
    return sa.Column("day", sa.Text(), nullable=False)


def _index_day(table: str) -> None:
    op.create_index(op.f(f"ix_{table}_day"), table, ["day"], unique=False)


def upgrade() -> None:
    for name, columns in REGISTRY.items():
        op.create_table(name, *(_text(c) for c in columns))

    op.create_table(
        "measurements",
        _text("reading_id", nullable=False),
        _text("batch_id"),
        _text("device_id", nullable=False),
        _text("stream", nullable=False),
        _text("cn", nullable=False),
        sa.Column("data_time", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        _day(),
        _text("code", nullable=False),
        *(
            sa.Column(c, sa.Float(), nullable=True)
            for c in ("rtd", "avg", "min", "max", "cou", "zs_rtd", "zs_avg")
        ),
        _text("flag"),
        _text("unit"),
        _text("raw_sha256"),
        sa.Column("valid", sa.Boolean(), nullable=True),
        _text("invalid_reason"),
    )
    op.create_index(op.f("ix_measurements_device_id"), "measurements", ["device_id"], unique=False)

    op.create_table(
        "quarantine",
        _text("reading_id", nullable=False),
        _text("stream", nullable=False),
        _day(),
        _text("expectation", nullable=False),
        _text("reason"),
        _text("row_json"),
    )

    op.create_table(
        "validation_results",
        _text("run_id", nullable=False),
        _day(),
        _text("stream", nullable=False),
        _text("suite", nullable=False),
        _text("expectation", nullable=False),
        _text("severity"),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("element_count", sa.Integer(), nullable=True),
        sa.Column("unexpected_count", sa.Integer(), nullable=True),
        _text("unexpected_ids"),
    )

    op.create_table(
        "cems_hourly",
        _text("stack_id", nullable=False),
        _text("device_id"),
        _text("pollutant", nullable=False),
        sa.Column("hour_start", sa.DateTime(), nullable=False),
        _day(),
        sa.Column("n_valid_minutes", sa.Integer(), nullable=True),
        sa.Column("mean_measured", sa.Float(), nullable=True),
        sa.Column("o2_mean", sa.Float(), nullable=True),
        sa.Column("mean_corrected", sa.Float(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=True),
        _text("reading_ids"),
        sa.Column("zs_device_mean", sa.Float(), nullable=True),
        sa.Column("n_review_minutes", sa.Integer(), nullable=True),
    )

    op.create_table(
        "exceedances",
        _text("exceedance_id", nullable=False),
        _text("stack_id", nullable=False),
        _text("enterprise_id"),
        _text("subdistrict_id"),
        _text("pollutant", nullable=False),
        sa.Column("hour_start", sa.DateTime(), nullable=False),
        _day(),
        sa.Column("hourly_mean", sa.Float(), nullable=True),
        sa.Column("limit_value", sa.Float(), nullable=True),
        _text("limit_source"),
        sa.Column("n_readings", sa.Integer(), nullable=True),
        _text("reading_ids"),
        _text("raw_sha256s"),
    )

    op.create_table(
        "partitions",
        _day(),
        _text("stream", nullable=False),
        _text("run_id"),
        sa.Column("landed_seq_max", sa.Integer(), nullable=True),
        sa.Column("n_batches", sa.Integer(), nullable=True),
        sa.Column("n_readings", sa.Integer(), nullable=True),
        sa.Column("n_valid", sa.Integer(), nullable=True),
        sa.Column("n_quarantined", sa.Integer(), nullable=True),
        sa.Column("built_at", sa.DateTime(), nullable=True),
    )

    for table in FACT_TABLES:
        _index_day(table)


def downgrade() -> None:
    for table in reversed(FACT_TABLES):
        op.drop_table(table)  # drops its indexes with it
    for name in reversed(list(REGISTRY)):
        op.drop_table(name)
