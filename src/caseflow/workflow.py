"""Procedure definitions as data: states, transitions, roles, and the time limits that run between them.

A procedure (户口迁移, 刑事拘留, 信访, 行政许可 …) is written once as a YAML file in ``workflows/`` and read
into a frozen :class:`WorkflowDef` (the file format and its reader: :mod:`caseflow.workflowfile`). The
engine builds one ``transitions.Machine`` per definition version from :meth:`WorkflowDef.transitions_kwargs`
and asks the definition which timers a transition starts and stops; it never hard-codes a procedure.

How timers run (the contract with the engine):

- A timer starts when its start state is *entered* by a transition (or the case opens in it), or when
  its start trigger fires. An internal transition (``internal: true``) does not re-enter its state, so
  it starts no state timer: use :meth:`WorkflowDef.timers_started_on`.
- It is met when a stop state is entered or a stop trigger fires (``breached`` when that happens at
  or after its due instant). It is ``cancelled`` (不适用) when a cancel state is entered or a cancel
  trigger fires: the branch it watches was not taken. Reaching a final state cancels every timer
  still running. Leaving the start state by any other route does not stop it: a limit such as
  "deliver within 24 hours of detention" keeps running across states until it is met.
- A timer with ``start.when`` starts only if the case data (after the command's own data) match every
  field given.
- A timer with ``start.counted_from: FIELD`` starts when its state or trigger says, but counts from the
  date in that case-data field (00:00 Beijing time of that day, so the day itself is the excluded start
  day): the law counts from an event the command records afterwards (刑事诉讼法 第一百六十条 "自发现之日起",
  信访工作条例 第三十五条 "自收到书面答复之日起"). The date may not lie after the command's instant; when
  the field is not given the timer counts from the instant (make the starting transition require the
  field where it must always be stated).
- ``holder`` names the role that must act; the engine gives each timer an assignee of that role
  (see :mod:`caseflow.engine`). Validation refuses a holder role that no stopping transition allows.
- ``on_expiry.fire`` must be a trigger that can fire from every state the timer can run in.
- Extension tiers are alternatives, not steps: the total extension granted on a timer may not exceed
  the ``max_total`` of the tier whose grounds were stated (:meth:`ExtensionPolicy.tier_for`).

Every field a transition ``requires`` must be declared under ``fields``: a field without a label would
reach people as its key, so the definition is refused (not merely warned about) naming the transition.

Every refusal is a :class:`~caseflow.errors.WorkflowError` naming the field; read from a file, it names
the file and the line too (:mod:`caseflow.workflowfile` adds them). The checks of the graph and of each
timer against it, which both apply, are in :mod:`caseflow.workflowcheck`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NoReturn, TypeVar, get_args

from caseflow.errors import WorkflowError, WorkflowNotFoundError
from caseflow.materials import Material, ServiceSpec
from caseflow.timelimits import TimeLimit, Unit

__all__ = [
    "ChargedTo",
    "ExtensionPolicy",
    "ExtensionTier",
    "FieldDef",
    "FieldKind",
    "FrozenMap",
    "PausePolicy",
    "StateDef",
    "TimerDef",
    "TimerKind",
    "TransitionDef",
    "WorkflowDef",
    "default_escalate_after",
    "default_warn_before",
]

TimerKind = Literal["statutory", "promised"]
#: What a case-data field holds; the kind decides how it is masked where people read it.
FieldKind = Literal["name", "id_number", "phone", "text", "date", "number", "bool", "address"]
FIELD_KINDS: tuple[FieldKind, ...] = get_args(FieldKind)
ChargedTo = Literal["applicant", "law", "unit"]
TIMER_KINDS: tuple[TimerKind, ...] = get_args(TimerKind)
CHARGED_TO: tuple[ChargedTo, ...] = get_args(ChargedTo)

#: "*" in a transition's ``from``: every non-final state (except the target of an external transition).
ANY_STATE = "*"

#: The data field a transition's ``grounds`` restrict.
GROUND_FIELD = "ground"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_CLOCK_UNITS: frozenset[str] = frozenset({"hours", "minutes"})
_MINUTES = {"hours": 60, "minutes": 1}

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping, so frozen definitions holding one stay hashable."""

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._data: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _fail(message: str, fld: str = "") -> NoReturn:
    """Raise a WorkflowError without file or line; the file reader adds them (``workflowfile._Parser.rewrap``)."""
    raise WorkflowError(message, field=fld)


