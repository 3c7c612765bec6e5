"""People: who they are, who stands in for whom (AB岗), who may act on a case, and who must act on a step.

Every running timer has an **assignee**: the person who must act before it runs out (queues, alerts,
escalation and per-person figures follow the assignee, not the case's responsible person). When a
command starts a timer the assignee is, in this order (the rule used is recorded in the event):

1. ``assigned`` — the person the command names (``assign=``), if they hold the timer's role;
2. ``responsible`` — the case's responsible person (首问负责), if they hold the role (or it has none);
3. ``actor`` — the person firing the command, if they hold the role;
4. ``unit_only_holder`` — the only person of the case's unit holding the role;
5. ``leader`` — the actor's leader (else the responsible person's leader), if they hold the role;
6. ``fallback`` — the case's responsible person, when nobody holding the role could be found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from caseflow.calendar import ZONE
from caseflow.checks import MAX_ID_CHARS, checked_text
from caseflow.errors import CommandError, PermissionDeniedError, PersonNotFoundError
from caseflow.store import Absence, Person, Store, TimerRow
from caseflow.timing import ACTIVE
from caseflow.unitofwork import _UNIT_ROLES, _Ctx

if TYPE_CHECKING:
    from caseflow.workflow import TimerDef

__all__ = ["SYSTEM_ACTOR", "get_person", "leads", "record_person", "resolve_stand_in", "who_stands_in"]

#: The actor of what timers do by themselves (``on_expiry``); no person may take this id.
SYSTEM_ACTOR = "system"


def record_person(store: Store, person_id: str, *, name: str, unit: str, roles: Iterable[str], leader: str | None,
               substitute: str | None, admin: bool, channel: str | None, replace: bool) -> Person:
    """Record a person in ``store`` (``replace=True`` updates an existing one): :meth:`Engine.add_person`."""
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
    with store.session(write=True) as s:
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


def get_person(session: Session, person_id: str) -> Person:
    """A person by id, else :class:`PersonNotFoundError`."""
    person = session.get(Person, person_id)
    if person is None:
        raise missing_person(person_id)
    return person


def missing_person(person_id: str) -> PersonNotFoundError:
    """The one answer for a person who does not exist, or whom the actor may not see."""
    return PersonNotFoundError(f"no person has the id {person_id!r}; add them with `caseflow people add`")


def who_stands_in(session: Session, person_id: str, day: date) -> str:
    """Who acts for ``person_id`` on ``day`` (AB岗), as the session reads absences and people."""

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


def leads(session: Session, person_id: str, unit: str) -> bool:
    """Whether ``person_id`` leads ``unit``: they are the leader of someone in it."""
    return session.exec(select(Person.id).where(Person.unit == unit, Person.leader_id == person_id)
                        .limit(1)).first() is not None


def receiver(ctx: _Ctx, person_id: str) -> Person:
    """The person a case is handed or reassigned to.

    Within the case's unit anyone may receive it. Across units only an administrator, or someone who
    leads both units (the leader of a person in each), may move it; to anyone else a person of another
    unit answers exactly as a missing one does, so the command reveals neither that they exist nor
    their unit.
    """
    person = ctx.session.get(Person, person_id)
    if person is not None and person.unit != ctx.case.unit and not ctx.actor.admin and not (
            leads(ctx.session, ctx.actor.id, ctx.case.unit)
            and leads(ctx.session, ctx.actor.id, person.unit)):
        person = None
    if person is None:
        raise missing_person(person_id)
    return person


def may_act_for(ctx: _Ctx, what: str) -> None:
    """Refuse ``ctx.actor`` unless they may act for the case's responsible person (hand over, close)."""
    actor, case = ctx.actor, ctx.case
    if actor.admin or actor.id == case.responsible_id:
        return
    current = ctx.session.get(Person, case.responsible_id)
    if current is not None and current.leader_id == actor.id:
        return
    if who_stands_in(ctx.session, case.responsible_id, ctx.at.astimezone(ZONE).date()) == actor.id:
        return
    raise PermissionDeniedError(
        f"{actor.id!r} may not {what} case {case.id}: only the responsible person ({case.responsible_id}), "
        "their leader, their substitute while they are absent, or an administrator may"
    )


def pick_assignee(ctx: _Ctx, tdef: TimerDef) -> tuple[str, str]:
    """(person, rule): who must act on a timer a command starts (the rule: module docstring)."""
    s, case, role = ctx.session, ctx.case, tdef.holder

    def holds(person: Person | None) -> bool:
        return person is not None and (role is None or role in person.role_set)

    if ctx.assign is not None:
        named = get_person(s, ctx.assign)
        if holds(named):
            return named.id, "assigned"
    responsible = s.get(Person, case.responsible_id)
    if role is None or holds(responsible):
        return case.responsible_id, "responsible"
    if ctx.actor.id != SYSTEM_ACTOR and holds(ctx.actor):
        return ctx.actor.id, "actor"
    # PostgreSQL read these with the rest of the command (unitofwork._load); SQLite reads them here, at no round trip.
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


def move_steps(timers: Iterable[TimerRow], before: str, after: str) -> list[str]:
    """The running steps ``before`` held move with the case to ``after`` (交办 / reassignment)."""
    moved = []
    for row in timers:
        if row.status in ACTIVE and row.assignee == before:
            row.assignee = after
            moved.append(row.name)
    return moved


def hand_case_over(ctx: _Ctx, to: str, slip: str | None) -> dict[str, Any]:
    """交办: the case and the steps its responsible person held go to ``to`` (:meth:`Engine.hand_over`)."""
    may_act_for(ctx, "hand over")
    person = receiver(ctx, to)
    before = ctx.case.responsible_id
    ctx.case.responsible_id, ctx.case.unit = person.id, person.unit
    moved = move_steps(ctx.timers, before, person.id)
    return {"from": before, "to": person.id, "slip": slip, "unit": person.unit, "steps": moved}


def reassign_case(ctx: _Ctx, to: str, reason: str) -> dict[str, Any]:
    """A leader (or administrator) gives the case and its steps to ``to`` (:meth:`Engine.reassign`)."""
    current = get_person(ctx.session, ctx.case.responsible_id)
    if not ctx.actor.admin and current.leader_id != ctx.actor.id:
        raise PermissionDeniedError(
            f"{ctx.actor.id!r} is not the leader of {current.id!r} nor an administrator; ask them to reassign"
        )
    person = receiver(ctx, to)
    ctx.case.responsible_id, ctx.case.unit = person.id, person.unit
    moved = move_steps(ctx.timers, current.id, person.id)
    return {"from": current.id, "to": person.id, "reason": reason, "unit": person.unit, "steps": moved}
