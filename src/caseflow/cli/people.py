"""``caseflow people``: the people who act on cases, their roles, AB岗 substitutes and absences."""

from __future__ import annotations

import click

from caseflow.cli.common import db_option, emit, handle_errors, json_option, open_engine


@click.group("people")
def people_group() -> None:
    """People: units, roles, leaders and substitutes (AB岗).

    \b
    Example:
        caseflow people add p1 --name 张警官 --unit 城关派出所 --role household_police
        caseflow people list --unit 城关派出所
    """


@people_group.command("list")
@click.option("--unit", default=None, help="Only the people of this unit.")
@db_option
@json_option
@handle_errors
def people_list(unit: str | None, db: str | None, as_json: bool) -> None:
    """Everyone (or one unit's people): roles, leader, AB岗 substitute, administrators marked.

    \b
    Example:
        caseflow people list
        caseflow people list --unit 城关派出所 --json
    """
    from caseflow.textwidth import table

    people = [p for p in open_engine(db).people() if unit is None or p.unit == unit]
    names = {p.id: p.name for p in people}
    payload = [{"id": p.id, "name": p.name, "unit": p.unit, "roles": sorted(p.role_set), "leader": p.leader_id,
                "substitute": p.substitute_id, "admin": bool(p.admin)} for p in people]
    rows = [[p.id, p.name, p.unit, " ".join(sorted(p.role_set)),
             f"{names.get(p.leader_id, '')} ({p.leader_id})" if p.leader_id else "",
             f"{names.get(p.substitute_id, '')} ({p.substitute_id})" if p.substitute_id else "",
             "管理员" if p.admin else ""] for p in people]
    text = table(["编号", "姓名", "单位", "角色", "领导", "AB岗", ""], rows) if people else \
        "nobody yet: add people with `caseflow people add`"
    emit(as_json, payload, text)


@people_group.command("add")
@click.argument("person_id", metavar="ID")
@click.option("--name", required=True)
@click.option("--unit", required=True)
@click.option("--role", "roles", multiple=True, help="A role (repeat for several).")
@click.option("--substitute", default=None, metavar="ID", help="AB岗: who acts while this person is absent.")
@click.option("--leader", default=None, metavar="ID", help="Who receives this person's escalations.")
@click.option("--admin", is_flag=True, help="May manage people, workflows and holiday files.")
@click.option("--channel", default=None, help="Notification address (mailto:…, a webhook URL, …).")
@click.option("--replace", is_flag=True, help="Update the person if they exist.")
@db_option
@json_option
@handle_errors
def people_add(person_id: str, name: str, unit: str, roles: tuple[str, ...], substitute: str | None,  # noqa: PLR0917
               leader: str | None, admin: bool, channel: str | None, replace: bool, db: str | None,
               as_json: bool) -> None:
    """Add a person.

    \b
    Example:
        caseflow people add p1 --name 张警官 --unit 城关派出所 --role household_police --substitute p2 --leader l1
    """
    person = open_engine(db).add_person(person_id, name=name, unit=unit, roles=roles, leader=leader,
                                    substitute=substitute, admin=admin, channel=channel, replace=replace)
    payload = {"id": person.id, "name": person.name, "unit": person.unit, "roles": sorted(person.role_set),
               "leader": person.leader_id, "substitute": person.substitute_id, "admin": person.admin}
    roles_text = " ".join(sorted(person.role_set))
    emit(as_json, payload, f"added {person.id} {person.name} ({person.unit}) roles: {roles_text}")


@people_group.command("absent")
@click.argument("person_id", metavar="ID")
@click.option("--from", "start", required=True, metavar="DATE")
@click.option("--to", "end", required=True, metavar="DATE")
@db_option
@json_option
@handle_errors
def people_absent(person_id: str, start: str, end: str, db: str | None, as_json: bool) -> None:
    """Mark a person absent (dates inclusive): their queue and alerts go to their substitute.

    \b
    Example:
        caseflow people absent p1 --from 2026-10-12 --to 2026-10-16
    """
    from caseflow.clock import parse_date

    open_engine(db).mark_absent(person_id, start=parse_date(start), end=parse_date(end))
    emit(as_json, {"id": person_id, "from": start, "to": end}, f"{person_id} absent {start} .. {end}")


