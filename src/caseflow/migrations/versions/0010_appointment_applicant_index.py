"""an index on the applicant of each booking

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 06:55:00

An applicant's next visit or booking re-keys every row that still carries their old unkeyed fingerprint
(caseflow.applicants.rekey, migration 0008). Visits and notices are indexed by applicant; bookings were
not, so each re-keying scanned the whole table.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("caseflow_appointments", schema=None) as batch_op:
        batch_op.create_index("ix_caseflow_appointments_applicant", ["applicant_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("caseflow_appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_appointments_applicant")
