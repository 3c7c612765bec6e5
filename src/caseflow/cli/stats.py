"""``caseflow stats``: on-time figures by unit, person, workflow or month."""

from __future__ import annotations

import click

from caseflow.calendar import ZONE
from caseflow.cli.common import emit, handle_errors, json_option, open_store, parse_at, store_db_option


@click.command("stats")
@click.option("--month", default=None, metavar="YYYY-MM", help="The month (Beijing time); all months if omitted.")
@click.option("--by", "by", type=click.Choice(["unit", "person", "workflow", "month"]), default="unit",
              show_default=True)
@click.option("--unit", "units", multiple=True, help="Only these units (repeatable).")
@click.option("--at", "at", default=None, metavar="INSTANT",
              help="Answer as things stood at this instant (e.g. 2026-11-04T08:30), rebuilt from the record.")
@store_db_option
@json_option
@handle_errors
def stats_cmd(month: str | None, by: str, units: tuple[str, ...], at: str | None, db: str | None,  # noqa: PLR0917
              as_json: bool) -> None:
    """Cases and steps, statutory and promised limits apart, by unit, person, workflow or month.

    Every table is followed by the definitions of its figures (口径). --json gives the steps' figures.
    Time paused for the applicant or by law (charged_to applicant/law) is not charged to the unit.

    \b
    Example:
        caseflow stats --month 2026-10 --by unit
        caseflow stats --month 2026-10 --by person --json
        caseflow stats --by month --unit 城关派出所
    """
    from caseflow.stats import compute_stats, render_stats_text, stats_tables

    store = open_store(db)
    when = parse_at(at)
    groups = compute_stats(store, month=month, by=by, units=list(units) or None, until=when, now=when)
    payload = [g.to_dict() for g in groups]
    if as_json:
        emit(as_json, payload, "")
        return
    tables = stats_tables(store, month=month, by=by, units=list(units) or None, now=when)
    scope = f"{month} " if month else ""
    moment = f"截至 {when.astimezone(ZONE):%Y-%m-%d %H:%M}" if when else "截至目前"
    emit(as_json, payload, render_stats_text(tables, heading=f"办理时限统计 {scope}{moment}（北京时间）"))
