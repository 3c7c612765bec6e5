"""``caseflow desk`` and ``caseflow rating``: the window before and after the clock."""

from __future__ import annotations

from typing import Any

import click

from caseflow.cli.common import (
    at_option,
    db_option,
    emit,
    handle_errors,
    json_option,
    open_engine,
    parse_at,
    parse_data,
)


def _desk(db: str | None) -> Any:
    from caseflow.desk import Desk

    return Desk(open_engine(db), notify=lambda who, subject, body: click.echo(f"⚠ {subject} → {who}: {body}",
                                                                             err=True))


def _visit_text(v: Any) -> str:
    lines = [f"来访 visit {v.id}  {v.workflow}  第{v.number}次(最多{v.max_visits}次)  申请人 {v.applicant}  "
             f"结果 {v.outcome}"]
    if v.missing:
        lines.append("  缺少材料 missing: " + "、".join(m.name for m in v.missing))
    else:
        lines.append("  材料齐全 complete: 可当场办结或受理")
    if v.case_id:
        lines.append(f"  案件 case {v.case_id}")
    if v.warning:
        lines.append(f"  ⚠ {v.warning}")
    return "\n".join(lines)


@click.group("desk")
def desk_group() -> None:
    """The front desk: visits, 当场办结, acceptance and the 一次告知单.

    \b
    Example:
        caseflow desk visit hukou_transfer --actor p1 --applicant 110101199003071234 --brought id_card
        caseflow desk notice 1 --actor p1
    """


@desk_group.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def keygen(path: str, as_json: bool) -> None:
    """Create the site secret that keys applicant fingerprints (never overwrites a file).

    Keep it outside the database and its directory, readable by caseflow only, and back it up apart from
    the database: without it no stored fingerprint can be matched again. Name it in caseflow.toml as
    ``[desk] secret_file = "PATH"`` (or in $CASEFLOW_DESK_SECRET_FILE).

    \b
    Example:
        caseflow desk keygen /etc/caseflow/desk.key
    """
    from caseflow.applicants import write_secret

    written = write_secret(path)
    emit(as_json, {"secret_file": str(written)},
         f"wrote {written} (mode 600); set [desk] secret_file = \"{written}\" in caseflow.toml")


@desk_group.command("visit")
@click.argument("workflow")
@click.option("--actor", required=True, metavar="ID")
@click.option("--applicant", required=True, metavar="ID_NUMBER", help="The applicant's ID number (stored hashed).")
@click.option("--brought", multiple=True, metavar="MATERIAL", help="A material the applicant brought (repeatable).")
@click.option("--applies", multiple=True, metavar="MATERIAL", help="A conditional material that applies.")
@at_option
@db_option
@json_option
@handle_errors
def visit(workflow: str, actor: str, applicant: str, brought: tuple[str, ...], applies: tuple[str, ...],  # noqa: PLR0917
          at: str | None, db: str | None, as_json: bool) -> None:
    """Record a visit for WORKFLOW: what was brought, and what is missing.

    \b
    Example:
        caseflow desk visit hukou_transfer --actor p1 --applicant 110101199003071234 --brought id_card
    """
    v = _desk(db).visit(workflow, applicant_id=applicant, actor=actor, brought=brought, applies=applies,
                        at=parse_at(at))
    emit(as_json, v.to_dict(), _visit_text(v))


def _receipt(receipt: Any, as_json: bool, db: str | None) -> None:
    title = open_engine(db).registry.latest(receipt.case.workflow).title
    emit(as_json, receipt.to_dict(), receipt.to_text(title).rstrip())


@desk_group.command("accept")
@click.argument("visit_id", type=int, metavar="VISIT")
@click.option("--actor", required=True, metavar="ID")
@click.option("--responsible", default=None, metavar="ID")
@click.option("--data", "data", multiple=True, metavar="NAME=VALUE")
@at_option
@db_option
@json_option
@handle_errors
def accept(visit_id: int, actor: str, responsible: str | None, data: tuple[str, ...], at: str | None,  # noqa: PLR0917
           db: str | None, as_json: bool) -> None:
    """Accept VISIT's file: the case opens; prints the 受理回执 with its query code.

    \b
    Example:
        caseflow desk accept 2 --actor p1 --data applicant=李四
    """
    receipt = _desk(db).accept(visit_id, actor=actor, data=parse_data(data), responsible=responsible,
                               at=parse_at(at))
    _receipt(receipt, as_json, db)


