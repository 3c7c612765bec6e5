"""The command line, driven through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from caseflow.cli import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the root group imports its commands on demand
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = (*prefix, name)
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


@pytest.mark.parametrize("path,command", _commands(cli), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help_and_an_example(runner: CliRunner, path: tuple[str, ...],
                                               command: click.Command) -> None:
    result = runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert f"caseflow {' '.join(path)}" in result.output


@pytest.mark.parametrize("path,command", [c for c in _commands(cli) if not isinstance(c[1], click.Group)],
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_verb_takes_json(path: tuple[str, ...], command: click.Command) -> None:
    assert any(p.name == "as_json" for p in command.params)


def test_deadline_prints_the_last_day_and_explains_skipped_days(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["deadline", "2026-10-03T14:00", "20 working_days", "--explain"])
    assert result.exit_code == 0, result.output
    assert "2026-11-03" in result.output
    assert "国庆节" in result.output
    assert "调休上班" in result.output


def test_deadline_json_with_excluded_period(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["deadline", "2025-06-09T10:00", "20 working_days",
                                 "--exclude", "鉴定=2025-06-16..2025-06-27", "--json", "--explain"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["last_day"] == "2025-07-21"
    assert any(s["kind"] == "excluded" and "鉴定" in s["reason"] for s in payload["steps"])


def test_deadline_in_custody_does_not_roll(runner: CliRunner) -> None:
    rolled = json.loads(runner.invoke(cli, ["deadline", "2026-09-28T15:00", "7 days", "--json"]).output)
    strict = json.loads(runner.invoke(cli, ["deadline", "2026-09-28T15:00", "7 days", "--no-roll",
                                            "--json"]).output)
    assert strict["last_day"] == "2026-10-05"
    assert rolled["last_day"] == "2026-10-08"


def test_deadline_alternative_readings(runner: CliRunner) -> None:
    deemed = json.loads(runner.invoke(cli, ["deadline", "2026-10-03T14:00", "20 working_days",
                                            "--deemed-next-workday", "--json"]).output)
    assert deemed["last_day"] == "2026-11-04"
    hour = json.loads(runner.invoke(cli, ["deadline", "2025-01-27T21:30", "24 hours", "--next-hour",
                                          "--json"]).output)
    assert hour["due_at"] == "2025-01-28T22:00:00+08:00"


def test_deadline_reaching_an_unannounced_year_is_provisional(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["deadline", "2026-12-20T10:00", "20 working_days"])
    assert result.exit_code == 0
    assert "provisional" in result.output


def test_bad_limit_is_a_clear_json_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["deadline", "2026-10-03", "3 fortnights", "--json"])
    assert result.exit_code == 1
    error = json.loads(result.output)["error"]
    assert error["type"] == "TimeLimitError"
    assert "fortnights" in error["message"] and "working_days" in error["message"]


def test_bad_instant_names_it(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["deadline", "yesterday-ish", "3 days"])
    assert result.exit_code == 1
    assert "yesterday-ish" in result.output


def test_calendar_show_marks_rest_and_make_up_days(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["calendar", "show", "2026-10"])
    assert result.exit_code == 0, result.output
    assert " 1休" in result.output
    assert "10班" in result.output
    data = json.loads(runner.invoke(cli, ["calendar", "show", "2026-02", "--json"]).output)
    by_day = {d["day"]: d for d in data}
    assert by_day["2026-02-14"]["workday"] is True and by_day["2026-02-14"]["reason"] == "调休上班"
    assert by_day["2026-02-17"]["reason"] == "春节"


def test_calendar_check_shows_what_a_new_file_changes(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "2027.yaml"
    path.write_text(
        "year: 2027\nsource: test notice\nholidays:\n"
        "  - {name: 春节, from: 2027-02-05, to: 2027-02-11}\nworkdays:\n  - 2027-02-20\n"
        "statutory_only: [元旦, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n",
        encoding="utf-8",
    )
    result = runner.invoke(cli, ["calendar", "check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    changed = {c["day"]: c for c in payload["changes"]}
    assert changed["2027-02-20"]["becomes"] == "work"
    assert "2027-02-11" in changed  # Thursday: a rest day in the notice, not in the projection


def test_calendar_check_refuses_a_bad_file_naming_the_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "2027.yaml"
    path.write_text("year: 2027\nsource: x\nworkdays:\n  - 2027-02-17\n", encoding="utf-8")
    result = runner.invoke(cli, ["calendar", "check", str(path)])
    assert result.exit_code == 1
    assert "line 4" in result.output and "Saturday or Sunday" in result.output


def test_demo_simulates_three_months_and_ends_with_the_console_command(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = runner.invoke(cli, ["demo", "--db", str(db)])
    assert result.exit_code == 0, result.output
    # A station leader reads it: Chinese, labels, cases and steps apart (issue 10).
    assert "超期督办" in result.output and "日报" in result.output and "按期办结率" in result.output
    assert "案件（法定时限）" in result.output and "办理环节（承诺时限）" in result.output
    assert "每个案件的事件链均校验通过" in result.output
    assert result.output.rstrip().splitlines()[-1].strip().startswith(f"caseflow serve --db {db}")
    again = runner.invoke(cli, ["demo", "--db", str(db), "--json"])
    payload = json.loads(again.output)
    assert payload["cases"] >= 150 and payload["alerts"]["escalated"] > 0 and payload["refused"] < 10


# ------------------------------------------------------------------------------ cases through the CLI


@pytest.fixture
def db(tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite file with people; the clock fixed at 2026-09-30 09:00 (CASEFLOW_NOW)."""
    monkeypatch.setenv("CASEFLOW_NOW", "2026-09-30T09:00")
    url = str(tmp_path / "cli.db")
    people = [
        ["l1", "--name", "王所长", "--unit", "城关派出所", "--role", "station_leader"],
        ["p2", "--name", "李社区", "--unit", "城关派出所", "--role", "community_police", "--leader", "l1"],
        ["p1", "--name", "张户籍", "--unit", "城关派出所", "--role", "household_police", "--leader", "l1",
         "--substitute", "p2"],
    ]
    for args in people:
        result = runner.invoke(cli, ["people", "add", *args, "--db", url])
        assert result.exit_code == 0, result.output
    return url


