"""The scheduler: a sweep raising alerts, delivery of notifications, digests and the monthly report.

APScheduler (3.x, the stable line) holds a handful of jobs in a ``MemoryJobStore``, never one job per
case (DESIGN.md: 3.x cannot share a persistent job store between processes, and 1 M jobs would not
fit). Every process re-adds the same jobs at start with ``replace_existing=True``:

- **sweep** (every ``sweep_seconds``): first the timers that act by themselves (``on_expiry``) and ran
  out fire their trigger as the system, recorded at their due instants, once each (the engine's
  event unique per case and sequence). Then one indexed query claims the timers whose ``next_alert_at`` has
  passed and raises the alert levels due (warning at ``warn_at``, overdue at ``due_at``, escalated at
  the timer's ``escalate_at`` — its own ``escalate_after``, by default 1 hour for hour limits, at any
  hour, holidays included — to the assignee's leader). A catch-up after downtime records every level
  passed and notifies only the highest. Alerts are rows unique per (timer, level) inserted with
  ``ON CONFLICT DO NOTHING``; each new alert queues its notification in the same transaction.
  Last, bookings (预约) half an hour past their instant with no outcome are marked warned, once each
  (``UPDATE … WHERE warned_at IS NULL RETURNING``), and the unit's clerks of the procedure and the unit's
  leader are told through the outbox in the same transaction (:func:`caseflow.appointments.claim_late`).
- **deliver** (every ``deliver_seconds``): :meth:`caseflow.outbox.Outbox.deliver`.
- **digest** (``digest_time`` on working days, :class:`~caseflow.workday_trigger.WorkingDayTrigger`): one
  digest per leader, claimed by a unique (job, slot) row.
- **monthly report** (``report_time`` on the first working day of each month): the ledger of last month
  per unit, written as .xlsx, and a notification to each unit.

Several schedulers may share one PostgreSQL database: the sweep claims timers with
``FOR UPDATE OF timers SKIP LOCKED``, so two sweeps take disjoint timers, and the unique keys make a
duplicate impossible even if they did not. On SQLite (single-process store) the sweep is one
``BEGIN IMMEDIATE`` transaction: the database's write lock is the claim, and a second process waits.
A process killed mid-sweep rolls its transaction back; the next sweep raises everything it missed.
"""

from __future__ import annotations

import functools
import logging
import re
import signal
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from caseflow.abc import Clock, Notifier
from caseflow.alert_levels import LEVEL_ZH, plan_levels
from caseflow.alerts import (
    ABSENCES,
    ALERT_LEVELS,
    ALERTS,
    CASES,
    JOB_RUNS,
    PEOPLE,
    TIMERS,
    bulk_insert,
    bulk_update,
    table_of,
)
from caseflow.calendar import ZONE, WorkCalendar, default_calendar
from caseflow.clock import SystemClock
from caseflow.config import NotifyConfig
from caseflow.engine import Engine
from caseflow.errors import CaseflowError
from caseflow.narrate import Labels, due_text, overdue_from_text
from caseflow.outbox import DeliveryReport, Outbox, new_owner
from caseflow.people import resolve_stand_in
from caseflow.published import Published
from caseflow.store import Store
from caseflow.timelimits import escalation_instant
from caseflow.workday_trigger import SCHED_ZONE, WorkingDayTrigger

__all__ = [
    "RunReport",
    "Scheduler",
    "SweepReport",
    "escalation_instant",
]

log = logging.getLogger("caseflow.scheduler")

_ABSENCE_HOPS = 5


# --------------------------------------------------------------------------------------- sweep plan


def _expiring(now: datetime | sa.BindParameter[Any]) -> tuple[sa.ColumnElement[bool], ...]:
    """Running timers that act by themselves (on_expiry) and have run out by ``now``."""
    t = TIMERS.c
    return t.status == "running", t.expiry_trigger.is_not(None), t.due_at <= now


def _alerting(now: datetime | sa.BindParameter[Any]) -> tuple[sa.ColumnElement[bool], ...]:
    """Timers with an alert level due by ``now`` (next_alert_at is NULL unless running; status is checked too)."""
    t = TIMERS.c
    return t.next_alert_at <= now, t.status == "running"


