"""What commands do to a case's timers inside their transaction (:class:`~caseflow.unitofwork._Ctx`):
start them (and pick whom each is on), stop them as the case moves, pause, resume, extend, hand one over.

Each function changes the rows the command read; the command writes them with its event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from caseflow.calendar import ZONE
from caseflow.chain import _canonical
from caseflow.errors import CommandError, PermissionDeniedError, TimerError
from caseflow.people import get_person, pick_assignee, who_stands_in
from caseflow.store import Person, TimerRow
from caseflow.timelimits import TimeLimit
from caseflow.timing import ACTIVE, _limit_from_spec, _limit_spec, apply_due, counted_start, timer_limit
from caseflow.unitofwork import _Ctx, _new_row
from caseflow.views import _iso
from caseflow.workflow import TimerDef

__all__ = [
    "active_timer",
    "expired_timer",
    "extend_timer",
    "finish_timer",
    "hand_over_timer",
    "pause_timer",
    "recompute_timer",
    "resume_timer",
    "start_timers",
    "stop_timers",
]


def expired_timer(timers: Iterable[TimerRow], at: datetime) -> int | None:
    """The first running timer that acts by itself (on_expiry) and ran out by ``at``."""
    for row in timers:
        if (row.status == "running" and row.expiry_trigger and row.due_at is not None and row.due_at <= at
                and row.id is not None):
            return row.id
    return None


def active_timer(ctx: _Ctx, name: str) -> tuple[TimerRow, TimerDef]:
    """The running or paused timer ``name`` of the case, with its definition; refused naming those running."""
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


def start_timers(ctx: _Ctx, state: str | None, trigger: str | None) -> list[str]:
    """Start the timers entering ``state`` or firing ``trigger`` starts (each on its assignee); their names."""
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
        span = timer_limit(tdef, data, started_at, ctx.calendar)
        assignee, rule = pick_assignee(ctx, tdef)
        ctx.assigned.append({"timer": tdef.name, "assignee": assignee, "rule": rule, "role": tdef.holder})
        row: TimerRow = _new_row(TimerRow, case_id=ctx.case.id, name=tdef.name, round=max(rounds, default=0) + 1,
                                 status="running", kind=tdef.kind, limit_spec=_limit_spec(span),
                                 started_at=started_at, assignee=assignee, expiry_trigger=tdef.on_expiry)
        recompute_timer(ctx, row, tdef=tdef)
        row.original_due_at = row.due_at
        ctx.timers.append(row)  # written with the rest of the command (unitofwork._write)
        started.append(tdef.name)
    return started


def stop_timers(ctx: _Ctx, state: str, trigger: str) -> list[dict[str, Any]]:
    """End the timers the move to ``state`` by ``trigger`` meets, breaches or cancels; what each became."""
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
        finish_timer(ctx, row, status)
        stopped.append({"timer": row.name, "status": status, "due_at": _iso(row.due_at)})
    return stopped


def finish_timer(ctx: _Ctx, row: TimerRow, status: str) -> None:
    """End a timer with ``status`` at the command's instant (closing an open pause)."""
    if row.status == "paused":
        pauses = json.loads(row.pauses)
        pauses[-1]["to"] = ctx.at.astimezone(UTC).isoformat()
        row.pauses = _canonical(pauses)
    row.status = status
    row.stopped_at = ctx.at
    row.next_alert_at = None


def recompute_timer(ctx: _Ctx, row: TimerRow, *, tdef: TimerDef | None = None) -> None:
    """Recompute a timer's due instant and what follows from it on the command's calendar."""
    tdef = tdef or ctx.definition.timer(row.name)
    apply_due(row, tdef, ctx.calendar)


def pause_timer(ctx: _Ctx, timer: str, reason: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Pause ``timer`` for ``reason`` (:meth:`~caseflow.engine.Engine.pause`); the event's data."""
    row, tdef = active_timer(ctx, timer)
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
    recompute_timer(ctx, row)
    result: dict[str, Any] = {"timer": timer, "reason": reason, "charged_to": policy.charged_to}
    if fields:
        result["data"] = fields
    return result


def resume_timer(ctx: _Ctx, timer: str) -> dict[str, Any]:
    """Resume the paused ``timer`` (:meth:`~caseflow.engine.Engine.resume`); the event's data."""
    row, _tdef = active_timer(ctx, timer)
    if row.status != "paused":
        raise TimerError(f"timer {timer!r} is {row.status}, not paused")
    pauses = json.loads(row.pauses)
    pauses[-1]["to"] = ctx.at.astimezone(UTC).isoformat()
    row.pauses = _canonical(pauses)
    row.status = "running"
    before = row.due_at
    recompute_timer(ctx, row)
    return {"timer": timer, "reason": pauses[-1]["reason"], "due_at": _iso(row.due_at),
            "was_due_at": _iso(before)}


def extend_timer(ctx: _Ctx, timer: str, amount: TimeLimit, grounds: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Grant ``ctx.actor``'s extension of ``timer`` within its policy (:meth:`~caseflow.engine.Engine.extend`);
    the event's data."""
    row, tdef = active_timer(ctx, timer)
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
    recompute_timer(ctx, row)
    result: dict[str, Any] = {"timer": timer, "by": str(amount), "grounds": grounds,
                              "approver": ctx.actor.id, "due_at": _iso(row.due_at),
                              "was_due_at": _iso(before)}
    if fields:
        result["data"] = fields
    return result


def hand_over_timer(ctx: _Ctx, timer: str, to: str, reason: str) -> dict[str, Any]:
    """转交 ``timer`` to ``to`` (:meth:`~caseflow.engine.Engine.hand_over_step`); the event's data."""
    if not reason or not reason.strip():
        raise CommandError("handing a step over needs a reason (转交理由)")
    row, tdef = active_timer(ctx, timer)
    current = row.assignee or ctx.case.responsible_id
    holder = ctx.session.get(Person, current)
    day = ctx.at.astimezone(ZONE).date()
    may = (ctx.actor.admin or ctx.actor.id in (current, ctx.case.responsible_id)
           or (holder is not None and holder.leader_id == ctx.actor.id)
           or who_stands_in(ctx.session, current, day) == ctx.actor.id)
    if not may:
        raise PermissionDeniedError(
            f"{ctx.actor.id!r} may not hand over step {timer!r} of case {ctx.case.id}: only its assignee "
            f"({current}), their leader, their substitute while they are absent, the case's responsible "
            "person or an administrator may"
        )
    receiver = get_person(ctx.session, to)
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
