"""``caseflow workflows``: validate and show procedure definitions."""

from __future__ import annotations

from pathlib import Path

import click

from caseflow.cli.common import db_option, emit, handle_errors, json_option, open_engine


@click.group("workflows")
def workflows_group() -> None:
    """Procedure definitions (workflows/*.yaml): validate, show, import into the database.

    \b
    Example:
        caseflow workflows validate workflows/
        caseflow workflows list
    """


@workflows_group.command("list")
@json_option
@handle_errors
def workflows_list(as_json: bool) -> None:
    """The procedures cases can be opened under: key, title, version, states and time limits.

    \b
    Example:
        caseflow workflows list
        caseflow workflows list --json
    """
    from caseflow.registry import WorkflowRegistry
    from caseflow.textwidth import table

    found = list(WorkflowRegistry.load())
    payload = [{"key": d.key, "title": d.title, "version": d.version, "states": len(d.states),
                "timers": [{"name": t.name, "label": t.label, "limit": str(t.limit)} for t in d.timers]}
               for d in found]
    rows = [[d.key, d.title, d.version[:12], len(d.states),
             "、".join(f"{t.label} {t.limit.chinese()}" for t in d.timers[:3]) + ("…" if len(d.timers) > 3 else "")]
            for d in found]
    emit(as_json, payload, table(["程序", "名称", "版本", "环节", "时限"], rows, "<<<><"))


@workflows_group.command("validate")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@json_option
@handle_errors
def workflows_validate(directory: Path | None, as_json: bool) -> None:
    """Load and check every definition in DIRECTORY (default: the shipped ones).

    \b
    Example:
        caseflow workflows validate workflows/
    """
    from caseflow.workflowfile import load_workflows

    found = load_workflows(directory)
    payload = [{"key": d.key, "title": d.title, "version": d.version, "states": len(d.states),
                "timers": len(d.timers), "source": d.source} for d in found.values()]
    text = "\n".join(f"ok  {d.key:<22} {d.title}  ({len(d.states)} states, {len(d.timers)} timers) {d.version[:12]}"
                     for d in found.values())
    emit(as_json, payload, text)


@workflows_group.command("show")
@click.argument("key")
@json_option
@handle_errors
def workflows_show(key: str, as_json: bool) -> None:
    """Show a definition's states, transitions and timers, and a Mermaid diagram.

    \b
    Example:
        caseflow workflows show hukou_transfer
    """
    from caseflow.diagram import mermaid
    from caseflow.registry import WorkflowRegistry

    d = WorkflowRegistry.load().latest(key)
    payload = {
        "key": d.key, "title": d.title, "version": d.version,
        "states": [{"name": s.name, "label": s.label, "final": s.final} for s in d.states],
        "transitions": [{"trigger": t.trigger, "from": list(t.sources), "to": t.dest, "roles": list(t.roles),
                         "requires": list(t.requires)} for t in d.transitions],
        "timers": [{"name": t.name, "label": t.label, "limit": str(t.limit), "basis": t.basis, "kind": t.kind}
                   for t in d.timers],
        "mermaid": mermaid(d),
    }
    lines = [f"{d.key} — {d.title}  (version {d.version[:12]})", "states:"]
    lines += [f"  {s.name:<20} {s.label}{'  [final]' if s.final else ''}" for s in d.states]
    lines.append("transitions:")
    lines += [f"  {t.trigger:<24} {','.join(t.sources)} → {t.dest}  roles: {','.join(t.roles) or 'any'}"
              + (f"  needs: {','.join(t.requires)}" if t.requires else "") for t in d.transitions]
    lines.append("timers:")
    lines += [f"  {t.name:<28} {t.limit.chinese():<8} {t.label} — {t.basis}" for t in d.timers]
    lines += ["", "```mermaid", mermaid(d), "```"]
    emit(as_json, payload, "\n".join(lines))


@workflows_group.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@db_option
@json_option
@handle_errors
def workflows_import(path: Path, db: str | None, as_json: bool) -> None:
    """Publish a definition (validated like `workflows validate`) in the database for every process.

    New cases of its key use it from the next command of every API worker and scheduler; open cases
    keep the version they were opened under.

    \b
    Example:
        caseflow workflows import workflows/hukou_transfer.yaml
    """
    from caseflow.workflowfile import load_workflow

    defn = load_workflow(path)
    open_engine(db).publish_workflow(defn, actor="system")
    emit(as_json, {"key": defn.key, "title": defn.title, "version": defn.version, "published": True},
         f"published {defn.key} {defn.title} {defn.version[:12]}")
