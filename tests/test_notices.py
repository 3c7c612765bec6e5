"""Holiday notices as files: every festival of 第二条 or statutory_only, holiday-cn's JSON, the festival check."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from caseflow.calendar import load_holiday_file
from caseflow.cli import cli
from caseflow.errors import HolidayFileError
from caseflow.notices import arrangement_yaml, festival_check, parse_holiday_cn, read_notice

ROOT = Path(__file__).resolve().parents[1]
HOLIDAY_CN_2026 = ROOT / "tests" / "data" / "holiday-cn" / "2026.json"


def test_the_holiday_cn_fixture_reads_as_the_shipped_2026_notice() -> None:
    ours, theirs = load_holiday_file(ROOT / "holidays" / "2026.yaml"), read_notice(HOLIDAY_CN_2026)
    assert theirs.rest_days == ours.rest_days and theirs.workdays == ours.workdays
    assert theirs.source.startswith("holiday-cn: https://www.gov.cn/")


def test_a_file_missing_festivals_is_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "2027.yaml"
    path.write_text("year: 2027\nsource: x\nholidays:\n  - {name: 春节, from: 2027-02-05, to: 2027-02-11}\n"
                    "statutory_only: [元旦, 劳动节]\n", encoding="utf-8")
    with pytest.raises(HolidayFileError) as excinfo:
        load_holiday_file(path)
    message = str(excinfo.value)
    assert "清明节、端午节、中秋节、国庆节" in message and "statutory_only" in message
    assert "元旦" not in message.split("does not arrange")[1].split("(", maxsplit=1)[0]


@pytest.mark.parametrize(("extra", "words"), [
    ("statutory_only: [植树节]\n", ["植树节", "not a festival"]),
    ("statutory_only: 清明节\n", ["must be a list"]),
    ("statutory_only: [春节, 元旦, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n", ["春节", "keep one"]),
])
def test_statutory_only_is_checked(tmp_path: Path, extra: str, words: list[str]) -> None:
    path = tmp_path / "2027.yaml"
    path.write_text("year: 2027\nsource: x\nholidays:\n  - {name: 春节, from: 2027-02-05, to: 2027-02-11}\n" + extra,
                    encoding="utf-8")
    with pytest.raises(HolidayFileError) as excinfo:
        load_holiday_file(path)
    for word in words:
        assert word in str(excinfo.value)


def _doc(days: list[dict[str, object]], year: int = 2026) -> str:
    return json.dumps({"year": year, "papers": ["https://www.gov.cn/x"], "days": days}, ensure_ascii=False)


def test_holiday_cn_errors_name_the_day() -> None:
    base = json.loads(HOLIDAY_CN_2026.read_text(encoding="utf-8"))["days"]
    with pytest.raises(HolidayFileError, match="weekday"):
        parse_holiday_cn(_doc([*base, {"name": "国庆节", "date": "2026-10-09", "isOffDay": False}]))
    with pytest.raises(HolidayFileError, match="isOffDay"):
        parse_holiday_cn(_doc([{"name": "元旦", "date": "2026-01-01", "isOffDay": "yes"}]))
    with pytest.raises(HolidayFileError, match="listed twice"):
        parse_holiday_cn(_doc([*base, base[0]]))
    with pytest.raises(HolidayFileError, match="not valid JSON"):
        parse_holiday_cn("{")
    # A day of the previous year (元旦 from 12-31): accepted when the calendar already rests on it.
    spill = [{"name": "元旦", "date": "2025-12-31", "isOffDay": True}, *base]
    with pytest.raises(HolidayFileError, match="2025-12-31"):
        parse_holiday_cn(_doc(spill), working=lambda d: True)
    assert date(2025, 12, 31) not in parse_holiday_cn(_doc(spill), working=lambda d: False).rest_days


def test_the_festival_check_compares_with_the_projection() -> None:
    by_festival = {f.festival: f for f in festival_check(read_notice(ROOT / "holidays" / "2026.yaml"))}
    national = by_festival["国庆节"]
    assert national.status == "differs"
    assert national.added == (date(2026, 10, 6), date(2026, 10, 7))  # weekdays beyond the statute (+第六条)
    assert national.workdays == (date(2026, 9, 20), date(2026, 10, 10))
    assert by_festival["端午节"].status == "as projected"


def test_export_reads_back_to_the_same_arrangement(tmp_path: Path) -> None:
    text = "year: 2027\nsource: x\nholidays:\n  - {name: 春节, from: 2027-02-05, to: 2027-02-11}\n" \
           "workdays:\n  - 2027-02-20\nstatutory_only: [元旦, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n"
    first = read_notice("2027.yaml", text=text)
    again = read_notice("2027.yaml", text=arrangement_yaml(first))
    assert (again.rest_days, again.workdays, again.statutory_only) == \
           (first.rest_days, first.workdays, first.statutory_only)


def test_calendar_import_shows_the_check_then_loads_and_export_writes_it(tmp_path: Path) -> None:
    runner, db = CliRunner(), str(tmp_path / "c.db")
    result = runner.invoke(cli, ["calendar", "import", str(HOLIDAY_CN_2026), "--db", db])
    assert result.exit_code == 0, result.output
    assert "国庆节" in result.output and "调休上班 09-20, 10-10" in result.output
    assert "loaded into the database" in result.output
    out = tmp_path / "2026.yaml"
    result = runner.invoke(cli, ["calendar", "export", "2026", "--db", db, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert load_holiday_file(out).rest_days == load_holiday_file(ROOT / "holidays" / "2026.yaml").rest_days
    result = runner.invoke(cli, ["workflows", "import", str(ROOT / "workflows" / "hukou_transfer.yaml"), "--db", db,
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["published"] is True


NOTICE_2027 = """year: 2027
source: 国办发明电〔2026〕99号
holidays:
  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
  - {name: 春节, from: 2027-02-05, to: 2027-02-13}
workdays:
  - 2027-02-20
  - 2027-02-21
statutory_only: [清明节, 劳动节, 端午节, 中秋节, 国庆节]
"""


def test_the_prompt_commands_use_a_database_s_notices_with_db(tmp_path: Path) -> None:
    # The engine counts with the notices loaded into its database; `deadline --db` answers as it does.
    runner, db = CliRunner(), str(tmp_path / "n.db")
    (tmp_path / "2027.yaml").write_text(NOTICE_2027, encoding="utf-8")
    assert runner.invoke(cli, ["calendar", "import", str(tmp_path / "2027.yaml"), "--db", db]).exit_code == 0
    files_only = json.loads(runner.invoke(cli, ["deadline", "2027-02-01T10:00", "10 working_days", "--json"]).output)
    loaded = json.loads(runner.invoke(cli, ["deadline", "2027-02-01T10:00", "10 working_days", "--json",
                                            "--db", db]).output)
    # The projection knows 春节 2027 but not this notice's block to 02-13 nor its make-up weekend.
    assert (files_only["last_day"], files_only["provisional"]) == ("2027-02-19", True)
    assert loaded["last_day"] == "2027-02-21" and not loaded["provisional"]
    text = runner.invoke(cli, ["deadline", "2027-02-01T10:00", "10 working_days"]).output
    assert "--db" in text and "caseflow calendar import" in text
    grid = json.loads(runner.invoke(cli, ["calendar", "show", "2027-02", "--json", "--db", db]).output)
    assert {d["day"]: d["reason"] for d in grid}["2027-02-20"] == "调休上班"
