"""Reading a workflow file (``workflows/<key>.yaml``) into a :class:`~caseflow.workflow.WorkflowDef`.

The file format (see the shipped ``workflows/*.yaml`` for complete, commented examples)::

    key: hukou_transfer                       # lower-case identifier, unique among the loaded files
    title: 户口迁移(派出所户籍窗口)
    basis: 派出所户籍窗口优质服务操作规范 六、户籍窗口办理时限   # optional, the procedure's source
    fields:                                   # case data: Chinese label + kind (masking follows the kind)
      applicant: {label: 申请人, kind: name}    # kinds: name, id_number, phone, text, date, number, bool,
      slip_no: {label: 受理户口交办单编号}        # address; kind defaults to text
    roles: {household_police: 户籍民警, station_leader: 所领导}
    states:                                   # exactly one initial state, at least one final state
      - {name: accepted, label: 已受理, initial: true}
      - {name: completed, label: 已办结, final: true}
    transitions:
      - {trigger: complete, from: accepted, to: completed, roles: [household_police],
         requires: [slip_no], label: 办结}
      - {trigger: exempt, from: accepted, to: completed, requires: [ground],
         grounds: [无法通知, 有碍侦查]}          # the `ground` given must be one of these
      - {trigger: reject, from: "*", to: rejected}      # "*": every non-final state but the target
      - {trigger: note, from: "*", internal: true}      # stays in its state; starts no state timer
    timers:
      - name: verification
        label: 社区民警核查
        limit: 3 working_days                 # any TimeLimit.parse text
        basis: 派出所户籍窗口优质服务操作规范 六(二) …    # required: the article or rule behind the limit
        start: {state: verifying}             # or {trigger: some_trigger}; exactly one
                                              # when: {needs_verification: true} starts it only
                                              # if the case data match
                                              # counted_from: found_on counts it from the date in
                                              # that (declared, kind date) case-data field
        stop: {states: [reporting], triggers: []}
        cancel: {states: [approving], triggers: []}   # ends it cancelled (不适用), never met
        holder: community_police              # the role that must act; its assignee holds it
        on_expiry: {fire: some_trigger}       # the scheduler fires it, as the system, when due
        until: appointment_at                 # due at the instant in this (declared) case-data field;
                                              # limit is then the furthest ahead it may lie
        kind: statutory                       # statutory (law) or promised (a service commitment)
        pauses: {函调: {cap: 30 days, charged_to: law},
                 鉴定: {charged_to: law, requires: [notice_no]}}   # fields the pause must record
        extension: {tiers: [{grounds: [], max_total: 10 working_days, approver_roles: [head]}],
                    max_times: 1, requires: [applicant_told_on]}  # fields every extension records
        warn_before: 1 working_days           # optional; see workflow.default_warn_before()
        escalate_after: 1 working_days        # optional; see workflow.default_escalate_after()
        options: {roll_forward: false}        # TimeLimit options: roll_forward, month_end, start_day,
                                              # hour_start

How the timers so defined run, and what a definition must satisfy: :mod:`caseflow.workflow`; the
checks of its graph and timers: :mod:`caseflow.workflowcheck`.

Every refusal is a :class:`~caseflow.errors.WorkflowError` naming the file, the line and the field.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn, cast

# parse_workflow reads text, not a path: a store keeps the text of every version a case is pinned to.
from caseflow._yaml import MAX_DATA_FILE_BYTES, LineDict, LineList, load_yaml_text, parsed_form
from caseflow.errors import TimeLimitError, WorkflowError
from caseflow.materials import parse_materials, parse_service
from caseflow.timelimits import TimeLimit
from caseflow.workflow import (
    _KEY,
    _NAME,
    ANY_STATE,
    CHARGED_TO,
    FIELD_KINDS,
    GROUND_FIELD,
    TIMER_KINDS,
    ExtensionPolicy,
    ExtensionTier,
    FieldDef,
    FieldKind,
    FrozenMap,
    PausePolicy,
    StateDef,
    TimerDef,
    TimerKind,
    TransitionDef,
    WorkflowDef,
    _quoted,
)
from caseflow.workflowcheck import graph_problems, timer_problems

__all__ = [
    "load_workflow",
    "load_workflows",
    "parse_workflow",
    "shipped_workflows_dir",
]

_TOP_KEYS = ("key", "title", "basis", "description", "service", "materials", "fields", "roles", "states",
             "transitions", "timers")
_FIELD_KEYS = ("label", "kind")
_STATE_KEYS = ("name", "label", "initial", "final")
_TRANSITION_KEYS = ("trigger", "from", "to", "internal", "roles", "requires", "label", "grounds")
_TIMER_KEYS = ("name", "label", "limit", "basis", "start", "stop", "kind", "pauses", "extension",
               "warn_before", "escalate_after", "options", "holder", "on_expiry", "cancel", "until")
_START_KEYS = ("state", "trigger", "deemed_from", "when", "counted_from")
_STOP_KEYS = ("states", "triggers")
_EXPIRY_KEYS = ("fire",)
_PAUSE_KEYS = ("cap", "charged_to", "requires")
_EXTENSION_KEYS = ("tiers", "max_times", "requires")
_TIER_KEYS = ("grounds", "max_total", "min_each", "max_each", "approver_roles")
_OPTION_KEYS = ("roll_forward", "month_end", "start_day", "hour_start")
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class _Parser:
    """Reads one document; every error names the file, the line and the dotted field."""

    def __init__(self, doc: Any, path: str) -> None:
        self.doc = doc
        self.path = path

    def line(self, fld: str) -> int | None:
        """The line of ``fld`` (``timers[1].stop.states``): the deepest part of it found in the file."""
        node: Any = self.doc
        line: int | None = getattr(node, "line", None)
        for name, index in _FIELD_PART.findall(fld):
            if name and isinstance(node, LineDict) and name in node:
                line, node = node.key_lines.get(name, line), node[name]
            elif index and isinstance(node, LineList) and int(index) < len(node):
                line, node = node.item_lines[int(index)], node[int(index)]
            else:
                break
        return line

    def fail(self, message: str, fld: str) -> NoReturn:
        raise WorkflowError(message, path=self.path, line=self.line(fld), field=fld)

    def rewrap(self, exc: WorkflowError | TimeLimitError, fld: str) -> NoReturn:
        """Re-raise an error from a dataclass or TimeLimit with this file's path and line."""
        message = str(exc)
        sub = getattr(exc, "field", "")
        if sub:
            # Strip the "field 'x': " prefix WorkflowError added, whatever its exact form.
            message = message.removeprefix(str(WorkflowError("", field=sub)))
        full = f"{fld}.{sub}" if sub and fld else (sub or fld)
        raise WorkflowError(message, path=self.path, line=self.line(full), field=full) from None

    # --- typed readers ---

    def mapping(self, value: Any, fld: str, allowed: tuple[str, ...], what: str) -> LineDict:
        if not isinstance(value, dict):
            self.fail(f"{what} must be a mapping, got {_kind(value)} {value!r}", fld)
        node = value if isinstance(value, LineDict) else _as_linedict(value)
        for key in node:
            if key not in allowed:
                self.fail(f"unknown key {key!r} in {what}; allowed keys are {_quoted(allowed)}",
                          f"{fld}.{key}" if fld else key)
        return node

    def text(self, node: LineDict, key: str, fld: str, *, required: bool = True) -> str:
        value = node.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            problem = "is missing" if key not in node else f"must be a non-empty text, got {value!r}"
            self.fail(f"{key} {problem}", fld)
        return value.strip()

    def name(self, value: Any, fld: str, what: str, *, pattern: re.Pattern[str] = _NAME) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            shape = "a lower-case identifier" if pattern is _KEY else "an identifier"
            hint = " (YAML reads no/yes/on/off as true or false: quote the name, e.g. \"no\")" \
                if isinstance(value, bool) else ""
            self.fail(f"{what} must be {shape} (letters, digits, _), got {value!r}{hint}", fld)
        return value

    def names(self, value: Any, fld: str, what: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.fail(f"{what} must be a list of names, got {value!r}", fld)
        result = [self.name(item, f"{fld}[{i}]", what) for i, item in enumerate(value)]
        duplicates = sorted({n for n in result if result.count(n) > 1})
        if duplicates:
            self.fail(f"{what} lists {duplicates} twice", fld)
        return result

    def texts(self, value: Any, fld: str, what: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"{what} must be a list of texts, got {value!r}", fld)
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"{what} must be non-empty texts, got {item!r}", f"{fld}[{i}]")
        return [item.strip() for item in value]

    def flag(self, node: LineDict, key: str, fld: str) -> bool:
        value = node.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"{key} must be true or false, got {value!r}", fld)
        return value

    def limit(self, value: Any, fld: str, options: Mapping[str, Any], what: str) -> TimeLimit:
        if not isinstance(value, str):
            self.fail(f"{what} is written like '3 working_days' or '24 hours', got {value!r}", fld)
        try:
            return TimeLimit.parse(value, **options)
        except TimeLimitError as exc:
            self.fail(f"bad {what} {value!r}: {exc}", fld)

    # --- sections ---

    def parse(self, text: str) -> WorkflowDef:
        top = self.mapping(self.doc, "", _TOP_KEYS, "a workflow file")
        key = self.name(top.get("key"), "key", "key", pattern=_KEY) if "key" in top else self.fail(
            "key is missing: give the workflow a lower-case identifier, e.g. 'key: hukou_transfer'", "key")
        title = self.text(top, "title", "title")
        basis = self.text(top, "basis", "basis", required=False)
        if "description" in top and not isinstance(top["description"], str):
            self.fail(f"description must be a text, got {top['description']!r}", "description")
        fields = self.fields(top.get("fields"))
        service = parse_service(top.get("service"), self.fail)
        materials = parse_materials(top.get("materials"), self.fail)
        roles = self.roles(top.get("roles"))
        states, initial = self.states(top)
        transitions = self.transitions(top.get("transitions"), states, roles, fields)
        self.graph(states, initial, transitions)
        timers = self.timers(top.get("timers"), states, transitions, roles)
        self.declared(timers, fields)
        canonical = json.dumps(self.doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        try:
            return WorkflowDef(
                key, title,
                version=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
                roles=FrozenMap(roles), states=tuple(states), initial=initial,
                transitions=tuple(transitions), timers=tuple(timers),
                source=self.path, text=text, basis=basis, fields=FrozenMap(fields), service=service,
                materials=materials,
            )
        except WorkflowError as exc:  # pragma: no cover - the checks above come first, with lines
            self.rewrap(exc, "")

    def fields(self, value: Any) -> dict[str, FieldDef]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(f"fields must map each key to {{label: ..., kind: ...}}, got {_kind(value)} {value!r}",
                      "fields")
        result: dict[str, FieldDef] = {}
        for key, item in value.items():
            fld = f"fields.{key}"
            self.name(key, fld, "a field key")
            node = self.mapping(item, fld, _FIELD_KEYS, f"the entry for {key!r}")
            if "label" not in node:
                self.fail(f"{key!r} needs a Chinese label, e.g. '{{label: 联系电话, kind: phone}}'", fld)
            label = self.text(node, "label", f"{fld}.label")
            kind = node.get("kind", "text")
            if kind not in FIELD_KINDS:
                self.fail(f"{key!r} has kind {kind!r}; allowed: {_quoted(FIELD_KINDS)}", f"{fld}.kind")
            result[key] = FieldDef(key, label, cast(FieldKind, kind))
        return result

    def declared(self, timers: list[TimerDef], fields: Mapping[str, FieldDef]) -> None:
        """Pauses and extensions may require only declared fields (transitions are checked as they are read)."""
        for i, timer in enumerate(timers):
            for reason, policy in timer.pauses.items():
                self.undeclared(policy.requires, fields, f"pause {reason!r}", f"timers[{i}].pauses.{reason}.requires")
            if timer.extension is not None:
                self.undeclared(timer.extension.requires, fields, f"the extension of {timer.name!r}",
                                f"timers[{i}].extension.requires")
            if timer.until is not None:
                self.undeclared((timer.until,), fields, f"timer {timer.name!r} (until)", f"timers[{i}].until")
            if timer.counted_from is not None:
                fld = f"timers[{i}].start.counted_from"
                self.undeclared((timer.counted_from,), fields, f"timer {timer.name!r} (counted_from)", fld)
                if fields[timer.counted_from].kind != "date":
                    self.fail(f"timer {timer.name!r} counts from {timer.counted_from!r}, which is of kind "
                              f"{fields[timer.counted_from].kind!r}; it must be of kind 'date'", fld)

    def undeclared(self, names: Iterable[str], fields: Mapping[str, FieldDef], what: str, fld: str) -> None:
        # Refused, not warned: a required field without a label would reach people as its key.
        for j, name in enumerate(names):
            if name not in fields:
                self.fail(f"{what} requires {name!r}, which the 'fields' block does not declare; add e.g. "
                          f"'fields: {{{name}: {{label: …, kind: text}}}}' (declared: {_quoted(fields)})",
                          f"{fld}[{j}]")

    def roles(self, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(f"roles must map role names to Chinese labels, got {value!r}", "roles")
        roles: dict[str, str] = {}
        for name, label in value.items():
            self.name(name, f"roles.{name}", "a role name")
            if not isinstance(label, str) or not label.strip():
                self.fail(f"role {name!r} needs a Chinese label, got {label!r}", f"roles.{name}")
            roles[name] = label.strip()
        return roles

    def states(self, top: LineDict) -> tuple[list[StateDef], str]:
        value = top.get("states")
        if not isinstance(value, list) or not value:
            problem = "is missing" if "states" not in top else f"must be a non-empty list, got {value!r}"
            self.fail(f"states {problem}", "states")
        states: list[StateDef] = []
        initials: list[tuple[str, str]] = []
        for i, item in enumerate(value):
            fld = f"states[{i}]"
            node = self.mapping(item, fld, _STATE_KEYS, "a state")
            name = self.name(node.get("name"), f"{fld}.name", "a state name")
            if any(s.name == name for s in states):
                self.fail(f"duplicate state {name!r}", f"{fld}.name")
            label = self.text(node, "label", f"{fld}.label")
            initial, final = self.flag(node, "initial", f"{fld}.initial"), self.flag(node, "final", f"{fld}.final")
            if initial and final:
                self.fail(f"the initial state {name!r} cannot be final", f"{fld}.final")
            if initial:
                initials.append((name, f"{fld}.initial"))
            states.append(StateDef(name, label, final=final))
        if not initials:
            self.fail("no initial state: mark exactly one state 'initial: true'", "states")
        if len(initials) > 1:
            self.fail(f"more than one initial state: {_quoted(n for n, _ in initials)}; mark exactly one",
                      initials[1][1])
        return states, initials[0][0]

    def transitions(self, value: Any, states: list[StateDef], roles: Mapping[str, str],
                    fields: Mapping[str, FieldDef]) -> list[TransitionDef]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"transitions must be a list, got {value!r}", "transitions")
        names = [s.name for s in states]
        open_states = [s.name for s in states if not s.final]
        finals = {s.name for s in states if s.final}
        result: list[TransitionDef] = []
        pairs: dict[tuple[str, str], str] = {}
        for i, item in enumerate(value):
            fld = f"transitions[{i}]"
            node = self.mapping(item, fld, _TRANSITION_KEYS, "a transition")
            trigger = self.name(node.get("trigger"), f"{fld}.trigger", "a trigger")
            internal = self.flag(node, "internal", f"{fld}.internal")
            if internal and "to" in node:
                self.fail(f"internal transition {trigger!r} stays in its state: remove 'to'", f"{fld}.to")
            if not internal and "to" not in node:
                self.fail(f"transition {trigger!r} needs 'to' (or 'internal: true' to stay in its state)",
                          fld)
            dest = "" if internal else self.name(node["to"], f"{fld}.to", "a target state")
            if dest and dest not in names:
                self.fail(f"transition {trigger!r} goes to unknown state {dest!r}; states are {_quoted(names)}",
                          f"{fld}.to")
            if "from" not in node:
                self.fail(f"transition {trigger!r} needs 'from' (a state, a list of states, or '*')", fld)
            raw = node["from"]
            if raw == ANY_STATE:
                sources = [s for s in open_states if internal or s != dest]
            else:
                sources = self.names(raw, f"{fld}.from", "from")
                for j, source in enumerate(sources):
                    if source not in names:
                        self.fail(f"transition {trigger!r} comes from unknown state {source!r}; states are "
                                  f"{_quoted(names)}", f"{fld}.from[{j}]" if isinstance(raw, list) else f"{fld}.from")
                    if source in finals:
                        self.fail(f"transition {trigger!r} leaves final state {source!r}; a final state has no "
                                  "way out", f"{fld}.from")
            if not sources:
                self.fail(f"transition {trigger!r} has no source state", f"{fld}.from")
            for source in sources:
                if (trigger, source) in pairs:
                    self.fail(f"trigger {trigger!r} from state {source!r} is already defined at "
                              f"{pairs[(trigger, source)]}; one trigger takes one way out of a state", fld)
                pairs[(trigger, source)] = f"{fld} (line {self.line(fld)})"
            role_names = self.names(node.get("roles"), f"{fld}.roles", "roles")
            for j, role in enumerate(role_names):
                if role not in roles:
                    self.fail(f"unknown role {role!r} in transition {trigger!r}; declared roles are "
                              f"{_quoted(roles)}", f"{fld}.roles[{j}]")
            requires = tuple(self.names(node.get("requires"), f"{fld}.requires", "requires"))
            self.undeclared(requires, fields, f"transition {trigger!r}", f"{fld}.requires")
            label = self.text(node, "label", f"{fld}.label", required=False)
            grounds = tuple(self.texts(node.get("grounds"), f"{fld}.grounds", "grounds"))
            if grounds and GROUND_FIELD not in requires:
                self.fail(f"transition {trigger!r} lists grounds but takes no {GROUND_FIELD!r} field; add "
                          f"{GROUND_FIELD!r} to its requires, or remove grounds", f"{fld}.grounds")
            # An internal transition is one per source state, so its target is always where it stays.
            groups = [(source,) for source in sources] if internal else [tuple(sources)]
            for group in groups:
                try:
                    result.append(TransitionDef(trigger, group, group[0] if internal else dest,
                                                tuple(role_names), requires=requires, label=label,
                                                internal=internal, grounds=grounds))
                except WorkflowError as exc:
                    self.rewrap(exc, fld)
        return result

    def graph(self, states: list[StateDef], initial: str, transitions: list[TransitionDef]) -> None:
        index = {s.name: i for i, s in enumerate(states)}
        for message, kind, name in graph_problems(tuple(states), initial, tuple(transitions)):
            self.fail(message, f"states[{index[name]}].name" if kind == "state" else "states")

    def timers(self, value: Any, states: list[StateDef], transitions: list[TransitionDef],
               roles: Mapping[str, str]) -> list[TimerDef]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"timers must be a list, got {value!r}", "timers")
        result: list[TimerDef] = []
        for i, item in enumerate(value):
            timer = self.timer(item, f"timers[{i}]", roles)
            if any(t.name == timer.name for t in result):
                self.fail(f"duplicate timer {timer.name!r}", f"timers[{i}].name")
            for message, sub in timer_problems(timer, tuple(states), tuple(transitions), roles):
                self.fail(message, f"timers[{i}].{sub}")
            result.append(timer)
        names = [t.name for t in result]
        for i, timer in enumerate(result):
            if timer.deemed_from is not None and (timer.deemed_from not in names or timer.deemed_from == timer.name):
                self.fail(f"timer {timer.name!r} is deemed from unknown timer {timer.deemed_from!r}; "
                          f"other timers are {_quoted(n for n in names if n != timer.name)}",
                          f"timers[{i}].start.deemed_from")
        return result

    def timer(self, item: Any, fld: str, roles: Mapping[str, str]) -> TimerDef:
        node = self.mapping(item, fld, _TIMER_KEYS, "a timer")
        name = self.name(node.get("name"), f"{fld}.name", "a timer name")
        label = self.text(node, "label", f"{fld}.label")
        if "basis" not in node or not isinstance(node["basis"], str) or not node["basis"].strip():
            self.fail(f"timer {name!r} must cite its basis (the article or rule behind the limit), got "
                      f"{node.get('basis')!r}", f"{fld}.basis")
        options = self.options(node.get("options"), f"{fld}.options")
        if "limit" not in node:
            self.fail(f"timer {name!r} needs a limit, e.g. 'limit: 3 working_days'", fld)
        limit = self.limit(node["limit"], f"{fld}.limit", options, "limit")
        if "start" not in node:
            self.fail(f"timer {name!r} needs 'start: {{state: ...}}' or 'start: {{trigger: ...}}'", fld)
        start = self.mapping(node["start"], f"{fld}.start", _START_KEYS, f"the start of timer {name!r}")
        if len([k for k in start if k not in ("deemed_from", "when", "counted_from")]) != 1:
            self.fail(f"timer {name!r} must start on exactly one of 'state' or 'trigger', got {dict(start)!r}",
                      f"{fld}.start")
        deemed = (self.name(start["deemed_from"], f"{fld}.start.deemed_from", "a timer name")
                  if "deemed_from" in start else None)
        counted_from = (self.name(start["counted_from"], f"{fld}.start.counted_from", "a case-data field")
                        if start.get("counted_from") is not None else None)
        start_state = self.name(start["state"], f"{fld}.start.state", "a state") if "state" in start else None
        start_trigger = (self.name(start["trigger"], f"{fld}.start.trigger", "a trigger")
                         if "trigger" in start else None)
        when: dict[str, Any] = {}
        if start.get("when") is not None:
            cond = self.mapping(start["when"], f"{fld}.start.when", tuple(start["when"]) if isinstance(
                start["when"], dict) else (), f"the start condition of timer {name!r}")
            for key, value in cond.items():
                self.name(key, f"{fld}.start.when.{key}", "a data field")
                if isinstance(value, list | dict) or value is None:
                    self.fail(f"start.when.{key} must be one value (text, number, true/false), got {value!r}",
                              f"{fld}.start.when.{key}")
                when[key] = value
        stop = self.mapping(node.get("stop") or _as_linedict({}), f"{fld}.stop", _STOP_KEYS,
                            f"the stop of timer {name!r}")
        cancel = self.mapping(node.get("cancel") or _as_linedict({}), f"{fld}.cancel", _STOP_KEYS,
                              f"the cancel of timer {name!r}")
        holder = self.name(node["holder"], f"{fld}.holder", "a role") if node.get("holder") is not None else None
        if holder is not None and holder not in roles:
            self.fail(f"timer {name!r} is held by unknown role {holder!r}; declared roles are {_quoted(roles)}",
                      f"{fld}.holder")
        on_expiry = None
        if node.get("on_expiry") is not None:
            expiry = self.mapping(node["on_expiry"], f"{fld}.on_expiry", _EXPIRY_KEYS,
                                  f"the on_expiry of timer {name!r}")
            if "fire" not in expiry:
                self.fail(f"on_expiry of timer {name!r} needs 'fire: TRIGGER'", f"{fld}.on_expiry")
            on_expiry = self.name(expiry["fire"], f"{fld}.on_expiry.fire", "a trigger")
        kind = node.get("kind", "statutory")
        if kind not in TIMER_KINDS:
            self.fail(f"timer {name!r} has kind {kind!r}; allowed: {_quoted(TIMER_KINDS)}", f"{fld}.kind")
        pauses = self.pauses(node.get("pauses"), f"{fld}.pauses")
        extension = self.extension(node.get("extension"), f"{fld}.extension", limit, options, roles)
        warn: dict[str, TimeLimit] = {}
        for what in ("warn_before", "escalate_after"):
            if node.get(what) is not None:
                warn[what] = self.limit(node[what], f"{fld}.{what}", {}, what)
        try:
            return TimerDef(
                name, label, limit, basis=node["basis"].strip(),
                start_state=start_state, start_trigger=start_trigger,
                stop_states=frozenset(self.names(stop.get("states"), f"{fld}.stop.states", "stop states")),
                stop_triggers=frozenset(self.names(stop.get("triggers"), f"{fld}.stop.triggers", "stop triggers")),
                kind=cast(TimerKind, kind), pauses=FrozenMap(pauses), extension=extension, deemed_from=deemed,
                counted_from=counted_from,
                holder=holder, on_expiry=on_expiry, start_when=FrozenMap(when),
                until=(self.name(node["until"], f"{fld}.until", "a case-data field")
                       if node.get("until") is not None else None),
                cancel_states=frozenset(self.names(cancel.get("states"), f"{fld}.cancel.states", "cancel states")),
                cancel_triggers=frozenset(self.names(cancel.get("triggers"), f"{fld}.cancel.triggers",
                                                     "cancel triggers")),
                **warn,
            )
        except WorkflowError as exc:
            self.rewrap(exc, fld)

    def options(self, value: Any, fld: str) -> dict[str, Any]:
        if value is None:
            return {}
        node = self.mapping(value, fld, _OPTION_KEYS, "timer options")
        for key, option in node.items():
            try:
                TimeLimit(1, "days", **{key: option})
            except TimeLimitError as exc:
                self.fail(f"bad option {key}: {exc}", f"{fld}.{key}")
        return dict(node)

    def pauses(self, value: Any, fld: str) -> dict[str, PausePolicy]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(f"pauses must map a reason (函调, 听证 …) to its policy, got {value!r}", fld)
        result: dict[str, PausePolicy] = {}
        for reason, policy in value.items():
            sub = f"{fld}.{reason}"
            node = self.mapping(policy if policy is not None else _as_linedict({}), sub, _PAUSE_KEYS,
                                f"pause {reason!r}")
            requires = self.names(node.get("requires"), f"{sub}.requires", "required fields")
            cap = None
            if node.get("cap") is not None:
                cap = self.limit(node["cap"], f"{sub}.cap", {}, f"cap of pause {reason!r}")
                if cap.amount <= 0:
                    self.fail(f"the cap of pause {reason!r} must be longer than zero, got {cap}; leave it "
                              "out for no cap", f"{sub}.cap")
            charged = node.get("charged_to", "law")
            if charged not in CHARGED_TO:
                self.fail(f"charged_to of pause {reason!r} is {charged!r}; allowed: {_quoted(CHARGED_TO)}",
                          f"{sub}.charged_to")
            try:
                result[reason] = PausePolicy(reason, cap=cap, charged_to=charged, requires=tuple(requires))
            except WorkflowError as exc:
                self.rewrap(exc, sub)
        return result

    def extension(self, value: Any, fld: str, limit: TimeLimit, options: Mapping[str, Any],
                  roles: Mapping[str, str]) -> ExtensionPolicy | None:
        if value is None:
            return None
        node = self.mapping(value, fld, _EXTENSION_KEYS, "an extension")
        raw_tiers = node.get("tiers")
        if not isinstance(raw_tiers, list) or not raw_tiers:
            self.fail(f"an extension needs a non-empty list of tiers, got {raw_tiers!r}", f"{fld}.tiers")
        tiers = []
        for i, item in enumerate(raw_tiers):
            sub = f"{fld}.tiers[{i}]"
            tier = self.mapping(item, sub, _TIER_KEYS, "an extension tier")
            if "max_total" not in tier:
                self.fail("an extension tier needs max_total, e.g. 'max_total: 10 working_days'", sub)
            limits: dict[str, TimeLimit] = {}
            for what in ("max_total", "min_each", "max_each"):
                if tier.get(what) is None:
                    continue
                # Read with the timer's options, so limit + extension keeps its counting rules.
                limits[what] = self.limit(tier[what], f"{sub}.{what}", options, what)
                if limits[what].unit != limit.unit:
                    self.fail(f"extension tier {i + 1} {what} is in {limits[what].unit} but the timer counts "
                              f"{limit.unit}; write it in {limit.unit}", f"{sub}.{what}")
            approvers = self.names(tier.get("approver_roles"), f"{sub}.approver_roles", "approver_roles")
            for j, role in enumerate(approvers):
                if role not in roles:
                    self.fail(f"unknown approver role {role!r}; declared roles are {_quoted(roles)}",
                              f"{sub}.approver_roles[{j}]")
            try:
                tiers.append(ExtensionTier(
                    tuple(self.texts(tier.get("grounds"), f"{sub}.grounds", "grounds")), limits["max_total"],
                    min_each=limits.get("min_each"), max_each=limits.get("max_each"),
                    approver_roles=tuple(approvers),
                ))
            except WorkflowError as exc:
                self.rewrap(exc, sub)
        try:
            return ExtensionPolicy(tuple(tiers), max_times=node.get("max_times"),
                                   requires=tuple(self.names(node.get("requires"), f"{fld}.requires",
                                                             "required fields")))
        except WorkflowError as exc:
            self.rewrap(exc, fld)


