"""The server commands of the ``caseflow`` CLI: ``serve`` and ``token create|revoke|list``.

They live apart from :mod:`caseflow.cli` so that the CLI keeps working without the ``[server]`` extra
(FastAPI, uvicorn, Jinja2 are imported only when ``serve`` runs). :func:`register` adds them::

    from caseflow.cli_server import register
    register(cli)
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

__all__ = ["register", "run_server"]


def _emit(as_json: bool, payload: Any, text: str) -> None:
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(text)


def run_server(db_url: str, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               log_level: str = "info", access_log: bool = True) -> None:
    """Run uvicorn on ``caseflow.api:app_from_env`` (each worker builds its app from ``$CASEFLOW_DB``).

    The HTTP protocol is :class:`caseflow.api.NoDelayH11Protocol`: with several workers uvicorn's own
    would leave Nagle's algorithm on and add ~40 ms to every response.
    """
    import uvicorn

    os.environ["CASEFLOW_DB"] = db_url
    uvicorn.run("caseflow.api:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=access_log, proxy_headers=False,
                http="caseflow.api:NoDelayH11Protocol")


def register(cli: click.Group) -> None:
    """Add ``serve`` and the ``token`` group to the ``caseflow`` command group."""
    # Imported here, not at module level: caseflow.cli imports this module to register it.
    from caseflow.cli import db_option, handle_errors, json_option

    @cli.command("serve")
    @db_option
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
                  help="Worker processes (PostgreSQL only above 1: SQLite is the single-process store).")
    @json_option
    @handle_errors
    def serve(db: str | None, host: str, port: int, workers: int, as_json: bool) -> None:
        """Serve the HTTP API (/api/v1, OpenAPI at /openapi.json) and the web console (/).

        The schema is created or checked once here, before the workers start, so several workers
        never race to migrate an empty database.

        \b
        Example:
            caseflow serve --db caseflow.db
            caseflow serve --db postgresql://caseflow@127.0.0.1/caseflow --host 0.0.0.0 --port 8000 --workers 4
        """
        from caseflow.errors import StoreError
        from caseflow.store import Store

        store = Store(db)
        safe = store._safe_url()
        if workers > 1 and store.is_sqlite:
            store.dispose()
            raise StoreError(f"{safe} is SQLite, the single-process store: run one worker, or use PostgreSQL "
                             "for --workers > 1")
        store.dispose()
        url = f"http://{host}:{port}/"
        _emit(as_json, {"url": url, "api": f"{url}api/v1", "openapi": f"{url}openapi.json", "db": safe,
                        "workers": workers},
              f"caseflow serving {safe} on {url} (API {url}api/v1, console {url}login), {workers} worker(s)")
        run_server(store.url, host=host, port=port, workers=workers)

    @cli.group("token")
    def token_group() -> None:
        """Bearer tokens for the HTTP API and the web console (stored hashed; revocable).

        \b
        Example:
            caseflow token create p1
        """

    @token_group.command("create")
    @click.argument("person", metavar="PERSON")
    @db_option
    @json_option
    @handle_errors
    def token_create(person: str, db: str | None, as_json: bool) -> None:
        """Create a token acting as PERSON; it is printed once, alone on the last line.

        Only its SHA-256 is stored: a lost token cannot be shown again, only revoked and replaced.

        \b
        Example:
            caseflow token create p1 --db caseflow.db
            TOKEN=$(caseflow token create p1 | tail -n 1)
        """
        from caseflow.store import Person, Store
        from caseflow.tokens import create_token

        store = Store(db)
        token = create_token(store, person)  # refuses an unknown person
        with store.session() as s:
            who = s.get(Person, person)
        assert who is not None
        _emit(as_json, {"person": who.id, "name": who.name, "unit": who.unit, "token": token},
              f"token for {who.id} ({who.name}, {who.unit}); shown once, keep it secret:\n{token}")

    @token_group.command("revoke")
    @click.argument("token", metavar="TOKEN")
    @db_option
    @json_option
    @handle_errors
    def token_revoke(token: str, db: str | None, as_json: bool) -> None:
        """Revoke TOKEN (the token itself, its id, or its stored hash from `token list`).

        \b
        Example:
            caseflow token revoke 3
            caseflow token revoke "$TOKEN"
        """
        from caseflow.store import Store
        from caseflow.tokens import revoke

        info = revoke(Store(db), token)
        _emit(as_json, info.to_dict(), f"revoked token {info.id} of {info.person_id} ({info.hash_prefix}…)")

    @token_group.command("list")
    @click.option("--person", default=None, metavar="ID", help="Only this person's tokens.")
    @db_option
    @json_option
    @handle_errors
    def token_list(person: str | None, db: str | None, as_json: bool) -> None:
        """List stored tokens (never their secrets): id, person, created, revoked.

        \b
        Example:
            caseflow token list --person p1
        """
        from caseflow.store import Store
        from caseflow.tokens import list_tokens

        tokens = list_tokens(Store(db), person)
        text = "\n".join(
            f"{t.id:>4}  {t.person_id:<12} {t.created_at:%Y-%m-%d %H:%M}  "
            + (f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active")
            + f"  {t.hash_prefix}…"
            for t in tokens
        ) or "no tokens"
        _emit(as_json, [t.to_dict() for t in tokens], text)
