"""``caseflow db``: create or upgrade the schema, back up a SQLite database."""

from __future__ import annotations

from pathlib import Path

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




@db_group.command("backup")
@click.argument("path", type=click.Path(path_type=Path), metavar="FILE")
@db_option
@json_option
@handle_errors
def db_backup(path: Path, db: str | None, as_json: bool) -> None:
    """Copy the SQLite database to FILE with SQLite's online backup (commands may go on meanwhile).

    For PostgreSQL use pg_dump (see README: backup and restore). To restore, stop caseflow, put FILE
    in place of the database file, then run `caseflow audit verify`.

    \b
    Example:
        caseflow db backup caseflow-backup.db
    """
    from caseflow.store import Store

    store = Store(db)
    target = store.backup(path)
    emit(as_json, {"db": store._safe_url(), "backup": str(target), "bytes": target.stat().st_size},
         f"{store._safe_url()} backed up to {target} ({target.stat().st_size} bytes)")
