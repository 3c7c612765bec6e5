"""``caseflow calendar``: show a month, check a holiday file, reload the calendar."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from caseflow.calendar import WorkCalendar, default_calendar, load_holiday_file
from caseflow.cli.common import db_option, emit, handle_errors, json_option, open_engine, weekday_zh
from caseflow.errors import TimeLimitError


@click.group("calendar")
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
    emit(as_json, payload, _month_grid(calendar, year, mon))


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
            lines.append(f"    {d} {weekday_zh(d)}: {was} → {becomes}")
    else:
        lines.append("  no working day changes against the calendar in use")
    emit(as_json, payload, "\n".join(lines))




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
    engine = open_engine(db)
    if as_json:
        emit(True, engine.reload_calendar(calendar, source=sources), "")
        return
    # Streamed: a notice can move a million deadlines; each line is printed once its chunk committed.
    moved = 0

    def show(change: dict[str, Any]) -> None:
        nonlocal moved
        moved += 1
        click.echo(f"case {change['case']} {change['timer']}: {change['message']}")

    engine.reload_calendar(calendar, source=sources, on_move=show)
    if not moved:
        click.echo("no deadline moved")


# --------------------------------------------------------------------------------------------- demo

