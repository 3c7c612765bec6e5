"""Bulk recompute at notice load: the same timers and the same events as the per-case reference.

A few thousand random open timers — every day unit, roll-forward on and off, months with both month
ends, acceptance on a rest day, capped and uncapped pauses (open and closed, some overlapping),
extensions, every alert level, escalations in working days, days and hours (and rows from before
revision 0004 without one) — first computed under one calendar, then recomputed under another.
The timers are written straight into the tables (their pauses and extensions have no events), so the
audit checks the hash chains only (``replay=False``): the chains must stay intact.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from caseflow.calendar import ZONE, WorkCalendar
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.recompute import recompute_open_timers, recompute_per_case
from caseflow.registry import WorkflowRegistry
from caseflow.store import CaseRow, Store, TimerRow
from caseflow.timing import _limit_spec
from caseflow.workflowfile import parse_workflow
from storefixtures import db_url, pg_base_url  # noqa: F401 - fixture

MIX = """
key: recompute_mix
title: 重算测试
basis: 测试
roles: {clerk: 窗口}
states:
  - {name: open, label: 办理中, initial: true}
  - {name: done, label: 办结, final: true}
transitions:
  - {trigger: finish, from: open, to: done, roles: [clerk], label: 办结}
timers:
  - name: wd
    label: 工作日
    limit: 10 working_days
    basis: 行政许可法 第八十二条
    start: {state: open}
    kind: statutory
    warn_before: 2 working_days
    escalate_after: 3 working_days
    pauses:
      补正: {charged_to: applicant}
      鉴定: {charged_to: law, cap: 5 working_days}
    extension: {tiers: [{grounds: [], max_total: 10 working_days}]}
  - name: wd_next
    label: 次一工作日起算
    limit: 3 working_days
    basis: 测试
    start: {state: open}
    kind: promised
    warn_before: 4 hours
    options: {start_day: next_workday}
  - name: wd_zero
    label: 当日
    limit: 0 working_days
    basis: 测试
    start: {state: open}
    kind: promised
  - name: days
    label: 日历日
    limit: 15 days
    basis: 民事诉讼法 第八十五条
    start: {state: open}
    kind: statutory
    warn_before: 3 days
    pauses:
      听证: {charged_to: law, cap: 10 days}
      函调: {charged_to: law}
    extension: {tiers: [{grounds: [], max_total: 30 days}]}
  - name: days_custody
    label: 在押
    limit: 7 days
    basis: 刑事诉讼法 第一百零五条
    start: {state: open}
    kind: statutory
    warn_before: 1 days
    escalate_after: 4 hours
    options: {roll_forward: false}
  - name: months
    label: 月
    limit: 2 months
    basis: 刑诉解释 第二百零二条
    start: {state: open}
    kind: statutory
    warn_before: 1 months
    options: {month_end: last_to_last}
    pauses:
      鉴定: {charged_to: law}
  - name: month
    label: 一月
    limit: 1 months
    basis: 民法典 第二百零二条
    start: {state: open}
    kind: statutory
    warn_before: 5 days
    escalate_after: 2 days
  - name: hours
    label: 小时
    limit: 24 hours
    basis: 刑事诉讼法 第八十五条
    start: {state: open}
    kind: statutory
