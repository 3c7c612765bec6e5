"""``caseflow calendar``: show a month, check a holiday file, reload the calendar."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from caseflow.cli.common import (
    db_option,
    emit,
    handle_errors,
    json_option,
    notices_db_option,
    open_engine,
    prompt_calendar,
    weekday_zh,
)
from caseflow.errors import OutputFileError, TimeLimitError

if TYPE_CHECKING:
    from caseflow.calendar import WorkCalendar, YearArrangement

# caseflow.calendar's FIRST_YEAR and LAST_YEAR (a test holds them equal): the calendar and the notices
# are imported inside the commands, so that `caseflow --help` does not load them (YAML, chinese-calendar).
_FIRST_YEAR, _LAST_YEAR = 2004, 2099


@click.group("calendar")
def calendar_group() -> None:
    """The working-day calendar: show a month; check, import and export holiday notices.

    \b
    Example:
        caseflow calendar show 2026-10
    """


def _month_grid(calendar: WorkCalendar, year: int, month: int) -> str:
    from caseflow.textwidth import pad

    # Cells of six columns by display width: the day (2), its mark (2: 休 and 班 are wide), two spaces;
    # each weekday name sits over the day's digits.
    days = calendar.month(year, month)
    lines = [f"{year}年{month}月", "".join(pad(name, 6) for name in "一二三四五六日").rstrip()]
    row = [" " * 6] * days[0].day.weekday()
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
        row.append(f"{info.day.day:>2}{pad(mark, 2)}  ")
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
@notices_db_option
@json_option
@handle_errors
def calendar_show(month: str, db: str | None, as_json: bool) -> None:
    """Print a month as a grid, rest days and make-up working days marked.

    \b
    Example:
        caseflow calendar show 2026-10
        caseflow calendar show 2027-02 --db caseflow.db   # with the notices loaded into it
    """
    try:
        year, mon = (int(p) for p in month.split("-"))
        date(year, mon, 1)
    except ValueError:
        raise TimeLimitError(f"expected a month like 2026-10, got {month!r}") from None
    calendar = prompt_calendar(db)
    days = calendar.month(year, mon)
    payload = [{"day": d.day.isoformat(), "workday": d.workday, "reason": d.reason, "official": d.official}
               for d in days]
    emit(as_json, payload, _month_grid(calendar, year, mon))


def _check(arrangement: YearArrangement, current: WorkCalendar, label: str) -> tuple[dict[str, Any], list[str]]:
    """The festival-by-festival check and the working-day changes, as JSON and as lines of text."""
    from caseflow.calendar import WorkCalendar
    from caseflow.notices import festival_check

    festivals = festival_check(arrangement)
    candidate = WorkCalendar([*current.years.values(), arrangement])
    changes = current.diff(candidate, year=arrangement.year)
    payload = {
        "file": label, "year": arrangement.year, "source": arrangement.source, "valid": True,
        "rest_days": len(arrangement.rest_days), "workdays": len(arrangement.workdays),
        "statutory_only": list(arrangement.statutory_only),
        "festivals": [f.to_dict() for f in festivals],
        "changes": [{"day": d.isoformat(), "was": "work" if a.workday else f"rest ({a.reason})",
                     "becomes": "work" if b.workday else f"rest ({b.reason})"} for d, a, b in changes],
    }
    lines = [f"{label}: valid — {arrangement.year}, source {arrangement.source}",
             f"  {len(arrangement.rest_days)} rest days listed, {len(arrangement.workdays)} make-up working days",
             "  festival by festival (全国年节及纪念日放假办法 第二条) against the statute's projection:"]
    for f in festivals:
        parts = [f"{f.festival:<6}", {"as projected": "同推算", "differs": "不同于推算",
                                      "statutory only": "按法定 (statutory_only)"}[f.status]]
        if f.rest_days:
            parts.append(f"休 {_span(f.rest_days)}")
        if f.added:
            parts.append("多休 " + ", ".join(d.strftime("%m-%d") for d in f.added))
        if f.dropped:
            parts.append("少休 " + ", ".join(d.strftime("%m-%d") for d in f.dropped))
        if f.workdays:
            parts.append("调休上班 " + ", ".join(d.strftime("%m-%d") for d in f.workdays))
        lines.append("    " + "  ".join(parts))
    if changes:
        lines.append(f"  changes {len(changes)} day(s) against the calendar in use:")
        for d, a, b in changes:
            was = "工作日" if a.workday else f"休 {a.reason}"
            becomes = "工作日" + (" (调休上班)" if b.reason == "调休上班" else "") if b.workday else f"休 {b.reason}"
            lines.append(f"    {d} {weekday_zh(d)}: {was} → {becomes}")
    else:
        lines.append("  no working day changes against the calendar in use")
    return payload, lines


def _span(days: tuple[date, ...]) -> str:
    first, last = days[0], days[-1]
    return first.strftime("%m-%d") if first == last else f"{first:%m-%d}..{last:%m-%d}"


@calendar_group.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@handle_errors
def calendar_check(path: Path, as_json: bool) -> None:
    """Validate a holiday notice (our YAML or holiday-cn JSON): festival by festival against the statute's
    projection, and the days it changes against the current calendar.

    \b
    Example:
        caseflow calendar check holidays/2026.yaml
    """
    from caseflow.calendar import default_calendar
    from caseflow.notices import read_notice

    current = default_calendar()
    arrangement = read_notice(path, working=current.is_workday)
    payload, lines = _check(arrangement, current, str(path))
    emit(as_json, payload, "\n".join(lines))


@calendar_group.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@db_option
@json_option
@handle_errors
def calendar_import(path: Path, db: str | None, as_json: bool) -> None:
    """Load a year's notice (our YAML or holiday-cn JSON) into the database for every process.

    Shows the same check as `calendar check`, then stores the notice and moves every open deadline it
    changes (each move is an event on its case). API workers and schedulers use it from their next command.

    \b
    Example:
        caseflow calendar import holidays/2026.yaml
    """
    engine = open_engine(db)
    engine.refresh()
    from caseflow.notices import notice_format, read_notice

    arrangement = read_notice(path, working=engine.calendar.is_workday)
    payload, lines = _check(arrangement, engine.calendar, str(path))
    text = path.read_text(encoding="utf-8-sig")
    changes = engine.load_notice(arrangement, text, fmt=notice_format(path, text), actor="system")
    payload["loaded"], payload["moved"] = True, changes
    lines.append(f"  loaded into the database; {len(changes)} open deadline(s) moved")
    lines += [f"    case {c['case']} {c['timer']}: {c['message']}" for c in changes]
    emit(as_json, payload, "\n".join(lines))


@calendar_group.command("export")
@click.argument("year", type=click.IntRange(_FIRST_YEAR, _LAST_YEAR))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Write to FILE (default: print).")
@db_option
@json_option
@handle_errors
def calendar_export(year: int, output: Path | None, db: str | None, as_json: bool) -> None:
    """Write a year's arrangement as our YAML holiday file (the loaded notice, else the files').

    With --json the YAML comes inside {"year", "official", "yaml"} (and "file" when written).

    \b
    Example:
        caseflow calendar export 2026
    """
    engine = open_engine(db)
    engine.refresh()
    from caseflow.notices import arrangement_yaml

    arrangement = engine.calendar.years.get(year)
    if arrangement is None:
        raise TimeLimitError(f"no arrangement for {year} is loaded; years loaded: "
                             f"{min(engine.calendar.years)}–{max(engine.calendar.years)}")
    text = arrangement_yaml(arrangement)
    payload: dict[str, Any] = {"year": year, "official": year <= engine.calendar.official_until.year, "yaml": text}
    if output is None:
        emit(as_json, payload, text.rstrip("\n"))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputFileError(f"cannot write {output}: {exc.strerror or exc}; choose a writable path") from None
    payload["file"] = str(output)
    emit(as_json, payload, f"wrote {output}")


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

    from caseflow.calendar import WorkCalendar, clear_calendar_cache

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

