"""The engine, as a contract that holds on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from caseflow.calendar import ZONE, WorkCalendar
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.errors import (
    BackdatingError,
    CaseNotFoundError,
    CommandError,
    ConflictError,
    PermissionDeniedError,
    PersonNotFoundError,
    TimerError,
    TransitionError,
)
from caseflow.registry import WorkflowRegistry
from caseflow.store import Store
from caseflow.workflowfile import parse_workflow, shipped_workflows_dir
from storefixtures import db_url  # noqa: F401 - fixture

T0 = datetime(2026, 9, 30, 9, 0, tzinfo=ZONE)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def store(db_url: str) -> Store:  # noqa: F811
    s = Store(db_url)
    yield s  # type: ignore[misc]
    s.dispose()


@pytest.fixture
def engine(store: Store, clock: FixedClock) -> Engine:
    e = Engine(store, clock=clock)
    e.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader", "leader"])
    e.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1")
    e.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], leader="l1", substitute="p2")
    e.add_person("i1", name="赵侦查", unit="刑侦大队", roles=["investigator"], leader="l1")
    e.add_person("admin", name="管理员", unit="城关派出所", admin=True)
    return e


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZONE)  # type: ignore[misc]


def event_count(engine: Engine, case_id: int) -> int:
    return len(engine.history(case_id))


# ------------------------------------------------------------------------------------------ commands


def test_opening_starts_the_initial_timers_and_makes_the_opener_responsible(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1", data={"applicant": "李四", "needs_verification": "true"})
    assert case.state == "accepted" and case.version == 1
    assert case.responsible == "p1" and case.unit == "城关派出所"
    assert {t.name for t in case.timers} == {"hand_over"}  # the verification route states its 交办单 step only
    assert engine.history(case.id)[0].kind == "open"


def test_hukou_verification_runs_three_working_days_across_national_day(engine: Engine,
                                                                        clock: FixedClock) -> None:
    case = engine.open("hukou_transfer", actor="p1", data={"needs_verification": True})
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    verification = case.timer("verification")
    # Accepted Wed 09-30; 10-01..07 National Day; Thu 10-08 (1), Fri 10-09 (2), make-up Sat 10-10 (3).
    assert verification.last_day == date(2026, 10, 10)
    assert verification.due_at == at(2026, 10, 11)
    assert case.timer("hand_over").status == "met"


def test_a_pause_excludes_the_days_from_pause_to_the_day_before_resuming(engine: Engine,
                                                                          clock: FixedClock) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    clock.set(at(2026, 9, 30, 10))
    case = engine.pause(case.id, "verification", reason="函调", actor="p2")
    assert case.timer("verification").status == "paused"
    clock.set(at(2026, 10, 9, 9))
    case = engine.resume(case.id, "verification", actor="p2")
    # 09-30..10-08 excluded; 10-09 (1), Sat 10-10 make-up (2), Mon 10-12 (3).
    assert case.timer("verification").last_day == date(2026, 10, 12)


def test_a_pause_reason_the_timer_does_not_admit_is_refused(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    with pytest.raises(TimerError, match=r"出差.*函调"):
        engine.pause(case.id, "verification", reason="出差", actor="p2")
    assert engine.get(case.id).version == case.version


def test_a_trigger_needs_a_role_and_nothing_changes_when_refused(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    with pytest.raises(PermissionDeniedError, match="household_police"):
        engine.fire(case.id, "hand_over_verification", actor="p2", data={"slip_no": "JB-1"})
    after = engine.get(case.id)
    assert after.version == case.version and after.state == "accepted"
    assert event_count(engine, case.id) == 1


def test_an_impossible_trigger_names_the_state_and_the_allowed_triggers(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    with pytest.raises(TransitionError, match=r"accepted.*hand_over_verification"):
        engine.fire(case.id, "complete", actor="p1")
    with pytest.raises(TransitionError, match="no trigger 'fly'"):
        engine.fire(case.id, "fly", actor="p1")


def test_required_data_is_enforced(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    with pytest.raises(CommandError, match="slip_no"):
        engine.fire(case.id, "hand_over_verification", actor="p1")


def test_unknown_case_and_person_are_lookup_errors(engine: Engine) -> None:
    with pytest.raises(CaseNotFoundError):
        engine.get(999)
    with pytest.raises(LookupError, match="nobody"):
        engine.open("hukou_transfer", actor="nobody")


def test_an_idempotency_key_returns_the_first_result_and_changes_nothing(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1", key="open-1")
    again = engine.open("hukou_transfer", actor="p1", key="open-1")
    assert again.id == case.id
    fired = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"}, key="fire-1")
    retried = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"}, key="fire-1")
    assert retried.version == fired.version == 2
    assert event_count(engine, case.id) == 2


def test_a_stale_expected_version_is_a_conflict(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    engine.hand_over(case.id, to="p2", actor="p1", slip="JB-9")
    with pytest.raises(ConflictError, match="version 2, not 1"):
        engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"}, expected_version=1)


def test_back_dating_beyond_the_window_and_future_instants_are_refused(engine: Engine) -> None:
    with pytest.raises(BackdatingError, match="before now"):
        engine.open("hukou_transfer", actor="p1", at=T0 - timedelta(days=4))
    with pytest.raises(BackdatingError, match="future"):
        engine.open("hukou_transfer", actor="p1", at=T0 + timedelta(hours=1))
    case = engine.open("hukou_transfer", actor="p1", at=T0 - timedelta(days=2))
    assert case.opened_at == T0 - timedelta(days=2)


def test_naive_instants_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="naive"):
        engine.open("hukou_transfer", actor="p1", at=datetime(2026, 9, 30, 9))


def test_hand_over_makes_the_receiver_responsible(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.hand_over(case.id, to="p2", actor="p1", slip="JB-2026-0001")
    assert case.responsible == "p2"
    assert engine.history(case.id)[-1].data["slip"] == "JB-2026-0001"
    assert [i.case_id for i in engine.queue("p2")] == [case.id] * len(engine.queue("p2"))
    with pytest.raises(PermissionDeniedError):
        engine.hand_over(case.id, to="p1", actor="i1")


def test_an_absent_persons_queue_goes_to_the_substitute(engine: Engine, clock: FixedClock) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    engine.mark_absent("p1", start=date(2026, 9, 30), end=date(2026, 10, 9))
    assert engine.queue("p1") == []
    items = engine.queue("p2")
    assert items and all(i.case_id == case.id and i.via_substitute_for == "p1" for i in items)
    clock.set(at(2026, 10, 12, 9))
    assert engine.queue("p1") and not engine.queue("p2")


def test_queue_puts_overdue_first_then_least_time_left(engine: Engine, clock: FixedClock) -> None:
    first = engine.open("hukou_transfer", actor="p1", data={"needs_verification": "true"})  # 交办单 that day
    clock.set(at(2026, 10, 8, 9))
    engine.open("hukou_transfer", actor="p1")
    clock.set(at(2026, 10, 9, 9))
    items = engine.queue("p1")
    assert items[0].case_id == first.id and items[0].overdue
    dues = [i.due_at for i in items if i.due_at]
    assert dues == sorted(dues)


def test_custody_limits_extend_only_within_article_91(engine: Engine, clock: FixedClock) -> None:
    case = engine.open("criminal_detention", actor="i1", data={"suspect": "某甲"})
    arrest = case.timer("arrest_request")
    assert arrest.last_day == date(2026, 10, 3)  # 3 days in custody: no roll past National Day
    with pytest.raises(PermissionDeniedError):
        engine.extend(case.id, "arrest_request", by="4 days", grounds="特殊情况", actor="i1")
    with pytest.raises(TimerError, match="at most 4"):
        engine.extend(case.id, "arrest_request", by="5 days", grounds="特殊情况", actor="l1")
    case = engine.extend(case.id, "arrest_request", by="4 days", grounds="特殊情况", actor="l1")
    assert case.timer("arrest_request").last_day == date(2026, 10, 7)
    case = engine.extend(case.id, "arrest_request", by="23 days", grounds="流窜作案", actor="l1")
    assert case.timer("arrest_request").last_day == date(2026, 10, 30)  # 30 days in all
    with pytest.raises(TimerError):
        engine.extend(case.id, "arrest_request", by="1 days", grounds="流窜作案", actor="l1")


def test_an_extension_after_the_limit_ran_out_is_refused(engine: Engine, clock: FixedClock) -> None:
    case = engine.open("criminal_detention", actor="i1")
    clock.set(at(2026, 10, 4, 0, 30))
    with pytest.raises(TimerError, match="ran out"):
        engine.extend(case.id, "arrest_request", by="4 days", grounds="特殊情况", actor="l1")


def test_release_ends_every_timer(engine: Engine) -> None:
    case = engine.open("criminal_detention", actor="i1")
    case = engine.fire(case.id, "release", actor="l1", data={"reason": "不应拘留"})
    assert case.closed_at is not None
    assert all(t.status in ("cancelled", "met") for t in case.timers)
    with pytest.raises(CommandError, match="closed"):
        engine.fire(case.id, "release", actor="l1", data={"reason": "x"})


def test_an_hour_limit_runs_on_the_clock(engine: Engine) -> None:
    case = engine.open("criminal_detention", actor="i1")
    assert case.timer("deliver_to_detention_centre").due_at == T0 + timedelta(hours=24)


def test_close_stops_timers_and_needs_a_reason(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    with pytest.raises(CommandError, match="reason"):
        engine.close(case.id, actor="p1", reason=" ")
    case = engine.close(case.id, actor="p1", reason="申请人撤回")
    assert case.closed_at is not None and all(t.status == "cancelled" for t in case.timers)


def test_a_case_keeps_the_definition_it_was_opened_under(store: Store, clock: FixedClock) -> None:
    path = shipped_workflows_dir() / "hukou_transfer.yaml"
    original = parse_workflow(path.read_text(encoding="utf-8"), path=str(path))
    engine = Engine(store, clock=clock, registry=WorkflowRegistry([original]))
    engine.add_person("p1", name="张", unit="u", roles=["household_police"])
    case = engine.open("hukou_transfer", actor="p1")
    changed_text = path.read_text(encoding="utf-8").replace("limit: 3 working_days", "limit: 5 working_days")
    changed = parse_workflow(changed_text, path="changed.yaml")
    assert changed.version != original.version
    later = Engine(store, clock=clock, registry=WorkflowRegistry([changed]))
    case = later.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    assert case.timer("verification").limit == "3 working_days"
    fresh = later.open("hukou_transfer", actor="p1")
    fresh = later.fire(fresh.id, "hand_over_verification", actor="p1", data={"slip_no": "2"})
    assert fresh.timer("verification").limit == "5 working_days"


# ------------------------------------------------------------------------------------ calendar reload


def test_loading_a_holiday_notice_moves_provisional_deadlines_and_records_it(
    engine: Engine, clock: FixedClock, tmp_path: Path
) -> None:
    clock.set(at(2026, 12, 30, 9))
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    before = case.timer("verification")
    # 3 working days from Wed 12-30: 12-31, then projected 2027 (01-01 元旦 only): 01-04, 01-05.
    assert before.provisional and before.last_day == date(2027, 1, 5)
    notice = tmp_path / "2027.yaml"
    notice.write_text("year: 2027\nsource: test notice\nholidays:\n"
                      "  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}\n"
                      "  - {name: 测试, from: 2026-12-31, to: 2026-12-31}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="outside the file's year"):
        WorkCalendar.load([tmp_path])
    notice.write_text("year: 2027\nsource: test notice\nholidays:\n"
                      "  - {name: 元旦, from: 2027-01-01, to: 2027-01-04}\n"
                      "statutory_only: [春节, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n", encoding="utf-8")
    changes = engine.reload_calendar(WorkCalendar.load([tmp_path]), source=str(notice))
    after = engine.get(case.id).timer("verification")
    assert not after.provisional
    assert after.last_day == date(2027, 1, 6)  # 01-01..04 rest under the notice: 01-05, 01-06
    assert any(c["case"] == case.id for c in changes)
    last = engine.history(case.id)[-1]
    assert last.kind == "recompute" and str(notice) in last.data["moved"][0]["message"]


# -------------------------------------------------------------------------------------------- audit


def test_audit_finds_an_edited_a_deleted_and_an_inserted_event(engine: Engine, store: Store) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    engine.hand_over(case.id, to="p2", actor="p1")
    assert engine.verify_audit() == []
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE caseflow_events SET data = '{\"slip\":\"forged\"}' "
                             "WHERE case_id = :c AND seq = 3"), {"c": case.id})
    problems = engine.verify_audit()
    assert any(p.seq == 3 and "edited" in p.problem for p in problems)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM caseflow_events WHERE case_id = :c AND seq = 2"), {"c": case.id})
    problems = engine.verify_audit()
    assert any("#2 is missing" in p.problem for p in problems)


def test_audit_finds_a_truncated_history(engine: Engine, store: Store) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    engine.hand_over(case.id, to="p2", actor="p1")
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM caseflow_events WHERE case_id = :c AND seq = 2"), {"c": case.id})
    assert any("version 2" in p.problem for p in engine.verify_audit())


# -------------------------------------------------------------------------------------- concurrency


def test_eight_concurrent_workers_one_winner_per_version_no_event_lost(db_url: str) -> None:  # noqa: F811
    clock = FixedClock(T0)
    setup = Engine(Store(db_url), clock=clock)
    setup.add_person("admin", name="管理员", unit="u", admin=True)
    setup.add_person("p1", name="张", unit="u", roles=["household_police"])
    case = setup.open("hukou_transfer", actor="p1")
    wins: list[int] = []
    conflicts: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        engine = Engine(Store(db_url), clock=clock)
        for _ in range(6):
            version = engine.get(case.id).version
            try:
                engine.hand_over(case.id, to="p1" if n % 2 else "admin", actor="admin", expected_version=version)
            except ConflictError:
                with lock:
                    conflicts.append(version)
            else:
                with lock:
                    wins.append(version)
        engine.store.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = setup.get(case.id)
    assert len(wins) == len(set(wins)), "two workers won the same version"
    assert final.version == 1 + len(wins)
    assert len(setup.history(case.id)) == final.version
    assert setup.verify_audit() == []
    assert len(wins) + len(conflicts) == 48


def test_a_killed_process_leaves_no_partial_case(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    Store(db_url).dispose()
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        from datetime import datetime
        from caseflow.calendar import ZONE
        from caseflow.clock import FixedClock
        from caseflow.engine import Engine
        from caseflow.store import Store
        e = Engine(Store({db_url!r}), clock=FixedClock(datetime(2026, 9, 30, 9, tzinfo=ZONE)))
        e.add_person("p1", name="张", unit="u", roles=["household_police"], replace=True)
        print("ready", flush=True)
        while True:
            c = e.open("hukou_transfer", actor="p1")
            e.fire(c.id, "hand_over_verification", actor="p1", data={{"slip_no": "x"}})
            e.hand_over(c.id, to="p1", actor="p1")
    """), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    proc.kill()
    proc.wait()
    engine = Engine(Store(db_url), clock=FixedClock(T0))
    cases = engine.cases(open_only=False, limit=100000)
    assert cases, "the worker opened no case before it was killed"
    assert engine.verify_audit() == []
    for case in cases:
        history = engine.history(case.id)
        assert len(history) == case.version
        states = {"accepted": 1, "verifying": 2}
        assert case.version >= states[case.state]
        if case.state == "verifying":
            assert case.timer("verification").status == "running"


