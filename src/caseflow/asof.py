"""Time limits as they stood at an instant T, rebuilt from what was recorded — the queries behind
``digest --at T``, ``stats`` and the leader board.

A timer row holds its start, its stop, every pause (from/to) and every extension (with the instant it was
granted); a case's events hold every state it passed through and every hand-over. From these the state
of any instant T is rebuilt exactly, whatever happened after T:

- a timer exists at T when it had started (``started_at <= T``) and its case had been opened;
- it is finished at T only when it stopped at or before T (status as recorded then: met, breached …);
  otherwise it was running, or paused when a pause had begun and not yet ended at T;
- its due instant at T counts only the pauses begun and the extensions granted by T (a pause still
  open at T without a cap leaves the due instant unknown, as it did then);
- the case's state and responsible person at T are those of its last event at or before T;
- a step's assignee at T is its assignee now, unless a hand-over recorded after T moved it: then it is
  the person that first such hand-over took it from;
- the alert level at T is the highest alert raised at or before T.

So a digest asked for "2026-11-04 08:30" shows what a digest sent at 08:30 that morning showed, not
what is true today.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from caseflow.alerts import ALERTS, CASES, PEOPLE, TIMERS, read_in
from caseflow.calendar import WorkCalendar, default_calendar
from caseflow.narrate import Labels
from caseflow.store import EventRow, Store, TimerRow

__all__ = ["TimerAt", "timers_as_of"]

_LEVELS = ("warning", "overdue", "escalated")
_CHUNK = 900  # ids per IN (…) list: below SQLite's oldest variable limit
EVENTS = EventRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TimerAt:
    """One timer as it stood at ``at``: its status, due instant, case state and responsible person then."""

    id: int
    case_id: int
    name: str
    kind: str
    limit_spec: str
    started_at: datetime
    stopped_at: datetime | None
    status: str
    due_at: datetime | None
    last_day: date | None
    pauses: str
    workflow_key: str
    workflow_version: str
    state: str
    responsible_id: str
    unit: str
    data: str
    alert_level: str | None = field(default=None)
    #: The person who had to act on the step at ``at`` (the case's responsible person for old rows).
    assignee: str = field(default="")

    @property
    def open(self) -> bool:
        """Running or paused at the instant asked."""
        return self.status in ("running", "paused")

    def overdue_at(self, at: datetime) -> bool:
        """Open with its due instant passed at ``at``."""
        return self.open and self.due_at is not None and self.due_at <= at


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def timers_as_of(store: Store, at: datetime, *, units: Collection[str] | None = None,
                 open_only: bool = False, due_before: datetime | None = None,
                 stopped_since: datetime | None = None, calendar: WorkCalendar | None = None,
                 labels: Labels | None = None, session: Session | None = None) -> list[TimerAt]:
    """Every timer as it stood at ``at``, of cases in ``units`` (at ``at``) when given.

    ``open_only`` keeps the timers running or paused at ``at``; ``due_before`` keeps open timers due
    before it (and finished ones); ``stopped_since`` drops timers finished before it. ``session``: read
    within the caller's transaction (default: one of its own).
    """
    cal = calendar or default_calendar()
    t, c = TIMERS.c, CASES.c
    query = (sa.select(t.id, t.case_id, t.name, t.kind, t.limit_spec, t.started_at, t.stopped_at, t.status,
                       t.due_at, t.last_day, t.pauses, t.extensions, t.provisional, c.workflow_key,
                       c.workflow_version, c.state, c.responsible_id, c.unit, c.data, t.assignee)
             .join_from(TIMERS, CASES, t.case_id == c.id)
             .where(t.started_at <= at, c.opened_at <= at))
    if open_only:
        query = query.where(sa.or_(t.stopped_at.is_(None), t.stopped_at > at))
    if stopped_since is not None:
        query = query.where(sa.or_(t.stopped_at.is_(None), t.stopped_at >= stopped_since))
    if due_before is not None:
        # A due instant can only have been earlier at T than it is now through a pause or an extension
        # recorded after T; timers without either are judged by their stored due instant here.
        query = query.where(sa.or_(t.due_at <= due_before, t.due_at.is_(None), t.pauses != "[]",
                                   t.extensions != "[]", t.stopped_at <= at))
    with read_in(store, session) as reading:
        rows = reading.execute(query.order_by(t.id)).all()
        ev = EVENTS.c
        # A case with no event after T stands now as it stood at T (its row is the projection of its chain):
        # only the cases moved since are rebuilt from their events. Asked for the present (a digest, a
        # sweep's board), that is none of them.
        case_ids: list[int] = []
        for chunk in _chunks(sorted({r.case_id for r in rows})):
            case_ids += reading.execute(sa.select(ev.case_id).where(ev.case_id.in_(chunk), ev.at > at)
                                        .distinct()).scalars()
        case_ids.sort()
        states: dict[int, tuple[str, str | None]] = {}
        for chunk in _chunks(case_ids):
            for case_id, kind, to_state, data in reading.execute(
                sa.select(ev.case_id, ev.kind, ev.to_state, ev.data)
                .where(ev.case_id.in_(chunk), ev.at <= at).order_by(ev.case_id, ev.seq)
            ):
                state, responsible = states.get(case_id, ("", None))
                if kind in ("open", "hand_over", "reassign"):
                    try:
                        payload = json.loads(data or "{}")
                    except ValueError:
                        payload = {}
                    responsible = payload.get("responsible" if kind == "open" else "to") or responsible
                states[case_id] = (to_state or state, responsible)
        # Steps handed over after T were with the person they were taken from (the first such move).
        before_moves: dict[tuple[int, str], str] = {}
        for chunk in _chunks(case_ids):
            for case_id, kind, data in reading.execute(
                sa.select(ev.case_id, ev.kind, ev.data)
                .where(ev.case_id.in_(chunk), ev.at > at, ev.kind.in_(("hand_over_step", "hand_over", "reassign")))
                .order_by(ev.case_id, ev.seq)
            ):
                try:
                    payload = json.loads(data or "{}")
                except ValueError:
                    continue
                names = [payload.get("timer")] if kind == "hand_over_step" else payload.get("steps") or []
                for name in names:
                    if isinstance(name, str) and payload.get("from"):
                        before_moves.setdefault((case_id, name), str(payload["from"]))
        levels: dict[int, str] = {}
        timer_ids = [r.id for r in rows]
        a = ALERTS.c
        for chunk in _chunks(timer_ids):
            for timer_id, level in reading.execute(
                sa.select(a.timer_id, a.level).where(a.timer_id.in_(chunk), a.raised_at <= at)
            ):
                if level in _LEVELS and _LEVELS.index(level) >= _LEVELS.index(levels.get(timer_id, level)):
                    levels[timer_id] = level
        moved = {pid for _, pid in states.values() if pid}
        people_units: dict[str, str] = {}
        if moved:
            people_units.update({pid: unit for pid, unit in reading.execute(
                sa.select(PEOPLE.c.id, PEOPLE.c.unit).where(PEOPLE.c.id.in_(sorted(moved))))})
    labels = labels or (Labels.from_store(store) if any(r.pauses != "[]" or r.extensions != "[]"
                                                         for r in rows) else Labels())
    result: list[TimerAt] = []
    for r in rows:
        state, responsible = states.get(r.case_id, (r.state, r.responsible_id))
        responsible = responsible or r.responsible_id
        unit = r.unit if responsible == r.responsible_id else people_units.get(responsible, r.unit)
        if units is not None and unit not in units:
            continue
        finished = r.stopped_at is not None and r.stopped_at <= at
        due_at, last_day, status = r.due_at, r.last_day, r.status
        if not finished:
            due_at, last_day, status = _due_at(r, at, cal, labels)
        if open_only and finished:
            continue
        if due_before is not None and not finished and (due_at is None or due_at > due_before):
            continue
        result.append(TimerAt(
            id=r.id, case_id=r.case_id, name=r.name, kind=r.kind, limit_spec=r.limit_spec,
            started_at=r.started_at, stopped_at=r.stopped_at if finished else None, status=status,
            due_at=due_at, last_day=last_day, pauses=_pauses_at(r.pauses, at), workflow_key=r.workflow_key,
            workflow_version=r.workflow_version, state=state or r.state, responsible_id=responsible, unit=unit,
            data=r.data, alert_level=levels.get(r.id),
            assignee=before_moves.get((r.case_id, r.name)) or r.assignee or responsible,
        ))
    return result


def _pauses_at(pauses_json: str, at: datetime) -> str:
    """The pause ledger as it stood at ``at``: pauses begun by then, one still open left open."""
    try:
        pauses = json.loads(pauses_json or "[]")
    except ValueError:
        return "[]"
    kept = []
    for pause in pauses if isinstance(pauses, list) else ():
        if not isinstance(pause, dict) or not pause.get("from") or _utc(pause["from"]) > at:
            continue
        ended_later = bool(pause.get("to")) and _utc(pause["to"]) > at
        kept.append({**pause, "to": None} if ended_later else pause)
    return json.dumps(kept, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _due_at(r: Any, at: datetime, cal: WorkCalendar, labels: Labels) -> tuple[datetime | None, date | None, str]:
    """Due instant, last day and status (running/paused) of an unfinished timer at ``at``."""
    pauses_then = _pauses_at(r.pauses, at)
    recorded = json.loads(pauses_then)
    # A row paused without a pause ledger (written by hand) stays paused: trust the row.
    paused = any(p.get("to") is None for p in recorded) or (r.status == "paused" and r.pauses in ("", "[]"))
    status = "paused" if paused else "running"
    try:
        extensions = json.loads(r.extensions or "[]")
    except ValueError:
        extensions = []
    extensions_then = [e for e in extensions if isinstance(e, dict) and e.get("at") and _utc(e["at"]) <= at]
    if pauses_then == _pauses_at(r.pauses, datetime.max.replace(tzinfo=UTC)) and \
            len(extensions_then) == len(extensions) and r.due_at is not None:
        return r.due_at, r.last_day, status  # nothing recorded after T changes the due instant
    defn = labels.definition(r.workflow_key, r.workflow_version)
    if defn is None:
        return r.due_at, r.last_day, status
    try:
        tdef = defn.timer(r.name)
    except LookupError:
        return r.due_at, r.last_day, status
    from caseflow.timing import timer_due  # the one rule for due instants

    shadow = TimerRow(case_id=r.case_id, name=r.name, status=status, kind=r.kind, limit_spec=r.limit_spec,
                      started_at=r.started_at, pauses=pauses_then,
                      extensions=json.dumps(extensions_then, ensure_ascii=False))
    due = timer_due(shadow, tdef, cal)
    if due is None:
        return None, None, status
    return due.due_at, due.last_day, status