def _check_name(value: object, what: str, fld: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        _fail(f"{what} must be an identifier (letters, digits, _; not starting with a digit), got {value!r}",
              fld)


def _check_label(value: object, what: str, fld: str) -> None:
    if not isinstance(value, str) or not value.strip():
        _fail(f"{what} must be a non-empty text, got {value!r}", fld)


def _quoted(names: Iterable[str]) -> str:
    items = [repr(n) for n in names]
    return ", ".join(items) if items else "(none)"


@dataclass(frozen=True)
class FieldDef:
    """One field of case data: its ``key`` (identifier), Chinese ``label`` and ``kind``.

    The kind says what the value is (``name``, ``id_number``, ``phone``, ``address`` are personal data,
    masked wherever someone reads them who does not need them; see :mod:`caseflow.narrate`).
    """

    key: str
    label: str
    kind: FieldKind = "text"

    def __post_init__(self) -> None:
        _check_name(self.key, "a field key", "key")
        _check_label(self.label, f"the label of field {self.key!r}", "label")
        if self.kind not in FIELD_KINDS:
            _fail(f"field {self.key!r} has kind {self.kind!r}; allowed: {_quoted(FIELD_KINDS)}", "kind")

    @property
    def personal(self) -> bool:
        """True for the kinds that identify a person (masked for viewers who do not need them)."""
        return self.kind in ("name", "id_number", "phone", "address")


@dataclass(frozen=True)
class StateDef:
    """One state of a procedure: ``name`` (identifier), Chinese ``label``, ``final`` when the case ends."""

    name: str
    label: str
    final: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        _check_name(self.name, "a state name", "name")
        _check_label(self.label, f"the label of state {self.name!r}", "label")
        if not isinstance(self.final, bool):
            _fail(f"final must be true or false, got {self.final!r}", "final")


@dataclass(frozen=True)
class TransitionDef:
    """A trigger that moves a case from one of ``sources`` to ``dest``.

    ``roles`` empty means any role may fire it; ``requires`` names the data fields the command must
    carry (for instance the number of the 受理户口交办单). An ``internal`` transition stays in its
    single source state (``dest == sources[0]``) without re-entering it.
    """

    trigger: str
    sources: tuple[str, ...]
    dest: str
    roles: tuple[str, ...] = ()
    requires: tuple[str, ...] = field(default=(), kw_only=True)
    label: str = field(default="", kw_only=True)
    internal: bool = field(default=False, kw_only=True)
    #: When not empty, the ``ground`` field the command gives must be one of these (e.g. the lawful
    #: grounds of 刑事诉讼法 第八十五条 for not notifying the family); anything else is refused.
    grounds: tuple[str, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        _check_name(self.trigger, "a trigger", "trigger")
        if not isinstance(self.sources, tuple) or not self.sources:
            _fail(f"transition {self.trigger!r} needs a tuple of one or more source states, "
                  f"got {self.sources!r}", "from")
        for source in self.sources:
            _check_name(source, f"a source state of {self.trigger!r}", "from")
        _check_name(self.dest, f"the target state of {self.trigger!r}", "to")
        for role in self.roles:
            _check_name(role, f"a role of {self.trigger!r}", "roles")
        for name in self.requires:
            _check_name(name, f"a required field of {self.trigger!r}", "requires")
        for ground in self.grounds:
            _check_label(ground, f"a ground of {self.trigger!r}", "grounds")
        if self.grounds and GROUND_FIELD not in self.requires:
            _fail(f"transition {self.trigger!r} lists grounds but takes no {GROUND_FIELD!r} field; add "
                  f"{GROUND_FIELD!r} to its requires, or remove grounds", "grounds")
        if self.internal and self.sources != (self.dest,):
            _fail(f"internal transition {self.trigger!r} must stay in its one source state, "
                  f"got sources {self.sources!r} and target {self.dest!r}", "internal")

    def allows(self, roles: Iterable[str]) -> bool:
        """True when an actor holding ``roles`` may fire this transition."""
        return not self.roles or any(role in self.roles for role in roles)

    def missing_fields(self, data: Mapping[str, object]) -> list[str]:
        """The required fields absent from (or empty in) a command's ``data``."""
        return _missing(self.requires, data)

    def ground_refused(self, data: Mapping[str, object]) -> str | None:
        """Why the command's ``ground`` is refused (naming the allowed grounds), or None when it is fine."""
        if not self.grounds:
            return None
        given = data.get(GROUND_FIELD)
        if isinstance(given, str) and given.strip() in self.grounds:
            return None
        return (f"{self.trigger!r} takes only the grounds {_quoted(self.grounds)}; got {given!r} "
                f"(e.g. --data {GROUND_FIELD}={self.grounds[0]})")


def _missing(required: Iterable[str], data: Mapping[str, object]) -> list[str]:
    return [name for name in required if data.get(name) in (None, "", [], {})]


@dataclass(frozen=True)
class PausePolicy:
    """A reason the clock may stop (函调, 听证, 补正 …), how long one pause may last, and who bears it.

    ``charged_to``: ``applicant`` (补正: the applicant owes material), ``law`` (time the statute itself
    excludes: 函调, 鉴定, 听证, 检验 …), ``unit`` (the unit's own choice, reported as such).
    """

    reason: str
    cap: TimeLimit | None = field(default=None, kw_only=True)
    charged_to: ChargedTo = field(default="law", kw_only=True)
    #: Data fields a pause on this reason must record, e.g. the number and date of the written notice
    #: to the applicant (行政许可法 第四十五条 "行政机关应当将所需时间书面告知申请人").
    requires: tuple[str, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        _check_label(self.reason, "a pause reason", "pauses")
        for name in self.requires:
            _check_name(name, f"a required field of pause {self.reason!r}", "requires")
        if self.cap is not None:
            if not isinstance(self.cap, TimeLimit):
                _fail(f"the cap of pause {self.reason!r} must be a TimeLimit, got {self.cap!r}", "cap")
            if self.cap.amount <= 0:
                _fail(f"the cap of pause {self.reason!r} must be longer than zero, got {self.cap}; "
                      "leave it out for no cap", "cap")
        if self.charged_to not in CHARGED_TO:
            _fail(f"charged_to of pause {self.reason!r} is {self.charged_to!r}; "
                  f"allowed: {_quoted(CHARGED_TO)}", "charged_to")

    def missing_fields(self, data: Mapping[str, object]) -> list[str]:
        """The fields a pause on this reason must record that are absent from (or empty in) ``data``."""
        return _missing(self.requires, data)


@dataclass(frozen=True)
class ExtensionTier:
    """One way to extend a limit: on ``grounds`` (empty = any stated grounds), by at most ``max_total``
    in all, each grant at least ``min_each`` and at most ``max_each``, approved by one of ``approver_roles``
    (empty = any role).
    """

    grounds: tuple[str, ...]
    max_total: TimeLimit
    min_each: TimeLimit | None = field(default=None, kw_only=True)
    #: The most one grant may add (治安管理处罚法 第一百一十八条: "可以延长三十日。期限延长以二次为限").
    max_each: TimeLimit | None = field(default=None, kw_only=True)
    approver_roles: tuple[str, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        for ground in self.grounds:
            _check_label(ground, "an extension ground", "grounds")
        if not isinstance(self.max_total, TimeLimit) or self.max_total.amount <= 0:
            _fail(f"an extension tier's max_total must be a limit longer than zero, got {self.max_total!r}",
                  "max_total")
        if self.min_each is not None:
            if not isinstance(self.min_each, TimeLimit) or self.min_each.amount <= 0:
                _fail(f"min_each must be a limit longer than zero, got {self.min_each!r}", "min_each")
            if self.min_each.unit != self.max_total.unit:
                _fail(f"min_each ({self.min_each.unit}) and max_total ({self.max_total.unit}) "
                      "must use the same unit", "min_each")
            if self.min_each.amount > self.max_total.amount:
                _fail(f"min_each {self.min_each.amount} exceeds max_total {self.max_total.amount}",
                      "min_each")
        if self.max_each is not None:
            if not isinstance(self.max_each, TimeLimit) or self.max_each.amount <= 0:
                _fail(f"max_each must be a limit longer than zero, got {self.max_each!r}", "max_each")
            if self.max_each.unit != self.max_total.unit:
                _fail(f"max_each ({self.max_each.unit}) and max_total ({self.max_total.unit}) "
                      "must use the same unit", "max_each")
            if self.min_each is not None and self.min_each.amount > self.max_each.amount:
                _fail(f"min_each {self.min_each.amount} exceeds max_each {self.max_each.amount}", "max_each")
        for role in self.approver_roles:
            _check_name(role, "an approver role", "approver_roles")

    def covers(self, ground: str | None) -> bool:
        """True when this tier admits an extension on ``ground`` (any ground if the tier names none).

        Grounds are free text told to the applicant ("流窜作案：跨三县连续作案"); they cover a tier when
        they state one of its grounds.
        """
        return not self.grounds or (ground is not None and any(g in ground for g in self.grounds))


@dataclass(frozen=True)
class ExtensionPolicy:
    """How a limit may be extended: alternative ``tiers``, and at most ``max_times`` grants (None = any)."""

    tiers: tuple[ExtensionTier, ...]
    max_times: int | None = field(default=None, kw_only=True)
    #: Data fields every extension must record, e.g. when the applicant was told the reason
    #: (行政许可法 第四十二条 "并应当将延长期限的理由告知申请人").
    requires: tuple[str, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        for name in self.requires:
            _check_name(name, "a required field of an extension", "requires")
        if not isinstance(self.tiers, tuple) or not self.tiers:
            _fail("an extension needs at least one tier", "tiers")
        units = {tier.max_total.unit for tier in self.tiers}
        if len(units) > 1:
            _fail(f"extension tiers mix units {sorted(units)}; use the timer's unit throughout", "tiers")
        if self.max_times is not None and (
            not isinstance(self.max_times, int) or isinstance(self.max_times, bool) or self.max_times < 1
        ):
            _fail(f"max_times must be a whole number of at least 1 (or left out), got {self.max_times!r}",
                  "max_times")

    def missing_fields(self, data: Mapping[str, object]) -> list[str]:
        """The fields every extension must record that are absent from (or empty in) ``data``."""
        return _missing(self.requires, data)

    def tier_for(self, ground: str | None) -> ExtensionTier | None:
        """The most generous tier that admits ``ground``, or None when no tier does."""
        tiers = [tier for tier in self.tiers if tier.covers(ground)]
        return max(tiers, key=lambda tier: tier.max_total.amount) if tiers else None

    @property
    def max_total(self) -> TimeLimit:
        """The longest extension any tier allows."""
        return max((tier.max_total for tier in self.tiers), key=lambda limit: limit.amount)


# The sentinel is compared by identity: a real 0-minute warning given by a caller is kept.
_AUTO_WARN = TimeLimit(0, "minutes")


def default_warn_before(limit: TimeLimit) -> TimeLimit:
    """When to warn by default: 1 working day before a working-day limit, 1 day before a day or month
    limit, a quarter of the limit (in minutes) before an hour or minute limit — never more than the limit.
    """
    if limit.unit == "working_days":
        return TimeLimit(min(1, limit.amount), "working_days")
    if limit.unit == "days":
        return TimeLimit(min(1, limit.amount), "days")
    if limit.unit == "months":
        return TimeLimit(1 if limit.amount else 0, "days")
    return TimeLimit(limit.amount * _MINUTES[limit.unit] // 4, "minutes")


def default_escalate_after(limit: TimeLimit) -> TimeLimit:
    """How long after the due instant an overdue timer goes to the assignee's leader, by default.

    Hour and minute limits (custody: 送押, 通知家属, 讯问 within 24 hours) escalate 1 hour after they run
    out, at any hour, holidays included — a person held past the limit cannot wait for a working day.
    Working-day limits escalate 1 working day later, day and month limits 1 day later.
    """
    if limit.is_clock:
        return TimeLimit(1, "hours")
    if limit.unit == "working_days":
        return TimeLimit(1, "working_days")
    return TimeLimit(1, "days")


def _warn_units(unit: Unit) -> set[str]:
    allowed = {unit, *_CLOCK_UNITS}
    if unit == "months":
        allowed.add("days")
    return allowed


@dataclass(frozen=True)
class TimerDef:
    """A time limit that runs between states: what it is, the rule behind it, when it starts and stops.

    Exactly one of ``start_state`` (entering it starts the timer) and ``start_trigger`` (firing it
    does). The timer is met on entering one of ``stop_states`` or firing one of ``stop_triggers``
    (several timers may run in one state, each met by its own trigger, e.g. after detention), and it
    ends in any final state. ``kind`` is ``statutory`` for a limit set by law and ``promised`` for a
    service commitment (承诺时限). ``warn_before`` defaults to :func:`default_warn_before`.
    """

    name: str
    label: str
    limit: TimeLimit
    basis: str = field(kw_only=True)
    start_state: str | None = field(default=None, kw_only=True)
    start_trigger: str | None = field(default=None, kw_only=True)
    stop_states: frozenset[str] = field(default=frozenset(), kw_only=True)
    stop_triggers: frozenset[str] = field(default=frozenset(), kw_only=True)
    kind: TimerKind = field(default="statutory", kw_only=True)
    pauses: Mapping[str, PausePolicy] = field(default_factory=FrozenMap, kw_only=True)
    extension: ExtensionPolicy | None = field(default=None, kw_only=True)
    warn_before: TimeLimit = field(default=_AUTO_WARN, kw_only=True)
    #: Another timer of the case: when it ended breached, this timer counts from that timer's start.
    #: 行政许可法 第三十二条第一款第(四)项: 逾期不告知补正的, 自收到申请材料之日起即为受理.
    deemed_from: str | None = field(default=None, kw_only=True)
    #: A case-data field holding the instant agreed with the person (约定的时间): the timer is due then,
    #: and ``limit`` is the longest span from the start such an instant may lie ahead.
    until: str | None = field(default=None, kw_only=True)
    #: A case-data field (kind date) holding the day the law counts from, recorded by the starting command:
    #: the timer starts then (00:00 Beijing time of that day) rather than at the command's instant (which
    #: it keeps when the field is not given).
    counted_from: str | None = field(default=None, kw_only=True)
    #: The role that must act before the timer runs out (the assignee is a person of this role).
    holder: str | None = field(default=None, kw_only=True)
    #: The trigger the scheduler fires as the system when the timer runs out (at its due instant).
    on_expiry: str | None = field(default=None, kw_only=True)
    #: How long after the due instant an overdue timer escalates; see :func:`default_escalate_after`.
    escalate_after: TimeLimit = field(default=_AUTO_WARN, kw_only=True)
    #: Case data the timer needs to start (``start.when``): every field given must match.
    start_when: Mapping[str, Any] = field(default_factory=FrozenMap, kw_only=True)
    #: Entering one of these states, or firing one of these triggers, ends the timer ``cancelled``.
    cancel_states: frozenset[str] = field(default=frozenset(), kw_only=True)
    cancel_triggers: frozenset[str] = field(default=frozenset(), kw_only=True)

    def __post_init__(self) -> None:
        _check_name(self.name, "a timer name", "name")
        _check_label(self.label, f"the label of timer {self.name!r}", "label")
        if not isinstance(self.limit, TimeLimit):
            _fail(f"the limit of timer {self.name!r} must be a TimeLimit, got {self.limit!r}", "limit")
        if not isinstance(self.basis, str) or not self.basis.strip():
            _fail(f"timer {self.name!r} must cite its basis (the article or rule behind the limit), "
                  f"got {self.basis!r}", "basis")
        if (self.start_state is None) == (self.start_trigger is None):
            _fail(f"timer {self.name!r} must start on exactly one of a state or a trigger, got "
                  f"state={self.start_state!r}, trigger={self.start_trigger!r}", "start")
        if self.kind not in TIMER_KINDS:
            _fail(f"timer {self.name!r} has kind {self.kind!r}; allowed: {_quoted(TIMER_KINDS)}", "kind")
        # Plain sets and dicts are accepted and frozen, so a hand-built TimerDef stays hashable.
        object.__setattr__(self, "stop_states", frozenset(self.stop_states))
        object.__setattr__(self, "stop_triggers", frozenset(self.stop_triggers))
        object.__setattr__(self, "cancel_states", frozenset(self.cancel_states))
        object.__setattr__(self, "cancel_triggers", frozenset(self.cancel_triggers))
        if not isinstance(self.start_when, FrozenMap):
            object.__setattr__(self, "start_when", FrozenMap(self.start_when))
        for key, value in self.start_when.items():
            _check_name(key, f"a field of the start condition of timer {self.name!r}", "start.when")
            if not isinstance(value, str | int | float | bool) or value is None:
                _fail(f"start.when.{key} of timer {self.name!r} must be a text, number or true/false, "
                      f"got {value!r}", "start.when")
        if self.holder is not None:
            _check_name(self.holder, f"the holder role of timer {self.name!r}", "holder")
        if self.on_expiry is not None:
            _check_name(self.on_expiry, f"the on_expiry trigger of timer {self.name!r}", "on_expiry.fire")
        overlap = (self.cancel_states & self.stop_states) | (self.cancel_triggers & self.stop_triggers)
        if overlap:
            _fail(f"timer {self.name!r} both stops and is cancelled on {sorted(overlap)}; a step is either "
                  "done (stop) or not applicable (cancel)", "cancel")
        if not isinstance(self.pauses, FrozenMap):
            object.__setattr__(self, "pauses", FrozenMap(self.pauses))
        for reason, policy in self.pauses.items():
            if not isinstance(policy, PausePolicy) or policy.reason != reason:
                _fail(f"pause {reason!r} of timer {self.name!r} must map to a PausePolicy with that reason",
                      "pauses")
        if self.extension is not None:
            for index, tier in enumerate(self.extension.tiers):
                for what, limit in (("max_total", tier.max_total), ("min_each", tier.min_each),
                                    ("max_each", tier.max_each)):
                    if limit is not None and limit.unit != self.limit.unit:
                        _fail(f"extension tier {index + 1} {what} is in {limit.unit} but timer "
                              f"{self.name!r} counts {self.limit.unit}; use {self.limit.unit}",
                              f"extension.tiers[{index}].{what}")
        if self.warn_before is _AUTO_WARN:
            object.__setattr__(self, "warn_before", default_warn_before(self.limit))
        self._check_warn_before()
        if self.escalate_after is _AUTO_WARN:
            object.__setattr__(self, "escalate_after", default_escalate_after(self.limit))
        escalate = self.escalate_after
        if not isinstance(escalate, TimeLimit):
            _fail(f"escalate_after must be a TimeLimit, got {escalate!r}", "escalate_after")
        allowed = _warn_units(self.limit.unit)
        if escalate.unit not in allowed or escalate.unit == "months":
            _fail(f"escalate_after is in {escalate.unit} but timer {self.name!r} counts {self.limit.unit}; "
                  f"allowed units: {_quoted(sorted(allowed - {'months'}))}", "escalate_after")

    def _check_warn_before(self) -> None:
        warn, limit = self.warn_before, self.limit
        if not isinstance(warn, TimeLimit):
            _fail(f"warn_before must be a TimeLimit, got {warn!r}", "warn_before")
        allowed = _warn_units(limit.unit)
        if warn.unit not in allowed:
            _fail(f"warn_before is in {warn.unit} but timer {self.name!r} counts {limit.unit}; "
                  f"allowed units: {_quoted(sorted(allowed))}", "warn_before")
        if warn.unit == limit.unit:
            too_long = warn.amount > limit.amount
        elif warn.unit in _CLOCK_UNITS and limit.unit in _CLOCK_UNITS:
            too_long = warn.amount * _MINUTES[warn.unit] > limit.amount * _MINUTES[limit.unit]
        else:
            too_long = False
        if too_long:
            _fail(f"warn_before {warn} is longer than the limit {limit} of timer {self.name!r}",
                  "warn_before")

    def pause_policy(self, reason: str) -> PausePolicy | None:
        """The policy for pausing on ``reason``, or None when this timer may not pause for it."""
        return self.pauses.get(reason)

    def starts_on(self, state: str | None, trigger: str | None) -> bool:
        """True when entering ``state`` or firing ``trigger`` starts this timer (data aside: :meth:`applies_to`)."""
        return (state is not None and state == self.start_state) or (
            trigger is not None and trigger == self.start_trigger
        )

    def applies_to(self, data: Mapping[str, Any]) -> bool:
        """True when the case data meet ``start.when`` (always, without one).

        Values compare as written, or as text: ``--data needs_verification=true`` (the text "true")
        matches ``when: {needs_verification: true}``.
        """
        return all(_same_value(data.get(key), wanted) for key, wanted in self.start_when.items())

    def cancels_on(self, state: str | None, trigger: str | None) -> bool:
        """True when entering ``state`` or firing ``trigger`` makes this timer not applicable (cancelled)."""
        return (state is not None and state in self.cancel_states) or (
            trigger is not None and trigger in self.cancel_triggers
        )

    def stops_on(self, state: str | None, trigger: str | None) -> bool:
        """True when entering ``state`` or firing ``trigger`` meets this timer (final states aside)."""
        return (state is not None and state in self.stop_states) or (
            trigger is not None and trigger in self.stop_triggers
        )


def _same_value(given: Any, wanted: Any) -> bool:
    if given is None:
        return False
    if given == wanted and type(given) is type(wanted):
        return True

    def text(value: Any) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value).strip().lower()

    return text(given) == text(wanted)


@dataclass(frozen=True)
class WorkflowDef:
    """A procedure: its states, transitions, roles and timers, pinned by ``version``.

    ``version`` is the sha256 of the file's canonical content (the parsed document as sorted JSON):
    it does not change with comments or layout and changes whenever a rule does. ``text`` is the raw
    YAML, so a store can keep the exact definition a case is pinned to and re-read it with
    :func:`caseflow.workflowfile.parse_workflow`.
    """

    key: str
    title: str
    version: str = field(kw_only=True)
    roles: Mapping[str, str] = field(kw_only=True)
    states: tuple[StateDef, ...] = field(kw_only=True)
    initial: str = field(kw_only=True)
    transitions: tuple[TransitionDef, ...] = field(kw_only=True)
    timers: tuple[TimerDef, ...] = field(kw_only=True)
    source: str = field(default="<string>", kw_only=True)
    text: str = field(default="", kw_only=True, repr=False)
    basis: str = field(default="", kw_only=True)
    fields: Mapping[str, FieldDef] = field(default_factory=FrozenMap, kw_only=True)
    #: The window terms and materials (materials.py): published on the 公示 page, used by the desk.
    service: ServiceSpec = field(default=ServiceSpec(), kw_only=True)
    materials: tuple[Material, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        # Imported here, not at the top: caseflow.workflowcheck imports this module (it checks its classes).
        from caseflow.workflowcheck import graph_problems, timer_problems

        if not isinstance(self.key, str) or not _KEY.match(self.key):
            _fail(f"key must be a lower-case identifier like 'hukou_transfer', got {self.key!r}", "key")
        _check_label(self.title, "title", "title")
        if not isinstance(self.roles, FrozenMap):
            object.__setattr__(self, "roles", FrozenMap(self.roles))
        if not isinstance(self.fields, FrozenMap):
            object.__setattr__(self, "fields", FrozenMap(self.fields))
        for key, fdef in self.fields.items():
            if not isinstance(fdef, FieldDef) or fdef.key != key:
                _fail(f"fields[{key!r}] must be a FieldDef with key {key!r}, got {fdef!r}", "fields")
        for what, required, fld in self._required_fields():
            undeclared = [name for name in required if name not in self.fields]
            if undeclared:
                _fail(f"{what} requires {_quoted(undeclared)}, which the 'fields' block does not declare; "
                      f"declared fields are {_quoted(self.fields)}", fld)
        names = [s.name for s in self.states]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            _fail(f"duplicate state names {duplicates}", "states")
        if self.initial not in names:
            _fail(f"initial state {self.initial!r} is not a state; states are {_quoted(names)}", "initial")
        if self.state(self.initial).final:
            _fail(f"the initial state {self.initial!r} cannot be final", "initial")
        for message, _kind, _name in graph_problems(self.states, self.initial, self.transitions):
            _fail(message, "transitions" if _kind == "transition" else "states")
        for t in self.transitions:
            for role in t.roles:
                if role not in self.roles:
                    _fail(f"unknown role {role!r} in transition {t.trigger!r}; declared roles are "
                          f"{_quoted(self.roles)}", "transitions")
        timer_names = [timer.name for timer in self.timers]
        if len(set(timer_names)) != len(timer_names):
            _fail(f"duplicate timer names in {timer_names}", "timers")
        for timer in self.timers:
            for message, fld in timer_problems(timer, self.states, self.transitions, self.roles):
                _fail(message, f"timers.{timer.name}.{fld}")

    # --- look-ups (indexes are built once per definition, on first use) ---

    @cached_property
    def _states(self) -> dict[str, StateDef]:
        return {s.name: s for s in self.states}

    @cached_property
    def _by_trigger(self) -> dict[str, list[TransitionDef]]:
        index: dict[str, list[TransitionDef]] = {}
        for t in self.transitions:
            index.setdefault(t.trigger, []).append(t)
        return index

    @cached_property
    def _by_pair(self) -> dict[tuple[str, str], TransitionDef]:
        return {(t.trigger, source): t for t in self.transitions for source in t.sources}

    @cached_property
    def _timers(self) -> dict[str, TimerDef]:
        return {timer.name: timer for timer in self.timers}

    def _required_fields(self) -> Iterator[tuple[str, tuple[str, ...], str]]:
        """Every list of data fields a command must carry: transitions', pauses' and extensions'."""
        for t in self.transitions:
            yield f"transition {t.trigger!r}", tuple(t.requires), "transitions"
        for timer in self.timers:
            for reason, policy in timer.pauses.items():
                yield f"pause {reason!r} of timer {timer.name!r}", policy.requires, f"timers.{timer.name}.pauses"
            if timer.extension is not None:
                yield (f"the extension of timer {timer.name!r}", timer.extension.requires,
                       f"timers.{timer.name}.extension")
            if timer.until is not None:
                yield f"timer {timer.name!r} (until)", (timer.until,), f"timers.{timer.name}.until"

    def field_label(self, key: str) -> str:
        """The Chinese label of case-data field ``key``; ``key`` itself for data the workflow does not declare.

        Free data a clerk typed under a name of their own is their own words, so it is shown as given.
        """
        fdef = self.fields.get(key)
        return fdef.label if fdef is not None else key

    def with_defaults(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` with every yes/no field (kind ``bool``) it does not state read as false.

        A route asked at acceptance (``needs_verification``) is answered "no" when the clerk says
        nothing, so ``start.when: {needs_verification: false}`` holds for a case opened without it.
        """
        return {**{key: False for key, fdef in self.fields.items() if fdef.kind == "bool"}, **data}

    def state(self, name: str) -> StateDef:
        """The state called ``name``; :class:`WorkflowNotFoundError` naming the states otherwise."""
        try:
            return self._states[name]
        except KeyError:
            raise WorkflowNotFoundError(
                f"workflow {self.key!r} has no state {name!r}; states are {_quoted(self._states)}"
            ) from None

    @cached_property
    def final_states(self) -> frozenset[str]:
        """The names of the states in which a case ends."""
        return frozenset(s.name for s in self.states if s.final)

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger, in the order of the definition."""
        return tuple(self._by_trigger)

    def transitions_for(self, trigger: str) -> list[TransitionDef]:
        """The transitions ``trigger`` names (one per group of sources); empty for an unknown trigger."""
        return list(self._by_trigger.get(trigger, ()))

    def allowed_triggers(self, state: str) -> list[str]:
        """The triggers that can fire in ``state``, in definition order."""
        self.state(state)
        return [trigger for trigger, ts in self._by_trigger.items() if any(state in t.sources for t in ts)]

    def find_transition(self, trigger: str, state: str) -> TransitionDef | None:
        """The transition ``trigger`` takes from ``state``, or None when it cannot fire there."""
        return self._by_pair.get((trigger, state))

    def timer(self, name: str) -> TimerDef:
        """The timer called ``name``; :class:`WorkflowNotFoundError` naming the timers otherwise."""
        try:
            return self._timers[name]
        except KeyError:
            raise WorkflowNotFoundError(
                f"workflow {self.key!r} has no timer {name!r}; timers are {_quoted(self._timers)}"
            ) from None

    def timers_started_by(self, state: str | None, trigger: str | None) -> list[TimerDef]:
        """Timers started by entering ``state`` or firing ``trigger`` (pass None for either).

        Opening a case is ``timers_started_by(defn.initial, None)``. After an internal transition pass
        ``state=None``: the state is not re-entered (or use :meth:`timers_started_on`).
        """
        return [timer for timer in self.timers if timer.starts_on(state, trigger)]

    def timers_started_on(self, transition: TransitionDef) -> list[TimerDef]:
        """Timers started by taking ``transition`` (its target state is entered unless it is internal)."""
        return self.timers_started_by(None if transition.internal else transition.dest, transition.trigger)

    def timers_stopped_by(self, state: str | None, trigger: str | None) -> list[TimerDef]:
        """Timers met by entering ``state`` or firing ``trigger``; every timer when ``state`` is final."""
        if state is not None and state in self.final_states:
            return list(self.timers)
        return [timer for timer in self.timers if timer.stops_on(state, trigger)]

    def transitions_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``transitions.Machine(model=None, **defn.transitions_kwargs())``.

        Internal transitions get ``dest=None`` (transitions' internal transition: no exit or entry).
        Fire with ``machine.events[trigger].trigger(obj)`` on any object holding ``.state``.
        """
        return {
            "states": [s.name for s in self.states],
            "transitions": [
                {"trigger": t.trigger, "source": list(t.sources), "dest": None if t.internal else t.dest}
                for t in self.transitions
            ],
            "initial": self.initial,
            "auto_transitions": False,
            "send_event": True,
        }