def test_json_shape_of_a_case(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    data = json.loads(json.dumps(case.to_dict()))
    assert {"id", "workflow", "state", "version", "responsible", "timers"} <= set(data)
    assert {"name", "status", "due_at", "last_day", "provisional"} <= set(data["timers"][0])


def test_a_missed_correction_notice_deems_acceptance_at_receipt(store: Store, clock: FixedClock) -> None:
    """行政许可法 第三十二条第一款第(四)项: 逾期不告知的，自收到申请材料之日起即为受理."""
    engine = Engine(store, clock=clock, backdate_window=timedelta(days=60))
    engine.add_person("c1", name="窗口", unit="政务中心", roles=["clerk", "reviewer"])
    clock.set(at(2026, 11, 2, 10))
    on_time = engine.open("admin_license", actor="c1")
    late = engine.open("admin_license", actor="c1")
    clock.set(at(2026, 11, 6, 10))  # 4th working day: in time
    on_time = engine.fire(on_time.id, "accept", actor="c1", data={"certificate_no": "A1"})
    assert on_time.timer("correction_notice").status == "met"
    # decision: 20 working days from Fri 11-06 → 12-04
    assert on_time.timer("decision").last_day == date(2026, 12, 4)
    clock.set(at(2026, 11, 10, 10))  # the 5 working days ran out on 11-09
    # Acceptance was deemed by itself at 11-10 00:00 (on_expiry deem_accept): a late acceptance is refused.
    with pytest.raises(TransitionError, match="reviewing"):
        engine.fire(late.id, "accept", actor="c1", data={"certificate_no": "A2"})
    late = engine.get(late.id)
    assert late.state == "reviewing" and late.timer("correction_notice").status == "breached"
    # deemed accepted at receipt (Mon 11-02): 20 working days → 11-30
    assert late.timer("decision").last_day == date(2026, 11, 30)


def test_time_left_counts_working_days_late(engine: Engine, clock: FixedClock) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    clock.set(at(2026, 10, 14, 9))  # verification's last day was Sat 10-10 (make-up day)
    # Issue 8: the verification is the 社区民警's step, in p2's queue (it used to sit in the clerk's).
    item = next(i for i in engine.queue("p2") if i.timer == "verification")
    # 10-12 and 10-13 have passed and 10-14 has begun: as the leaders' digest counts it
    assert item.overdue and item.time_left == "逾期 3 个工作日"


def test_two_engines_opening_the_first_case_of_a_version_at_once(db_url: str) -> None:  # noqa: F811
    Engine(Store(db_url), clock=FixedClock(T0)).add_person("p1", name="张", unit="u", roles=["household_police"])
    engines = [Engine(Store(db_url), clock=FixedClock(T0)) for _ in range(4)]
    errors: list[Exception] = []

    def open_one(e: Engine) -> None:
        try:
            e.open("hukou_transfer", actor="p1")
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(engines[0].cases()) == 4


def test_audit_finds_a_history_rewritten_after_its_last_event(engine: Engine, store: Store) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    engine.hand_over(case.id, to="p2", actor="p1")
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE caseflow_cases SET last_event_hash = :h WHERE id = :c"),
                     {"h": "f" * 64, "c": case.id})
    assert any("rewritten" in p.problem for p in engine.verify_audit())


