"""The window around the clock: visits, 一次告知单, 当场办结, acceptance, ratings and their follow-up.

Scenario tests on a simulated clock (FixedClock), on SQLite and PostgreSQL (``db_url``). The rules are the
seeds' (shared/seeds/000: 户籍 四(五)、六(一); 出入境 10; 交巡警 18/22) and 行政许可法 第三十二条(四).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from caseflow.alerts import AlertRow, OutboxRow
from caseflow.appointments import AppointmentError, Appointments
from caseflow.cli import cli
from caseflow.clock import FixedClock
from caseflow.config import NotifyConfig
from caseflow.desk import Desk, DeskError, VisitRow, code_hash, mask_id_number
from caseflow.digest import build_digest, render_digest
from caseflow.engine import Engine
from caseflow.errors import PermissionDeniedError, WorkflowError
from caseflow.materials import materials_digest, parse_materials
from caseflow.publicity import RateLimiter, procedure_page, progress
from caseflow.ratings import RatingError, Ratings
from caseflow.registry import WorkflowRegistry
from caseflow.scheduler import Scheduler
from caseflow.scoring import ScoringError, ScoringRules, scorecard
from caseflow.store import Store
from caseflow.windowstats import window_stats
from caseflow.workflowfile import parse_workflow
from procedure_world import Recorder
from storefixtures import db_url  # noqa: F401 - the fixture

BJ = ZoneInfo("Asia/Shanghai")
UNIT = "城关派出所"
ALICE = "110101199003071234"
BOB = "32010219850512432X"
CAROL = "440301200101010011"


def bj(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BJ)  # type: ignore[misc]


class Window:
    """An engine, desk and ratings over one store, on a clock the test moves; warnings are kept."""

    def __init__(self, url: str, registry: WorkflowRegistry | None = None) -> None:
        self.clock = FixedClock(bj(2026, 11, 2, 9, 0))
        self.store = Store(url)
        self.engine = Engine(self.store, clock=self.clock, registry=registry)
        self.told: list[tuple[str, str, str]] = []
        self.desk = Desk(self.engine, notify=lambda *m: self.told.append(m))
        self.ratings = Ratings(self.engine, notify=lambda *m: self.told.append(m))
        add = self.engine.add_person
        add("ju", name="赵局长", unit="县公安局", roles=["head"])
        add("zhang", name="张所长", unit=UNIT, roles=["station_leader"], leader="ju")
        add("li", name="李警官", unit=UNIT, roles=["household_police", "clerk"], leader="zhang")

    def at(self, *parts: int) -> None:
        self.clock.set(bj(*parts))


@pytest.fixture
def window(db_url: str) -> Window:  # noqa: F811
    return Window(db_url)


def test_incomplete_file_to_notice_to_acceptance_to_bad_rating_and_an_escalated_follow_up(window: Window) -> None:
    desk, engine = window.desk, window.engine
    # Monday 09:00: the applicant brings ID card and 户口簿; moving in with the spouse, so 结婚证 applies.
    first = desk.visit("hukou_transfer", applicant_id=ALICE, actor="li", brought=["id_card", "household_register"],
                       applies=["marriage_cert"])
    assert first.number == 1 and first.applicant == "**************1234"
    assert [m.key for m in first.missing] == ["transfer_permit", "marriage_cert"]
    with pytest.raises(DeskError, match="lacks 户口迁移证或准予迁入证明、结婚证"):
        desk.accept(first.id, actor="li")

    notice = desk.issue_notice(first.id, actor="li")
    text = notice.to_text()
    assert notice.number == f"GZ20261102-{notice.id:06d}"
    assert "1. 户口迁移证或准予迁入证明\n   获取途径:迁出地/迁入地户口登记机关  依据:户口登记条例 第十三条" in text
    assert "2. 结婚证(投靠配偶迁入的)" in text and "3." not in text
    assert ALICE not in text and "**************1234" in text
    assert notice.query_code is not None and f"查询码:{notice.query_code}" in text
    assert desk.notice(notice.number).query_code is None  # the code is stored hashed only
    assert window.told == []  # the first visit of two: no warning

    # Tuesday: the second visit brings everything; the file is accepted with a receipt.
    window.at(2026, 11, 3, 10, 0)
    second = desk.visit("hukou_transfer", applicant_id=ALICE, actor="li",
                        brought=["id_card", "household_register", "transfer_permit", "marriage_cert"],
                        applies=["marriage_cert"])
    assert second.number == 2 and second.complete and second.warning is None
    receipt = desk.accept(second.id, actor="li", data={"applicant": "王五"})
    case = receipt.case
    assert case.state == "accepted" and case.data["visit_id"] == second.id
    assert desk.get_visit(second.id).outcome == "accepted" and desk.get_visit(second.id).case_id == case.id
    assert receipt.query_code != notice.query_code and "受理回执" in receipt.to_text("户口迁移")
    with pytest.raises(RatingError, match="not finished"):
        window.ratings.rate_by_code(receipt.query_code, "满意")

    # The complete file goes to the leader and is finished on Thursday.
    engine.fire(case.id, "submit_for_approval", actor="li")
    window.at(2026, 11, 4, 9, 0)
    engine.fire(case.id, "approve_at_station", actor="zhang")
    window.at(2026, 11, 5, 9, 0)
    done = engine.fire(case.id, "complete", actor="li")
    assert done.closed_at == bj(2026, 11, 5, 9, 0)

    # The applicant rates 不满意 with the code of the first 告知单: it leads to the same case now.
    window.at(2026, 11, 5, 18, 0)
    rating = window.ratings.rate_by_code(notice.query_code.lower(), "不满意", comment="等太久")
    assert rating.case_id == case.id and rating.bad and rating.person == "li"
    with pytest.raises(RatingError, match="一次一评"):
        window.ratings.rate(case_id=case.id, level=5, actor="li")
    followup = engine.get(rating.followup_case_id or 0)
    assert followup.workflow == "service_followup" and followup.responsible == "zhang"
    # 5 working days from Thursday 11-05: Fri 6, Mon 9, Tue 10, Wed 11, Thu 12.
    assert followup.timer("followup").last_day.isoformat() == "2026-11-12"
    assert window.told[-1][:2] == ("zhang", "差评回访整改")

    # Nobody follows it up: overdue on Friday 11-13 00:00, escalated to 张所长's leader a working day later.
    config = NotifyConfig.from_dict({"channels": {"rec": {"url": "log://"}}, "scheduler": {"default_channel": "rec"}})
    scheduler = Scheduler(window.store, config, clock=window.clock)
    scheduler.sweep(bj(2026, 11, 13, 8, 0))
    scheduler.sweep(bj(2026, 11, 17, 8, 0))
    with window.store.session() as s:
        alerts = s.execute(sa.select(AlertRow.level, AlertRow.to_person).where(
            AlertRow.case_id == followup.id).order_by(AlertRow.id)).all()
    assert [tuple(a) for a in alerts if a[0] != "warning"] == [("overdue", "zhang"), ("escalated", "ju")]

    # The leader records the outcome (整改); the statistics count it.
    window.at(2026, 11, 17, 9, 0)
    settled = window.ratings.settle(rating.id, "整改", actor="zhang", note="已回访致歉,窗口增设叫号")
    assert settled.state == "rectified" and settled.closed_at is not None
    unit, total = window_stats(window.store, month="2026-11")
    figures = total.to_dict()
    assert unit.key == UNIT
    assert figures["visits"] == 2 and figures["notices"] == 1 and figures["accepted"] == 1
    assert figures["first_visit_rate"] == 0.0 and figures["at_most_one_trip_rate"] == 1.0
    assert figures["ratings"] == 1 and figures["bad"] == 1 and figures["good_rate"] == 0.0
    assert figures["followed_up_rate"] == 1.0 and figures["rectified_rate"] == 1.0


def test_on_the_spot_case_opens_and_closes_in_one_command_and_counts_as_ji_ban(window: Window) -> None:
    visit = window.desk.visit("hukou_transfer", applicant_id=BOB, actor="li",
                              brought=["id_card", "household_register", "transfer_permit"])
    receipt = window.desk.handle_on_the_spot(visit.id, actor="li")
    assert receipt.on_the_spot and receipt.case.closed_at == bj(2026, 11, 2, 9, 0)
    assert window.engine.get(receipt.case.id).closed_at is not None
    with pytest.raises(DeskError, match="already settled"):
        window.desk.accept(visit.id, actor="li")
    rating = window.ratings.rate(visit_id=visit.id, level="非常满意", actor="li")
    assert rating.case_id == receipt.case.id and rating.followup_case_id is None
    figures = window_stats(window.store, month="2026-11")[-1].to_dict()
    assert figures["on_the_spot"] == 1 and figures["first_visit_rate"] == 1.0 and figures["good_rate"] == 1.0


def _written(store: Store) -> dict[str, int]:
    """How many rows each table of the window and the case record holds."""
    with store.session() as s:
        return {t: s.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("caseflow_cases", "caseflow_events", "caseflow_timers", "caseflow_visits",
                          "caseflow_query_codes")}


def test_on_the_spot_in_one_call_records_the_visit_and_the_closed_case_together(window: Window) -> None:
    complete = ["id_card", "household_register", "transfer_permit"]
    receipt = window.desk.on_the_spot("hukou_transfer", applicant_id=BOB, actor="li", brought=complete,
                                      data={"applicant": "王五"})
    assert receipt.on_the_spot and receipt.visit.outcome == "on_the_spot" and receipt.visit.number == 1
    assert receipt.case.closed_at == bj(2026, 11, 2, 9, 0) and receipt.case.data["visit_id"] == receipt.visit.id
    assert [e.kind for e in window.engine.history(receipt.case.id)] == ["open", "close"]
    assert progress(window.engine, receipt.query_code)["status_label"] == "已办结"  # type: ignore[index]
    assert window.engine.verify_audit() == []  # the chain and the replay through the definition agree
    # An incomplete file is refused with nothing written: no visit, no case.
    before = _written(window.store)
    with pytest.raises(DeskError, match="cannot be handled on the spot"):
        window.desk.on_the_spot("hukou_transfer", applicant_id=ALICE, actor="li", brought=["id_card"])
    assert _written(window.store) == before
    figures = window_stats(window.store, month="2026-11")[-1].to_dict()
    assert figures["on_the_spot"] == 1 and figures["visits"] == 1


def test_a_failure_midway_through_on_the_spot_leaves_nothing_half_written(window: Window,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    notice = window.desk.issue_notice(window.desk.visit("hukou_transfer", applicant_id=ALICE, actor="li").id,
                                      actor="li")
    complete = ["id_card", "household_register", "transfer_permit"]
    visit = window.desk.visit("hukou_transfer", applicant_id=BOB, actor="li", brought=complete)
    before = _written(window.store)
    # Every query code drawn clashes with the notice's: the case, both events, the timers and the visit's
    # outcome are written in the transaction that then fails on the code — all of it is rolled back.
    monkeypatch.setattr("caseflow.desk.new_query_code", lambda: notice.query_code)
    with pytest.raises(DeskError, match="nothing was written"):
        window.desk.handle_on_the_spot(visit.id, actor="li")
    with pytest.raises(DeskError, match="nothing was written"):
        window.desk.on_the_spot("hukou_transfer", applicant_id=CAROL, actor="li", brought=complete)
    assert _written(window.store) == before
    assert window.desk.get_visit(visit.id).outcome == "open" and window.engine.cases(open_only=False) == []
    # A clash on the first draw only is drawn again, invisibly.
    draws = iter([notice.query_code, "7KQ4-M2XD-9TNB"])
    monkeypatch.setattr("caseflow.desk.new_query_code", lambda: next(draws))
    receipt = window.desk.handle_on_the_spot(visit.id, actor="li")
    assert receipt.query_code == "7KQ4-M2XD-9TNB" and window.engine.get(receipt.case.id).closed_at is not None
    assert window.engine.verify_audit() == []
    monkeypatch.undo()
    # The close step itself refused (here: it would be recorded by someone who may not close the case):
    # the opening is not kept either.
    other = window.desk.visit("hukou_transfer", applicant_id=CAROL, actor="li", brought=complete)
    window.engine.add_person("wu", name="吴户籍", unit=UNIT, roles=["household_police"])
    before = _written(window.store)
    with pytest.raises(PermissionDeniedError, match="may not close"):
        window.engine.open("hukou_transfer", actor="li", responsible="wu", close_reason="当场办结")
    with pytest.raises(PermissionDeniedError, match="may not close"):
        window.desk._settle("hukou_transfer", lambda s: s.get(VisitRow, other.id), actor="li", data=None,
                            when=bj(2026, 11, 2, 9, 0), on_the_spot=True, responsible="wu")
    assert _written(window.store) == before and window.desk.get_visit(other.id).outcome == "open"


def test_a_later_notice_may_not_ask_for_a_material_the_first_did_not_list(db_url: str) -> None:  # noqa: F811
    window = Window(db_url)
    desk = window.desk
    first = desk.visit("hukou_transfer", applicant_id=BOB, actor="li", brought=["id_card", "household_register"])
    desk.issue_notice(first.id, actor="li")  # asks for transfer_permit only
    window.at(2026, 11, 3, 9, 0)
    second = desk.visit("hukou_transfer", applicant_id=BOB, actor="li",
                        brought=["id_card", "household_register", "transfer_permit"], applies=["property_cert"])
    with pytest.raises(DeskError, match="did not ask for 不动产权证书或购房合同"):
        desk.issue_notice(second.id, actor="li")
    with pytest.raises(PermissionDeniedError, match="only a leader"):
        desk.issue_notice(second.id, actor="li", reason="申请人改称购房迁入")
    notice = desk.issue_notice(second.id, actor="zhang", reason="申请人第二次来时改称购房迁入")
    assert [m.key for m in notice.items] == ["property_cert"]
    assert notice.override_reason == "申请人第二次来时改称购房迁入"

    # The material list changed since (a new version adds a material): a later notice may ask for it.
    registry = WorkflowRegistry.load()
    text = registry.latest("hukou_transfer").text.replace(
        "materials:\n", "materials:\n  - {key: photo, name: 近期免冠照片, source: 照相馆, basis: 四(五)}\n", 1)
    registry.add(parse_workflow(text, path="<changed>"))
    changed = Window.__new__(Window)
    changed.__dict__.update(window.__dict__)
    changed.engine = Engine(window.store, clock=window.clock, registry=registry)
    changed.desk = Desk(changed.engine)
    window.at(2026, 11, 4, 9, 0)
    third = changed.desk.visit("hukou_transfer", applicant_id=BOB, actor="li",
                               brought=["id_card", "household_register", "transfer_permit", "property_cert"],
                               applies=["property_cert"])
    assert [m.key for m in changed.desk.issue_notice(third.id, actor="li").items] == ["photo"]


def test_a_third_visit_is_warned_to_the_clerk_and_the_leader(window: Window) -> None:
    desk = window.desk
    one = desk.visit("hukou_transfer", applicant_id=CAROL, actor="li", brought=["id_card"])
    desk.issue_notice(one.id, actor="li")
    assert window.told == []
    window.at(2026, 11, 3, 9, 0)
    two = desk.visit("hukou_transfer", applicant_id=CAROL, actor="li", brought=["id_card"])
    desk.issue_notice(two.id, actor="li")  # the same materials again: allowed, and the applicant must come back
    assert [(who, subject) for who, subject, _ in window.told] == [("li", "第三趟预警"), ("zhang", "第三趟预警")]
    assert "第2次" in window.told[0][2] and CAROL not in window.told[0][2] and "0011" in window.told[0][2]
    window.at(2026, 11, 4, 9, 0)
    three = desk.visit("hukou_transfer", applicant_id=CAROL, actor="li",
                       brought=["id_card", "household_register", "transfer_permit"])
    assert three.number == 3 and three.over_limit and "已超过2次" in (three.warning or "")
    assert len(window.told) == 4
    figures = window_stats(window.store, month="2026-11")[-1].to_dict()
    assert figures["over_limit_visits"] == 1 and figures["warnings"] == 2

    # 出入境 allows three visits (出入境窗口 10 "不超过三次"): the second notice warns no one.
    window.told.clear()
    for day in (5, 6):
        window.at(2026, 11, day, 9, 0)
        v = desk.visit("exit_entry_permit", applicant_id=CAROL, actor="li", brought=["id_card"])
        desk.issue_notice(v.id, actor="li")
    assert window.told == []
    window.at(2026, 11, 9, 9, 0)
    v = desk.visit("exit_entry_permit", applicant_id=CAROL, actor="li", brought=["id_card"])
    desk.issue_notice(v.id, actor="li")
    assert len(window.told) == 2


def test_ratings_are_refused_outside_their_rules(window: Window) -> None:
    visit = window.desk.visit("hukou_transfer", applicant_id=ALICE, actor="li",
                              brought=["id_card", "household_register", "transfer_permit"])
    with pytest.raises(RatingError, match="not settled"):
        window.ratings.rate(visit_id=visit.id, level=3, actor="li")
    receipt = window.desk.handle_on_the_spot(visit.id, actor="li")
    with pytest.raises(RatingError, match="1=非常不满意"):
        window.ratings.rate_by_code(receipt.query_code, "一般")
    window.at(2026, 11, 18, 9, 0)  # 16 days later: the 15-day window of hukou_transfer has closed
    with pytest.raises(RatingError, match="window closed 15 days"):
        window.ratings.rate_by_code(receipt.query_code, 4)
    with pytest.raises(Exception, match="unknown query code"):
        window.ratings.rate_by_code("AAAA-BBBB-CCCC", 4)


def test_materials_and_service_blocks_are_validated_with_their_place(tmp_path: Path) -> None:
    base = WorkflowRegistry.load().latest("exit_entry_permit").text
    bad = base.replace("max_visits: 3", "max_visits: 0")
    with pytest.raises(WorkflowError, match="max_visits must be a whole number of at least 1") as err:
        parse_workflow(bad, path="x.yaml")
    assert "line" in str(err.value)
    with pytest.raises(WorkflowError, match="one of 即办件, 承诺件, 上报件, 联办件"):
        parse_workflow(base.replace("type: 承诺件", "type: 加急件"), path="x.yaml")
    with pytest.raises(WorkflowError, match="not required: say when"):
        parse_materials([{"key": "a", "name": "甲", "required": False}])
    with pytest.raises(WorkflowError, match="duplicate material key 'a'"):
        parse_materials([{"key": "a", "name": "甲"}, {"key": "a", "name": "乙"}])
    one = parse_materials([{"key": "a", "name": "甲"}])
    assert materials_digest(one) != materials_digest(parse_materials([{"key": "a", "name": "甲", "condition": "x"}]))


def test_query_codes_and_masking() -> None:
    assert mask_id_number("11010119900307123x") == "**************123X"
    assert code_hash("not a code") is None and code_hash("") is None
    assert code_hash("abcd-efgh-jkmn") == code_hash("ABCDEFGHJKMN")
    with pytest.raises(DeskError, match="6–30 letters and digits"):
        mask_id_number("12")


# ------------------------------------------------------------------------------------------- 公示 and progress


def test_the_procedure_page_publishes_conditions_materials_limits_and_their_basis() -> None:
    page = procedure_page(WorkflowRegistry.load().latest("hukou_transfer"), booking_url="/public/book/hukou_transfer")
    assert page["type"] == "承诺件" and page["max_visits"] == 2 and page["booking_url"]
    assert page["materials"][3] == {"key": "marriage_cert", "name": "结婚证", "required": False,
                                    "condition": "投靠配偶迁入的", "source": "婚姻登记机关",
                                    "basis": "户口登记条例 第十三条", "copies": None, "note": None}
    approval = next(x for x in page["limits"] if x["name"] == "approval")
    assert approval["limit"] == "2个工作日" and approval["kind_label"] == "承诺时限" and "六(二)" in approval["basis"]
    statutory = procedure_page(WorkflowRegistry.load().latest("admin_license"))
    assert any(x["kind_label"] == "法定时限" and "第四十二条" in x["basis"] for x in statutory["limits"])


def test_progress_by_query_code_shows_the_case_and_nothing_personal(window: Window) -> None:
    desk = window.desk
    first = desk.visit("hukou_transfer", applicant_id=ALICE, actor="li", brought=["id_card"])
    notice = desk.issue_notice(first.id, actor="li")
    seen = progress(window.engine, notice.query_code or "")
    assert seen is not None and seen["status"] == "notice" and seen["applicant"] == "**************1234"
    assert [i["name"] for i in seen["notice"]["items"]] == ["居民户口簿", "户口迁移证或准予迁入证明"]

    window.at(2026, 11, 3, 10, 0)
    second = desk.visit("hukou_transfer", applicant_id=ALICE, actor="li",
                        brought=["id_card", "household_register", "transfer_permit"])
    receipt = desk.accept(second.id, actor="li", data={"applicant": "王五", "phone": "13812345678"})
    window.engine.fire(receipt.case.id, "submit_for_approval", actor="li")
    seen = progress(window.engine, receipt.query_code)
    assert seen is not None and seen["state"] == "所领导审核审批" and seen["accepted_on"] == "2026-11-03"
    assert [s["step"] for s in seen["steps"]] == ["受理", "报所领导审核审批"]
    assert seen["next_deadline"]["label"] == "所领导审核审批" and seen["next_deadline"]["last_day"] == "2026-11-05"
    assert progress(window.engine, notice.query_code or "") == seen  # the notice's code follows the case
    text = json.dumps(seen, ensure_ascii=False)
    for secret in (ALICE, "王五", "13812345678", "\"li\"", "\"zhang\"", "李警官", "张所长"):
        assert secret not in text

    # Another applicant's code shows only their own matter.
    other = desk.visit("exit_entry_permit", applicant_id=BOB, actor="li", brought=["id_card", "photo"])
    theirs = desk.accept(other.id, actor="li")
    seen_other = progress(window.engine, theirs.query_code)
    assert seen_other is not None and seen_other["workflow"] == "exit_entry_permit"
    assert seen_other["applicant"] == "**************432X" and seen_other["steps"] == [
        {"step": "受理", "on": "2026-11-03"}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.one_of(st.text(max_size=40), st.from_regex(r"[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}",
                                                             fullmatch=True)))
def test_any_code_but_a_live_one_gets_the_same_answer(code: str, fuzz_window: tuple[Window, str]) -> None:
    window, live = fuzz_window
    if code.strip().upper().replace("-", "") == live.replace("-", ""):
        return
    assert progress(window.engine, code) is None


@pytest.fixture(scope="module")
def fuzz_window(tmp_path_factory: pytest.TempPathFactory) -> tuple[Window, str]:
    window = Window(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'caseflow.db'}")
    visit = window.desk.visit("hukou_transfer", applicant_id=ALICE, actor="li", brought=["id_card"])
    return window, window.desk.issue_notice(visit.id, actor="li").query_code or ""


def test_the_rate_limiter_slows_guessing() -> None:
    clock = [0.0]
    limiter = RateLimiter(3, 60, now=lambda: clock[0])
    assert [limiter.allow("1.2.3.4") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("5.6.7.8")
    clock[0] = 61.0
    assert limiter.allow("1.2.3.4")


# ------------------------------------------------------------------------------------------- 考评


def test_the_months_scorecard_follows_the_rule_sheet(window: Window, tmp_path: Path) -> None:
    desk, engine, ratings = window.desk, window.engine, window.ratings
    # Alice (出入境): a notice, then accepted and finished on 11-03; she rates 不满意.
    v = desk.visit("exit_entry_permit", applicant_id=ALICE, actor="li", brought=["id_card"])
    desk.issue_notice(v.id, actor="li")
    window.at(2026, 11, 3, 9, 0)
    v = desk.visit("exit_entry_permit", applicant_id=ALICE, actor="li", brought=["id_card", "photo"])
    case = desk.accept(v.id, actor="li").case
    engine.fire(case.id, "issue", actor="li")
    done = engine.fire(case.id, "collect", actor="li")
    upheld = ratings.rate(case_id=done.id, level="不满意", actor="li")
    # Bob: on the spot on 11-04, 非常不满意 on the 评价器; 张所长 explains on 11-05, in time.
    window.at(2026, 11, 4, 9, 0)
    v = desk.visit("exit_entry_permit", applicant_id=BOB, actor="li", brought=["id_card", "photo"])
    desk.handle_on_the_spot(v.id, actor="li")
    explained = ratings.rate(visit_id=v.id, level=1, actor="li")
    window.at(2026, 11, 5, 9, 0)
    ratings.settle(explained.id, "explain", actor="zhang", note="已电话解释收费依据")
    # Carol (户籍): two notices by 李警官, then a third visit (第三趟).
    for day in (2, 3, 4):
        window.at(2026, 11, 6, 9 + day, 0)
        v = desk.visit("hukou_transfer", applicant_id=CAROL, actor="li", brought=["id_card"])
        if day < 4:
            desk.issue_notice(v.id, actor="li")
    # Alice's follow-up (5 working days from 11-03: last day 11-10) is overdue on 11-11, escalated on 11-12.
    config = NotifyConfig.from_dict({"channels": {"rec": {"url": "log://"}}, "scheduler": {"default_channel": "rec"}})
    Scheduler(window.store, config, clock=window.clock).sweep(bj(2026, 11, 12, 8, 0))
    window.at(2026, 11, 12, 9, 0)
    ratings.settle(upheld.id, "整改", actor="zhang", note="窗口增设引导员")

    card = scorecard(window.store, month="2026-11")
    people = {p["key"]: p for p in card.to_dict()["people"]}
    # By hand, with the shipped sheet (bad −2, upheld −5, third visit −2, overdue −2, escalation −3, on time +1):
    # 李警官: 2 bad ratings, 1 upheld complaint, 1 third visit = −4 −5 −2 = −11 → 89.
    assert people["li"]["counts"] == {"overdue_step": 0, "escalation": 0, "bad_rating": 2, "upheld_complaint": 1,
                                      "third_visit": 1, "missed_appointment": 0, "finished_on_time": 0}
    assert (people["li"]["points"], people["li"]["score"]) == (-11, 89)
    # 张所长 held both follow-ups: one overdue and escalated, one on time = −2 −3 +1 = −4 → 96.
    assert people["zhang"]["counts"]["overdue_step"] == 1 and people["zhang"]["counts"]["escalation"] == 1
    assert people["zhang"]["counts"]["finished_on_time"] == 1 and people["zhang"]["score"] == 96
    (unit,) = card.to_dict()["units"]
    assert (unit["key"], unit["points"], unit["score"]) == (UNIT, -15, 85)
    assert "李警官\t城关派出所\t0\t0\t2\t1\t1\t0\t0\t89" in card.to_text()
    assert scorecard(window.store, month="2026-12").people == []
    # The leader's digest shows the window and the score so far.
    text = render_digest(build_digest(window.store, "zhang", bj(2026, 11, 12, 18, 0)))
    assert "六、窗口服务与考评 (2026-11)" in text
    assert f"{UNIT}：来访 6，一次办结率 50.0%，第三趟 1，好评率 0.0%，差评 2，考评 85 分" in text

    # Another sheet: only bad ratings count, 10 points each.
    sheet = tmp_path / "rules.toml"
    sheet.write_text("base = 60\n[points]\nbad_rating = -10\n", encoding="utf-8")
    other = scorecard(window.store, month="2026-11", rules=ScoringRules.load(sheet)).to_dict()
    assert {p["key"]: p["score"] for p in other["people"]} == {"li": 40, "zhang": 60}
    sheet.write_text("[points]\nlate = -1\n", encoding="utf-8")
    with pytest.raises(ScoringError, match="unknown event 'late'; events are overdue_step"):
        ScoringRules.load(sheet)
    with pytest.raises(ScoringError, match="not valid TOML"):
        sheet.write_text("[points\n", encoding="utf-8")
        ScoringRules.load(sheet)


# ------------------------------------------------------------------------------------------- the command line


def test_the_desk_and_ratings_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEFLOW_DB", str(tmp_path / "cli.db"))
    monkeypatch.setenv("CASEFLOW_NOW", "2026-11-02T09:00")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("people", "add", "l1", "--name", "王所长", "--unit", UNIT, "--role", "station_leader")
    run("people", "add", "p1", "--name", "李警官", "--unit", UNIT, "--role", "household_police", "--leader", "l1")
    out = run("desk", "visit", "hukou_transfer", "--actor", "p1", "--applicant", ALICE, "--brought", "id_card")
    assert "第1次(最多2次)" in out and ALICE not in out
    assert "缺少材料 missing: 居民户口簿、户口迁移证或准予迁入证明" in out
    out = run("desk", "notice", "1", "--actor", "p1")
    assert "1. 居民户口簿" in out and "查询码:" in out
    refused = runner.invoke(cli, ["desk", "accept", "1", "--actor", "p1", "--json"])
    assert refused.exit_code == 1 and json.loads(refused.output)["error"]["type"] == "DeskError"
    out = run("desk", "visit", "hukou_transfer", "--actor", "p1", "--applicant", ALICE, "--brought", "id_card",
              "--brought", "household_register", "--brought", "transfer_permit")
    receipt = json.loads(run("desk", "on-the-spot", "2", "--actor", "p1", "--json"))
    assert receipt["on_the_spot"] and receipt["case"]["closed_at"]
    out = run("rating", "add", "--code", receipt["query_code"], "--level", "不满意")
    assert "评价 rating 1: 不满意; 回访整改 case 2" in out
    out = run("rating", "settle", "1", "整改", "--note", "已回访", "--actor", "l1")
    assert "已整改" in out
    figures = json.loads(run("stats", "--month", "2026-11", "--window", "--json"))
    assert figures[-1]["on_the_spot"] == 1 and figures[-1]["rectified_rate"] == 1.0
    card = json.loads(run("stats", "--month", "2026-11", "--score", "--json"))
    li = next(p for p in card["people"] if p["key"] == "p1")
    assert li["counts"]["bad_rating"] == 1 and li["counts"]["upheld_complaint"] == 1 and li["score"] == 93
    assert "考评" in run("stats", "--month", "2026-11", "--score")
    # The month's ledger carries the unit's 考评 on a second sheet.
    run("report", "ledger", "--unit", UNIT, "--month", "2026-11", "--xlsx", str(tmp_path / "ledger.xlsx"))
    sheet = load_workbook(tmp_path / "ledger.xlsx")["考评 2026-11"]
    values = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    assert values[0][:3] == ["对象", "超期环节", "超期督办"] and values[0][-2:] == ["加减分", "得分"]
    assert [v[0] for v in values[1:]] == [UNIT, "王所长", "李警官"] and values[3][-1] == 93
    # 当场办结 in one command: the visit is given with the call; VISIT and the visit's fields do not mix.
    out = run("desk", "on-the-spot", "--workflow", "hukou_transfer", "--actor", "p1", "--applicant", BOB,
              "--brought", "id_card", "--brought", "household_register", "--brought", "transfer_permit")
    assert out.startswith("当场办结凭证  案件编号 3") and "**************432X" in out and "查询码:" in out
    mixed = runner.invoke(cli, ["desk", "on-the-spot", "2", "--workflow", "hukou_transfer", "--actor", "p1"])
    assert mixed.exit_code == 1 and "either VISIT or the visit itself" in mixed.output


# ------------------------------------------------------------------------------------------- 预约


def test_a_booking_shows_in_the_queue_at_its_instant_and_a_no_show_is_recorded(window: Window) -> None:
    bookings = Appointments(window.engine, notify=lambda *m: window.told.append(m))
    # Working-day slots come from the service block: 09:00-11:30 and 14:30-17:00 by half hours, 2 places each.
    tuesday = bj(2026, 11, 3, 9, 0)
    first = bookings.book(UNIT, "hukou_transfer", tuesday, applicant_id=ALICE)
    assert first.applicant == "**************1234" and first.status == "booked"
    bookings.book(UNIT, "hukou_transfer", tuesday, applicant_id=BOB)
    with pytest.raises(AppointmentError, match="is full"):
        bookings.book(UNIT, "hukou_transfer", tuesday, applicant_id=CAROL)
    with pytest.raises(AppointmentError, match="not a bookable slot"):
        bookings.book(UNIT, "hukou_transfer", bj(2026, 11, 3, 9, 10), applicant_id=CAROL)
    # Saturday: closed until a leader opens 延时服务 hours (户籍 四(四)).
    saturday = bj(2026, 11, 7, 9, 30)
    with pytest.raises(AppointmentError, match="not a bookable slot"):
        bookings.book(UNIT, "hukou_transfer", saturday, applicant_id=CAROL)
    with pytest.raises(PermissionDeniedError, match="only a leader"):
        bookings.open_rest_day(UNIT, "hukou_transfer", saturday.date(), "09:00-12:00", actor="li")
    bookings.open_rest_day(UNIT, "hukou_transfer", saturday.date(), "09:00-12:00", actor="zhang")
    assert bookings.book(UNIT, "hukou_transfer", saturday, applicant_id=CAROL).extra_hours

    # The queue: nothing on Monday; from 08:30 on Tuesday the 09:00 bookings are there.
    assert bookings.due(UNIT, now=bj(2026, 11, 3, 8, 29)) == []
    assert [a.id for a in bookings.due(UNIT, now=bj(2026, 11, 3, 8, 30))] == [first.id, first.id + 1]
    window.at(2026, 11, 3, 9, 0)
    with pytest.raises(AppointmentError, match="only after the booked instant"):
        window.at(2026, 11, 3, 8, 59)
        bookings.record(first.id, "no_show", actor="li")
    window.at(2026, 11, 3, 9, 0)
    bookings.record(first.id + 1, "served", actor="li")
    # 30 minutes past its instant with no outcome: the unit's staff are warned, once.
    assert bookings.sweep(now=bj(2026, 11, 3, 9, 31)) == [first.id]
    assert {who for who, subject, _ in window.told if subject == "预约逾时未办"} == {"li", "zhang"}
    assert bookings.sweep(now=bj(2026, 11, 3, 10, 0)) == []
    window.at(2026, 11, 3, 10, 0)
    assert bookings.record(first.id, "no_show", actor="li").status == "no_show"
    assert bookings.due(UNIT, now=bj(2026, 11, 3, 10, 0)) == []
    # The Saturday booking is missed by the unit (违约): counted, and −2 for the clerk who recorded it.
    window.at(2026, 11, 7, 12, 0)
    bookings.record(first.id + 2, "missed", actor="li")
    figures = window_stats(window.store, month="2026-11")[-1].to_dict()
    assert (figures["booked"], figures["no_show"], figures["missed_appointments"]) == (3, 1, 1)
    li = next(p for p in scorecard(window.store, month="2026-11").to_dict()["people"] if p["key"] == "li")
    assert li["counts"]["missed_appointment"] == 1 and li["score"] == 98


def _rec_config() -> NotifyConfig:
    return NotifyConfig.from_dict({"channels": {"rec": {"url": "log://"}}, "scheduler": {"default_channel": "rec"}})


def test_the_schedulers_sweep_warns_of_a_late_booking_once_through_the_outbox(window: Window) -> None:
    # 户籍 四(三) 预约服务制度: the unit serves the applicant at the agreed time; half an hour late it is told.
    window.engine.add_person("wu", name="吴户籍", unit=UNIT, roles=["household_police"], leader="zhang",
                             substitute="li")
    window.engine.add_person("he", name="何文书", unit=UNIT, roles=["archivist"])  # serves no hukou step
    bookings = Appointments(window.engine)
    late = bookings.book(UNIT, "hukou_transfer", bj(2026, 11, 3, 9, 0), applicant_id=ALICE)
    served = bookings.book(UNIT, "hukou_transfer", bj(2026, 11, 3, 9, 30), applicant_id=BOB)
    window.engine.mark_absent("wu", start=bj(2026, 11, 3, 0, 0).date(), end=bj(2026, 11, 3, 0, 0).date())
    recorder = Recorder()
    scheduler = Scheduler(window.store, _rec_config(), clock=window.clock, notifiers={"rec": recorder})

    # 09:29: not yet late; the clerk has the booking in the queue.
    report = scheduler.run_once(bj(2026, 11, 3, 9, 29))
    assert report.sweep.late_bookings == 0 and recorder.sent == []
    window.at(2026, 11, 3, 9, 35)
    bookings.record(served.id, "served", actor="li")
    # 09:30: the 09:00 booking is half an hour late with no outcome: its clerks and the unit's leader are told.
    report = scheduler.run_once(bj(2026, 11, 3, 9, 30))
    assert report.sweep.late_bookings == 1 and report.sweep.to_dict()["late_bookings"] == 1
    told = sorted((to, subject) for to, subject, _ in recorder.sent)
    # li serves hukou, zhang leads the unit, wu is absent so li (the AB岗 substitute) reads it once; not ju
    # (the county), not he (no role in the procedure).
    assert told == [("li", "预约逾时未办"), ("zhang", "预约逾时未办")]
    body = next(b for to, _, b in recorder.sent if to == "zhang")
    assert f"预约 {late.id}" in body and "11-03 09:00" in body and "**************1234" in body and ALICE not in body
    # Later sweeps (and the on-demand command) do not warn again; nothing else is queued.
    assert scheduler.run_once(bj(2026, 11, 3, 10, 30)).sweep.late_bookings == 0
    assert bookings.sweep(now=bj(2026, 11, 3, 11, 0)) == []
    assert len(recorder.sent) == 2
    with window.store.session() as s:
        rows = s.exec(sa.select(OutboxRow.recipient, OutboxRow.kind, OutboxRow.status)).all()
    assert sorted(map(tuple, rows)) == [("li", "window", "sent"), ("zhang", "window", "sent")]


def test_the_long_running_schedulers_sweep_job_warns_of_late_bookings(window: Window) -> None:
    booking = Appointments(window.engine).book(UNIT, "hukou_transfer", bj(2026, 11, 3, 9, 0), applicant_id=ALICE)
    scheduler = Scheduler(window.store, _rec_config(), clock=window.clock)
    window.at(2026, 11, 3, 9, 31)
    scheduler._job("sweep")  # what the APScheduler interval job runs, at the scheduler's clock
    with window.store.session() as s:
        queued = s.exec(sa.select(OutboxRow.recipient, OutboxRow.subject, OutboxRow.body)).all()
    assert sorted(r[0] for r in queued) == ["li", "zhang"] and all(f"预约 {booking.id}" in r[2] for r in queued)
    assert scheduler.build(background=True).get_job("caseflow-sweep") is not None


def test_two_schedulers_on_one_database_warn_of_each_late_booking_once(db_url: str) -> None:  # noqa: F811
    window = Window(db_url)
    bookings = Appointments(window.engine)
    for hour, applicant in ((9, ALICE), (9, BOB), (10, CAROL)):
        bookings.book(UNIT, "hukou_transfer", bj(2026, 11, 3, hour, 0), applicant_id=applicant)
    recorder = Recorder()
    schedulers = [Scheduler(Store(db_url), _rec_config(), clock=window.clock, notifiers={"rec": recorder},
                            owner=name) for name in ("A", "B")]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(scheduler: Scheduler) -> None:
        try:
            for at in (bj(2026, 11, 3, 9, 45), bj(2026, 11, 3, 10, 45)):
                barrier.wait()
                scheduler.run_once(at)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for scheduler in schedulers:
        scheduler.store.dispose()
    assert not errors, errors
    # Three late bookings, two recipients each (li and zhang): six messages, none twice.
    assert len(recorder.sent) == 6
    assert len({(to, body) for to, _, body in recorder.sent}) == 6


def test_concurrent_bookings_never_overfill_a_slot(db_url: str) -> None:  # noqa: F811
    window = Window(db_url)
    applicants = [f"1101011990030712{i:02d}" for i in range(6)]
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(applicants))

    def book(applicant: str) -> None:
        store = Store(db_url)
        try:
            bookings = Appointments(Engine(store, clock=window.clock))
            barrier.wait()
            try:
                bookings.book(UNIT, "hukou_transfer", bj(2026, 11, 3, 9, 0), applicant_id=applicant)
                outcome = "booked"
            except AppointmentError as exc:
                outcome = exc.zh
            with lock:
                results.append(outcome)
        finally:
            store.dispose()

    threads = [threading.Thread(target=book, args=(a,)) for a in applicants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Two places (service.per_slot): two bookings, four told the slot is full — never three booked.
    assert sorted(results) == ["11月03日 09:00 的时段已约满,请选择其他时段"] * 4 + ["booked"] * 2
    slot = Appointments(window.engine).slots(UNIT, "hukou_transfer", bj(2026, 11, 3, 0, 0).date())[0]
    assert slot["free"] == 0


def test_bookings_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEFLOW_DB", str(tmp_path / "cli.db"))
    monkeypatch.setenv("CASEFLOW_NOW", "2026-11-02T09:00")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("people", "add", "l1", "--name", "王所长", "--unit", UNIT, "--role", "station_leader")
    run("people", "add", "p1", "--name", "李警官", "--unit", UNIT, "--role", "household_police", "--leader", "l1")
    assert "09:00  余 2" in run("desk", "slots", "hukou_transfer", "--unit", UNIT, "--day", "2026-11-03")
    out = run("desk", "book", "hukou_transfer", "--unit", UNIT, "--at", "2026-11-03T09:00", "--applicant", ALICE)
    assert "预约 1  hukou_transfer  2026-11-03 09:00  申请人 **************1234  booked" in out
    assert "no slots" in run("desk", "slots", "hukou_transfer", "--unit", UNIT, "--day", "2026-11-07")
    run("desk", "open-rest-day", "hukou_transfer", "--unit", UNIT, "--day", "2026-11-07", "--hours", "09:00-10:00",
        "--actor", "l1")
    assert "09:30  余 2" in run("desk", "slots", "hukou_transfer", "--unit", UNIT, "--day", "2026-11-07")
    monkeypatch.setenv("CASEFLOW_NOW", "2026-11-03T08:45")
    assert "预约 1" in run("desk", "due", "--unit", UNIT)
    monkeypatch.setenv("CASEFLOW_NOW", "2026-11-03T09:40")
    assert "warned for 1 booking(s)" in run("desk", "sweep-bookings")
    assert "no_show" in run("desk", "booking-outcome", "1", "no_show", "--actor", "p1")
