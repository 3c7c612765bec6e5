"""户口迁移 (hukou_transfer) by seed 000 六(二), across the 2026 National Day holiday (10-01..07 off, 10-10 worked).

The clerk states the route at acceptance (needs_verification). Only the steps of the route taken run, each on
the person who must act (户籍民警, 社区民警, 所领导); a complete file handled in time raises no alert at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from caseflow.errors import TransitionError
from procedure_world import World, audited_world, bj
from storefixtures import db_url  # noqa: F401 - fixture

UNIT = "城关派出所"
PEOPLE = (
    ("wang", "所长 王海", UNIT, ("station_leader",), None),
    ("zhang", "户籍民警 张丽", UNIT, ("household_police",), "wang"),
    ("zhao", "社区民警 赵强", UNIT, ("community_police",), "wang"),
    ("li", "社区民警 李军", UNIT, ("community_police",), "wang"),
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:  # noqa: F811
    yield from audited_world(db_url, bj(2026, 9, 30, 10), PEOPLE)


def sweep_twice_daily(world: World, first: date, last: date) -> list[tuple[str, str, str, object]]:
    """Sweep at 08:30 and 18:00 of every day from ``first`` to ``last`` not yet past; every alert raised."""
    raised = []
    day = first
    while day <= last:
        for hour, minute in ((8, 30), (18, 0)):
            if bj(day.year, day.month, day.day, hour, minute) > world.clock.now():
                raised += world.sweep(day.year, day.month, day.day, hour, minute)
        day += timedelta(days=1)
    return raised


def test_a_complete_file_handled_in_time_raises_no_alert_at_all(world: World) -> None:
    engine = world.engine
    case = engine.open("hukou_transfer", actor="zhang", data={"applicant": "李四", "needs_verification": "false"})
    # Only the complete-file step runs: no same-day 交办单 for a file that needs no verification.
    assert [t.name for t in case.timers] == ["submit_complete"]
    submit = case.timer("submit_complete")
    # Accepted Wed 09-30: 2 working days are Thu 10-08 and Fri 10-09.
    assert submit.assignee == "zhang" and submit.last_day == date(2026, 10, 9)
    assert sweep_twice_daily(world, date(2026, 9, 30), date(2026, 10, 8)) == []

    world.at(2026, 10, 8, 10)
    case = engine.fire(case.id, "submit_for_approval", actor="zhang")
    approval = case.timer("approval")
    # The leader's 2 days sit with the leader: Fri 10-09 and the make-up Saturday 10-10.
    assert approval.assignee == "wang" and approval.last_day == date(2026, 10, 10)
    assert [item.case_id for item in engine.queue("wang")] == [case.id]
    world.at(2026, 10, 8, 16)
    case = engine.fire(case.id, "approve_at_station", actor="wang")
    assert case.timer("notify").assignee == "zhang" and case.timer("notify").last_day == date(2026, 10, 9)
    world.at(2026, 10, 8, 17, 30)
    case = engine.fire(case.id, "complete", actor="zhang")

    assert case.state == "completed"
    assert {t.name: t.status for t in case.timers} == {"submit_complete": "met", "approval": "met", "notify": "met"}
    assert sweep_twice_daily(world, date(2026, 10, 8), date(2026, 10, 16)) == []
    assert world.alerts(case.id) == []


def test_the_verification_route_puts_each_step_on_its_holder(world: World) -> None:
    engine = world.engine
    case = engine.open("hukou_transfer", actor="zhang", data={"applicant": "王五", "needs_verification": True})
    assert [t.name for t in case.timers] == ["hand_over"]
    hand_over = case.timer("hand_over")
    # 受理当日: by 24:00 of the day of acceptance, warned 4 hours before.
    assert hand_over.due_at == bj(2026, 10, 1) and hand_over.warn_at == bj(2026, 9, 30, 20)

    world.at(2026, 9, 30, 15)
    case = engine.fire(case.id, "hand_over_verification", actor="zhang", data={"slip_no": "JB-2026-0930"},
                       assign="zhao")
    assert case.timer("hand_over").status == "met"
    verification = case.timer("verification")
    # 3 working days: Thu 10-08, Fri 10-09, make-up Sat 10-10 — in 赵强's queue, not 张丽's.
    assert verification.assignee == "zhao" and verification.last_day == date(2026, 10, 10)
    assert [i.timer for i in engine.queue("zhao")] == ["verification"]
    assert engine.queue("zhang") == []

    # 函调 to another county does not count: 10-08 .. 10-11 are excluded.
    assert sweep_twice_daily(world, date(2026, 9, 30), date(2026, 10, 8)) == []
    world.at(2026, 10, 8, 10)
    engine.pause(case.id, "verification", reason="函调", actor="zhao")
    assert sweep_twice_daily(world, date(2026, 10, 8), date(2026, 10, 12)) == []  # a paused clock is quiet
    world.at(2026, 10, 12, 9)
    case = engine.resume(case.id, "verification", actor="zhao")
    assert case.timer("verification").last_day == date(2026, 10, 14)

    # 赵强 is late: warned and overdue to him, escalated to his leader.
    assert sweep_twice_daily(world, date(2026, 10, 12), date(2026, 10, 13)) == []
    assert world.sweep(2026, 10, 14, 8, 30) == [("verification", "warning", "zhao", bj(2026, 10, 14))]
    assert world.sweep(2026, 10, 15, 8, 30) == [("verification", "overdue", "zhao", bj(2026, 10, 15))]
    assert world.sweep(2026, 10, 16, 8, 30) == [("verification", "escalated", "wang", bj(2026, 10, 16))]

    world.at(2026, 10, 16, 9)
    case = engine.fire(case.id, "return_verification", actor="zhao")
    assert case.timer("verification").status == "breached"
    report = case.timer("report")
    assert report.assignee == "zhang" and report.last_day == date(2026, 10, 20)
    world.at(2026, 10, 16, 15)
    case = engine.fire(case.id, "submit_for_approval", actor="zhang")
    world.at(2026, 10, 19, 10)
    case = engine.fire(case.id, "approve_at_station", actor="wang")
    world.at(2026, 10, 19, 17)
    case = engine.fire(case.id, "complete", actor="zhang")
    assert {t.name: t.status for t in case.timers} == {
        "hand_over": "met", "verification": "breached", "report": "met", "approval": "met", "notify": "met"}
    assert sweep_twice_daily(world, date(2026, 10, 19), date(2026, 10, 23)) == []
    assert world.alerts(case.id) == [
        ("verification", "warning", "zhao", bj(2026, 10, 14)),
        ("verification", "overdue", "zhao", bj(2026, 10, 15)),
        ("verification", "escalated", "wang", bj(2026, 10, 16)),
    ]


def test_a_matter_the_station_finishes_after_verification_has_one_working_day(world: World) -> None:
    engine = world.engine
    world.at(2026, 10, 9, 10)
    case = engine.open("hukou_transfer", actor="zhang", data={"needs_verification": "true"})
    with pytest.raises(TransitionError, match="hand_over_verification"):
        engine.fire(case.id, "complete", actor="zhang")
    world.at(2026, 10, 9, 11)
    case = engine.fire(case.id, "hand_over_verification", actor="zhang", data={"slip_no": "JB-2026-1009"},
                       assign="li")
    assert case.timer("verification").assignee == "li"
    world.at(2026, 10, 10, 11)
    case = engine.fire(case.id, "return_verification", actor="li", data={"finish_after_verification": "true"})
    # 六(二) "在社区民警提交调查核实材料……后的1个工作日内办结": Mon 10-12, on the clerk; no report step.
    finish = case.timer("finish_after_verification")
    assert finish.assignee == "zhang" and finish.last_day == date(2026, 10, 12)
    assert "report" not in {t.name for t in case.timers}
    world.at(2026, 10, 12, 10)
    case = engine.fire(case.id, "complete", actor="zhang")
    assert case.state == "completed" and case.timer("finish_after_verification").status == "met"
    assert world.alerts(case.id) == []


def test_a_file_sent_for_verification_after_all_does_not_count_its_complete_file_step(world: World) -> None:
    engine = world.engine
    case = engine.open("hukou_transfer", actor="zhang")  # route not stated: read as a complete file
    assert [t.name for t in case.timers] == ["submit_complete"]
    world.at(2026, 10, 8, 9)
    case = engine.fire(case.id, "hand_over_verification", actor="zhang", data={"slip_no": "JB-1"}, assign="zhao")
    # Not met (the file was not submitted complete), not breached: 不适用.
    assert case.timer("submit_complete").status == "cancelled"
    assert case.timer("verification").status == "running"
