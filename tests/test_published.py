"""One truth for every process: holiday notices and workflow definitions live in the database.

A notice loaded through one process governs the next command of every other — another engine, another
process, the scheduler — with no restart; the recompute at load and any later command agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.notices import arrangement_yaml, read_notice
from caseflow.published import stored_notices
from caseflow.registry import WorkflowRegistry
from caseflow.scheduler import Scheduler
from caseflow.store import Store
from caseflow.workflowfile import parse_workflow, shipped_workflows_dir
from storefixtures import db_url  # noqa: F401 - fixture

# A test fixture, NOT the 2027 notice (none is among our sources): 元旦 01-01..01-04, the rest by statute.
NOTICE_2027 = ("year: 2027\nsource: 测试用通知 (fixture)\nholidays:\n"
               "  - {name: 元旦, from: 2027-01-01, to: 2027-01-04}\n"
               "statutory_only: [春节, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n")
ROOT = Path(__file__).resolve().parents[1]


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZONE)  # type: ignore[misc]


class Office:
    """Two engines on one database, as two API workers would hold them (each its own pool and calendar)."""

    def __init__(self, url: str) -> None:
        self.clock = FixedClock(at(2026, 12, 30, 9))
        self.stores = [Store(url), Store(url)]
        self.a, self.b = (Engine(s, clock=self.clock) for s in self.stores)
        self.a.add_person("c1", name="窗口甲", unit="政务中心", roles=["clerk", "reviewer"])
        self.a.add_person("admin", name="管理员", unit="政务中心", admin=True)

    def close(self) -> None:
        for s in self.stores:
            s.dispose()


@pytest.fixture
def office(db_url: str) -> Iterator[Office]:  # noqa: F811
    o = Office(db_url)
    yield o
    o.close()


def load(engine: Engine, text: str = NOTICE_2027) -> list[dict[str, object]]:
    arrangement = read_notice("2027.yaml (upload)", text=text)
    return engine.load_notice(arrangement, text, fmt="yaml", actor="admin")


def test_a_notice_loaded_through_one_engine_governs_the_next_command_of_another(office: Office) -> None:
    # 5 working days from Wed 2026-12-30 (行政许可法 第三十二条 一次告知补正): 12-31, then 2027.
    case = office.b.open("admin_license", actor="c1")
    before = case.timer("correction_notice")
    assert before.provisional and before.last_day == date(2027, 1, 7)  # projection: 元旦 on 01-01 only
    changes = load(office.a)
    # The recompute at load moved the case opened before it ...
    assert [c["case"] for c in changes] == [case.id]
    moved = office.a.get(case.id).timer("correction_notice")
    assert not moved.provisional and moved.last_day == date(2027, 1, 8)
    # ... and the other engine, never restarted, computes the same from its next command on.
    after = office.b.open("admin_license", actor="c1").timer("correction_notice")
    assert not after.provisional and after.last_day == date(2027, 1, 8)
    assert office.b.calendar.official_until == date(2027, 12, 31)


def test_a_published_definition_serves_new_cases_of_every_engine(office: Office) -> None:
    text = (shipped_workflows_dir() / "admin_license.yaml").read_text(encoding="utf-8")
    revised = parse_workflow(text.replace("limit: 5 working_days", "limit: 4 working_days", 1))
    old = office.b.open("admin_license", actor="c1")
    office.a.publish_workflow(revised, actor="admin")
    new = office.b.open("admin_license", actor="c1")
    assert new.workflow_version == revised.version != old.workflow_version
    assert new.timer("correction_notice").limit == "4 working_days"
    # A case opened before keeps the version it was opened under.
    assert office.b.get(old.id).workflow_version == old.workflow_version
    # Rolling back (publishing the shipped text again) makes it the latest once more.
    office.a.publish_workflow(parse_workflow(text), actor="admin")
    assert office.b.open("admin_license", actor="c1").workflow_version == old.workflow_version


def test_the_scheduler_takes_up_a_notice_at_its_next_sweep(office: Office, db_url: str) -> None:  # noqa: F811
    office.clock.set(at(2026, 12, 24, 9))
    # 5 working days from Thu 12-24: the last day is 12-31, due 2027-01-01 00:00. Escalation comes one
    # working day later: 01-04 under the projection, 01-05 under the notice (元旦 01-01..01-04).
    # A plain 5-working-day step with no on_expiry (admin_license's correction notice now deems the
    # application accepted when it runs out, issue 8, instead of going overdue).
    office.a.add_person("u1", name="负责人乙", unit="政务中心", roles=["unit_leader"])
    office.b.open("service_followup", actor="u1")
    store = Store(db_url)
    try:
        scheduler = Scheduler(store, clock=office.clock)
        load(office.a)
        report = scheduler.sweep(at(2027, 1, 5, 10))
        assert scheduler.calendar.official_until == date(2027, 12, 31)
        assert report.raised["overdue"] == 1
        assert report.raised["escalated"] == 0  # the projection would escalate at 01-05 00:00
        assert scheduler.sweep(at(2027, 1, 6, 0, 1)).raised["escalated"] == 1
    finally:
        store.dispose()


def test_the_notice_is_kept_in_the_database_and_exports_as_it_reads(office: Office) -> None:
    load(office.a)
    (stored,) = stored_notices(office.a.store)
    assert stored.year == 2027 and stored.format == "yaml" and stored.loaded_by == "admin"
    again = read_notice("2027.yaml", text=stored.text)
    exported = arrangement_yaml(again)
    assert read_notice("2027.yaml", text=exported) == read_notice("2027.yaml", text=exported)
    assert read_notice("2027.yaml", text=exported).rest_days == again.rest_days
    # A fresh engine (a restarted worker) reads it from the database, not from any file.
    fresh = Engine(office.stores[0], clock=office.clock, registry=WorkflowRegistry.load())
    fresh.refresh()
    assert fresh.calendar.official_until == date(2027, 12, 31)


def test_commands_racing_a_load_all_end_on_the_notice(office: Office) -> None:
    """Cases opened on one engine while the other loads: none is left on the projection."""
    opened: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def clerk() -> None:
        try:
            while not stop.is_set():
                opened.append(office.b.open("admin_license", actor="c1").id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=clerk)
    worker.start()
    try:
        while len(opened) < 3:
            time.sleep(0.01)
        load(office.a)
        count = len(opened)
        while len(opened) < count + 3:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join()
    assert not errors
    days = {office.a.get(i).timer("correction_notice").last_day for i in opened}
    assert days == {date(2027, 1, 8)}, days


WORKER = textwrap.dedent("""
    import json, sys
    from datetime import datetime
    from caseflow.calendar import ZONE
    from caseflow.clock import FixedClock
    from caseflow.engine import Engine
    from caseflow.store import Store
    engine = Engine(Store(sys.argv[1]), clock=FixedClock(datetime(2026, 12, 30, 9, tzinfo=ZONE)))
    for line in sys.stdin:
        timer = engine.open("admin_license", actor="c1").timer("correction_notice")
        print(json.dumps({"last_day": timer.last_day.isoformat(), "provisional": timer.provisional}), flush=True)
