"""Every clock on the person who must act (issue 8): assignees, cancelled steps, timers that act.

A contract on SQLite and PostgreSQL, on a simulated clock (Beijing time, 2026 National Day: 10-01..10-07
off, Sat 10-10 a make-up working day).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from caseflow.alerts import ALERTS, OUTBOX
from caseflow.audit import verify
from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.config import NotifyConfig
from caseflow.engine import Engine
from caseflow.errors import CommandError, PermissionDeniedError, WorkflowError
from caseflow.registry import WorkflowRegistry
from caseflow.scheduler import Scheduler
from caseflow.stats import compute_stats
from caseflow.store import Store
from caseflow.workflowfile import parse_workflow, shipped_workflows_dir
from storefixtures import db_url  # noqa: F401 - fixture

T0 = datetime(2026, 9, 30, 9, 0, tzinfo=ZONE)
STATION = "城关派出所"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZONE)  # type: ignore[misc]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(db_url)
    yield s
    s.dispose()


@pytest.fixture
def engine(store: Store, clock: FixedClock) -> Engine:
    e = Engine(store, clock=clock, backdate_window=timedelta(days=60))
    e.add_person("l1", name="王所长", unit=STATION, roles=["station_leader"])
    e.add_person("p2", name="李社区", unit=STATION, roles=["community_police"], leader="l1")
    e.add_person("p1", name="张户籍", unit=STATION, roles=["household_police"], leader="l1", substitute="p2")
    e.add_person("admin", name="管理员", unit=STATION, admin=True)
    return e


def config() -> NotifyConfig:
    return NotifyConfig.from_dict({"channels": {"rec": {"url": "log://"}}, "scheduler": {"default_channel": "rec"}})


# ------------------------------------------------------------------------------------------ assignees


def test_each_step_is_on_the_person_of_its_role_and_the_event_says_which_rule_chose_them(engine: Engine,
                                                                                      clock: FixedClock) -> None:
    case = engine.open("hukou_transfer", actor="p1", data={"needs_verification": "true"})
    assert {t.name: t.assignee for t in case.timers} == {"hand_over": "p1"}
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    verification = case.timer("verification")
    assert verification.assignee == "p2"  # the station's only 社区民警
    assert case.to_dict()["timers"][-1]["assignee"] == "p2"
    fired = engine.history(case.id)[-1]
    assert fired.data["assigned"] == [{"timer": "verification", "assignee": "p2", "rule": "unit_only_holder",
                                       "role": "community_police"}]
    # The verification is in the 社区民警's queue, not the clerk's.
    assert [i.timer for i in engine.queue("p2")] == ["verification"]
    assert [i.timer for i in engine.queue("p1")] == []
    clock.set(at(2026, 10, 8, 10))
    case = engine.fire(case.id, "return_verification", actor="p2")
    assert case.timer("report").assignee == "p1"  # the responsible 户籍民警 holds that role
    case = engine.fire(case.id, "submit_for_approval", actor="p1")
    assert case.timer("approval").assignee == "l1"
    assert [i.timer for i in engine.queue("l1")] == ["approval"]


def test_a_named_assignee_wins_and_must_hold_the_role(engine: Engine) -> None:
    engine.add_person("p3", name="赵社区", unit=STATION, roles=["community_police"], leader="l1")
    case = engine.open("hukou_transfer", actor="p1")
    with pytest.raises(CommandError, match="holds none of the roles"):
        engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"}, assign="l1")
    with pytest.raises(CommandError, match="starts no timer"):
        engine.fire(case.id, "reject", actor="p1", data={"reason": "x"}, assign="p3")
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"}, assign="p3")
    assert case.timer("verification").assignee == "p3"
    assert engine.history(case.id)[-1].data["assigned"][0]["rule"] == "assigned"


def test_without_a_single_holder_the_step_falls_back_to_the_responsible_person_and_says_so(engine: Engine) -> None:
    engine.add_person("p3", name="赵社区", unit=STATION, roles=["community_police"], leader="l1")
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    assert case.timer("verification").assignee == "p1"
    assert engine.history(case.id)[-1].data["assigned"][0]["rule"] == "fallback"


def test_a_leader_role_goes_to_the_actors_leader_when_the_unit_has_several(engine: Engine) -> None:
    engine.add_person("l2", name="刘副所长", unit=STATION, roles=["station_leader"])
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.fire(case.id, "submit_for_approval", actor="p1")
    assert case.timer("approval").assignee == "l1"
    assert engine.history(case.id)[-1].data["assigned"][0]["rule"] == "leader"


def test_handing_over_one_step_is_a_recorded_command(engine: Engine) -> None:
    engine.add_person("p3", name="赵社区", unit=STATION, roles=["community_police"], leader="l1")
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"}, assign="p2")
    with pytest.raises(CommandError, match="reason"):
        engine.hand_over_step(case.id, "verification", to="p3", actor="p2", reason=" ")
    with pytest.raises(PermissionDeniedError, match="community_police"):
        engine.hand_over_step(case.id, "verification", to="p1", actor="p2", reason="休假")
    with pytest.raises(PermissionDeniedError, match="may not hand over"):
        engine.hand_over_step(case.id, "verification", to="p3", actor="p3", reason="我来")
    case = engine.hand_over_step(case.id, "verification", to="p3", actor="p2", reason="辖区调整")
    assert case.timer("verification").assignee == "p3"
    event = engine.history(case.id)[-1]
    assert (event.kind, event.actor) == ("hand_over_step", "p2")
    assert event.data == {"timer": "verification", "round": 1, "from": "p2", "to": "p3", "reason": "辖区调整"}
    assert [i.timer for i in engine.queue("p3")] == ["verification"] and engine.queue("p2") == []
    assert verify(engine) == []  # the chain replays to the same assignees as the tables


def test_handing_the_case_over_carries_the_steps_its_responsible_person_held(engine: Engine) -> None:
    engine.add_person("p4", name="钱户籍", unit=STATION, roles=["household_police"], leader="l1")
    case = engine.open("hukou_transfer", actor="p1", data={"needs_verification": "true"})
    case = engine.hand_over(case.id, to="p4", actor="p1")
    assert {t.assignee for t in case.timers} == {"p4"}
    assert engine.history(case.id)[-1].data["steps"] == ["hand_over"]
    assert verify(engine) == []


def test_an_absent_assignees_steps_go_to_their_substitute(engine: Engine) -> None:
    engine.add_person("p2", name="李社区", unit=STATION, roles=["community_police"], leader="l1", substitute="p1",
                      replace=True)
    case = engine.open("hukou_transfer", actor="p1")
    engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    engine.mark_absent("p2", start=date(2026, 9, 30), end=date(2026, 10, 9))
    items = engine.queue("p1")
    assert [(i.timer, i.via_substitute_for, i.assignee) for i in items] == [("verification", "p2", "p2")]


# ------------------------------------------------------------------------------------ cancelled steps


def test_the_branch_not_taken_is_cancelled_never_met_and_counts_in_no_statistics(engine: Engine, store: Store,
                                                                                 clock: FixedClock) -> None:
    complete = engine.open("hukou_transfer", actor="p1", data={"needs_verification": "false"})
    verify = engine.open("hukou_transfer", actor="p1", data={"needs_verification": "true"})
    clock.set(at(2026, 10, 8, 10))  # the next working day, inside the 2-day promise
    complete = engine.fire(complete.id, "submit_for_approval", actor="p1")
    # The 交办单 step does not apply to a complete file: it never starts (it used to end breached).
    assert {t.name: t.status for t in complete.timers} == {"submit_complete": "met", "approval": "running"}
    verify = engine.fire(verify.id, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    statuses = {t.name: t.status for t in verify.timers}
    assert "submit_complete" not in statuses and statuses["hand_over"] == "breached"
    # A file said complete and then sent for verification after all: its complete-file step is cancelled.
    changed = engine.open("hukou_transfer", actor="p1")
    changed = engine.fire(changed.id, "hand_over_verification", actor="p1", data={"slip_no": "2"})
    assert changed.timer("submit_complete").status == "cancelled"
    stats = {g.key: g for g in compute_stats(store, by="person", now=clock.now())}
    assert (stats["p1"].finished, stats["p1"].on_time, stats["p1"].late) == (2, 1, 1)


def test_closing_a_case_cancels_its_running_steps(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.close(case.id, actor="p1", reason="申请人撤回")
    assert {t.status for t in case.timers} == {"cancelled"}


# -------------------------------------------------------------------------------- workflow additions

ACTING = """
key: deemed
title: 视为受理
roles: {clerk: 窗口工作人员, reviewer: 审查人员, leader: 负责人}
fields: {ground: {label: 不通知理由, kind: text}, needs_experts: {label: 需专家评审, kind: bool}}
states:
  - {name: received, label: 已收到申请材料, initial: true}
  - {name: awaiting_correction, label: 待补正}
  - {name: reviewing, label: 审查中}
  - {name: decided, label: 已决定, final: true}
