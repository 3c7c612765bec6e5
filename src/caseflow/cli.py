"""The ``caseflow`` command line: it parses, calls the core, and formats — nothing more.

Every verb takes ``--json``; an error then prints ``{"error": {"type", "message"}}`` and exits 1.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from caseflow.calendar import WorkCalendar, default_calendar, load_holiday_file
from caseflow.clock import parse_date, parse_instant
from caseflow.errors import CaseflowError, TimeLimitError
from caseflow.timelimits import ExcludedPeriod, Step, TimeLimit, explain_due

F = TypeVar("F", bound=Callable[..., Any])

_WEEKDAYS = ("一", "二", "三", "四", "五", "六", "日")


def _weekday(day: date) -> str:
    return f"周{_WEEKDAYS[day.weekday()]}"


def _emit(as_json: bool, payload: Any, text: str) -> None:
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(text)


def handle_errors(func: F) -> F:
    """Turn a :class:`CaseflowError` into a clear message (or JSON error) and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CaseflowError as exc:
            if kwargs.get("as_json"):
                click.echo(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}},
                                      ensure_ascii=False))
            else:
                click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="caseflow")
def cli() -> None:
    """caseflow — 办理时限: deadlines on the Chinese working-day calendar.

    \b
    Example:
        caseflow deadline 2026-10-03T14:00 "20 working_days" --explain
    """


# ----------------------------------------------------------------------------------------- deadline


def format_steps(steps: list[Step]) -> str:
    """An explanation, one line a day."""
    lines = []
    for step in steps:
        mark = {"counted": "计", "skipped": "跳", "excluded": "除", "rolled": "顺", "start": "起",
                "clock": "时"}[step.kind]
        count = f"{step.count:>3}" if step.count is not None else "   "
        note = step.reason + (" (推算)" if step.provisional else "")
        lines.append(f"  {mark} {step.day} {_weekday(step.day)} {count}  {note}".rstrip())
    return "\n".join(lines)


def _step_dict(step: Step) -> dict[str, Any]:
    return {"day": step.day.isoformat(), "kind": step.kind, "count": step.count, "reason": step.reason,
            "provisional": step.provisional}


def describe_due(start: datetime, limit: TimeLimit, excluded: list[ExcludedPeriod], explain: bool,
                 calendar: WorkCalendar) -> tuple[dict[str, Any], str]:
    """A deadline as JSON and as text for a clerk."""
    due, steps = explain_due(start, limit, excluded=excluded, calendar=calendar)
    payload: dict[str, Any] = due.to_dict()
    if explain:
        payload["steps"] = [_step_dict(s) for s in steps]
    lines = [
        f"起算 start     {due.start:%Y-%m-%d %H:%M} {_weekday(due.start.date())}",
        f"时限 limit     {limit.chinese()} ({limit})",
    ]
    if limit.is_clock:
        lines.append(f"期满 due       {due.due_at:%Y-%m-%d %H:%M} {_weekday(due.due_at.date())}")
    else:
        lines.append(f"期满 last day  {due.last_day} {_weekday(due.last_day)} 24:00")
        lines.append(f"逾期 overdue   from {due.due_at.isoformat()}")
    if due.provisional:
        lines.append(f"注意 provisional: uses days after {calendar.official_until}, whose holiday notice is "
                     "not loaded; load it with `caseflow calendar check` and recompute")
    if explain:
        lines.append(format_steps(steps))
    return payload, "\n".join(lines)


@cli.command()
@click.argument("start")
@click.argument("limit")
@click.option("--exclude", "excludes", multiple=True, metavar="[REASON=]FROM..TO",
              help="A period that does not count (dates for day limits, instants for hour limits).")
@click.option("--no-roll", is_flag=True, help="No roll-forward past holidays (in custody, 信访).")
@click.option("--last-to-last", is_flag=True, help="Month limits: 刑诉解释 第二百零二条 month-end rule.")
@click.option("--deemed-next-workday", is_flag=True,
              help="Alternative reading: acceptance on a rest day is deemed on the next working day.")
