"""What people read: events as sentences, one way to write a deadline, personal data masked by kind."""

from __future__ import annotations

from datetime import datetime

import pytest

from caseflow import ZONE, Engine, FixedClock, Store
from caseflow.narrate import (
    Labels,
    case_data_items,
    case_summary,
    describe_event,
    due_text,
    mask_value,
    overdue_from_text,
)
from caseflow.registry import WorkflowRegistry


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def test_a_day_limit_ends_at_24_00_of_its_last_day_with_the_weekday() -> None:
    assert due_text(at("2026-11-21T00:00")) == "期满 2026-11-20（周五）24:00"
    assert due_text(at("2026-11-20T14:30")) == "期满 2026-11-20（周五）14:30"
    assert due_text(None) == "期满待定（暂停中）"
    # Only where the instant of becoming overdue is meant:
    assert overdue_from_text(at("2026-11-21T00:00")) == "逾期自 11-21 00:00"


@pytest.mark.parametrize(("kind", "value", "shown"), [
    ("name", "李四", "李*"),
    ("name", "欧阳小明", "欧***"),
    ("phone", "13812345678", "*******5678"),
    ("phone", "0512-6543210", "********3210"),
    ("id_number", "11010519491231002X", "**************002X"),
    ("address", "江苏省苏州市姑苏区人民路100号", "江苏省苏州市***"),
    ("text", "联系 13812345678", "联系 *******5678"),  # a number typed into free text is still masked
    ("text", "HU-2026-00012", "HU-2026-00012"),
    ("bool", True, "是"),
])
def test_personal_data_is_masked_by_kind(kind: str, value: object, shown: str) -> None:
    assert mask_value(kind, value) == shown
    assert mask_value(kind, value, full=True) == (value if isinstance(value, str) else "是")


@pytest.fixture()
def engine(tmp_path: object) -> Engine:
    store = Store(f"sqlite:///{tmp_path}/n.db")
    clock = FixedClock(at("2026-10-20T09:00"))
    eng = Engine(store, clock=clock, registry=WorkflowRegistry.load())
    eng.add_person("wang", name="所长 王海", unit="城关派出所", roles=("station_leader",))
    eng.add_person("zhang", name="户籍民警 张丽", unit="城关派出所", roles=("household_police",), leader="wang")
    eng.add_person("li", name="社区民警 李军", unit="城关派出所", roles=("community_police",), leader="wang")
    return eng


def test_every_event_reads_as_a_chinese_sentence_without_keys(engine: Engine) -> None:
    clock = engine.clock
    assert isinstance(clock, FixedClock)
    case = engine.open("hukou_transfer", actor="zhang",
                       data={"applicant": "李四", "phone": "13812345678", "no": "HU-1", "needs_verification": "true"})
    clock.set(at("2026-10-20T15:00"))
    engine.fire(case.id, "hand_over_verification", actor="zhang", data={"slip_no": "JB-7"})
    clock.set(at("2026-10-22T20:11"))
    engine.pause(case.id, "verification", reason="函调", actor="li")
    clock.set(at("2026-10-28T10:00"))
    engine.resume(case.id, "verification", actor="li")
    labels = Labels.from_store(engine.store)
    events = engine.history(case.id)
    lines = [describe_event(e, labels, "hukou_transfer") for e in events]
    assert lines[0].startswith("2026-10-20 09:00 户籍民警 张丽 受理「户口迁移(派出所户籍窗口)」，状态「已受理」")
    assert "申请人 李*" in lines[0] and "联系电话 *******5678" in lines[0]
    assert "开始计时「当日填写交办单交社区民警」" in lines[0]  # the verification route only (issue 8)
    assert lines[1] == ("2026-10-20 15:00 户籍民警 张丽 填写受理户口交办单并交办核查（受理户口交办单编号 JB-7），"
                        "状态「已受理」→「社区民警调查核实」；「当日填写交办单交社区民警」按期完成；"
                        "开始计时「社区民警调查核实」")
    assert lines[2] == "2026-10-22 20:11 社区民警 李军 暂停「社区民警调查核实」计时：函调（依法不计入）"
    assert lines[3].startswith("2026-10-28 10:00 社区民警 李军 恢复「社区民警调查核实」计时（函调结束），期满 2026-")
    for line in lines:
        for key in ("hukou_transfer", "verification", "accepted", "verifying", "slip_no", "{", "}", "applicant"):
            assert key not in line, (key, line)
    # The responsible clerk on the case page sees it all; nobody else does.
    full = dict(case_data_items(labels, "hukou_transfer", engine.get(case.id).data, full=True))
    assert full["联系电话"] == "13812345678" and full["申请人"] == "李四"
    summary = case_summary(labels, "hukou_transfer", engine.get(case.id).data)
    assert summary.startswith("申请人 李* · 联系电话 *******5678")


def test_unknown_names_never_show_the_key() -> None:
    labels = Labels.of(WorkflowRegistry.load())
    assert labels.timer("hukou_transfer", "no_such_timer") == "其他环节"
    assert labels.state("nope", "accepted") == "其他状态"
    assert labels.workflow("nope") == "其他程序"
    assert labels.transition("hukou_transfer", "complete") == "办结并通知申请人"
    assert labels.role("hukou_transfer", "household_police") == "户籍民警"
    assert labels.person("system") == "系统"
