"""Durable storage: SQLModel tables on a SQLite file (default, one process) or PostgreSQL (many).

Every instant is stored in UTC through :class:`UTCDateTime`, which refuses naive datetimes and reads
back aware values (SQLite drops offsets otherwise: DESIGN.md trap). Our tables live in their own
metadata (``CaseflowBase``) so a host application's ``SQLModel.metadata`` never sees them, and the
schema is managed by Alembic (``caseflow db upgrade``) with its own version table. An empty database is
given the newest schema directly from the models (:meth:`Store.create_schema`), stamped at the newest
revision, without Alembic: the migrations only ever run on a database that has an older schema.

SQLite is the single-process store: writes take ``BEGIN IMMEDIATE`` so concurrent writers queue
instead of failing, and WAL lets readers run alongside. Several processes (API workers, schedulers)
share one PostgreSQL database; there a write session opens its transaction itself, so that its first
statement can carry the BEGIN in the same round trip (:data:`BEGIN_FIRST`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel

from caseflow.errors import StoreError

__all__ = [
    "BEGIN_FIRST",
    "DEFAULT_DB",
    "MAX_CASE_ID",
    "TABLE_MODULES",
    "Absence",
    "ApiToken",
    "CaseRow",
    "CaseflowBase",
    "CommandRecord",
    "EventRow",
    "Generation",
    "HolidayNotice",
    "Person",
    "PublishedWorkflow",
    "Store",
    "TimerRow",
    "UTCDateTime",
    "WorkflowVersion",
    "driver_connection",
    "head_metadata",
    "normalize_url",
    "shipped_head_revision",
]

#: Case ids are INTEGER columns (32 bits on PostgreSQL): a larger id names no case, on either database.
MAX_CASE_ID = 2**31 - 1
#: The embedded default: a SQLite file in the working directory.
DEFAULT_DB = "sqlite:///caseflow.db"
ALEMBIC_VERSION_TABLE = "caseflow_alembic_version"
#: An execution option for the first statement of a PostgreSQL write session: sent without parameters (the
#: simple query protocol, which takes several statements in one query), it goes as ``BEGIN; <statement>``, one
#: round trip instead of two. With parameters, or not first, it gets no BEGIN of its own.
BEGIN_FIRST = "caseflow_begin_first"
_MIGRATIONS = Path(__file__).parent / "migrations" / "versions"
#: The modules that declare tables on :class:`CaseflowBase` besides this one (see :func:`head_metadata`).
TABLE_MODULES = ("caseflow.alerts", "caseflow.appointments", "caseflow.desk", "caseflow.ratelimit",
                 "caseflow.ratings")


def shipped_head_revision() -> str:
    """The newest migration shipped, read from the files' ``revision``/``down_revision`` lines.

    Every command opening a store checks the database against it; asking Alembic would import it and
    every migration (a third of a second), so the two assignments are read as text instead. A test
    holds this equal to Alembic's own ``ScriptDirectory.get_current_head()``.
    """
    import re

    revisions: set[str] = set()
    parents: set[str] = set()
    for path in _MIGRATIONS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = re.search(r"""^revision\s*(?::[^=]*)?=\s*["']([^"']+)["']""", text, re.MULTILINE)
        if found is None:
            continue
        revisions.add(found.group(1))
        down = re.search(r"""^down_revision\s*(?::[^=]*)?=\s*["']([^"']+)["']""", text, re.MULTILINE)
        if down is not None:
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise StoreError(f"the shipped migrations have {len(heads)} heads ({sorted(heads)}); expected one")
    return heads.pop()


def head_metadata() -> sa.MetaData:
    """Every caseflow table as the models declare it: the schema of :func:`shipped_head_revision`.

    The tables are declared beside their concepts (desk, appointments, ratings …), so their modules are
    imported first; a test holds the schema built from it equal to the one the migrations build.
    """
    import importlib

    for name in TABLE_MODULES:
        importlib.import_module(name)
    return CaseflowBase.metadata


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; naive values are refused, values read back are aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise StoreError(f"refusing to store a naive or non-datetime instant: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CaseflowBase(SQLModel, registry=registry()):
    """Base of caseflow's tables: a registry (and metadata) of their own."""


def _utc() -> type[UTCDateTime]:
    return UTCDateTime