@desk_group.command("on-the-spot")
@click.argument("visit_id", type=int, metavar="[VISIT]", required=False)
@click.option("--actor", required=True, metavar="ID")
@click.option("--workflow", default=None, metavar="WORKFLOW", help="Without VISIT: the matter of the visit to record.")
@click.option("--applicant", default=None, metavar="ID_NUMBER", help="Without VISIT: the applicant's ID number.")
@click.option("--brought", multiple=True, metavar="MATERIAL", help="Without VISIT: a material brought (repeatable).")
@click.option("--applies", multiple=True, metavar="MATERIAL", help="Without VISIT: a conditional material applying.")
@click.option("--data", "data", multiple=True, metavar="NAME=VALUE")
@at_option
@db_option
@json_option
@handle_errors
def on_the_spot(visit_id: int | None, actor: str, workflow: str | None, applicant: str | None,  # noqa: PLR0917
                brought: tuple[str, ...], applies: tuple[str, ...], data: tuple[str, ...], at: str | None,
                db: str | None, as_json: bool) -> None:
    """当场办结: the case opens and closes at once (counted 即办), all in one transaction.

    Either settle a recorded VISIT, or — the usual way with a complete file — give the visit itself
    (--workflow, --applicant, --brought): it is recorded and handled on the spot in the same
    transaction, and nothing is written if a material is missing.

    \b
    Example:
        caseflow desk on-the-spot --workflow hukou_transfer --actor p1 --applicant 110101199003071234 \\
            --brought id_card --brought household_register --brought transfer_permit
        caseflow desk on-the-spot 2 --actor p1
    """
    from caseflow.errors import CommandError

    if visit_id is not None:
        if workflow or applicant or brought or applies:
            raise CommandError("give either VISIT or the visit itself (--workflow, --applicant, --brought), "
                               "not both")
        receipt = _desk(db).handle_on_the_spot(visit_id, actor=actor, data=parse_data(data), at=parse_at(at))
    else:
        if not workflow or not applicant:
            raise CommandError("give VISIT (a recorded visit), or --workflow and --applicant (and --brought) to "
                               "record the visit and handle it on the spot at once")
        receipt = _desk(db).on_the_spot(workflow, applicant_id=applicant, actor=actor, brought=brought,
                                        applies=applies, data=parse_data(data), at=parse_at(at))
    _receipt(receipt, as_json, db)


@desk_group.command("notice")
@click.argument("visit_id", type=int, metavar="VISIT")
@click.option("--actor", required=True, metavar="ID")
@click.option("--also", multiple=True, metavar="MATERIAL", help="A material found defective (repeatable).")
@click.option("--reason", default=None, help="A leader's reason to ask for a material an earlier notice omitted.")
@at_option
@db_option
@json_option
@handle_errors
def notice(visit_id: int, actor: str, also: tuple[str, ...], reason: str | None, at: str | None,  # noqa: PLR0917
           db: str | None, as_json: bool) -> None:
    """Issue VISIT's 一次告知单: every missing material, numbered, with source and basis.

    \b
    Example:
        caseflow desk notice 1 --actor p1
    """
    n = _desk(db).issue_notice(visit_id, actor=actor, also=also, reason=reason, at=parse_at(at))
    emit(as_json, {**n.to_dict(), "text": n.to_text()}, n.to_text().rstrip())


@desk_group.command("show-notice")
@click.argument("notice_id", metavar="NOTICE")
@db_option
@json_option
@handle_errors
def show_notice(notice_id: str, db: str | None, as_json: bool) -> None:
    """Print a 告知单 again, by id or number (its query code is not stored and not shown).

    \b
    Example:
        caseflow desk show-notice GZ20261102-000001
    """
    n = _desk(db).notice(notice_id)
    emit(as_json, {**n.to_dict(), "text": n.to_text()}, n.to_text().rstrip())


