"""How many round trips one command costs (issue 11: lean commands), counted where they happen.

PostgreSQL: every exchange with the server ends with one ``ReadyForQuery`` message from it, so the libpq
protocol trace of the connections a command checks out counts its round trips, BEGIN and COMMIT included.
A command is at most four: BEGIN with the case's row lock and the advisory lock (one query), the read of
everything else, the write, COMMIT. SQLite has no round trips; there the statements sent are counted
(``BEGIN IMMEDIATE`` included: it is a statement we send). These counts are pinned so that a change adding
a query to the command path shows here; they are counts, not timings.

Not counted here, as they happen once, not per command: psycopg preparing a statement it has run five
times on a connection (one more round trip, then none), and reading a definition the process has not
stored or loaded yet.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.errors import CaseNotFoundError, ConflictError, PermissionDeniedError, TransitionError
from caseflow.store import CaseRow, EventRow, Person, Store, TimerRow, UTCDateTime
from caseflow.views import CaseView
from storefixtures import db_url  # noqa: F401 - fixture


@pytest.fixture
def engine(db_url: str) -> Engine:  # noqa: F811
    e = Engine(Store(db_url), clock=FixedClock(datetime(2026, 9, 30, 9, 0, tzinfo=ZONE)))
    e.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader", "leader"])
    e.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1")
    e.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], leader="l1", substitute="p2")
    e.add_person("p3", name="陈户籍", unit="城关派出所", roles=["household_police"], leader="l1")
    e.add_person("i1", name="赵侦查", unit="刑侦大队", roles=["investigator"], leader="l1")
    e.add_person("p4", name="孙社区", unit="东关派出所", roles=["community_police"])
    return e


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """The statements sent while the block runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()))

    sa.event.listen(engine.store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine.store.engine, "before_cursor_execute", record)


