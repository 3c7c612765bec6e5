"""Alembic environment for caseflow's own tables (version table ``caseflow_alembic_version``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import caseflow.alerts  # registers the scheduler's tables in CaseflowBase.metadata
import caseflow.applicants  # keyed applicant fingerprints (no table: their scheme column)
import caseflow.appointments  # bookings and 延时服务 hours
import caseflow.desk  # the window's tables (visits, notices, query codes)
import caseflow.ratelimit  # the public rate limit shared by every process
import caseflow.ratings  # noqa: F401 - ratings (好差评)
from caseflow.store import ALEMBIC_VERSION_TABLE, CaseflowBase

config = context.config
target_metadata = CaseflowBase.metadata


def run_migrations() -> None:
    """Run against the Store's engine (``config.attributes['engine']``) or ``sqlalchemy.url``."""
    connectable = config.attributes.get("engine")
    if connectable is None:
        connectable = engine_from_config(
            config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
        )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=ALEMBIC_VERSION_TABLE,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
