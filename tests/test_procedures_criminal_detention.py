"""刑事拘留 (criminal_detention) across the 2026 National Day holiday: hours on the clock, days in custody.

刑事诉讼法 第八十五条: family told within 24 hours unless 无法通知, or 有碍侦查 for 危害国家安全/恐怖活动犯罪
only, and then 立即 once the obstacle ends (程序规定 第一百二十七条: the reason recorded). 第九十三条: after
arrest delivered 立即, family within 24 hours (only 无法通知 exempts); 第九十四条: interrogated within 24 hours.
Hour limits escalate an hour after they run out, at night and on holidays.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from caseflow.errors import CommandError, PermissionDeniedError, TransitionError
from procedure_world import World, audited_world, bj
from storefixtures import db_url  # noqa: F401 - fixture

PEOPLE = (
    ("chen", "大队长 陈刚", "刑侦大队", ("leader",), None),
    ("zhou", "侦查员 周勇", "刑侦大队", ("investigator",), "chen"),
    ("sun", "侦查员 孙伟", "刑侦大队", ("investigator",), "chen"),
)
NATIONAL_SECURITY = "有碍侦查(涉嫌危害国家安全犯罪)"


@pytest.fixture
def world(db_url: str) -> Iterator[World]:  # noqa: F811
    yield from audited_world(db_url, bj(2026, 9, 30, 22), PEOPLE)


def test_detention_exemption_follow_up_and_the_duties_after_arrest(world: World) -> None:
    engine = world.engine
    case = engine.open("criminal_detention", actor="zhou", data={"applicant": "某甲", "no": "XJ-2026-77"})
    for name in ("deliver_to_detention_centre", "notify_family", "interrogate"):
        timer = case.timer(name)
        assert timer.assignee == "zhou" and timer.due_at == bj(2026, 10, 1, 22)
    # 3 days in custody end on 10-03 (a holiday, not moved); the request is the leader's step.
    arrest = case.timer("arrest_request")
    assert arrest.assignee == "chen" and arrest.last_day == date(2026, 10, 3)

    world.at(2026, 10, 1, 8)
    engine.fire(case.id, "deliver_to_detention_centre", actor="zhou")
    world.at(2026, 10, 1, 10)
    engine.fire(case.id, "interrogate", actor="zhou")

    # Only the grounds of 第八十五条, and the reason for the 拘留通知书.
    world.at(2026, 10, 1, 12)
    with pytest.raises(CommandError, match=r"无法通知.*有碍侦查"):
        engine.fire(case.id, "exempt_family_notice", actor="chen",
                    data={"ground": "有碍侦查(盗窃案)", "exemption_reason": "同案犯在逃"})
    with pytest.raises(CommandError, match="exemption_reason"):
        engine.fire(case.id, "exempt_family_notice", actor="chen", data={"ground": NATIONAL_SECURITY})
    with pytest.raises(PermissionDeniedError, match="leader"):
        engine.fire(case.id, "exempt_family_notice", actor="zhou",
                    data={"ground": NATIONAL_SECURITY, "exemption_reason": "可能引起同案犯逃避"})
    case = engine.fire(case.id, "exempt_family_notice", actor="chen",
                       data={"ground": NATIONAL_SECURITY, "exemption_reason": "可能引起同案犯逃避、妨碍侦查"})
    assert case.timer("notify_family").status == "cancelled"  # not met: the family was not told
    assert world.sweep(2026, 10, 1, 23) == []

    # The obstacle ends: the family is told 立即 (2 hours here), or the officer and then the leader hear of it.
    world.at(2026, 10, 2, 9)
    case = engine.fire(case.id, "obstacle_ended", actor="zhou")
    follow = case.timer("notify_family_after_obstacle")
    assert follow.assignee == "zhou" and follow.due_at == bj(2026, 10, 2, 11)
    # 立即 has no hours in 第八十五条: the 2 hours are this workflow's reading, a promise, not a statutory limit.
    assert follow.kind == "promised" and case.timer("notify_family").kind == "statutory"
    follow_up = "notify_family_after_obstacle"
    assert world.sweep(2026, 10, 2, 10, 30) == [(follow_up, "warning", "zhou", bj(2026, 10, 2, 10, 30))]
    assert world.sweep(2026, 10, 2, 11) == [(follow_up, "overdue", "zhou", bj(2026, 10, 2, 11))]
    assert world.sweep(2026, 10, 2, 12) == [(follow_up, "escalated", "chen", bj(2026, 10, 2, 12))]
    world.at(2026, 10, 2, 12, 10)
    case = engine.fire(case.id, "notify_family", actor="zhou")
    assert case.timer("notify_family_after_obstacle").status == "breached"

    assert world.sweep(2026, 10, 3, 8, 30) == [("arrest_request", "warning", "chen", bj(2026, 10, 3))]
    world.at(2026, 10, 3, 15)
    case = engine.fire(case.id, "request_arrest", actor="chen")
    # 7 days from 10-03 in custody: 10-10.
    assert case.timer("procuratorate_decision").last_day == date(2026, 10, 10)

    world.at(2026, 10, 9, 16)
    case = engine.fire(case.id, "approve_arrest", actor="zhou", data={"decision_no": "检捕〔2026〕12号"})
    assert case.state == "arrested" and case.closed_at is None
    assert case.timer("deliver_after_arrest").due_at == bj(2026, 10, 9, 18)
    assert case.timer("deliver_after_arrest").kind == "promised"  # 第九十三条 "立即": no hours in the law
    assert case.timer("notify_family_after_arrest").due_at == bj(2026, 10, 10, 16)
    assert case.timer("interrogate_after_arrest").due_at == bj(2026, 10, 10, 16)
    # After arrest only 无法通知 exempts (第九十三条), and the detention-stage exemption is gone.
    with pytest.raises(TransitionError, match="arrested"):
        engine.fire(case.id, "exempt_family_notice", actor="chen",
                    data={"ground": NATIONAL_SECURITY, "exemption_reason": "x"})
    with pytest.raises(CommandError, match="无法通知"):
        engine.fire(case.id, "exempt_family_notice_after_arrest", actor="chen",
                    data={"ground": NATIONAL_SECURITY, "exemption_reason": "x"})
    world.at(2026, 10, 9, 17)
    engine.fire(case.id, "deliver_to_detention_centre", actor="zhou")
    world.at(2026, 10, 10, 9)
    engine.fire(case.id, "interrogate", actor="sun")
    world.at(2026, 10, 10, 10)
    case = engine.fire(case.id, "notify_family", actor="zhou")
    assert {t.name: t.status for t in case.timers if t.name.endswith("after_arrest")} == {
        "deliver_after_arrest": "met", "notify_family_after_arrest": "met", "interrogate_after_arrest": "met"}
    case = engine.fire(case.id, "hand_to_custody", actor="zhou", data={"custody_case_no": "JY-2026-5"})
    assert case.state == "custody" and case.closed_at is not None
    assert world.sweep(2026, 10, 12) == []
    assert world.alerts(case.id) == [
        ("notify_family_after_obstacle", "warning", "zhou", bj(2026, 10, 2, 10, 30)),
        ("notify_family_after_obstacle", "overdue", "zhou", bj(2026, 10, 2, 11)),
        ("notify_family_after_obstacle", "escalated", "chen", bj(2026, 10, 2, 12)),
        ("arrest_request", "warning", "chen", bj(2026, 10, 3)),
    ]


def test_a_missed_family_notice_escalates_within_hours_on_a_holiday_night(world: World) -> None:
    engine = world.engine
    case = engine.open("criminal_detention", actor="zhou")
    world.at(2026, 10, 1, 8)
    engine.fire(case.id, "deliver_to_detention_centre", actor="zhou")
    engine.fire(case.id, "interrogate", actor="zhou")
    # Due 10-01 22:00 (National Day): overdue then, escalated to the leader at 23:00 — not a week later.
    assert world.sweep(2026, 10, 1, 16, 1) == [("notify_family", "warning", "zhou", bj(2026, 10, 1, 16))]
    assert world.sweep(2026, 10, 1, 22, 1) == [("notify_family", "overdue", "zhou", bj(2026, 10, 1, 22))]
    assert world.sweep(2026, 10, 1, 23, 1) == [("notify_family", "escalated", "chen", bj(2026, 10, 1, 23))]


def test_a_denied_arrest_releases_at_once_and_the_receipt_is_owed_within_three_days(world: World) -> None:
    # 刑事诉讼法 第九十一条第三款 "人民检察院不批准逮捕的，公安机关应当在接到通知后立即释放，并且将执行情况及时通知
    # 人民检察院"; 程序规定 第一百四十条 "在执行完毕后三日以内将执行回执送达作出不批准逮捕决定的人民检察院".
    engine = world.engine
    case = engine.open("criminal_detention", actor="zhou")
    world.at(2026, 10, 1, 8)
    for duty in ("deliver_to_detention_centre", "notify_family", "interrogate"):
        engine.fire(case.id, duty, actor="zhou")
    engine.fire(case.id, "request_arrest", actor="chen")
    world.at(2026, 10, 2, 16)
    case = engine.fire(case.id, "deny_arrest", actor="zhou", data={"decision_no": "检不捕〔2026〕3号"})
    assert case.state == "denied_released" and case.closed_at is None
    assert case.timer("procuratorate_decision").status == "met"
    receipt = case.timer("execution_receipt")
    # 3 days from 10-02 end on 10-05, a holiday; the person is free, so it moves to Thu 10-08 (第一百零五条).
    assert receipt.assignee == "zhou" and receipt.kind == "statutory" and receipt.last_day == date(2026, 10, 8)
    # The person is no longer held: the release of 第八十六条 is not the way out of this state.
    with pytest.raises(TransitionError, match="denied_released"):
        engine.fire(case.id, "release", actor="chen", data={"reason": "x"})
    world.at(2026, 10, 8, 11)
    with pytest.raises(CommandError, match="receipt_no"):
        engine.fire(case.id, "send_execution_receipt", actor="zhou")
    case = engine.fire(case.id, "send_execution_receipt", actor="zhou", data={"receipt_no": "回执-3"})
    assert case.state == "released" and case.timer("execution_receipt").status == "met"
    assert world.sweep(2026, 10, 12) == []
