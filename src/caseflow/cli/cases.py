"""``caseflow case``: open a case and give it commands; show it and its history."""

from __future__ import annotations

import click

from caseflow.cli.common import (
    CASE_ID,
    at_option,
    db_option,
    emit,
    handle_errors,
    json_option,
    key_was_used,
    open_engine,
    parse_at,
    parse_data,
    print_case,
)


@click.group("case")
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
@click.option("--assign", default=None, metavar="ID",
              help="The person who must act on the steps this starts (of their role); default: the engine's rule.")
@at_option
@db_option
@json_option
@handle_errors
def case_open(workflow: str, actor: str, responsible: str | None, data: tuple[str, ...], key: str | None,  # noqa: PLR0917
              assign: str | None, at: str | None, db: str | None, as_json: bool) -> None:
    """Open a case of WORKFLOW.

    \b
    Example:
        caseflow case open hukou_transfer --actor p1 --data applicant=李四 --key intake-0001
    """
    engine = open_engine(db)
    replayed = key_was_used(engine, key)
    case = engine.open(workflow, actor=actor, at=parse_at(at), data=parse_data(data), responsible=responsible,
                       key=key, assign=assign)
    print_case(case, as_json, replayed=replayed)


@case_group.command("fire")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
@click.argument("trigger")
@click.option("--actor", required=True, metavar="ID")
@click.option("--data", "data", multiple=True, metavar="NAME=VALUE")
@click.option("--expect-version", type=CASE_ID, default=None, help="Refuse if the case is not at this version.")
@click.option("--key", default=None, help="Idempotency key.")
@click.option("--assign", default=None, metavar="ID",
              help="The person who must act on the steps this starts (of their role); default: the engine's rule.")
@at_option
@db_option
@json_option
@handle_errors
def case_fire(case_id: int, trigger: str, actor: str, data: tuple[str, ...], expect_version: int | None,  # noqa: PLR0917
              key: str | None, assign: str | None, at: str | None, db: str | None, as_json: bool) -> None:
    """Fire TRIGGER on CASE.

    \b
    Example:
        caseflow case fire 1 hand_over_verification --actor p1 --data slip_no=JB-2026-0001
    """
    engine = open_engine(db)
    replayed = key_was_used(engine, key)
    case = engine.fire(case_id, trigger, actor=actor, at=parse_at(at), data=parse_data(data),
                       expected_version=expect_version, key=key, assign=assign)
    print_case(case, as_json, replayed=replayed)


@case_group.command("hand-over-step")
@click.argument("case_id", type=int, metavar="CASE")
@click.option("--timer", required=True, help="The step (timer) to hand over.")
@click.option("--to", "to", required=True, metavar="ID", help="A person holding the step's role.")
@click.option("--actor", required=True, metavar="ID")
@click.option("--reason", required=True, help="转交理由, recorded in the case's history.")
@click.option("--key", default=None)
@at_option
@db_option
@json_option
@handle_errors
def case_hand_over_step(case_id: int, timer: str, to: str, actor: str, reason: str,  # noqa: PLR0917
                        key: str | None, at: str | None, db: str | None, as_json: bool) -> None:
    """Hand one running step of CASE over (转交): TO becomes the person who must act on it.

    \b
    Example:
        caseflow case hand-over-step 1 --timer verification --to p3 --actor p2 --reason 辖区调整
    """
    print_case(open_engine(db).hand_over_step(case_id, timer, to=to, actor=actor, reason=reason, at=parse_at(at),
                                              key=key), as_json)


@case_group.command("pause")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
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
    engine = open_engine(db)
    replayed = key_was_used(engine, key)
    print_case(engine.pause(case_id, timer, reason=reason, actor=actor, at=parse_at(at), data=parse_data(data),
                                     key=key), as_json, replayed=replayed)


@case_group.command("resume")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
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
    engine = open_engine(db)
    replayed = key_was_used(engine, key)
    print_case(engine.resume(case_id, timer, actor=actor, at=parse_at(at), key=key), as_json, replayed=replayed)


@case_group.command("extend")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
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
    engine = open_engine(db)
    replayed = key_was_used(engine, key)
    print_case(engine.extend(case_id, timer, by=by, grounds=grounds, actor=actor, at=parse_at(at),
                                      data=parse_data(data), key=key), as_json, replayed=replayed)


@case_group.command("hand-over")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
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
    engine = open_engine(db)
    replayed = key_was_used(engine, key)
    print_case(engine.hand_over(case_id, to=to, actor=actor, slip=slip, at=parse_at(at), key=key), as_json,
               replayed=replayed)


@case_group.command("reassign")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
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
    print_case(open_engine(db).reassign(case_id, to=to, actor=actor, reason=reason, at=parse_at(at)), as_json)


@case_group.command("close")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
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
    print_case(open_engine(db).close(case_id, actor=actor, reason=reason, at=parse_at(at)), as_json)


@case_group.command("show")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
@db_option
@json_option
@handle_errors
def case_show(case_id: int, db: str | None, as_json: bool) -> None:
    """Show CASE: state, responsible person, timers.

    \b
    Example:
        caseflow case show 1 --json
    """
    print_case(open_engine(db).get(case_id), as_json)


@case_group.command("history")
@click.argument("case_id", type=CASE_ID, metavar="CASE")
@db_option
@json_option
@handle_errors
def case_history(case_id: int, db: str | None, as_json: bool) -> None:
    """Show CASE's events, oldest first.

    \b
    Example:
        caseflow case history 1
    """
    from caseflow.narrate import Labels, describe_event

    engine = open_engine(db)
    case = engine.get(case_id)
    events = engine.history(case_id)
    labels = Labels.from_store(engine.store)
    # Personal data masked by kind: the command line does not know that its user is the responsible clerk.
    text = "\n".join(describe_event(e, labels, case.workflow, version=case.workflow_version) for e in events)
    emit(as_json, [e.to_dict() for e in events], text)
