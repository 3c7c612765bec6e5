"""``caseflow db``: create or upgrade the schema."""

from __future__ import annotations

import click

from caseflow.cli.common import db_option, emit, handle_errors, json_option


@click.group("db")
def db_group() -> None:
    """The database schema.

    \b
    Example:
        caseflow db upgrade --db caseflow.db
    """


@db_group.command("upgrade")
@db_option
@json_option
@handle_errors
def db_upgrade(db: str | None, as_json: bool) -> None:
    """Bring the database schema to this caseflow's revision (Alembic).

    \b
    Example:
        caseflow db upgrade --db postgresql://postgres@127.0.0.1/caseflow
    """
    from caseflow.store import Store

    store = Store(db, upgrade=True)
    revision = store.current_revision()
    emit(as_json, {"db": store._safe_url(), "revision": revision}, f"{store._safe_url()}: at revision {revision}")


