"""治安案件 (public_security_case) under the 2025 治安管理处罚法, across the 2026 National Day holiday.

第九十七条: 询问查证 8 / 12 / 24 hours from the summons, on the clock, holidays irrelevant, escalated an hour
after they run out. 第一百一十八条: 30 days from 立案, +30 days approved by the higher authority, at most
twice; 鉴定 and 听证 not counted. 第一百一十六条: the decision served within 2 days. 公安机关办理行政案件程序
规定 第三十五条: a day limit whose last day is a holiday ends on the first day after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from caseflow.errors import CommandError, PermissionDeniedError, TimerError
from procedure_world import World, audited_world, bj
from storefixtures import db_url  # noqa: F401 - fixture

UNIT = "城关派出所"
PEOPLE = (
    ("ju", "分局局长", "城关分局", ("superior",), None),
    ("chen", "所长 陈刚", UNIT, ("unit_leader",), "ju"),
    ("zhou", "民警 周勇", UNIT, ("officer",), "chen"),
    ("sun", "民警 孙伟", UNIT, ("officer",), "chen"),
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:  # noqa: F811
    yield from audited_world(db_url, bj(2026, 9, 5, 10), PEOPLE)


def test_case_limit_rolls_past_national_day_and_extends_twice_at_most(world: World) -> None:
    engine = world.engine
    case = engine.open("public_security_case", actor="zhou", data={"applicant": "王某", "no": "ZA-2026-88"})
    handling = case.timer("case_handling")
    assert handling.assignee == "zhou" and handling.status == "running"
    # 立案 Sat 09-05: day 1 is 09-06, day 30 is Mon 10-05 — inside 国庆 (10-01..07): it ends on Thu 10-08.
    assert handling.last_day == date(2026, 10, 8) and handling.due_at == bj(2026, 10, 9)

    # Warned 3 days before it runs out (from 10-06 00:00), to the officer; nothing earlier.
    assert handling.warn_at == bj(2026, 10, 6)
    assert world.sweep(2026, 10, 5, 23) == []
    assert world.sweep(2026, 10, 6, 0, 1) == [("case_handling", "warning", "zhou", bj(2026, 10, 6))]

    # Extension: only the higher authority approves, only on 案情重大/复杂, and the approval is recorded.
    world.at(2026, 10, 8, 10)
    with pytest.raises(PermissionDeniedError, match="superior"):
        engine.extend(case.id, "case_handling", by="30 days", grounds="案情复杂", actor="chen",
                      data={"approval_no": "城分延-1"})
    with pytest.raises(TimerError, match="案情重大"):
        engine.extend(case.id, "case_handling", by="30 days", grounds="工作繁忙", actor="ju",
                      data={"approval_no": "城分延-1"})
    with pytest.raises(CommandError, match="approval_no"):
        engine.extend(case.id, "case_handling", by="30 days", grounds="案情复杂", actor="ju")
    with pytest.raises(TimerError, match="at most 30"):  # two extensions of 30 days, not one of 60
        engine.extend(case.id, "case_handling", by="60 days", grounds="案情复杂", actor="ju",
                      data={"approval_no": "城分延-1"})
    case = engine.extend(case.id, "case_handling", by="30 days", grounds="案情复杂：涉案人员多", actor="ju",
                         data={"approval_no": "城分延-1"})
    # 60 days from 09-05: Wed 11-04.
    assert case.timer("case_handling").last_day == date(2026, 11, 4)
    world.at(2026, 11, 2, 9)
    case = engine.extend(case.id, "case_handling", by="30 days", grounds="案情重大", actor="ju",
                         data={"approval_no": "城分延-2"})
    # 90 days from 09-05: Fri 12-04.
    assert case.timer("case_handling").last_day == date(2026, 12, 4)
    with pytest.raises(TimerError, match="2 time"):
        engine.extend(case.id, "case_handling", by="30 days", grounds="案情重大", actor="ju",
                      data={"approval_no": "城分延-3"})

    # 鉴定 is not counted: 11-10 .. 11-19 excluded (10 days), the last day moves 10 days on.
    world.at(2026, 11, 10, 9)
    engine.pause(case.id, "case_handling", reason="鉴定", actor="zhou")
    world.at(2026, 11, 20, 9)
    case = engine.resume(case.id, "case_handling", actor="zhou")
    assert case.timer("case_handling").last_day == date(2026, 12, 14)

    # The decision meets the case limit; the 2-day service limit starts (Fri 12-11 → Sun 12-13 → Mon 12-14).
    world.at(2026, 12, 11, 16)
    case = engine.fire(case.id, "punish", actor="zhou", data={"decision_no": "城公(治)决字〔2026〕88号"})
    assert case.timer("case_handling").status == "met"
    serve = case.timer("serve_decision")
    assert serve.assignee == "zhou" and serve.last_day == date(2026, 12, 14)
    world.at(2026, 12, 12, 10)
    case = engine.fire(case.id, "serve", actor="zhou")
    assert case.state == "served" and case.timer("serve_decision").status == "met"
    assert world.sweep(2026, 12, 20) == []
    assert world.alerts(case.id) == [("case_handling", "warning", "zhou", bj(2026, 10, 6))]


def test_a_case_entered_after_it_was_filed_counts_from_the_filing(world: World) -> None:
    # 第一百一十八条 "自立案之日起不得超过三十日": filed Tue 08-25, entered here on Sat 09-05.
    case = world.engine.open("public_security_case", actor="zhou", data={"filed_on": "2026-08-25"})
    handling = case.timer("case_handling")
    # Day 30 is Thu 09-24 — not 10-08, thirty days (rolled past 国庆) from the day it was entered.
    assert handling.started_at == bj(2026, 8, 25) and handling.last_day == date(2026, 9, 24)
    with pytest.raises(CommandError, match="filed_on=2026-09-06 lies after"):
        world.engine.open("public_security_case", actor="zhou", data={"filed_on": "2026-09-06"})


def test_questioning_hours_run_through_the_holiday_and_escalate_within_an_hour(world: World) -> None:
    engine = world.engine
    case = engine.open("public_security_case", actor="zhou", at=bj(2026, 9, 5, 10))
    world.at(2026, 9, 30, 22)
    # Only the grounds of 第九十七条 fix a limit; anything else is refused, naming them.
    with pytest.raises(CommandError, match=r"一般情形.*涉案人数众多或者身份不明.*可能适用行政拘留"):
        engine.fire(case.id, "summon", actor="zhou", data={"summons_no": "传-1", "ground": "盗窃"})
    case = engine.fire(case.id, "summon", actor="zhou", data={"summons_no": "传-1", "ground": "一般情形"})
    q = case.timer("questioning_8h")
    assert {t.name for t in case.timers if t.status == "running"} == {"case_handling", "questioning_8h"}
    assert q.assignee == "zhou" and q.due_at == bj(2026, 10, 1, 6)  # 8 hours on the clock, a holiday
    # A quarter of the limit before (2 h), at the limit, and one hour after it to the officer's leader —
    # at night, on a holiday.
    assert world.sweep(2026, 10, 1, 4) == [("questioning_8h", "warning", "zhou", bj(2026, 10, 1, 4))]
    assert world.sweep(2026, 10, 1, 6) == [("questioning_8h", "overdue", "zhou", bj(2026, 10, 1, 6))]
    assert world.sweep(2026, 10, 1, 7) == [("questioning_8h", "escalated", "chen", bj(2026, 10, 1, 7))]
    world.at(2026, 10, 1, 7, 30)
    case = engine.fire(case.id, "end_questioning", actor="zhou", data={"record_no": "笔-1"})
    assert case.timer("questioning_8h").status == "breached"

    # A second summons, where administrative detention may follow: 24 hours, and in time.
    world.at(2026, 10, 2, 9)
    case = engine.fire(case.id, "summon", actor="zhou", data={"summons_no": "传-2", "ground": "可能适用行政拘留"},
                       assign="sun")
    q24 = case.timer("questioning_24h")
    assert q24.assignee == "sun" and q24.due_at == bj(2026, 10, 3, 9)
    world.at(2026, 10, 2, 20)
    case = engine.fire(case.id, "end_questioning", actor="sun", data={"record_no": "笔-2"})
    assert case.timer("questioning_24h").status == "met"
    assert world.sweep(2026, 10, 3, 12) == []


def test_the_twelve_hour_ground_and_what_ends_a_case(world: World) -> None:
    engine = world.engine
    case = engine.open("public_security_case", actor="zhou")
    case = engine.fire(case.id, "summon", actor="zhou",
                       data={"summons_no": "传-3", "ground": "涉案人数众多或者身份不明"})
    assert case.timer("questioning_12h").due_at == bj(2026, 9, 5, 22)
    with pytest.raises(PermissionDeniedError, match="unit_leader"):
        engine.fire(case.id, "drop", actor="zhou", data={"reason": "不构成违反治安管理行为"})
    case = engine.fire(case.id, "drop", actor="chen", data={"reason": "不构成违反治安管理行为"})
    # The case ended another way: its running steps do not apply any more (not "met").
    assert {t.name: t.status for t in case.timers} == {"case_handling": "cancelled", "questioning_12h": "cancelled"}
    with pytest.raises(CommandError, match="closed"):
        engine.fire(case.id, "punish", actor="zhou", data={"decision_no": "x"})
