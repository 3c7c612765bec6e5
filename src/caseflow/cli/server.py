"""``caseflow serve``: the HTTP API and web console under uvicorn (the ``[server]`` extra)."""

from __future__ import annotations

import os

import click

from caseflow.cli.common import db_option, emit, handle_errors, json_option


def run_server(db_url: str, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               log_level: str = "info", access_log: bool = True) -> None:
    """Run uvicorn on ``caseflow.web.app:app_from_env`` (each worker builds its app from ``$CASEFLOW_DB``).

    The HTTP protocol is :class:`caseflow.web.app.NoDelayH11Protocol`: with several workers uvicorn's own
    would leave Nagle's algorithm on and add ~40 ms to every response.
    """
    import uvicorn

    os.environ["CASEFLOW_DB"] = db_url
    uvicorn.run("caseflow.web.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=access_log, proxy_headers=False,
                http="caseflow.web.app:NoDelayH11Protocol")



@click.command("serve")
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
    import importlib.util

    from caseflow.errors import StoreError
    from caseflow.store import Store

    # Before anything is printed: a missing extra is one line naming it, never "serving …" then a traceback.
    missing = [name for name in ("fastapi", "uvicorn", "jinja2") if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(f"the server needs {', '.join(missing)}, which the [server] extra installs: "
                                   'pip install "caseflow[server]"')
    store = Store(db)
    safe = store._safe_url()
    if workers > 1 and store.is_sqlite:
        store.dispose()
        raise StoreError(f"{safe} is SQLite, the single-process store: run one worker, or use PostgreSQL "
                         "for --workers > 1")
    store.dispose()
    url = f"http://{host}:{port}/"
    emit(as_json, {"url": url, "api": f"{url}api/v1", "openapi": f"{url}openapi.json", "db": safe,
                    "workers": workers},
          f"caseflow serving {safe} on {url} (API {url}api/v1, console {url}login), {workers} worker(s)")
    run_server(store.url, host=host, port=port, workers=workers)

