"""first schema: workflows, people, cases, timers, events

Revision ID: 0001
Revises:
Create Date: 2026-11-23 15:13:26.298825
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import caseflow.store

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "caseflow_absences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", AutoString(length=64), nullable=False),
        sa.Column("from_date", sa.Date(), nullable=False),
        sa.Column("to_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("caseflow_absences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseflow_absences_person_id"), ["person_id"], unique=False)

    op.create_table(
        "caseflow_commands",
        sa.Column("key", AutoString(length=200), nullable=False),
        sa.Column("command", AutoString(length=32), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("result", AutoString(), nullable=False),
        sa.Column("created_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "caseflow_people",
        sa.Column("id", AutoString(length=64), nullable=False),
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("unit", AutoString(length=100), nullable=False),
        sa.Column("roles", AutoString(), nullable=False),
        sa.Column("leader_id", AutoString(length=64), nullable=True),
        sa.Column("substitute_id", AutoString(length=64), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("channel", AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("caseflow_people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseflow_people_unit"), ["unit"], unique=False)

    op.create_table(
        "caseflow_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", AutoString(length=64), nullable=False),
        sa.Column("person_id", AutoString(length=64), nullable=False),
        sa.Column("created_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("caseflow_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseflow_tokens_person_id"), ["person_id"], unique=False)

    op.create_table(
        "caseflow_workflow_versions",
        sa.Column("version", AutoString(length=64), nullable=False),
        sa.Column("key", AutoString(length=100), nullable=False),
        sa.Column("title", AutoString(), nullable=False),
        sa.Column("text", AutoString(), nullable=False),
        sa.Column("loaded_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    with op.batch_alter_table("caseflow_workflow_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseflow_workflow_versions_key"), ["key"], unique=False)

    op.create_table(
        "caseflow_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workflow_key", AutoString(length=100), nullable=False),
        sa.Column("workflow_version", AutoString(length=64), nullable=False),
        sa.Column("state", AutoString(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("responsible_id", AutoString(length=64), nullable=False),
        sa.Column("unit", AutoString(length=100), nullable=False),
        sa.Column("opened_by", AutoString(length=64), nullable=False),
        sa.Column("opened_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column("close_reason", AutoString(), nullable=True),
        sa.Column("data", AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_version"],
            ["caseflow_workflow_versions.version"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("caseflow_cases", schema=None) as batch_op:
        batch_op.create_index("ix_caseflow_cases_responsible_open", ["responsible_id", "closed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_caseflow_cases_unit"), ["unit"], unique=False)
        batch_op.create_index(batch_op.f("ix_caseflow_cases_workflow_key"), ["workflow_key"], unique=False)

    op.create_table(
        "caseflow_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", AutoString(length=32), nullable=False),
        sa.Column("at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", AutoString(length=64), nullable=False),
        sa.Column("trigger", AutoString(length=100), nullable=True),
        sa.Column("from_state", AutoString(length=100), nullable=True),
        sa.Column("to_state", AutoString(length=100), nullable=True),
        sa.Column("data", AutoString(), nullable=False),
        sa.Column("prev_hash", AutoString(length=64), nullable=False),
        sa.Column("hash", AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["caseflow_cases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "seq", name="uq_caseflow_events_case_seq"),
    )
    with op.batch_alter_table("caseflow_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseflow_events_case_id"), ["case_id"], unique=False)

    op.create_table(
        "caseflow_timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("name", AutoString(length=100), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("kind", AutoString(length=16), nullable=False),
        sa.Column("limit_spec", AutoString(), nullable=False),
        sa.Column("started_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pauses", AutoString(), nullable=False),
        sa.Column("extensions", AutoString(), nullable=False),
        sa.Column("due_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column("warn_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column("original_due_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("stopped_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_alert_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column("alert_level", AutoString(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["caseflow_cases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "name", "round", name="uq_caseflow_timers_case_name_round"),
    )
    with op.batch_alter_table("caseflow_timers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseflow_timers_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_caseflow_timers_due", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_caseflow_timers_next_alert", ["next_alert_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("caseflow_timers", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_timers_next_alert")
        batch_op.drop_index("ix_caseflow_timers_due")
        batch_op.drop_index(batch_op.f("ix_caseflow_timers_case_id"))

    op.drop_table("caseflow_timers")
    with op.batch_alter_table("caseflow_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseflow_events_case_id"))

    op.drop_table("caseflow_events")
    with op.batch_alter_table("caseflow_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseflow_cases_workflow_key"))
        batch_op.drop_index(batch_op.f("ix_caseflow_cases_unit"))
        batch_op.drop_index("ix_caseflow_cases_responsible_open")

    op.drop_table("caseflow_cases")
    with op.batch_alter_table("caseflow_workflow_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseflow_workflow_versions_key"))

    op.drop_table("caseflow_workflow_versions")
    with op.batch_alter_table("caseflow_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseflow_tokens_person_id"))

    op.drop_table("caseflow_tokens")
    with op.batch_alter_table("caseflow_people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseflow_people_unit"))

    op.drop_table("caseflow_people")
    op.drop_table("caseflow_commands")
    with op.batch_alter_table("caseflow_absences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseflow_absences_person_id"))

    op.drop_table("caseflow_absences")