class WorkflowVersion(CaseflowBase, table=True):
    """The exact definition a case was opened under: cases are pinned to it by content hash."""

    __tablename__ = "caseflow_workflow_versions"
    version: str = Field(primary_key=True, max_length=64)
    key: str = Field(index=True, max_length=100)
    title: str
    text: str
    loaded_at: datetime = Field(sa_type=UTCDateTime)


class Person(CaseflowBase, table=True):
    """A clerk, police officer or leader: unit, roles, leader and AB岗 substitute."""

    __tablename__ = "caseflow_people"
    id: str = Field(primary_key=True, max_length=64)
    name: str
    unit: str = Field(index=True, max_length=100)
    roles: str = ""  # space-separated role names
    leader_id: str | None = Field(default=None, max_length=64)
    substitute_id: str | None = Field(default=None, max_length=64)
    admin: bool = False
    channel: str | None = None  # notification address, e.g. mailto:… or a webhook URL

    @property
    def role_set(self) -> frozenset[str]:
        """The person's roles."""
        return frozenset(self.roles.split())


class Absence(CaseflowBase, table=True):
    """A period (dates inclusive) during which a person's queue and alerts go to their substitute."""

    __tablename__ = "caseflow_absences"
    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(index=True, max_length=64)
    from_date: date
    to_date: date


_case_version = sa.Column("version", sa.Integer, nullable=False, default=1)


