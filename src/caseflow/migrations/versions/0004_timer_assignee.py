"""every timer on the person who must act: assignee, escalation instant, on-expiry trigger

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 02:00:00

- ``assignee``: the person who must act before the timer runs out. Timers written before this revision
  belonged to the case's responsible person (that is how queues and alerts read them), so they get that
  person: every queue, alert and figure stays what it was until someone hands a step over.
- ``escalate_at``: the timer's own escalation instant (per-timer ``escalate_after``). Left empty for
  existing rows: the scheduler then uses its configured ``escalate_after``, as before.
- ``expiry_trigger``: the trigger the scheduler fires when the timer runs out (``on_expiry``); empty for
  existing rows, which were started before any workflow could say so.
- Status ``stopped`` (a timer ended by a final state or by closing the case, with no outcome) is what is
  now called ``cancelled``; ``met`` and ``breached`` rows are left as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import caseflow.store

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("caseflow_timers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee", AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("escalate_at", caseflow.store.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("expiry_trigger", AutoString(length=100), nullable=True))
        batch_op.create_index("ix_caseflow_timers_assignee_status", ["assignee", "status"], unique=False)
    op.execute(
        "UPDATE caseflow_timers SET assignee = (SELECT c.responsible_id FROM caseflow_cases c "
        "WHERE c.id = caseflow_timers.case_id) WHERE assignee IS NULL"
    )
    op.execute("UPDATE caseflow_timers SET status = 'cancelled' WHERE status = 'stopped'")


def downgrade() -> None:
    op.execute("UPDATE caseflow_timers SET status = 'stopped' WHERE status = 'cancelled'")
    with op.batch_alter_table("caseflow_timers", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_timers_assignee_status")
        batch_op.drop_column("expiry_trigger")
        batch_op.drop_column("escalate_at")
        batch_op.drop_column("assignee")