@click.option("--next-hour", is_flag=True, help="Alternative reading for hours: count from the next full hour (次时).")
@click.option("--explain", is_flag=True, help="Show each counted and skipped day with its reason.")
@json_option
@handle_errors
def deadline(  # noqa: PLR0917 - click passes options positionally
    start: str, limit: str, excludes: tuple[str, ...], no_roll: bool, last_to_last: bool,
             deemed_next_workday: bool, next_hour: bool, explain: bool, as_json: bool) -> None:
    """Compute when LIMIT, started at START, runs out.

    START is an instant (Beijing time unless an offset is given); LIMIT is like "20 working_days",
    "3 days", "24 hours", "1 month" or "5个工作日".

    \b
    Example:
        caseflow deadline 2026-10-03T14:00 "20 working_days" --explain
        caseflow deadline 2025-06-09T10:00 "20 working_days" --exclude 鉴定=2025-06-16..2025-06-27
        caseflow deadline 2026-09-28T15:00 "7 days" --no-roll --json
    """
    rule = TimeLimit.parse(limit)
    rule = TimeLimit(
        rule.amount, rule.unit,
        roll_forward=not no_roll,
        month_end="last_to_last" if last_to_last else "corresponding",
        start_day="next_workday" if deemed_next_workday else "actual",
        hour_start="next_hour" if next_hour else "exact",
    )
    calendar = default_calendar()
    excluded = [ExcludedPeriod.parse(e, clock=rule.is_clock) for e in excludes]
    payload, text = describe_due(parse_instant(start), rule, excluded, explain, calendar)
    _emit(as_json, payload, text)


# ----------------------------------------------------------------------------------------- calendar


@cli.group("calendar")
def calendar_group() -> None:
    """The working-day calendar: show a month, check a holiday file.

    \b
    Example:
        caseflow calendar show 2026-10
    """


def _month_grid(calendar: WorkCalendar, year: int, month: int) -> str:
    days = calendar.month(year, month)
    lines = [f"{year}年{month}月", " 一    二    三    四    五    六    日"]
    row = ["     "] * days[0].day.weekday()
    legend: dict[str, str] = {}
    for info in days:
        if info.reason == "调休上班":
            mark = "班"
        elif not info.workday and info.reason == "周末":
            mark = "."
        elif not info.workday:
            mark = "休"
            legend[info.reason] = info.reason
        else:
            mark = " "
        row.append(f"{info.day.day:>2}{mark}  ")
        if len(row) == 7:
            lines.append("".join(row).rstrip())
            row = []
    if row:
        lines.append("".join(row).rstrip())
    lines.append("休 = 放假 (rest day of the notice), 班 = 调休上班 (make-up working day), . = 周末")
    if legend:
        lines.append("假日: " + "、".join(sorted(legend)))
    if not days[-1].official:
        lines.append(f"推算 (provisional): no official notice loaded after {calendar.official_until}")
    return "\n".join(lines)


@calendar_group.command("show")
@click.argument("month", metavar="YYYY-MM")
@json_option
@handle_errors
def calendar_show(month: str, as_json: bool) -> None:
    """Print a month as a grid, rest days and make-up working days marked.

    \b
    Example:
        caseflow calendar show 2026-10
    """
    try:
        year, mon = (int(p) for p in month.split("-"))
        date(year, mon, 1)
    except ValueError:
        raise TimeLimitError(f"expected a month like 2026-10, got {month!r}") from None
    calendar = default_calendar()
    days = calendar.month(year, mon)
    payload = [{"day": d.day.isoformat(), "workday": d.workday, "reason": d.reason, "official": d.official}
               for d in days]
    _emit(as_json, payload, _month_grid(calendar, year, mon))