def test_when_the_whole_substitute_chain_is_absent_the_leader_answers(engine: Engine) -> None:
    case = engine.open("hukou_transfer", actor="p1")
    engine.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1",
                      substitute="p1", replace=True)
    engine.mark_absent("p1", start=date(2026, 9, 30), end=date(2026, 10, 9))
    engine.mark_absent("p2", start=date(2026, 9, 30), end=date(2026, 10, 9))
    assert engine.queue("p2") == []
    items = engine.queue("l1")
    assert items and all(i.case_id == case.id and i.via_substitute_for == "p1" for i in items)


# ------------------------------------------------------------------------------ across units, admins


def test_a_case_crosses_units_only_by_someone_who_leads_both(engine: Engine) -> None:
    engine.add_person("xl", name="东关所长", unit="东关派出所", roles=["station_leader"])
    engine.add_person("x1", name="陈户籍", unit="东关派出所", roles=["household_police"], leader="xl")
    case = engine.open("hukou_transfer", actor="p1")
    with pytest.raises(PersonNotFoundError) as other:
        engine.hand_over(case.id, to="x1", actor="p1")
    with pytest.raises(PersonNotFoundError) as missing:
        engine.hand_over(case.id, to="x9", actor="p1")
    assert str(other.value).replace("x1", "?") == str(missing.value).replace("x9", "?")
    with pytest.raises(PersonNotFoundError):  # l1 leads 城关 and 刑侦大队, not 东关
        engine.reassign(case.id, to="x1", actor="l1")
    moved = engine.reassign(case.id, to="i1", actor="l1", reason="转刑侦")  # l1 leads both
    assert moved.unit == "刑侦大队"
    back = engine.hand_over(case.id, to="p1", actor="admin")  # an administrator may
    assert back.unit == "城关派出所"
    assert engine.hand_over(case.id, to="p2", actor="p1").responsible == "p2"  # within the unit: anyone
    assert engine.verify_audit() == []


def test_the_last_administrator_cannot_be_demoted(engine: Engine) -> None:
    with pytest.raises(CommandError, match="last administrator"):
        engine.add_person("admin", name="管理员", unit="城关派出所", admin=False, replace=True)
    assert engine.person("admin").admin
    engine.add_person("admin2", name="副管理员", unit="城关派出所", admin=True)
    engine.add_person("admin", name="管理员", unit="城关派出所", admin=False, replace=True)
    assert not engine.person("admin").admin
    with pytest.raises(CommandError, match="last administrator"):
        engine.add_person("admin2", name="副管理员", unit="城关派出所", replace=True)