def _kind(value: object) -> str:
    """How a YAML value reads to the person who wrote it."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a text"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


def _as_linedict(value: dict[str, Any]) -> LineDict:
    node = LineDict(value)
    node.key_lines = {}
    return node


def parse_workflow(text: str, *, path: str = "<string>") -> WorkflowDef:
    """Read a workflow definition from YAML ``text``; ``path`` names it in error messages.

    A definition is a pure function of its text (its version is the text's hash) and is immutable, so a
    text read before is answered from a bounded cache: digests, labels and sweeps re-read the shipped
    files and every stored version many times a minute, and parsing one costs milliseconds.
    """
    defn = _parse_cached(text, path)
    if defn.source != path:
        defn = _renamed(text, path)
    return defn


@lru_cache(maxsize=512)
def _renamed(text: str, path: str) -> WorkflowDef:
    # The same text read under another name (a shipped file and its stored version): the same
    # definition, named for where it was read this time. Kept, as the parse is: the labels of every
    # sweep and digest read the shipped files again, and a copy per file per read added up.
    defn = copy.copy(_parse_cached(text, path))
    object.__setattr__(defn, "source", path)
    return defn


@lru_cache(maxsize=512)
def _parse_text(text: str) -> tuple[str, WorkflowDef]:
    return text, _parse_uncached(text, "<string>")


def _parse_cached(text: str, path: str) -> WorkflowDef:
    # Keyed by the text alone; a text that fails is parsed again under its own name so that the error
    # names the file (lru_cache never stores a raised exception).
    try:
        return _parse_text(text)[1]
    except WorkflowError:
        return _parse_uncached(text, path)


def _parse_uncached(text: str, path: str) -> WorkflowDef:
    # Errors are not cached (lru_cache never stores a raised exception): a refused text is re-read.
    doc = _parsed_doc(text)
    if doc is not None:
        try:
            return _Parser(doc, path).parse(text)
        except WorkflowError:
            pass  # the parsed form has no line numbers: read the text itself for an error that names one
    import yaml

    try:
        doc = load_yaml_text(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise WorkflowError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            path=path, line=mark.line + 1 if mark is not None else None,
        ) from None
    if doc is None:
        raise WorkflowError("the file is empty; a workflow needs key, title and states", path=path)
    return _Parser(doc, path).parse(text)


#: The shipped workflow files as YAML documents, by the SHA-256 of each file's text (written by
#: :func:`write_parsed_workflows`; ``tests/test_workflow.py`` checks it against the files). A text in it
#: is validated from that document without PyYAML: reading YAML was half of every database command's
#: definition loading. Any other text (an administrator's workflow, an older stored version) is read as
#: YAML. Line numbers are not kept: only an error needs one, and an error is re-read from the text.
PARSED_WORKFLOWS_FILE = Path(__file__).parent / "workflows_parsed.json"


@lru_cache(maxsize=1)
def _parsed_workflows() -> dict[str, Any]:
    return parsed_form(PARSED_WORKFLOWS_FILE)


def _parsed_doc(text: str) -> Any:
    parsed = _parsed_workflows()
    if not parsed:
        return None
    record = parsed.get(hashlib.sha256(text.encode("utf-8")).hexdigest())
    return _as_nodes(record["doc"]) if isinstance(record, dict) and "doc" in record else None


def _as_nodes(value: Any) -> Any:
    # The parser reads LineDict/LineList nodes; here without lines (line 0: unknown).
    if isinstance(value, dict):
        node = LineDict({k: _as_nodes(v) for k, v in value.items()})
        node.key_lines = {}
        return node
    if isinstance(value, list):
        items = LineList(_as_nodes(v) for v in value)
        items.item_lines = [0] * len(items)
        return items
    return value


def write_parsed_workflows(directory: Path | str | None = None, target: Path | str | None = None) -> Path:
    """Write the parsed form of every workflow file in ``directory`` (default: the shipped ones).

    Run after editing ``workflows/`` (``python -c "from caseflow.workflowfile import write_parsed_workflows;
    write_parsed_workflows()"``); a stale parsed form is never wrong, only slower (the YAML is read).
    Each file is validated first: only a definition that loads is written.
    """
    folder = shipped_workflows_dir() if directory is None else Path(directory)
    files: dict[str, Any] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        text = path.read_bytes().decode("utf-8")
        load_workflow(path)
        files[hashlib.sha256(text.encode("utf-8")).hexdigest()] = {"file": path.name, "doc": load_yaml_text(text)}
    out = Path(target) if target is not None else PARSED_WORKFLOWS_FILE
    # Keys keep the file's order (states, fields and timers are listed in it); files sort by hash.
    out.write_text(json.dumps({"files": dict(sorted(files.items()))}, ensure_ascii=False, indent=1) + "\n",
                   encoding="utf-8")
    _parsed_workflows.cache_clear()
    _parse_text.cache_clear()
    return out


def load_workflow(path: Path | str) -> WorkflowDef:
    """Read and validate one workflow file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_DATA_FILE_BYTES:
            raise WorkflowError(f"the file holds {size} bytes; a workflow definition is a few kilobytes "
                                f"(at most {MAX_DATA_FILE_BYTES})", path=str(path))
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise WorkflowError(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"not UTF-8 text (undecodable byte at offset {exc.start}): a workflow definition "
                            "is a YAML text file", path=str(path)) from None
    return parse_workflow(text, path=str(path))


def shipped_workflows_dir() -> Path:
    """The ``workflows/`` directory shipped with caseflow (in the wheel, or in a source checkout)."""
    packaged = Path(__file__).parent / "_data" / "workflows"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "workflows"


def _key_line(defn: WorkflowDef) -> int | None:
    for number, line in enumerate(defn.text.splitlines(), start=1):
        if line.startswith("key:"):
            return number
    return None


def load_workflows(directory: Path | str | None = None) -> dict[str, WorkflowDef]:
    """Every ``*.yaml``/``*.yml`` workflow in ``directory`` (default: the shipped ones), by key.

    Two files with the same key are refused: a case must never depend on which file was read last.
    """
    folder = shipped_workflows_dir() if directory is None else Path(directory)
    if not folder.is_dir():
        raise WorkflowError(f"no such workflow directory: {folder}", path=str(folder))
    found: dict[str, WorkflowDef] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        defn = load_workflow(path)
        if defn.key in found:
            raise WorkflowError(
                f"workflow key {defn.key!r} is already defined in {found[defn.key].source}; "
                "each key may appear in one file only",
                path=str(path), line=_key_line(defn), field="key",
            )
        found[defn.key] = defn
    return found