@calendar_group.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@handle_errors
def calendar_check(path: Path, as_json: bool) -> None:
    """Validate a holiday file and show which days it changes against the current calendar.

    \b
    Example:
        caseflow calendar check holidays/2026.yaml
    """
    arrangement = load_holiday_file(path)
    current = default_calendar()
    candidate = WorkCalendar([*current.years.values(), arrangement])
    changes = current.diff(candidate, year=arrangement.year)
    payload = {
        "file": str(path), "year": arrangement.year, "source": arrangement.source, "valid": True,
        "rest_days": len(arrangement.rest_days), "workdays": len(arrangement.workdays),
        "changes": [{"day": d.isoformat(), "was": "work" if a.workday else f"rest ({a.reason})",
                     "becomes": "work" if b.workday else f"rest ({b.reason})"} for d, a, b in changes],
    }
    lines = [f"{path}: valid — {arrangement.year}, source {arrangement.source}",
             f"  {len(arrangement.rest_days)} rest days listed, {len(arrangement.workdays)} make-up working days"]
    if changes:
        lines.append(f"  changes {len(changes)} day(s) against the calendar in use:")
        for d, a, b in changes:
            was = "工作日" if a.workday else f"休 {a.reason}"
            becomes = "工作日" + (" (调休上班)" if b.reason == "调休上班" else "") if b.workday else f"休 {b.reason}"
            lines.append(f"    {d} {_weekday(d)}: {was} → {becomes}")
    else:
        lines.append("  no working day changes against the calendar in use")
    _emit(as_json, payload, "\n".join(lines))


# ------------------------------------------------------------------------------------ engine commands

db_option = click.option("--db", "db", envvar="CASEFLOW_DB", default=None, metavar="URL",
                         help="Database URL or SQLite file (default: $CASEFLOW_DB or ./caseflow.db).")
at_option = click.option("--at", "at", default=None, metavar="INSTANT",
                         help="When it happened (Beijing time unless an offset is given; default now).")


def _clock() -> Any:
    """The real clock, or the one fixed by ``CASEFLOW_NOW`` (simulations, tests)."""
    import os

    from caseflow.clock import FixedClock, SystemClock

    fixed = os.environ.get("CASEFLOW_NOW")
    return FixedClock(parse_instant(fixed)) if fixed else SystemClock()


def _engine(db: str | None) -> Any:
    from caseflow.engine import Engine
    from caseflow.store import Store

    return Engine(Store(db), clock=_clock())


def _at(value: str | None) -> datetime | None:
    return parse_instant(value) if value else None