""")


def test_a_separate_worker_process_uses_a_notice_loaded_by_another(office: Office, db_url: str) -> None:  # noqa: F811
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, db_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env)
    assert worker.stdin is not None and worker.stdout is not None
    try:
        worker.stdin.write("open\n")
        worker.stdin.flush()
        assert json.loads(worker.stdout.readline()) == {"last_day": "2027-01-07", "provisional": True}
        load(office.a)
        worker.stdin.write("open\n")
        worker.stdin.flush()
        assert json.loads(worker.stdout.readline()) == {"last_day": "2027-01-08", "provisional": False}
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)


def test_two_api_workers_on_one_database(office: Office, db_url: str) -> None:  # noqa: F811
    """Issue 9's proof: load the 2027 notice through one worker, open a case through the other at once."""
    pytest.importorskip("fastapi")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        from caseflow.web import create_app
    from caseflow.tokens import create_token

    admin, clerk = create_token(office.a.store, "admin"), create_token(office.a.store, "c1")
    one, two = TestClient(create_app(engine=office.a)), TestClient(create_app(engine=office.b))
    try:
        r = one.put("/api/v1/holidays/2027", json={"yaml": NOTICE_2027}, headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        r = two.post("/api/v1/cases", json={"workflow": "admin_license"}, headers={"Authorization": f"Bearer {clerk}"})
        assert r.status_code == 201, r.text
        timer = next(t for t in r.json()["timers"] if t["name"] == "correction_notice")
        assert timer["last_day"] == "2027-01-08" and not timer["provisional"]
        years = two.get("/api/v1/holidays", headers={"Authorization": f"Bearer {clerk}"}).json()
        assert next(y for y in years if y["year"] == 2027)["official"] is True
    finally:
        one.close()
        two.close()


def test_audit_replays_with_the_loaded_notice(office: Office) -> None:
    """A case opened under a notice loaded elsewhere replays to the same deadlines in `audit verify`."""
    from caseflow.audit import verify

    load(office.a)
    # A plain 5-working-day step with no on_expiry (admin_license's correction notice now deems the
    # application accepted when it runs out, issue 8, instead of going overdue).
    office.a.add_person("u1", name="负责人乙", unit="政务中心", roles=["unit_leader"])
    office.b.open("service_followup", actor="u1")
    fresh = Engine(office.stores[0], clock=office.clock)
    assert verify(fresh) == []
