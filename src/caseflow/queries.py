"""The engine's queries: a case, its history, the triggers a person may fire, a person's queue, the cases.

Each reads in a session of its own and answers with views (:mod:`caseflow.views`), never rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from caseflow.calendar import ZONE
from caseflow.checks import checked_case_id
from caseflow.clock import check_instant, require_aware
from caseflow.errors import CaseNotFoundError
from caseflow.people import get_person, who_stands_in
from caseflow.store import Absence, CaseRow, EventRow, TimerRow
from caseflow.timing import ACTIVE
from caseflow.views import CaseView, EventView, QueueItem, _local, case_view

if TYPE_CHECKING:
    from caseflow.engine import Engine

__all__ = ["case_history", "case_timers", "get_case", "list_cases", "queue_of", "triggers_allowed"]


def case_timers(s: Session, case_id: int) -> list[TimerRow]:
    """A case's timer rows, in the order they started."""
    return list(s.exec(select(TimerRow).where(TimerRow.case_id == case_id)
                       .order_by(TimerRow.id)))  # type: ignore[arg-type]


def get_case(engine: Engine, case_id: int) -> CaseView:
    """The case as it stands (:meth:`caseflow.engine.Engine.get`)."""
    with engine.store.session() as s:
        case = s.get(CaseRow, checked_case_id(case_id))
        if case is None:
            raise CaseNotFoundError(f"no case has the id {case_id}")
        return case_view(engine.definition(case.workflow_version, s), case, case_timers(s, case_id))


def case_history(engine: Engine, case_id: int) -> list[EventView]:
    """Every event of the case, oldest first (:meth:`caseflow.engine.Engine.history`)."""
    with engine.store.session() as s:
        if s.get(CaseRow, checked_case_id(case_id)) is None:
            raise CaseNotFoundError(f"no case has the id {case_id}")
        rows = s.exec(select(EventRow).where(EventRow.case_id == case_id)
                      .order_by(EventRow.seq))  # type: ignore[arg-type]
        return [EventView(r.seq, r.kind, r.at.astimezone(ZONE), r.actor, trigger=r.trigger,
                          from_state=r.from_state, to_state=r.to_state, data=json.loads(r.data), hash=r.hash)
                for r in rows]


def triggers_allowed(engine: Engine, case_id: int, person_id: str) -> list[str]:
    """The triggers ``person_id`` may fire on the case now (:meth:`caseflow.engine.Engine.allowed_triggers`)."""
    with engine.store.session() as s:
        case = s.get(CaseRow, checked_case_id(case_id))
        if case is None:
            raise CaseNotFoundError(f"no case has the id {case_id}")
        if case.closed_at is not None:
            return []
        person = get_person(s, person_id)
        defn = engine.definition(case.workflow_version, s)
        result = []
        for trig in defn.allowed_triggers(case.state):
            t = defn.find_transition(trig, case.state)
            if t is not None and (person.admin or t.allows(person.role_set)):
                result.append(trig)
        return result


def queue_of(engine: Engine, person_id: str, at: datetime | None) -> list[QueueItem]:
    """The running clocks on a person and those they stand in for, most urgent first
    (:meth:`caseflow.engine.Engine.queue`)."""
    now = check_instant(at, "queue instant") if at is not None else require_aware(engine.clock.now(), "clock")
    today = now.astimezone(ZONE).date()
    with engine.store.session() as s:
        get_person(s, person_id)
        # Whoever is absent today and resolves to this person (over any number of hops, or as leader).
        absent_today = set(s.exec(select(Absence.person_id).where(
            Absence.from_date <= today, Absence.to_date >= today)))
        absent_for = [pid for pid in sorted(absent_today - {person_id})
                      if who_stands_in(s, pid, today) == person_id]
        whose = [person_id, *absent_for] if who_stands_in(s, person_id, today) == person_id else absent_for
        if not whose:
            return []
        rows = s.exec(
            select(CaseRow, TimerRow).join(TimerRow, TimerRow.case_id == CaseRow.id)  # type: ignore[arg-type]
            .where(TimerRow.assignee.in_(whose), CaseRow.closed_at.is_(None),  # type: ignore[union-attr]
                   TimerRow.status.in_(ACTIVE))  # type: ignore[attr-defined]
        ).all()
        items = []
        for case, timer in rows:
            defn = engine.definition(case.workflow_version, s)
            try:
                label = defn.timer(timer.name).label
            except (KeyError, LookupError):
                label = timer.name
            overdue = timer.due_at is not None and now >= timer.due_at and timer.status == "running"
            items.append(QueueItem(
                case.id or 0, case.workflow_key, case.state, timer.name, label, timer.status, _local(timer.due_at),
                timer.last_day, overdue, engine.time_left(timer, now), responsible=case.responsible_id,
                via_substitute_for=timer.assignee if timer.assignee != person_id else None,
                assignee=timer.assignee or case.responsible_id,
            ))
    far = datetime.max.replace(tzinfo=UTC)
    items.sort(key=lambda i: (i.status != "running", i.due_at or far, i.case_id))
    return items


def list_cases(engine: Engine, *, unit: str | None, open_only: bool, limit: int) -> list[CaseView]:
    """Cases, newest first, optionally of one unit (:meth:`caseflow.engine.Engine.cases`)."""
    with engine.store.session() as s:
        query = select(CaseRow).order_by(CaseRow.id.desc()).limit(limit)  # type: ignore[union-attr]
        if unit is not None:
            query = query.where(CaseRow.unit == unit)
        if open_only:
            query = query.where(CaseRow.closed_at.is_(None))  # type: ignore[union-attr]
        result = []
        for case in s.exec(query):
            result.append(case_view(engine.definition(case.workflow_version, s), case,
                                    case_timers(s, case.id or 0)))
        return result
