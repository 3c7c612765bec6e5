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
    from caseflow.textwidth import table

    items = open_engine(db).queue(person, at=parse_at(at))
    rows = [["逾期" if i.overdue else "", i.case_id, i.workflow, i.label, i.time_left,
             f"代 {i.via_substitute_for}" if i.via_substitute_for else ""] for i in items]
    text = (table(["", "案件", "程序", "时限", "剩余", "代办"], rows, "<>") + "\n" + QUEUE_NOTE) if items \
        else "no running clocks"
    emit(as_json, [i.to_dict() for i in items], text)


#: What the 剩余 column counts, printed under the queue.
QUEUE_NOTE = ("剩余: 「还剩 N 个工作日」数从今天(是工作日才算)到期满日(含)的工作日, 期满日 24:00 起逾期;\n"
              "      按日计的时限数日历日; 不足一天或按小时计的写小时、分;\n"
              "      「逾期 N」数期满日之后已开始的工作日(或日)。")


