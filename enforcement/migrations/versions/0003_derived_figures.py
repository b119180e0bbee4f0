"""Derived figures: rows of JSON per (part, name), and each figure's column types.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "derived",
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("row_json", sa.Text(), nullable=False),
    )
    op.create_index(op.f("ix_derived_name"), "derived", ["name"], unique=False)
    op.create_index(op.f("ix_derived_part"), "derived", ["part"], unique=False)
    op.create_table(
        "derived_meta",
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("dtypes_json", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("built_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("derived_meta")
    op.drop_table("derived")  # drops its indexes with it
