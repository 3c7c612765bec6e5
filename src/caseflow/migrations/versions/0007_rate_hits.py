"""the public rate limit, shared by every process

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 05:20:00

The public query, rating and booking are rate-limited per client address; the count was kept in each
process, so ``caseflow serve --workers 4`` gave an address four times the tries. ratelimit.py counts in
this table instead: one row per (SHA-256 of scope and address, fixed window), pruned as windows pass.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("caseflow_rate_hits",
    sa.Column("key", AutoString(length=64), nullable=False),
    sa.Column("window_start", sa.BigInteger(), nullable=False),
    sa.Column("hits", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("key", "window_start")
    )
    with op.batch_alter_table("caseflow_rate_hits", schema=None) as batch_op:
        batch_op.create_index("ix_caseflow_rate_hits_window", ["window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("caseflow_rate_hits", schema=None) as batch_op:
        batch_op.drop_index("ix_caseflow_rate_hits_window")

    op.drop_table("caseflow_rate_hits")
