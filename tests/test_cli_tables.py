"""Terminal output an administrator reads: tables aligned by display width, listings, replays, extras."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from caseflow.cli import cli
from caseflow.textwidth import pad, table, width


def test_width_counts_chinese_as_two_columns_and_marks_as_none() -> None:
    assert width("18") == 2 and width("日") == 2 and width("城关派出所") == 10
    assert width("e\u0301") == 1  # e + combining acute accent
    assert pad("休", 4) == "休  " and pad("7", 3, ">") == "  7"


def test_table_columns_line_up_by_display_width() -> None:
    text = table(["单位", "n"], [["城关派出所", 171], ["110指挥中心", 15]], "<>")
    lines = text.splitlines()
    assert len({width(line) for line in lines}) == 1, text  # every row ends in the same column


def column(line: str, day: str) -> int:
    """The display column where ``day`` starts in ``line``."""
    return width(line[: line.index(day)])


def test_calendar_grid_puts_each_day_under_its_weekday() -> None:
    result = CliRunner().invoke(cli, ["calendar", "show", "2026-10"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = lines[1]
    # 2026-10-18 is a Sunday, 10-10 a make-up Saturday (班), 10-05 a Monday in the 国庆 holiday (休).
    row18 = next(line for line in lines if " 18" in line or line.startswith("18"))
    assert column(row18, "18") == column(header, "日")
    row10 = next(line for line in lines if "10班" in line)
    assert column(row10, "10班") == column(header, "六")
    assert row10.startswith(" 5休")  # Monday, the first cell of its row, under 一


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CASEFLOW_NOW", "2026-09-30T09:00")
    url = str(tmp_path / "t.db")
    runner = CliRunner()
    for args in (["l1", "--name", "王所长", "--unit", "城关派出所", "--role", "station_leader"],
                 ["p1", "--name", "张户籍", "--unit", "城关派出所", "--role", "household_police", "--leader", "l1"],
                 ["x1", "--name", "陈大队长", "--unit", "刑侦大队", "--role", "leader", "--admin"]):
        assert runner.invoke(cli, ["people", "add", *args, "--db", url]).exit_code == 0
    return url


def test_people_list_names_leaders_and_filters_by_unit(db: str) -> None:
    runner = CliRunner()
    everyone = runner.invoke(cli, ["people", "list", "--db", db])
    assert everyone.exit_code == 0, everyone.output
    assert "王所长 (l1)" in everyone.output and "管理员" in everyone.output
    station = json.loads(runner.invoke(cli, ["people", "list", "--unit", "城关派出所", "--json", "--db", db]).output)
    assert [p["id"] for p in station] == ["l1", "p1"] and station[1]["leader"] == "l1"


def test_workflows_list_shows_every_shipped_procedure_with_its_title() -> None:
    result = CliRunner().invoke(cli, ["workflows", "list"])
    assert result.exit_code == 0, result.output
    assert "hukou_transfer" in result.output and "户口迁移" in result.output
    listed = json.loads(CliRunner().invoke(cli, ["workflows", "list", "--json"]).output)
    assert {"hukou_transfer", "criminal_detention", "petition"} <= {w["key"] for w in listed}


def test_a_replayed_key_says_so_and_returns_the_first_result(db: str) -> None:
    runner = CliRunner()
    args = ["case", "open", "hukou_transfer", "--actor", "p1", "--key", "intake-1", "--db", db]
    first = runner.invoke(cli, args)
    again = runner.invoke(cli, args)
    assert first.exit_code == again.exit_code == 0
    assert "重复提交，返回首次结果" not in first.output and "重复提交，返回首次结果" in again.output
    as_json = runner.invoke(cli, [*args, "--json"])
    assert json.loads(as_json.stdout)["id"] == 1 and "重复提交，返回首次结果" in as_json.stderr


def test_serve_without_the_server_extra_names_it_in_one_line(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    result = CliRunner().invoke(cli, ["serve", "--db", db])
    assert result.exit_code == 1
    assert 'pip install "caseflow[server]"' in result.output and "uvicorn" in result.output
    assert "serving" not in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_missing_postgresql_driver_names_the_extra_and_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the [postgres] extra were not installed
    result = CliRunner().invoke(cli, ["people", "list", "--db", "postgresql+psycopg://u:secret@127.0.0.1/x"])
    assert result.exit_code == 1
    assert 'pip install "caseflow[postgres]"' in result.output and "secret" not in result.output
    assert "Traceback" not in result.output
