"""Profile tables: refuellings and tank_pressure (vapor), rsd_passes (remote sensing).

Columns frozen from schemas/data/vapor_profile.csv and rsd_profile.csv as
enforcement/warehouse_schema.py derived them when the tables were added; a later profile change
needs its own revision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refuellings",
        sa.Column("reading_id", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("stream", sa.Text(), nullable=True),
        sa.Column("cn", sa.Text(), nullable=True),
        sa.Column("data_time", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        sa.Column("day", sa.Text(), nullable=False),
        sa.Column("raw_sha256", sa.Text(), nullable=True),
        sa.Column("nozzle_id", sa.Text(), nullable=True),
        sa.Column("al_ratio", sa.Float(), nullable=True),
        sa.Column("fuel_volume_l", sa.Float(), nullable=True),
        sa.Column("vapor_volume_l", sa.Float(), nullable=True),
        sa.Column("fuel_flow_l_min", sa.Float(), nullable=True),
        sa.Column("vapor_flow_l_min", sa.Float(), nullable=True),
        sa.Column("vapor_temp_c", sa.Float(), nullable=True),
        sa.Column("vapor_conc_g_m3", sa.Float(), nullable=True),
        sa.Column("nozzle_status", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("fuel_grade", sa.Text(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=True),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
    )
    op.create_index(op.f("ix_refuellings_day"), "refuellings", ["day"], unique=False)
    op.create_index(op.f("ix_refuellings_device_id"), "refuellings", ["device_id"], unique=False)

    op.create_table(
        "rsd_passes",
        sa.Column("reading_id", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("stream", sa.Text(), nullable=True),
        sa.Column("cn", sa.Text(), nullable=True),
        sa.Column("data_time", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        sa.Column("day", sa.Text(), nullable=False),
        sa.Column("raw_sha256", sa.Text(), nullable=True),
        sa.Column("pass_id", sa.Text(), nullable=True),
        sa.Column("lane", sa.Float(), nullable=True),
        sa.Column("plate", sa.Text(), nullable=True),
        sa.Column("plate_color", sa.Text(), nullable=True),
        sa.Column("fuel_type", sa.Text(), nullable=True),
        sa.Column("weight_class", sa.Text(), nullable=True),
        sa.Column("gross_weight_t", sa.Float(), nullable=True),
        sa.Column("speed_km_h", sa.Float(), nullable=True),
        sa.Column("accel_m_s2", sa.Float(), nullable=True),
        sa.Column("vsp_kw_t", sa.Float(), nullable=True),
        sa.Column("co2_pct", sa.Float(), nullable=True),
        sa.Column("co_pct", sa.Float(), nullable=True),
        sa.Column("hc_ppm", sa.Float(), nullable=True),
        sa.Column("no_ppm", sa.Float(), nullable=True),
        sa.Column("opacity_pct", sa.Float(), nullable=True),
        sa.Column("ringelmann", sa.Float(), nullable=True),
        sa.Column("unit_valid", sa.Float(), nullable=True),
        sa.Column("unit_invalid_reason", sa.Text(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=True),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
    )
    op.create_index(op.f("ix_rsd_passes_day"), "rsd_passes", ["day"], unique=False)
    op.create_index(op.f("ix_rsd_passes_device_id"), "rsd_passes", ["device_id"], unique=False)

    op.create_table(
        "tank_pressure",
        sa.Column("reading_id", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("stream", sa.Text(), nullable=True),
        sa.Column("cn", sa.Text(), nullable=True),
        sa.Column("data_time", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        sa.Column("day", sa.Text(), nullable=False),
        sa.Column("raw_sha256", sa.Text(), nullable=True),
        sa.Column("tank_pressure_pa", sa.Float(), nullable=True),
        sa.Column("tank_pressure_min_pa", sa.Float(), nullable=True),
        sa.Column("tank_pressure_max_pa", sa.Float(), nullable=True),
        sa.Column("tank_pressure_flag", sa.Text(), nullable=True),
        sa.Column("zero_pressure_alarm", sa.Float(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=True),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
    )
    op.create_index(op.f("ix_tank_pressure_day"), "tank_pressure", ["day"], unique=False)
    op.create_index(
        op.f("ix_tank_pressure_device_id"), "tank_pressure", ["device_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("tank_pressure")  # drops its indexes with it
    op.drop_table("rsd_passes")
    op.drop_table("refuellings")