"""

NOTICE_2027 = ("year: 2027\nsource: 测试通知\nholidays:\n"
               "  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}\n"
               "  - {name: 春节, from: 2027-02-05, to: 2027-02-13}\n"
               "  - {name: 国庆节, from: 2027-10-01, to: 2027-10-07}\n"
               "workdays:\n  - 2027-02-20\n  - 2027-10-09\n"
               "statutory_only: [清明节, 劳动节, 端午节, 中秋节]\n")
NOW = datetime(2026, 12, 30, 9, 0, tzinfo=ZONE)
ALERT_LEVELS = (None, None, None, "warning", "overdue", "escalated")


def _random_instant(rng: random.Random, low: datetime, high: datetime) -> datetime:
    span = int((high - low).total_seconds())
    return (low + timedelta(seconds=rng.randrange(span))).astimezone(UTC)


def _pauses(rng: random.Random, tdef_pauses: list[str], start: datetime) -> tuple[list[dict[str, Any]], bool]:
    """A random pause ledger after ``start``; True when its last pause is still open."""
    if not tdef_pauses or rng.random() < 0.4:
        return [], False
    ledger, at, is_open = [], start, False
    for _ in range(rng.randint(1, 3)):
        at = at + timedelta(hours=rng.randint(0, 24 * 20))
        end = at + timedelta(hours=rng.randint(1, 24 * 25))
        if rng.random() < 0.15:  # overlapping ledgers happen after manual repairs; merge them alike
            at -= timedelta(days=rng.randint(1, 5))
        is_open = rng.random() < 0.25
        ledger.append({"reason": rng.choice(tdef_pauses), "from": at.isoformat(),
                       "to": None if is_open else end.isoformat(), "charged_to": "law", "actor": "c1"})
        if is_open:
            break
        at = end
    return ledger, is_open


def build(url: str, n_cases: int, calendar: WorkCalendar, seed: int) -> Engine:
    """``n_cases`` open cases of recompute_mix with random timers, computed under ``calendar``.

    The timers are written directly (no command starts them), so the audit here checks the hash chains
    (``replay=False``): replaying the chains through the definition would rightly find timers no event made.
    """
    registry = WorkflowRegistry.load()
    defn = registry.add(parse_workflow(MIX, path="recompute_mix.yaml"))
    engine = Engine(Store(url), registry=registry, calendar=calendar, clock=FixedClock(NOW))
    engine.add_person("c1", name="窗口一", unit="城关派出所", roles=["clerk"])
    engine.open("recompute_mix", actor="c1")  # pins the definition's version
    rng = random.Random(seed)
    low, high = datetime(2004, 1, 1, tzinfo=ZONE), datetime(2027, 1, 10, tzinfo=ZONE)
    with engine.store.session(write=True) as s:
        for i in range(n_cases):
            opened = _random_instant(rng, low, high)
            case = CaseRow(id=i + 2, workflow_key=defn.key, workflow_version=defn.version, state="open", version=1,
                           responsible_id="c1", unit="城关派出所", opened_by="c1", opened_at=opened,
                           updated_at=opened, data="{}")
            s.add(case)
            engine._append_event(s, case, "open", opened, "c1", {"data": {}}, trigger=None, from_state=None,
                                 to_state="open")
            for tdef in defn.timers:
                if rng.random() < 0.2:
                    continue
                started = opened if rng.random() < 0.7 else _random_instant(rng, low, high)
                pauses, is_open = _pauses(rng, list(tdef.pauses), started)
                extensions = []
                if tdef.extension is not None and rng.random() < 0.3:
                    extensions = [{"amount": rng.randint(1, 5), "grounds": "复杂", "approver": "c1",
                                   "at": started.isoformat()} for _ in range(rng.randint(1, 2))]
                row = TimerRow(case_id=case.id, name=tdef.name, round=1, status="paused" if is_open else "running",
                               kind=tdef.kind, limit_spec=_limit_spec(tdef.limit), started_at=started,
                               pauses=json.dumps(pauses), extensions=json.dumps(extensions),
                               alert_level=rng.choice(ALERT_LEVELS))
                engine._apply_due(row, tdef, calendar)
                row.original_due_at = row.due_at
                if rng.random() < 0.05:  # a stale or hand-edited answer the recompute must repair
                    row.due_at = None if row.due_at is None else row.due_at + timedelta(days=1)
                if rng.random() < 0.05:  # a row from before revision 0004: the scheduler's escalate_after
                    row.escalate_at = None
                s.add(row)
    return engine


def snapshot(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Timers, cases and events as comparable tuples (the record instant of an event aside)."""
    with engine.store.engine.connect() as conn:
        timers = conn.execute(sa.text(
            "SELECT id, case_id, name, status, due_at, last_day, warn_at, provisional, next_alert_at, alert_level, "
            "escalate_at "
            "FROM caseflow_timers ORDER BY id")).all()
        cases = conn.execute(sa.text(
            "SELECT id, version, updated_at, last_event_at FROM caseflow_cases ORDER BY id")).all()
        events = conn.execute(sa.text(
            "SELECT case_id, seq, kind, at, actor, trigger, from_state, to_state, data, prev_hash IS NOT NULL "
            "FROM caseflow_events ORDER BY case_id, seq")).all()
    return [tuple(r) for r in timers], [tuple(r) for r in cases], [tuple(r) for r in events]


