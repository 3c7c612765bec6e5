"""The engine: open, fire, pause, resume, extend, hand over, reassign and close cases.

Every running timer has an **assignee**: the person who must act before it runs out, picked when a
command starts the timer by the rule :mod:`caseflow.people` describes (the rule used is recorded in the
event). ``hand_over_step`` (转交) gives one running step to someone else; ``hand_over``/``reassign`` of the
whole case carry the steps the previous responsible person held.

A timer with ``on_expiry`` acts by itself: :meth:`Engine.expire` fires its trigger as the system actor
at the due instant, once (the event is unique per case and sequence), and any command on the case first catches up
such expiries, so nothing can be done "before" a deemed step that already happened.

Each command runs in one transaction: the case's state, its timers and one hash-chained event are
written together or not at all. A case is a row, loaded into a light object for one command and
fired through the one ``transitions.Machine`` built for its definition version (DESIGN.md: a
Machine per case costs 56 KiB; ``add_model`` on SQLModel rows fails), so memory does not grow with
the number of cases.

Commands on one case queue: each holds the case (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's row
lock) before it takes its instant, so concurrent commands succeed one after another in order. Only a
caller's explicit ``expected_version`` that went stale (``ConflictError``), or an explicit instant
earlier than the case's last event (``BackdatingError``), is refused. The case row also carries a
version, so a write that still went stale is retried on fresh state. Idempotency keys make retries
safe: a repeated key returns the first result.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select
from transitions import Machine, MachineError

from caseflow.abc import Clock
from caseflow.calendar import WorkCalendar, YearArrangement, default_calendar
from caseflow.chain import _canonical
from caseflow.checks import checked_case_id, checked_data
from caseflow.clock import SystemClock, check_instant, require_aware
from caseflow.errors import (
    AuditError,
    BackdatingError,
    CaseNotFoundError,
    CommandError,
    ConflictError,
    PermissionDeniedError,
    TransitionError,
    WorkflowNotFoundError,
)
from caseflow.people import (
    SYSTEM_ACTOR,
    get_person,
    hand_case_over,
    leads,
    may_act_for,
    reassign_case,
    record_person,
    who_stands_in,
)
from caseflow.published import Published, publish_notice, publish_workflow
from caseflow.queries import case_history, case_timers, get_case, list_cases, queue_of, triggers_allowed
from caseflow.registry import WorkflowRegistry
from caseflow.store import Absence, CaseRow, CommandRecord, EventRow, Person, Store, TimerRow, WorkflowVersion
from caseflow.timelimits import TimeLimit
from caseflow.timers import (
    expired_timer,
    extend_timer,
    finish_timer,
    hand_over_timer,
    pause_timer,
    resume_timer,
    start_timers,
    stop_timers,
)
from caseflow.timing import ACTIVE, apply_due, time_left_text
from caseflow.unitofwork import _GENERATIONS, _Ctx, _load, _new_row, _next_event, _write
from caseflow.views import AuditProblem, CaseView, EventView, QueueItem, _iso, case_view, case_view_from_json
from caseflow.workflow import WorkflowDef
from caseflow.workflowfile import parse_workflow

__all__ = ["Engine"]

_RETRIES = 20


class _NothingToDo(Exception):
    """An expiry found its timer already ended or done (another scheduler, or a command, came first)."""


class _CatchUp(Exception):
    """A command found a timer that acts by itself and has run out: that comes first."""

    def __init__(self, timer_id: int) -> None:
        super().__init__(timer_id)
        self.timer_id = timer_id


#: The actor of on_expiry commands: a person of no unit and no role, never stored.
_SYSTEM = Person(id=SYSTEM_ACTOR, name="系统(时限届满自动)", unit="", roles="")


class _Light:
    """The model a Machine fires on: only a state (DESIGN.md: never the SQLModel row)."""

    def __init__(self, state: str) -> None:
        self.state = state


class Engine:
    """Commands and queries on cases, over a :class:`~caseflow.store.Store`.

    ``backdate_window`` bounds how far in the past a command's instant may lie (a clerk may record
    a step taken this morning, not one from last month); instants more than five minutes in the
    future are refused.
    """

    def __init__(
        self,
        store: Store,
        *,
        registry: WorkflowRegistry | None = None,
        calendar: WorkCalendar | None = None,
        clock: Clock | None = None,
        backdate_window: timedelta = timedelta(days=3),
    ) -> None:
        self.store = store
        self.registry = registry if registry is not None else WorkflowRegistry.load()
        self.calendar = calendar or default_calendar()
        #: Notices and definitions loaded into the database, reread when their generation moves.
        self.published = Published(self.calendar, self.registry)
        self.clock: Clock = clock or SystemClock()
        self.backdate_window = backdate_window
        self._machines: dict[str, Machine] = {}
        self._definitions: dict[str, WorkflowDef] = {}
        self._lock = threading.Lock()
        self._stored_versions: set[str] = set()

    # ------------------------------------------------------------------ definitions

    def definition(self, version: str, session: Session | None = None) -> WorkflowDef:
        """The definition a case is pinned to, by content hash (from the registry or the database)."""
        cached = self._definitions.get(version)
        if cached is not None:
            return cached
        for defn in self.registry:
            if defn.version == version:
                self._definitions[version] = defn
                return defn
        row = None
        if session is not None:
            row = session.get(WorkflowVersion, version)
        else:
            with self.store.session() as s:
                row = s.get(WorkflowVersion, version)
        if row is None:
            raise WorkflowNotFoundError(f"no workflow definition has version {version}")
        defn = parse_workflow(row.text, path=f"<stored {row.key}@{version[:12]}>")
        self._definitions[version] = defn
        return defn

    def _machine(self, defn: WorkflowDef) -> Machine:
        with self._lock:
            machine = self._machines.get(defn.version)
            if machine is None:
                machine = Machine(model=None, **defn.transitions_kwargs())
                self._machines[defn.version] = machine
            return machine

    # ------------------------------------------------------------------ people

    def add_person(
        self,
        person_id: str,
        *,
        name: str,
        unit: str,
        roles: Iterable[str] = (),
        leader: str | None = None,
        substitute: str | None = None,
        admin: bool = False,
        channel: str | None = None,
        replace: bool = False,
    ) -> Person:
        """Record a person (``replace=True`` updates an existing one)."""
        return record_person(self.store, person_id, name=name, unit=unit, roles=roles, leader=leader,
                             substitute=substitute, admin=admin, channel=channel, replace=replace)

    def person(self, person_id: str) -> Person:
        """A person by id."""
        with self.store.session() as s:
            return get_person(s, person_id)

    def people(self) -> list[Person]:
        """Everyone, by id."""
        with self.store.session() as s:
            return list(s.exec(select(Person).order_by(Person.id)))

    def mark_absent(self, person_id: str, *, start: date, end: date) -> None:
        """Record an absence (dates inclusive): the person's queue and alerts go to their substitute."""
        if end < start:
            raise CommandError(f"absence runs backwards: {start} .. {end}")
        with self.store.session(write=True) as s:
            person = get_person(s, person_id)
            if not person.substitute_id:
                raise CommandError(f"{person_id!r} has no substitute (AB岗); set one before marking them absent")
            s.add(Absence(person_id=person_id, from_date=start, to_date=end))

    def stand_in(self, session: Session, person_id: str, day: date) -> str:
        """Who acts for ``person_id`` on ``day`` (AB岗): see :func:`~caseflow.people.resolve_stand_in`."""
        return who_stands_in(session, person_id, day)

    # ------------------------------------------------------------------ commands

    def _now(self, at: datetime | None) -> datetime:
        now = require_aware(self.clock.now(), "clock")
        if at is None:
            return now
        return self._check_instant(at, now)

    def _check_instant(self, at: datetime, now: datetime) -> datetime:
        """An explicitly given instant, if it lies within the back-dating window and not in the future."""
        at = check_instant(at, "command instant")
        if at < now - self.backdate_window:
            raise BackdatingError(
                f"{at.isoformat()} is more than {self.backdate_window} before now ({now.isoformat()}); "
                "record commands when they happen, or ask an administrator to widen the back-dating window"
            )
        if at > now + timedelta(minutes=5):
            raise BackdatingError(f"{at.isoformat()} lies in the future (now is {now.isoformat()})")
        return at

    def _instant_holding(self, case: CaseRow, at: datetime | None) -> datetime:
        """A command's instant, taken while it holds the case.

        Without an explicit instant it is now, or the case's last event if this process's clock lags
        behind the one that wrote it (events stay in order). An explicit instant earlier than the last
        event is refused: commands are recorded in order.
        """
        now = require_aware(self.clock.now(), "clock")
        last_at = case.last_event_at
        if at is None:
            return max(now, last_at) if last_at is not None else now
        when = self._check_instant(at, now)
        if last_at is not None and when < last_at:
            raise BackdatingError(
                f"{when.isoformat()} is before the case's last event ({_iso(last_at)}); "
                "commands are recorded in order"
            )
        return when

    def _replay(self, session: Session, key: str | None, command: str) -> CaseView | None:
        if not key:
            return None
        return self._replay_record(session.get(CommandRecord, key), key, command)

    @staticmethod
    def _replay_record(record: CommandRecord | None, key: str | None, command: str) -> CaseView | None:
        """The first result of an idempotency key used before (None if it was not)."""
        if not key or record is None:
            return None
        if record.command != command:
            raise ConflictError(
                f"idempotency key {key!r} was used for a {record.command} command; use a new key for {command}"
            )
        return case_view_from_json(json.loads(record.result))

    def _run(
        self,
        command: str,
        case_id: int,
        *,
        actor: str,
        at: datetime | None,
        key: str | None,
        expected_version: int | None,
        apply: Callable[[_Ctx], dict[str, Any]],
        assign: str | None = None,
        system_at: datetime | None = None,
        starts_timers: bool = False,
        people: tuple[str, ...] = (),
    ) -> CaseView:
        """Run one command on a case: ``apply`` changes it, inside the transaction that holds it.

        ``starts_timers``: the command may start timers, so the read brings what picking their assignees
        needs; ``people``: others the command looks up (read with the rest, no statement of their own).
        """
        if at is not None and system_at is None:
            self._now(at)  # refuse an instant outside the window before waiting for the case
        for _attempt in range(_RETRIES):
            try:
                with self.store.session(write=True) as s:
                    # Hold the case first (SQLite: BEGIN IMMEDIATE on this first statement; PostgreSQL: the
                    # row lock), then take the instant: concurrent commands queue and each one's instant
                    # follows the last event, rather than being refused as back-dated (issue 9).
                    loaded = _load(s, case_id=checked_case_id(case_id), key=key, people=(assign, *people),
                                   actor=None if system_at is not None else actor, roster=starts_timers)
                    case = loaded.case
                    self._sync(s, loaded.generations)
                    replay = self._replay_record(loaded.record, key, command)
                    if replay is not None:
                        return replay
                    if case is None:
                        raise CaseNotFoundError(f"no case has the id {case_id}")
                    if system_at is not None:
                        # A system command (on_expiry) is recorded at the due instant, however long ago
                        # that was (never before the case's last event).
                        when = max(system_at, case.last_event_at or system_at)
                    else:
                        when = self._instant_holding(case, at)
                    timers, old_version = loaded.timers, case.version
                    if system_at is None and case.closed_at is None:
                        expired = expired_timer(timers, when)
                        if expired is not None:
                            raise _CatchUp(expired)
                    if expected_version is not None and case.version != expected_version:
                        raise ConflictError(
                            f"case {case_id} is at version {case.version}, not {expected_version}: "
                            "someone changed it; reload it and decide again"
                        )
                    if case.closed_at is not None:
                        raise CommandError(f"case {case_id} is closed ({case.state}); it takes no more commands")
                    person = _SYSTEM if system_at is not None else get_person(s, actor)
                    ctx = _Ctx(s, case, self.definition(case.workflow_version, s), person, when, timers,
                               self.calendar, assign=assign, roster=loaded.roster)
                    if assign is not None:
                        get_person(s, assign)
                    from_state = case.state
                    data = apply(ctx)
                    if assign is not None and not ctx.assigned:
                        raise CommandError(f"{command} starts no timer on case {case_id}, so there is no step "
                                           f"to assign to {assign!r}; leave --assign out")
                    if assign is not None and not any(a["rule"] == "assigned" for a in ctx.assigned):
                        raise CommandError(
                            f"{assign!r} holds none of the roles of the steps this command starts "
                            f"({', '.join(a['timer'] + ': ' + (a.get('role') or '-') for a in ctx.assigned)}); "
                            "name a person of that role"
                        )
                    trigger = data.pop("_trigger", None)
                    event = _next_event(case, command, when, actor, data, trigger=trigger,
                                        from_state=from_state, to_state=case.state)
                    view = case_view(ctx.definition, case, ctx.timers)
                    written: list[EventRow | CommandRecord] = [event]
                    if key:
                        written.append(_new_row(CommandRecord, key=key, command=command, case_id=case.id,
                                                     result=_canonical(view.to_dict()), created_at=when))
                    _write(s, case, old_version, ctx.timers, written)
                return view
            except _CatchUp as catch_up:
                # What a timer does by itself happened first (at its due instant): record it in a
                # transaction of its own, then judge this command on the state it left.
                self.expire(catch_up.timer_id)
                continue
            except (StaleDataError, sa.exc.IntegrityError) as exc:
                if key or expected_version is not None:
                    # A concurrent command with this key or on this version won: report it, never redo.
                    with self.store.session() as s:
                        replay = self._replay(s, key, command)
                        if replay is not None:
                            return replay
                    raise ConflictError(
                        f"case {case_id} was changed by another command at the same moment; reload it and retry"
                    ) from exc
                continue
        raise ConflictError(f"case {case_id} is too busy: {_RETRIES} attempts lost to concurrent commands")

    def _append_event(self, s: Session, case: CaseRow, kind: str, at: datetime, actor: str,  # noqa: PLR0917
                      data: dict[str, Any], *, trigger: str | None, from_state: str | None,
                      to_state: str | None) -> None:
        """Add the case's next event to the session, chained to the head the case row keeps."""
        s.add(_next_event(case, kind, at, actor, data, trigger=trigger, from_state=from_state, to_state=to_state))

    #: A case's timer rows, in order (the audit and the per-case recompute read them through the engine).
    _timers = staticmethod(case_timers)

    def open(
        self,
        workflow: str,
        *,
        actor: str,
        at: datetime | None = None,
        data: Mapping[str, Any] | None = None,
        responsible: str | None = None,
        key: str | None = None,
        assign: str | None = None,
        prepare: Callable[[Session, int], Mapping[str, Any] | None] | None = None,
        close_reason: str | None = None,
    ) -> CaseView:
        """Open a case under the latest definition of ``workflow``; the actor is 首问负责 unless told.

        ``assign`` names the person who must act on the timers the opening starts (those of a role they
        hold); otherwise the rule of this module's docstring picks each timer's assignee.

        ``prepare(session, case_id)`` runs in the opening's transaction once the case has its id, before
        its timers and first event: it may write rows of its own (the desk links the visit) and return data
        to add to the case's. ``close_reason`` closes the case in the same transaction and instant (当场办结),
        recorded as its own ``close`` event as :meth:`close` would. Either way the case, its events, and what
        ``prepare`` wrote commit together or not at all.
        """
        when = self._now(at)
        defn = self.registry.latest(workflow)
        data = checked_data(data)
        self._pin_version(defn, when)
        with self.store.session(write=True) as s:
            loaded = _load(s, case_id=None, actor=actor, key=key, people=(responsible, assign), roster=True,
                           owner=responsible or actor)
            if self._sync(s, loaded.generations):
                defn = self.registry.latest(workflow)  # a newly published one: stored when it was published
            replay = self._replay_record(loaded.record, key, "open")
            if replay is not None:
                return replay
            opener = loaded.actor or get_person(s, actor)
            if not opener.admin and not (opener.role_set & set(defn.roles)):
                raise PermissionDeniedError(
                    f"{actor!r} (roles: {', '.join(sorted(opener.role_set)) or 'none'}) has no role in "
                    f"{workflow!r}; its roles are {', '.join(defn.roles)}"
                )
            owner = get_person(s, responsible) if responsible else opener
            # The id is taken before the insert (PostgreSQL: the sequence; SQLite: the next rowid, under the
            # write lock) so the case is inserted once, its event hash and chain head already computed.
            case = _new_row(CaseRow, id=loaded.next_id, workflow_key=defn.key, workflow_version=defn.version,
                            state=defn.initial, version=1, responsible_id=owner.id, unit=owner.unit,
                            opened_by=actor, opened_at=when, updated_at=when, data=_canonical(data))
            if prepare is not None:
                # What prepare writes may refer to the case: here alone it is inserted first (then updated).
                s.add(case)
                s.flush()
                extra = checked_data(prepare(s, loaded.next_id or 0))
                if extra:
                    data = {**data, **extra}
                    case.data = _canonical(data)
            timers: list[TimerRow] = []
            if assign is not None:
                get_person(s, assign)
            ctx = _Ctx(s, case, defn, opener, when, timers, self.calendar, assign=assign, roster=loaded.roster)
            started = start_timers(ctx, defn.initial, None)
            if assign is not None and not any(a["rule"] == "assigned" for a in ctx.assigned):
                raise CommandError(f"{assign!r} holds none of the roles of the steps opening {workflow!r} starts "
                                   f"({', '.join(a['timer'] + ': ' + (a.get('role') or '-') for a in ctx.assigned)}"
                                   "); name a person of that role")
            written: list[EventRow | CommandRecord] = [
                _next_event(case, "open", when, actor, {"data": data, "responsible": owner.id, "unit": owner.unit,
                                                        "started": started, "assigned": ctx.assigned,
                                                        "workflow_version": defn.version},
                            trigger=None, from_state=None, to_state=case.state)]
            if close_reason is not None:
                closed = self._close(ctx, close_reason)
                written.append(_next_event(case, "close", when, actor, closed, trigger=None,
                                           from_state=case.state, to_state=case.state))
            view = case_view(defn, case, timers)
            if key:
                written.append(_new_row(CommandRecord, key=key, command="open", case_id=case.id,
                                        result=_canonical(view.to_dict()), created_at=when))
            _write(s, case, 1 if prepare is not None else None, timers, written)
        return view

    def _sync(self, s: Session, seen: tuple[int, int] | None = None) -> bool:
        """Take up notices and definitions loaded (by any process) since the last command.

        Holds the generation counters shared until the command commits, so a load waits for it (see
        :mod:`caseflow.published`). ``seen``: the counters as the command's own read found them (with
        the lock already held).
        """
        if not self.published.check(s, lock=True, seen=seen):
            return False
        self.calendar = self.published.calendar
        return True

    def refresh(self) -> bool:
        """Take up what was loaded since the last command, outside a command (queries, the scheduler).

        On PostgreSQL the counters are read in one autocommit statement (one round trip, not BEGIN, SELECT
        and COMMIT: the HTTP app refreshes before every request); a transaction is opened only to reread
        what moved.
        """
        if not self.store.is_sqlite:
            with self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                seen = tuple(conn.execute(_GENERATIONS).one())
            if not self.published.moved((int(seen[0] or 0), int(seen[1] or 0))):
                return False
        with self.store.session() as s:
            return self._sync(s)

    def load_notice(self, arrangement: YearArrangement, text: str, *, fmt: str, actor: str) -> list[dict[str, Any]]:
        """Load a validated holiday notice for every process and move every open deadline it changes.

        The notice is stored in the database (:func:`~caseflow.published.publish_notice`); each change is
        written as an event on its case, as :meth:`reload_calendar` does.
        """
        publish_notice(self.store, arrangement, text, fmt=fmt, actor=actor, at=self.clock.now())
        self.refresh()
        return self._recompute_open(self.calendar, source=f"{arrangement.year} 通知 {arrangement.source}", actor=actor)

    def publish_workflow(self, defn: WorkflowDef, *, actor: str) -> None:
        """Make ``defn`` the definition new cases of its key use, in every process (open cases keep theirs)."""
        publish_workflow(self.store, defn, actor=actor, at=self.clock.now())
        self._stored_versions.add(defn.version)
        self.refresh()

    def _pin_version(self, defn: WorkflowDef, when: datetime) -> None:
        """Store the exact definition text cases are pinned to (once; safe when processes race)."""
        if defn.version in self._stored_versions:
            return
        try:
            with self.store.session(write=True) as s:
                if s.get(WorkflowVersion, defn.version) is None:
                    s.add(WorkflowVersion(version=defn.version, key=defn.key, title=defn.title, text=defn.text,
                                          loaded_at=when))
        except sa.exc.IntegrityError:
            pass  # another process stored the same version a moment ago: same content hash, same text
        self._stored_versions.add(defn.version)

    def fire(
        self,
        case_id: int,
        trigger: str,
        *,
        actor: str,
        at: datetime | None = None,
        data: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        key: str | None = None,
        assign: str | None = None,
    ) -> CaseView:
        """Fire ``trigger``: check roles, required data and grounds, move the state, stop and start timers.

        ``assign`` names the person who must act on the timers this starts (see :meth:`open`).
        """
        fields = checked_data(data)

        def apply(ctx: _Ctx) -> dict[str, Any]:
            defn, case = ctx.definition, ctx.case
            transition = defn.find_transition(trigger, case.state)
            allowed = defn.allowed_triggers(case.state)
            state_label = defn.state(case.state).label
            if transition is None:
                known = any(t.trigger == trigger for t in defn.transitions)
                what = f"{trigger!r} cannot be fired in state {case.state} ({state_label})" if known else \
                    f"{defn.key} has no trigger {trigger!r}"
                raise TransitionError(f"{what}; triggers allowed there: {', '.join(allowed) or 'none'}")
            if not ctx.actor.admin and not transition.allows(ctx.actor.role_set):
                raise PermissionDeniedError(
                    f"{ctx.actor.id!r} (roles: {', '.join(sorted(ctx.actor.role_set)) or 'none'}) may not fire "
                    f"{trigger!r}; it needs one of: {', '.join(transition.roles)}"
                )
            missing = transition.missing_fields(fields)
            if missing:
                raise CommandError(
                    f"{trigger!r} needs the data field(s) {', '.join(missing)} (e.g. --data {missing[0]}=…)"
                )
            refused = transition.ground_refused(fields)
            if refused is not None:
                raise CommandError(refused)
            return self._take(ctx, trigger, fields)

        return self._run("fire", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=apply, assign=assign, starts_timers=True)

    def _take(self, ctx: _Ctx, trigger: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Move the case along ``trigger`` (already checked): state, data, timers stopped and started."""
        defn, case = ctx.definition, ctx.case
        light = _Light(case.state)
        try:
            self._machine(defn).events[trigger].trigger(light)
        except (MachineError, KeyError) as exc:
            raise TransitionError(f"{trigger!r} refused in state {case.state}: {exc}") from None
        from_state, case.state = case.state, light.state
        merged = case.data_dict()
        merged.update(fields)
        case.data = _canonical(merged)
        stopped = stop_timers(ctx, case.state, trigger)
        started = start_timers(ctx, case.state if case.state != from_state else None, trigger)
        if case.state in defn.final_states:
            case.closed_at = ctx.at
        result = {"_trigger": trigger, "data": fields, "stopped": stopped, "started": started}
        if ctx.assigned:
            result["assigned"] = ctx.assigned
        return result

    def expire(self, timer_id: int) -> CaseView | None:
        """Do what a run-out timer does by itself (``on_expiry``): fire its trigger as the system actor,
        recorded at the due instant. Exactly once per timer, however many schedulers call it: the
        command holds the case and the event is unique per (case, seq), so a second caller finds the
        timer done. None when the timer has nothing (left) to do.

        A trigger that can no longer fire is recorded as refused, and the timer does not try again.
        """
        with self.store.session() as s:
            row = s.get(TimerRow, timer_id)
            if row is None or row.status != "running" or not row.expiry_trigger or row.due_at is None:
                return None
            case_id, due_at = row.case_id, row.due_at

        def apply(ctx: _Ctx) -> dict[str, Any]:
            current = next((r for r in ctx.timers if r.id == timer_id), None)
            if current is None or current.status != "running" or not current.expiry_trigger:
                raise _NothingToDo
            trigger = current.expiry_trigger
            info = {"timer": current.name, "round": current.round, "due_at": _iso(current.due_at)}
            current.expiry_trigger = None  # it acts once
            if ctx.definition.find_transition(trigger, ctx.case.state) is None:
                return {"_trigger": trigger, **info, "refused": f"{trigger!r} cannot fire in state {ctx.case.state}"}
            result = self._take(ctx, trigger, {})
            return {**result, "expired": info}

        try:
            # No idempotency key: the case's next event is unique per (case, seq), so of two schedulers
            # racing for this timer one commits and the other, retried on fresh state, finds it done.
            return self._run("expire", case_id, actor=SYSTEM_ACTOR, at=None, key=None,
                             expected_version=None, apply=apply, system_at=due_at, starts_timers=True)
        except _NothingToDo:
            return None

    def pause(self, case_id: int, timer: str, *, reason: str, actor: str, at: datetime | None = None,
              data: Mapping[str, Any] | None = None, expected_version: int | None = None,
              key: str | None = None) -> CaseView:
        """Stop a timer's clock for a reason its definition admits (函调, 鉴定, 补正 …).

        ``data`` carries the fields the reason's policy requires (e.g. the written notice to the
        applicant, 行政许可法 第四十五条); they are kept with the pause and in the event.
        """
        fields = checked_data(data)
        return self._run("pause", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=lambda ctx: pause_timer(ctx, timer, reason, fields))

    def resume(self, case_id: int, timer: str, *, actor: str, at: datetime | None = None,
               expected_version: int | None = None, key: str | None = None) -> CaseView:
        """Restart a paused timer; for day limits the days from the pause to the day before resuming are excluded."""
        return self._run("resume", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=lambda ctx: resume_timer(ctx, timer))

    def extend(self, case_id: int, timer: str, *, by: TimeLimit | str, grounds: str, actor: str,
               at: datetime | None = None, data: Mapping[str, Any] | None = None,
               expected_version: int | None = None, key: str | None = None) -> CaseView:
        """Extend a timer within its policy; the actor is the approver and needs an approving role.

        ``data`` carries the fields the extension policy requires (e.g. when the applicant was told
        the reason, 行政许可法 第四十二条); they are kept with the extension and in the event.
        """
        amount = TimeLimit.parse(by) if isinstance(by, str) else by
        fields = checked_data(data)
        return self._run("extend", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=lambda ctx: extend_timer(ctx, timer, amount, grounds, fields))

    def hand_over(self, case_id: int, *, to: str, actor: str, slip: str | None = None, at: datetime | None = None,
                  expected_version: int | None = None, key: str | None = None) -> CaseView:
        """Hand the case to ``to`` (with the 交办单 number): the receiver becomes responsible."""
        return self._run("hand_over", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=lambda ctx: hand_case_over(ctx, to, slip), people=(to,))

    def reassign(self, case_id: int, *, to: str, actor: str, reason: str = "", at: datetime | None = None,
                 expected_version: int | None = None, key: str | None = None) -> CaseView:
        """A leader (or administrator) gives the case to someone else."""
        return self._run("reassign", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=lambda ctx: reassign_case(ctx, to, reason), people=(to,))

    def hand_over_step(self, case_id: int, timer: str, *, to: str, actor: str, reason: str,
                       at: datetime | None = None, expected_version: int | None = None,
                       key: str | None = None) -> CaseView:
        """转交 one running step: ``to`` (who must hold the timer's role) becomes its assignee.

        The current assignee, their leader, their substitute while they are absent, the case's
        responsible person or an administrator may hand it over; the reason is recorded in the chain.
        """
        return self._run("hand_over_step", case_id, actor=actor, at=at, key=key,
                         expected_version=expected_version, apply=lambda ctx: hand_over_timer(ctx, timer, to, reason),
                         people=(to,))

    def close(self, case_id: int, *, actor: str, reason: str, at: datetime | None = None,
              expected_version: int | None = None, key: str | None = None) -> CaseView:
        """Close a case outside its workflow (withdrawn, merged, transferred): every timer stops."""
        return self._run("close", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=lambda ctx: self._close(ctx, reason))

    def _close(self, ctx: _Ctx, reason: str) -> dict[str, Any]:
        """Stop every timer and close the case (the ``close`` event's data)."""
        if not reason or not reason.strip():
            raise CommandError("closing a case outside its workflow needs a reason")
        may_act_for(ctx, "close")
        stopped = []
        for row in ctx.timers:
            if row.status in ACTIVE:
                finish_timer(ctx, row, "cancelled")
                stopped.append(row.name)
        ctx.case.closed_at = ctx.at
        ctx.case.close_reason = reason
        return {"reason": reason, "stopped": stopped}

    leads = staticmethod(leads)

    #: A timer row's due instants from its ledger (the audit's replay and the per-case recompute use it too).
    _apply_due = staticmethod(apply_due)

    # ------------------------------------------------------------------ queries

    def get(self, case_id: int) -> CaseView:
        """The case as it stands."""
        return get_case(self, case_id)

    def history(self, case_id: int) -> list[EventView]:
        """Every event of the case, oldest first."""
        return case_history(self, case_id)

    def allowed_triggers(self, case_id: int, person_id: str) -> list[str]:
        """The triggers ``person_id`` may fire on the case now."""
        return triggers_allowed(self, case_id, person_id)

    def queue(self, person_id: str, *, at: datetime | None = None) -> list[QueueItem]:
        """The running clocks assigned to a person, most urgent first (overdue, then least time left).

        A clock is in the queue of its assignee (the person who must act on that step), not of the
        case's responsible person. Includes the steps of people who are absent and have this person as
        substitute (AB岗).
        """
        return queue_of(self, person_id, at)

    def time_left(self, timer: TimerRow, now: datetime) -> str:
        """``还剩 2 个工作日`` / ``逾期 3 个工作日`` / ``逾期 5 小时 10 分``.

        ``还剩 N 个工作日`` counts the whole working days (calendar days, for day limits) left **after
        today**, up to and including the last day: on the day a 3-working-day limit starts it says 3
        (the start day does not count), on the day before its last day 1, and on the last day itself, with
        less than a day to go, the hours and minutes left. Today's remaining hours are never counted as a
        day. Lateness counts each day past the last day that has begun, as the leaders' digest does.
        Clock limits, and anything under a day, in hours.
        """
        return time_left_text(timer, now, self.calendar)

    def cases(self, *, unit: str | None = None, open_only: bool = True, limit: int = 1000) -> list[CaseView]:
        """Cases, newest first, optionally of one unit."""
        return list_cases(self, unit=unit, open_only=open_only, limit=limit)

    # ------------------------------------------------------------------ calendar reload

    def reload_calendar(self, calendar: WorkCalendar, *, source: str, actor: str = "system",
                        on_move: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Switch to ``calendar`` and recompute every open day-based timer whose answer changes.

        Each change is written as an event on its case: "due moved from … to … : holidays/2027.yaml".
        ``calendar`` is built from files: notices loaded into the database still replace its years.
        The work is done in bulk by :func:`caseflow.recompute.recompute_open_timers`; give ``on_move``
        to stream the changes instead of collecting them (the list returned is then empty).
        """
        with self.store.session() as s:
            calendar = self.published.rebase(calendar, s)
        self.calendar = calendar
        return self._recompute_open(calendar, source=source, actor=actor, on_move=on_move)

    def _recompute_open(self, calendar: WorkCalendar, *, source: str, actor: str,
                        on_move: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        from caseflow.recompute import recompute_open_timers

        changes: list[dict[str, Any]] = []
        recompute_open_timers(self, calendar, source=source, actor=actor,
                              on_move=on_move if on_move is not None else changes.append)
        return changes

    # ------------------------------------------------------------------ audit

    def verify_audit(self, *, case_id: int | None = None, replay: bool = True) -> list[AuditProblem]:
        """Check every case's hash chain and its tables against the replayed chain (:func:`caseflow.audit.verify`).

        Signed checkpoints are checked by :func:`caseflow.audit.verify` given the checkpoint file.
        """
        from caseflow.audit import verify  # the audit module builds on the engine

        return verify(self, case_id=case_id, replay=replay)

    def assert_audit(self) -> None:
        """Raise :class:`AuditError` naming the first problem, if any."""
        problems = self.verify_audit()
        if problems:
            raise AuditError(f"{len(problems)} audit problem(s); first: {problems[0]}")