transitions:
  - {trigger: notify_correction, from: received, to: awaiting_correction, roles: [clerk]}
  - {trigger: accept, from: [received, awaiting_correction], to: reviewing, roles: [clerk]}
  - {trigger: deem_accepted, from: received, to: reviewing, roles: [clerk], label: 逾期未告知补正，视为受理}
  - {trigger: decide, from: reviewing, to: decided, roles: [reviewer]}
  - {trigger: waive, from: reviewing, internal: true, roles: [leader], requires: [ground],
     grounds: [无法通知, 有碍侦查]}
timers:
  - name: correction_notice
    label: 一次告知补正
    limit: 5 working_days
    basis: 行政许可法 第三十二条第一款第(四)项
    start: {state: received}
    stop: {triggers: [notify_correction, accept, deem_accepted]}
    holder: clerk
    on_expiry: {fire: deem_accepted}
  - name: decision
    label: 作出决定
    limit: 20 working_days
    basis: 行政许可法 第四十二条
    start: {state: reviewing, deemed_from: correction_notice}
    stop: {states: [decided]}
    holder: reviewer
  - name: expert
    label: 专家评审安排
    limit: 2 working_days
    basis: 行政许可法 第四十五条
    start: {state: reviewing, when: {needs_experts: true}}
    stop: {states: [decided]}
    holder: reviewer
  - name: custody
    label: 羁押通知
    limit: 24 hours
    basis: 刑事诉讼法 第八十五条第二款
    start: {trigger: waive}
    stop: {states: [decided]}
    holder: reviewer
    options: {hour_start: exact}
