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


def _parse_excluded(values: tuple[str, ...], clock: bool) -> list[ExcludedPeriod]:
    periods = []
    for value in values:
        reason, _, span = value.rpartition("=")
        if ".." not in span:
            raise TimeLimitError(f"--exclude takes FROM..TO (optionally REASON=FROM..TO), got {value!r}")
        a, b = span.split("..", 1)
        if clock:
            periods.append(ExcludedPeriod(parse_instant(a), parse_instant(b), reason=reason or "暂停"))
        else:
            periods.append(ExcludedPeriod(parse_date(a), parse_date(b), reason=reason or "excluded"))
    return periods


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
    payload, text = describe_due(parse_instant(start), rule, _parse_excluded(excludes, rule.is_clock),
                                 explain, calendar)
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


# --------------------------------------------------------------------------------------------- demo

DEMO_PROCEDURES: tuple[tuple[str, TimeLimit, str], ...] = (
    ("户口迁移 社区民警核查", TimeLimit(3, "working_days"), "派出所户籍窗口办理时限 (社区民警3个工作日内核查)"),
    ("户口迁移 所领导审批", TimeLimit(2, "working_days"), "派出所户籍窗口办理时限 (所领导2个工作日内审批)"),
    ("刑事拘留 送看守所羁押", TimeLimit(24, "hours"), "刑事诉讼法 第八十五条"),
    # 在押: 不得因节假日而延长 (刑事诉讼法 第一百零五条第四款)
    ("刑事拘留 提请批准逮捕 (在押)", TimeLimit(3, "days", roll_forward=False), "刑事诉讼法 第九十一条"),
    # 信访工作条例 has no roll-forward clause: the strict date (RULES.md (c))
    ("信访事项 办结", TimeLimit(60, "days", roll_forward=False), "信访工作条例 第三十四条"),
    ("行政许可 决定", TimeLimit(20, "working_days"), "行政许可法 第四十二条、第八十二条"),
)


@cli.command()
@click.option("--at", "at", default="2026-09-30T16:00", show_default=True,
              help="The acceptance instant (Beijing time).")
@click.option("--explain", is_flag=True, help="Show the counted and skipped days of each deadline.")
@json_option
@handle_errors
def demo(at: str, explain: bool, as_json: bool) -> None:
    """Show the deadlines of real procedures accepted at one instant (across National Day 2026).

    \b
    Example:
        caseflow demo
        caseflow demo --at 2026-02-13T17:00 --explain
    """
    start = parse_instant(at)
    calendar = default_calendar()
    results = []
    blocks = [f"受理时间 accepted at {start:%Y-%m-%d %H:%M} {_weekday(start.date())} (Asia/Shanghai)", ""]
    for title, limit, basis in DEMO_PROCEDURES:
        payload, body = describe_due(start, limit, [], explain, calendar)
        payload.update(procedure=title, basis=basis)
        results.append(payload)
        blocks.append(f"■ {title} — {basis}")
        blocks.extend("  " + line for line in body.splitlines()[1:])
        blocks.append("")
    _emit(as_json, results, "\n".join(blocks).rstrip())


def main() -> None:
    """Entry point of the ``caseflow`` console script."""
    cli(prog_name="caseflow")


if __name__ == "__main__":  # pragma: no cover
    main()

