"""Tables of the scheduler: raised alerts, the notification outbox and claimed job runs.

They live in caseflow's own metadata (:class:`~caseflow.store.CaseflowBase`) next to the core tables and
are created by migration ``0002``. Three unique keys make several schedulers on one PostgreSQL database
safe without any coordination between them:

- ``caseflow_alerts (timer_id, level)``: an alert level is raised once per timer, whoever sweeps;
- ``caseflow_outbox (alert_id, recipient)``: a notification is queued once per alert and recipient;
- ``caseflow_job_runs (job, scheduled_for)``: a digest or monthly report goes out once per schedule slot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import Field

from caseflow.store import Absence, CaseflowBase, CaseRow, Person, Store, TimerRow, UTCDateTime, driver_connection

__all__ = [
    "ABSENCES",
    "ALERTS",
    "ALERT_LEVELS",
    "CASES",
    "JOB_RUNS",
    "OUTBOX",
    "PEOPLE",
    "TIMERS",
    "AlertRow",
    "JobRun",
    "OutboxRow",
    "bind_processors",
    "bound_values",
    "bulk_insert",
    "bulk_update",
    "table_of",
]

#: Alert levels in the order a timer passes them.
ALERT_LEVELS = ("warning", "overdue", "escalated")


class AlertRow(CaseflowBase, table=True):
    """One alert level raised for one timer: unique per (timer, level), so never raised twice."""

    __tablename__ = "caseflow_alerts"
    __table_args__ = (
        sa.UniqueConstraint("timer_id", "level", name="uq_caseflow_alerts_timer_level"),
        sa.Index("ix_caseflow_alerts_unit_raised", "unit", "raised_at"),
        sa.Index("ix_caseflow_alerts_raised", "raised_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    timer_id: int = Field(foreign_key="caseflow_timers.id")
    case_id: int = Field(foreign_key="caseflow_cases.id", index=True)
    level: str = Field(max_length=16)  # warning, overdue, escalated
    raised_at: datetime = Field(sa_type=UTCDateTime)
    #: The instant the level was due (warn_at, due_at or the escalation instant), for "how late".
    level_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    to_person: str = Field(max_length=64)
    #: The person the alert was meant for before absences were applied (the substitute's principal).
    for_person: str = Field(max_length=64)
    unit: str = Field(max_length=100)


class OutboxRow(CaseflowBase, table=True):
    """A notification waiting to be delivered, delivered, or given up on (``failed``).

    Queued in the transaction that raises its alert (or claims its digest), delivered afterwards by
    whichever scheduler claims it: on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` plus a lease covering
    the network call, on SQLite with the lease alone (``lease_owner``, ``lease_until``). A process
    killed while sending leaves a lease that expires, and the row is delivered again.
    """

    __tablename__ = "caseflow_outbox"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "recipient", name="uq_caseflow_outbox_alert_recipient"),
        # The delivery claim: "pending rows whose attempt is due" is one probe of this index.
        sa.Index("ix_caseflow_outbox_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # alert, digest, report
    alert_id: int | None = Field(default=None, foreign_key="caseflow_alerts.id")
    job_run_id: int | None = Field(default=None, foreign_key="caseflow_job_runs.id")
    recipient: str = Field(max_length=64)  # a person id, or "unit:<name>"
    #: A channel name of the configuration, or an address (URL) taken from the person's row.
    channel: str
    address: str | None = None  # an extra target on the channel (an e-mail address, …)
    subject: str
    body: str
    body_format: str = Field(default="text", max_length=16)  # text, markdown, html
    status: str = Field(default="pending", max_length=16)  # pending, sent, failed
    attempts: int = 0
    max_attempts: int = 6
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = None
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class JobRun(CaseflowBase, table=True):
    """One run of a scheduled job (a digest, the monthly report) for one slot: inserted once, by its sender."""

    __tablename__ = "caseflow_job_runs"
    __table_args__ = (sa.UniqueConstraint("job", "scheduled_for", name="uq_caseflow_job_runs_job_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=200)  # e.g. "digest:leader-7", "monthly-report"
    scheduled_for: datetime = Field(sa_type=UTCDateTime)
    claimed_by: str = Field(max_length=100)
    claimed_at: datetime = Field(sa_type=UTCDateTime)


def table_of(model: type[Any]) -> sa.Table:
    """The Core table of a SQLModel class (the scheduler's bulk statements work on tables, not objects)."""
    table: sa.Table = model.__table__
    return table


# Core tables: bulk inserts and updates of thousands of rows go through these, never through ORM objects.
ALERTS = table_of(AlertRow)
OUTBOX = table_of(OutboxRow)
JOB_RUNS = table_of(JobRun)
TIMERS = table_of(TimerRow)
CASES = table_of(CaseRow)
PEOPLE = table_of(Person)
ABSENCES = table_of(Absence)


@contextmanager
def read_in(store: Store, session: Session | None) -> Iterator[Session]:
    """``session`` when the caller reads within one already (its reads then see one snapshot and share one
    transaction, as a digest's do), else a read transaction of its own on ``store``."""
    if session is not None:
        yield session
        return
    with store.session() as own:
        yield own


# ------------------------------------------------------------------------------------ bulk statements
#
# A sweep raising 10 000 alerts writes 10 000 alert rows, 10 000 outbox rows and 10 000 timer updates.
# Through SQLAlchemy's executemany each value goes through its type's bind processing and psycopg parses
# a statement with tens of thousands of named parameters: seconds. These helpers keep the same SQL
# semantics with far less work per row: on PostgreSQL one statement over ``unnest`` of one array per
# column; on SQLite multi-row VALUES (for RETURNING) or the driver's own executemany. Values still go
# through each column's bind processor (UTCDateTime refuses naive instants), memoised for instants,
# which repeat (every row of a sweep has the same raised_at).

_SQLITE_VARIABLES = 30_000  # below SQLite's default limit of 32 766 bound variables per statement

_PG_ARRAY_TYPES = {"INTEGER": "integer[]", "BOOLEAN": "boolean[]", "DATE": "date[]"}


def _pg_array_type(column: sa.Column[Any]) -> str:
    if isinstance(column.type, UTCDateTime):
        return "timestamptz[]"
    name = type(column.type).__visit_name__.upper() if hasattr(type(column.type), "__visit_name__") else ""
    return _PG_ARRAY_TYPES.get(name, "text[]")


def bind_processors(table: sa.Table, columns: Sequence[str], dialect: sa.engine.Dialect, *,
                    memoise: bool = True) -> list[Any]:
    """Each column's bind processor (None where values go as they are), as SQLAlchemy's compiled statements
    apply them. ``memoise``: instants, which repeat within one bulk statement, are converted once each; a
    processor kept beyond one statement must not memoise (its cache would grow with every instant)."""
    procs: list[Any] = []
    for name in columns:
        column = table.c[name]
        proc = column.type._cached_bind_processor(dialect)
        if memoise and proc is not None and isinstance(column.type, UTCDateTime):
            proc = _memoised(proc)
        procs.append(proc)
    return procs


def _memoised(proc: Any) -> Any:
    cache: dict[Any, Any] = {}

    def run(value: Any) -> Any:
        if value is None:
            return None
        try:
            return cache[value]
        except KeyError:
            result = cache[value] = proc(value)
            return result

    return run


def bound_values(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                 procs: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Each row's values of ``columns`` as the driver takes them, through :func:`bind_processors`."""
    pairs = list(zip(columns, procs, strict=True))
    return [tuple(p(row[c]) if p is not None else row[c] for c, p in pairs) for row in rows]


def _pg_arrays(table: sa.Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
               dialect: sa.engine.Dialect) -> dict[str, list[Any]]:
    """One list per column (``c0``, ``c1`` …) for ``unnest``; instants pass UTCDateTime's checks."""
    params: dict[str, list[Any]] = {}
    for i, (c, proc) in enumerate(zip(columns, bind_processors(table, columns, dialect), strict=True)):
        values = [row[c] for row in rows]
        # Other values go as they are: psycopg adapts them to the array's element type.
        if proc is not None and isinstance(table.c[c].type, UTCDateTime):
            values = [proc(v) for v in values]
        params[f"c{i}"] = values
    return params


def _pg_execute(conn: sa.Connection, sql: str, params: dict[str, list[Any]], *,
                fetch: bool) -> list[tuple[Any, ...]]:
    """Run on the transaction's own psycopg connection with binary parameters.

    psycopg's text format escapes every array element with regular expressions (about half the time of
    a 10 000-alert sweep); the binary format copies them.
    """
    with driver_connection(conn).cursor() as cursor:
        cursor.execute(sql, params, binary=True)
        return [tuple(r) for r in cursor.fetchall()] if fetch else []


def bulk_insert(session: Session, table: sa.Table, rows: Sequence[Mapping[str, Any]], *,
                conflict: Sequence[str], returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING [RETURNING …]`` of many rows; return the inserted rows' values.

    Rows skipped by the conflict return nothing: the caller learns exactly what it inserted.
    """
    if not rows:
        return []
    conn = session.connection()
    dialect = conn.dialect
    columns = list(rows[0].keys())
    names = ", ".join(columns)
    tail = f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    if returning:
        tail += f" RETURNING {', '.join(returning)}"
    if dialect.name == "postgresql":
        params = _pg_arrays(table, columns, rows, dialect)
        arrays = ", ".join(f"CAST(%(c{i})b AS {_pg_array_type(table.c[c])})" for i, c in enumerate(columns))
        sql = f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}){tail}"
        return _pg_execute(conn, sql, params, fetch=bool(returning))
    if dialect.name != "sqlite":
        raise ValueError(f"unsupported database dialect {dialect.name!r}")
    values = bound_values(rows, columns, bind_processors(table, columns, dialect))
    one = "(" + ", ".join("?" * len(columns)) + ")"
    if not returning:
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES {one}{tail}", values)
        return []
    result: list[tuple[Any, ...]] = []
    page = max(1, _SQLITE_VARIABLES // len(columns))
    for start in range(0, len(values), page):
        chunk = values[start:start + page]
        sql = f"INSERT INTO {table.name} ({names}) VALUES {', '.join([one] * len(chunk))}{tail}"
        flat = tuple(v for row in chunk for v in row)
        result.extend(tuple(r) for r in conn.exec_driver_sql(sql, flat).all())
    return result


def bulk_update(session: Session, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, key: str = "id") -> None:
    """``UPDATE table SET … WHERE key = …`` for many rows (every row gives the same columns)."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    columns = [c for c in rows[0] if c != key]
    if dialect.name == "postgresql":
        ordered = [key, *columns]
        params = _pg_arrays(table, ordered, rows, dialect)
        arrays = ", ".join(f"CAST(%(c{i})b AS {_pg_array_type(table.c[c])})" for i, c in enumerate(ordered))
        sets = ", ".join(f"{c} = v.{c}" for c in columns)
        sql = (f"UPDATE {table.name} AS t SET {sets} FROM unnest({arrays}) AS v({', '.join(ordered)}) "
               f"WHERE t.{key} = v.{key}")
        _pg_execute(conn, sql, params, fetch=False)
        return
    ordered = [*columns, key]
    values = bound_values(rows, ordered, bind_processors(table, ordered, dialect))
    sets = ", ".join(f"{c} = ?" for c in columns)
    conn.exec_driver_sql(f"UPDATE {table.name} SET {sets} WHERE {key} = ?", values)
