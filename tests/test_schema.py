"""The schema of a fresh database: the models, the migrations and ``Store.create_schema`` agree.

Two ways make a database at the newest revision: the migrations (``caseflow db upgrade`` run on an empty
database, the way every database was made until the models built it) and ``Store.create_schema`` (what
``Store`` does to an empty database: the models' tables, the migrations' seeded rows and Alembic's stamp,
without Alembic). Both are compared here, with each other and with the models, on SQLite and PostgreSQL:
an index, column, default or seeded row in one and not the other is named.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner

import caseflow
from caseflow.errors import StoreError
from caseflow.store import ALEMBIC_VERSION_TABLE, CaseflowBase, Store, shipped_head_revision
from storefixtures import db_url, empty_database  # noqa: F401 - fixture


def _every_table_model() -> None:
    # Table models live beside their concept (desk, appointments, ratings …): import every core module.
    for module in pkgutil.iter_modules(caseflow.__path__):
        if not module.ispkg and not module.name.startswith("demo"):
            importlib.import_module(f"caseflow.{module.name}")


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name == ALEMBIC_VERSION_TABLE)


def _migrated(url: str) -> None:
    """Build the newest schema with the migrations, as ``caseflow db upgrade`` does on an empty database."""
    store = Store(url, upgrade=False)
    try:
        store.upgrade()
    finally:
        store.dispose()


def _created_without_alembic(url: str) -> None:
    """``Store(url)`` on an empty database, in a fresh interpreter that imports nothing else first.

    Only ``caseflow.store`` is imported beforehand, so a table module missing from ``TABLE_MODULES``
    leaves its tables out (and the comparison names them); Alembic must not be imported at all.
    """
    probe = ("import sys\nfrom caseflow.store import Store\nStore(sys.argv[1]).dispose()\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n")
    done = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"creating a fresh database imported {done.stdout.strip()}"


def _by_name(items: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted(item.items())) for item in items)


def schema_of(url: str) -> dict[str, Any]:
    """Everything the database says about its tables, as comparable values, and every row they hold.

    Per table: columns in order (name, type with length and time zone, nullability, server default,
    autoincrement, comment), primary key, foreign keys, unique constraints, indexes (name, columns,
    uniqueness, dialect options such as a partial index's WHERE), check constraints; the sequences; the
    rows of every table (the seeded ones and the version stamp).
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            if conn.dialect.name == "sqlite":
                # SQLite has no sequences; its catalogue names every object, automatic indexes included,
                # and keeps each index's CREATE statement as written.
                catalogue = conn.exec_driver_sql(
                    "SELECT type, name, tbl_name, CASE type WHEN 'index' THEN sql END FROM sqlite_master")
                found: dict[str, Any] = {"catalogue": sorted(map(repr, catalogue))}
            else:
                found = {"catalogue": sorted(inspector.get_sequence_names())}
            for name in sorted(inspector.get_table_names()):
                columns = [{key: repr(value) for key, value in column.items()}
                           for column in inspector.get_columns(name)]
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                found[name] = {
                    "columns": columns,
                    "primary key": repr(sorted(inspector.get_pk_constraint(name).items())),
                    "foreign keys": _by_name(list(inspector.get_foreign_keys(name))),
                    "unique": _by_name(list(inspector.get_unique_constraints(name))),
                    "indexes": _by_name(list(inspector.get_indexes(name))),
                    "checks": _by_name(list(inspector.get_check_constraints(name))),
                    "rows": sorted(repr(tuple(row)) for row in conn.execute(sa.select(table))),
                }
            return found
    finally:
        engine.dispose()


def _kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def test_the_migrations_build_the_schema_the_models_declare(db_url: str) -> None:  # noqa: F811
    _every_table_model()
    _migrated(db_url)
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _ours})
            differences = compare_metadata(context, CaseflowBase.metadata)
    finally:
        store.dispose()
    assert differences == [], "\n".join(map(str, differences))