def _json(runner: CliRunner, args: list[str]) -> object:
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_case_goes_through_its_steps_on_the_command_line(runner: CliRunner, db: str) -> None:
    case = _json(runner, ["case", "open", "hukou_transfer", "--actor", "p1", "--data", "applicant=李四", "--db", db])
    assert isinstance(case, dict)
    assert {"id", "workflow", "state", "version", "responsible", "timers"} <= set(case)
    cid = str(case["id"])
    fired = _json(runner, ["case", "fire", cid, "hand_over_verification", "--actor", "p1", "--data",
                           "slip_no=JB-1", "--expect-version", "1", "--db", db])
    assert isinstance(fired, dict) and fired["state"] == "verifying"
    timer = next(t for t in fired["timers"] if t["name"] == "verification")
    assert timer["last_day"] == "2026-10-10" and timer["status"] == "running"
    paused = _json(runner, ["case", "pause", cid, "--timer", "verification", "--reason", "函调", "--actor", "p2",
                            "--db", db])
    assert isinstance(paused, dict)
    assert next(t for t in paused["timers"] if t["name"] == "verification")["status"] == "paused"
    _json(runner, ["case", "resume", cid, "--timer", "verification", "--actor", "p2", "--db", db])
    handed = _json(runner, ["case", "hand-over", cid, "--to", "p2", "--actor", "p1", "--slip", "JB-1", "--db", db])
    assert isinstance(handed, dict) and handed["responsible"] == "p2"
    history = _json(runner, ["case", "history", cid, "--db", db])
    assert isinstance(history, list)
    assert [e["kind"] for e in history] == ["open", "fire", "pause", "resume", "hand_over"]
    queue = _json(runner, ["queue", "--person", "p2", "--db", db])
    assert isinstance(queue, list) and queue[0]["case"] == case["id"]
    audit = _json(runner, ["audit", "verify", "--db", db])
    assert audit == {"ok": True, "problems": []}
    shown = runner.invoke(cli, ["case", "show", cid, "--db", db])
    # A person reads labels and names, never keys: the state's label and the clerk's name (issue 10).
    assert "社区民警调查核实" in shown.output and "李社区" in shown.output
    assert "verifying" not in shown.output


