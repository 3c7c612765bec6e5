"""Alembic environment for caseflow's own tables (version table ``caseflow_alembic_version``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from caseflow.store import ALEMBIC_VERSION_TABLE, head_metadata

config = context.config
# Every table module imported (store.TABLE_MODULES), as a fresh database is created from the same metadata.
target_metadata = head_metadata()


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
