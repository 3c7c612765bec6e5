"""节假日预约服务 (holiday_appointment) by seed 000 四(三), during the 2026 National Day holiday.

"接到群众节假日预约服务电话后，在24小时内主动联系，在群众约定的时间帮助群众办理相关事项": 24 hours on the clock,
then a timer due at the agreed instant, so the case stays in the officer's queue until it is served.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from caseflow.errors import CommandError, WorkflowError
from caseflow.workflowfile import parse_workflow, shipped_workflows_dir
from procedure_world import World, audited_world, bj
from storefixtures import db_url  # noqa: F401 - fixture

UNIT = "城关派出所"
PEOPLE = (
    ("wang", "所长 王海", UNIT, ("station_leader",), None),
    ("zhang", "户籍民警 张丽", UNIT, ("household_police",), "wang"),
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:  # noqa: F811
    yield from audited_world(db_url, bj(2026, 10, 2, 10), PEOPLE)


def test_the_agreed_instant_keeps_the_case_in_the_queue_until_served(world: World) -> None:
    engine = world.engine
    case = engine.open("holiday_appointment", actor="zhang", data={"applicant": "陈某", "phone": "13900000000"})
    contact = case.timer("contact")
    assert contact.assignee == "zhang" and contact.due_at == bj(2026, 10, 3, 10)  # 24 hours, a holiday

    world.at(2026, 10, 2, 15)
    for bad, why in (("下周三上午", "appointment_at"), ("2026-10-01T09:00", "not after"),
                     ("2026-12-01T09:00", "more than 30 days")):
        with pytest.raises(CommandError, match=why):
            engine.fire(case.id, "contact", actor="zhang", data={"appointment_at": bad})
    assert world.case(case.id).state == "requested"
    case = engine.fire(case.id, "contact", actor="zhang", data={"appointment_at": "2026-10-04T09:30"})
    assert case.timer("contact").status == "met"
    serve = case.timer("serve")
    assert serve.assignee == "zhang" and serve.due_at == bj(2026, 10, 4, 9, 30)
    assert [i.timer for i in engine.queue("zhang")] == ["serve"]

    # Warned an hour ahead, overdue at the agreed instant, to the leader two hours later — on a holiday.
    assert world.sweep(2026, 10, 4, 8) == []
    assert world.sweep(2026, 10, 4, 8, 30) == [("serve", "warning", "zhang", bj(2026, 10, 4, 8, 30))]
    assert world.sweep(2026, 10, 4, 9, 30) == [("serve", "overdue", "zhang", bj(2026, 10, 4, 9, 30))]
    assert world.sweep(2026, 10, 4, 11, 30) == [("serve", "escalated", "wang", bj(2026, 10, 4, 11, 30))]
    world.at(2026, 10, 4, 11, 40)
    case = engine.fire(case.id, "serve", actor="zhang")
    assert case.state == "served" and case.timer("serve").status == "breached"
    assert engine.queue("zhang") == []


def test_an_appointment_kept_raises_nothing(world: World) -> None:
    engine = world.engine
    case = engine.open("holiday_appointment", actor="zhang")
    world.at(2026, 10, 2, 11)
    engine.fire(case.id, "contact", actor="zhang", data={"appointment_at": "2026-10-05 14:00"})
    world.at(2026, 10, 5, 13, 50)
    case = engine.fire(case.id, "serve", actor="zhang")
    assert case.timer("serve").status == "met"
    assert world.sweep(2026, 10, 6) == []
    assert world.alerts(case.id) == []


def test_the_agreed_instant_must_be_a_declared_field() -> None:
    text = (shipped_workflows_dir() / "holiday_appointment.yaml").read_text(encoding="utf-8")
    assert parse_workflow(text).timer("serve").until == "appointment_at"
    with pytest.raises(WorkflowError, match=r"agreed_at.*does not declare"):
        parse_workflow(text.replace("until: appointment_at", "until: agreed_at"))
