"""``caseflow stats``: on-time figures by unit, person, workflow or month."""

from __future__ import annotations

import click

from caseflow.cli.common import emit, handle_errors, json_option, open_store, store_db_option


@click.command("stats")
@click.option("--month", default=None, metavar="YYYY-MM", help="The month (Beijing time); all months if omitted.")
@click.option("--by", "by", type=click.Choice(["unit", "person", "workflow", "month"]), default="unit",
              show_default=True)
@click.option("--unit", "units", multiple=True, help="Only these units (repeatable).")
@store_db_option
@json_option
@handle_errors
def stats_cmd(month: str | None, by: str, units: tuple[str, ...], db: str | None, as_json: bool) -> None:
    """On-time rate, overdue count and working days per step, by unit, person, workflow or month.

    Time paused for the applicant or by law (charged_to applicant/law) is not charged to the unit.

    \b
    Example:
        caseflow stats --month 2026-10 --by unit
        caseflow stats --month 2026-10 --by person --json
        caseflow stats --by month --unit 城关派出所
    """
    from caseflow.stats import compute_stats

    groups = compute_stats(open_store(db), month=month, by=by, units=list(units) or None)
    payload = [g.to_dict() for g in groups]
    from caseflow.textwidth import table

    rows = []
    for g in groups:
        rate = f"{g.on_time_rate * 100:.1f}%" if g.on_time_rate is not None else "—"
        avg = f"{g.avg_working_days:.1f}" if g.avg_working_days is not None else "—"
        rows.append([g.key, g.finished, g.on_time, rate, g.overdue, avg])
    text = table([by, "finished", "on time", "rate", "overdue", "avg wd"], rows, "<>>>>>")
    emit(as_json, payload, text if groups else "no timers in that period")