def test_a_fresh_database_is_the_one_the_migrations_build_made_without_alembic(
        db_url: str, tmp_path: Path) -> None:  # noqa: F811
    _created_without_alembic(db_url)
    with empty_database(_kind(db_url), tmp_path, "migrated") as migrated:
        _migrated(migrated)
        expected = schema_of(migrated)
    created = schema_of(db_url)
    assert sorted(created) == sorted(expected)
    for name in expected:
        assert created[name] == expected[name], name
    assert expected[ALEMBIC_VERSION_TABLE]["rows"] == [repr((shipped_head_revision(),))]
    assert len(expected["caseflow_generations"]["rows"]) == 2  # the seeded counters are compared too


def test_alembic_carries_a_fresh_database_on_to_a_later_revision(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = Store(db_url)
    try:
        config = store._alembic_config()
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": ALEMBIC_VERSION_TABLE})
            assert context.get_current_revision() == ScriptDirectory.from_config(config).get_current_head()
        # A revision shipped later, which rebuilds the bookings table on SQLite (batch mode reflects it whole).
        scripts = tmp_path / "migrations"
        shutil.copytree(Path(caseflow.__file__).parent / "migrations", scripts,
                        ignore=shutil.ignore_patterns("__pycache__"))
        (scripts / "versions" / "0099_later.py").write_text(
            "import sqlalchemy as sa\nfrom alembic import op\n\n"
            f"revision = '0099'\ndown_revision = {shipped_head_revision()!r}\n"
            "branch_labels = None\ndepends_on = None\n\n\n"
            "def upgrade():\n"
            "    recreate = 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'\n"
            "    with op.batch_alter_table('caseflow_appointments', recreate=recreate) as batch_op:\n"
            "        batch_op.add_column(sa.Column('note', sa.String(40), nullable=True))\n\n\n"
            "def downgrade():\n"
            "    with op.batch_alter_table('caseflow_appointments') as batch_op:\n"
            "        batch_op.drop_column('note')\n", encoding="utf-8")
        config.set_main_option("script_location", str(scripts))
        command.upgrade(config, "head")
        assert store.current_revision() == "0099"
        with store.engine.connect() as conn:
            columns = {c["name"]: c for c in sa.inspect(conn).get_columns("caseflow_appointments")}
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("caseflow_appointments")}
        assert "note" in columns and "sha256" in str(columns["applicant_scheme"]["default"])
        assert {"ix_caseflow_appointments_code_hash", "ix_caseflow_appointments_applicant"} <= indexes
    finally:
        store.dispose()


def test_caseflow_db_upgrade_leaves_a_fresh_database_as_it_is(db_url: str) -> None:  # noqa: F811
    from caseflow.cli import cli

    Store(db_url).dispose()
    before = schema_of(db_url)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement.strip().split()[0].upper())

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        result = CliRunner().invoke(cli, ["db", "upgrade", "--db", db_url])
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert result.exit_code == 0, result.output
    assert f"at revision {shipped_head_revision()}" in result.output
    assert sent and not set(sent) & {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE"}, sent
    assert schema_of(db_url) == before


def test_two_stores_creating_one_empty_database_at_once_both_open_it(db_url: str, monkeypatch: Any) -> None:  # noqa: F811
    # Both find the database empty before either creates it: the second must wait for the first and
    # find its stamp, not create the tables again.
    both_looked = threading.Barrier(2, timeout=30)
    looked = Store.current_revision

    def current_revision(self: Store) -> str | None:
        found = looked(self)
        both_looked.wait()
        return found

    monkeypatch.setattr(Store, "current_revision", current_revision)
    opened: list[Store] = []
    failed: list[BaseException] = []

    def open_store() -> None:
        try:
            opened.append(Store(db_url))
        except BaseException as exc:  # reported below, with the other thread's outcome
            failed.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.undo()
    for store in opened:
        store.dispose()
    assert failed == [] and len(opened) == 2, failed
    found = schema_of(db_url)
    assert found[ALEMBIC_VERSION_TABLE]["rows"] == [repr((shipped_head_revision(),))]
    assert len(found["caseflow_generations"]["rows"]) == 2
    assert set(found) - {"catalogue", ALEMBIC_VERSION_TABLE} == set(CaseflowBase.metadata.tables)


def test_a_database_holding_tables_but_no_stamp_is_refused_not_stamped(db_url: str) -> None:  # noqa: F811
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE caseflow_people (id VARCHAR(64) PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"cannot create the schema in .*caseflow_people"):
        Store(db_url)
    assert "caseflow_alembic_version" not in schema_of(db_url)