@pytest.fixture(scope="module")
def calendars(tmp_path_factory: pytest.TempPathFactory) -> tuple[WorkCalendar, WorkCalendar]:
    notices = tmp_path_factory.mktemp("notices")
    (notices / "2027.yaml").write_text(NOTICE_2027, encoding="utf-8")
    # Before: no chinese-calendar data (every year but the shipped ones projected); after: all of it.
    return WorkCalendar.load(include_chinese_calendar=False), WorkCalendar.load([notices])


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh, empty databases of one kind: SQLite files, or PostgreSQL schemas of their own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bulk.db'}", f"sqlite:///{tmp_path / 'reference.db'}"
        return
    base = pg_base_url()
    assert base is not None
    schemas = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    try:
        yield tuple(f"{base}{sep}options=-csearch_path%3D{schema}" for schema in schemas)  # type: ignore[misc]
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_bulk_and_per_case_recompute_write_the_same_timers_and_events(
    two_databases: tuple[str, str], calendars: tuple[WorkCalendar, WorkCalendar]
) -> None:
    """On SQLite and PostgreSQL: every timer, case row and event as the per-case reference writes them."""
    before, after = calendars
    bulk = build(two_databases[0], 2000, before, seed=11)
    reference = build(two_databases[1], 2000, before, seed=11)
    assert snapshot(bulk) == snapshot(reference)

    streamed: list[dict[str, Any]] = []
    summary = recompute_open_timers(bulk, after, source="2027.yaml", actor="admin", on_move=streamed.append,
                                    chunk_size=333)
    expected: list[dict[str, Any]] = []
    ref_summary = recompute_per_case(reference, after, source="2027.yaml", actor="admin", on_move=expected.append)

    assert summary.moved > 1000 and summary.events > 500  # the test exercises what it claims
    assert (summary.timers, summary.timers_written, summary.moved, summary.events) == (
        ref_summary.timers, ref_summary.timers_written, ref_summary.moved, ref_summary.events)
    assert streamed == expected
    assert snapshot(bulk) == snapshot(reference)
    assert bulk.verify_audit(replay=False) == [] and reference.verify_audit(replay=False) == []
    assert bulk.calendar is after
    bulk.store.dispose()
    reference.store.dispose()


def test_a_second_run_finds_nothing_to_move(db_url: str, calendars: tuple[WorkCalendar, WorkCalendar]) -> None:  # noqa: F811
    """On SQLite and PostgreSQL: after the bulk run the per-case reference agrees with every timer."""
    before, after = calendars
    engine = build(db_url, 300, before, seed=5)
    first = recompute_open_timers(engine, after, source="2027.yaml", chunk_size=64)
    assert first.moved > 0 and first.chunks == 5
    state = snapshot(engine)
    again = recompute_per_case(engine, after, source="2027.yaml")
    assert (again.moved, again.timers_written, again.events) == (0, 0, 0)
    assert recompute_open_timers(engine, after, source="2027.yaml").moved == 0
    assert snapshot(engine) == state
    assert engine.verify_audit(replay=False) == []
    engine.store.dispose()


def test_an_interrupted_run_resumes_without_repeating_an_event(
    tmp_path: Path, calendars: tuple[WorkCalendar, WorkCalendar]
) -> None:
    before, after = calendars
    engine = build(f"sqlite:///{tmp_path / 'c.db'}", 400, before, seed=3)
    reference = build(f"sqlite:///{tmp_path / 'r.db'}", 400, before, seed=3)
    seen = 0

    def crash(_move: dict[str, Any]) -> None:
        nonlocal seen
        seen += 1
        if seen == 50:
            raise KeyboardInterrupt  # the operator's Ctrl-C after some chunks committed

    with pytest.raises(KeyboardInterrupt):
        recompute_open_timers(engine, after, source="2027.yaml", on_move=crash, chunk_size=50)
    recompute_open_timers(engine, after, source="2027.yaml")
    recompute_per_case(reference, after, source="2027.yaml")
    assert snapshot(engine) == snapshot(reference)
    assert engine.verify_audit(replay=False) == []


def test_reload_calendar_streams_the_report(tmp_path: Path, calendars: tuple[WorkCalendar, WorkCalendar]) -> None:
    before, after = calendars
    engine = build(f"sqlite:///{tmp_path / 's.db'}", 50, before, seed=8)
    streamed: list[dict[str, Any]] = []
    assert engine.reload_calendar(after, source="x", on_move=streamed.append) == []
    assert streamed and {"case", "timer", "from", "to", "provisional", "source", "message"} <= set(streamed[0])