@functools.cache
def _plan_query() -> sa.Select[bool, bool, bool, bool, int, int]:
    """The read before each sweep (:meth:`Scheduler._plan`), built once: four EXISTS at ``:now``, then the
    (calendar, workflows) generation counters (as :func:`caseflow.published.read_generations` reads them)."""
    from caseflow.appointments import AppointmentRow, late_condition
    from caseflow.published import CALENDAR, WORKFLOWS
    from caseflow.store import Generation

    gen = table_of(Generation).c
    now: sa.BindParameter[Any] = sa.bindparam("now")
    late_before: sa.BindParameter[Any] = sa.bindparam("late_before")
    calendar, workflows = (sa.func.coalesce(sa.select(gen.value).where(gen.name == name).scalar_subquery(), 0)
                           for name in (CALENDAR, WORKFLOWS))
    return sa.select(
        sa.exists().where(*_expiring(now)),
        sa.exists().where(*_alerting(now)),
        sa.exists().select_from(AppointmentRow).where(*late_condition(late_before)),
        sa.exists().where(*Outbox.due_condition(now)),
        calendar,
        workflows,
    )


class _Plan(NamedTuple):
    """What the read before a sweep found to do (see :meth:`Scheduler._plan`)."""

    expiring: bool
    alerting: bool
    late: bool
    outbox: bool


# ---------------------------------------------------------------------------------------- directory


class _Person(NamedTuple):
    id: str
    name: str
    unit: str
    leader_id: str | None
    substitute_id: str | None
    channel: str | None


class _Directory:
    """People and absences for one sweep, fetched in a few queries (plain rows), never one per alert."""

    def __init__(self, session: sa.orm.Session, day: date, people: dict[str, _Person | None] | None = None) -> None:
        self.session = session
        self.day = day
        self.people: dict[str, _Person | None] = people if people is not None else {}
        self.absent: set[str] = set(session.execute(
            sa.select(ABSENCES.c.person_id).where(ABSENCES.c.from_date <= day, ABSENCES.c.to_date >= day)
        ).scalars())

    def prefetch(self, ids: Iterable[str | None]) -> None:
        """Load people not loaded yet (one query per 900 ids)."""
        missing = sorted({i for i in ids if i} - self.people.keys())
        p = PEOPLE.c
        for start in range(0, len(missing), 900):
            chunk = missing[start:start + 900]
            found = {row[0]: _Person(*row) for row in self.session.execute(
                sa.select(p.id, p.name, p.unit, p.leader_id, p.substitute_id, p.channel).where(p.id.in_(chunk)))}
            for pid in chunk:
                self.people[pid] = found.get(pid)

    def get(self, pid: str) -> _Person | None:
        """A person (None if unknown)."""
        if pid not in self.people:
            self.prefetch([pid])
        return self.people[pid]

    def prefetch_related(self, ids: Iterable[str]) -> None:
        """Load people, their leaders and substitutes, and the leaders' substitutes."""
        ids = set(ids) - self.people.keys()
        self.prefetch(ids)
        for _ in range(2):
            related: set[str] = set()
            for pid in ids:
                person = self.people.get(pid)
                if person is not None:
                    related.update(x for x in (person.leader_id, person.substitute_id) if x)
            related -= self.people.keys()
            if not related:
                break
            self.prefetch(related)
            ids = related

    def stand_in(self, pid: str) -> str:
        """``pid`` if present on the day, else their substitute (followed while absent), else their leader."""
        if pid not in self.absent:
            return pid

        def field_of(p: str, name: str) -> str | None:
            person = self.get(p)
            return getattr(person, name) if person is not None else None

        return resolve_stand_in(pid, is_absent=self.absent.__contains__,
                                substitute_of=lambda p: field_of(p, "substitute_id"),
                                leader_of=lambda p: field_of(p, "leader_id"), hops=_ABSENCE_HOPS)

    def recipient(self, responsible_id: str, level: str) -> tuple[str, str]:
        """(to_person, for_person) of an alert: the timer's assignee, or the assignee's leader for escalations."""
        target = responsible_id
        if level == "escalated":
            person = self.get(responsible_id)
            if person is not None and person.leader_id:
                target = person.leader_id
        return self.stand_in(target), target

    def name(self, pid: str) -> str:
        """A person's name (the id if unknown)."""
        person = self.get(pid)
        return person.name if person is not None else pid


