"""政府信息公开申请 (gov_info_disclosure) under the 2019 条例, across the 2026 National Day holiday.

第三十条: 补正 told at once within 7 working days; the reply then counts from the corrected application.
第三十三条: 20 working days, +20 with the head of the 公开工作机构's consent, the applicant told; time spent
consulting a third party or another agency does not count.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from caseflow.errors import CommandError, PermissionDeniedError, TimerError, TransitionError
from procedure_world import World, audited_world, bj
from storefixtures import db_url  # noqa: F401 - fixture

UNIT = "县政府办公室"
PEOPLE = (
    ("gao", "主任 高远", UNIT, ("head",), None),
    ("ma", "工作人员 马琳", UNIT, ("clerk",), "gao"),
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:  # noqa: F811
    yield from audited_world(db_url, bj(2026, 9, 29, 10), PEOPLE)


def test_a_clear_application_consulted_and_extended(world: World) -> None:
    engine = world.engine
    case = engine.open("gov_info_disclosure", actor="ma", data={"applicant": "李某", "no": "YS-2026-31"})
    # Received Tue 09-29. 7 working days: 09-30, (国庆) 10-08, 10-09, make-up Sat 10-10, 10-12, 10-13, 10-14.
    assert case.timer("correction_notice").last_day == date(2026, 10, 14)
    # 20 working days: … 10-30 (19), Mon 11-02 (20).
    assert case.timer("reply").last_day == date(2026, 11, 2)
    assert {t.assignee for t in case.timers} == {"ma"}

    world.at(2026, 9, 30, 9)
    case = engine.fire(case.id, "confirm_clear", actor="ma")
    assert case.timer("correction_notice").status == "cancelled"  # no correction was needed: 不适用
    assert case.timer("reply").status == "running"

    # Third-party consultation does not count, and the consultation letter is recorded.
    world.at(2026, 10, 9, 10)
    with pytest.raises(CommandError, match="consultation_no"):
        engine.pause(case.id, "reply", reason="征求第三方意见", actor="ma")
    with pytest.raises(TimerError, match="征求第三方意见"):
        engine.pause(case.id, "reply", reason="补正", actor="ma")
    engine.pause(case.id, "reply", reason="征求第三方意见", actor="ma", data={"consultation_no": "征-7"})
    world.at(2026, 10, 20, 9)
    case = engine.resume(case.id, "reply", actor="ma")
    # 10-09 .. 10-19 excluded: its 8 working days (10-09, make-up Sat 10-10, 10-12..16, 10-19) are added:
    # Mon 11-02 → Thu 11-12.
    assert case.timer("reply").last_day == date(2026, 11, 12)

    # +20 working days with the head's consent; the applicant must have been told.
    world.at(2026, 11, 11, 9)
    with pytest.raises(PermissionDeniedError, match="head"):
        engine.extend(case.id, "reply", by="20 working_days", grounds="信息量大", actor="ma",
                      data={"applicant_notified_on": "2026-11-12"})
    with pytest.raises(CommandError, match="applicant_notified_on"):
        engine.extend(case.id, "reply", by="20 working_days", grounds="信息量大", actor="gao")
    with pytest.raises(TimerError, match="at most 20"):
        engine.extend(case.id, "reply", by="21 working_days", grounds="信息量大", actor="gao",
                      data={"applicant_notified_on": "2026-11-12"})
    case = engine.extend(case.id, "reply", by="20 working_days", grounds="信息量大", actor="gao",
                         data={"applicant_notified_on": "2026-11-12"})
    # 20 more working days after Thu 11-12: Thu 12-10.
    assert case.timer("reply").last_day == date(2026, 12, 10)
    with pytest.raises(TimerError, match="1 time"):
        engine.extend(case.id, "reply", by="1 working_days", grounds="信息量大", actor="gao",
                      data={"applicant_notified_on": "2026-11-12"})

    # Warned on the morning of the last working day (one working day before it runs out), to the clerk.
    assert world.sweep(2026, 12, 9, 12) == []
    assert world.sweep(2026, 12, 10, 0, 1) == [("reply", "warning", "ma", bj(2026, 12, 10))]
    world.at(2026, 12, 10, 15)
    case = engine.fire(case.id, "reply", actor="ma", data={"reply_no": "公开答复〔2026〕31号"})
    assert case.state == "replied" and case.timer("reply").status == "met"
    assert world.sweep(2026, 12, 20) == []
    assert world.alerts(case.id) == [("reply", "warning", "ma", bj(2026, 12, 10))]


def test_a_correction_restarts_the_reply_from_the_corrected_application(world: World) -> None:
    engine = world.engine
    case = engine.open("gov_info_disclosure", actor="ma", data={"applicant": "赵某"})
    # The correction notice is due by the end of Wed 10-14; warned one working day before (from 10-14 00:00).
    assert world.sweep(2026, 10, 14, 0, 1) == [("correction_notice", "warning", "ma", bj(2026, 10, 14))]
    world.at(2026, 10, 14, 16)
    with pytest.raises(CommandError, match="correction_items"):
        engine.fire(case.id, "notify_correction", actor="ma")
    case = engine.fire(case.id, "notify_correction", actor="ma",
                       data={"correction_items": "请明确所需信息的名称、文号或者便于查询的其他特征描述，10日内补正"})
    assert case.timer("correction_notice").status == "met"
    # 第三十条: the reply no longer counts from receipt — that clock does not apply (not "met").
    assert case.timer("reply").status == "cancelled"
    world.at(2026, 10, 20, 10)
    case = engine.fire(case.id, "receive_correction", actor="ma")
    after = case.timer("reply_after_correction")
    # 20 working days from Tue 10-20: … Tue 11-17.
    assert after.status == "running" and after.assignee == "ma" and after.last_day == date(2026, 11, 17)
    # Not replied: warned on its last day, overdue to the clerk at 11-18 00:00, escalated to the head a
    # working day later.
    assert world.sweep(2026, 11, 17, 0, 1) == [("reply_after_correction", "warning", "ma", bj(2026, 11, 17))]
    assert world.sweep(2026, 11, 18, 0, 1) == [("reply_after_correction", "overdue", "ma", bj(2026, 11, 18))]
    assert world.sweep(2026, 11, 19, 0, 1) == [("reply_after_correction", "escalated", "gao", bj(2026, 11, 19))]
    world.at(2026, 11, 19, 10)
    case = engine.fire(case.id, "reply", actor="gao", data={"reply_no": "公开答复〔2026〕40号"})
    assert case.timer("reply_after_correction").status == "breached"
    assert [a[:3] for a in world.alerts(case.id)] == [
        ("correction_notice", "warning", "ma"),
        ("reply_after_correction", "warning", "ma"),
        ("reply_after_correction", "overdue", "ma"),
        ("reply_after_correction", "escalated", "gao"),
    ]


def test_a_letter_signed_for_before_the_holiday_counts_from_that_day(world: World) -> None:
    # 第三十一条(二) "以行政机关签收之日为收到申请之日": signed for on Wed 09-30, registered on Fri 10-09 —
    # further back than commands may be back-dated. Both limits count from 09-30.
    engine = world.engine
    world.at(2026, 10, 9, 10)
    with pytest.raises(CommandError, match="received_on=2026-10-10 lies after"):
        engine.open("gov_info_disclosure", actor="ma", data={"received_on": "2026-10-10"})
    case = engine.open("gov_info_disclosure", actor="ma", data={"applicant": "钱某", "received_on": "2026-09-30"})
    # 7 working days: 10-08, 10-09, make-up Sat 10-10, 10-12, 10-13, 10-14, Thu 10-15.
    assert case.timer("correction_notice").last_day == date(2026, 10, 15)
    # 20 working days: … 10-30 (18), 11-02 (19), Tue 11-03 (20).
    assert case.timer("reply").started_at == bj(2026, 9, 30)
    assert case.timer("reply").last_day == date(2026, 11, 3)


def test_an_applicant_who_does_not_correct_has_abandoned_the_application(world: World) -> None:
    engine = world.engine
    case = engine.open("gov_info_disclosure", actor="ma")
    case = engine.fire(case.id, "notify_correction", actor="ma", data={"correction_items": "申请内容不明确"})
    with pytest.raises(TransitionError, match="awaiting_correction"):
        engine.fire(case.id, "reply", actor="ma", data={"reply_no": "x"})
    world.at(2026, 10, 30, 9)
    case = engine.fire(case.id, "deem_abandoned", actor="ma", data={"reason": "逾期未补正"})
    assert case.state == "abandoned" and case.closed_at is not None
    assert {t.name: t.status for t in case.timers} == {"correction_notice": "met", "reply": "cancelled"}
