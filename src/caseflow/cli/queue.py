"""``caseflow queue``: a person's running clocks, most urgent first."""

from __future__ import annotations

import click

from caseflow.cli.common import at_option, db_option, emit, handle_errors, json_option, open_engine, parse_at


@click.command("queue")
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
    items = open_engine(db).queue(person, at=parse_at(at))
    text = "\n".join(
        f"{'逾期' if i.overdue else '    '} case {i.case_id:<5} {i.workflow:<20} {i.label:<14} {i.time_left:<14}"
        + (f" (代 {i.via_substitute_for})" if i.via_substitute_for else "")
        for i in items
    ) or "no running clocks"
    emit(as_json, [i.to_dict() for i in items], text)