def _data(pairs: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise TimeLimitError(f"--data takes NAME=VALUE, got {pair!r}")
        result[name.strip()] = value
    return result


def _case_text(case: Any) -> str:
    lines = [f"案件 case {case.id}  {case.workflow}  状态 {case.state} ({case.state_label})  v{case.version}",
             f"  责任人 responsible {case.responsible} ({case.unit})"]
    if case.closed_at:
        lines.append(f"  办结 closed {case.closed_at:%Y-%m-%d %H:%M}")
    for t in case.timers:
        due = f"{t.due_at:%Y-%m-%d %H:%M}" if t.due_at else "—"
        prov = " 推算" if t.provisional else ""
        lines.append(f"  ⏱ {t.name} ({t.label}) {t.status:<8} {t.limit:<18} due {due}{prov}")
    return "\n".join(lines)


def _print_case(case: Any, as_json: bool) -> None:
    _emit(as_json, case.to_dict(), _case_text(case))


@cli.group("db")
def db_group() -> None:
    """The database schema.

    \b
    Example:
        caseflow db upgrade --db caseflow.db
    """


@db_group.command("upgrade")
@db_option
@json_option
@handle_errors
def db_upgrade(db: str | None, as_json: bool) -> None:
    """Bring the database schema to this caseflow's revision (Alembic).

    \b
    Example:
        caseflow db upgrade --db postgresql://postgres@127.0.0.1/caseflow
    """
    from caseflow.store import Store

    store = Store(db, upgrade=True)
    revision = store.current_revision()
    _emit(as_json, {"db": store._safe_url(), "revision": revision}, f"{store._safe_url()}: at revision {revision}")


@cli.group("workflows")
def workflows_group() -> None:
    """Procedure definitions (workflows/*.yaml).

    \b
    Example:
        caseflow workflows validate workflows/
    """


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
    from caseflow.workflow import load_workflows

    found = load_workflows(directory)
    payload = [{"key": d.key, "title": d.title, "version": d.version, "states": len(d.states),
                "timers": len(d.timers), "source": d.source} for d in found.values()]
    text = "\n".join(f"ok  {d.key:<22} {d.title}  ({len(d.states)} states, {len(d.timers)} timers) {d.version[:12]}"
                     for d in found.values())
    _emit(as_json, payload, text)


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
    from caseflow.workflow import WorkflowRegistry, mermaid

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
    _emit(as_json, payload, "\n".join(lines))


@cli.group("people")
def people_group() -> None:
    """People: units, roles, leaders and substitutes (AB岗).

    \b
    Example:
        caseflow people add p1 --name 张警官 --unit 城关派出所 --role household_police
    """


@people_group.command("add")
@click.argument("person_id", metavar="ID")
@click.option("--name", required=True)
@click.option("--unit", required=True)
@click.option("--role", "roles", multiple=True, help="A role (repeat for several).")
@click.option("--substitute", default=None, metavar="ID", help="AB岗: who acts while this person is absent.")
@click.option("--leader", default=None, metavar="ID", help="Who receives this person's escalations.")
@click.option("--admin", is_flag=True, help="May manage people, workflows and holiday files.")
@click.option("--channel", default=None, help="Notification address (mailto:…, a webhook URL, …).")
@click.option("--replace", is_flag=True, help="Update the person if they exist.")
@db_option
@json_option
@handle_errors
def people_add(person_id: str, name: str, unit: str, roles: tuple[str, ...], substitute: str | None,  # noqa: PLR0917
               leader: str | None, admin: bool, channel: str | None, replace: bool, db: str | None,
               as_json: bool) -> None:
    """Add a person.

    \b
    Example:
        caseflow people add p1 --name 张警官 --unit 城关派出所 --role household_police --substitute p2 --leader l1
    """
    person = _engine(db).add_person(person_id, name=name, unit=unit, roles=roles, leader=leader,
                                    substitute=substitute, admin=admin, channel=channel, replace=replace)
    payload = {"id": person.id, "name": person.name, "unit": person.unit, "roles": sorted(person.role_set),
               "leader": person.leader_id, "substitute": person.substitute_id, "admin": person.admin}
    roles_text = " ".join(sorted(person.role_set))
    _emit(as_json, payload, f"added {person.id} {person.name} ({person.unit}) roles: {roles_text}")


@people_group.command("absent")
@click.argument("person_id", metavar="ID")
@click.option("--from", "start", required=True, metavar="DATE")
@click.option("--to", "end", required=True, metavar="DATE")
@db_option
@json_option
@handle_errors
def people_absent(person_id: str, start: str, end: str, db: str | None, as_json: bool) -> None:
    """Mark a person absent (dates inclusive): their queue and alerts go to their substitute.

    \b
    Example:
        caseflow people absent p1 --from 2026-10-12 --to 2026-10-16
    """
    _engine(db).mark_absent(person_id, start=parse_date(start), end=parse_date(end))
    _emit(as_json, {"id": person_id, "from": start, "to": end}, f"{person_id} absent {start} .. {end}")


@cli.group("case")
def case_group() -> None:
    """Open, advance and inspect cases.

    \b
    Example:
        caseflow case open hukou_transfer --actor p1 --data applicant=李四
    """


@case_group.command("open")
@click.argument("workflow")
@click.option("--actor", required=True, metavar="ID")
@click.option("--responsible", default=None, metavar="ID", help="首问负责人, if not the actor.")
@click.option("--data", "data", multiple=True, metavar="NAME=VALUE")
@click.option("--key", default=None, help="Idempotency key: a retry with it returns the first result.")
@at_option
@db_option
@json_option
@handle_errors
def case_open(workflow: str, actor: str, responsible: str | None, data: tuple[str, ...], key: str | None,  # noqa: PLR0917
              at: str | None, db: str | None, as_json: bool) -> None:
    """Open a case of WORKFLOW.

    \b
    Example:
        caseflow case open hukou_transfer --actor p1 --data applicant=李四 --key intake-0001
    """
    case = _engine(db).open(workflow, actor=actor, at=_at(at), data=_data(data), responsible=responsible, key=key)
    _print_case(case, as_json)


@case_group.command("fire")
@click.argument("case_id", type=int, metavar="CASE")
@click.argument("trigger")
@click.option("--actor", required=True, metavar="ID")
@click.option("--data", "data", multiple=True, metavar="NAME=VALUE")
@click.option("--expect-version", type=int, default=None, help="Refuse if the case is not at this version.")
@click.option("--key", default=None, help="Idempotency key.")
@at_option
@db_option
@json_option
@handle_errors
def case_fire(case_id: int, trigger: str, actor: str, data: tuple[str, ...], expect_version: int | None,  # noqa: PLR0917
              key: str | None, at: str | None, db: str | None, as_json: bool) -> None:
    """Fire TRIGGER on CASE.

    \b
    Example:
        caseflow case fire 1 hand_over_verification --actor p1 --data slip_no=JB-2026-0001
    """
    case = _engine(db).fire(case_id, trigger, actor=actor, at=_at(at), data=_data(data),
                            expected_version=expect_version, key=key)
    _print_case(case, as_json)


@case_group.command("pause")
@click.argument("case_id", type=int, metavar="CASE")
@click.option("--timer", required=True)
@click.option("--reason", required=True)
@click.option("--actor", required=True, metavar="ID")
@click.option("--data", "data", multiple=True, metavar="NAME=VALUE",
              help="Fields the pause records (e.g. the written notice: notice_no=…).")
@click.option("--key", default=None)
@at_option
@db_option
@json_option
@handle_errors
def case_pause(case_id: int, timer: str, reason: str, actor: str, data: tuple[str, ...],  # noqa: PLR0917
               key: str | None, at: str | None, db: str | None, as_json: bool) -> None:
    """Pause a timer for a reason it admits (函调, 鉴定, 补正 …).

    \b
    Example:
        caseflow case pause 1 --timer verification --reason 函调 --actor p2
    """
    _print_case(_engine(db).pause(case_id, timer, reason=reason, actor=actor, at=_at(at), data=_data(data),
                                  key=key), as_json)


@case_group.command("resume")
@click.argument("case_id", type=int, metavar="CASE")
@click.option("--timer", required=True)
@click.option("--actor", required=True, metavar="ID")
@click.option("--key", default=None)
@at_option
@db_option
@json_option
@handle_errors
def case_resume(case_id: int, timer: str, actor: str, key: str | None, at: str | None, db: str | None,  # noqa: PLR0917
                as_json: bool) -> None:
    """Resume a paused timer.

    \b
    Example:
        caseflow case resume 1 --timer verification --actor p2
    """
    _print_case(_engine(db).resume(case_id, timer, actor=actor, at=_at(at), key=key), as_json)


@case_group.command("extend")
@click.argument("case_id", type=int, metavar="CASE")
@click.option("--timer", required=True)
@click.option("--by", "by", required=True, metavar="LIMIT", help='e.g. "10 working_days", "4 days".')
@click.option("--grounds", required=True, help="延期理由 (told to the applicant).")
@click.option("--actor", required=True, metavar="ID", help="The approver.")
@click.option("--data", "data", multiple=True, metavar="NAME=VALUE",
              help="Fields the extension records (e.g. applicant_told_on=2026-10-09).")
@click.option("--key", default=None)
@at_option
@db_option
@json_option
@handle_errors
def case_extend(case_id: int, timer: str, by: str, grounds: str, actor: str,  # noqa: PLR0917
                data: tuple[str, ...], key: str | None, at: str | None, db: str | None, as_json: bool) -> None:
    """Extend a timer within its policy, approved by ACTOR.

    \b
    Example:
        caseflow case extend 3 --timer arrest_request --by "4 days" --grounds 特殊情况 --actor l1
    """
    _print_case(_engine(db).extend(case_id, timer, by=by, grounds=grounds, actor=actor, at=_at(at),
                                   data=_data(data), key=key), as_json)


@case_group.command("hand-over")
@click.argument("case_id", type=int, metavar="CASE")
@click.option("--to", "to", required=True, metavar="ID")
@click.option("--actor", required=True, metavar="ID")
@click.option("--slip", default=None, help="交办单 number.")
@click.option("--key", default=None)
@at_option
@db_option
@json_option
@handle_errors
def case_hand_over(case_id: int, to: str, actor: str, slip: str | None, key: str | None, at: str | None,  # noqa: PLR0917
                   db: str | None, as_json: bool) -> None:
    """Hand CASE over to another person, who becomes responsible.

    \b
    Example:
        caseflow case hand-over 1 --to p2 --actor p1 --slip JB-2026-0001
    """
    _print_case(_engine(db).hand_over(case_id, to=to, actor=actor, slip=slip, at=_at(at), key=key), as_json)


@case_group.command("reassign")
@click.argument("case_id", type=int, metavar="CASE")
@click.option("--to", "to", required=True, metavar="ID")
@click.option("--actor", required=True, metavar="ID")
@click.option("--reason", default="")
@at_option
@db_option
@json_option
@handle_errors
def case_reassign(case_id: int, to: str, actor: str, reason: str, at: str | None, db: str | None,  # noqa: PLR0917
                  as_json: bool) -> None:
    """A leader gives CASE to someone else.

    \b
    Example:
        caseflow case reassign 1 --to p3 --actor l1 --reason 休假
    """
    _print_case(_engine(db).reassign(case_id, to=to, actor=actor, reason=reason, at=_at(at)), as_json)


@case_group.command("close")
@click.argument("case_id", type=int, metavar="CASE")
@click.option("--actor", required=True, metavar="ID")
@click.option("--reason", required=True)
@at_option
@db_option
@json_option
@handle_errors
def case_close(case_id: int, actor: str, reason: str, at: str | None, db: str | None,  # noqa: PLR0917
               as_json: bool) -> None:
    """Close CASE outside its workflow (withdrawn, merged …); every timer stops.

    \b
    Example:
        caseflow case close 1 --actor p1 --reason 申请人撤回
    """
    _print_case(_engine(db).close(case_id, actor=actor, reason=reason, at=_at(at)), as_json)


@case_group.command("show")
@click.argument("case_id", type=int, metavar="CASE")
@db_option
@json_option
@handle_errors
def case_show(case_id: int, db: str | None, as_json: bool) -> None:
    """Show CASE: state, responsible person, timers.

    \b
    Example:
        caseflow case show 1 --json
    """
    _print_case(_engine(db).get(case_id), as_json)


@case_group.command("history")
@click.argument("case_id", type=int, metavar="CASE")
@db_option
@json_option
@handle_errors
def case_history(case_id: int, db: str | None, as_json: bool) -> None:
    """Show CASE's events, oldest first.

    \b
    Example:
        caseflow case history 1
    """
    events = _engine(db).history(case_id)
    text = "\n".join(
        f"#{e.seq:<3} {e.at:%Y-%m-%d %H:%M} {e.kind:<9} {e.actor:<10} "
        + (f"{e.trigger} " if e.trigger else "")
        + (f"{e.from_state}→{e.to_state} " if e.from_state != e.to_state else "")
        + _canonical_short(e.data)
        for e in events
    )
    _emit(as_json, [e.to_dict() for e in events], text)


def _canonical_short(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)[:160]


@cli.command("queue")
@click.option("--person", required=True, metavar="ID")
@at_option
@db_option
@json_option
@handle_errors
def queue(person: str, at: str | None, db: str | None, as_json: bool) -> None:
    """A person's running clocks, most urgent first (overdue, then least time left).

    \b
    Example:
        caseflow queue --person p2
    """
    items = _engine(db).queue(person, at=_at(at))
    text = "\n".join(
        f"{'逾期' if i.overdue else '    '} case {i.case_id:<5} {i.workflow:<20} {i.label:<14} {i.time_left:<14}"
        + (f" (代 {i.via_substitute_for})" if i.via_substitute_for else "")
        for i in items
    ) or "no running clocks"
    _emit(as_json, [i.to_dict() for i in items], text)


@cli.group("audit")
def audit_group() -> None:
    """The hash-chained history.

    \b
    Example:
        caseflow audit verify
    """


@audit_group.command("verify")
@db_option
@json_option
@handle_errors
def audit_verify(db: str | None, as_json: bool) -> None:
    """Check every case's event chain; name each edited, inserted or deleted event.

    \b
    Example:
        caseflow audit verify --db caseflow.db
    """
    problems = _engine(db).verify_audit()
    payload = {"ok": not problems, "problems": [{"case": p.case_id, "seq": p.seq, "event_id": p.event_id,
                                                  "problem": p.problem} for p in problems]}
    _emit(as_json, payload, "\n".join(str(p) for p in problems) or "audit ok: every event chain verifies")
    if problems:
        sys.exit(1)


@calendar_group.command("reload")
@click.option("--holidays", "dirs", multiple=True, type=click.Path(path_type=Path),
              help="Extra holiday directory (besides the shipped one and $CASEFLOW_HOLIDAYS_DIR).")
@db_option
@json_option
@handle_errors
def calendar_reload(dirs: tuple[Path, ...], db: str | None, as_json: bool) -> None:
    """Reload holiday files and move every open deadline whose answer changes (each change is an event).

    \b
    Example:
        caseflow calendar reload --holidays /etc/caseflow/holidays
    """
    import os

    from caseflow.calendar import clear_calendar_cache

    clear_calendar_cache()
    env = [p for p in os.environ.get("CASEFLOW_HOLIDAYS_DIR", "").split(os.pathsep) if p]
    calendar = WorkCalendar.load([*env, *dirs])
    sources = ", ".join(str(d) for d in [*env, *dirs]) or "holidays/"
    changes = _engine(db).reload_calendar(calendar, source=sources)
    text = "\n".join(f"case {c['case']} {c['timer']}: {c['message']}" for c in changes) or "no deadline moved"
    _emit(as_json, changes, text)


# --------------------------------------------------------------------------------------------- demo

@cli.command()
@click.option("--db", "db", default="caseflow-demo.db", show_default=True, metavar="FILE",
              help="The SQLite file to build afresh.")
@click.option("--seed", default=20261001, show_default=True, help="The random seed of the simulation.")
@json_option
@handle_errors
def demo(db: str, seed: int, as_json: bool) -> None:
    """Simulate a county bureau from September to November 2026 and print what happened.

    Builds DB afresh (people, units, leaders, substitutes; a few hundred cases over every shipped
    workflow, across the National Day holiday), runs the scheduler on a simulated clock day by day,
    and prints the alerts, escalations, a leader's digest and the on-time statistics.

    \b
    Example:
        caseflow demo
        caseflow demo --db /tmp/demo.db --seed 7
    """
    from caseflow.demo import run_demo

    report = run_demo(db, seed=seed, say=(lambda _line: None) if as_json else click.echo)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))


def _register_shells() -> None:
    # Scheduler, alerts, digests and reports live in their own module; it calls back into ours.
    from caseflow.cli_ops import register as register_ops
    from caseflow.cli_server import register as register_server

    register_ops(cli)
    register_server(cli)


_register_shells()


def main() -> None:
    """Entry point of the ``caseflow`` console script."""
    cli(prog_name="caseflow")


if __name__ == "__main__":  # pragma: no cover
    main()