@click.group("rating")
def rating_group() -> None:
    """好差评: record a rating, settle the follow-up of a bad one.

    \b
    Example:
        caseflow rating add --case 7 --level 满意 --actor p1
        caseflow rating settle 3 整改 --note "已回访致歉" --actor l1
    """


@rating_group.command("add")
@click.option("--case", "case_id", type=int, default=None)
@click.option("--visit", "visit_id", type=int, default=None)
@click.option("--code", default=None, help="The applicant's query code instead of --case/--visit.")
@click.option("--level", required=True, help="1–5 or 非常满意/满意/基本满意/不满意/非常不满意.")
@click.option("--comment", default="")
@click.option("--actor", default=None, metavar="ID", help="The clerk keying in the 评价器's result.")
@at_option
@db_option
@json_option
@handle_errors
def rating_add(case_id: int | None, visit_id: int | None, code: str | None, level: str, comment: str,  # noqa: PLR0917
               actor: str | None, at: str | None, db: str | None, as_json: bool) -> None:
    """Record a rating (by the clerk with --actor, or with the applicant's --code).

    \b
    Example:
        caseflow rating add --case 7 --level 满意 --actor p1
    """
    from caseflow.errors import CommandError
    from caseflow.ratings import Ratings

    ratings = Ratings(open_engine(db))
    if code:
        view = ratings.rate_by_code(code, level, comment=comment, at=parse_at(at))
    elif actor:
        view = ratings.rate(level=level, actor=actor, case_id=case_id, visit_id=visit_id, comment=comment,
                            at=parse_at(at))
    else:
        raise CommandError("give --actor (the clerk records the 评价器) or --code (the applicant's query code)")
    text = f"评价 rating {view.id}: {view.label}" + (f"; 回访整改 case {view.followup_case_id}"
                                                   if view.followup_case_id else "")
    emit(as_json, view.to_dict(), text)


@rating_group.command("settle")
@click.argument("rating_id", type=int, metavar="RATING")
@click.argument("outcome")
@click.option("--note", required=True)
@click.option("--actor", required=True, metavar="ID")
@at_option
@db_option
@json_option
@handle_errors
def rating_settle(rating_id: int, outcome: str, note: str, actor: str, at: str | None, db: str | None,  # noqa: PLR0917
                  as_json: bool) -> None:
    """Record OUTCOME of RATING's follow-up: 整改 (rectify), 解释说明 (explain) or 申诉复核 (review).

    \b
    Example:
        caseflow rating settle 3 整改 --note "已回访致歉" --actor l1
    """
    from caseflow.cli.common import print_case
    from caseflow.ratings import Ratings

    print_case(Ratings(open_engine(db)).settle(rating_id, outcome, actor=actor, note=note, at=parse_at(at)), as_json)


# ------------------------------------------------------------------------------------------- 预约


def _bookings(db: str | None) -> Any:
    from caseflow.appointments import Appointments

    return Appointments(open_engine(db), notify=lambda who, subject, body: click.echo(
        f"⚠ {subject} → {who}: {body}", err=True))


def _booking_line(a: Any) -> str:
    from caseflow.calendar import ZONE

    extra = " 延时服务" if a.extra_hours else ""
    code = f"  查询码 {a.query_code}" if a.query_code else ""
    return (f"预约 {a.id}  {a.workflow}  {a.at.astimezone(ZONE):%Y-%m-%d %H:%M}{extra}  申请人 {a.applicant}  "
            f"{a.status}{code}")


