"""The migrations build exactly the schema the table models declare, on SQLite and PostgreSQL.

A fresh database is made by running every migration (``Store`` upgrades an empty one); the models are
what the code reads and writes. An index or column added to one and not the other is named here.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import caseflow
from caseflow.store import ALEMBIC_VERSION_TABLE, CaseflowBase, Store
from storefixtures import db_url  # noqa: F401 - fixture


def _every_table_model() -> None:
    # Table models live beside their concept (desk, appointments, ratings …): import every core module.
    for module in pkgutil.iter_modules(caseflow.__path__):
        if not module.ispkg and not module.name.startswith("demo"):
            importlib.import_module(f"caseflow.{module.name}")


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name == ALEMBIC_VERSION_TABLE)


def test_the_migrations_build_the_schema_the_models_declare(db_url: str) -> None:  # noqa: F811
    _every_table_model()
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _ours})
            differences = compare_metadata(context, CaseflowBase.metadata)
    finally:
        store.dispose()
    assert differences == [], "\n".join(map(str, differences))
