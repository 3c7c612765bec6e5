"""A procedure drawn as a state diagram (Mermaid ``stateDiagram-v2``), for ``caseflow workflows show``."""

from __future__ import annotations

import re

from caseflow.workflow import WorkflowDef

__all__ = ["mermaid"]


def _mermaid_text(text: str) -> str:
    # Mermaid ends a label at a newline and reads ';' and '#' specially; keep labels on one line.
    return re.sub(r"[\r\n;#:]+", " ", text).strip()


def mermaid(defn: WorkflowDef) -> str:
    """The procedure as a Mermaid ``stateDiagram-v2``: Chinese state labels, transitions by trigger, and
    a note on each state where timers start.
    """
    lines = ["stateDiagram-v2", f"    %% {_mermaid_text(defn.title)} ({defn.key} {defn.version[:12]})"]
    for state in defn.states:
        lines.append(f"    {state.name} : {_mermaid_text(state.label)}")
    lines.append(f"    [*] --> {defn.initial}")
    for t in defn.transitions:
        label = t.trigger + (f" {_mermaid_text(t.label)}" if t.label else "")
        for source in t.sources:
            lines.append(f"    {source} --> {t.dest} : {label}")
    for state in defn.states:
        if state.final:
            lines.append(f"    {state.name} --> [*]")
    notes: dict[str, list[str]] = {}
    for timer in defn.timers:
        where = [timer.start_state] if timer.start_state else [
            t.dest for t in defn.transitions_for(timer.start_trigger or "")
        ]
        for name in dict.fromkeys(where):
            notes.setdefault(name, []).append(f"{_mermaid_text(timer.label)} {timer.limit.chinese()}")
    for name, items in notes.items():
        lines.append(f"    note right of {name} : 时限 {', '.join(items)}")
    return "\n".join(lines) + "\n"