@desk_group.command("book")
@click.argument("workflow")
@click.option("--unit", required=True)
@click.option("--at", "at", required=True, metavar="INSTANT", help="The slot's start (Beijing time).")
@click.option("--applicant", required=True, metavar="ID_NUMBER")
@db_option
@json_option
@handle_errors
def book(workflow: str, unit: str, at: str, applicant: str, db: str | None, as_json: bool) -> None:  # noqa: PLR0917
    """Book a slot of WORKFLOW at UNIT (working days in the booking hours, or opened 延时服务 hours).

    \b
    Example:
        caseflow desk book hukou_transfer --unit 城关派出所 --at 2026-11-03T09:00 --applicant 110101199003071234
    """
    from caseflow.clock import parse_instant

    a = _bookings(db).book(unit, workflow, parse_instant(at), applicant_id=applicant)
    emit(as_json, a.to_dict(), _booking_line(a))


@desk_group.command("slots")
@click.argument("workflow")
@click.option("--unit", required=True)
@click.option("--day", required=True, metavar="YYYY-MM-DD")
@db_option
@json_option
@handle_errors
def slots(workflow: str, unit: str, day: str, db: str | None, as_json: bool) -> None:
    """The day's bookable slots and the places left.

    \b
    Example:
        caseflow desk slots hukou_transfer --unit 城关派出所 --day 2026-11-03
    """
    from caseflow.clock import parse_date

    rows = _bookings(db).slots(unit, workflow, parse_date(day))
    emit(as_json, [{**r, "at": r["at"].isoformat()} for r in rows],
         "\n".join(f"{r['at']:%H:%M}  余 {r['free']}" for r in rows) or "no slots that day (rest day not opened)")


@desk_group.command("open-rest-day")
@click.argument("workflow")
@click.option("--unit", required=True)
@click.option("--day", required=True, metavar="YYYY-MM-DD")
@click.option("--hours", required=True, metavar="HH:MM-HH:MM")
@click.option("--actor", required=True, metavar="ID", help="A leader.")
@db_option
@json_option
@handle_errors
def open_rest_day(workflow: str, unit: str, day: str, hours: str, actor: str, db: str | None,  # noqa: PLR0917
                  as_json: bool) -> None:
    """延时服务 (户籍 四(四)): open bookable hours on a rest day.

    \b
    Example:
        caseflow desk open-rest-day hukou_transfer --unit 城关派出所 --day 2026-11-07 --hours 09:00-12:00 --actor l1
    """
    from caseflow.clock import parse_date

    _bookings(db).open_rest_day(unit, workflow, parse_date(day), hours, actor=actor)
    emit(as_json, {"unit": unit, "workflow": workflow, "day": day, "hours": hours},
         f"opened {day} {hours} for {workflow} at {unit}")


@desk_group.command("due")
@click.option("--unit", required=True)
@db_option
@json_option
@handle_errors
def due(unit: str, db: str | None, as_json: bool) -> None:
    """Bookings the unit must serve now (from half an hour before their instant until an outcome).

    \b
    Example:
        caseflow desk due --unit 城关派出所
    """
    rows = _bookings(db).due(unit)
    emit(as_json, [a.to_dict() for a in rows], "\n".join(_booking_line(a) for a in rows) or "no bookings due")


@desk_group.command("booking-outcome")
@click.argument("appointment_id", type=int, metavar="BOOKING")
@click.argument("outcome", type=click.Choice(["served", "no_show", "missed"]))
@click.option("--actor", required=True, metavar="ID")
@db_option
@json_option
@handle_errors
def booking_outcome(appointment_id: int, outcome: str, actor: str, db: str | None, as_json: bool) -> None:
    """Record BOOKING's outcome: served, no_show (群众爽约) or missed (单位违约).

    \b
    Example:
        caseflow desk booking-outcome 1 no_show --actor p1
    """
    a = _bookings(db).record(appointment_id, outcome, actor=actor)
    emit(as_json, a.to_dict(), _booking_line(a))


@desk_group.command("sweep-bookings")
@db_option
@json_option
@handle_errors
def sweep_bookings(db: str | None, as_json: bool) -> None:
    """Warn the unit of bookings half an hour past their instant with no outcome (once each; the scheduler
    does this at every sweep, this runs it now).

    \b
    Example:
        caseflow desk sweep-bookings
    """
    ids = _bookings(db).sweep()
    emit(as_json, {"warned": ids}, f"warned for {len(ids)} booking(s)")
