"""alerts, notification outbox and job runs of the scheduler

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:17:14.034549
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import caseflow.store

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "caseflow_job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", AutoString(length=200), nullable=False),
        sa.Column("scheduled_for", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", AutoString(length=100), nullable=False),
        sa.Column("claimed_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job", "scheduled_for", name="uq_caseflow_job_runs_job_slot"),
    )
    op.create_table(
        "caseflow_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timer_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("level", AutoString(length=16), nullable=False),
        sa.Column("raised_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("level_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("to_person", AutoString(length=64), nullable=False),
        sa.Column("for_person", AutoString(length=64), nullable=False),
        sa.Column("unit", AutoString(length=100), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["caseflow_cases.id"]),
        sa.ForeignKeyConstraint(["timer_id"], ["caseflow_timers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("timer_id", "level", name="uq_caseflow_alerts_timer_level"),
    )
    with op.batch_alter_table("caseflow_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseflow_alerts_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_caseflow_alerts_raised", ["raised_at"], unique=False)
        batch_op.create_index("ix_caseflow_alerts_unit_raised", ["unit", "raised_at"], unique=False)

    op.create_table(
        "caseflow_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", AutoString(length=16), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("job_run_id", sa.Integer(), nullable=True),
        sa.Column("recipient", AutoString(length=64), nullable=False),
        sa.Column("channel", AutoString(), nullable=False),
        sa.Column("address", AutoString(), nullable=True),
        sa.Column("subject", AutoString(), nullable=False),
        sa.Column("body", AutoString(), nullable=False),
        sa.Column("body_format", AutoString(length=16), nullable=False),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", AutoString(), nullable=True),
        sa.Column("lease_owner", AutoString(length=100), nullable=True),
        sa.Column("lease_until", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["caseflow_alerts.id"]),
        sa.ForeignKeyConstraint(["job_run_id"], ["caseflow_job_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "recipient", name="uq_caseflow_outbox_alert_recipient"),
    )
    with op.batch_alter_table("caseflow_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_caseflow_outbox_due", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("caseflow_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_outbox_due")

    op.drop_table("caseflow_outbox")
    with op.batch_alter_table("caseflow_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_alerts_unit_raised")
        batch_op.drop_index("ix_caseflow_alerts_raised")
        batch_op.drop_index(batch_op.f("ix_caseflow_alerts_case_id"))

    op.drop_table("caseflow_alerts")
    op.drop_table("caseflow_job_runs")
