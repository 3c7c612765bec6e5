"""the window: visits, notices, query codes and ratings

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 01:33:42

The window around the clock (desk.py, ratings.py, appointments.py): visits of applicants, 一次告知单, query
codes of receipts and notices, ratings (好差评) with the follow-up case each bad one opens, bookings (预约)
and the 延时服务 hours opened on rest days.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import caseflow.store

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("caseflow_visits",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("workflow_key", AutoString(length=100), nullable=False),
    sa.Column("workflow_version", AutoString(length=64), nullable=False),
    sa.Column("materials_digest", AutoString(length=64), nullable=False),
    sa.Column("applicant_hash", AutoString(length=64), nullable=False),
    sa.Column("applicant_masked", AutoString(length=40), nullable=False),
    sa.Column("unit", AutoString(length=100), nullable=False),
    sa.Column("clerk_id", AutoString(length=64), nullable=False),
    sa.Column("at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column("number", sa.Integer(), nullable=False),
    sa.Column("brought", AutoString(), nullable=False),
    sa.Column("applies", AutoString(), nullable=False),
    sa.Column("outcome", AutoString(length=16), nullable=False),
    sa.Column("case_id", sa.Integer(), nullable=True),
    sa.Column("notice_id", sa.Integer(), nullable=True),
    sa.Column("over_limit", sa.Boolean(), nullable=False),
    sa.Column("warning", AutoString(), nullable=True),
    sa.ForeignKeyConstraint(["case_id"], ["caseflow_cases.id"], ),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("caseflow_visits", schema=None) as batch_op:
        batch_op.create_index("ix_caseflow_visits_applicant_matter", ["applicant_hash", "workflow_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_caseflow_visits_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_caseflow_visits_unit_at", ["unit", "at"], unique=False)

    op.create_table("caseflow_notices",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("number", AutoString(length=40), nullable=False),
    sa.Column("visit_id", sa.Integer(), nullable=False),
    sa.Column("workflow_key", AutoString(length=100), nullable=False),
    sa.Column("applicant_hash", AutoString(length=64), nullable=False),
    sa.Column("unit", AutoString(length=100), nullable=False),
    sa.Column("materials_digest", AutoString(length=64), nullable=False),
    sa.Column("items", AutoString(), nullable=False),
    sa.Column("issued_by", AutoString(length=64), nullable=False),
    sa.Column("issued_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column("override_by", AutoString(length=64), nullable=True),
    sa.Column("override_reason", AutoString(), nullable=True),
    sa.ForeignKeyConstraint(["visit_id"], ["caseflow_visits.id"], ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("number")
    )
    with op.batch_alter_table("caseflow_notices", schema=None) as batch_op:
        batch_op.create_index("ix_caseflow_notices_applicant_matter", ["applicant_hash", "workflow_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_caseflow_notices_visit_id"), ["visit_id"], unique=False)

    op.create_table("caseflow_query_codes",
    sa.Column("code_hash", AutoString(length=64), nullable=False),
    sa.Column("kind", AutoString(length=16), nullable=False),
    sa.Column("visit_id", sa.Integer(), nullable=False),
    sa.Column("case_id", sa.Integer(), nullable=True),
    sa.Column("notice_id", sa.Integer(), nullable=True),
    sa.Column("created_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["case_id"], ["caseflow_cases.id"], ),
    sa.ForeignKeyConstraint(["visit_id"], ["caseflow_visits.id"], ),
    sa.PrimaryKeyConstraint("code_hash")
    )
    with op.batch_alter_table("caseflow_query_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseflow_query_codes_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_caseflow_query_codes_visit_id"), ["visit_id"], unique=False)

    op.create_table("caseflow_ratings",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("case_id", sa.Integer(), nullable=True),
    sa.Column("visit_id", sa.Integer(), nullable=True),
    sa.Column("workflow_key", AutoString(length=100), nullable=False),
    sa.Column("unit", AutoString(length=100), nullable=False),
    sa.Column("person_id", AutoString(length=64), nullable=False),
    sa.Column("level", sa.Integer(), nullable=False),
    sa.Column("comment", AutoString(), nullable=False),
    sa.Column("by", AutoString(length=16), nullable=False),
    sa.Column("recorded_by", AutoString(length=64), nullable=True),
    sa.Column("at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column("followup_case_id", sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(["case_id"], ["caseflow_cases.id"], ),
    sa.ForeignKeyConstraint(["followup_case_id"], ["caseflow_cases.id"], ),
    sa.ForeignKeyConstraint(["visit_id"], ["caseflow_visits.id"], ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("case_id"),
    sa.UniqueConstraint("visit_id")
    )
    with op.batch_alter_table("caseflow_ratings", schema=None) as batch_op:
        batch_op.create_index("ix_caseflow_ratings_unit_at", ["unit", "at"], unique=False)



    op.create_table("caseflow_appointments",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("unit", AutoString(length=100), nullable=False),
    sa.Column("workflow_key", AutoString(length=100), nullable=False),
    sa.Column("at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column("applicant_hash", AutoString(length=64), nullable=False),
    sa.Column("applicant_masked", AutoString(length=40), nullable=False),
    sa.Column("status", AutoString(length=16), nullable=False),
    sa.Column("booked_at", caseflow.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column("extra_hours", sa.Boolean(), nullable=False),
    sa.Column("clerk_id", AutoString(length=64), nullable=True),
    sa.Column("outcome_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
    sa.Column("warned_at", caseflow.store.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("caseflow_appointments", schema=None) as batch_op:
        batch_op.create_index("ix_caseflow_appointments_unit_at", ["unit", "at"], unique=False)

    op.create_table("caseflow_rest_day_hours",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("unit", AutoString(length=100), nullable=False),
    sa.Column("workflow_key", AutoString(length=100), nullable=False),
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("hours", AutoString(length=100), nullable=False),
    sa.Column("opened_by", AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("unit", "workflow_key", "day", name="uq_caseflow_rest_day_hours")
    )


def downgrade() -> None:
    op.drop_table("caseflow_rest_day_hours")
    with op.batch_alter_table("caseflow_appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_appointments_unit_at")

    op.drop_table("caseflow_appointments")
    with op.batch_alter_table("caseflow_ratings", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_ratings_unit_at")

    op.drop_table("caseflow_ratings")
    with op.batch_alter_table("caseflow_query_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseflow_query_codes_visit_id"))
        batch_op.drop_index(batch_op.f("ix_caseflow_query_codes_case_id"))

    op.drop_table("caseflow_query_codes")
    with op.batch_alter_table("caseflow_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseflow_notices_visit_id"))
        batch_op.drop_index("ix_caseflow_notices_applicant_matter")

    op.drop_table("caseflow_notices")
    with op.batch_alter_table("caseflow_visits", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_visits_unit_at")
        batch_op.drop_index(batch_op.f("ix_caseflow_visits_case_id"))
        batch_op.drop_index("ix_caseflow_visits_applicant_matter")

    op.drop_table("caseflow_visits")
