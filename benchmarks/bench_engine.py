"""Engine throughput and memory, on SQLite and PostgreSQL.

Prints, for each database, with its method:

- time per command of ``Engine.open`` + ``Engine.fire`` (hukou_transfer: open, hand_over_verification)
  against plain SQLAlchemy Core doing the same reads and writes in the same transactions, measured
  interleaved: R repetitions, each running both sides (the order alternating) over the same number of
  cases; min and median per command for each side, and engine/plain from the medians (issue 11's
  target: >= 0.8). Plain Core: open = read the person, INSERT the case RETURNING its id, INSERT both
  timers, INSERT the event; fire = read the case, the person and the timers, UPDATE the case (version
  guard), UPDATE the timers, INSERT the new timer and the event; one transaction each. It checks no rule,
  computes no deadline or hash, and takes neither the case's row lock nor the notices' advisory lock
  and generation read that the engine's commands also do;
- round trips per command for both sides on PostgreSQL, BEGIN and COMMIT included (the ``ReadyForQuery``
  messages in libpq's protocol trace: one ends each exchange; issue 11's target: <= 4); on SQLite, which
  has no round trips, the statements sent besides BEGIN (SQLAlchemy's ``before_cursor_execute``);
- the process's peak RSS (``ru_maxrss``, never current RSS after a collection) before and after N
  ``open`` commands on N distinct cases.

    python benchmarks/bench_engine.py [--commands 100000] [--rate-cases 2000] [--pg URL] [--skip-pg]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.registry import WorkflowRegistry
from caseflow.store import CaseRow, EventRow, Person, Store, TimerRow, WorkflowVersion

T0 = datetime(2026, 10, 12, 9, 0, tzinfo=ZONE)


def make_engine(url: str) -> Engine:
    engine = Engine(Store(url), clock=FixedClock(T0), registry=WorkflowRegistry.load())
    engine.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], replace=True)
    return engine


def engine_rate(engine: Engine, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        case = engine.open("hukou_transfer", actor="p1", data={"no": i})
        engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": f"JB-{i}"})
    return 2 * n / (time.perf_counter() - start)


def plain_rate(store: Store, n: int) -> float:
    """The same reads and writes with SQLAlchemy Core, one transaction per command, no rules checked.

    Like the engine it reads the acting person (whose roles a command needs) and keeps the head of
    the event chain on the case row.
    """
    cases, timers, events = CaseRow.__table__, TimerRow.__table__, EventRow.__table__  # type: ignore[attr-defined]
    people = Person.__table__  # type: ignore[attr-defined]
    version = json.dumps({"amount": 0, "unit": "working_days"})
    registry = WorkflowRegistry.load().latest("hukou_transfer")
    with store.session(write=True) as s:
        if s.get(WorkflowVersion, registry.version) is None:
            s.add(WorkflowVersion(version=registry.version, key=registry.key, title=registry.title,
                                  text=registry.text, loaded_at=T0))
    writer = store.engine.execution_options(caseflow_write=True)
    due = T0 + timedelta(days=2)

    def digest(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()

    start = time.perf_counter()
    for i in range(n):
        with writer.begin() as conn:
            conn.execute(sa.select(people).where(people.c.id == "p1")).one()
            case_id = conn.execute(cases.insert().values(
                workflow_key="hukou_transfer", workflow_version=registry.version, state="accepted", version=1,
                responsible_id="p1", unit="城关派出所", opened_by="p1", opened_at=T0, updated_at=T0,
                data=json.dumps({"no": i}), last_event_hash=digest(str(i)), last_event_at=T0,
            ).returning(cases.c.id)).scalar_one()
            conn.execute(timers.insert(), [
                {"case_id": case_id, "name": name, "round": 1, "status": "running", "kind": "promised",
                 "limit_spec": version, "started_at": T0, "pauses": "[]", "extensions": "[]", "due_at": due,
                 "provisional": False, "next_alert_at": due} for name in ("hand_over", "submit_complete")])
            conn.execute(events.insert().values(case_id=case_id, seq=1, kind="open", at=T0, recorded_at=T0,
                                                actor="p1", data="{}", prev_hash="0" * 64, hash=digest(str(i))))
        with writer.begin() as conn:
            row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).one()
            conn.execute(sa.select(people).where(people.c.id == "p1")).one()
            conn.execute(sa.select(timers).where(timers.c.case_id == case_id)).all()
            prev = row.last_event_hash
            conn.execute(cases.update().where(cases.c.id == case_id, cases.c.version == row.version)
                         .values(state="verifying", version=row.version + 1, updated_at=T0,
                                 last_event_hash=digest(prev), last_event_at=T0))
            conn.execute(timers.update().where(timers.c.case_id == case_id)
                         .values(status="met", stopped_at=T0, next_alert_at=None))
            conn.execute(timers.insert().values(case_id=case_id, name="verification", round=1, status="running",
                                                kind="promised", limit_spec=version, started_at=T0, pauses="[]",
                                                extensions="[]", due_at=due, provisional=False, next_alert_at=due))
            conn.execute(events.insert().values(case_id=case_id, seq=2, kind="fire", at=T0, recorded_at=T0,
                                                actor="p1", data="{}", prev_hash=prev, hash=digest(prev)))
    return 2 * n / (time.perf_counter() - start)


def open_rate(engine: Engine, n: int) -> float:
    """``open`` commands per second over ``n`` distinct cases (peak RSS is read around it)."""
    for i in range(200):  # warm caches, pools, the Machine
        engine.open("hukou_transfer", actor="p1", data={"warm": i})
    start = time.perf_counter()
    for i in range(n):
        engine.open("hukou_transfer", actor="p1", data={"no": i})
    return n / (time.perf_counter() - start)


def round_trips(engine: Engine, n: int) -> tuple[float, float]:
    """Round trips (PostgreSQL: ReadyForQuery messages traced, BEGIN and COMMIT included) or statements
    (SQLite: ``before_cursor_execute``, BEGIN aside) per command, of the engine and of plain Core."""
    count = [0]
    bind = engine.store.engine

    def statement(_conn: object, _cursor: object, text: str, *_args: object) -> None:
        if not text.startswith("BEGIN"):
            count[0] += 1

    def counted(run: Callable[[], object]) -> float:
        count[0] = 0
        if engine.store.is_sqlite:
            sa.event.listen(bind, "before_cursor_execute", statement)
            try:
                run()
            finally:
                sa.event.remove(bind, "before_cursor_execute", statement)
            return count[0] / (2 * n)
        with tempfile.TemporaryFile() as trace:

            def start(dbapi_conn: Any, *_args: object) -> None:
                dbapi_conn.pgconn.trace(trace.fileno())

            def stop(dbapi_conn: Any, *_args: object) -> None:
                if dbapi_conn is not None:
                    dbapi_conn.pgconn.untrace()

            sa.event.listen(bind, "checkout", start, insert=True)
            sa.event.listen(bind, "checkin", stop)
            try:
                run()
            finally:
                sa.event.remove(bind, "checkout", start)
                sa.event.remove(bind, "checkin", stop)
            trace.seek(0)
            return trace.read().count(b"\tB\t5\tReadyForQuery") / (2 * n)

    return counted(lambda: engine_rate(engine, n)), counted(lambda: plain_rate(engine.store, n))


def run(label: str, url: str, args: argparse.Namespace, report: list[str]) -> None:
    engine = make_engine(url)
    engine_rate(engine, 50)  # warm-up
    plain_rate(engine.store, 50)
    per_pass = max(1, args.rate_cases // args.repeats)
    ours_ms: list[float] = []
    plain_ms: list[float] = []
    for rep in range(args.repeats):  # interleaved, the order alternating
        sides = [("engine", engine_rate), ("plain", plain_rate)]
        for name, fn in sides if rep % 2 == 0 else sides[::-1]:
            rate = fn(engine if name == "engine" else engine.store, per_pass)  # type: ignore[arg-type]
            (ours_ms if name == "engine" else plain_ms).append(1000 / rate)
    trips_ours, trips_plain = round_trips(engine, 20)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    opens = open_rate(engine, args.commands)
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med_ours, med_plain = statistics.median(ours_ms), statistics.median(plain_ms)
    report.append(f"| {label:<10} | {min(ours_ms):6.2f} / {med_ours:6.2f} | {min(plain_ms):6.2f} / {med_plain:6.2f} | "
                  f"{med_plain / med_ours:>6.2f} | {trips_ours:5.1f} / {trips_plain:4.1f} | {args.commands:>9,} | "
                  f"{opens:>8,.0f} | {peak_before:>7.1f} | {peak_after:>7.1f} |")
    engine.store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=100_000, help="open commands for the memory test")
    parser.add_argument("--rate-cases", type=int, default=2_000, help="cases (x2 commands) for the rate test")
    parser.add_argument("--pg", default=os.environ.get("CASEFLOW_BENCH_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--repeats", type=int, default=6, help="interleaved repetitions of the rate test")
    args = parser.parse_args()
    print(__doc__.split("\n\n    python")[0])
    print(f"\n{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (shared machine)")
    report = [
        "| database   | engine ms/cmd min / median | plain ms/cmd min / median | engine/plain "
        "| round trips (PostgreSQL) or statements (SQLite) engine / plain |  commands |  opens/s "
        "| peak RSS before MB | peak RSS after MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args, report)
    if not args.skip_pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        try:
            sep = "&" if "?" in args.pg else "?"
            run("postgresql", f"{args.pg}{sep}options={quote(f'-csearch_path={schema}')}", args, report)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    print(f"caseflow engine benchmark ({datetime.now(UTC):%Y-%m-%d}); load average at end {os.getloadavg()[0]:.1f}")
    print("\n".join(report))


if __name__ == "__main__":
    main()