# -------------------------------------------------------------------------------------------- reports


@dataclass
class SweepReport:
    """What a sweep did."""

    at: datetime
    timers: int = 0
    raised: Counter[str] = field(default_factory=Counter)
    skipped_duplicates: int = 0
    queued: int = 0
    batches: int = 0
    #: Timers whose on_expiry trigger this sweep fired (as the system, at their due instants).
    expired: int = 0
    #: Lower levels a catch-up sweep recorded but did not send (the timer had already passed them).
    superseded: int = 0
    #: Bookings found half an hour late (预约逾时未办) and warned by this sweep.
    late_bookings: int = 0

    @property
    def alerts(self) -> int:
        """Alerts raised in total."""
        return sum(self.raised.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly figures."""
        return {"at": self.at.isoformat(), "timers": self.timers, "alerts": self.alerts,
                "by_level": {k: self.raised.get(k, 0) for k in ALERT_LEVELS}, "queued": self.queued,
                "skipped_duplicates": self.skipped_duplicates, "batches": self.batches, "expired": self.expired,
                "superseded": self.superseded, "late_bookings": self.late_bookings}


@dataclass
class RunReport:
    """What :meth:`Scheduler.run_once` did."""

    sweep: SweepReport
    delivery: DeliveryReport
    digests: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly figures."""
        return {"sweep": self.sweep.to_dict(), "delivery": self.delivery.to_dict(), "digests": self.digests}


def _safe_filename(text: str) -> str:
    return re.sub(r"[\\/:*?\"<>|\s]+", "_", text).strip("_") or "unit"


# ------------------------------------------------------------------------------------------ scheduler


class Scheduler:
    """Sweeps, deliveries, digests and monthly reports against one :class:`~caseflow.store.Store`.

    Use :meth:`run_once` for one sweep and delivery at a (simulated) instant, :meth:`start` to run the
    APScheduler jobs. Several instances (processes) may share a PostgreSQL database.
    """

    def __init__(self, store: Store, config: NotifyConfig | None = None, *, clock: Clock | None = None,
                 calendar: WorkCalendar | None = None, owner: str | None = None,
                 notifiers: Mapping[str, Notifier] | None = None, engine: Engine | None = None) -> None:
        self.store = store
        self._engine = engine
        self.config = config or NotifyConfig()
        self.settings = self.config.scheduler
        self.clock: Clock = clock or SystemClock()
        self.calendar = calendar or default_calendar()
        self.owner = owner or new_owner()
        self.outbox = Outbox(store, self.config, clock=self.clock, owner=self.owner, notifiers=notifiers)
        dt = self.settings.digest_time
        rt = self.settings.report_time
        self.digest_trigger = WorkingDayTrigger(dt.hour, dt.minute, self.calendar, SCHED_ZONE)
        self.report_trigger = WorkingDayTrigger(rt.hour, rt.minute, self.calendar, SCHED_ZONE, first_of_month=True)
        ct = self.config.audit.checkpoint_time
        self.checkpoint_trigger = WorkingDayTrigger(ct.hour, ct.minute, self.calendar, SCHED_ZONE)
        #: Holiday notices loaded into the database (by any process) replace the file-built calendar's years.
        self.published = Published(self.calendar)
        self._aps: Any = None
        self._label_cache: Labels | None = None
        #: Versions rows were pinned to that a fresh read of the labels did not know either (this sweep).
        self._label_misses: set[str] = set()
        #: Whether the last sweep's first read found notifications due (run_once delivers only then).
        self._outbox_due = True

    def refresh(self) -> bool:
        """Take up holiday notices loaded since the last sweep (one read of the generation counters)."""
        with self.store.session() as session:
            return self._take_up(session)

    def _take_up(self, session: Session, seen: tuple[int, int] | None = None) -> bool:
        """:meth:`refresh` within ``session`` (``seen``: the counters as the caller read them there)."""
        if not self.published.check(session, seen=seen):
            return False
        self._label_cache = None  # a definition published since: its labels are read again
        self.calendar = self.published.calendar
        for trigger in (self.digest_trigger, self.report_trigger, self.checkpoint_trigger):
            trigger.calendar = self.published.calendar
        return True

    # ----------------------------------------------------------------- sweep

    @property
    def engine(self) -> Engine:
        """The engine that fires on_expiry triggers (made on first use, on this scheduler's store)."""
        if self._engine is None:
            self._engine = Engine(self.store, calendar=self.calendar, clock=self.clock)
        return self._engine

    def expire_due(self, now: datetime, report: SweepReport | None = None) -> int:
        """Fire the on_expiry trigger of every running timer whose due instant has passed by ``now``.

        Each fires as the system actor, recorded at its due instant (after downtime too), exactly once:
        :meth:`caseflow.engine.Engine.expire` appends the case's next event, unique per (case, seq), so of
        two schedulers racing for one timer the second finds it done. Timers come oldest first, in batches.
        """
        t = TIMERS.c
        fired = 0
        seen: set[int] = set()
        while True:
            with self.store.session() as session:
                ids = [i for i in session.execute(
                    sa.select(t.id).where(*_expiring(now))
                    .order_by(t.due_at, t.id).limit(self.settings.batch)).scalars() if i not in seen]
            if not ids:
                break
            for timer_id in ids:
                seen.add(timer_id)
                try:
                    if self.engine.expire(timer_id) is not None:
                        fired += 1
                except CaseflowError:
                    # One case's trouble must not stop the others; the event log says why.
                    log.exception("on_expiry of timer %s failed", timer_id)
        if report is not None:
            report.expired += fired
        return fired

    def sweep(self, now: datetime | None = None, *, max_batches: int | None = None) -> SweepReport:
        """Fire due on_expiry triggers, then raise every alert level due at ``now``, in batches of
        ``settings.batch`` timers, one transaction each.
        """
        now = (now or self.clock.now()).astimezone(ZONE)
        plan = self._plan(now)
        report = SweepReport(now)
        self._label_misses = set()  # a version unknown to the last sweep may be stored by now
        if plan.expiring:
            self.expire_due(now, report)
        # A trigger fired at expiry may have started a timer whose first alert is due already.
        if plan.alerting or report.expired:
            people: dict[str, _Person | None] = {}  # shared by the batches of this sweep
            while max_batches is None or report.batches < max_batches:
                claimed = self._sweep_batch(now, report, people)
                if claimed == 0:
                    break
                report.batches += 1
                if claimed < self.settings.batch:
                    break
        if plan.late:
            self.warn_late_bookings(now, report)
        self._outbox_due = plan.outbox
        return report

    def _plan(self, now: datetime) -> _Plan:
        """One read before a sweep: loads taken up (:meth:`refresh`) and which parts of it find work at ``now``.

        Most sweeps find nothing to do; each part that would (expiries, alerts, late bookings, and the outbox
        for :meth:`run_once`) is then run as before, in its own transaction. A row that becomes due after
        this read is the next sweep's, as if this one had run a moment earlier.
        """
        from caseflow.appointments import LATE_AFTER

        with self.store.session() as session:
            found = session.execute(_plan_query(), {"now": now, "late_before": now - LATE_AFTER}).one()
            self._take_up(session, seen=(int(found[4]), int(found[5])))
        return _Plan(*(bool(x) for x in found[:4]))

    def warn_late_bookings(self, now: datetime, report: SweepReport | None = None) -> int:
        """Warn once of each booking half an hour past its instant with no outcome, through the outbox.

        The marks and the queued warnings commit together; two schedulers never warn of one booking twice
        (see :func:`caseflow.appointments.claim_late`). An absent clerk's warning goes to their stand-in.
        """
        from caseflow.appointments import LATE_SUBJECT, claim_late

        registry = self.engine.registry

        def roles_of(workflow: str) -> frozenset[str] | None:
            return frozenset(registry.latest(workflow).roles) if workflow in registry else None

        with self.store.session(write=True) as session:
            late = claim_late(session, now, roles_of=roles_of)
            if not late:
                return 0
            directory = _Directory(session, now.date())
            directory.prefetch_related({pid for b in late for pid in b.recipients})
            queued: list[dict[str, Any]] = []
            for booking in late:
                told: set[str] = set()
                for pid in booking.recipients:
                    to_person = directory.stand_in(pid)
                    if to_person in told:
                        continue
                    told.add(to_person)
                    body = booking.text if to_person == pid else \
                        f"{booking.text}\n{directory.name(pid)} 请假,由 {directory.name(to_person)} 代收(AB岗)"
                    queued.append(self.outbox.row(kind="window", recipient=to_person,
                                                  route=self.config.route_person(to_person, directory.get(to_person)),
                                                  subject=LATE_SUBJECT, body=body, now=now))
            self.outbox.insert(session, queued)
        if report is not None:
            report.late_bookings += len(late)
            report.queued += len(queued)
        return len(late)

    def _claim_query(self, now: datetime) -> Any:
        t = TIMERS.c
        c = CASES.c
        query = (
            # The assignee answers for the timer (a row without one, written by hand, is the case's).
            sa.select(t.id, t.case_id, t.name, t.due_at, t.warn_at, t.alert_level,
                      sa.func.coalesce(t.assignee, c.responsible_id).label("responsible_id"), c.unit,
                      c.workflow_key, c.state, c.workflow_version, t.kind, t.escalate_at)
            .join_from(TIMERS, CASES, t.case_id == c.id)
            # next_alert_at is NULL unless running (the engine's contract); status is checked all the same.
            .where(*_alerting(now))
            # No tie-breaker: the index order alone lets LIMIT stop early even with a large backlog.
            .order_by(t.next_alert_at)
            .limit(self.settings.batch)
        )
        if self.store.dialect == "postgresql":
            # Lock the timers only (not their cases), skipping those another sweep or a command holds.
            query = query.with_for_update(of=TIMERS, skip_locked=True)
        return query

    def _sweep_batch(self, now: datetime, report: SweepReport, people: dict[str, _Person | None]) -> int:
        with self.store.session(write=True) as session:
            rows = session.execute(self._claim_query(now)).all()
            if not rows:
                return 0
            directory = _Directory(session, now.date(), people)
            directory.prefetch_related({r.responsible_id for r in rows})
            alerts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            info: dict[tuple[int, str], tuple[Any, str, bool]] = {}
            after = self.settings.escalate_after
            escalations: dict[datetime, datetime] = {}  # many timers share a due instant
            self._labels(getattr(r, "workflow_version", None) for r in rows)  # read now if a version is new
            for r in rows:
                escalate_at = r.escalate_at  # the timer's own escalate_after, when the engine set it
                if r.due_at is not None and escalate_at is None:
                    escalate_at = escalations.get(r.due_at)
                    if escalate_at is None:
                        escalate_at = escalations[r.due_at] = escalation_instant(r.due_at, after, self.calendar)
                plan = plan_levels(now=now, due_at=r.due_at, warn_at=r.warn_at, alert_level=r.alert_level,
                                   escalate_at=escalate_at)
                # A catch-up after downtime records every level passed but tells only the highest one:
                # a 临期预警 next to its own 已超期 says nothing new.
                top = plan.raise_now[-1][0] if plan.raise_now else None
                for level, level_at in plan.raise_now:
                    to_person, for_person = directory.recipient(r.responsible_id, level)
                    alerts.append({"timer_id": r.id, "case_id": r.case_id, "level": level, "raised_at": now,
                                   "level_at": level_at, "due_at": r.due_at, "to_person": to_person,
                                   "for_person": for_person, "unit": r.unit})
                    info[(r.id, level)] = (r, for_person, level == top)
                updates.append({"id": r.id, "alert_level": plan.level, "next_alert_at": plan.next_at})
            if alerts:
                # Only rows this transaction inserted come back: an alert raised before (a restarted or
                # concurrent scheduler) is skipped by the unique (timer_id, level) and not notified again.
                inserted = bulk_insert(session, ALERTS, alerts, conflict=("timer_id", "level"),
                                       returning=("id", "timer_id", "level", "to_person"))
                report.skipped_duplicates += len(alerts) - len(inserted)
                queued: list[dict[str, Any]] = []
                for alert_id, timer_id, level, to_person in inserted:
                    row, for_person, highest = info[(timer_id, level)]
                    report.raised[level] += 1
                    if not highest:
                        report.superseded += 1
                        continue
                    queued.append(self._alert_message(directory, alert_id, row, level, to_person=to_person,
                                                       for_person=for_person, now=now))
                self.outbox.insert(session, queued)
                report.queued += len(queued)
            bulk_update(session, TIMERS, updates)
            report.timers += len(rows)
            self._before_commit(session)
        return len(rows)

    def _labels(self, versions: Iterable[str | None] = ()) -> Labels:
        """Labels of the stored workflow versions, kept between sweeps and digests.

        Read again after a load moved a generation counter (:meth:`refresh`), and when one of ``versions``
        (the rows about to be told) is not known yet: a command of any process stores the version it pins
        a new case to. A version a fresh read does not know either is not looked for again this sweep.
        """
        cache = self._label_cache
        unknown = {v for v in versions if v} - self._label_misses
        if cache is None or not unknown <= cache.by_version.keys():
            cache = self._label_cache = Labels.from_store(self.store)
            self._label_misses |= unknown - cache.by_version.keys()
        return cache

    def _before_commit(self, session: sa.orm.Session) -> None:
        """A seam for tests that kill a sweep after it claimed and wrote but before it committed."""

    def _alert_message(self, directory: _Directory, alert_id: int, row: Any, level: str, *, to_person: str,
                       for_person: str, now: datetime) -> dict[str, Any]:
        label = LEVEL_ZH[level]
        labels = self._labels()
        responsible = directory.name(row.responsible_id)
        version = getattr(row, "workflow_version", None)
        workflow = labels.workflow(row.workflow_key, version)
        step = labels.timer(row.workflow_key, row.name, version)
        due = due_text(row.due_at)
        kind = "法定时限" if getattr(row, "kind", "statutory") == "statutory" else "承诺时限"
        subject = f"【{label}】案件#{row.case_id} {workflow}·{step} {due}"
        late = f"，{overdue_from_text(row.due_at)}" if level != "warning" and row.due_at is not None else ""
        state = labels.state(row.workflow_key, row.state, version)
        lines = [
            f"{label}：案件#{row.case_id}（{workflow}，当前状态「{state}」）",
            f"「{step}」（{kind}）{due}（北京时间）{late}",
            f"承办人 {responsible} · 单位 {row.unit}",
        ]
        if level == "escalated":
            lines.append(f"已超期，报 {directory.name(for_person)} 督办")
        if to_person != for_person:
            lines.append(f"{directory.name(for_person)} 请假，由 {directory.name(to_person)} 代收（AB岗）")
        person = directory.get(to_person)
        route = self.config.route_person(to_person, person)
        # No case data here (ids, names, dates only), so nothing to mask.
        return self.outbox.row(kind="alert", recipient=to_person, route=route, subject=subject,
                               body="\n".join(lines), now=now, alert_id=alert_id)

    # ----------------------------------------------------------------- delivery

    def deliver(self, now: datetime | None = None) -> DeliveryReport:
        """Deliver due notifications until none is left (or a round claims nothing new)."""
        total = DeliveryReport()
        for _ in range(1000):
            report = self.outbox.deliver(now)
            for name in ("claimed", "sent", "retried", "failed", "deferred", "lost_lease"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.errors.extend(report.errors)
            if report.claimed < self.settings.deliver_batch:
                break
        return total

    # ----------------------------------------------------------------- digests

    def _claim_job(self, session: sa.orm.Session, job: str, slot: datetime, now: datetime) -> int | None:
        return self._claim_jobs(session, [job], slot, now).get(job)

    def _claim_jobs(self, session: sa.orm.Session, jobs: Sequence[str], slot: datetime,
                    now: datetime) -> dict[str, int]:
        """Claim each job's run of ``slot`` in one statement; the run ids of those this call claimed, by job."""
        rows = [{"job": job, "scheduled_for": slot, "claimed_by": self.owner, "claimed_at": now}
                for job in dict.fromkeys(jobs)]
        return {str(job): int(run_id) for run_id, job in
                bulk_insert(session, JOB_RUNS, rows, conflict=("job", "scheduled_for"), returning=("id", "job"))}

    def leaders(self) -> list[str]:
        """Everyone who is somebody's leader."""
        with self.store.session() as session:
            return sorted(session.execute(
                sa.select(PEOPLE.c.leader_id).where(PEOPLE.c.leader_id.is_not(None)).distinct()
            ).scalars())

    def run_digests(self, now: datetime | None = None, *, slot: datetime | None = None,
                    leaders: Sequence[str] | None = None) -> int:
        """Queue each leader's digest for the slot at or before ``now``; each (leader, slot) goes out once."""
        from caseflow.digest import build_digests, render_digest

        now = (now or self.clock.now()).astimezone(ZONE)
        slot = slot or self.digest_trigger.last_fire_time(now)
        if slot is None:
            return 0
        leader_ids = list(leaders if leaders is not None else self.leaders())
        # One read of the instant for every leader (build_digests), then one transaction for the slot: every
        # leader's claim and queued digest commit together or not at all (a retry claims them again).
        digests = build_digests(self.store, leader_ids, now, calendar=self.calendar, definitions=self._labels())
        queued: list[dict[str, Any]] = []
        with self.store.session(write=True) as session:
            directory = _Directory(session, now.date())
            directory.prefetch_related(leader_ids)
            claimed = self._claim_jobs(session, [f"digest:{leader_id}" for leader_id in leader_ids], slot, now)
            for leader_id, digest in zip(leader_ids, digests, strict=True):
                run_id = claimed.pop(f"digest:{leader_id}", None)
                if run_id is None:
                    continue  # another process (or an earlier run) has sent this slot's digest
                if digest.empty and not self.settings.digest_empty:
                    continue  # the slot stays claimed: nothing to say today
                to_person = directory.stand_in(leader_id)
                route = self.config.route_person(to_person, directory.get(to_person))
                fmt = self.config.channel_format(route.channel)
                queued.append(self.outbox.row(
                    kind="digest", recipient=to_person, route=route, subject=digest.subject,
                    body=render_digest(digest, fmt), body_format=fmt, now=now, job_run_id=run_id))
            self.outbox.insert(session, queued)
        return len(queued)

    def run_monthly_report(self, now: datetime | None = None, *, slot: datetime | None = None,
                           month: str | None = None) -> list[Path]:
        """Write last month's ledger per unit (.xlsx in ``report_dir``) and notify each unit, once per slot."""
        from caseflow.stats import compute_stats, ledger_rows, previous_month, write_ledger

        now = (now or self.clock.now()).astimezone(ZONE)
        slot = slot or self.report_trigger.last_fire_time(now)
        if slot is None:
            return []
        month = month or previous_month(slot.astimezone(ZONE).date())
        written: list[Path] = []
        with self.store.session(write=True) as session:
            run_id = self._claim_job(session, f"monthly-report:{month}", slot, now)
            if run_id is None:
                return []
            units = sorted(session.execute(sa.select(CASES.c.unit).distinct()).scalars())
            figures = {g.key: g for g in compute_stats(self.store, month=month, by="unit", now=now,
                                                       calendar=self.calendar)}
            queued = []
            for unit in units:
                rows = ledger_rows(self.store, unit, month, calendar=self.calendar, now=now)
                if not rows:
                    continue
                path = self.settings.report_dir / f"ledger_{_safe_filename(unit)}_{month}.xlsx"
                written.append(write_ledger(rows, path, unit=unit, month=month))
                g = figures.get(unit)
                rate = f"{g.on_time_rate * 100:.1f}%" if g is not None and g.on_time_rate is not None else "—"
                body = (f"{unit} {month} 办理时限月报：案件 {len(rows)} 件，办结时限 {g.finished if g else 0} 个，"
                        f"按时办结率 {rate}，超期 {g.overdue if g else 0} 个。\n台账：{path}")
                queued.append(self.outbox.row(
                    kind="report", recipient=f"unit:{unit}"[:64], route=self.config.route_unit(unit),
                    subject=f"{unit} {month} 办理时限台账", body=body, now=now, job_run_id=run_id))
            self.outbox.insert(session, queued)
        return written

    def run_checkpoint(self, now: datetime | None = None, *, slot: datetime | None = None) -> Path | None:
        """Append the working day's signed audit checkpoint (``[audit]`` in the configuration), once per slot.

        None when no key and file are configured, or another process wrote this slot's checkpoint.
        """
        from caseflow.audit import load_private_key, write_checkpoint

        audit = self.config.audit
        if audit.key_file is None or audit.checkpoint_file is None:
            return None
        now = (now or self.clock.now()).astimezone(ZONE)
        slot = slot or self.checkpoint_trigger.last_fire_time(now)
        if slot is None:
            return None
        key = load_private_key(audit.key_file)
        with self.store.session(write=True) as session:
            if self._claim_job(session, "audit-checkpoint", slot, now) is None:
                return None
            # Written while the claim is uncommitted: a failure leaves the slot to the next run.
            write_checkpoint(self.store, audit.checkpoint_file, key, at=now)
        return audit.checkpoint_file

    # ----------------------------------------------------------------- once / forever

    def run_once(self, at: datetime | None = None, *, digests: bool = False) -> RunReport:
        """One sweep and the deliveries at ``at`` (a simulated instant, default now); digests too if asked."""
        now = (at or self.clock.now()).astimezone(ZONE)
        sweep = self.sweep(now)
        count = self.run_digests(now) if digests else 0
        # The sweep's first read saw whether the outbox held anything due; what this run queued is due too.
        due = self._outbox_due or sweep.queued or sweep.expired or count
        delivery = self.deliver(now) if due else DeliveryReport()
        return RunReport(sweep, delivery, count)

    def _job(self, name: str) -> None:
        try:
            if name == "sweep":
                report = self.sweep()
                if report.alerts:
                    log.info("sweep raised %s alert(s): %s", report.alerts, dict(report.raised))
                if report.late_bookings:
                    log.info("sweep warned of %s late booking(s)", report.late_bookings)
            elif name == "deliver":
                self.deliver()
            elif name == "digest":
                log.info("queued %s digest(s)", self.run_digests())
            elif name == "report":
                log.info("monthly report: %s", [str(p) for p in self.run_monthly_report()])
            elif name == "checkpoint":
                path = self.run_checkpoint()
                if path is not None:
                    log.info("audit checkpoint appended to %s", path)
        except Exception:
            # One failed run must not stop the schedule; the next run retries.
            log.exception("scheduler job %s failed", name)

    def build(self, *, background: bool = False) -> Any:
        """An APScheduler scheduler holding the four jobs (re-added with ``replace_existing``)."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.schedulers.blocking import BlockingScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        cls = BackgroundScheduler if background else BlockingScheduler
        aps = cls(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(4)},
            # One run of each job at a time; a late run of a frequent job is merged into one.
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=SCHED_ZONE,
        )
        s = self.settings
        aps.add_job(self._job, IntervalTrigger(seconds=s.sweep_seconds, timezone=SCHED_ZONE), args=["sweep"],
                    id="caseflow-sweep", name="caseflow sweep", replace_existing=True,
                    misfire_grace_time=max(1, int(s.sweep_seconds)))
        aps.add_job(self._job, IntervalTrigger(seconds=s.deliver_seconds, timezone=SCHED_ZONE), args=["deliver"],
                    id="caseflow-deliver", name="caseflow delivery", replace_existing=True,
                    misfire_grace_time=max(1, int(s.deliver_seconds)))
        # The default misfire_grace_time (1 s) would drop a digest whose process was busy or restarting.
        aps.add_job(self._job, self.digest_trigger, args=["digest"], id="caseflow-digest", name="caseflow digest",
                    replace_existing=True, misfire_grace_time=s.digest_grace_seconds)
        aps.add_job(self._job, self.report_trigger, args=["report"], id="caseflow-monthly-report",
                    name="caseflow monthly report", replace_existing=True, misfire_grace_time=s.digest_grace_seconds)
        if self.config.audit.key_file is not None and self.config.audit.checkpoint_file is not None:
            aps.add_job(self._job, self.checkpoint_trigger, args=["checkpoint"], id="caseflow-audit-checkpoint",
                        name="caseflow audit checkpoint", replace_existing=True,
                        misfire_grace_time=s.digest_grace_seconds)
        self._aps = aps
        return aps

    def start(self, *, background: bool = False) -> Any:
        """Start the jobs; blocks (until SIGINT/SIGTERM) unless ``background``."""
        aps = self.build(background=background)
        if background:
            aps.start()
            return aps

        def stop(_signum: int, _frame: Any) -> None:
            aps.shutdown(wait=False)

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            aps.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        return aps

    def shutdown(self) -> None:
        """Stop the APScheduler jobs started by :meth:`start`."""
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=True)
