"""Administrators manage workflow definitions and holiday notices over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from caseflow.calendar import clear_calendar_cache
from caseflow.workflowfile import parse_workflow, shipped_workflows_dir
from test_api import World, assert_problem


@pytest.fixture
def admin_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name in ("workflows", "holidays"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(f"CASEFLOW_{name.upper()}_DIR", str(tmp_path / name))
    clear_calendar_cache()
    world = World(f"sqlite:///{tmp_path / 'admin.db'}")
    yield world
    world.client.close()
    world.store.dispose()
    clear_calendar_cache()


HUKOU = (shipped_workflows_dir() / "hukou_transfer.yaml").read_text(encoding="utf-8")


def test_an_administrator_revises_a_workflow_and_new_cases_follow_it(admin_world: World, tmp_path: Path) -> None:
    w = admin_world
    before = w.open()
    revised = HUKOU.replace("limit: 3 working_days", "limit: 5 working_days")
    r = w.client.put("/api/v1/workflows/hukou_transfer", json={"yaml": revised}, headers=w.h("admin"))
    assert r.status_code == 200, r.text
    # Kept in the database (issue 9: one truth for every worker), not written to a file.
    assert not (tmp_path / "workflows" / "hukou_transfer.yaml").exists()
    after = w.open()
    for case in (before, after):
        r = w.client.post(f"/api/v1/cases/{case['id']}/fire", headers=w.h("p1"),
                          json={"trigger": "hand_over_verification", "data": {"slip_no": "1"}})
        assert r.status_code == 200, r.text
        case["timers"] = r.json()["timers"]
    limit = {c["id"]: next(t["limit"] for t in c["timers"] if t["name"] == "verification") for c in (before, after)}
    assert limit == {before["id"]: "3 working_days", after["id"]: "5 working_days"}


def test_a_bad_definition_is_refused_with_its_line_and_nothing_is_written(admin_world: World,
                                                                         tmp_path: Path) -> None:
    w = admin_world
    bad = HUKOU.replace("to: verifying", "to: nowhere", 1)
    r = w.client.put("/api/v1/workflows/hukou_transfer", json={"yaml": bad}, headers=w.h("admin"))
    body = assert_problem(r, 422)
    assert "nowhere" in body["detail"] and "line" in body["detail"]
    assert not (tmp_path / "workflows" / "hukou_transfer.yaml").exists()
    r = w.client.put("/api/v1/workflows/other_key", json={"yaml": HUKOU}, headers=w.h("admin"))
    assert_problem(r, 422)


def test_only_administrators_manage_definitions_and_notices(admin_world: World) -> None:
    w = admin_world
    r = w.client.put("/api/v1/workflows/hukou_transfer", json={"yaml": HUKOU}, headers=w.h("l1"))
    assert_problem(r, 403)
    r = w.client.put("/api/v1/holidays/2027", json={"yaml": "year: 2027\nsource: x\n"}, headers=w.h("l1"))
    assert_problem(r, 403)


def test_loading_next_years_notice_moves_open_deadlines(admin_world: World, tmp_path: Path) -> None:
    w = admin_world
    w.clock.set(w.clock.now().replace(year=2026, month=12, day=30))
    case = w.open()
    r = w.client.post(f"/api/v1/cases/{case['id']}/fire", headers=w.h("p1"),
                      json={"trigger": "hand_over_verification", "data": {"slip_no": "1"}})
    timer = next(t for t in r.json()["timers"] if t["name"] == "verification")
    assert timer["provisional"] and timer["last_day"] == "2027-01-05"
    notice = ("year: 2027\nsource: 国办发明电〔2026〕测试\nholidays:\n"
              "  - {name: 元旦, from: 2027-01-01, to: 2027-01-04}\n"
              "statutory_only: [春节, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n")
    r = w.client.put("/api/v1/holidays/2027", json={"yaml": notice}, headers=w.h("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["official_until"] == "2027-12-31"
    assert any(c["case"] == case["id"] for c in r.json()["changes"])
    r = w.client.get(f"/api/v1/cases/{case['id']}", headers=w.h("p1"))
    timer = next(t for t in r.json()["timers"] if t["name"] == "verification")
    assert not timer["provisional"] and timer["last_day"] == "2027-01-06"
    years = w.client.get("/api/v1/holidays", headers=w.h("p1")).json()
    assert {"year": 2027, "official": True} .items() <= next(y for y in years if y["year"] == 2027).items()


def test_a_bad_notice_names_its_line_and_changes_nothing(admin_world: World, tmp_path: Path) -> None:
    w = admin_world
    notice = "year: 2027\nsource: x\nworkdays:\n  - 2027-02-17\n"
    body = assert_problem(w.client.put("/api/v1/holidays/2027", json={"yaml": notice}, headers=w.h("admin")), 422)
    assert "line 4" in body["detail"] and "Saturday or Sunday" in body["detail"]
    assert not (tmp_path / "holidays" / "2027.yaml").exists()
    mismatch = "year: 2028\nsource: x\n"
    assert_problem(w.client.put("/api/v1/holidays/2027", json={"yaml": mismatch}, headers=w.h("admin")), 422)


def test_uploads_need_no_directory_the_database_keeps_them(admin_world: World,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Before issue 9 an upload was written to $CASEFLOW_WORKFLOWS_DIR (409 without it) and reached other
    # workers only when they restarted; the database now keeps it for every worker.
    monkeypatch.delenv("CASEFLOW_WORKFLOWS_DIR")
    w = admin_world
    revised = HUKOU.replace("limit: 3 working_days", "limit: 5 working_days")
    r = w.client.put("/api/v1/workflows/hukou_transfer", json={"yaml": revised}, headers=w.h("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["version"] == parse_workflow(revised).version


def test_a_holiday_cn_notice_uploads_like_our_yaml(admin_world: World) -> None:
    w = admin_world
    text = (Path(__file__).parent / "data" / "holiday-cn" / "2026.json").read_text(encoding="utf-8")
    r = w.client.put("/api/v1/holidays/2026", json={"yaml": text}, headers=w.h("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "holiday-cn" and body["source"].startswith("holiday-cn: https://www.gov.cn/")
    festivals = {f["festival"]: f for f in body["festivals"]}
    assert list(festivals) == ["元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节"]
    assert festivals["国庆节"]["workdays"] == ["2026-09-20", "2026-10-10"]
    assert festivals["清明节"]["status"] == "as projected"
    cut = text.replace('"name": "清明节"', '"name": "植树"')
    body = assert_problem(w.client.put("/api/v1/holidays/2026", json={"yaml": cut}, headers=w.h("admin")), 422)
    assert "清明节" in body["detail"] and "statutory_only" in body["detail"]
