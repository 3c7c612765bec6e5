"""信访事项 (petition) under 信访工作条例(2022), across the 2026 National Day holiday.

Calendar days, not moved past a holiday for the units' duties (the 条例 has no roll-forward clause); the
5-working-day objection of 第二十三条第三款; 第三十四条's extension with the petitioner told; 复查/复核 asked
within 30 days of receiving the written answer (第三十五条、第三十六条) — a later request is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from caseflow.errors import CommandError, TransitionError
from procedure_world import World, audited_world, bj
from storefixtures import db_url  # noqa: F401 - fixture

PEOPLE = (
    ("ju", "市信访局 局长", "市信访局", ("rechecker",), None),
    ("qu", "县信访局 局长", "县信访局", ("reviewer",), "ju"),
    ("wu", "主任 吴芳", "信访办", ("head",), "qu"),
    ("he", "承办人 何静", "信访办", ("handler",), "wu"),
    ("xu", "接访员 徐东", "信访办", ("clerk",), "wu"),
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:  # noqa: F811
    yield from audited_world(db_url, bj(2026, 9, 3, 10), PEOPLE)


def test_intake_handling_and_a_review_window_that_closes_by_itself(world: World) -> None:
    engine = world.engine
    world.at(2026, 9, 18, 10)
    case = engine.open("petition", actor="xu", data={"applicant": "张某", "no": "XF-2026-201"})
    intake = case.timer("intake")
    # 15 days from Fri 09-18 end on Sat 10-03, inside the holiday: a unit's limit is not moved.
    assert intake.assignee == "xu" and intake.last_day == date(2026, 10, 3)
    assert "objection" not in {t.name for t in case.timers}  # not assigned from above
    world.at(2026, 9, 25, 10)
    case = engine.fire(case.id, "accept", actor="xu")
    handling = case.timer("handling")
    assert handling.assignee == "he" and handling.last_day == date(2026, 11, 24)

    # 第三十四条: up to 30 days more with the head's approval, the petitioner told of the reason.
    world.at(2026, 11, 16, 9)
    with pytest.raises(CommandError, match="petitioner_notified_on"):
        engine.extend(case.id, "handling", by="30 days", grounds="情况复杂", actor="wu")
    case = engine.extend(case.id, "handling", by="30 days", grounds="情况复杂", actor="wu",
                         data={"petitioner_notified_on": "2026-11-16"})
    assert case.timer("handling").last_day == date(2026, 12, 24)
    world.at(2026, 11, 20, 9)
    case = engine.fire(case.id, "answer", actor="he", data={"opinion_no": "信处〔2026〕201号"})
    # A review request before the answer has reached the petitioner is not possible.
    with pytest.raises(TransitionError, match="answered"):
        engine.fire(case.id, "request_review", actor="qu")
    world.at(2026, 11, 23, 10)
    case = engine.fire(case.id, "serve_answer", actor="xu", data={"answer_received_on": "2026-11-23"})
    window = case.timer("review_window")
    assert window.last_day == date(2026, 12, 23)

    # Nobody asks: at the end of the 30 days the case closes by itself; the window is nobody's lateness.
    assert world.sweep(2026, 12, 24, 0, 1) == []
    case = world.case(case.id)
    assert case.state == "closed" and case.timer("review_window").status == "cancelled"
    assert engine.history(case.id)[-1].actor == "system"
    world.at(2026, 12, 24, 9)
    with pytest.raises(CommandError, match="closed"):
        engine.fire(case.id, "request_review", actor="qu")
    assert world.alerts(case.id) == []


def test_a_window_ending_in_the_holiday_runs_to_the_next_working_day_and_the_review_is_timed(world: World) -> None:
    engine = world.engine
    case = engine.open("petition", actor="xu")
    engine.fire(case.id, "accept", actor="xu")
    engine.fire(case.id, "answer", actor="he", data={"opinion_no": "信处〔2026〕150号"})
    case = engine.fire(case.id, "serve_answer", actor="xu", data={"answer_received_on": "2026-09-03"})
    # 30 days from 09-03 end on 10-03, a holiday: the petitioner's period runs to Thu 10-08.
    assert case.timer("review_window").last_day == date(2026, 10, 8)
    world.at(2026, 10, 8, 15)
    case = engine.fire(case.id, "request_review", actor="qu")
    assert case.timer("review_window").status == "met"
    review = case.timer("review")
    # 30 days from 10-08 end on Sat 11-07: the unit's limit is not moved.
    assert review.assignee == "qu" and review.last_day == date(2026, 11, 7)
    assert world.sweep(2026, 11, 7, 0, 1) == [("review", "warning", "qu", bj(2026, 11, 7))]
    assert world.sweep(2026, 11, 8, 0, 1) == [("review", "overdue", "qu", bj(2026, 11, 8))]
    assert world.sweep(2026, 11, 9, 0, 1) == [("review", "escalated", "ju", bj(2026, 11, 9))]
    world.at(2026, 11, 9, 10)
    case = engine.fire(case.id, "answer_review", actor="qu", data={"opinion_no": "复查〔2026〕9号"})
    assert case.timer("review").status == "breached"
    case = engine.fire(case.id, "serve_review", actor="qu", data={"answer_received_on": "2026-11-09"})
    assert case.timer("recheck_window").last_day == date(2026, 12, 9)
    world.at(2026, 11, 30, 10)
    case = engine.fire(case.id, "request_recheck", actor="ju")
    assert case.timer("recheck").assignee == "ju" and case.timer("recheck").last_day == date(2026, 12, 30)


def test_a_matter_assigned_from_above_may_be_objected_to_within_five_working_days(world: World) -> None:
    engine = world.engine
    world.at(2026, 9, 29, 10)
    case = engine.open("petition", actor="xu", data={"assigned_in": "true"})
    objection = case.timer("objection")
    # Received Tue 09-29: 09-30, (国庆) 10-08, 10-09, make-up Sat 10-10, Mon 10-12.
    assert objection.assignee == "xu" and objection.last_day == date(2026, 10, 12)
    assert world.sweep(2026, 10, 12, 8, 30) == [("objection", "warning", "xu", bj(2026, 10, 11))]
    world.at(2026, 10, 12, 10)
    with pytest.raises(CommandError, match="objection_reason"):
        engine.fire(case.id, "object", actor="xu")
    case = engine.fire(case.id, "object", actor="xu", data={"objection_reason": "属于自然资源部门职权"})
    assert case.state == "objecting" and case.timer("objection").status == "met"
    world.at(2026, 10, 13, 10)
    case = engine.fire(case.id, "objection_upheld", actor="wu")
    assert case.state == "returned" and case.timer("intake").status == "cancelled"


def test_the_petitioners_thirty_days_count_from_the_day_they_received_the_answer(world: World) -> None:
    # 第三十五条 "可以自收到书面答复之日起30日内请求……复查": the answer reached the petitioner by post on 09-04;
    # the clerk records the receipt slip only on 09-10. The 30 days run from 09-04 (to 10-04, a holiday: the
    # petitioner's period goes on to Thu 10-08), not from the day it was recorded (which would give 10-12).
    engine = world.engine
    case = engine.open("petition", actor="xu")
    engine.fire(case.id, "accept", actor="xu")
    engine.fire(case.id, "answer", actor="he", data={"opinion_no": "信处〔2026〕151号"})
    world.at(2026, 9, 10, 10)
    with pytest.raises(CommandError, match="answer_received_on=2026-09-11 lies after"):
        engine.fire(case.id, "serve_answer", actor="xu", data={"answer_received_on": "2026-09-11"})
    case = engine.fire(case.id, "serve_answer", actor="xu", data={"answer_received_on": "2026-09-04"})
    window = case.timer("review_window")
    assert window.started_at == bj(2026, 9, 4) and window.last_day == date(2026, 10, 8)
    # The window closes at the end of 10-08; a request on 10-09 is refused.
    assert world.sweep(2026, 10, 9, 0, 1) == []
    assert world.case(case.id).state == "closed"
