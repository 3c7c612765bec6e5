"""The engine: open, fire, pause, resume, extend, hand over, reassign and close cases.

Every running timer has an **assignee**: the person who must act before it runs out (queues, alerts,
escalation and per-person figures follow the assignee, not the case's responsible person). When a
command starts a timer the assignee is, in this order (the rule used is recorded in the event):

1. ``assigned`` — the person the command names (``assign=``), if they hold the timer's role;
2. ``responsible`` — the case's responsible person (首问负责), if they hold the role (or it has none);
3. ``actor`` — the person firing the command, if they hold the role;
4. ``unit_only_holder`` — the only person of the case's unit holding the role;
5. ``leader`` — the actor's leader (else the responsible person's leader), if they hold the role;
6. ``fallback`` — the case's responsible person, when nobody holding the role could be found.

``hand_over_step`` (转交) gives one running step to someone else; ``hand_over``/``reassign`` of the
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

import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_attribute
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select
from transitions import Machine, MachineError

from caseflow.abc import Clock
from caseflow.calendar import ZONE, WorkCalendar, YearArrangement, default_calendar
from caseflow.clock import SystemClock, check_instant, parse_instant, require_aware
from caseflow.errors import (
    AuditError,
    BackdatingError,
    CaseNotFoundError,
    CommandError,
    ConflictError,
    PermissionDeniedError,
    PersonNotFoundError,
    TimeLimitError,
    TimerError,
    TransitionError,
    WorkflowNotFoundError,
)
from caseflow.published import LOCK_KEY, Published, publish_notice, publish_workflow
from caseflow.registry import WorkflowRegistry
from caseflow.store import (
    BEGIN_FIRST,
    MAX_CASE_ID,
    Absence,
    CaseRow,
    CommandRecord,
    EventRow,
    Generation,
    Person,
    Store,
    TimerRow,
    WorkflowVersion,
)
from caseflow.timelimits import Due, TimeLimit, compute_due, escalation_instant
from caseflow.workflow import TimerDef, WorkflowDef
from caseflow.workflowfile import parse_workflow

__all__ = [
    "AuditProblem",
    "CaseView",
    "Engine",
    "EventView",
    "QueueItem",
    "TimerView",
]

GENESIS_HASH = "0" * 64
ACTIVE = ("running", "paused")
#: The actor of what timers do by themselves (``on_expiry``); no person may take this id.
SYSTEM_ACTOR = "system"
#: Timer statuses: running, paused, and how a timer ended. ``stopped`` is the pre-0004 name of cancelled.
TIMER_STATUSES = ("running", "paused", "met", "breached", "cancelled")
_RETRIES = 20


# ------------------------------------------------------------------------------------------- views


@dataclass(frozen=True, eq=False)
class TimerView:
    """A timer as callers see it. ``due_at`` is None while an uncapped pause holds the clock."""

    name: str
    label: str
    status: str
    due_at: datetime | None
    last_day: date | None
    provisional: bool
    limit: str = field(kw_only=True)
    started_at: datetime = field(kw_only=True)
    warn_at: datetime | None = field(default=None, kw_only=True)
    original_due_at: datetime | None = field(default=None, kw_only=True)
    paused_since: datetime | None = field(default=None, kw_only=True)
    kind: str = field(default="statutory", kw_only=True)
    #: The person who must act before the timer runs out.
    assignee: str | None = field(default=None, kw_only=True)
    escalate_at: datetime | None = field(default=None, kw_only=True)
    basis: str = field(default="", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: ``name, status, due_at, last_day, provisional, assignee`` and details."""
        return {
            "name": self.name,
            "label": self.label,
            "status": self.status,
            "due_at": _iso(self.due_at),
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "provisional": self.provisional,
            "limit": self.limit,
            "kind": self.kind,
            "started_at": _iso(self.started_at),
            "warn_at": _iso(self.warn_at),
            "original_due_at": _iso(self.original_due_at),
            "paused_since": _iso(self.paused_since),
            "assignee": self.assignee,
            "escalate_at": _iso(self.escalate_at),
            "basis": self.basis,
        }


