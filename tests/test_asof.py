"""Numbers a leader can trust: a digest and statistics asked "as of T" equal what a sweep at T showed.

The scenario runs on a simulated clock. At T the scheduler really sweeps and the leader's digest and
the month's figures are taken; afterwards the cases move on (steps met late, a pause that holds the
clock, a pause that ends, a case finished). Asked again later "as of T", the digest and the figures are
rebuilt from the recorded instants and must be what they were at T, in every format.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from caseflow import ZONE, Engine, FixedClock, Store
from caseflow.asof import timers_as_of
from caseflow.board import board_data
from caseflow.config import NotifyConfig
from caseflow.digest import build_digest, render_digest
from caseflow.notify import LogNotifier
from caseflow.registry import WorkflowRegistry
from caseflow.scheduler import Scheduler
from caseflow.stats import compute_stats

T = datetime(2026, 10, 26, 8, 30, tzinfo=ZONE)  # a Monday morning, when the digests go out


def bj(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Engine, FixedClock, Scheduler]]:
    store = Store(f"sqlite:///{tmp_path / 'asof.db'}")
    clock = FixedClock(bj("2026-10-19T09:00"))
    engine = Engine(store, clock=clock, registry=WorkflowRegistry.load())
    engine.add_person("wang", name="所长 王海", unit="城关派出所", roles=("station_leader",))
    engine.add_person("zhang", name="户籍民警 张丽", unit="城关派出所", roles=("household_police",), leader="wang")
    engine.add_person("li", name="社区民警 李军", unit="城关派出所", roles=("community_police",), leader="wang")
    scheduler = Scheduler(store, NotifyConfig(), clock=clock, notifiers={"log": LogNotifier()})
    yield engine, clock, scheduler
    store.dispose()


def _open(engine: Engine, clock: FixedClock, when: str, no: str) -> int:
    clock.set(bj(when))
    return engine.open("hukou_transfer", actor="zhang",
                       data={"applicant": "李四", "phone": "13812345678", "no": no}).id


def _fire(engine: Engine, clock: FixedClock, when: str, case: int, trigger: str, actor: str,  # noqa: PLR0917
          **data: str) -> None:
    clock.set(bj(when))
    engine.fire(case, trigger, actor=actor, data=data)


def test_digest_and_stats_as_of_t_equal_what_a_sweep_at_t_showed(
        world: tuple[Engine, FixedClock, Scheduler]) -> None:
    engine, clock, scheduler = world
    store = engine.store
    # a: verification due 10-22 24:00 — overdue at T, met late afterwards.
    a = _open(engine, clock, "2026-10-19T09:00", "A")
    _fire(engine, clock, "2026-10-19T10:00", a, "hand_over_verification", "zhang", slip_no="JB-1")
    # b: a complete file, approved in time before T (a finished step in the month).
    b = _open(engine, clock, "2026-10-20T09:00", "B")
    _fire(engine, clock, "2026-10-20T11:00", b, "submit_for_approval", "zhang")
    _fire(engine, clock, "2026-10-21T11:00", b, "approve_at_station", "wang")
    # c: paused for 函调 before T, resumed after T.
    c = _open(engine, clock, "2026-10-21T09:00", "C")
    _fire(engine, clock, "2026-10-21T10:00", c, "hand_over_verification", "zhang", slip_no="JB-3")
    clock.set(bj("2026-10-22T15:00"))
    engine.pause(c, "verification", reason="函调", actor="li")
    # d: verification due 10-27 24:00 — due the next working day at T; paused (uncapped) after T.
    d = _open(engine, clock, "2026-10-22T09:00", "D")
    _fire(engine, clock, "2026-10-22T10:00", d, "hand_over_verification", "zhang", slip_no="JB-4")

    clock.set(T)
    scheduler.run_once(T, digests=True)
    live = build_digest(store, "wang", T)
    live_texts = {fmt: render_digest(live, fmt) for fmt in ("text", "markdown", "html")}
    live_stats = [g.to_dict() for g in compute_stats(store, month="2026-10", by="unit", until=T, now=T)]
    live_open = {(r.id, r.status, r.due_at) for r in timers_as_of(store, T, open_only=True)}
    live_board = board_data(engine, None, T)
    assert [o["case"] for o in live_board["overdue"]] == [a, b]
    assert [i.case_id for i in live.overdue] == [a, b]  # b: 办结通知 due 10-22 24:00
    assert d in [i.case_id for i in live.due_next]

    # Life goes on after T.
    _fire(engine, clock, "2026-10-26T10:00", a, "return_verification", "li")
    clock.set(bj("2026-10-26T12:00"))
    engine.pause(d, "verification", reason="函调", actor="li")
    clock.set(bj("2026-10-28T09:00"))
    engine.resume(c, "verification", actor="li")
    _fire(engine, clock, "2026-10-28T10:00", b, "complete", "zhang")
    clock.set(bj("2026-10-28T18:00"))
    scheduler.run_once(bj("2026-10-28T18:00"))

    later = build_digest(store, "wang", T)
    assert {fmt: render_digest(later, fmt) for fmt in live_texts} == live_texts
    assert [g.to_dict() for g in compute_stats(store, month="2026-10", by="unit", until=T, now=T)] == live_stats
    assert {(r.id, r.status, r.due_at) for r in timers_as_of(store, T, open_only=True)} == live_open
    assert board_data(engine, None, T) == live_board
    # And today's digest is a different one: a is no longer overdue, d's clock is held by 函调.
    today = build_digest(store, "wang", bj("2026-10-28T18:00"))
    assert [i.case_id for i in today.overdue] == [] and d not in [i.case_id for i in today.due_next]
