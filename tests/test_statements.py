"""How many statements one command sends to the database (issue 11: lean commands).

A command holds its case and reads what it needs in one statement (two on PostgreSQL: the row lock, then
the timers, people, generation counters and idempotency record in one go), and writes everything in one
statement on PostgreSQL (one per table touched on SQLite, where a statement costs no round trip). These
counts are pinned so that a change adding a query to the command path shows here; they are counts, not
timings. BEGIN and COMMIT are not counted (SQLite's ``BEGIN IMMEDIATE`` is: it is a statement we send).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import CaseView, Engine
from caseflow.store import Store
from storefixtures import db_url  # noqa: F401 - fixture


@pytest.fixture
def engine(db_url: str) -> Engine:  # noqa: F811
    e = Engine(Store(db_url), clock=FixedClock(datetime(2026, 9, 30, 9, 0, tzinfo=ZONE)))
    e.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader", "leader"])
    e.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1")
    e.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], leader="l1", substitute="p2")
    e.add_person("i1", name="赵侦查", unit="刑侦大队", roles=["investigator"], leader="l1")
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


def statements(engine: Engine, command: Callable[[], CaseView]) -> int:
    with counting(engine) as sent:
        command()
    return len(sent)


# (SQLite, PostgreSQL) statements for each command below.
EXPECTED = {
    "open": (5, 3),
    "fire": (7, 4),
    "pause": (5, 3),
    "resume": (5, 3),
    "extend": (5, 3),
    "open with a key": (6, 3),
    "the same open again": (2, 2),
}


def test_each_command_sends_a_fixed_few_statements(engine: Engine) -> None:
    dialect = 0 if engine.store.is_sqlite else 1
    for workflow, actor in (("hukou_transfer", "p1"), ("criminal_detention", "i1")):
        engine.open(workflow, actor=actor)  # each definition is stored once per process, before its first case
    counts: dict[str, int] = {}
    opened: list[CaseView] = []
    counts["open"] = statements(engine, lambda: opened.append(engine.open("hukou_transfer", actor="p1")) or opened[-1])
    case = opened[-1]
    # The verification step goes to the unit's only community police officer: one more read, of the unit.
    counts["fire"] = statements(engine, lambda: engine.fire(case.id, "hand_over_verification", actor="p1",
                                                            data={"slip_no": "JB-1"}))
    counts["pause"] = statements(engine, lambda: engine.pause(case.id, "verification", reason="函调", actor="p2"))
    counts["resume"] = statements(engine, lambda: engine.resume(case.id, "verification", actor="p2"))
    custody = engine.open("criminal_detention", actor="i1", data={"suspect": "某甲"})
    counts["extend"] = statements(engine, lambda: engine.extend(custody.id, "arrest_request", by="4 days",
                                                                grounds="特殊情况", actor="l1"))
    counts["open with a key"] = statements(engine, lambda: engine.open("hukou_transfer", actor="p1", key="k-1"))
    counts["the same open again"] = statements(engine, lambda: engine.open("hukou_transfer", actor="p1", key="k-1"))
    assert counts == {name: pair[dialect] for name, pair in EXPECTED.items()}
    if dialect == 1:  # issue 11: at most 4 round trips per command on PostgreSQL, BEGIN and COMMIT aside
        assert max(counts.values()) <= 4


def test_opening_inserts_the_case_once_complete(engine: Engine) -> None:
    with counting(engine) as sent:
        case = engine.open("hukou_transfer", actor="p1")
    case_writes = [s for s in sent if "INSERT INTO caseflow_cases" in s or "UPDATE caseflow_cases" in s]
    assert len(case_writes) == 1 and "UPDATE caseflow_cases" not in case_writes[0]
    assert engine.verify_audit(case_id=case.id) == []


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