"""


def acting_engine(store: Store, clock: FixedClock, *, people: bool = True) -> Engine:
    registry = WorkflowRegistry([parse_workflow(ACTING, path="deemed.yaml")])
    e = Engine(store, registry=registry, clock=clock, backdate_window=timedelta(days=60))
    if people:
        e.add_person("boss", name="局长", unit="政务中心", roles=["leader"])
        e.add_person("c1", name="窗口", unit="政务中心", roles=["clerk"], leader="boss")
        e.add_person("r1", name="审查", unit="政务中心", roles=["reviewer"], leader="boss")
    return e


def test_a_missed_correction_notice_deems_acceptance_by_itself_at_the_due_instant(store: Store,
                                                                                 clock: FixedClock) -> None:
    engine = acting_engine(store, clock)
    clock.set(at(2026, 11, 2, 10))  # Monday: received
    case = engine.open("deemed", actor="c1")
    assert case.timer("correction_notice").due_at == at(2026, 11, 10)  # 5 working days: 11-09 24:00
    # The scheduler was down for a week; its sweep fires the deemed acceptance at the due instant.
    report = Scheduler(store, config(), clock=clock, engine=engine).sweep(at(2026, 11, 16, 9))
    assert report.expired == 1
    case = engine.get(case.id)
    assert case.state == "reviewing"
    assert case.timer("correction_notice").status == "breached"
    # The decision counts from receipt (Mon 11-02): 20 working days → 11-30.
    assert case.timer("decision").last_day == date(2026, 11, 30)
    assert case.timer("decision").assignee == "r1"
    event = engine.history(case.id)[-1]
    assert (event.kind, event.actor, event.trigger, event.at) == ("expire", "system", "deem_accepted",
                                                                  at(2026, 11, 10))
    assert event.data["expired"]["timer"] == "correction_notice"
    # A correction notice now comes too late: the case was accepted on 11-10 00:00.
    clock.set(at(2026, 11, 16, 10))
    with pytest.raises(Exception, match="cannot be fired in state reviewing"):
        engine.fire(case.id, "notify_correction", actor="c1")
    assert verify(engine) == []


def test_a_command_after_the_due_instant_finds_the_deemed_acceptance_done_first(store: Store,
                                                                                clock: FixedClock) -> None:
    engine = acting_engine(store, clock)
    clock.set(at(2026, 11, 2, 10))
    case = engine.open("deemed", actor="c1")
    clock.set(at(2026, 11, 11, 10))  # no scheduler ran at all
    with pytest.raises(Exception, match="cannot be fired in state reviewing"):
        engine.fire(case.id, "notify_correction", actor="c1")
    kinds = [(e.kind, e.at) for e in engine.history(case.id)]
    assert kinds == [("open", at(2026, 11, 2, 10)), ("expire", at(2026, 11, 10))]
    # Exactly once: the scheduler finds nothing left to do.
    assert Scheduler(store, config(), clock=clock, engine=engine).sweep(at(2026, 11, 11, 11)).expired == 0


def test_on_expiry_fires_exactly_once_with_two_schedulers_on_one_database(db_url: str,  # noqa: F811
                                                                         clock: FixedClock) -> None:
    first, second = Store(db_url), Store(db_url)
    try:
        engines = [acting_engine(first, clock), acting_engine(second, clock, people=False)]
        clock.set(at(2026, 11, 2, 10))
        ids = [engines[0].open("deemed", actor="c1").id for _ in range(6)]
        schedulers = [Scheduler(st, config(), clock=clock, engine=e, owner=f"s{i}")
                      for i, (st, e) in enumerate(zip((first, second), engines, strict=True))]
        barrier = threading.Barrier(2)
        reports = []

        def run(s: Scheduler) -> None:
            barrier.wait()
            reports.append(s.sweep(at(2026, 11, 10, 0, 1)))

        threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sum(r.expired for r in reports) == 6
        for case_id in ids:
            history = engines[0].history(case_id)
            assert [e.kind for e in history] == ["open", "expire"]
            assert engines[0].get(case_id).state == "reviewing"
        assert engines[0].verify_audit() == []
    finally:
        first.dispose()
        second.dispose()


def test_grounds_are_an_enumeration_and_a_step_may_start_only_on_a_route(store: Store, clock: FixedClock) -> None:
    engine = acting_engine(store, clock)
    case = engine.open("deemed", actor="c1", data={"needs_experts": "true"})
    case = engine.fire(case.id, "accept", actor="c1")
    assert case.timer("expert").assignee == "r1"  # "true" given as text meets when: {needs_experts: true}
    with pytest.raises(CommandError, match=r"only the grounds '无法通知', '有碍侦查'; got '有碍侦查\(盗窃案\)'"):
        engine.fire(case.id, "waive", actor="boss", data={"ground": "有碍侦查(盗窃案)"})
    case = engine.fire(case.id, "waive", actor="boss", data={"ground": "无法通知"})
    assert case.timer("custody").status == "running"
    other = engine.open("deemed", actor="c1", data={"needs_experts": False})
    other = engine.fire(other.id, "accept", actor="c1")
    assert "expert" not in {t.name for t in other.timers}


def test_hour_limits_escalate_within_hours_holidays_included(store: Store, clock: FixedClock) -> None:
    engine = acting_engine(store, clock)
    case = engine.open("deemed", actor="c1")
    case = engine.fire(case.id, "accept", actor="c1")
    clock.set(at(2026, 9, 30, 22))
    case = engine.fire(case.id, "waive", actor="boss", data={"ground": "无法通知"})
    custody = case.timer("custody")
    assert custody.due_at == at(2026, 10, 1, 22)
    assert custody.escalate_at == at(2026, 10, 1, 23)  # not 2026-10-08: holidays do not wait
    scheduler = Scheduler(store, config(), clock=clock, engine=engine)
    assert dict(scheduler.sweep(at(2026, 10, 1, 16, 1)).raised) == {"warning": 1}  # a quarter of 24 h before
    assert dict(scheduler.sweep(at(2026, 10, 1, 22, 1)).raised) == {"overdue": 1}
    assert dict(scheduler.sweep(at(2026, 10, 1, 23, 1)).raised) == {"escalated": 1}
    with store.session() as s:
        rows = s.execute(sa.select(ALERTS.c.level, ALERTS.c.to_person).order_by(ALERTS.c.id)).all()
        sent = s.execute(sa.select(OUTBOX.c.recipient)).scalars().all()
    # r1 must act; the escalation goes to r1's leader.
    assert [tuple(r) for r in rows] == [("warning", "r1"), ("overdue", "r1"), ("escalated", "boss")]
    assert sorted(sent) == ["boss", "r1", "r1"]


# -------------------------------------------------------------------------------------------- validation

BASE = ACTING.split("timers:", maxsplit=1)[0] + "timers:\n"


@pytest.mark.parametrize(("timer", "field", "message"), [
    ("""  - {name: t, label: 决定, limit: 2 working_days, basis: 第四十二条, start: {state: reviewing},
     stop: {states: [decided]}, holder: clerk}""", "timers[0].holder",
     "no transition that stops it ('decide') is allowed to that role"),
    ("""  - {name: t, label: 告知, limit: 5 working_days, basis: 第三十二条, start: {state: received},
     stop: {triggers: [accept]}, on_expiry: {fire: decide}}""", "timers[0].on_expiry.fire",
     "not allowed from state(s) 'awaiting_correction', 'received'"),
    ("""  - {name: t, label: 告知, limit: 5 working_days, basis: 第三十二条, start: {state: received},
     stop: {triggers: [accept]}, holder: nobody}""", "timers[0].holder", "unknown role 'nobody'"),
])
def test_validation_refuses_a_holder_nobody_can_act_for_and_an_expiry_that_cannot_fire(
        timer: str, field: str, message: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(BASE + timer + "\n", path="bad.yaml")
    text = str(caught.value)
    assert message in text and "bad.yaml" in text and field in text
    assert caught.value.line is not None


def test_validation_refuses_grounds_on_a_transition_that_takes_no_ground() -> None:
    text = ACTING.replace("requires: [ground],\n     grounds:", "\n     grounds:")
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(text, path="bad.yaml")
    assert "takes no 'ground' field" in str(caught.value) and "transitions[4].grounds" in str(caught.value)
    assert caught.value.line == 17


def test_the_shipped_workflows_name_a_holder_for_every_timer() -> None:
    registry = WorkflowRegistry.load(shipped_workflows_dir())
    missing = [(d.key, t.name) for d in registry for t in d.timers if t.holder is None]
    assert missing == []


# ------------------------------------------------------------------------------------------- migration


def test_migration_0004_puts_old_timers_on_the_responsible_person(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url, upgrade=False)
    old.upgrade("0003")
    with old.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO caseflow_workflow_versions (version, key, title, text, loaded_at) "
            "VALUES ('v1', 'hukou_transfer', 't', '{}', '2026-09-30 01:00:00')"))
        conn.execute(sa.text(
            "INSERT INTO caseflow_cases (id, workflow_key, workflow_version, state, version, responsible_id, unit, "
            "opened_by, opened_at, updated_at, data) VALUES (1, 'hukou_transfer', 'v1', 'verifying', 2, 'p1', "
            "'所', 'p1', '2026-09-30 01:00:00', '2026-09-30 01:00:00', '{}')"))
        for i, status in enumerate(["running", "met", "stopped", "breached"]):
            conn.execute(sa.text(
                "INSERT INTO caseflow_timers (case_id, name, round, status, kind, limit_spec, started_at, pauses, "
                "extensions, provisional) VALUES (1, :n, 1, :s, 'promised', :l, '2026-09-30 01:00:00', '[]', '[]', 0)"
            ), {"n": f"t{i}", "s": status, "l": json.dumps({"amount": 3, "unit": "working_days"})})
    old.dispose()
    with pytest.raises(Exception, match="caseflow db upgrade"):
        Store(url)
    new = Store(url, upgrade=True)
    with new.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, status, assignee FROM caseflow_timers ORDER BY name")).all()
    assert [tuple(r) for r in rows] == [("t0", "running", "p1"), ("t1", "met", "p1"), ("t2", "cancelled", "p1"),
                                        ("t3", "breached", "p1")]
    new.dispose()


# ------------------------------------------------------------------------------------------ the shells


def test_cli_assigns_hands_over_a_step_and_shows_who_acts(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from caseflow.cli import cli

    db = str(tmp_path / "cli.db")
    # The CLI's clock is fixed (CASEFLOW_NOW), so the test does not depend on today's date.
    runner = CliRunner(env={"CASEFLOW_NOW": "2026-09-30T10:30"})

    def run(*args: str) -> dict[str, object]:
        result = runner.invoke(cli, [*args, "--db", db, "--json", "--at", "2026-09-30T10:00"])
        assert result.exit_code == 0, result.output
        payload: dict[str, object] = json.loads(result.output)
        return payload

    for pid, role, leader in (("l1", "station_leader", None), ("p2", "community_police", "l1"),
                              ("p3", "community_police", "l1"), ("p1", "household_police", "l1")):
        args = ["people", "add", pid, "--name", pid, "--unit", STATION, "--role", role]
        assert runner.invoke(cli, [*args, *(["--leader", leader] if leader else []), "--db", db]).exit_code == 0
    case = run("case", "open", "hukou_transfer", "--actor", "p1")
    fired = run("case", "fire", str(case["id"]), "hand_over_verification", "--actor", "p1", "--data", "slip_no=1",
                "--assign", "p3")
    timers = {t["name"]: t for t in fired["timers"]}  # type: ignore[attr-defined]
    assert timers["verification"]["assignee"] == "p3"
    moved = run("case", "hand-over-step", str(case["id"]), "--timer", "verification", "--to", "p2",
                "--actor", "p3", "--reason", "辖区调整")
    assert [t["assignee"] for t in moved["timers"] if t["name"] == "verification"] == ["p2"]  # type: ignore[attr-defined]
    refused = runner.invoke(cli, ["case", "hand-over-step", str(case["id"]), "--timer", "verification", "--to", "p1",
                                  "--actor", "p2", "--reason", "x", "--db", db, "--at", "2026-09-30T10:00"])
    assert refused.exit_code != 0 and "community_police" in refused.output and "Traceback" not in refused.output


def test_api_takes_assign_and_hands_over_a_step(db_url: str, clock: FixedClock) -> None:  # noqa: F811
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        from caseflow.tokens import create_token
        from caseflow.web import create_app
    st = Store(db_url)
    try:
        e = Engine(st, clock=clock)
        e.add_person("l1", name="王所长", unit=STATION, roles=["station_leader"])
        e.add_person("p2", name="李社区", unit=STATION, roles=["community_police"], leader="l1")
        e.add_person("p3", name="赵社区", unit=STATION, roles=["community_police"], leader="l1")
        e.add_person("p1", name="张户籍", unit=STATION, roles=["household_police"], leader="l1")
        tokens = {pid: create_token(st, pid) for pid in ("p1", "p2")}
        with TestClient(create_app(engine=e)) as client:
            def h(who: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {tokens[who]}"}

            case = client.post("/api/v1/cases", json={"workflow": "hukou_transfer"}, headers=h("p1")).json()
            r = client.post(f"/api/v1/cases/{case['id']}/fire", headers=h("p1"), json={
                "trigger": "hand_over_verification", "data": {"slip_no": "1"}, "assign": "p2"})
            assert r.status_code == 200, r.text
            assert [t["assignee"] for t in r.json()["timers"] if t["name"] == "verification"] == ["p2"]
            r = client.post(f"/api/v1/cases/{case['id']}/hand-over-step", headers=h("p2"),
                            json={"timer": "verification", "to": "p3", "reason": "辖区调整"})
            assert r.status_code == 200, r.text
            assert [t["assignee"] for t in r.json()["timers"] if t["name"] == "verification"] == ["p3"]
            r = client.post(f"/api/v1/cases/{case['id']}/hand-over-step", headers=h("p2"),
                            json={"timer": "verification", "to": "p1", "reason": "x"})
            assert r.status_code in (403, 409) and r.headers["content-type"].startswith("application/problem+json")
    finally:
        st.dispose()
