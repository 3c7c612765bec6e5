"""holiday notices and published workflow definitions in the database, with generation counters

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 02:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import caseflow.store

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "caseflow_holiday_notices",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("source", AutoString(length=500), nullable=False),
        sa.Column("format", AutoString(length=16), nullable=False),
        sa.Column("text", AutoString(), nullable=False),
        sa.Column("loaded_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("year"),
    )
    op.create_table(
        "caseflow_published_workflows",
        sa.Column("key", AutoString(length=100), nullable=False),
        sa.Column("version", AutoString(length=64), nullable=False),
        sa.Column("loaded_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["version"], ["caseflow_workflow_versions.version"]),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "caseflow_generations",
        sa.Column("name", AutoString(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("changed_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # The rows exist from the start, so a command can hold them shared before the first load raises them.
    generations = sa.table("caseflow_generations", sa.column("name", sa.String), sa.column("value", sa.Integer),
                           sa.column("changed_at", caseflow.store.UTCDateTime(timezone=True)))
    created = datetime(2026, 11, 30, tzinfo=UTC)
    op.bulk_insert(generations, [{"name": "calendar", "value": 0, "changed_at": created},
                                 {"name": "workflows", "value": 0, "changed_at": created}])


def downgrade() -> None:
    op.drop_table("caseflow_generations")
    op.drop_table("caseflow_published_workflows")
    op.drop_table("caseflow_holiday_notices")
