"""a query code for each booking

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 05:40:00

The public booking page (issue 12) confirms a booking with a query code, as the 告知单 and the 受理回执 carry
one: the applicant looks the booking up on the progress page. Only the code's SHA-256 is stored; bookings
made before have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("caseflow_appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_hash", AutoString(length=64), nullable=True))
        batch_op.create_index("ix_caseflow_appointments_code_hash", ["code_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("caseflow_appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_appointments_code_hash")
        batch_op.drop_column("code_hash")
