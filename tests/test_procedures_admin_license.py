"""行政许可 (admin_license) under 行政许可法, across the 2026 National Day holiday (every limit in working days).

第三十二条: 补正 told within 5 working days, only before acceptance; untold, the application is accepted by
itself from receipt. 第四十二条: 20 working days, +10 with the head's approval and the applicant told; 45, +15
for 统一/联合/集中办理. 第四十五条: only its eight reasons stop the clock, each told in writing. 第四十七条:
5 days to ask for a hearing, 20 days to hold it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from caseflow.errors import CommandError, PermissionDeniedError, TimerError, TransitionError
from procedure_world import World, audited_world, bj
from storefixtures import db_url  # noqa: F401 - fixture

UNIT = "政务服务中心"
PEOPLE = (
    ("xian", "县长", "县人民政府", ("gov_head",), None),
    ("gao", "主任 高远", UNIT, ("head",), "xian"),
    ("ma", "窗口 马琳", UNIT, ("clerk",), "gao"),
    ("lin", "审查 林峰", UNIT, ("reviewer",), "gao"),
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:  # noqa: F811
    yield from audited_world(db_url, bj(2026, 9, 29, 10), PEOPLE)


def test_acceptance_is_deemed_by_itself_and_the_decision_counts_from_receipt(world: World) -> None:
    engine = world.engine
    case = engine.open("admin_license", actor="ma", data={"applicant": "某公司"})
    notice = case.timer("correction_notice")
    # Received Tue 09-29: 5 working days are 09-30, 10-08, 10-09, make-up Sat 10-10, Mon 10-12.
    assert notice.assignee == "ma" and notice.last_day == date(2026, 10, 12)
    # Warned one working day before it runs out: from the end of the make-up Saturday 10-10.
    assert notice.warn_at == bj(2026, 10, 11)
    assert world.sweep(2026, 10, 12, 8, 30) == [("correction_notice", "warning", "ma", bj(2026, 10, 11))]

    # Nobody acts. At 10-13 00:00 the scheduler fires deem_accept as the system, at the due instant.
    assert world.sweep(2026, 10, 13, 8, 30) == []
    case = world.case(case.id)
    assert case.state == "reviewing"
    assert case.timer("correction_notice").status == "breached"
    event = engine.history(case.id)[-1]
    assert (event.actor, event.trigger, event.at) == ("system", "deem_accept", bj(2026, 10, 13))
    decision = case.timer("decision")
    # 第三十二条第一款第(四)项 "自收到申请材料之日起即为受理": 20 working days from 09-29 end Mon 11-02.
    assert decision.started_at == bj(2026, 9, 29, 10) and decision.last_day == date(2026, 11, 2)
    assert decision.assignee == "lin"
    assert [i.timer for i in engine.queue("lin")] == ["decision"]

    # A correction notice after acceptance was deemed is refused.
    world.at(2026, 10, 13, 9)
    with pytest.raises(TransitionError, match="reviewing"):
        engine.fire(case.id, "notify_correction", actor="ma", data={"correction_items": "营业执照复印件"})
    assert world.sweep(2026, 11, 2, 8, 30) == [("decision", "warning", "lin", bj(2026, 10, 31))]
    world.at(2026, 11, 2, 15)
    case = engine.fire(case.id, "grant", actor="lin", data={"decision_no": "许可〔2026〕7号"})
    assert case.timer("decision").status == "met" and case.timer("delivery").assignee == "ma"


def test_correction_before_acceptance_only_hearing_and_written_notices(world: World) -> None:
    engine = world.engine
    case = engine.open("admin_license", actor="ma")
    world.at(2026, 9, 30, 10)
    case = engine.fire(case.id, "notify_correction", actor="ma", data={"correction_items": "场地平面图"})
    assert case.timer("correction_notice").status == "met"
    world.at(2026, 10, 9, 10)
    case = engine.fire(case.id, "accept", actor="ma", data={"certificate_no": "受〔2026〕31号"})
    # 20 working days from Fri 10-09: make-up Sat 10-10 is the first, Thu 11-05 the last.
    assert case.timer("decision").last_day == date(2026, 11, 5)

    # After acceptance 补正 stops nothing (第四十五条 lists eight reasons); those need the written notice.
    with pytest.raises(TimerError, match=r"补正.*听证"):
        engine.pause(case.id, "decision", reason="补正", actor="lin")
    with pytest.raises(CommandError, match="time_notice_no"):
        engine.pause(case.id, "decision", reason="检验", actor="lin")

    # 第四十七条: the right to a hearing is told; no decision while the 5 days run.
    world.at(2026, 10, 12, 10)
    case = engine.fire(case.id, "notify_hearing_right", actor="lin", data={"hearing_notice_no": "听告-3"})
    window = case.timer("hearing_request")
    assert window.assignee == "lin" and window.last_day == date(2026, 10, 19)
    with pytest.raises(TransitionError, match="hearing_offered"):
        engine.fire(case.id, "grant", actor="lin", data={"decision_no": "x"})
    world.at(2026, 10, 15, 10)
    case = engine.fire(case.id, "request_hearing", actor="ma")
    assert case.timer("hearing_request").status == "met"
    hearing = case.timer("hearing")
    # 20 working days from Thu 10-15: Thu 11-12.
    assert hearing.assignee == "lin" and hearing.last_day == date(2026, 11, 12)
    engine.pause(case.id, "decision", reason="听证", actor="lin", data={"time_notice_no": "时告-3"})
    world.at(2026, 10, 30, 10)
    case = engine.fire(case.id, "hold_hearing", actor="lin", data={"hearing_record_no": "听录-3"})
    assert case.state == "reviewing" and case.timer("hearing").status == "met"
    case = engine.resume(case.id, "decision", actor="lin")
    # 10-15 .. 10-29 excluded (11 working days): Thu 11-05 → Fri 11-20.
    assert case.timer("decision").last_day == date(2026, 11, 20)

    # 第四十二条: +10 working days by the head, the applicant told of the reason.
    world.at(2026, 11, 18, 10)
    with pytest.raises(PermissionDeniedError, match="head"):
        engine.extend(case.id, "decision", by="10 working_days", grounds="需现场核查", actor="lin",
                      data={"applicant_notified_on": "2026-11-18"})
    with pytest.raises(CommandError, match="applicant_notified_on"):
        engine.extend(case.id, "decision", by="10 working_days", grounds="需现场核查", actor="gao")
    case = engine.extend(case.id, "decision", by="10 working_days", grounds="需现场核查", actor="gao",
                         data={"applicant_notified_on": "2026-11-18"})
    assert case.timer("decision").last_day == date(2026, 12, 4)
    world.at(2026, 12, 1, 10)
    case = engine.fire(case.id, "grant", actor="lin", data={"decision_no": "许可〔2026〕9号"})
    assert case.timer("delivery").last_day == date(2026, 12, 15)
    world.at(2026, 12, 3, 10)
    case = engine.fire(case.id, "deliver", actor="ma")
    assert case.state == "delivered"
    assert world.sweep(2026, 12, 20) == []
    assert world.alerts(case.id) == []


def test_a_hearing_not_asked_for_within_five_days_is_refused_afterwards(world: World) -> None:
    engine = world.engine
    case = engine.open("admin_license", actor="ma")
    world.at(2026, 9, 29, 11)
    engine.fire(case.id, "accept", actor="ma", data={"certificate_no": "受〔2026〕32号"})
    world.at(2026, 9, 30, 10)
    case = engine.fire(case.id, "notify_hearing_right", actor="lin", data={"hearing_notice_no": "听告-4"})
    # 5 working days from Wed 09-30: 10-08, 10-09, 10-10, 10-12, Tue 10-13.
    assert case.timer("hearing_request").last_day == date(2026, 10, 13)
    assert world.sweep(2026, 10, 14, 8, 30) == []  # the window closing is nobody's lateness
    case = world.case(case.id)
    assert case.state == "reviewing" and case.timer("hearing_request").status == "cancelled"
    assert engine.history(case.id)[-1].trigger == "hearing_request_lapsed"
    world.at(2026, 10, 14, 9)
    with pytest.raises(TransitionError, match="request_hearing"):
        engine.fire(case.id, "request_hearing", actor="ma")


def test_joint_handling_has_45_days_and_the_government_head_extends(world: World) -> None:
    engine = world.engine
    case = engine.open("admin_license", actor="ma", data={"joint_handling": True})
    world.at(2026, 9, 29, 15)
    case = engine.fire(case.id, "accept", actor="ma", data={"certificate_no": "联办〔2026〕1号"})
    assert "decision" not in {t.name for t in case.timers}
    joint = case.timer("joint_decision")
    # 45 working days from Tue 09-29: 09-30, 10-08, 10-09, 10-10 (4), … 12-04 (44), Mon 12-07.
    assert joint.assignee == "lin" and joint.last_day == date(2026, 12, 7)
    with pytest.raises(PermissionDeniedError, match="gov_head"):
        engine.extend(case.id, "joint_decision", by="15 working_days", grounds="涉及部门多", actor="gao",
                      data={"applicant_notified_on": "2026-11-30"})
    case = engine.extend(case.id, "joint_decision", by="15 working_days", grounds="涉及部门多", actor="xian",
                         data={"applicant_notified_on": "2026-11-30"})
    assert case.timer("joint_decision").last_day == date(2026, 12, 28)


def test_a_letter_registered_late_counts_from_the_day_the_materials_were_received(world: World) -> None:
    # 第二十九条第三款: applications by letter; 第三十二条第一款第(四)项 counts the 5 days, and deemed acceptance,
    # "自收到申请材料之日起". A letter received Wed 09-30 is registered only on Fri 10-09, after the holiday.
    engine = world.engine
    world.at(2026, 10, 9, 10)
    with pytest.raises(CommandError, match="received_on=2026-10-10 lies after"):
        engine.open("admin_license", actor="ma", data={"received_on": "2026-10-10"})
    case = engine.open("admin_license", actor="ma", data={"received_on": "2026-09-30"})
    notice = case.timer("correction_notice")
    # 10-08, 10-09, make-up Sat 10-10, 10-12, Tue 10-13 — not five working days from the registration.
    assert notice.started_at == bj(2026, 9, 30) and notice.last_day == date(2026, 10, 13)
    # Nobody told 补正: at 10-14 00:00 the application is accepted by itself.
    assert world.sweep(2026, 10, 14, 0, 1) == []
    case = world.case(case.id)
    assert case.state == "reviewing" and case.timer("correction_notice").status == "breached"
    decision = case.timer("decision")
    # Deemed accepted from receipt: 20 working days from 09-30 end Tue 11-03.
    assert decision.started_at == bj(2026, 9, 30) and decision.last_day == date(2026, 11, 3)
