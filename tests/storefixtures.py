"""Store fixtures shared by the contract suites: every test runs on SQLite and on PostgreSQL.

PostgreSQL tests need ``CASEFLOW_TEST_PG_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
without it they skip saying so. ``CASEFLOW_TEST_PG_REQUIRED=1`` (set by .ci/run) turns an unreachable
server into a failure. Each PostgreSQL test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

PG_HINT = ("PostgreSQL tests skipped: set CASEFLOW_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test "
           "(a server you may create schemas in) to run them")


def pg_base_url() -> str | None:
    url = os.environ.get("CASEFLOW_TEST_PG_URL")
    if not url:
        if os.environ.get("CASEFLOW_TEST_PG_REQUIRED") == "1":
            pytest.fail("CASEFLOW_TEST_PG_REQUIRED=1 but CASEFLOW_TEST_PG_URL is not set")
        pytest.skip(PG_HINT)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL schema of its own."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@contextmanager
def empty_database(kind: str, tmp_path: Path, name: str = "caseflow") -> Iterator[str]:
    """The URL of an empty database of ``kind`` (sqlite: ``tmp_path/name.db``; postgresql: a new schema)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    base = pg_base_url()
    assert base is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CASEFLOW_TEST_PG_REQUIRED") == "1":
            pytest.fail(f"PostgreSQL at {base} is unreachable: {exc.orig}")
        pytest.skip(f"PostgreSQL at {base} is unreachable; {PG_HINT}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
