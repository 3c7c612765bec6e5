"""Pauses and extensions that must record what the law makes the unit tell the applicant.

行政许可法 第四十五条: excluded time (听证、检验 …) must be told to the applicant in writing; 第四十二条: the
reason for an extension must be told to the applicant. A workflow lists the fields a pause reason or an
extension must carry (``requires``); the engine refuses the command without them and keeps them with the
pause or extension and in the event chain. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.errors import CommandError, WorkflowError
from caseflow.registry import WorkflowRegistry
from caseflow.store import Store, TimerRow
from caseflow.workflowfile import parse_workflow
from storefixtures import db_url  # noqa: F401 - fixture

WORKFLOW = """
key: notice_demo
title: 书面告知示例
fields:
  notice_no: {label: 书面告知书编号}
  applicant_told_on: {label: 告知申请人日期, kind: date}
roles: {clerk: 窗口工作人员, head: 负责人}
states:
  - {name: reviewing, label: 审查中, initial: true}
  - {name: decided, label: 已决定, final: true}
transitions:
  - {trigger: decide, from: reviewing, to: decided, roles: [clerk], label: 作出决定}
timers:
  - name: decision
    label: 作出决定
    limit: 20 working_days
    basis: 行政许可法 第四十二条、第四十五条
    start: {state: reviewing}
    stop: {states: [decided]}
    pauses:
      检验: {charged_to: law, requires: [notice_no]}
      专家评审: {charged_to: law}
    extension:
      tiers: [{grounds: [], max_total: 10 working_days, approver_roles: [head]}]
      max_times: 1
      requires: [applicant_told_on]
"""


def bj(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZONE)  # type: ignore[misc]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:  # noqa: F811
    store = Store(db_url)
    e = Engine(store, clock=FixedClock(bj(2026, 9, 28, 9)),
               registry=WorkflowRegistry([parse_workflow(WORKFLOW)]))
    e.add_person("head", name="负责人", unit="政务服务中心", roles=["head"])
    e.add_person("clerk", name="窗口", unit="政务服务中心", roles=["clerk"], leader="head")
    yield e
    store.dispose()


def test_the_workflow_reads_the_required_fields() -> None:
    decision = parse_workflow(WORKFLOW).timer("decision")
    assert decision.pause_policy("检验").requires == ("notice_no",)  # type: ignore[union-attr]
    assert decision.pause_policy("专家评审").requires == ()  # type: ignore[union-attr]
    assert decision.extension is not None and decision.extension.requires == ("applicant_told_on",)
    with pytest.raises(WorkflowError, match=r"requires\[0\]"):
        parse_workflow(WORKFLOW.replace("requires: [notice_no]", "requires: ['1 bad']"))


def test_a_pause_without_its_written_notice_is_refused_and_nothing_changes(engine: Engine) -> None:
    case = engine.open("notice_demo", actor="clerk")
    with pytest.raises(CommandError, match=r"decision.*检验.*notice_no"):
        engine.pause(case.id, "decision", reason="检验", actor="clerk")
    assert engine.get(case.id).version == case.version
    assert engine.get(case.id).timer("decision").status == "running"
    # A reason whose policy asks for nothing pauses as before.
    paused = engine.pause(case.id, "decision", reason="专家评审", actor="clerk")
    assert paused.timer("decision").status == "paused"


def test_the_notice_is_kept_with_the_pause_and_in_the_chain(engine: Engine) -> None:
    case = engine.open("notice_demo", actor="clerk")
    engine.pause(case.id, "decision", reason="检验", actor="clerk", data={"notice_no": "检告-2026-017"})
    event = engine.history(case.id)[-1]
    assert event.kind == "pause" and event.data["data"] == {"notice_no": "检告-2026-017"}
    with engine.store.session() as s:
        row = s.execute(sa.select(TimerRow).where(TimerRow.case_id == case.id)).scalar_one()
        assert json.loads(row.pauses)[0]["data"] == {"notice_no": "检告-2026-017"}
    assert not engine.verify_audit(case_id=case.id)


def test_an_extension_must_record_that_the_applicant_was_told(engine: Engine) -> None:
    case = engine.open("notice_demo", actor="clerk")
    with pytest.raises(CommandError, match="applicant_told_on"):
        engine.extend(case.id, "decision", by="10 working_days", grounds="需现场核查", actor="head")
    assert engine.get(case.id).version == case.version
    extended = engine.extend(case.id, "decision", by="10 working_days", grounds="需现场核查", actor="head",
                             data={"applicant_told_on": "2026-09-28"})
    # Opened Mon 09-28: 09-29, 09-30, (国庆 10-01..07 off) 10-08, 10-09, make-up Sat 10-10 … the 20th working
    # day is Fri 10-30; +10 working days → Fri 11-13.
    assert extended.timer("decision").last_day.isoformat() == "2026-11-13"  # type: ignore[union-attr]
    with engine.store.session() as s:
        row = s.execute(sa.select(TimerRow).where(TimerRow.case_id == case.id)).scalar_one()
        assert json.loads(row.extensions)[0]["data"] == {"applicant_told_on": "2026-09-28"}
    assert engine.history(case.id)[-1].data["data"] == {"applicant_told_on": "2026-09-28"}
