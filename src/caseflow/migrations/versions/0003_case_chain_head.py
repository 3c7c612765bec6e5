"""the head of each case's event chain on the case row

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 16:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import caseflow.store

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("caseflow_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_event_hash", AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("last_event_at", caseflow.store.UTCDateTime(timezone=True), nullable=True))
    # Cases opened before this revision: copy the head of their chain from the events.
    op.execute(
        "UPDATE caseflow_cases SET "
        "last_event_hash = (SELECT e.hash FROM caseflow_events e WHERE e.case_id = caseflow_cases.id "
        "ORDER BY e.seq DESC LIMIT 1), "
        "last_event_at = (SELECT e.at FROM caseflow_events e WHERE e.case_id = caseflow_cases.id "
        "ORDER BY e.seq DESC LIMIT 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("caseflow_cases", schema=None) as batch_op:
        batch_op.drop_column("last_event_at")
        batch_op.drop_column("last_event_hash")
