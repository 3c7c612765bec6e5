"""侦查羁押期限 (investigative_custody): months after arrest, across the 2026 National Day holiday.

刑事诉讼法 第一百五十六条 (2 months, +1 approved by the procuratorate one level up), 第一百五十八条 (+2 on the
listed grounds), 第一百六十条 (recounted from the discovery of another major crime); 刑诉解释 第二百零二条
(month ends); 第一百零五条: in custody a limit is never moved past a holiday.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from caseflow.errors import CommandError, PermissionDeniedError, TimerError
from procedure_world import World, audited_world, bj
from storefixtures import db_url  # noqa: F401 - fixture

PEOPLE = (
    ("chen", "大队长 陈刚", "刑侦大队", ("leader",), None),
    ("zhou", "侦查员 周勇", "刑侦大队", ("investigator",), "chen"),
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:  # noqa: F811
    yield from audited_world(db_url, bj(2026, 8, 5, 15), PEOPLE)


def test_two_months_end_inside_the_holiday_and_extensions_follow_the_articles(world: World) -> None:
    engine = world.engine
    case = engine.open("investigative_custody", actor="zhou", data={"applicant": "某乙", "warrant_no": "捕-31"})
    custody = case.timer("custody")
    # Arrested 08-05: two months end on 10-05, a National Day holiday — in custody it is not moved.
    assert custody.assignee == "zhou" and custody.last_day == date(2026, 10, 5)
    assert custody.due_at == bj(2026, 10, 6)
    # Warned 10 days ahead (the request must reach the procuratorate 7 days before: 程序规定 第一百四十八条).
    assert world.sweep(2026, 9, 25, 23) == []
    assert world.sweep(2026, 9, 26, 0, 5) == [("custody", "warning", "zhou", bj(2026, 9, 26))]

    world.at(2026, 9, 27, 10)
    with pytest.raises(CommandError, match="approval_no"):
        engine.extend(case.id, "custody", by="1 months", grounds="案情复杂", actor="chen")
    with pytest.raises(PermissionDeniedError, match="leader"):
        engine.extend(case.id, "custody", by="1 months", grounds="案情复杂", actor="zhou",
                      data={"approval_no": "检延-1"})
    with pytest.raises(TimerError, match="at most 1"):
        engine.extend(case.id, "custody", by="2 months", grounds="案情复杂", actor="chen",
                      data={"approval_no": "检延-1"})
    case = engine.extend(case.id, "custody", by="1 months", grounds="案情复杂", actor="chen",
                         data={"approval_no": "检延-1"})
    assert case.timer("custody").last_day == date(2026, 11, 5)
    world.at(2026, 10, 28, 10)
    case = engine.extend(case.id, "custody", by="2 months", grounds="重大的犯罪集团案件", actor="chen",
                         data={"approval_no": "省检延-1"})
    # 2 + 1 + 2 months from 08-05.
    assert case.timer("custody").last_day == date(2027, 1, 5)

    world.at(2026, 12, 1, 10)
    case = engine.fire(case.id, "conclude", actor="zhou", data={"transfer_no": "起诉意见书〔2026〕9号"})
    assert case.state == "concluded" and case.timer("custody").status == "met"
    assert world.sweep(2026, 12, 10) == []
    assert world.alerts(case.id) == [("custody", "warning", "zhou", bj(2026, 9, 26))]


def test_another_major_crime_recounts_from_its_discovery(world: World) -> None:
    engine = world.engine
    case = engine.open("investigative_custody", actor="zhou")
    world.at(2026, 9, 30, 11)
    with pytest.raises(PermissionDeniedError, match="leader"):
        engine.fire(case.id, "recount", actor="zhou", data={"crime_found_on": "2026-09-30", "reason": "另有抢劫"})
    case = engine.fire(case.id, "recount", actor="chen", data={"crime_found_on": "2026-09-30", "reason": "另有抢劫"})
    # The old count does not apply any more; two new months from 09-30 (刑诉解释: last day → last day).
    assert case.timer("custody").status == "cancelled"
    recount = case.timer("custody_recount")
    assert recount.status == "running" and recount.assignee == "zhou"
    assert recount.last_day == date(2026, 11, 30)
    # Not concluded: overdue at 12-01 00:00, escalated to the leader a day later.
    assert world.sweep(2026, 11, 21, 0, 1) == [("custody_recount", "warning", "zhou", bj(2026, 11, 21))]
    assert world.sweep(2026, 12, 1, 0, 1) == [("custody_recount", "overdue", "zhou", bj(2026, 12, 1))]
    assert world.sweep(2026, 12, 2, 0, 1) == [("custody_recount", "escalated", "chen", bj(2026, 12, 2))]


def test_the_recount_runs_from_the_discovery_not_from_the_approval(world: World) -> None:
    # 刑事诉讼法 第一百六十条 "自发现之日起……重新计算"; 程序规定 第一百五十一条: approved within five days of the
    # discovery. Found on 09-28, approved on 10-02: the two months end on 11-28, not 12-02 — counting from the
    # approval would hold the suspect four days past the law.
    engine = world.engine
    case = engine.open("investigative_custody", actor="zhou")
    world.at(2026, 10, 2, 10)
    with pytest.raises(CommandError, match="crime_found_on=2026-10-03 lies after"):
        engine.fire(case.id, "recount", actor="chen", data={"crime_found_on": "2026-10-03", "reason": "另有抢劫"})
    case = engine.fire(case.id, "recount", actor="chen", data={"crime_found_on": "2026-09-28", "reason": "另有抢劫"})
    recount = case.timer("custody_recount")
    assert recount.started_at == bj(2026, 9, 28) and recount.last_day == date(2026, 11, 28)
    assert recount.due_at == bj(2026, 11, 29)


def test_a_case_opened_after_the_arrest_counts_from_the_arrest(world: World) -> None:
    # 第一百五十六条 "逮捕后的侦查羁押期限不得超过二个月": arrested 08-05, the custody case opened on 08-12.
    world.at(2026, 8, 12, 9)
    case = world.engine.open("investigative_custody", actor="zhou", data={"arrested_on": "2026-08-05"})
    custody = case.timer("custody")
    assert custody.started_at == bj(2026, 8, 5) and custody.last_day == date(2026, 10, 5)


def test_a_month_end_arrest_ends_on_the_last_day_of_the_final_month(db_url: str) -> None:  # noqa: F811
    w = World(db_url, bj(2026, 6, 30, 9), PEOPLE)
    try:
        case = w.engine.open("investigative_custody", actor="zhou")
        # 刑诉解释 第二百零二条 "期限起算日为本月最后一日的，至下月最后一日为一个月": 06-30 → 08-31, not 08-30.
        assert case.timer("custody").last_day == date(2026, 8, 31)
    finally:
        w.close()


def test_a_psychiatric_assessment_stops_the_custody_clock_and_no_other_reason_does(world: World) -> None:
    # 刑事诉讼法 第一百四十九条 "对犯罪嫌疑人作精神病鉴定的期间不计入办案期限"; 程序规定 第二百五十七条 "其他鉴定
    # 时间都应当计入办案期限".
    engine = world.engine
    case = engine.open("investigative_custody", actor="zhou", data={"applicant": "某丙"})
    assert case.timer("custody").last_day == date(2026, 10, 5)
    world.at(2026, 9, 1, 9)
    with pytest.raises(TimerError, match="精神病鉴定"):
        engine.pause(case.id, "custody", reason="鉴定", actor="zhou")
    engine.pause(case.id, "custody", reason="精神病鉴定", actor="zhou")
    world.at(2026, 9, 11, 9)
    case = engine.resume(case.id, "custody", actor="zhou")
    # 09-01 … 09-10 (ten days) are not counted: the two months end ten days later, still not moved past a
    # holiday or a weekend (10-15 is a Thursday; the point is the ten days).
    assert case.timer("custody").last_day == date(2026, 10, 15)


def test_an_unidentified_suspect_counts_from_the_day_the_identity_is_established(world: World) -> None:
    # 刑事诉讼法 第一百六十条第二款 "侦查羁押期限自查清其身份之日起计算"; 程序规定 第一百五十二条 "经县级以上公安
    # 机关负责人批准". Arrested 08-05; identity unknown, approved 08-10; established 09-28, recorded 09-30.
    engine = world.engine
    case = engine.open("investigative_custody", actor="zhou")
    world.at(2026, 8, 10, 9)
    with pytest.raises(PermissionDeniedError, match="leader"):
        engine.fire(case.id, "identity_unknown", actor="zhou", data={"reason": "拒不供述真实姓名"})
    case = engine.fire(case.id, "identity_unknown", actor="chen", data={"reason": "拒不供述真实姓名"})
    # The months from the arrest do not run while the identity is unknown (no overdue on 10-06).
    assert case.state == "identity_pending" and case.timer("custody").status == "cancelled"
    assert world.sweep(2026, 10, 6, 0, 1) == []
    world.at(2026, 9, 30, 10)
    case = engine.fire(case.id, "identity_established", actor="zhou",
                       data={"identity_established_on": "2026-09-28"})
    timer = case.timer("custody_identity")
    assert case.state == "identified" and timer.started_at == bj(2026, 9, 28)
    assert timer.last_day == date(2026, 11, 28)  # in custody: not moved (a Saturday)
    # Another major crime found afterwards recounts from its discovery, and a second one again.
    world.at(2026, 10, 20, 10)
    case = engine.fire(case.id, "recount", actor="chen", data={"crime_found_on": "2026-10-19", "reason": "另有抢劫"})
    assert case.timer("custody_identity").status == "cancelled"
    assert case.timer("custody_recount").last_day == date(2026, 12, 19)
    world.at(2026, 11, 2, 10)
    case = engine.fire(case.id, "recount", actor="chen", data={"crime_found_on": "2026-11-01", "reason": "另有绑架"})
    rounds = [t for t in case.timers if t.name == "custody_recount"]
    assert [t.status for t in rounds] == ["cancelled", "running"] and rounds[-1].last_day == date(2027, 1, 1)


def test_a_suggestion_to_release_is_answered_within_ten_days(world: World) -> None:
    # 刑事诉讼法 第九十五条 "有关机关应当在十日以内将处理情况通知人民检察院"; 程序规定 第一百五十九条 "认为需要继续
    # 羁押的，应当说明理由".
    engine = world.engine
    case = engine.open("investigative_custody", actor="zhou")
    world.at(2026, 9, 25, 10)
    case = engine.fire(case.id, "receive_release_suggestion", actor="zhou", data={"suggestion_no": "检羁建〔2026〕4号"})
    handling = case.timer("suggestion_handling")
    # 10 days from 09-25 end on 10-05, inside 国庆: the suspect is held, the day is not moved.
    assert handling.assignee == "zhou" and handling.last_day == date(2026, 10, 5)
    assert case.timer("custody").status == "running"  # the custody months run on
    world.at(2026, 10, 3, 10)
    with pytest.raises(CommandError, match="reason"):
        engine.fire(case.id, "notify_suggestion_handling", actor="zhou", data={"handling_notice_no": "通-1"})
    case = engine.fire(case.id, "notify_suggestion_handling", actor="zhou",
                       data={"handling_notice_no": "通-1", "reason": "可能毁灭证据，需要继续羁押"})
    assert case.timer("suggestion_handling").status == "met"
    # A second suggestion, answered by releasing the suspect: released is the handling.
    world.at(2026, 10, 20, 10)
    engine.fire(case.id, "receive_release_suggestion", actor="zhou", data={"suggestion_no": "检羁建〔2026〕9号"})
    case = engine.fire(case.id, "release", actor="chen", data={"reason": "变更为取保候审"})
    assert [t.status for t in case.timers if t.name == "suggestion_handling"] == ["met", "met"]