@contextmanager
def tracing(engine: Engine) -> Iterator[list[str]]:
    """The libpq protocol trace (PostgreSQL) of every connection checked out while the block runs, from the
    checkout on (a ping of a connection idle too long would be in it)."""
    lines: list[str] = []
    bind = engine.store.engine
    with tempfile.TemporaryFile() as trace:

        def start(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
            dbapi_conn.pgconn.trace(trace.fileno())

        def stop(dbapi_conn: Any, _record: Any) -> None:
            if dbapi_conn is not None:
                dbapi_conn.pgconn.untrace()  # flushes what libpq buffered

        sa.event.listen(bind, "checkout", start, insert=True)
        sa.event.listen(bind, "checkin", stop)
        try:
            yield lines
        finally:
            sa.event.remove(bind, "checkout", start)
            sa.event.remove(bind, "checkin", stop)
            trace.seek(0)
            lines.extend(trace.read().decode().splitlines())


#: A traced message begins a line with its timestamp and direction (F: from us, B: from the server); a
#: message whose text has line breaks (our SQL) goes on over the next lines.
_MESSAGE = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+\t([FB])\t\d+\t(\w+)\t?(.*)$")


def messages(trace: list[str]) -> list[tuple[str, str, str]]:
    """(direction, message type, contents) of each traced message."""
    out: list[tuple[str, str, str]] = []
    for line in trace:
        found = _MESSAGE.match(line)
        if found:
            out.append((found[1], found[2], found[3].strip()))
        elif out:
            direction, kind, text = out[-1]
            out[-1] = (direction, kind, f"{text}\n{line}")
    return out


def round_trips(trace: list[str]) -> int:
    """Exchanges with the server in a trace: each ends with one ReadyForQuery from the backend."""
    return sum(1 for direction, kind, _ in messages(trace) if direction == "B" and kind == "ReadyForQuery")


def ready_states(trace: list[str]) -> list[str]:
    """The transaction state each ReadyForQuery reports: I idle, T in a transaction, E in a failed one."""
    return [text for direction, kind, text in messages(trace) if direction == "B" and kind == "ReadyForQuery"]


def queries(trace: list[str]) -> list[str]:
    """The simple-protocol queries (``Query`` messages) the client sent, as traced (quoted)."""
    return [text for direction, kind, text in messages(trace) if direction == "F" and kind == "Query"]


def cost(engine: Engine, command: Callable[[], object]) -> int:
    """Round trips on PostgreSQL, statements on SQLite, of one command."""
    if engine.store.is_sqlite:
        with counting(engine) as sent:
            command()
        return len(sent)
    with tracing(engine) as trace:
        command()
    return round_trips(trace)


# (SQLite statements, PostgreSQL round trips including BEGIN and COMMIT) for each command below.
EXPECTED = {
    "open": (5, 4),
    # The verification step goes to the unit's only community police officer: SQLite reads the unit's roster
    # in a statement of its own; PostgreSQL reads it with the rest.
    "fire": (7, 4),
    "pause": (5, 4),
    "resume": (5, 4),
    # The arrest request goes to the opener's leader: SQLite reads the unit's roster and the leader; PostgreSQL
    # reads the leaders of the people a timer-starting command reads with the rest.
    "open a detention": (7, 4),
    "extend": (5, 4),
    # The receiver is read with the rest (a cross-unit move by a leader, or a stand-in acting, reads more).
    "hand over": (4, 4),
    "hand over a step": (5, 4),
    "open with a key": (6, 4),
    # A replay reads and returns the first result: BEGIN with the locks, the read, COMMIT.
    "the same open again": (2, 3),
    # SQLite updates each timer it stops in a statement of its own; PostgreSQL writes in one statement.
    "close": (8, 4),
}


def test_each_command_costs_a_fixed_few_round_trips(engine: Engine) -> None:
    dialect = 0 if engine.store.is_sqlite else 1
    for workflow, actor in (("hukou_transfer", "p1"), ("criminal_detention", "i1")):
        engine.open(workflow, actor=actor)  # each definition is stored once per process, before its first case
    counts: dict[str, int] = {}
    opened: list[CaseView] = []
    counts["open"] = cost(engine, lambda: opened.append(engine.open("hukou_transfer", actor="p1")))
    case = opened[-1]
    counts["fire"] = cost(engine, lambda: engine.fire(case.id, "hand_over_verification", actor="p1",
                                                      data={"slip_no": "JB-1"}))
    assert engine.get(case.id).timer("verification").assignee == "p2"
    counts["pause"] = cost(engine, lambda: engine.pause(case.id, "verification", reason="函调", actor="p2"))
    counts["resume"] = cost(engine, lambda: engine.resume(case.id, "verification", actor="p2"))
    counts["open a detention"] = cost(engine, lambda: opened.append(
        engine.open("criminal_detention", actor="i1", data={"suspect": "某甲"})))
    custody = opened[-1]
    assert custody.timer("arrest_request").assignee == "l1"
    counts["extend"] = cost(engine, lambda: engine.extend(custody.id, "arrest_request", by="4 days",
                                                          grounds="特殊情况", actor="l1"))
    counts["hand over"] = cost(engine, lambda: engine.hand_over(case.id, to="p3", actor="p1", slip="JB-2"))
    counts["hand over a step"] = cost(engine, lambda: engine.hand_over_step(case.id, "verification", to="p4",
                                                                            actor="p2", reason="外出"))
    counts["open with a key"] = cost(engine, lambda: engine.open("hukou_transfer", actor="p1", key="k-1"))
    counts["the same open again"] = cost(engine, lambda: engine.open("hukou_transfer", actor="p1", key="k-1"))
    counts["close"] = cost(engine, lambda: engine.close(custody.id, actor="i1", reason="撤案"))
    assert counts == {name: pair[dialect] for name, pair in EXPECTED.items()}
    if dialect == 1:  # issue 11: at most 4 round trips per command on PostgreSQL, BEGIN and COMMIT included
        assert max(counts.values()) <= 4
    assert engine.verify_audit() == []


def test_the_transaction_begins_with_the_case_lock_in_one_query(engine: Engine) -> None:
    """The first exchange of a command carries BEGIN and the locking statement; the read is the next one."""
    if engine.store.is_sqlite:
        pytest.skip("SQLite's BEGIN IMMEDIATE is a statement that costs no round trip")
    case = engine.open("hukou_transfer", actor="p1")
    with tracing(engine) as trace:
        engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    sent = queries(trace)
    assert sent[0].startswith('"BEGIN; SELECT') and "FOR UPDATE" in sent[0]
    assert f"caseflow_cases.id = {case.id}" in sent[0] and "pg_advisory_xact_lock_shared" in sent[0]
    # After each exchange the server says where the transaction stands: in it (T) until the COMMIT, idle (I).
    assert ready_states(trace) == ["T", "T", "T", "I"] and "ROLLBACK" not in " ".join(sent)


def test_opening_inserts_the_case_once_complete(engine: Engine) -> None:
    with counting(engine) as sent:
        case = engine.open("hukou_transfer", actor="p1")
    case_writes = [s for s in sent if "INSERT INTO caseflow_cases" in s or "UPDATE caseflow_cases" in s]
    assert len(case_writes) == 1 and "UPDATE caseflow_cases" not in case_writes[0]
    assert engine.verify_audit(case_id=case.id) == []


def test_sqlite_rows_a_command_writes_are_stored_as_sqlalchemy_stores_them(engine: Engine) -> None:
    """On SQLite a command's writes go to the driver as SQL text with each column's bind processing; what
    lands must be what SQLAlchemy's own statements store, or SQL comparing instants (the sweep, 考评) and
    the ORM's reads would disagree with rows written by other code."""
    if not engine.store.is_sqlite:
        pytest.skip("PostgreSQL writes through SQLAlchemy's compiled statement")
    case = engine.open("hukou_transfer", actor="p1", data={"applicant": "王某"})
    engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    engine.pause(case.id, "verification", reason="函调", actor="p2")
    tables = [CaseRow.__table__, TimerRow.__table__, EventRow.__table__]  # type: ignore[attr-defined]
    with engine.store.session() as s:
        raw = s.connection().connection.driver_connection
        for table in tables:
            stored = raw.execute(f"SELECT * FROM {table.name} ORDER BY id").fetchall()
            loaded = s.execute(sa.select(table).order_by(table.c.id)).all()
            assert stored and len(stored) == len(loaded)
            for stored_row, loaded_row in zip(stored, loaded, strict=True):
                for column, value, text in zip(table.columns, loaded_row, stored_row, strict=True):
                    process = column.type._cached_bind_processor(s.get_bind().dialect)
                    expected = process(value) if process is not None and value is not None else value
                    assert text == expected, (table.name, column.name, text, expected)
            instants = [c.name for c in table.columns if isinstance(c.type, UTCDateTime)]
            for row in raw.execute(f"SELECT {', '.join(instants)} FROM {table.name}"):
                assert all(v is None or re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", v) for v in row)


@pytest.mark.parametrize("refusal", ["transition", "permission", "stale version", "no such case"])
def test_a_refused_command_rolls_back_and_leaves_the_pooled_connection_clean(engine: Engine, refusal: str) -> None:
    """A command refused after its transaction began (BEGIN went with the lock) sends ROLLBACK, writes
    nothing, and the next command on the same pooled connection goes through."""
    if engine.store.is_sqlite:
        pytest.skip("the merged BEGIN and the session's own COMMIT are PostgreSQL's")
    case = engine.open("hukou_transfer", actor="p1")
    engine.store.dispose()  # from here on the pool holds one connection: the refused command's, then the next's
    refused: dict[str, Callable[[], object]] = {
        "transition": lambda: engine.fire(case.id, "approve_at_station", actor="p1"),
        "permission": lambda: engine.fire(case.id, "hand_over_verification", actor="i1", data={"slip_no": "X"}),
        "stale version": lambda: engine.close(case.id, actor="p1", reason="撤回", expected_version=7),
        "no such case": lambda: engine.pause(case.id + 100, "hand_over", reason="函调", actor="p1"),
    }
    errors = {"transition": TransitionError, "permission": PermissionDeniedError, "stale version": ConflictError,
              "no such case": CaseNotFoundError}
    backends: list[int] = []

    def note(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        backends.append(dbapi_conn.info.backend_pid)

    sa.event.listen(engine.store.engine, "checkout", note)
    try:
        with tracing(engine) as trace, pytest.raises(errors[refusal]):
            refused[refusal]()
        sent = queries(trace)
        assert sent[0].startswith('"BEGIN; SELECT') and sent[-1] == '"ROLLBACK"'
        assert ready_states(trace)[-1] == "I" and "COMMIT" not in " ".join(sent)
        with engine.store.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None and raw.info.transaction_status == 0  # idle: no transaction left open
        after = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    finally:
        sa.event.remove(engine.store.engine, "checkout", note)
    assert len(set(backends)) == 1 and len(backends) == 3
    assert after.version == case.version + 1 and after.state == "verifying"
    assert [e.kind for e in engine.history(case.id)] == ["open", "fire"]
    assert engine.verify_audit(case_id=case.id) == []


def test_a_write_session_never_runs_a_statement_outside_its_transaction(engine: Engine) -> None:
    """A write session whose first statement carries no BEGIN still runs in one transaction: on PostgreSQL
    (autocommit at the driver) a BEGIN is sent before it, so what it wrote goes when the block fails."""
    with pytest.raises(RuntimeError), engine.store.session(write=True) as s:
        s.add(Person(id="x1", name="某", unit="城关派出所", roles=""))
        s.flush()
        raise RuntimeError("refused after the write")
    with engine.store.session() as s:
        assert s.get(Person, "x1") is None
    with engine.store.session(write=True) as s:
        s.add(Person(id="x2", name="某", unit="城关派出所", roles=""))
    assert engine.person("x2").unit == "城关派出所"


def test_a_statement_sent_on_the_driver_connection_first_is_inside_the_transaction_too(engine: Engine) -> None:
    """COPY and the binary array statements go to the driver directly, past the dialect events that open a
    PostgreSQL write session's transaction: ``driver_connection`` opens it for them, so a failure after
    them still leaves nothing written."""
    from caseflow.store import driver_connection

    insert = "INSERT INTO caseflow_people (id, name, unit, roles, admin) VALUES ('x3', '某', '城关派出所', '', false)"
    with pytest.raises(RuntimeError), engine.store.session(write=True) as s:
        cursor = driver_connection(s.connection()).cursor()
        cursor.execute(insert)
        cursor.close()
        raise RuntimeError("refused after the write")
    with engine.store.session() as s:
        assert s.get(Person, "x3") is None


def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced_before_the_next_command(
        engine: Engine, db_url: str) -> None:  # noqa: F811
    """A connection is pinged before use only after it sat idle (not before every command, a round trip each);
    one the server dropped meanwhile is replaced, and the command goes through."""
    if engine.store.is_sqlite:
        pytest.skip("SQLite has no server to drop a connection")
    case = engine.open("hukou_transfer", actor="p1")
    with engine.store.engine.connect() as conn:  # the pool's one connection, as the commands use it
        backend = conn.execute(sa.select(sa.func.pg_backend_pid())).scalar()
    admin = sa.create_engine(db_url)
    try:
        with admin.begin() as conn:
            assert conn.execute(sa.select(sa.func.pg_terminate_backend(backend))).scalar()
    finally:
        admin.dispose()
    engine.store.ping_after = 0.0  # it has sat idle long enough
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    assert case.state == "verifying" and engine.verify_audit(case_id=case.id) == []


def test_an_idle_scheduler_run_reads_once_and_writes_nothing(engine: Engine) -> None:
    """A sweep (and run_once's delivery) that finds nothing due sends one read: whether expiries, alerts,
    late bookings or notifications are due, and the generation counters, in one statement."""
    from caseflow.scheduler import Scheduler

    engine.open("hukou_transfer", actor="p1", data={"needs_verification": "true"})  # warned at 20:00, not now
    scheduler = Scheduler(engine.store, clock=engine.clock)
    with counting(engine) as sent:
        report = scheduler.run_once()
    assert report.sweep.alerts == 0 and report.delivery.claimed == 0
    writes = [s for s in sent if s.startswith(("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE"))]
    assert writes == []
    assert len(sent) == (2 if engine.store.is_sqlite else 1), sent  # SQLite's BEGIN is sent by us
