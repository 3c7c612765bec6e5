"""keyed applicant fingerprints: the scheme of each stored fingerprint

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 05:30:00

Applicant fingerprints become HMAC-SHA256 with a site secret kept outside the database (applicants.py).
The ID numbers are not stored, so existing rows cannot be re-hashed here: they are marked ``sha256`` (the
old unkeyed hash), still match their applicant, and are re-keyed at the applicant's next visit or booking.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("caseflow_visits", "caseflow_notices", "caseflow_appointments")


def upgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("applicant_scheme", AutoString(length=16), nullable=False,
                                          server_default="sha256"))


def downgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column("applicant_scheme")
