"""The scheduler: working-day trigger, the alert sweep, exactly-once alerts across restarts and processes.

Test data goes straight into the store (never a mock); every test gets a fresh SQLite file, and the
PostgreSQL tests a fresh schema. The helpers here are shared with the other scheduler-side tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time as _time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import pytest
import sqlalchemy as sa
import time_machine
from click.testing import CliRunner

from caseflow.alert_levels import plan_levels
from caseflow.alerts import ALERTS, OUTBOX, TIMERS, AlertRow, OutboxRow
from caseflow.calendar import default_calendar
from caseflow.cli import cli
from caseflow.config import NotifyConfig
from caseflow.scheduler import Scheduler, escalation_instant
from caseflow.store import Absence, CaseRow, Person, Store, TimerRow, WorkflowVersion, normalize_url
from caseflow.timelimits import TimeLimit
from caseflow.workday_trigger import WorkingDayTrigger

BJ = ZoneInfo("Asia/Shanghai")
UNIT = "城关派出所"
EAST = "东城派出所"
WEST = "西城派出所"
PG_HINT = "set CASEFLOW_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test to run"


def bj(*parts: int) -> datetime:
    """An aware Beijing-time instant."""
    return datetime(*parts, tzinfo=BJ)  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ helpers


class Recorder:
    """A notifier that keeps what it is given (thread-safe), optionally failing for some recipients."""

    name = "rec"

    def __init__(self, fail_for: set[str] | None = None) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail_for = fail_for or set()
        self.lock = threading.Lock()

    def send(self, *, to: str, subject: str, body: str) -> None:
        if to in self.fail_for:
            raise RuntimeError(f"channel down for {to}")
        with self.lock:
            self.sent.append((to, subject, body))


def rec_config(**scheduler: Any) -> NotifyConfig:
    """A configuration sending everything to the channel "rec" (overridden by a Recorder)."""
    return NotifyConfig.from_dict({"channels": {"rec": {"url": "log://"}},
                                   "scheduler": {"default_channel": "rec", **scheduler}})


def seed_people(store: Store) -> None:
    """Two leaders, clerks with AB岗 substitutes, three units (wang leads 城关 and 东城's clerk)."""
    with store.session(write=True) as s:
        s.add_all([
            Person(id="wang", name="王所长", unit=UNIT, roles="leader", substitute_id="liu"),
            Person(id="liu", name="刘教导员", unit=UNIT, roles="leader"),
            Person(id="zhang", name="张警官", unit=UNIT, roles="clerk", leader_id="wang", substitute_id="li"),
            Person(id="li", name="李警官", unit=UNIT, roles="clerk", leader_id="wang", substitute_id="zhang"),
            Person(id="chen", name="陈警官", unit=EAST, roles="clerk", leader_id="wang"),
            Person(id="zhao", name="赵所长", unit=WEST, roles="leader"),
            Person(id="sun", name="孙警官", unit=WEST, roles="clerk", leader_id="zhao"),
        ])
        s.add(WorkflowVersion(version="hukou-v1", key="hukou", title="户口迁移", text="{}",
                              loaded_at=bj(2026, 1, 1)))
        s.add(WorkflowVersion(version="detain-v1", key="detention", title="刑事拘留", text="{}",
                              loaded_at=bj(2026, 1, 1)))


def add_case(store: Store, *, responsible: str = "zhang", unit: str = UNIT, workflow: str = "hukou",
             state: str = "核查", data: dict[str, Any] | None = None, opened_at: datetime | None = None,
             closed_at: datetime | None = None) -> int:
    """Insert a case row; return its id."""
    opened = opened_at or bj(2026, 10, 28, 9)
    with store.session(write=True) as s:
        row = CaseRow(workflow_key=workflow, workflow_version=f"{'detain' if workflow == 'detention' else 'hukou'}-v1",
                      state=state, version=1, responsible_id=responsible, unit=unit, opened_by=responsible,
                      opened_at=opened, updated_at=opened, closed_at=closed_at,
                      data=json.dumps(data or {}, ensure_ascii=False))
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def add_timer(store: Store, case_id: int, *, due_at: datetime, name: str = "社区民警核查",
              warn_at: datetime | None = None, status: str = "running", alert_level: str | None = None,
              started_at: datetime | None = None, limit: dict[str, Any] | None = None,
              last_day: date | None = None, stopped_at: datetime | None = None,
              pauses: list[dict[str, Any]] | None = None, round_: int = 1) -> int:
    """Insert a timer row following the engine's contract for next_alert_at; return its id."""
    if status != "running":
        next_alert = None
    elif alert_level is None and warn_at is not None:
        next_alert = warn_at
    elif alert_level in (None, "warning"):
        next_alert = due_at
    else:
        next_alert = None if alert_level == "escalated" else due_at
    with store.session(write=True) as s:
        row = TimerRow(case_id=case_id, name=name, round=round_, status=status,
                       limit_spec=json.dumps(limit or {"amount": 3, "unit": "working_days"}),
                       started_at=started_at or bj(2026, 10, 28, 9), pauses=json.dumps(pauses or []),
                       due_at=due_at, warn_at=warn_at, last_day=last_day, stopped_at=stopped_at,
                       next_alert_at=next_alert, alert_level=alert_level)
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def alerts_of(store: Store) -> list[AlertRow]:
    with store.session() as s:
        return list(s.execute(sa.select(AlertRow).order_by(ALERTS.c.id)).scalars())


def outbox_of(store: Store) -> list[OutboxRow]:
    with store.session() as s:
        return list(s.execute(sa.select(OutboxRow).order_by(OUTBOX.c.id)).scalars())


def timer(store: Store, timer_id: int) -> TimerRow:
    with store.session() as s:
        found = s.get(TimerRow, timer_id)
        assert found is not None
        return found


def fresh_store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite file with people and workflow versions (the body of each module's store fixture)."""
    st = Store(f"sqlite:///{tmp_path / 'caseflow.db'}")
    seed_people(st)
    yield st
    st.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store with people and workflow versions."""
    yield from fresh_store(tmp_path)


@pytest.fixture
def pg_stores() -> Iterator[Callable[[], Store]]:
    """Store objects on one fresh PostgreSQL schema (skipped without CASEFLOW_TEST_PG_URL)."""
    url = os.environ.get("CASEFLOW_TEST_PG_URL")
    required = os.environ.get("CASEFLOW_TEST_PG_REQUIRED") == "1"
    if not url:
        if required:
            pytest.fail("CASEFLOW_TEST_PG_REQUIRED=1 but CASEFLOW_TEST_PG_URL is not set; " + PG_HINT)
        pytest.skip(PG_HINT)
    url = normalize_url(url)
    schema = f"cf_sched_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        where = sa.engine.make_url(url).render_as_string(hide_password=True)
        message = f"PostgreSQL at {where} unreachable: {exc.orig}"
        if required:
            pytest.fail(message)
        pytest.skip(f"{message}; {PG_HINT}")
    schema_url = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    made: list[Store] = []

    def make() -> Store:
        st = Store(schema_url)
        made.append(st)
        return st

    try:
        yield make
    finally:
        for st in made:
            st.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# ------------------------------------------------------------------------------------------ trigger


def test_working_day_trigger_across_spring_festival_2026() -> None:
    trigger = WorkingDayTrigger(8, 30, default_calendar(), "Asia/Shanghai")
    fired = []
    previous = None
    now = bj(2026, 2, 12, 9, 0)  # Thursday, after 08:30: the next firing is Friday's
    for _ in range(9):
        nxt = trigger.get_next_fire_time(previous, now)
        assert nxt is not None
        fired.append(nxt)
        previous = now = nxt
    assert [f.date().isoformat() for f in fired] == [
        "2026-02-13",  # Friday
        "2026-02-14",  # Saturday, make-up working day (调休上班)
        "2026-02-24",  # 02-15..02-23 rest (春节) skipped
        "2026-02-25", "2026-02-26", "2026-02-27",
        "2026-02-28",  # Saturday, make-up working day
        "2026-03-02",  # Sunday 03-01 skipped
        "2026-03-03",
    ]
    assert all((f.hour, f.minute) == (8, 30) and f.utcoffset() == timedelta(hours=8) for f in fired)
    # Exactly at the firing instant it fires now; a second later it waits for the next working day.
    assert trigger.get_next_fire_time(None, bj(2026, 2, 14, 8, 30)) == bj(2026, 2, 14, 8, 30)
    assert trigger.get_next_fire_time(None, bj(2026, 2, 14, 8, 30, 1)) == bj(2026, 2, 24, 8, 30)
    assert trigger.last_fire_time(bj(2026, 2, 20, 12)) == bj(2026, 2, 14, 8, 30)


def test_first_working_day_trigger() -> None:
    trigger = WorkingDayTrigger(9, 0, default_calendar(), "Asia/Shanghai", first_of_month=True)
    # 2026-01-01..03 rest, 01-04 a make-up Sunday; October: 10-01..10-07 National Day rest.
    assert trigger.get_next_fire_time(None, bj(2025, 12, 15)) == bj(2026, 1, 4, 9)
    assert trigger.get_next_fire_time(None, bj(2026, 9, 2)) == bj(2026, 10, 8, 9)
    assert trigger.get_next_fire_time(bj(2026, 2, 2, 9), bj(2026, 2, 2, 9)) == bj(2026, 3, 2, 9)
    assert trigger.last_fire_time(bj(2026, 10, 20)) == bj(2026, 10, 8, 9)


def test_apscheduler_runs_the_digest_job_on_a_make_up_saturday(store: Store) -> None:
    """A real BackgroundScheduler, the clock travelled to 2026-02-14 (调休 Saturday) 08:29:59."""
    # Opened and started before the digest's instant: a digest shows things as they stood then.
    case = add_case(store, responsible="zhang", opened_at=bj(2026, 2, 9, 9))
    add_timer(store, case, due_at=bj(2026, 2, 13, 0, 0), started_at=bj(2026, 2, 9, 9))
    recorder = Recorder()
    config = rec_config(sweep_seconds=3600, deliver_seconds=0.2)
    with time_machine.travel(bj(2026, 2, 14, 8, 29, 59, 500000), tick=True):
        scheduler = Scheduler(store, config, notifiers={"rec": recorder})
        aps = scheduler.start(background=True)
        try:
            assert {j.id for j in aps.get_jobs()} == {"caseflow-sweep", "caseflow-deliver", "caseflow-digest",
                                                     "caseflow-monthly-report"}
            assert aps.get_job("caseflow-digest").next_run_time == bj(2026, 2, 14, 8, 30)
            deadline = _time.monotonic() + 10
            while _time.monotonic() < deadline and not any("日报" in s for _, s, _b in recorder.sent):
                _time.sleep(0.05)
        finally:
            scheduler.shutdown()
    digests = [m for m in recorder.sent if "日报" in m[1]]
    assert len(digests) == 1 and digests[0][0] == "wang"
    assert "2026-02-14" in digests[0][1]


# ------------------------------------------------------------------------------------------- levels


def test_escalation_is_the_due_instant_moved_by_working_days() -> None:
    cal = default_calendar()
    one = TimeLimit(1, "working_days")
    # Last day Tuesday 11-03 (due 11-04 00:00): escalates at the end of Wednesday.
    assert escalation_instant(bj(2026, 11, 4), one, cal) == bj(2026, 11, 5)
    # Last day Friday 11-06: escalates at the end of Monday 11-09, not at Monday 00:00.
    assert escalation_instant(bj(2026, 11, 7), one, cal) == bj(2026, 11, 10)
    # Last day Friday 02-13: the next working day is the make-up Saturday 02-14.
    assert escalation_instant(bj(2026, 2, 14), one, cal) == bj(2026, 2, 15)
    # Last day Saturday 02-14: Spring Festival follows, the next working day is 02-24.
    assert escalation_instant(bj(2026, 2, 15), one, cal) == bj(2026, 2, 25)
    # An hour limit keeps its time of day.
    assert escalation_instant(bj(2026, 2, 13, 14, 0), one, cal) == bj(2026, 2, 14, 14, 0)
    assert escalation_instant(bj(2026, 2, 13, 14, 0), TimeLimit(24, "hours"), cal) == bj(2026, 2, 14, 14, 0)


def test_plan_levels_raises_each_missed_level_once() -> None:
    due, warn, esc = bj(2026, 11, 4), bj(2026, 11, 3), bj(2026, 11, 5)
    plan = plan_levels(now=bj(2026, 11, 2), due_at=due, warn_at=warn, alert_level=None, escalate_at=esc)
    assert plan.raise_now == () and plan.next_at == warn
    plan = plan_levels(now=bj(2026, 11, 9), due_at=due, warn_at=warn, alert_level=None, escalate_at=esc)
    assert [lv for lv, _ in plan.raise_now] == ["warning", "overdue", "escalated"]
    assert plan.level == "escalated" and plan.next_at is None
    plan = plan_levels(now=bj(2026, 11, 4, 1), due_at=due, warn_at=warn, alert_level="warning", escalate_at=esc)
    assert [lv for lv, _ in plan.raise_now] == ["overdue"] and plan.next_at == esc
    # No warning instant: the first level is overdue.
    plan = plan_levels(now=bj(2026, 11, 3), due_at=due, warn_at=None, alert_level=None, escalate_at=esc)
    assert plan.raise_now == () and plan.next_at == due


# -------------------------------------------------------------------------------------------- sweep


def test_sweep_raises_warning_overdue_and_escalation_once_each(store: Store) -> None:
    case = add_case(store, responsible="zhang")
    tid = add_timer(store, case, warn_at=bj(2026, 11, 3, 9), due_at=bj(2026, 11, 4))
    scheduler = Scheduler(store, rec_config())

    assert scheduler.sweep(bj(2026, 11, 3, 8, 59)).alerts == 0
    report = scheduler.sweep(bj(2026, 11, 3, 9, 0, 30))
    assert dict(report.raised) == {"warning": 1}
    assert timer(store, tid).alert_level == "warning"
    assert timer(store, tid).next_alert_at == bj(2026, 11, 4)
    assert scheduler.sweep(bj(2026, 11, 3, 12)).alerts == 0  # nothing new: no second warning

    assert dict(scheduler.sweep(bj(2026, 11, 4, 0, 0, 30)).raised) == {"overdue": 1}
    assert timer(store, tid).next_alert_at == bj(2026, 11, 5)
    assert dict(scheduler.sweep(bj(2026, 11, 5, 0, 1)).raised) == {"escalated": 1}
    assert timer(store, tid).next_alert_at is None and timer(store, tid).alert_level == "escalated"
    assert scheduler.sweep(bj(2026, 11, 20)).alerts == 0

    alerts = alerts_of(store)
    assert [(a.level, a.to_person) for a in alerts] == [("warning", "zhang"), ("overdue", "zhang"),
                                                        ("escalated", "wang")]
    assert all(a.due_at == bj(2026, 11, 4) and a.unit == UNIT and a.case_id == case for a in alerts)
    outbox = outbox_of(store)
    assert [(o.kind, o.recipient, o.alert_id) for o in outbox] == [("alert", a.to_person, a.id) for a in alerts]
    # One way to write a day limit (issue 10): 24:00 of its last day, with the weekday.
    assert "超期督办" in outbox[2].subject and "期满 2026-11-03（周二）24:00" in outbox[2].subject


def test_downtime_sweep_records_every_missed_level_and_sends_only_the_highest(store: Store) -> None:
    # Issue 8: a catch-up used to send a 临期预警 and a 已超期 for the same timer together.
    case = add_case(store)
    tid = add_timer(store, case, warn_at=bj(2026, 11, 3, 9), due_at=bj(2026, 11, 4))
    report = Scheduler(store, rec_config()).sweep(bj(2026, 11, 12, 10))
    assert dict(report.raised) == {"warning": 1, "overdue": 1, "escalated": 1}
    assert report.queued == 1 and report.superseded == 2
    assert [a.level for a in alerts_of(store)] == ["warning", "overdue", "escalated"]
    assert [(o.recipient, "超期督办" in o.subject) for o in outbox_of(store)] == [("wang", True)]
    assert timer(store, tid).next_alert_at is None


def test_paused_and_finished_timers_raise_nothing(store: Store) -> None:
    case = add_case(store)
    add_timer(store, case, name="paused", due_at=bj(2026, 11, 4), status="paused")
    add_timer(store, case, name="met", due_at=bj(2026, 11, 4), status="met")
    # A paused timer whose next_alert_at was left behind (contract broken) is still skipped.
    stale = add_timer(store, case, name="stale", due_at=bj(2026, 11, 4))
    with store.session(write=True) as s:
        s.execute(sa.update(TIMERS).where(TIMERS.c.id == stale).values(status="paused"))
    assert Scheduler(store, rec_config()).sweep(bj(2026, 12, 1)).alerts == 0
    assert alerts_of(store) == []


def test_absent_people_have_their_alerts_sent_to_substitutes(store: Store) -> None:
    with store.session(write=True) as s:
        s.add(Absence(person_id="zhang", from_date=date(2026, 11, 2), to_date=date(2026, 11, 4)))
        s.add(Absence(person_id="wang", from_date=date(2026, 11, 5), to_date=date(2026, 11, 5)))
    case = add_case(store, responsible="zhang")
    add_timer(store, case, due_at=bj(2026, 11, 4))
    scheduler = Scheduler(store, rec_config())
    scheduler.sweep(bj(2026, 11, 4, 0, 1))  # Beijing date 11-04: zhang away, li stands in
    scheduler.sweep(bj(2026, 11, 5, 0, 1))  # escalation to wang, away on 11-05: liu stands in
    assert [(a.level, a.to_person, a.for_person) for a in alerts_of(store)] == [
        ("overdue", "li", "zhang"), ("escalated", "liu", "wang")]
    bodies = [o.body for o in outbox_of(store)]
    assert "张警官 请假，由 李警官 代收" in bodies[0]
    # The absence is judged on the Beijing date: 2026-11-04 23:30 UTC is already 11-05 in Beijing.
    case2 = add_case(store, responsible="zhang")
    add_timer(store, case2, due_at=bj(2026, 11, 5, 7))
    scheduler.sweep(datetime(2026, 11, 4, 23, 30, tzinfo=ZoneInfo("UTC")))
    assert alerts_of(store)[-1].to_person == "zhang"


def test_sweep_batches_and_orders_by_next_alert(store: Store) -> None:
    case = add_case(store)
    for i in range(25):
        add_timer(store, case, name=f"t{i}", due_at=bj(2026, 11, 4) + timedelta(minutes=i))
    scheduler = Scheduler(store, rec_config(batch=10))
    first = scheduler.sweep(bj(2026, 11, 4, 0, 30), max_batches=1)
    assert first.timers == 10
    assert sorted(timer(store, a.timer_id).name for a in alerts_of(store)) == sorted(f"t{i}" for i in range(10))
    rest = scheduler.sweep(bj(2026, 11, 4, 0, 30))
    assert rest.timers == 15 and rest.batches == 2
    assert len(alerts_of(store)) == 25


def test_a_stale_next_alert_instant_is_put_right_by_the_sweep(store: Store) -> None:
    """The engine leaves overdue timers' next instant to the scheduler (e.g. after an extension)."""
    case = add_case(store)
    tid = add_timer(store, case, due_at=bj(2026, 11, 4), alert_level="overdue")
    with store.session(write=True) as s:  # an extension moved the due instant after the overdue alert
        s.execute(sa.update(TIMERS).where(TIMERS.c.id == tid).values(due_at=bj(2026, 11, 10)))
    scheduler = Scheduler(store, rec_config())
    assert scheduler.sweep(bj(2026, 11, 4, 9)).alerts == 0
    assert timer(store, tid).next_alert_at == bj(2026, 11, 11)  # the new escalation instant
    assert dict(scheduler.sweep(bj(2026, 11, 11, 0, 1)).raised) == {"escalated": 1}


def test_alerts_for_cases_run_by_the_engine(tmp_path: Path) -> None:
    """The real engine writes the timers; the scheduler alerts on them and stops when they stop."""
    from caseflow.clock import FixedClock
    from caseflow.engine import Engine

    st = Store(f"sqlite:///{tmp_path / 'engine.db'}")
    clock = FixedClock(bj(2026, 11, 3, 9))
    engine = Engine(st, clock=clock)
    engine.add_person("wang", name="王所长", unit=UNIT, roles=["station_leader"])
    engine.add_person("zhang", name="张警官", unit=UNIT, roles=["household_police"], leader="wang")
    case = engine.open("hukou_transfer", actor="zhang", at=bj(2026, 11, 3, 9), data={"needs_verification": "true"})
    scheduler = Scheduler(st, rec_config(), clock=clock)

    def raised(at: datetime) -> list[tuple[str, str, str]]:
        clock.set(at)
        scheduler.sweep()
        with st.session() as s:
            rows = s.execute(sa.select(TIMERS.c.name, ALERTS.c.level, ALERTS.c.to_person)
                             .join_from(ALERTS, TIMERS, ALERTS.c.timer_id == TIMERS.c.id)
                             .where(ALERTS.c.raised_at == at).order_by(ALERTS.c.id)).all()
        return [tuple(r) for r in rows]

    # hand_over: 0 working days (by 24:00 on the day of acceptance), warned 4 hours before.
    assert raised(bj(2026, 11, 3, 20, 0, 30)) == [("hand_over", "warning", "zhang")]
    assert raised(bj(2026, 11, 4, 0, 0, 30)) == [("hand_over", "overdue", "zhang")]
    # Only the verification route's step runs (issue 8): no complete-file step beside it.
    assert raised(bj(2026, 11, 5, 0, 0, 30)) == [("hand_over", "escalated", "wang")]
    clock.set(bj(2026, 11, 5, 9))
    engine.fire(case.id, "hand_over_verification", actor="zhang", at=bj(2026, 11, 5, 9), data={"slip_no": "JB-9"})
    # hand_over has ended (late); the verification's 3 working days are far from their warning.
    assert raised(bj(2026, 11, 6, 0, 0, 30)) == []
    st.dispose()


def test_a_version_stored_after_the_labels_were_read_is_told_by_its_own_labels(tmp_path: Path) -> None:
    """The scheduler keeps its labels between sweeps; a case pinned to a version stored since (by another
    process's engine, with a revised definition file) still reads its own procedure's title."""
    from caseflow.clock import FixedClock
    from caseflow.engine import Engine
    from caseflow.registry import WorkflowRegistry
    from caseflow.workflowfile import parse_workflow

    st = Store(f"sqlite:///{tmp_path / 'engine.db'}")
    clock = FixedClock(bj(2026, 11, 3, 9))
    engine = Engine(st, clock=clock)
    engine.add_person("wang", name="王所长", unit=UNIT, roles=["station_leader"])
    engine.add_person("zhang", name="张警官", unit=UNIT, roles=["household_police"], leader="wang")
    engine.open("hukou_transfer", actor="zhang", at=bj(2026, 11, 3, 9), data={"needs_verification": "true"})
    scheduler = Scheduler(st, rec_config(), clock=clock)
    clock.set(bj(2026, 11, 3, 20, 0, 30))
    assert scheduler.sweep().alerts == 1  # the labels are read (and kept)

    shipped = WorkflowRegistry.load().latest("hukou_transfer")
    revised = parse_workflow(shipped.text.replace("title: 户口迁移(派出所户籍窗口)", "title: 户口迁移(修订版)"))
    assert revised.version != shipped.version
    other = Engine(st, clock=clock, registry=WorkflowRegistry([revised]))
    other.open("hukou_transfer", actor="zhang", at=bj(2026, 11, 3, 20, 1), data={"needs_verification": "true"})
    clock.set(bj(2026, 11, 4, 0, 0, 30))
    assert dict(scheduler.sweep().raised) == {"overdue": 2}
    subjects = [o.subject for o in outbox_of(st)]
    assert sum("户口迁移(修订版)" in subject for subject in subjects) == 1, subjects
    assert sum("户口迁移(派出所户籍窗口)" in subject for subject in subjects) == 2, subjects
    st.dispose()


# ------------------------------------------------------------------------------ crash and restart


def test_a_sweep_killed_before_commit_loses_nothing(store: Store) -> None:
    case = add_case(store)
    for i in range(5):
        add_timer(store, case, name=f"t{i}", warn_at=bj(2026, 11, 3, 9), due_at=bj(2026, 11, 4))

    class Killed(Exception):
        pass

    crashing = Scheduler(store, rec_config())

    def die(_session: Any) -> None:
        raise Killed

    crashing._before_commit = die  # type: ignore[method-assign]
    with pytest.raises(Killed):
        crashing.sweep(bj(2026, 11, 4, 9))
    assert alerts_of(store) == [] and outbox_of(store) == []
    restarted = Scheduler(store, rec_config())
    report = restarted.sweep(bj(2026, 11, 4, 9))
    assert dict(report.raised) == {"warning": 5, "overdue": 5}
    # Issue 8: the catch-up records both levels and tells only the highest (已超期).
    assert len(outbox_of(store)) == 5 and all("已超期" in o.subject for o in outbox_of(store))


_CHILD = textwrap.dedent("""
    import os, sys
    from caseflow.clock import parse_instant
    from caseflow.config import NotifyConfig
    from caseflow.scheduler import Scheduler
    from caseflow.store import Store

    url, at, where = sys.argv[1:4]
    config = NotifyConfig.from_dict({"channels": {"rec": {"url": "log://"}},
                                     "scheduler": {"default_channel": "rec"}})

    class Die:
        name = "rec"
        def send(self, **kw):
            os._exit(9)

    scheduler = Scheduler(Store(url), config, notifiers={"rec": Die()})
    if where == "sweep":
        # Everything written, nothing committed: the process dies as if killed -9.
        scheduler._before_commit = lambda session: os._exit(9)
        scheduler.sweep(parse_instant(at))
    else:
        scheduler.deliver(parse_instant(at))
    sys.exit(0)
""")


def _kill_child(url: str, at: str, where: str) -> None:
    result = subprocess.run([sys.executable, "-c", _CHILD, url, at, where], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 9, result.stderr


def _killed_process_scenario(store: Store) -> None:
    case = add_case(store)
    for i in range(3):
        add_timer(store, case, name=f"t{i}", due_at=bj(2026, 11, 4))
    _kill_child(store.url, "2026-11-04T09:00", "sweep")
    assert alerts_of(store) == []
    recorder = Recorder()
    restarted = Scheduler(store, rec_config(), notifiers={"rec": recorder})
    assert restarted.sweep(bj(2026, 11, 4, 9, 1)).alerts == 3
    # Now a delivering process dies in the middle of its first send: its lease keeps the rows
    # from everyone until it expires, then they are delivered — nothing is lost.
    _kill_child(store.url, "2026-11-04T09:02", "deliver")
    assert restarted.deliver(bj(2026, 11, 4, 9, 2, 20)).sent == 0
    assert restarted.deliver(bj(2026, 11, 4, 9, 3)).sent == 3  # the short lease (30 s) expired, not renewed
    assert len(recorder.sent) == 3
    assert all(o.status == "sent" for o in outbox_of(store))


def test_a_killed_process_is_made_good_by_a_restart_sqlite(store: Store) -> None:
    _killed_process_scenario(store)


@pytest.mark.postgres
def test_a_killed_process_is_made_good_by_a_restart_postgresql(pg_stores: Callable[[], Store]) -> None:
    st = pg_stores()
    seed_people(st)
    _killed_process_scenario(st)


def test_two_schedulers_on_one_sqlite_file_raise_each_alert_once(store: Store, tmp_path: Path) -> None:
    case = add_case(store)
    for i in range(40):
        add_timer(store, case, name=f"t{i}", warn_at=bj(2026, 11, 3, 9) + timedelta(minutes=i),
                  due_at=bj(2026, 11, 4) + timedelta(minutes=i))
    other = Store(store.url)
    recorder = Recorder()
    a = Scheduler(store, rec_config(batch=7), notifiers={"rec": recorder})
    b = Scheduler(other, rec_config(batch=7), notifiers={"rec": recorder})
    _race([a, b], [bj(2026, 11, 3, 9, 20), bj(2026, 11, 4, 0, 10), bj(2026, 11, 6)])
    other.dispose()
    assert len(alerts_of(store)) == 120
    # Each notification once. At 11-06 timers t11..t39 passed overdue and escalation together: a
    # catch-up tells only the escalation (issue 8), so 120 alerts make 21 + 11 + 19 + 40 = 91 messages.
    assert len(recorder.sent) == 91 and len({s for _, s, _ in recorder.sent}) == 91
    assert len(outbox_of(store)) == 91


def _race(schedulers: list[Scheduler], instants: list[datetime], digests: bool = False) -> None:
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def work(s: Scheduler) -> None:
        try:
            for at in instants:
                barrier.wait()
                s.run_once(at, digests=digests)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


# --------------------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_two_schedulers_on_postgresql_send_every_alert_and_digest_exactly_once(
        pg_stores: Callable[[], Store]) -> None:
    first, second = pg_stores(), pg_stores()
    seed_people(first)
    n = 60
    for i in range(n):
        case = add_case(first, responsible=["zhang", "li", "chen", "sun"][i % 4],
                        unit=[UNIT, UNIT, EAST, WEST][i % 4])
        due = bj(2026, 11, 4) + timedelta(hours=i % 30)
        add_timer(first, case, name=f"t{i}", warn_at=due - timedelta(hours=20), due_at=due)
    recorder = Recorder()
    a = Scheduler(first, rec_config(batch=8, deliver_batch=5), notifiers={"rec": recorder}, owner="A")
    b = Scheduler(second, rec_config(batch=8, deliver_batch=5), notifiers={"rec": recorder}, owner="B")
    instants = [bj(2026, 11, 3, 8, 30) + timedelta(hours=h) for h in range(0, 80, 4)]
    instants.insert(1, bj(2026, 11, 4, 8, 30))  # a digest slot early in the run
    instants.sort()
    _race([a, b], instants, digests=True)

    alerts = alerts_of(first)
    assert len(alerts) == 3 * n  # every timer reached escalation by the last instant
    alert_messages = [m for m in recorder.sent if "日报" not in m[1]]
    assert len(alert_messages) == 3 * n
    assert len({subject for _, subject, _ in alert_messages}) == 3 * n  # no alert sent twice
    digests = [m for m in recorder.sent if "日报" in m[1]]
    assert len(digests) == len({(to, subject) for to, subject, _ in digests})  # each digest once
    assert {to for to, _, _ in digests} == {"wang", "zhao"}
    outbox = outbox_of(first)
    assert all(o.status == "sent" and o.attempts == 1 for o in outbox)
    assert len(outbox) == len(recorder.sent)


@pytest.mark.postgres
def test_postgresql_sweep_skips_timers_locked_by_another_transaction(pg_stores: Callable[[], Store]) -> None:
    st = pg_stores()
    seed_people(st)
    case = add_case(st)
    ids = [add_timer(st, case, name=f"t{i}", due_at=bj(2026, 11, 4)) for i in range(6)]
    other = pg_stores()
    with other.engine.connect() as conn, conn.begin():
        # Another process (a sweep, or a command) holds two timers.
        conn.execute(sa.select(TIMERS.c.id).where(TIMERS.c.id.in_(ids[:2])).with_for_update())
        started = _time.monotonic()
        report = Scheduler(st, rec_config()).sweep(bj(2026, 11, 4, 1))
        assert _time.monotonic() - started < 5  # did not wait on the locks
        assert report.timers == 4
    assert Scheduler(st, rec_config()).sweep(bj(2026, 11, 4, 1)).timers == 2
    assert len(alerts_of(st)) == 6


# ---------------------------------------------------------------------------------------------- CLI


def _ops_cli() -> click.Group:
    # The operations commands of the caseflow group: scheduler, alerts, digest, stats, report.
    names = ("scheduler", "alerts", "digest", "stats", "report")
    return click.Group("caseflow", commands={name: cli.get_command(click.Context(cli), name) for name in names})


def test_the_ops_commands_are_registered() -> None:
    # Their help, example and --json are checked with every other command in tests/test_cli.py.
    ctx = click.Context(cli)
    assert {"scheduler", "alerts", "digest", "stats", "report"} <= set(cli.list_commands(ctx))
    assert {"run"} <= set(cli.get_command(ctx, "scheduler").commands)  # type: ignore[union-attr]
    assert {"list", "failed", "retry"} <= set(cli.get_command(ctx, "alerts").commands)  # type: ignore[union-attr]


def test_cli_scheduler_run_once_and_alerts_list(store: Store, tmp_path: Path) -> None:
    case = add_case(store, responsible="zhang")
    add_timer(store, case, warn_at=bj(2026, 11, 3, 9), due_at=bj(2026, 11, 4))
    runner = CliRunner()
    root = _ops_cli()
    result = runner.invoke(root, ["scheduler", "run", "--once", "--at", "2026-11-04T09:00", "--db", store.url,
                                  "--json"], env={"CASEFLOW_CONFIG": ""})
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["sweep"]["by_level"] == {"warning": 1, "overdue": 1, "escalated": 0}
    # Both levels are recorded; the catch-up tells only the highest (issue 8).
    assert payload["delivery"]["sent"] == 1 and payload["sweep"]["superseded"] == 1
    assert [m["to"] for m in payload["log_messages"]] == ["zhang"]
    assert "已超期" in payload["log_messages"][0]["subject"]

    listed = json.loads(runner.invoke(root, ["alerts", "list", "--db", store.url, "--unit", UNIT,
                                             "--since", "2026-11-04", "--json"]).output)
    assert [(i["level"], i["to"], i["case"]) for i in listed] == [("overdue", "zhang", case),
                                                                  ("warning", "zhang", case)]
    assert set(listed[0]) >= {"case", "timer", "level", "raised_at", "due_at", "to"}
    assert listed[0]["due_at"] == "2026-11-04T00:00:00+08:00"
    assert json.loads(runner.invoke(root, ["alerts", "list", "--db", store.url, "--unit", WEST, "--json"]).output) == []
    text = runner.invoke(root, ["scheduler", "run", "--once", "--at", "2026-11-06T09:00", "--db", store.url])
    assert "escalated 1" in text.output and "→ wang" in text.output


def test_cli_reports_a_bad_config_file_by_name_and_key(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "caseflow.toml"
    bad.write_text('[scheduler]\ndigest_time = "8h30"\n', encoding="utf-8")
    result = CliRunner().invoke(_ops_cli(), ["scheduler", "run", "--once", "--db", store.url, "--config", str(bad),
                                             "--json"])
    assert result.exit_code == 1
    error = json.loads(result.output)["error"]
    assert error["type"] == "ConfigError"
    assert str(bad) in error["message"] and "scheduler.digest_time" in error["message"]