@dataclass(frozen=True, eq=False)
class CaseView:
    """A snapshot of a case after a command. Compares by id (an entity)."""

    id: int
    workflow: str
    state: str
    version: int
    responsible: str
    unit: str = field(kw_only=True)
    state_label: str = field(default="", kw_only=True)
    workflow_version: str = field(default="", kw_only=True)
    opened_at: datetime | None = field(default=None, kw_only=True)
    closed_at: datetime | None = field(default=None, kw_only=True)
    data: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    timers: tuple[TimerView, ...] = field(default=(), kw_only=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CaseView) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("case", self.id))

    def timer(self, name: str) -> TimerView:
        """The latest timer called ``name``."""
        for t in reversed(self.timers):
            if t.name == name:
                return t
        raise KeyError(f"case {self.id} has no timer {name!r}; it has {[t.name for t in self.timers]}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the CLI and HTTP API."""
        return {
            "id": self.id,
            "workflow": self.workflow,
            "state": self.state,
            "state_label": self.state_label,
            "version": self.version,
            "responsible": self.responsible,
            "unit": self.unit,
            "workflow_version": self.workflow_version,
            "opened_at": _iso(self.opened_at),
            "closed_at": _iso(self.closed_at),
            "data": dict(self.data),
            "timers": [t.to_dict() for t in self.timers],
        }


@dataclass(frozen=True)
class EventView:
    """One entry of a case's history."""

    seq: int
    kind: str
    at: datetime
    actor: str
    trigger: str | None = field(default=None, kw_only=True)
    from_state: str | None = field(default=None, kw_only=True)
    to_state: str | None = field(default=None, kw_only=True)
    data: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    hash: str = field(default="", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {"seq": self.seq, "kind": self.kind, "at": _iso(self.at), "actor": self.actor,
                "trigger": self.trigger, "from_state": self.from_state, "to_state": self.to_state,
                "data": dict(self.data), "hash": self.hash}


@dataclass(frozen=True)
class QueueItem:
    """One running clock in a person's queue."""

    case_id: int
    workflow: str
    state: str
    timer: str
    label: str
    status: str
    due_at: datetime | None
    last_day: date | None
    overdue: bool
    time_left: str
    responsible: str = field(kw_only=True)
    via_substitute_for: str | None = field(default=None, kw_only=True)
    #: The person the step is on (the queue's owner, or the absent person they stand in for).
    assignee: str = field(default="", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {"case": self.case_id, "workflow": self.workflow, "state": self.state, "timer": self.timer,
                "label": self.label, "status": self.status, "due_at": _iso(self.due_at),
                "last_day": self.last_day.isoformat() if self.last_day else None, "overdue": self.overdue,
                "time_left": self.time_left, "responsible": self.responsible,
                "via_substitute_for": self.via_substitute_for, "assignee": self.assignee}


@dataclass(frozen=True)
class AuditProblem:
    """Something the audit found (see :mod:`caseflow.audit`).

    ``kind`` is ``chain`` (an event does not verify), ``projection`` (the tables differ from the replayed
    chain) or ``checkpoint`` (the chain differs from the latest signed checkpoint); ``case_id`` is None for
    a problem of the checkpoint file itself.
    """

    case_id: int | None
    seq: int | None
    event_id: int | None
    problem: str
    kind: str = field(default="chain", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {"case": self.case_id, "seq": self.seq, "event_id": self.event_id, "kind": self.kind,
                "problem": self.problem}

    def __str__(self) -> str:
        where = f"case {self.case_id}" if self.case_id is not None else "checkpoints"
        if self.seq is not None:
            where += f", event #{self.seq}"
        if self.event_id is not None:
            where += f" (row id {self.event_id})"
        return f"{where}: {self.problem}"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(ZONE).isoformat() if value is not None else None


class _NothingToDo(Exception):
    """An expiry found its timer already ended or done (another scheduler, or a command, came first)."""


class _CatchUp(Exception):
    """A command found a timer that acts by itself and has run out: that comes first."""

    def __init__(self, timer_id: int) -> None:
        super().__init__(timer_id)
        self.timer_id = timer_id


#: The actor of on_expiry commands: a person of no unit and no role, never stored.
_SYSTEM = Person(id=SYSTEM_ACTOR, name="系统(时限届满自动)", unit="", roles="")


def _expired(timers: Iterable[TimerRow], at: datetime) -> int | None:
    """The first running timer that acts by itself (on_expiry) and ran out by ``at``."""
    for row in timers:
        if (row.status == "running" and row.expiry_trigger and row.due_at is not None and row.due_at <= at
                and row.id is not None):
            return row.id
    return None


class _Light:
    """The model a Machine fires on: only a state (DESIGN.md: never the SQLModel row)."""

    def __init__(self, state: str) -> None:
        self.state = state


# ---------------------------------------------------------------------------------------- hashing


#: Case data is a form's worth of fields, not a document store: caps keep one request from filling the
#: database (a 20 MB field was once accepted) and keep every value storable.
MAX_DATA_BYTES = 64 * 1024
MAX_TEXT_CHARS = 10_000
MAX_ID_CHARS = 64
_INT_RANGE = 2**63


def _bad_text(text: str) -> str | None:
    try:
        text.encode("utf-8")  # fails exactly on a code point U+D800..U+DFFF (a surrogate), in C
    except UnicodeEncodeError:
        return "holds a lone surrogate (text that is not valid Unicode)"
    if "\x00" in text:
        return "holds a NUL character"
    return None


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, str):
        problem = _bad_text(value)
        if problem is None and len(value) > MAX_TEXT_CHARS:
            problem = f"is {len(value)} characters long; a field holds at most {MAX_TEXT_CHARS}"
        if problem:
            raise CommandError(f"case data field {where} {problem}")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -_INT_RANGE < value < _INT_RANGE:
            raise CommandError(f"case data field {where} = {value} is beyond a 64-bit whole number")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CommandError(f"case data field {where} must be a finite number (NaN and Infinity are not JSON)")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_value(item, f"{where}.{_checked_key(key)}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
    else:
        raise CommandError(f"case data field {where} is a {type(value).__name__}; give text, numbers, true/false, "
                           "lists or mappings")


def _checked_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > 100 or _bad_text(key) or any(
            ord(c) < 32 for c in key):
        raise CommandError(f"case data field name {str(key)[:120]!r} must be 1–100 characters of printable text")
    return key


def checked_data(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Case data as given to a command, checked: printable field names, valid text, finite numbers, and at
    most :data:`MAX_DATA_BYTES` in all (:data:`MAX_TEXT_CHARS` a field). Refused naming the field."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise CommandError(f"case data must be a mapping of fields, got {type(data).__name__}")
    result = {}
    for key, value in data.items():
        _check_value(value, repr(_checked_key(key)))
        result[key] = value
    size = len(_canonical(result).encode("utf-8"))
    if size > MAX_DATA_BYTES:
        raise CommandError(f"case data takes {size} bytes; a command carries at most {MAX_DATA_BYTES} "
                           "(attach documents elsewhere and record their reference)")
    return result


def checked_text(value: str | None, what: str, *, max_chars: int = MAX_TEXT_CHARS, required: bool = False) -> str:
    """A reason, a name or an id typed by a person: valid text, within ``max_chars``; refused naming ``what``."""
    text = "" if value is None else value
    if not isinstance(text, str):
        raise CommandError(f"{what} must be text, got {type(text).__name__}")
    problem = _bad_text(text)
    if problem is None and len(text) > max_chars:
        problem = f"is {len(text)} characters long; at most {max_chars}"
    if problem is None and required and not text.strip():
        problem = "is empty"
    if problem:
        raise CommandError(f"{what} {problem}")
    return text


def checked_case_id(case_id: int) -> int:
    """A case id as given: a whole number from 1 to :data:`~caseflow.store.MAX_CASE_ID` (else no case has it)."""
    if isinstance(case_id, bool) or not isinstance(case_id, int) or not 0 < case_id <= MAX_CASE_ID:
        raise CaseNotFoundError(f"no case has the id {case_id!r}; case ids are whole numbers from 1 to {MAX_CASE_ID}")
    return case_id


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def event_hash(row: EventRow) -> str:
    """The SHA-256 of an event's fields and its predecessor's hash."""
    payload = {
        "case_id": row.case_id, "seq": row.seq, "kind": row.kind,
        "at": row.at.astimezone(UTC).isoformat(), "recorded_at": row.recorded_at.astimezone(UTC).isoformat(),
        "actor": row.actor, "trigger": row.trigger, "from_state": row.from_state, "to_state": row.to_state,
        "data": row.data, "prev_hash": row.prev_hash,
    }
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- one command's reads and writes

_CASES: sa.Table = CaseRow.__table__  # type: ignore[attr-defined]
_TIMERS: sa.Table = TimerRow.__table__  # type: ignore[attr-defined]
_EVENTS: sa.Table = EventRow.__table__  # type: ignore[attr-defined]
_COMMANDS: sa.Table = CommandRecord.__table__  # type: ignore[attr-defined]
_GENS: sa.Table = Generation.__table__  # type: ignore[attr-defined]


def _column_map(model: type[Any]) -> tuple[tuple[str, str], ...]:
    """(attribute, column key) of a table model's columns."""
    return tuple((prop.key, prop.columns[0].key) for prop in sa.inspect(model).column_attrs)


_COLUMNS: dict[type[Any], tuple[tuple[str, str], ...]] = {
    model: _column_map(model) for model in (CaseRow, TimerRow, EventRow, CommandRecord)
}


def _defaults(model: type[Any]) -> dict[str, Any]:
    return {name: info.default for name, info in model.model_fields.items() if not info.is_required()}


_DEFAULTS: dict[type[Any], dict[str, Any]] = {model: _defaults(model) for model in _COLUMNS}


def _new_row(model: type[Any], **values: Any) -> Any:
    """A new row object of ``model`` (its other fields at their defaults), built as the ORM builds a row it
    loads: SQLModel's validating constructor costs a command more than its SQL does."""
    defaults = _DEFAULTS.get(model)
    if defaults is None:  # a table model of another module (the desk's, the ratings'): read once
        defaults = _DEFAULTS[model] = _defaults(model)
    obj = sa.inspect(model).class_manager.new_instance()
    obj.__dict__.update(defaults)
    obj.__dict__.update(values)
    return obj


def _set(obj: Any, **values: Any) -> None:
    """Set columns of a row through SQLAlchemy's instrumentation alone (the change is tracked as by an
    assignment): SQLModel's ``__setattr__`` also runs pydantic's, whose bookkeeping nothing here reads
    and which cost more than the assignment (the due instants are set on every command and replay)."""
    for name, value in values.items():
        set_attribute(obj, name, value)


def _row_values(obj: Any) -> dict[str, Any]:
    """Every column value of a new row (its id left to the database when not set)."""
    values = {column: getattr(obj, attr) for attr, column in _COLUMNS[type(obj)]}
    if values.get("id", 0) is None:
        del values["id"]
    return values


def _changed_values(obj: Any) -> dict[str, Any]:
    """The columns of a loaded row a command changed (the ORM keeps each one's value as loaded)."""
    state = sa.inspect(obj)
    columns = dict(_COLUMNS[type(obj)])
    return {columns[attr]: getattr(obj, attr) for attr, before in state.committed_state.items()
            if attr in columns and getattr(obj, attr) != before}


@dataclass(frozen=True)
class _Roster:
    """What picking assignees reads (PostgreSQL reads it with the rest of a command): who in the case's unit
    holds which roles (the unit_only_holder rule), and the roles of the leaders of the people the command
    read (the leader rule). Roles are space-separated, as stored."""

    unit: str
    members: list[tuple[str, str]]
    leaders: dict[str, str]


@dataclass
class _Loaded:
    """What one statement (two on PostgreSQL) read for a command, after it holds the case."""

    generations: tuple[int, int]
    case: CaseRow | None = None
    actor: Person | None = None
    record: CommandRecord | None = None
    timers: list[TimerRow] = field(default_factory=list)
    #: The id a case being opened takes (read with the rest, so the open event's hash can name it).
    next_id: int | None = None
    #: PostgreSQL, when asked for: the case's unit's people and roles (the unit_only_holder rule).
    roster: _Roster | None = None
    #: The first row read: it holds the people loaded, as the session's identity map holds only objects
    #: referenced elsewhere (so ``session.get`` finds them while the command runs).
    row: Any = None


def _load(s: Session, *, case_id: int | None, actor: str | None, key: str | None,
          people: Iterable[str | None] = (), roster: bool = False, owner: str | None = None) -> _Loaded:
    """Hold the case and read everything a command needs, in as few statements as the database allows.

    SQLite: one statement after ``BEGIN IMMEDIATE`` (the write lock is held from the start). PostgreSQL:
    the transaction's BEGIN and the case row locked ``FOR UPDATE`` in one query (:data:`BEGIN_FIRST`: the
    case id and the lock key are written into it, so it has no parameters), whose statement also takes the
    notices' advisory lock shared (:mod:`caseflow.published`); then one statement for the generation
    counters, the timers, the people, the idempotency record and, with ``roster`` (the command may start
    timers), who in the case's unit (opening: the unit of ``owner``, the person the case will belong to)
    holds which roles and the leaders of the people read, so picking assignees reads nothing. The second
    statement must stay apart from the first: it starts after both locks are held, so it sees every command
    and load that committed before (READ COMMITTED takes a snapshot per statement). So a command is four
    round trips on PostgreSQL: BEGIN with the locks, the read, the write (:func:`_write`), COMMIT. People
    and the case land in the session, so later ``session.get`` calls for them send nothing.
    """
    pg = s.get_bind().dialect.name == "postgresql"
    case = None
    if pg:
        if case_id is not None:
            if isinstance(case_id, bool) or not isinstance(case_id, int):  # it is written into the query
                raise CaseNotFoundError(f"no case has the id {case_id!r}")
            case = s.execute(_LOCK_CASE, {"case_id": case_id}).scalar()
        else:
            s.execute(_LOCK_ONLY)
    wanted = [p for p in dict.fromkeys(people) if p is not None and p != actor]
    params: dict[str, Any] = {"case_id": case_id, "actor": actor, "key": key}
    params.update({f"person{i}": pid for i, pid in enumerate(wanted)})
    responsible = "join" if case_id is not None and not pg else None
    if pg and case is not None and case.responsible_id not in (actor, *wanted):
        responsible, params["responsible"] = "param", case.responsible_id
    unit_of = None
    if pg and roster and case is not None:
        unit_of, params["unit"] = "unit", case.unit
    elif pg and roster and case_id is None and owner is not None:
        unit_of = "actor" if owner == actor else f"person{wanted.index(owner)}"
    shape = (pg, case_id is None, actor is not None, len(wanted), responsible, bool(key), unit_of)
    query, slots = _READS.get(shape) or _read_query(*shape)
    rows = s.execute(query, params).all()
    first = rows[0]
    loaded = _Loaded((int(first[0] or 0), int(first[1] or 0)), case=case,
                     next_id=int(first[2]) if first[2] is not None else None, row=first)
    if "case" in slots:
        loaded.case = first[slots["case"]]
    if "actor" in slots:
        loaded.actor = first[slots["actor"]]
    if "record" in slots:
        loaded.record = first[slots["record"]]
    if "timers" in slots:
        column = slots["timers"]
        loaded.timers = [row[column] for row in rows if row[column] is not None]
    if unit_of is not None:
        unit = params["unit"] if unit_of == "unit" else getattr(first[slots[unit_of]], "unit", None)
        if unit is not None:
            leaders = {first[i]: first[i + 1] for name, i in slots.items()
                       if name.endswith("_leader") and first[i] is not None}
            # json_agg over nobody is NULL: a unit without people
            loaded.roster = _Roster(unit, [(str(pid), str(roles)) for pid, roles in first[slots["roster"]] or ()],
                                    leaders)
    return loaded


_PEOPLE: sa.Table = Person.__table__  # type: ignore[attr-defined]
#: Who in a unit holds which roles (for the unit_only_holder rule).
_UNIT_ROLES = sa.select(_PEOPLE.c.id, _PEOPLE.c.roles).where(_PEOPLE.c.unit == sa.bindparam("unit"))
#: Our own constant, written into the query (BEGIN_FIRST takes no parameters).
_LOCK = sa.func.pg_advisory_xact_lock_shared(sa.literal_column(str(int(LOCK_KEY)), sa.BigInteger))
_GENERATIONS = sa.select(*(sa.select(_GENS.c.value).where(_GENS.c.name == name).scalar_subquery()
                           for name in ("calendar", "workflows")))
#: The case id is rendered into the query when it runs (an int: _load checks), the compiled form cached once.
_LOCK_CASE = (sa.select(CaseRow, _LOCK)
              .where(CaseRow.id == sa.bindparam("case_id", type_=sa.Integer, literal_execute=True))  # type: ignore[arg-type]
              .with_for_update().execution_options(**{BEGIN_FIRST: True}))
_LOCK_ONLY = sa.select(_LOCK).execution_options(**{BEGIN_FIRST: True})
#: How many statement shapes each cache below keeps (then it starts again).
_SHAPES = 256
#: Built once per shape, so SQLAlchemy's compiled cache answers without rebuilding or re-keying them.
_READS: dict[tuple[Any, ...], tuple[Any, dict[str, int]]] = {}


def _read_query(pg: bool, opening: bool, has_actor: bool, people: int, responsible: str | None,  # noqa: PLR0917
                has_key: bool, unit_of: str | None = None) -> tuple[Any, dict[str, int]]:
    """The one SELECT of :func:`_load` for a shape of command: a one-row head (the generation counters,
    the next case id when opening) outer-joined to each thing the command reads.

    ``unit_of`` adds the unit's roster as one JSON value: of the unit given as a parameter (``unit``), or
    of the person read under that name (an uncorrelated subquery, or one per row of a one-row read); and
    the leader of each person read (the assignee rules: module docstring)."""

    def generation(name: str) -> Any:
        return sa.select(_GENS.c.value).where(_GENS.c.name == name).scalar_subquery()

    head: list[Any] = [generation("calendar").label("cal"), generation("workflows").label("wf")]
    if opening:
        head.append((sa.func.nextval(sa.func.pg_get_serial_sequence("caseflow_cases", "id")) if pg else
                     sa.select(sa.func.coalesce(sa.func.max(_CASES.c.id), 0) + 1).scalar_subquery())
                    .label("next_id"))
    g = sa.select(*head).subquery("g")
    columns: list[Any] = [g.c.cal, g.c.wf, g.c.next_id if opening else sa.null()]
    joins: list[tuple[Any, Any]] = []
    slots: dict[str, int] = {}

    def entity(name: str, target: Any, onclause: Any) -> None:
        slots[name] = len(columns)
        columns.append(target)
        joins.append((target, onclause))

    aliases: dict[str, Any] = {}

    def person(name: str, equals: Any) -> None:
        alias = aliases[name] = aliased(Person, name=name)
        entity(name, alias, alias.id == equals)

    if not opening and not pg:
        entity("case", CaseRow, CaseRow.id == sa.bindparam("case_id"))
    if has_actor:
        person("actor", sa.bindparam("actor"))
    for i in range(people):
        person(f"person{i}", sa.bindparam(f"person{i}"))
    if responsible == "join":
        person("responsible", CaseRow.responsible_id)
    elif responsible == "param":
        person("responsible", sa.bindparam("responsible"))
    if has_key:
        entity("record", CommandRecord, CommandRecord.key == sa.bindparam("key"))
    if not opening:
        entity("timers", TimerRow, TimerRow.case_id == sa.bindparam("case_id"))
    if unit_of is not None:
        # The leader rule may follow: the id and roles of each one's leader (two columns, not a Person).
        for name, alias in aliases.items():
            leader = _PEOPLE.alias(f"{name}_leader")
            slots[f"{name}_leader"] = len(columns)
            columns.extend((leader.c.id, leader.c.roles))
            joins.append((leader, leader.c.id == alias.leader_id))
        unit = sa.bindparam("unit") if unit_of == "unit" else aliases[unit_of].unit
        member = _PEOPLE.alias("member")
        slots["roster"] = len(columns)
        columns.append(sa.select(sa.func.json_agg(sa.func.json_build_array(member.c.id, member.c.roles)))
                       .where(member.c.unit == unit).scalar_subquery())
    query = sa.select(*columns).select_from(g)
    for target, onclause in joins:
        query = query.outerjoin(target, onclause)
    if not opening:
        query = query.order_by(TimerRow.id)  # type: ignore[arg-type]
    if len(_READS) >= _SHAPES:
        _READS.clear()
    _READS[(pg, opening, has_actor, people, responsible, has_key, unit_of)] = query, slots
    return query, slots


def _write(s: Session, case: CaseRow, old_version: int | None, timers: list[TimerRow],
           rows: Iterable[EventRow | CommandRecord]) -> None:
    """Write what a command changed: the case (inserted, or updated if still at ``old_version``), the timers
    it changed or started, its events and idempotency record; the session forgets the case and timers, so
    the ORM flushes nothing of theirs (rows a caller added to the session itself still commit with it).

    PostgreSQL: one statement (data-modifying CTEs; the case's ``RETURNING`` tells whether its version
    still matched). SQLite: one statement per table touched, with no round trip to pay. A stale
    version raises :class:`StaleDataError`, as the ORM's version check did.
    """
    pg = s.get_bind().dialect.name == "postgresql"
    new_case = sa.inspect(case).transient
    case_values = _row_values(case) if new_case else _changed_values(case)
    changed: list[tuple[int, dict[str, Any]]] = []
    started: list[dict[str, Any]] = []
    for row in timers:
        if row.id is None:
            started.append(_row_values(row))
        else:
            changes = _changed_values(row)
            if changes:
                changed.append((row.id, changes))
    added = [(_EVENTS if isinstance(obj, EventRow) else _COMMANDS, _row_values(obj)) for obj in rows]
    conn = s.connection()
    if pg:
        shape = (new_case, tuple(case_values), tuple(tuple(c) for _, c in changed), len(started),
                 tuple(t.name for t, _ in added))
        query = _WRITES.get(shape)
        if query is None:
            query = _write_query(shape)
        params: dict[str, Any] = {f"c_{k}": v for k, v in case_values.items()}
        params.update(c_id=case.id, c_old=old_version)
        for i, (timer_id, changes) in enumerate(changed):
            params[f"t{i}_id"] = timer_id
            params.update({f"t{i}_{k}": v for k, v in changes.items()})
        for j, values in enumerate(started):
            params.update({f"n{j}_{k}": v for k, v in values.items()})
        for j, (_table, values) in enumerate(added):
            params.update({f"a{j}_{k}": v for k, v in values.items()})
        count = conn.execute(query, params).scalar()
    else:
        if new_case:
            count = conn.execute(_CASES.insert(), case_values).rowcount
        else:
            count = conn.execute(_UPDATE_CASE, {**case_values, "w_id": case.id, "w_old": old_version}).rowcount
        if count == 1:
            for timer_id, changes in changed:
                conn.execute(_UPDATE_TIMER, {**changes, "w_id": timer_id})
            if started:
                conn.execute(_TIMERS.insert(), started)
            for table, values in added:
                conn.execute(table.insert(), values)
    if count != 1:
        raise StaleDataError(f"case {case.id} is no longer at version {old_version}")
    for obj in (case, *timers):  # written: the ORM must not flush them again at commit
        if obj in s:
            s.expunge(obj)


#: SET columns come from each call's parameters (SQLAlchemy compiles, and caches, one form per set).
_UPDATE_CASE = _CASES.update().where(_CASES.c.id == sa.bindparam("w_id"), _CASES.c.version == sa.bindparam("w_old"))
_UPDATE_TIMER = _TIMERS.update().where(_TIMERS.c.id == sa.bindparam("w_id"))
_WRITES: dict[tuple[Any, ...], Any] = {}


def _write_query(shape: tuple[Any, ...]) -> Any:
    """PostgreSQL's one write statement for a shape of command (which columns, how many rows)."""
    new_case, case_columns, timer_changes, started, added = shape

    def binds(table: sa.Table, prefix: str, columns: Iterable[str]) -> dict[str, Any]:
        return {c: sa.bindparam(f"{prefix}_{c}", type_=table.c[c].type) for c in columns}

    if new_case:
        case_stmt: Any = _CASES.insert().values(binds(_CASES, "c", case_columns))
    else:
        case_stmt = (_CASES.update().where(_CASES.c.id == sa.bindparam("c_id"),
                                           _CASES.c.version == sa.bindparam("c_old"))
                     .values(binds(_CASES, "c", case_columns)))
    others: list[Any] = []
    for i, columns in enumerate(timer_changes):
        others.append(_TIMERS.update().where(_TIMERS.c.id == sa.bindparam(f"t{i}_id"))
                      .values(binds(_TIMERS, f"t{i}", columns)))
    timer_columns = [c.key for c in _TIMERS.columns if c.key != "id"]
    for j in range(started):  # an INSERT each: SQLAlchemy does not cache a multi-row VALUES
        others.append(_TIMERS.insert().values(binds(_TIMERS, f"n{j}", timer_columns)))
    for j, name in enumerate(added):
        table = _EVENTS if name == _EVENTS.name else _COMMANDS
        columns = [c.key for c in table.columns if not (table is _EVENTS and c.key == "id")]
        others.append(table.insert().values(binds(table, f"a{j}", columns)))
    written = case_stmt.returning(_CASES.c.id).cte("w_case")
    query = sa.select(sa.func.count()).select_from(written)
    if others:
        query = query.add_cte(*(stmt.cte(f"w_{i}") for i, stmt in enumerate(others)))
    if len(_WRITES) >= _SHAPES:  # a few dozen shapes occur; the bound only keeps an odd workload from growing it
        _WRITES.clear()
    _WRITES[shape] = query
    return query


# ----------------------------------------------------------------------------------------- engine


@dataclass
class _Ctx:
    """What one command works on, inside its transaction."""

    session: Session
    case: CaseRow
    definition: WorkflowDef
    actor: Person
    at: datetime
    timers: list[TimerRow]
    #: The person the command names for the timers it starts (``assign=``), if any.
    assign: str | None = None
    #: What the command's timer starts decided: [{timer, assignee, rule}].
    assigned: list[dict[str, Any]] = field(default_factory=list)
    #: Who in a unit holds which roles, if the command's read brought it (PostgreSQL).
    roster: _Roster | None = None


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
        if not person_id or not person_id.strip():
            raise CommandError("a person needs an id")
        if person_id == SYSTEM_ACTOR:
            raise CommandError(f"{SYSTEM_ACTOR!r} is reserved for what timers do by themselves; choose another id")
        checked_text(person_id, "a person's id", max_chars=MAX_ID_CHARS)
        if any(ord(c) < 32 or c.isspace() for c in person_id):
            raise CommandError(f"a person's id {person_id[:80]!r} may not hold spaces or control characters")
        checked_text(name, f"the name of {person_id!r}", max_chars=100, required=True)
        checked_text(unit, f"the unit of {person_id!r}", max_chars=100, required=True)
        checked_text(channel, f"the channel of {person_id!r}", max_chars=500)
        for ref in (leader, substitute):
            if ref is not None:
                checked_text(ref, "a person's id", max_chars=MAX_ID_CHARS)
        role_list = sorted({r.strip() for r in roles if r.strip()})
        with self.store.session(write=True) as s:
            for ref, what in ((leader, "leader"), (substitute, "substitute")):
                if ref is not None and ref != person_id and s.get(Person, ref) is None:
                    raise PersonNotFoundError(f"{what} {ref!r} is not a known person; add them first")
            existing = s.get(Person, person_id)
            if existing is not None and not replace:
                raise CommandError(f"person {person_id!r} exists already; use replace to update them")
            if existing is not None and existing.admin and not admin:
                # Someone must always be able to manage people, tokens and definitions.
                others = s.exec(select(Person.id).where(Person.admin, Person.id != person_id)
                                .limit(1)).first()
                if others is None:
                    raise CommandError(f"{person_id!r} is the last administrator; make someone else an "
                                       "administrator before removing their rights")
            person = existing or Person(id=person_id, name=name, unit=unit)
            person.name, person.unit, person.roles = name, unit, " ".join(role_list)
            person.leader_id, person.substitute_id, person.admin, person.channel = leader, substitute, admin, channel
            s.add(person)
        return person

    def person(self, person_id: str) -> Person:
        """A person by id."""
        with self.store.session() as s:
            return self._person(s, person_id)

    def people(self) -> list[Person]:
        """Everyone, by id."""
        with self.store.session() as s:
            return list(s.exec(select(Person).order_by(Person.id)))

    @staticmethod
    def _person(session: Session, person_id: str) -> Person:
        person = session.get(Person, person_id)
        if person is None:
            raise _missing_person(person_id)
        return person

    def mark_absent(self, person_id: str, *, start: date, end: date) -> None:
        """Record an absence (dates inclusive): the person's queue and alerts go to their substitute."""
        if end < start:
            raise CommandError(f"absence runs backwards: {start} .. {end}")
        with self.store.session(write=True) as s:
            person = self._person(s, person_id)
            if not person.substitute_id:
                raise CommandError(f"{person_id!r} has no substitute (AB岗); set one before marking them absent")
            s.add(Absence(person_id=person_id, from_date=start, to_date=end))

    def stand_in(self, session: Session, person_id: str, day: date) -> str:
        """Who acts for ``person_id`` on ``day`` (AB岗): see :func:`resolve_stand_in`."""

        def is_absent(pid: str) -> bool:
            return session.exec(
                select(Absence.id).where(Absence.person_id == pid, Absence.from_date <= day, Absence.to_date >= day)
            ).first() is not None

        def field_of(pid: str, name: str) -> str | None:
            person = session.get(Person, pid)
            return getattr(person, name) if person is not None else None

        return resolve_stand_in(person_id, is_absent=is_absent,
                                substitute_of=lambda pid: field_of(pid, "substitute_id"),
                                leader_of=lambda pid: field_of(pid, "leader_id"))

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
        return _view_from_json(json.loads(record.result))

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
                        expired = _expired(timers, when)
                        if expired is not None:
                            raise _CatchUp(expired)
                    if expected_version is not None and case.version != expected_version:
                        raise ConflictError(
                            f"case {case_id} is at version {case.version}, not {expected_version}: "
                            "someone changed it; reload it and decide again"
                        )
                    if case.closed_at is not None:
                        raise CommandError(f"case {case_id} is closed ({case.state}); it takes no more commands")
                    person = _SYSTEM if system_at is not None else self._person(s, actor)
                    ctx = _Ctx(s, case, self.definition(case.workflow_version, s), person, when, timers,
                               assign=assign, roster=loaded.roster)
                    if assign is not None:
                        self._person(s, assign)
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
                    event = self._new_event(case, command, when, actor, data, trigger=trigger,
                                            from_state=from_state, to_state=case.state)
                    view = self._view(ctx.definition, case, ctx.timers)
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
        s.add(self._new_event(case, kind, at, actor, data, trigger=trigger, from_state=from_state,
                              to_state=to_state))

    @staticmethod
    def _new_event(case: CaseRow, kind: str, at: datetime, actor: str,
                   data: dict[str, Any], *, trigger: str | None, from_state: str | None,
                   to_state: str | None) -> EventRow:
        """The case's next event, chained to the head the case row keeps (the case row moves on with it:
        version, head hash, last instant). Its hash is computed here, so it is inserted once, complete."""
        assert case.id is not None
        previous = case.last_event_hash
        seq = case.version + 1 if previous is not None else 1
        if previous is not None:
            case.version = seq  # version_id_col: UPDATE … WHERE version = old; a stale one raises
        case.updated_at = at
        text = _canonical(data)
        problem = _bad_text(text)
        if problem:  # a reason or a ground typed with a lone surrogate: nothing is written
            raise CommandError(f"the command's text {problem}; retype it")
        row: EventRow = _new_row(EventRow, case_id=case.id, seq=seq, kind=kind, at=at, recorded_at=datetime.now(UTC),
                                 actor=actor, trigger=trigger, from_state=from_state, to_state=to_state, data=text,
                                 prev_hash=previous or GENESIS_HASH, hash="")
        row.hash = event_hash(row)
        case.last_event_hash, case.last_event_at = row.hash, at
        return row

    @staticmethod
    def _timers(s: Session, case_id: int) -> list[TimerRow]:
        return list(s.exec(select(TimerRow).where(TimerRow.case_id == case_id)
                           .order_by(TimerRow.id)))  # type: ignore[arg-type]

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
            opener = loaded.actor or self._person(s, actor)
            if not opener.admin and not (opener.role_set & set(defn.roles)):
                raise PermissionDeniedError(
                    f"{actor!r} (roles: {', '.join(sorted(opener.role_set)) or 'none'}) has no role in "
                    f"{workflow!r}; its roles are {', '.join(defn.roles)}"
                )
            owner = self._person(s, responsible) if responsible else opener
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
                self._person(s, assign)
            ctx = _Ctx(s, case, defn, opener, when, timers, assign=assign, roster=loaded.roster)
            started = self._start_timers(ctx, defn.initial, None)
            if assign is not None and not any(a["rule"] == "assigned" for a in ctx.assigned):
                raise CommandError(f"{assign!r} holds none of the roles of the steps opening {workflow!r} starts "
                                   f"({', '.join(a['timer'] + ': ' + (a.get('role') or '-') for a in ctx.assigned)}"
                                   "); name a person of that role")
            written: list[EventRow | CommandRecord] = [
                self._new_event(case, "open", when, actor, {"data": data, "responsible": owner.id, "unit": owner.unit,
                                                            "started": started, "assigned": ctx.assigned,
                                                            "workflow_version": defn.version},
                                trigger=None, from_state=None, to_state=case.state)]
            if close_reason is not None:
                closed = self._close(ctx, close_reason)
                written.append(self._new_event(case, "close", when, actor, closed, trigger=None,
                                               from_state=case.state, to_state=case.state))
            view = self._view(defn, case, timers)
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
        stopped = self._stop_timers(ctx, case.state, trigger)
        started = self._start_timers(ctx, case.state if case.state != from_state else None, trigger)
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

        def apply(ctx: _Ctx) -> dict[str, Any]:
            row, tdef = self._active_timer(ctx, timer)
            policy = tdef.pause_policy(reason)
            if policy is None:
                admitted = ", ".join(tdef.pauses) or "none"
                raise TimerError(f"timer {timer!r} does not admit the pause reason {reason!r}; it admits: {admitted}")
            missing = policy.missing_fields(fields)
            if missing:
                raise CommandError(
                    f"a pause of {timer!r} for {reason} must record {', '.join(missing)} "
                    f"(e.g. --data {missing[0]}=…)"
                )
            if row.status != "running":
                raise TimerError(f"timer {timer!r} is {row.status}, not running; only a running timer can pause")
            if row.due_at is not None and ctx.at >= row.due_at:
                raise TimerError(f"timer {timer!r} ran out at {_iso(row.due_at)}; it can no longer be paused")
            pauses = json.loads(row.pauses)
            entry: dict[str, Any] = {"reason": reason, "from": ctx.at.astimezone(UTC).isoformat(), "to": None,
                                     "charged_to": policy.charged_to, "actor": ctx.actor.id}
            if fields:
                entry["data"] = fields
            pauses.append(entry)
            row.pauses = _canonical(pauses)
            row.status = "paused"
            self._recompute(ctx, row)
            result: dict[str, Any] = {"timer": timer, "reason": reason, "charged_to": policy.charged_to}
            if fields:
                result["data"] = fields
            return result

        return self._run("pause", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=apply)

    def resume(self, case_id: int, timer: str, *, actor: str, at: datetime | None = None,
               expected_version: int | None = None, key: str | None = None) -> CaseView:
        """Restart a paused timer; for day limits the days from the pause to the day before resuming are excluded."""

        def apply(ctx: _Ctx) -> dict[str, Any]:
            row, _tdef = self._active_timer(ctx, timer)
            if row.status != "paused":
                raise TimerError(f"timer {timer!r} is {row.status}, not paused")
            pauses = json.loads(row.pauses)
            pauses[-1]["to"] = ctx.at.astimezone(UTC).isoformat()
            row.pauses = _canonical(pauses)
            row.status = "running"
            before = row.due_at
            self._recompute(ctx, row)
            return {"timer": timer, "reason": pauses[-1]["reason"], "due_at": _iso(row.due_at),
                    "was_due_at": _iso(before)}

        return self._run("resume", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=apply)

    def extend(self, case_id: int, timer: str, *, by: TimeLimit | str, grounds: str, actor: str,
               at: datetime | None = None, data: Mapping[str, Any] | None = None,
               expected_version: int | None = None, key: str | None = None) -> CaseView:
        """Extend a timer within its policy; the actor is the approver and needs an approving role.

        ``data`` carries the fields the extension policy requires (e.g. when the applicant was told
        the reason, 行政许可法 第四十二条); they are kept with the extension and in the event.
        """
        amount = TimeLimit.parse(by) if isinstance(by, str) else by
        fields = checked_data(data)

        def apply(ctx: _Ctx) -> dict[str, Any]:
            row, tdef = self._active_timer(ctx, timer)
            if tdef.extension is None:
                raise TimerError(f"timer {timer!r} ({tdef.label}) admits no extension ({tdef.basis})")
            if not grounds or not grounds.strip():
                raise TimerError("an extension needs its grounds (延期理由), which are told to the applicant")
            limit = _limit_from_spec(row.limit_spec)
            if amount.unit != limit.unit:
                raise TimerError(f"timer {timer!r} runs in {limit.unit}; extend it by {limit.unit}, not {amount.unit}")
            if row.status != "running":
                raise TimerError(f"timer {timer!r} is {row.status}; only a running timer can be extended")
            if row.due_at is not None and ctx.at >= row.due_at:
                raise TimerError(
                    f"timer {timer!r} ran out at {_iso(row.due_at)}; an extension must be approved before the "
                    "limit runs out"
                )
            previous = json.loads(row.extensions)
            policy = tdef.extension
            missing = policy.missing_fields(fields)
            if missing:
                raise CommandError(
                    f"an extension of {timer!r} must record {', '.join(missing)} (e.g. --data {missing[0]}=…)"
                )
            if policy.max_times is not None and len(previous) >= policy.max_times:
                raise TimerError(f"timer {timer!r} may be extended {policy.max_times} time(s); it has been already")
            total = sum(int(e["amount"]) for e in previous) + amount.amount
            tiers = [t for t in policy.tiers if t.covers(grounds)]
            if not tiers:
                all_grounds = sorted({g for t in policy.tiers for g in t.grounds})
                raise TimerError(f"grounds {grounds!r} are not among those allowed: {', '.join(all_grounds)}")
            permitted = [t for t in tiers if not t.approver_roles or ctx.actor.role_set & set(t.approver_roles)]
            if not permitted:
                roles = sorted({r for t in tiers for r in t.approver_roles})
                raise PermissionDeniedError(
                    f"{ctx.actor.id!r} may not approve this extension; it needs one of: {', '.join(roles)}"
                )
            fitting = [t for t in permitted if total <= t.max_total.amount
                       and (t.min_each is None or amount.amount >= t.min_each.amount)]
            if not fitting:
                best = max(t.max_total.amount for t in permitted)
                raise TimerError(
                    f"extending {timer!r} by {amount} makes {total} {limit.unit} of extension in all; "
                    f"the policy allows at most {best} {limit.unit} on these grounds"
                )
            fitting = [t for t in fitting if t.max_each is None or amount.amount <= t.max_each.amount]
            if not fitting:
                each = max(t.max_each.amount for t in permitted if t.max_each is not None)
                raise TimerError(f"one extension of {timer!r} may add at most {each} {limit.unit}; got {amount}")
            grant: dict[str, Any] = {"amount": amount.amount, "grounds": grounds, "approver": ctx.actor.id,
                                     "at": ctx.at.astimezone(UTC).isoformat()}
            if fields:
                grant["data"] = fields
            previous.append(grant)
            row.extensions = _canonical(previous)
            before = row.due_at
            self._recompute(ctx, row)
            result: dict[str, Any] = {"timer": timer, "by": str(amount), "grounds": grounds,
                                      "approver": ctx.actor.id, "due_at": _iso(row.due_at),
                                      "was_due_at": _iso(before)}
            if fields:
                result["data"] = fields
            return result

        return self._run("extend", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=apply)

    def hand_over(self, case_id: int, *, to: str, actor: str, slip: str | None = None, at: datetime | None = None,
                  expected_version: int | None = None, key: str | None = None) -> CaseView:
        """Hand the case to ``to`` (with the 交办单 number): the receiver becomes responsible."""

        def apply(ctx: _Ctx) -> dict[str, Any]:
            self._may_act_for(ctx, "hand over")
            receiver = self._receiver(ctx, to)
            before = ctx.case.responsible_id
            ctx.case.responsible_id, ctx.case.unit = receiver.id, receiver.unit
            moved = _move_steps(ctx.timers, before, receiver.id)
            return {"from": before, "to": receiver.id, "slip": slip, "unit": receiver.unit, "steps": moved}

        return self._run("hand_over", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=apply, people=(to,))

    def reassign(self, case_id: int, *, to: str, actor: str, reason: str = "", at: datetime | None = None,
                 expected_version: int | None = None, key: str | None = None) -> CaseView:
        """A leader (or administrator) gives the case to someone else."""

        def apply(ctx: _Ctx) -> dict[str, Any]:
            current = self._person(ctx.session, ctx.case.responsible_id)
            if not ctx.actor.admin and current.leader_id != ctx.actor.id:
                raise PermissionDeniedError(
                    f"{ctx.actor.id!r} is not the leader of {current.id!r} nor an administrator; ask them to reassign"
                )
            receiver = self._receiver(ctx, to)
            ctx.case.responsible_id, ctx.case.unit = receiver.id, receiver.unit
            moved = _move_steps(ctx.timers, current.id, receiver.id)
            return {"from": current.id, "to": receiver.id, "reason": reason, "unit": receiver.unit, "steps": moved}

        return self._run("reassign", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=apply, people=(to,))

    def hand_over_step(self, case_id: int, timer: str, *, to: str, actor: str, reason: str,
                       at: datetime | None = None, expected_version: int | None = None,
                       key: str | None = None) -> CaseView:
        """转交 one running step: ``to`` (who must hold the timer's role) becomes its assignee.

        The current assignee, their leader, their substitute while they are absent, the case's
        responsible person or an administrator may hand it over; the reason is recorded in the chain.
        """

        def apply(ctx: _Ctx) -> dict[str, Any]:
            if not reason or not reason.strip():
                raise CommandError("handing a step over needs a reason (转交理由)")
            row, tdef = self._active_timer(ctx, timer)
            current = row.assignee or ctx.case.responsible_id
            holder = ctx.session.get(Person, current)
            day = ctx.at.astimezone(ZONE).date()
            may = (ctx.actor.admin or ctx.actor.id in (current, ctx.case.responsible_id)
                   or (holder is not None and holder.leader_id == ctx.actor.id)
                   or self.stand_in(ctx.session, current, day) == ctx.actor.id)
            if not may:
                raise PermissionDeniedError(
                    f"{ctx.actor.id!r} may not hand over step {timer!r} of case {ctx.case.id}: only its assignee "
                    f"({current}), their leader, their substitute while they are absent, the case's responsible "
                    "person or an administrator may"
                )
            receiver = self._person(ctx.session, to)
            if tdef.holder is not None and tdef.holder not in receiver.role_set and not receiver.admin:
                role = ctx.definition.roles.get(tdef.holder, tdef.holder)
                raise PermissionDeniedError(
                    f"{receiver.id!r} (roles: {', '.join(sorted(receiver.role_set)) or 'none'}) cannot take step "
                    f"{timer!r}: it is held by the role {tdef.holder!r} ({role})"
                )
            if receiver.id == current:
                raise CommandError(f"step {timer!r} is already assigned to {current!r}")
            row.assignee = receiver.id
            return {"timer": timer, "round": row.round, "from": current, "to": receiver.id, "reason": reason}

        return self._run("hand_over_step", case_id, actor=actor, at=at, key=key,
                         expected_version=expected_version, apply=apply, people=(to,))

    def close(self, case_id: int, *, actor: str, reason: str, at: datetime | None = None,
              expected_version: int | None = None, key: str | None = None) -> CaseView:
        """Close a case outside its workflow (withdrawn, merged, transferred): every timer stops."""
        return self._run("close", case_id, actor=actor, at=at, key=key, expected_version=expected_version,
                         apply=lambda ctx: self._close(ctx, reason))

    def _close(self, ctx: _Ctx, reason: str) -> dict[str, Any]:
        """Stop every timer and close the case (the ``close`` event's data)."""
        if not reason or not reason.strip():
            raise CommandError("closing a case outside its workflow needs a reason")
        self._may_act_for(ctx, "close")
        stopped = []
        for row in ctx.timers:
            if row.status in ACTIVE:
                self._finish(ctx, row, "cancelled")
                stopped.append(row.name)
        ctx.case.closed_at = ctx.at
        ctx.case.close_reason = reason
        return {"reason": reason, "stopped": stopped}

    def _receiver(self, ctx: _Ctx, person_id: str) -> Person:
        """The person a case is handed or reassigned to.

        Within the case's unit anyone may receive it. Across units only an administrator, or someone who
        leads both units (the leader of a person in each), may move it; to anyone else a person of another
        unit answers exactly as a missing one does, so the command reveals neither that they exist nor
        their unit.
        """
        receiver = ctx.session.get(Person, person_id)
        if receiver is not None and receiver.unit != ctx.case.unit and not ctx.actor.admin and not (
                self.leads(ctx.session, ctx.actor.id, ctx.case.unit)
                and self.leads(ctx.session, ctx.actor.id, receiver.unit)):
            receiver = None
        if receiver is None:
            raise _missing_person(person_id)
        return receiver

    @staticmethod
    def leads(session: Session, person_id: str, unit: str) -> bool:
        """Whether ``person_id`` leads ``unit``: they are the leader of someone in it."""
        return session.exec(select(Person.id).where(Person.unit == unit, Person.leader_id == person_id)
                            .limit(1)).first() is not None

    def _may_act_for(self, ctx: _Ctx, what: str) -> None:
        actor, case = ctx.actor, ctx.case
        if actor.admin or actor.id == case.responsible_id:
            return
        current = ctx.session.get(Person, case.responsible_id)
        if current is not None and current.leader_id == actor.id:
            return
        if self.stand_in(ctx.session, case.responsible_id, ctx.at.astimezone(ZONE).date()) == actor.id:
            return
        raise PermissionDeniedError(
            f"{actor.id!r} may not {what} case {case.id}: only the responsible person ({case.responsible_id}), "
            "their leader, their substitute while they are absent, or an administrator may"
        )

    # ------------------------------------------------------------------ timers

    def _active_timer(self, ctx: _Ctx, name: str) -> tuple[TimerRow, TimerDef]:
        try:
            tdef = ctx.definition.timer(name)
        except (KeyError, LookupError):
            names = ", ".join(t.name for t in ctx.definition.timers)
            raise TimerError(f"{ctx.definition.key} has no timer {name!r}; its timers are {names}") from None
        for row in reversed(ctx.timers):
            if row.name == name and row.status in ACTIVE:
                return row, tdef
        running = ", ".join(r.name for r in ctx.timers if r.status in ACTIVE) or "none"
        raise TimerError(f"timer {name!r} is not running on case {ctx.case.id}; running timers: {running}")

    def _start_timers(self, ctx: _Ctx, state: str | None, trigger: str | None) -> list[str]:
        started = []
        data = ctx.definition.with_defaults(ctx.case.data_dict())  # an unstated yes/no field reads as no
        for tdef in ctx.definition.timers_started_by(state, trigger):
            if any(r.name == tdef.name and r.status in ACTIVE for r in ctx.timers):
                continue
            if not tdef.applies_to(data):
                continue  # start.when: this case's route does not include the step
            rounds = [r.round for r in ctx.timers if r.name == tdef.name]
            assert ctx.case.id is not None
            started_at = ctx.at
            if tdef.deemed_from is not None:
                earlier = [r for r in ctx.timers if r.name == tdef.deemed_from]
                if earlier and earlier[-1].status == "breached":
                    started_at = earlier[-1].started_at
            started_at = counted_start(tdef, data, started_at)
            span = timer_limit(tdef, data, started_at, self.calendar)
            assignee, rule = self._pick_assignee(ctx, tdef)
            ctx.assigned.append({"timer": tdef.name, "assignee": assignee, "rule": rule, "role": tdef.holder})
            row: TimerRow = _new_row(TimerRow, case_id=ctx.case.id, name=tdef.name, round=max(rounds, default=0) + 1,
                                     status="running", kind=tdef.kind, limit_spec=_limit_spec(span),
                                     started_at=started_at, assignee=assignee, expiry_trigger=tdef.on_expiry)
            self._recompute(ctx, row, tdef=tdef)
            row.original_due_at = row.due_at
            ctx.timers.append(row)  # written with the rest of the command (_write)
            started.append(tdef.name)
        return started

    def _pick_assignee(self, ctx: _Ctx, tdef: TimerDef) -> tuple[str, str]:
        """(person, rule): who must act on a timer a command starts (the rule: module docstring)."""
        s, case, role = ctx.session, ctx.case, tdef.holder

        def holds(person: Person | None) -> bool:
            return person is not None and (role is None or role in person.role_set)

        if ctx.assign is not None:
            named = self._person(s, ctx.assign)
            if holds(named):
                return named.id, "assigned"
        responsible = s.get(Person, case.responsible_id)
        if role is None or holds(responsible):
            return case.responsible_id, "responsible"
        if ctx.actor.id != SYSTEM_ACTOR and holds(ctx.actor):
            return ctx.actor.id, "actor"
        # PostgreSQL read these with the rest of the command (_load); SQLite reads them here, at no round trip.
        roster = ctx.roster if ctx.roster is not None and ctx.roster.unit == case.unit else None
        members: Iterable[Any] = roster.members if roster is not None else \
            s.execute(_UNIT_ROLES, {"unit": case.unit}).all()
        of_unit = [pid for pid, roles in members if role is None or role in roles.split()]
        if len(of_unit) == 1:
            return of_unit[0], "unit_only_holder"
        for person in (ctx.actor, responsible):
            leader_id = person.leader_id if person is not None else None
            if not leader_id:
                continue
            if roster is not None and leader_id in roster.leaders:
                roles: str | None = roster.leaders[leader_id]
            else:
                leader = s.get(Person, leader_id)
                roles = leader.roles if leader is not None else None
            if roles is not None and (role is None or role in roles.split()):
                return leader_id, "leader"
        return case.responsible_id, "fallback"

    def _stop_timers(self, ctx: _Ctx, state: str, trigger: str) -> list[dict[str, Any]]:
        stopped = []
        final = state in ctx.definition.final_states
        for row in ctx.timers:
            if row.status not in ACTIVE:
                continue
            try:
                tdef = ctx.definition.timer(row.name)
            except (KeyError, LookupError):
                continue
            if tdef.cancels_on(state, trigger):
                status = "cancelled"  # its branch was not taken: 不适用, never "met"
            elif tdef.stops_on(state, trigger):
                status = "met" if row.due_at is None or ctx.at < row.due_at else "breached"
            elif final:
                status = "cancelled"  # the case ended another way before the step was done
            else:
                continue
            self._finish(ctx, row, status)
            stopped.append({"timer": row.name, "status": status, "due_at": _iso(row.due_at)})
        return stopped

    def _finish(self, ctx: _Ctx, row: TimerRow, status: str) -> None:
        if row.status == "paused":
            pauses = json.loads(row.pauses)
            pauses[-1]["to"] = ctx.at.astimezone(UTC).isoformat()
            row.pauses = _canonical(pauses)
        row.status = status
        row.stopped_at = ctx.at
        row.next_alert_at = None

    def _recompute(self, ctx: _Ctx, row: TimerRow, *, tdef: TimerDef | None = None) -> None:
        tdef = tdef or ctx.definition.timer(row.name)
        self._apply_due(row, tdef, self.calendar)

    def _apply_due(self, row: TimerRow, tdef: TimerDef, calendar: WorkCalendar) -> None:
        due = timer_due(row, tdef, calendar)
        if due is None:
            _set(row, due_at=None, last_day=None, warn_at=None, provisional=False, next_alert_at=None,
                 escalate_at=None)
            return
        warn_at = warn_instant(due, tdef, calendar, row.started_at)
        _set(row, due_at=due.due_at, last_day=due.last_day, provisional=due.provisional, warn_at=warn_at,
             escalate_at=escalation_instant(due.due_at, tdef.escalate_after, calendar))
        if row.status != "running":
            _set(row, next_alert_at=None)
        elif row.alert_level is None:
            _set(row, next_alert_at=warn_at if warn_at is not None else due.due_at)
        elif row.alert_level in ("warning", "overdue"):
            # For an overdue timer the sweep moves the instant on to escalation (it knows escalate_after);
            # a due instant moved earlier by a calendar reload must not delay that.
            _set(row, next_alert_at=due.due_at)

    # ------------------------------------------------------------------ queries

    def get(self, case_id: int) -> CaseView:
        """The case as it stands."""
        with self.store.session() as s:
            case = s.get(CaseRow, checked_case_id(case_id))
            if case is None:
                raise CaseNotFoundError(f"no case has the id {case_id}")
            return self._view(self.definition(case.workflow_version, s), case, self._timers(s, case_id))

    def history(self, case_id: int) -> list[EventView]:
        """Every event of the case, oldest first."""
        with self.store.session() as s:
            if s.get(CaseRow, checked_case_id(case_id)) is None:
                raise CaseNotFoundError(f"no case has the id {case_id}")
            rows = s.exec(select(EventRow).where(EventRow.case_id == case_id)
                          .order_by(EventRow.seq))  # type: ignore[arg-type]
            return [EventView(r.seq, r.kind, r.at.astimezone(ZONE), r.actor, trigger=r.trigger,
                              from_state=r.from_state, to_state=r.to_state, data=json.loads(r.data), hash=r.hash)
                    for r in rows]

    def allowed_triggers(self, case_id: int, person_id: str) -> list[str]:
        """The triggers ``person_id`` may fire on the case now."""
        with self.store.session() as s:
            case = s.get(CaseRow, checked_case_id(case_id))
            if case is None:
                raise CaseNotFoundError(f"no case has the id {case_id}")
            if case.closed_at is not None:
                return []
            person = self._person(s, person_id)
            defn = self.definition(case.workflow_version, s)
            result = []
            for trig in defn.allowed_triggers(case.state):
                t = defn.find_transition(trig, case.state)
                if t is not None and (person.admin or t.allows(person.role_set)):
                    result.append(trig)
            return result

    def queue(self, person_id: str, *, at: datetime | None = None) -> list[QueueItem]:
        """The running clocks assigned to a person, most urgent first (overdue, then least time left).

        A clock is in the queue of its assignee (the person who must act on that step), not of the
        case's responsible person. Includes the steps of people who are absent and have this person as
        substitute (AB岗).
        """
        now = check_instant(at, "queue instant") if at is not None else require_aware(self.clock.now(), "clock")
        today = now.astimezone(ZONE).date()
        with self.store.session() as s:
            self._person(s, person_id)
            # Whoever is absent today and resolves to this person (over any number of hops, or as leader).
            absent_today = set(s.exec(select(Absence.person_id).where(
                Absence.from_date <= today, Absence.to_date >= today)))
            absent_for = [pid for pid in sorted(absent_today - {person_id})
                          if self.stand_in(s, pid, today) == person_id]
            whose = [person_id, *absent_for] if self.stand_in(s, person_id, today) == person_id else absent_for
            if not whose:
                return []
            rows = s.exec(
                select(CaseRow, TimerRow).join(TimerRow, TimerRow.case_id == CaseRow.id)  # type: ignore[arg-type]
                .where(TimerRow.assignee.in_(whose), CaseRow.closed_at.is_(None),  # type: ignore[union-attr]
                       TimerRow.status.in_(ACTIVE))  # type: ignore[attr-defined]
            ).all()
            items = []
            for case, timer in rows:
                defn = self.definition(case.workflow_version, s)
                try:
                    label = defn.timer(timer.name).label
                except (KeyError, LookupError):
                    label = timer.name
                overdue = timer.due_at is not None and now >= timer.due_at and timer.status == "running"
                items.append(QueueItem(
                    case.id or 0, case.workflow_key, case.state, timer.name, label, timer.status, _local(timer.due_at),
                    timer.last_day, overdue, self.time_left(timer, now), responsible=case.responsible_id,
                    via_substitute_for=timer.assignee if timer.assignee != person_id else None,
                    assignee=timer.assignee or case.responsible_id,
                ))
        far = datetime.max.replace(tzinfo=UTC)
        items.sort(key=lambda i: (i.status != "running", i.due_at or far, i.case_id))
        return items

    def time_left(self, timer: TimerRow, now: datetime) -> str:
        """``还剩 2 个工作日`` / ``逾期 3 个工作日`` / ``逾期 5 小时 10 分``.

        ``还剩 N 个工作日`` counts the whole working days (calendar days, for day limits) left **after
        today**, up to and including the last day: on the day a 3-working-day limit starts it says 3
        (the start day does not count), on the day before its last day 1, and on the last day itself, with
        less than a day to go, the hours and minutes left. Today's remaining hours are never counted as a
        day. Lateness counts each day past the last day that has begun, as the leaders' digest does.
        Clock limits, and anything under a day, in hours.
        """
        if timer.status == "paused":
            return "暂停中"
        if timer.due_at is None or timer.last_day is None:
            return ""
        limit = _limit_from_spec(timer.limit_spec)
        today = now.astimezone(ZONE).date()
        unit = "个工作日" if limit.unit == "working_days" else "天"
        if now >= timer.due_at:
            late = 0
            if limit.unit == "working_days":
                late = self.calendar.working_days_between(timer.last_day, today)
            elif not limit.is_clock:
                late = (today - timer.last_day).days
            return f"逾期 {late} {unit}" if late >= 1 else f"逾期 {_clock_text(now - timer.due_at)}"
        if limit.is_clock or timer.due_at - now < timedelta(days=1):
            return f"还剩 {_clock_text(timer.due_at - now)}"
        # Whole days after today up to and including the last day (today's remainder is not a day).
        if limit.unit == "working_days":
            left = self.calendar.working_days_between(today, timer.last_day)
        else:
            left = (timer.last_day - today).days
        if left < 1:
            return f"还剩 {_clock_text(timer.due_at - now)}"
        return f"还剩 {left} {unit}"

    def cases(self, *, unit: str | None = None, open_only: bool = True, limit: int = 1000) -> list[CaseView]:
        """Cases, newest first, optionally of one unit."""
        with self.store.session() as s:
            query = select(CaseRow).order_by(CaseRow.id.desc()).limit(limit)  # type: ignore[union-attr]
            if unit is not None:
                query = query.where(CaseRow.unit == unit)
            if open_only:
                query = query.where(CaseRow.closed_at.is_(None))  # type: ignore[union-attr]
            result = []
            for case in s.exec(query):
                result.append(self._view(self.definition(case.workflow_version, s), case,
                                         self._timers(s, case.id or 0)))
            return result

    def _view(self, defn: WorkflowDef, case: CaseRow, timers: list[TimerRow]) -> CaseView:
        views = []
        for row in timers:
            basis = ""
            try:
                tdef = defn.timer(row.name)
                label, basis = tdef.label, tdef.basis
            except (KeyError, LookupError):
                label = row.name
            paused_since = None
            if row.status == "paused":
                pauses = json.loads(row.pauses)
                if pauses:
                    paused_since = datetime.fromisoformat(pauses[-1]["from"])
            views.append(TimerView(
                row.name, label, row.status, _local(row.due_at), row.last_day, row.provisional,
                limit=_limit_text(row.limit_spec, _extended_by(row.extensions)),
                started_at=_local(row.started_at) or row.started_at, warn_at=_local(row.warn_at),
                original_due_at=_local(row.original_due_at), paused_since=_local(paused_since), kind=row.kind,
                assignee=row.assignee or case.responsible_id, escalate_at=_local(row.escalate_at), basis=basis,
            ))
        try:
            state_label = defn.state(case.state).label
        except (KeyError, LookupError):
            state_label = case.state
        return CaseView(
            case.id or 0, case.workflow_key, case.state, case.version, case.responsible_id, unit=case.unit,
            state_label=state_label, workflow_version=case.workflow_version, opened_at=_local(case.opened_at),
            closed_at=_local(case.closed_at), data=case.data_dict(), timers=tuple(views),
        )

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


# ------------------------------------------------------------------------------------- timer maths


def _limit_spec(limit: TimeLimit) -> str:
    return _canonical({"amount": limit.amount, "unit": limit.unit, "roll_forward": limit.roll_forward,
                       "month_end": limit.month_end, "start_day": limit.start_day, "hour_start": limit.hour_start})


@lru_cache(maxsize=1024)
def _limit_from_spec(spec: str) -> TimeLimit:
    # A limit is immutable and a few specs recur on every timer: each command and view read them again.
    data = json.loads(spec)
    return TimeLimit(data["amount"], data["unit"], roll_forward=data["roll_forward"], month_end=data["month_end"],
                     start_day=data["start_day"], hour_start=data["hour_start"])


def _extended_by(extensions: str) -> int:
    """The amount granted by a timer's extensions (most timers have none: nothing to parse)."""
    return 0 if extensions == "[]" else sum(int(e["amount"]) for e in json.loads(extensions))


@lru_cache(maxsize=1024)
def _limit_text(spec: str, extra: int) -> str:
    """How a view shows a timer's limit with ``extra`` granted (as ``str(TimeLimit)``)."""
    limit = _limit_from_spec(spec)
    return str(TimeLimit(limit.amount + extra, limit.unit, roll_forward=limit.roll_forward))


def _missing_person(person_id: str) -> PersonNotFoundError:
    """The one answer for a person who does not exist, or whom the actor may not see."""
    return PersonNotFoundError(f"no person has the id {person_id!r}; add them with `caseflow people add`")


def _move_steps(timers: Iterable[TimerRow], before: str, after: str) -> list[str]:
    """The running steps ``before`` held move with the case to ``after`` (交办 / reassignment)."""
    moved = []
    for row in timers:
        if row.status in ACTIVE and row.assignee == before:
            row.assignee = after
            moved.append(row.name)
    return moved


def resolve_stand_in(
    person_id: str,
    *,
    is_absent: Callable[[str], bool],
    substitute_of: Callable[[str], str | None],
    leader_of: Callable[[str], str | None],
    hops: int = 5,
) -> str:
    """AB岗: ``person_id`` if present, else their substitute (followed while absent), else their leader.

    The one rule for queues (engine) and alerts (scheduler); the lookups are theirs (a query each, or a
    sweep's prefetched directory). When nobody on the substitute chain is present the leader answers,
    rather than nobody.
    """
    current, seen = person_id, {person_id}
    for _ in range(hops):
        if not is_absent(current):
            return current
        nxt = substitute_of(current)
        if not nxt or nxt in seen:
            break
        seen.add(nxt)
        current = nxt
    if not is_absent(current):
        return current
    leader = leader_of(person_id)
    if leader and not is_absent(leader):
        return leader
    return person_id


def _clock_text(span: timedelta) -> str:
    hours, minutes = divmod(int(span.total_seconds()) // 60, 60)
    return f"{hours} 小时 {minutes} 分" if hours else f"{minutes} 分"


def _local(value: datetime | None) -> datetime | None:
    return value.astimezone(ZONE) if value is not None else None



def timer_limit(tdef: TimerDef, data: Mapping[str, Any], started_at: datetime, calendar: WorkCalendar) -> TimeLimit:
    """The limit a timer starts with: its own, or for ``until: FIELD`` the span in minutes from ``started_at``
    to the instant agreed in that case-data field (the audit's replay computes it the same way).

    Refused (:class:`CommandError`, nothing written) when that instant is missing or unreadable, is not
    ahead of the start, or lies further ahead than the timer's ``limit``.
    """
    if tdef.until is None:
        return tdef.limit
    value = data.get(tdef.until)
    try:
        agreed = value if isinstance(value, datetime) else parse_instant(str(value or ""))
    except TimeLimitError:
        raise CommandError(
            f"timer {tdef.name!r} ({tdef.label}) is due at the instant in {tdef.until!r}; got {value!r} — "
            f"give it like {tdef.until}=2026-10-03T10:00 (Beijing time)"
        ) from None
    if agreed.tzinfo is None:
        agreed = agreed.replace(tzinfo=ZONE)
    if agreed <= started_at:
        raise CommandError(f"{tdef.until}={agreed.isoformat()} is not after {started_at.isoformat()}; "
                           "the agreed instant must lie ahead")
    latest = compute_due(started_at, tdef.limit, calendar=calendar).due_at
    if agreed > latest:
        raise CommandError(f"{tdef.until}={agreed.isoformat()} lies more than {tdef.limit} ahead "
                           f"(latest {latest.isoformat()}); check the date")
    return TimeLimit(int((agreed - started_at).total_seconds() // 60), "minutes")

def counted_start(tdef: TimerDef, data: Mapping[str, Any], at: datetime) -> datetime:
    """The instant a timer counts from: ``at``, or for ``start.counted_from: FIELD`` 00:00 (Beijing) of the date
    in that case-data field — the day the law counts from (刑事诉讼法 第一百六十条 "自发现之日起"), recorded by
    the command that starts the timer; ``at`` when the field is not given (the event happened when it is
    recorded: a window application received in person). The audit's replay computes it the same way.

    Refused (:class:`CommandError`, nothing written) when the date is unreadable or lies after ``at`` (the
    law's day cannot come after the command recording it).
    """
    if tdef.counted_from is None:
        return at
    value = data.get(tdef.counted_from)
    if value is None or value == "":
        return at
    try:
        day = value if isinstance(value, date) else parse_instant(str(value or "")).astimezone(ZONE).date()
    except TimeLimitError:
        raise CommandError(
            f"timer {tdef.name!r} ({tdef.label}) counts from the date in {tdef.counted_from!r}; got {value!r} — "
            f"give it like {tdef.counted_from}=2026-10-03"
        ) from None
    if isinstance(day, datetime):
        day = day.astimezone(ZONE).date()
    start = datetime.combine(day, time(0), tzinfo=ZONE)
    if start > at:
        raise CommandError(f"{tdef.counted_from}={day.isoformat()} lies after {at.astimezone(ZONE).isoformat()}; "
                           "the day the law counts from cannot be later than the command recording it")
    return start


def pause_span(pause: Mapping[str, Any], tdef: TimerDef, calendar: WorkCalendar) -> tuple[datetime, datetime | None]:
    """When one entry of a pause ledger began and stopped counting: at its resume, or at its reason's cap
    if that comes first; None for an open pause without a cap (its end is not known yet)."""
    start = datetime.fromisoformat(pause["from"])
    end = datetime.fromisoformat(pause["to"]) if pause.get("to") else None
    policy = tdef.pause_policy(pause["reason"])
    if policy is not None and policy.cap is not None:
        cap_end = compute_due(start, policy.cap, calendar=calendar).due_at
        end = cap_end if end is None else min(end, cap_end)
    return start, end


def timer_due(row: TimerRow, tdef: TimerDef, calendar: WorkCalendar) -> Due | None:
    """A timer's due instant from its start, limit, extensions and pause ledger.

    A pause on day P resumed on day R excludes days P..R-1 for day limits (the resume day counts);
    for hour limits the paused duration is added. A pause reason with a cap excludes at most the
    cap. An open pause without a cap leaves the due instant unknown (None).
    """
    base = _limit_from_spec(row.limit_spec)
    extra = _extended_by(row.extensions)
    limit = base if not extra else TimeLimit(base.amount + extra, base.unit, roll_forward=base.roll_forward,
                                             month_end=base.month_end, start_day=base.start_day,
                                             hour_start=base.hour_start)
    excluded: list[tuple[Any, Any, str]] = []
    for pause in json.loads(row.pauses) if row.pauses != "[]" else ():
        start, end = pause_span(pause, tdef, calendar)
        if end is None:
            return None
        if limit.is_clock:
            if end > start:
                excluded.append((start, end, pause["reason"]))
        else:
            first = start.astimezone(ZONE).date()
            last = end.astimezone(ZONE).date() - timedelta(days=1)
            if last >= first:
                excluded.append((first, last, pause["reason"]))
    return compute_due(row.started_at, limit, excluded=excluded, calendar=calendar)


def warn_instant(due: Due, tdef: TimerDef, calendar: WorkCalendar, started_at: datetime) -> datetime | None:
    """When the warning (yellow card) is due: ``warn_before`` ahead of the due instant; None if before the start."""
    before = tdef.warn_before
    if before is None:
        return None
    if before.is_clock:
        step = timedelta(hours=1) if before.unit == "hours" else timedelta(minutes=1)
        warn = due.due_at - before.amount * step
    elif before.unit == "working_days":
        day = calendar.add_working_days(due.last_day, -before.amount) if before.amount else due.last_day
        warn = datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZONE)
    else:
        days = before.amount * (30 if before.unit == "months" else 1)
        warn = datetime.combine(due.last_day - timedelta(days=days - 1), time(0), tzinfo=ZONE)
    if warn <= started_at or warn >= due.due_at:
        return None
    return warn


def _view_from_json(data: dict[str, Any]) -> CaseView:
    def dt(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    timers = tuple(
        TimerView(t["name"], t.get("label", t["name"]), t["status"], dt(t["due_at"]),
                  date.fromisoformat(t["last_day"]) if t.get("last_day") else None, bool(t["provisional"]),
                  limit=t.get("limit", ""), started_at=dt(t.get("started_at")) or datetime.now(UTC),
                  warn_at=dt(t.get("warn_at")), original_due_at=dt(t.get("original_due_at")),
                  paused_since=dt(t.get("paused_since")), kind=t.get("kind", "statutory"),
                  assignee=t.get("assignee"), escalate_at=dt(t.get("escalate_at")), basis=t.get("basis", ""))
        for t in data.get("timers", [])
    )
    return CaseView(data["id"], data["workflow"], data["state"], data["version"], data["responsible"],
                    unit=data.get("unit", ""), state_label=data.get("state_label", ""),
                    workflow_version=data.get("workflow_version", ""), opened_at=dt(data.get("opened_at")),
                    closed_at=dt(data.get("closed_at")), data=data.get("data", {}), timers=timers)
