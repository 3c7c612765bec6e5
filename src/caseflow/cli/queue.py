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
    engine = open_engine(db)
    items = engine.queue(person, at=parse_at(at))
    if as_json or not items:
        emit(as_json, [i.to_dict() for i in items], "没有计时中的环节")
        return
    from caseflow.narrate import Labels, due_text, text_table

    labels = Labels.from_store(engine.store)
    rows = [("逾期" if i.overdue else "", f"#{i.case_id}", labels.workflow(i.workflow), i.label,
             due_text(i.due_at, prefix=""), i.time_left,
             f"代 {labels.person(i.via_substitute_for)}" if i.via_substitute_for else "") for i in items]
    lines = text_table(("", "案件", "程序", "环节", "期满", "剩余", ""), rows)
    emit(as_json, [i.to_dict() for i in items], "\n".join([*lines, QUEUE_NOTE]))


#: What the 剩余 column counts, printed under the queue.
QUEUE_NOTE = ("剩余: 「还剩 N 个工作日」数从今天(是工作日才算)到期满日(含)的工作日, 期满日 24:00 起逾期;\n"
              "      按日计的时限数日历日; 不足一天或按小时计的写小时、分;\n"
              "      「逾期 N」数期满日之后已开始的工作日(或日)。")


