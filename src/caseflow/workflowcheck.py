"""The structural checks that make a workflow definition whole: its graph, and each timer against it.

The graph is whole when the definition has a final state, every transition names known states, leaves
no final state and is not defined twice from one state, every state can be reached from the initial
state and every non-final state has a way out. A timer is whole when the states, triggers and roles it
names are declared, something that stops it can happen once it has started, its holder may fire a
transition that stops it, and its expiry trigger can fire from every state it can still be running in
(:func:`running_states`).

The checks return the problems instead of raising, so each caller refuses in its own terms:
:class:`~caseflow.workflow.WorkflowDef` names the field, the file reader (:mod:`caseflow.workflowfile`)
the file and the line of the state, transition or timer at fault too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# This module builds on the definitions; WorkflowDef imports it when it checks itself (a cycle otherwise).
from caseflow.workflow import StateDef, TimerDef, TransitionDef, _quoted

__all__ = ["graph_problems", "running_states", "timer_problems"]

_Problem = tuple[str, str, str]  # (message, what it is about: "state"/"states"/"transition", its name)


def _reachable(start: Iterable[str], transitions: Iterable[TransitionDef]) -> set[str]:
    edges: dict[str, set[str]] = {}
    for t in transitions:
        if not t.internal:
            for source in t.sources:
                edges.setdefault(source, set()).add(t.dest)
    seen = set(start)
    todo = list(seen)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def graph_problems(states: tuple[StateDef, ...], initial: str,
                   transitions: tuple[TransitionDef, ...]) -> list[_Problem]:
    """(message, what it is about, its name) triples: ``"state"`` and a state's name, ``"transition"`` and
    a trigger, or ``"states"`` and ``""`` for the definition's states as a whole.
    """
    names = [s.name for s in states]
    finals = {s.name for s in states if s.final}
    problems: list[_Problem] = []
    if not finals:
        problems.append(("no final state: mark at least one state 'final: true' so cases can end",
                         "states", ""))
    seen_pairs: set[tuple[str, str]] = set()
    for t in transitions:
        for where, name in [("from", s) for s in t.sources] + [("to", t.dest)]:
            if name not in names:
                problems.append((f"transition {t.trigger!r} {where} unknown state {name!r}; "
                                 f"states are {_quoted(names)}", "transition", t.trigger))
        for source in t.sources:
            if source in finals:
                problems.append((f"transition {t.trigger!r} leaves final state {source!r}; a final "
                                 "state has no way out", "transition", t.trigger))
            if (t.trigger, source) in seen_pairs:
                problems.append((f"trigger {t.trigger!r} is defined twice from state {source!r}",
                                 "transition", t.trigger))
            seen_pairs.add((t.trigger, source))
    reachable = _reachable([initial], transitions)
    for state in states:
        if state.name not in reachable:
            problems.append((f"state {state.name!r} cannot be reached from the initial state {initial!r}",
                             "state", state.name))
    exits = {source for t in transitions if not t.internal for source in t.sources if source != t.dest}
    for state in states:
        if not state.final and state.name not in exits:
            problems.append((f"state {state.name!r} is not final but has no transition out of it; add one "
                             "or mark it 'final: true'", "state", state.name))
    return problems


def timer_problems(timer: TimerDef, states: tuple[StateDef, ...], transitions: tuple[TransitionDef, ...],
                   roles: Mapping[str, str]) -> list[tuple[str, str]]:
    """(message, field) pairs; ``field`` is relative to the timer (``start.state``, ``stop.triggers`` …)."""
    names = [s.name for s in states]
    finals = {s.name for s in states if s.final}
    triggers = list(dict.fromkeys(t.trigger for t in transitions))
    problems: list[tuple[str, str]] = []
    if timer.start_state is not None and timer.start_state not in names:
        problems.append((f"timer {timer.name!r} starts in unknown state {timer.start_state!r}; "
                         f"states are {_quoted(names)}", "start.state"))
    if timer.start_trigger is not None and timer.start_trigger not in triggers:
        problems.append((f"timer {timer.name!r} starts on unknown trigger {timer.start_trigger!r}; "
                         f"triggers are {_quoted(triggers)}", "start.trigger"))
    for verb, fld, end_states, end_triggers in (("stops", "stop", timer.stop_states, timer.stop_triggers),
                                                ("is cancelled", "cancel", timer.cancel_states,
                                                 timer.cancel_triggers)):
        for state in sorted(end_states):
            if state not in names:
                problems.append((f"timer {timer.name!r} {verb} in unknown state {state!r}; "
                                 f"states are {_quoted(names)}", f"{fld}.states"))
        for trigger in sorted(end_triggers):
            if trigger not in triggers:
                problems.append((f"timer {timer.name!r} {verb} on unknown trigger {trigger!r}; "
                                 f"triggers are {_quoted(triggers)}", f"{fld}.triggers"))
    if timer.on_expiry is not None and timer.on_expiry not in triggers:
        problems.append((f"timer {timer.name!r} fires unknown trigger {timer.on_expiry!r} on expiry; "
                         f"triggers are {_quoted(triggers)}", "on_expiry.fire"))
    if timer.holder is not None and timer.holder not in roles:
        problems.append((f"timer {timer.name!r} is held by unknown role {timer.holder!r}; declared roles are "
                         f"{_quoted(roles)}", "holder"))
    if timer.extension is not None:
        for index, tier in enumerate(timer.extension.tiers):
            for role in tier.approver_roles:
                if role not in roles:
                    problems.append((f"unknown approver role {role!r} in timer {timer.name!r}; declared "
                                     f"roles are {_quoted(roles)}", f"extension.tiers[{index}].approver_roles"))
    if problems:
        return problems
    # Where can the case be while the timer runs? From the start state, or wherever the trigger leads.
    if timer.start_state is not None:
        begin = {timer.start_state}
    else:
        begin = {t.dest for t in transitions if t.trigger == timer.start_trigger}
    if timer.start_state is not None and timer.start_state in timer.stop_states:
        problems.append((f"timer {timer.name!r} starts and stops in state {timer.start_state!r}",
                         "stop.states"))
    after = _reachable(begin, transitions)
    # A state reached again after the start (a loop) still counts: only the start itself is excluded.
    entered = {t.dest for t in transitions if not t.internal and any(s in after for s in t.sources)}
    for state in sorted(timer.stop_states - entered):
        problems.append((f"timer {timer.name!r} stops in state {state!r}, which cannot be reached after "
                         "the timer starts", "stop.states"))
    fireable = {t.trigger for t in transitions if any(s in after for s in t.sources)}
    for trigger in sorted(timer.stop_triggers - fireable):
        problems.append((f"timer {timer.name!r} stops on trigger {trigger!r}, which cannot fire after "
                         "the timer starts", "stop.triggers"))
    can_stop = (timer.stop_states & entered) or (timer.stop_triggers & fireable) or (after & finals)
    if not can_stop:
        problems.append((f"timer {timer.name!r} can never stop: no stop state, stop trigger or final "
                         "state can be reached after it starts", "stop"))
    running = running_states(timer, transitions, finals)
    if timer.holder is not None:
        # The holder must be able to do what the timer waits for: fire a transition that meets it.
        stopping = [t for t in transitions if any(s in running for s in t.sources)
                    and (t.trigger in timer.stop_triggers or (not t.internal and t.dest in timer.stop_states))]
        if not stopping:
            stopping = [t for t in transitions if any(s in running for s in t.sources) and t.dest in finals]
        if not any(t.allows([timer.holder]) for t in stopping):
            allowed = sorted({r for t in stopping for r in t.roles})
            problems.append((f"timer {timer.name!r} is held by {timer.holder!r}, but no transition that stops it "
                             f"({_quoted(dict.fromkeys(t.trigger for t in stopping))}) is allowed to that role; "
                             f"they are allowed to {_quoted(allowed)}", "holder"))
    if timer.on_expiry is not None:
        cannot = sorted(s for s in running if not any(
            t.trigger == timer.on_expiry and s in t.sources for t in transitions))
        if cannot:
            problems.append((f"timer {timer.name!r} fires {timer.on_expiry!r} on expiry, which is not allowed "
                             f"from state(s) {_quoted(cannot)} where the timer can still be running",
                             "on_expiry.fire"))
    return problems


def running_states(timer: TimerDef, transitions: Iterable[TransitionDef], finals: Iterable[str]) -> set[str]:
    """The states a case can be in while ``timer`` runs: from where it starts, along transitions that
    neither stop nor cancel it, never into a final state.
    """
    ending = set(finals) | timer.stop_states | timer.cancel_states
    transitions = list(transitions)
    if timer.start_state is not None:
        begin = {timer.start_state}
    else:
        begin = {t.dest for t in transitions if t.trigger == timer.start_trigger}
    seen = set(begin) - ending
    todo = list(seen)
    while todo:
        state = todo.pop()
        for t in transitions:
            if t.internal or state not in t.sources or t.dest in ending:
                continue
            if t.trigger in timer.stop_triggers or t.trigger in timer.cancel_triggers:
                continue
            if t.dest not in seen:
                seen.add(t.dest)
                todo.append(t.dest)
    return seen
