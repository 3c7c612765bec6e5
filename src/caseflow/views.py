"""What callers see of cases, timers, events, queues and audit findings: frozen views, never rows.

A command returns a :class:`CaseView` built from the rows it wrote (:func:`case_view`); an idempotent
replay rebuilds the same view from the JSON kept with its key (:func:`case_view_from_json`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from caseflow.calendar import ZONE
from caseflow.timing import _extended_by, _limit_text

if TYPE_CHECKING:
    from caseflow.store import CaseRow, TimerRow
    from caseflow.workflow import WorkflowDef

__all__ = [
    "AuditProblem",
    "CaseView",
    "EventView",
    "QueueItem",
    "TimerView",
]


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


def _local(value: datetime | None) -> datetime | None:
    return value.astimezone(ZONE) if value is not None else None


def case_view(defn: WorkflowDef, case: CaseRow, timers: list[TimerRow]) -> CaseView:
    """The view of a case from its row and its timer rows, labelled by its definition."""
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



def case_view_from_json(data: dict[str, Any]) -> CaseView:
    """A view from its JSON shape (:meth:`CaseView.to_dict`), as an idempotency record keeps it."""

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