def test_command_errors_are_json_with_their_type(runner: CliRunner, db: str) -> None:
    case = _json(runner, ["case", "open", "hukou_transfer", "--actor", "p1", "--db", db])
    assert isinstance(case, dict)
    result = runner.invoke(cli, ["case", "fire", str(case["id"]), "hand_over_verification", "--actor", "p2",
                                 "--data", "slip_no=1", "--db", db, "--json"])
    assert result.exit_code == 1
    error = json.loads(result.output)["error"]
    assert error["type"] == "PermissionDeniedError" and "household_police" in error["message"]
    result = runner.invoke(cli, ["case", "show", "999", "--db", db, "--json"])
    assert json.loads(result.output)["error"]["type"] == "CaseNotFoundError"
    result = runner.invoke(cli, ["case", "fire", str(case["id"]), "complete", "--actor", "p1", "--db", db])
    assert result.exit_code == 1 and "triggers allowed there" in result.output


def test_people_absent_routes_the_queue_to_the_substitute(runner: CliRunner, db: str) -> None:
    _json(runner, ["case", "open", "hukou_transfer", "--actor", "p1", "--db", db])
    _json(runner, ["people", "absent", "p1", "--from", "2026-09-30", "--to", "2026-10-09", "--db", db])
    queue = _json(runner, ["queue", "--person", "p2", "--db", db])
    assert isinstance(queue, list) and queue and queue[0]["via_substitute_for"] == "p1"


def test_workflows_validate_and_show(runner: CliRunner, tmp_path: Path) -> None:
    listed = _json(runner, ["workflows", "validate"])
    assert isinstance(listed, list)
    assert {w["key"] for w in listed} >= {"hukou_transfer", "criminal_detention", "petition", "admin_license",
                                           "complaint_110", "holiday_appointment"}
    shown = runner.invoke(cli, ["workflows", "show", "hukou_transfer"])
    assert "stateDiagram-v2" in shown.output and "verification" in shown.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("key: x\ntitle: y\nstates: []\n", encoding="utf-8")
    result = runner.invoke(cli, ["workflows", "validate", str(tmp_path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["type"] == "WorkflowError"


def test_calendar_reload_moves_provisional_deadlines(runner: CliRunner, db: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEFLOW_NOW", "2026-12-30T09:00")
    case = _json(runner, ["case", "open", "hukou_transfer", "--actor", "p1", "--db", db])
    assert isinstance(case, dict)
    _json(runner, ["case", "fire", str(case["id"]), "hand_over_verification", "--actor", "p1", "--data",
                   "slip_no=1", "--db", db])
    notices = tmp_path / "notices"
    notices.mkdir()
    (notices / "2027.yaml").write_text("year: 2027\nsource: test\nholidays:\n"
                                       "  - {name: 元旦, from: 2027-01-01, to: 2027-01-04}\n"
                                       "statutory_only: [春节, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n",
                                       encoding="utf-8")
    changes = _json(runner, ["calendar", "reload", "--holidays", str(notices), "--db", db])
    assert isinstance(changes, list)
    moved = [c for c in changes if c["timer"] == "verification"]
    assert moved and "due moved from" in moved[0]["message"]


def test_db_upgrade_reports_the_revision(runner: CliRunner, tmp_path: Path) -> None:
    payload = _json(runner, ["db", "upgrade", "--db", str(tmp_path / "new.db")])
    assert isinstance(payload, dict) and payload["revision"]