class CaseRow(CaseflowBase, table=True):
    """One case: its state, version (optimistic locking) and the person responsible (首问负责)."""

    __tablename__ = "caseflow_cases"
    # The engine sets the version itself (it is also the event sequence); SQLAlchemy adds
    # "WHERE version = <old>" to every UPDATE, so a stale write raises StaleDataError.
    __mapper_args__ = {"version_id_col": _case_version, "version_id_generator": False}
    __table_args__ = (sa.Index("ix_caseflow_cases_responsible_open", "responsible_id", "closed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_key: str = Field(index=True, max_length=100)
    workflow_version: str = Field(max_length=64, foreign_key="caseflow_workflow_versions.version")
    state: str = Field(max_length=100)
    version: int = Field(sa_column=_case_version)
    responsible_id: str = Field(max_length=64)
    unit: str = Field(index=True, max_length=100)
    opened_by: str = Field(max_length=64)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    close_reason: str | None = None
    data: str = "{}"  # JSON
    #: The head of the case's event chain, kept beside the version so a command needs no extra read
    #: and the audit can tell a history cut short at its end. (After ``data``: migration 0003 added them.)
    last_event_hash: str | None = Field(default=None, max_length=64)
    last_event_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def data_dict(self) -> dict[str, Any]:
        """The case's data fields."""
        value = json.loads(self.data or "{}")
        return value if isinstance(value, dict) else {}


class TimerRow(CaseflowBase, table=True):
    """One running (or finished) clock of a case, with everything needed to recompute it."""

    __tablename__ = "caseflow_timers"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "name", "round", name="uq_caseflow_timers_case_name_round"),
        # The scheduler's sweep: "what needs an alert before T" is one probe of this index.
        sa.Index("ix_caseflow_timers_next_alert", "next_alert_at"),
        sa.Index("ix_caseflow_timers_due", "status", "due_at"),
        # A person's queue: "the running timers assigned to me" is one probe of this index.
        sa.Index("ix_caseflow_timers_assignee_status", "assignee", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="caseflow_cases.id", index=True)
    name: str = Field(max_length=100)
    round: int = 1
    #: running, paused, met (stopped in time), breached (stopped late), cancelled (不适用: its branch was
    #: not taken, or the case ended another way). Rows from before migration 0004 may say "stopped",
    #: the old name of cancelled.
    status: str = Field(max_length=16)
    kind: str = Field(default="statutory", max_length=16)
    limit_spec: str  # JSON of the TimeLimit
    started_at: datetime = Field(sa_type=UTCDateTime)
    pauses: str = "[]"  # JSON list of {reason, from, to|null, charged_to, actor}
    extensions: str = "[]"  # JSON list of {amount, grounds, approver, at}
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_day: date | None = None
    warn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    original_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    provisional: bool = False
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_alert_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    alert_level: str | None = Field(default=None, max_length=16)  # last level raised
    #: The person who must act before the timer runs out (set on every timer the engine starts; a row
    #: without one, written by hand, belongs to the case's responsible person).
    assignee: str | None = Field(default=None, max_length=64)
    #: When an overdue timer escalates to the assignee's leader (the timer's own ``escalate_after``);
    #: None: the scheduler's configured default.
    escalate_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: The trigger the scheduler fires, as the system, when the timer runs out (``on_expiry``).
    expiry_trigger: str | None = Field(default=None, max_length=100)


class EventRow(CaseflowBase, table=True):
    """An append-only, hash-chained record of one command on one case (``seq`` = case version)."""

    __tablename__ = "caseflow_events"
    __table_args__ = (sa.UniqueConstraint("case_id", "seq", name="uq_caseflow_events_case_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="caseflow_cases.id", index=True)
    seq: int
    kind: str = Field(max_length=32)
    at: datetime = Field(sa_type=UTCDateTime)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=64)
    trigger: str | None = Field(default=None, max_length=100)
    from_state: str | None = Field(default=None, max_length=100)
    to_state: str | None = Field(default=None, max_length=100)
    data: str = "{}"
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class CommandRecord(CaseflowBase, table=True):
    """An idempotency key and the first result of its command: a retry returns it unchanged."""

    __tablename__ = "caseflow_commands"
    key: str = Field(primary_key=True, max_length=200)
    command: str = Field(max_length=32)
    case_id: int | None = None
    result: str
    created_at: datetime = Field(sa_type=UTCDateTime)


class ApiToken(CaseflowBase, table=True):
    """A bearer token (stored as its SHA-256) acting as one person; revocable."""

    __tablename__ = "caseflow_tokens"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    person_id: str = Field(index=True, max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class HolidayNotice(CaseflowBase, table=True):
    """A year's holiday notice as loaded (``caseflow calendar import``, ``PUT /holidays/{year}``): the truth
    every process's calendar reads; the file it came from is only how it was brought in."""

    __tablename__ = "caseflow_holiday_notices"
    year: int = Field(primary_key=True)
    source: str = Field(max_length=500)
    format: str = Field(max_length=16)  # yaml or holiday-cn: how ``text`` is read
    text: str
    loaded_at: datetime = Field(sa_type=UTCDateTime)
    loaded_by: str = Field(max_length=64)


class PublishedWorkflow(CaseflowBase, table=True):
    """The definition new cases of a workflow key use (its text is the pinned :class:`WorkflowVersion`)."""

    __tablename__ = "caseflow_published_workflows"
    key: str = Field(primary_key=True, max_length=100)
    version: str = Field(max_length=64, foreign_key="caseflow_workflow_versions.version")
    loaded_at: datetime = Field(sa_type=UTCDateTime)
    loaded_by: str = Field(max_length=64)


class Generation(CaseflowBase, table=True):
    """A counter raised by every load of a notice (``calendar``) or a definition (``workflows``).

    Each process compares it with the one it last read before each command, and rereads the notices or
    definitions when it moved: one indexed read per command, no restart.
    """

    __tablename__ = "caseflow_generations"
    name: str = Field(primary_key=True, max_length=32)
    value: int = 0
    changed_at: datetime = Field(sa_type=UTCDateTime)


def normalize_url(url: str | os.PathLike[str] | None) -> str:
    """A database URL from ``--db``/``CASEFLOW_DB``: a plain path means a SQLite file."""
    if url is None:
        url = os.environ.get("CASEFLOW_DB") or DEFAULT_DB
    url = str(url)
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    """A database holding caseflow's tables; open it with a URL (``sqlite:///file.db``, ``postgresql://…``).

    ``upgrade="auto"`` (default) creates the schema in an empty database and refuses one at an older
    revision (run ``caseflow db upgrade``); ``True`` always upgrades; ``False`` never touches it.
    """

    def __init__(self, url: str | os.PathLike[str] | None = None, *, upgrade: bool | str = "auto",
                 echo: bool = False) -> None:
        self.url = normalize_url(url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        self.is_sqlite = self.url.startswith("sqlite")
        #: A pooled PostgreSQL connection idle at least this many seconds is pinged before it is used again.
        self.ping_after = 1.0
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except ImportError as exc:
            # The driver is an extra: name it rather than the module that failed to import.
            hint = ' (PostgreSQL needs the [postgres] extra: pip install "caseflow[postgres]")' \
                if self.url.startswith("postgresql") else ""
            raise StoreError(f"cannot use the database URL {self._safe_url()}: {exc}{hint}") from None
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"cannot use the database URL {self.url!r}: {exc}") from None
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        else:
            self._ping_when_idle()
            _configure_postgresql(self.engine)
        self._writer = self.engine.execution_options(caseflow_write=True)
        if upgrade is True:
            self.upgrade()
        elif upgrade == "auto":
            self._check_schema()

    def _ping_when_idle(self) -> None:
        """Ping a pooled connection before use only if it sat idle for :attr:`ping_after` seconds.

        SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip for every command. A
        connection the server dropped (a restart, an idle timeout) is still replaced before use once it has
        been idle a moment; one dropped within that moment of its last use fails one command, and the pool is
        then renewed (SQLAlchemy invalidates it on a disconnect error).
        """
        dialect = self.engine.dialect

        @event.listens_for(self.engine, "checkin")
        def _checkin(_dbapi_conn: Any, record: Any) -> None:
            if record is not None:
                record.info["caseflow_idle_since"] = time.monotonic()

        @event.listens_for(self.engine, "checkout")
        def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            since = record.info.pop("caseflow_idle_since", None)
            if since is None or time.monotonic() - since < self.ping_after:
                return
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as exc:  # the server dropped it: the pool connects anew and retries
                raise sa.exc.DisconnectionError(f"a pooled connection was dropped: {exc}") from exc

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any exception.

        A PostgreSQL write session runs on an autocommit connection and opens its transaction itself: a first
        statement marked :data:`BEGIN_FIRST` carries the BEGIN, any other gets one sent just before it, so no
        statement of the session runs outside the transaction. It ends with a COMMIT sent here (or a ROLLBACK
        on any exception); a transaction a swallowed error left failed is refused, not committed.
        """
        own_begin = write and not self.is_sqlite
        with ExitStack() as stack:
            bind: Engine | sa.Connection = self._writer if write else self.engine
            if own_begin:
                # Set on the connection, not as an engine option: that one works through a connection event,
                # and any connection event makes SQLAlchemy dispatch every one of them around each statement.
                bind = stack.enter_context(self._writer.connect()).execution_options(isolation_level="AUTOCOMMIT")
            session = stack.enter_context(Session(bind, expire_on_commit=False, autoflush=False))
            try:
                yield session
                if own_begin:
                    _commit_begun(session)
                session.commit()
            except BaseException:
                session.rollback()  # psycopg sends ROLLBACK whenever the server is in a transaction
                raise

    @contextmanager
    def lookup(self) -> Iterator[Session]:
        """A session for a read of one statement (or several that need not agree with each other).

        On PostgreSQL it runs on an autocommit connection: no BEGIN and COMMIT round trips around the
        statement, which takes its own snapshot. The HTTP API resolves every request's token this way.
        On SQLite it is an ordinary read session (a transaction there costs no round trip).
        """
        if self.is_sqlite:
            with self.session() as session:
                yield session
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, \
                Session(conn, expire_on_commit=False, autoflush=False) as session:
            yield session

    def backup(self, path: str | os.PathLike[str]) -> Path:
        """Copy a SQLite database to ``path`` with SQLite's online backup API (writers may go on meanwhile).

        PostgreSQL is backed up with its own tool: ``pg_dump --format=custom``; this refuses it, saying so.
        """
        target = Path(path).expanduser()
        if not self.is_sqlite:
            raise StoreError(f"{self._safe_url()} is PostgreSQL: back it up with pg_dump, e.g. "
                             f"`pg_dump --format=custom --file {target} DBNAME` (README: backup and restore)")
        if target.exists():
            raise StoreError(f"{target} exists already; name a new file (a backup never overwrites one)")
        if not target.parent.is_dir():
            raise StoreError(f"cannot write the backup {target}: the folder {target.parent} does not exist")
        import sqlite3

        raw = self.engine.raw_connection()
        try:
            try:
                dest = sqlite3.connect(str(target))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write the backup {target}: {exc}") from None
            try:
                raw.driver_connection.backup(dest)  # type: ignore[union-attr]
            except sqlite3.Error as exc:
                dest.close()
                target.unlink(missing_ok=True)
                raise StoreError(f"cannot write the backup {target}: {exc}") from None
            dest.close()
        finally:
            raw.close()
        return target

    # ----------------------------------------------------------------------------- schema

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None for an empty database)."""
        try:
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table(ALEMBIC_VERSION_TABLE):
                    return None
                return conn.execute(sa.text(f"SELECT version_num FROM {ALEMBIC_VERSION_TABLE}")).scalar()
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot reach the database {self._safe_url()}: {exc.orig}") from None
        except sa.exc.DatabaseError as exc:  # e.g. --db naming a YAML file: "file is not a database"
            raise StoreError(f"{self._safe_url()} is not a caseflow database ({exc.orig}); give the database "
                             "file or URL with --db") from None

    def head_revision(self) -> str:
        """The newest revision shipped with this caseflow."""
        return shipped_head_revision()

    def _check_schema(self) -> None:
        current = self.current_revision()
        if current is None:
            current = self.create_schema()
        if current != self.head_revision():
            raise StoreError(
                f"the database {self._safe_url()} is at schema revision {current}, this caseflow needs "
                f"{self.head_revision()}: run `caseflow db upgrade --db {self._safe_url()}`"
            )

    def create_schema(self) -> str:
        """Give an empty database the newest schema, its seeded rows and version stamp; return its revision.

        What the migrations build, made in one transaction from :func:`head_metadata` without importing
        Alembic (and the migrations) at all: the stamp is the one Alembic writes, so ``caseflow db
        upgrade`` carries the database on from there. Two processes creating the same database at once
        queue on a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock on the schema's name):
        the second finds the first one's stamp, creates nothing and returns the revision it found. A
        database holding any of the tables but no stamp is refused, as Alembic would refuse it.
        """
        metadata = head_metadata()
        version = _alembic_version_table()
        try:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn.execution_options(caseflow_write=True)  # BEGIN IMMEDIATE (_configure_sqlite)
                with conn.begin():
                    if not self.is_sqlite:
                        conn.execute(_SCHEMA_LOCK)
                    if sa.inspect(conn).has_table(ALEMBIC_VERSION_TABLE):
                        found: str | None = conn.execute(sa.select(version.c.version_num)).scalar()
                        return str(found)
                    metadata.create_all(conn, checkfirst=False)
                    for table, rows in _seeded_rows().items():
                        conn.execute(sa.insert(metadata.tables[table]), rows)
                    version.create(conn)
                    head = shipped_head_revision()
                    conn.execute(sa.insert(version).values(version_num=head))
                    return head
        except sa.exc.DatabaseError as exc:
            raise StoreError(f"cannot create the schema in {self._safe_url()}: {exc.orig}") from None

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        config.attributes["engine"] = self.engine
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (run by ``caseflow db upgrade``)."""
        from alembic import command

        try:
            command.upgrade(self._alembic_config(), revision)
        except sa.exc.DatabaseError as exc:
            raise StoreError(f"cannot upgrade the database {self._safe_url()}: {exc.orig}") from None

    def _safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)


#: libpq's transaction states (``PQtransactionStatus``) the write sessions look at.
_IDLE, _INERROR = 0, 3


def _commit_begun(session: Session) -> None:
    """Flush and COMMIT the transaction a PostgreSQL write session began (see :meth:`Store.session`).

    The COMMIT is sent here, by psycopg's ``commit()``, which sends one whenever the server is in a transaction,
    autocommit or not; the connection is then checked to be idle, so a driver that sent none raises (and the
    session rolls back) rather than letting the pool's reset undo the work silently. Driver errors are raised
    as SQLAlchemy raises them. Nothing is sent when no transaction is open.
    """
    session.flush()
    raw = session.connection().connection.driver_connection
    assert raw is not None
    status = raw.pgconn.transaction_status
    if status == _INERROR:
        raise StoreError("a statement of this transaction failed and its error was ignored; nothing was written")
    if status == _IDLE:
        return
    import psycopg

    try:
        raw.commit()  # psycopg's: a COMMIT query whenever the server is in a transaction, autocommit or not
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance("COMMIT", None, exc, psycopg.Error) from exc
    if raw.pgconn.transaction_status != _IDLE:  # a driver that sent none: the caller's except rolls back
        raise StoreError("the database driver did not send COMMIT on an autocommit connection; nothing was written")


def driver_connection(conn: sa.Connection) -> Any:
    """The driver's connection under ``conn`` (sqlite3's, psycopg's), inside the transaction of its session.

    For statements sent on it directly (``COPY``, binary array parameters, plain tuples), which pass by the
    dialect events that open a PostgreSQL write session's transaction (see :meth:`Store.session`): sent first
    in such a session one would otherwise run, and commit, on its own.
    """
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql" and raw.autocommit and raw.pgconn.transaction_status == _IDLE \
            and conn.get_execution_options().get("caseflow_write"):
        raw.execute("BEGIN", prepare=False)
    return raw


def _configure_postgresql(engine: Engine) -> None:
    """Open the transaction of a write session (autocommit at psycopg's level) with or before its first statement.

    Dialect events, not connection events: a connection event, even one, makes SQLAlchemy dispatch every
    connection event on every statement, a few dozen calls each; these run only around the cursor call.
    """

    def begun(cursor: Any, context: Any) -> bool:
        """Whether the statement runs in the session's transaction as it is: else it must carry a BEGIN."""
        raw = cursor.connection
        return not (raw.autocommit and context is not None and context.execution_options.get("caseflow_write")
                    and raw.pgconn.transaction_status == _IDLE)

    def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        if begun(cursor, context):
            return False
        if context.execution_options.get(BEGIN_FIRST) and not parameters:
            # No parameters: psycopg sends it as one simple-protocol query, two statements, two results.
            cursor.execute(f"BEGIN; {statement}", parameters)
            cursor.nextset()  # SQLAlchemy reads the statement's rows, not BEGIN's empty result
            return True
        cursor.connection.execute("BEGIN", prepare=False)
        return False

    def _executemany(cursor: Any, _statement: str, _parameters: Any, context: Any) -> bool:
        if not begun(cursor, context):
            cursor.connection.execute("BEGIN", prepare=False)
        return False

    def _execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
        return _execute(cursor, statement, None, context)

    event.listen(engine, "do_execute", _execute)
    event.listen(engine, "do_executemany", _executemany)
    event.listen(engine, "do_execute_no_params", _execute_no_params)


#: Held while an empty PostgreSQL schema is created: the key is the schema's name, so creating two different
#: schemas (one per test, one per tenant) never waits.
_SCHEMA_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('caseflow-create-schema:' || "
                       "coalesce(current_schema(), '')))")


def _alembic_version_table() -> sa.Table:
    # Alembic's own definition (alembic.runtime.migration.MigrationContext): Alembic reads and moves the
    # stamp of a database created by Store.create_schema as one it wrote itself.
    table = sa.Table(ALEMBIC_VERSION_TABLE, sa.MetaData(),
                     sa.Column("version_num", sa.String(32), nullable=False))
    table.append_constraint(sa.PrimaryKeyConstraint("version_num", name=f"{ALEMBIC_VERSION_TABLE}_pkc"))
    return table


def _seeded_rows() -> dict[str, list[dict[str, Any]]]:
    """The rows the migrations insert into an empty database (a test holds the two equal).

    Migration 0005: the generation counters exist from the start, so a command can hold them shared before
    the first load raises them; their ``changed_at`` is the migration's fixed instant.
    """
    created = datetime(2026, 11, 30, tzinfo=UTC)
    return {Generation.__tablename__: [{"name": "calendar", "value": 0, "changed_at": created},
                                       {"name": "workflows", "value": 0, "changed_at": created}]}


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, waiting while another connection holds the lock it needs.

    Switching a new file to WAL takes its exclusive lock, and SQLite answers "database is locked" at once,
    without the busy wait, while another connection switches it or writes (two processes opening a new
    database together); the mode is kept in the file, so the wait happens only then.
    """
    import sqlite3

    deadline = time.monotonic() + 60  # as the busy timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would issue a deferred BEGIN; we issue ours.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front, so two writers queue instead of deadlocking on upgrade.
        if conn.get_execution_options().get("caseflow_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
