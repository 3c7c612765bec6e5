"""``caseflow deadline``: the deadline calculator (no database)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from caseflow.cli.common import emit, handle_errors, json_option, notices_db_option, prompt_calendar, weekday_zh

if TYPE_CHECKING:
    from caseflow.calendar import WorkCalendar
    from caseflow.timelimits import ExcludedPeriod, Step, TimeLimit


def format_steps(steps: list[Step]) -> str:
    """An explanation, one line a day."""
    lines = []
    for step in steps:
        mark = {"counted": "计", "skipped": "跳", "excluded": "除", "rolled": "顺", "start": "起",
                "clock": "时"}[step.kind]
        count = f"{step.count:>3}" if step.count is not None else "   "
        note = step.reason + (" (推算)" if step.provisional else "")
        lines.append(f"  {mark} {step.day} {weekday_zh(step.day)} {count}  {note}".rstrip())
    return "\n".join(lines)


def _step_dict(step: Step) -> dict[str, Any]:
    return {"day": step.day.isoformat(), "kind": step.kind, "count": step.count, "reason": step.reason,
            "provisional": step.provisional}


def describe_due(start: datetime, limit: TimeLimit, excluded: list[ExcludedPeriod], explain: bool,  # noqa: PLR0917
                 calendar: WorkCalendar, basis: str = "") -> tuple[dict[str, Any], str]:
    """A deadline as JSON and as text for a clerk; ``basis`` is the rule behind the limit (a timer's own)."""
    from caseflow.timelimits import explain_due

    due, steps = explain_due(start, limit, excluded=excluded, calendar=calendar)
    payload: dict[str, Any] = due.to_dict()
    if basis:
        payload["basis"] = basis
    if explain:
        payload["steps"] = [_step_dict(s) for s in steps]
    lines = [
        f"起算 start     {due.start:%Y-%m-%d %H:%M} {weekday_zh(due.start.date())}",
        f"时限 limit     {limit.chinese()} ({limit})",
    ]
    if basis:
        lines.append(f"依据 basis     {basis}")
    if limit.is_clock:
        lines.append(f"期满 due       {due.due_at:%Y-%m-%d %H:%M} {weekday_zh(due.due_at.date())}")
    else:
        lines.append(f"期满 last day  {due.last_day} {weekday_zh(due.last_day)} 24:00")
        lines.append(f"逾期 overdue   from {due.due_at.isoformat()}")
    if due.provisional:
        lines.append(f"注意 provisional: uses days after {calendar.official_until}, whose holiday notice is "
                     "not loaded: the statute's projection stands in for it (notices loaded into a database "
                     "count with --db; load one with `caseflow calendar import FILE`)")
    if explain:
        lines.append(format_steps(steps))
    return payload, "\n".join(lines)


@click.command()
@click.argument("start")
@click.argument("limit", required=False)
@click.option("--timer", "timer_ref", metavar="WORKFLOW.TIMER",
              help="Take the limit, its counting options and its basis from a workflow's timer "
                   "(e.g. admin_license.decision); then give no LIMIT.")
@click.option("--exclude", "excludes", multiple=True, metavar="[REASON=]FROM..TO",
              help="A period that does not count (dates for day limits, instants for hour limits).")
@click.option("--no-roll", is_flag=True, help="No roll-forward past holidays (in custody, 信访).")
@click.option("--last-to-last", is_flag=True, help="Month limits: 刑诉解释 第二百零二条 month-end rule.")
@click.option("--deemed-next-workday", is_flag=True,
              help="Alternative reading: acceptance on a rest day is deemed on the next working day.")
@click.option("--next-hour", is_flag=True, help="Alternative reading for hours: count from the next full hour (次时).")
@click.option("--explain", is_flag=True, help="Show each counted and skipped day with its reason.")
@notices_db_option
@json_option
@handle_errors
def deadline(  # noqa: PLR0917 - click passes options positionally
    start: str, limit: str | None, timer_ref: str | None, excludes: tuple[str, ...], no_roll: bool,
             last_to_last: bool, deemed_next_workday: bool, next_hour: bool, explain: bool, db: str | None,
             as_json: bool) -> None:
    """Compute when LIMIT, started at START, runs out.

    START is an instant (Beijing time unless an offset is given); LIMIT is like "20 working_days",
    "3 days", "24 hours", "1 month" or "5个工作日".

    \b
    Example:
        caseflow deadline 2026-10-03T14:00 "20 working_days" --explain
        caseflow deadline 2025-06-09T10:00 "20 working_days" --exclude 鉴定=2025-06-16..2025-06-27
        caseflow deadline 2026-09-28T15:00 "7 days" --no-roll --json
        caseflow deadline 2026-09-29T10:00 --timer admin_license.decision --explain
        caseflow deadline 2026-12-20T10:00 "20 working_days" --db caseflow.db   # with its loaded notices
    """
    # Imported here: `caseflow --help` and the other commands need none of it.
    from caseflow.clock import parse_instant
    from caseflow.timelimits import ExcludedPeriod, TimeLimit

    basis = ""
    if timer_ref is not None:
        if limit is not None:
            raise click.UsageError("give LIMIT or --timer, not both: --timer brings the timer's own limit")
        rule, basis = _timer_rule(timer_ref)
    elif limit is None:
        raise click.UsageError('give a LIMIT (e.g. "20 working_days") or --timer WORKFLOW.TIMER')
    else:
        parsed = TimeLimit.parse(limit)
        rule = TimeLimit(
            parsed.amount, parsed.unit,
            roll_forward=not no_roll,
            month_end="last_to_last" if last_to_last else "corresponding",
            start_day="next_workday" if deemed_next_workday else "actual",
            hour_start="next_hour" if next_hour else "exact",
        )
    calendar = prompt_calendar(db)
    excluded = [ExcludedPeriod.parse(e, clock=rule.is_clock) for e in excludes]
    payload, text = describe_due(parse_instant(start), rule, excluded, explain, calendar, basis)
    emit(as_json, payload, text)


def _timer_rule(ref: str) -> tuple[TimeLimit, str]:
    """The limit (with its counting options) and the basis of timer ``WORKFLOW.TIMER``."""
    key, sep, name = ref.partition(".")
    if not sep or not key or not name:
        raise click.UsageError(f"--timer takes WORKFLOW.TIMER, e.g. admin_license.decision; got {ref!r}")
    from caseflow.registry import WorkflowRegistry

    tdef = WorkflowRegistry.load().latest(key).timer(name)
    return tdef.limit, tdef.basis
