"""The working-day calendar (工作日历): official days, projected years, holiday files, arithmetic.

chinese-calendar (2004–2026) is the oracle for the official years; RULES.md's tables are the oracle
for 2025 and 2026 and for the statutory days of 全国年节及纪念日放假办法.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import numpy as np
import pendulum
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from caseflow.calendar import (
    WorkCalendar,
    clear_calendar_cache,
    default_calendar,
    load_holiday_file,
    projected_arrangement,
    shipped_holidays_dir,
    statutory_days,
)
from caseflow.errors import CalendarCoverageError, CalendarError, CaseflowError, HolidayFileError

BEIJING = ZoneInfo("Asia/Shanghai")
LAST_CC = date(2026, 12, 31)  # chinese-calendar 1.11.0 knows 2004–2026 and raises for 2027

DAYS = st.dates(date(2004, 1, 1), date(2026, 12, 20))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def cc_add_working_days(day: date, n: int) -> date:
    """Day by day with chinese-calendar: the |n|-th working day after (or before) ``day``, never ``day``."""
    step = timedelta(days=1 if n >= 0 else -1)
    count = 0
    while count < abs(n):
        day += step
        assume(date(2004, 1, 1) <= day <= LAST_CC)  # keep within chinese-calendar's years
        count += chinese_calendar.is_workday(day)
    return day


# ------------------------------------------------------------------------------------ official days


def test_every_day_of_2004_to_2026_agrees_with_chinese_calendar(calendar: WorkCalendar) -> None:
    wrong = [d for d in _days(date(2004, 1, 1), LAST_CC) if calendar.is_workday(d) != chinese_calendar.is_workday(d)]
    assert wrong == []


def test_the_calendar_is_official_until_the_end_of_2026(calendar: WorkCalendar) -> None:
    assert calendar.official_until == date(2026, 12, 31)
    assert calendar.is_official(date(2026, 12, 31))
    assert not calendar.is_official(date(2027, 1, 1))


@pytest.mark.parametrize("year", [2025, 2026])
def test_2025_and_2026_each_have_248_working_days(calendar: WorkCalendar, year: int) -> None:
    assert sum(calendar.is_workday(d) for d in _days(date(year, 1, 1), date(year, 12, 31))) == 248
    assert calendar.working_days_between(date(year - 1, 12, 31), date(year, 12, 31)) == 248


def test_make_up_saturday_counts_as_a_working_day(calendar: WorkCalendar) -> None:
    assert date(2026, 2, 28).weekday() == 5
    assert calendar.is_workday(date(2026, 2, 28))
    assert calendar.describe(date(2026, 2, 28)).reason == "调休上班"


def test_make_up_sunday_counts_as_a_working_day(calendar: WorkCalendar) -> None:
    assert date(2026, 1, 4).weekday() == 6
    assert calendar.is_workday(date(2026, 1, 4))


def test_a_weekday_inside_a_holiday_block_is_not_a_working_day(calendar: WorkCalendar) -> None:
    info = calendar.describe(date(2026, 2, 23))  # Monday, 正月初七
    assert not info.workday
    assert info.reason == "春节"
    assert info.official


def test_an_ordinary_weekend_is_named_as_such(calendar: WorkCalendar) -> None:
    info = calendar.describe(date(2026, 3, 7))
    assert (info.workday, info.reason) == (False, "周末")
    assert calendar.describe(date(2026, 3, 9)).reason == ""


@pytest.mark.parametrize(
    ("year", "rest", "work"),
    [
        (
            2025,
            [("01-01", "01-01"), ("01-28", "02-04"), ("04-04", "04-06"), ("05-01", "05-05"), ("05-31", "06-02"),
             ("10-01", "10-08")],
            ["01-26", "02-08", "04-27", "09-28", "10-11"],
        ),
        (
            2026,
            [("01-01", "01-03"), ("02-15", "02-23"), ("04-04", "04-06"), ("05-01", "05-05"), ("06-19", "06-21"),
             ("09-25", "09-27"), ("10-01", "10-07")],
            ["01-04", "02-14", "02-28", "05-09", "09-20", "10-10"],
        ),
    ],
)
def test_the_notices_rest_and_make_up_days(
    calendar: WorkCalendar, year: int, rest: list[tuple[str, str]], work: list[str]
) -> None:
    """RULES.md, "Summary table": every rest day rests and every 调休上班 day works."""
    rest_days = {
        d for a, b in rest for d in _days(date.fromisoformat(f"{year}-{a}"), date.fromisoformat(f"{year}-{b}"))
    }
    work_days = {date.fromisoformat(f"{year}-{w}") for w in work}
    assert len(rest_days) == {2025: 28, 2026: 33}[year]
    for d in _days(date(year, 1, 1), date(year, 12, 31)):
        expected = d in work_days or (d.weekday() < 5 and d not in rest_days)
        assert calendar.is_workday(d) == expected, d
    assert all(d.weekday() >= 5 for d in work_days)


@pytest.mark.parametrize("year", [2025, 2026])
def test_shipped_holiday_file_agrees_with_chinese_calendar(year: int) -> None:
    arrangement = load_holiday_file(shipped_holidays_dir() / f"{year}.yaml")
    assert arrangement.year == year
    assert arrangement.official
    assert arrangement.source.startswith("国办发明电")
    for d in _days(date(year, 1, 1), date(year, 12, 31)):
        ours = d in arrangement.workdays or (d.weekday() < 5 and d not in arrangement.rest_days)
        assert ours == chinese_calendar.is_workday(d), d


@pytest.fixture(scope="module")
def files_only() -> WorkCalendar:
    return WorkCalendar.load(include_chinese_calendar=False)


@pytest.fixture(scope="module")
def chinese_calendar_only() -> WorkCalendar:
    return WorkCalendar.load(include_shipped=False)


@pytest.mark.parametrize("year", [2025, 2026])
def test_shipped_files_and_chinese_calendar_build_the_same_year(
    files_only: WorkCalendar, chinese_calendar_only: WorkCalendar, year: int
) -> None:
    assert files_only.diff(chinese_calendar_only, year=year) == []
    assert files_only.years[year].origin.endswith(f"{year}.yaml")
    assert chinese_calendar_only.years[year].origin.startswith("chinese-calendar")


def test_without_chinese_calendar_the_years_before_the_files_are_projected(files_only: WorkCalendar) -> None:
    assert files_only.official_until < date(2004, 1, 1)
    assert not files_only.years[2024].official
    assert files_only.years[2025].official


# ------------------------------------------------------------------------------------ projection

STATUTORY_2027 = {
    date(2027, 1, 1): "元旦",
    date(2027, 2, 5): "春节",  # 除夕
    date(2027, 2, 6): "春节",  # 正月初一 (Saturday)
    date(2027, 2, 7): "春节",  # Sunday
    date(2027, 2, 8): "春节",
    date(2027, 4, 5): "清明节",
    date(2027, 5, 1): "劳动节",  # Saturday
    date(2027, 5, 2): "劳动节",  # Sunday
    date(2027, 6, 9): "端午节",
    date(2027, 9, 15): "中秋节",
    date(2027, 10, 1): "国庆节",
    date(2027, 10, 2): "国庆节",  # Saturday
    date(2027, 10, 3): "国庆节",  # Sunday
}
# 第六条: 全体公民放假的假日，如果适逢周六、周日，应当在工作日补假.
SUBSTITUTES_2027 = [date(2027, 2, 9), date(2027, 2, 10), date(2027, 5, 3), date(2027, 5, 4),
                    date(2027, 10, 4), date(2027, 10, 5)]


def test_2027_has_the_13_statutory_days_of_the_2024_rules() -> None:
    assert statutory_days(2027) == STATUTORY_2027


def test_2027_is_projected_with_substitute_days_and_no_make_up_days(calendar: WorkCalendar) -> None:
    arrangement = projected_arrangement(2027)
    assert not arrangement.official
    assert arrangement.workdays == {}
    assert set(arrangement.rest_days) == set(STATUTORY_2027) | set(SUBSTITUTES_2027)
    for d in SUBSTITUTES_2027:
        assert d.weekday() < 5
        assert "补假" in arrangement.rest_days[d]
    assert calendar.years[2027] == arrangement


def test_the_default_calendar_projects_2027(calendar: WorkCalendar) -> None:
    days = _days(date(2027, 1, 1), date(2027, 12, 31))
    off = set(STATUTORY_2027) | set(SUBSTITUTES_2027)
    for d in days:
        assert calendar.is_workday(d) == (d.weekday() < 5 and d not in off), d
        assert not calendar.is_official(d)
        assert not calendar.describe(d).official
    # No 调休上班 in a projected year: the fictional "make-up Saturday" 2027-02-20 rests.
    assert not calendar.is_workday(date(2027, 2, 20))
    assert sum(calendar.is_workday(d) for d in days) == 261 - 13


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2025, ["01-01", "01-28", "01-29", "01-30", "01-31", "04-04", "05-01", "05-02", "05-31", "10-01",
                "10-02", "10-03", "10-06"]),
        (2026, ["01-01", "02-16", "02-17", "02-18", "02-19", "04-05", "05-01", "05-02", "06-19", "09-25",
                "10-01", "10-02", "10-03"]),
    ],
)
def test_statutory_days_match_the_rules(year: int, expected: list[str]) -> None:
    """RULES.md, "The statutory days inside each block"."""
    assert sorted(statutory_days(year)) == [date.fromisoformat(f"{year}-{d}") for d in expected]


def test_a_statutory_day_on_a_weekend_is_made_up_on_the_next_weekday() -> None:
    # 2028-01-01 is a Saturday: 元旦 is made up on Monday 01-03.
    arrangement = projected_arrangement(2028)
    assert arrangement.rest_days[date(2028, 1, 1)] == "元旦"
    assert "补假" in arrangement.rest_days[date(2028, 1, 3)]
    assert date(2028, 1, 2) not in arrangement.rest_days  # a plain Sunday, not a statutory day


# ------------------------------------------------------------------------------------ holiday files

GOOD_2027 = """\
# test fixture only: NOT the 2027 notice (none was published in our sources)
year: 2027
source: 测试用通知 (fixture)
holidays:
  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
  - name: 春节
    from: 2027-02-05
    to: 2027-02-13
workdays:
  - 2027-02-20
  - {date: 2027-02-21, name: 春节}
statutory_only: [清明节, 劳动节, 端午节, 中秋节, 国庆节]
"""


def write(tmp_path: Path, text: str, name: str = "2027.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


BAD_FILES = [
    # (id, text, line, field, a value the message must name)
    ("make-up day on a weekday", GOOD_2027.replace("  - 2027-02-20", "  - 2027-02-22"), 10, "workdays[0]",
     "2027-02-22"),
    ("date outside the year", GOOD_2027.replace("from: 2027-01-01", "from: 2026-12-31"), 5, "holidays[0].from",
     "2026-12-31"),
    ("rest and make-up at once", GOOD_2027.replace("  - 2027-02-20", "  - 2027-02-06"), 10, "workdays[0]",
     "2027-02-06"),
    ("unknown top-level key", GOOD_2027 + "notes: x\n", 13, "notes", "notes"),
    ("unknown key in a holiday", GOOD_2027.replace("    to: 2027-02-13", "    to: 2027-02-13\n    days: 9"), 9,
     "holidays[1].days", "days"),
    ("invalid date", GOOD_2027.replace("to: 2027-02-13", "to: 2027-02-30"), 8, "holidays[1].to", "2027-02-30"),
    ("backwards range", GOOD_2027.replace("to: 2027-02-13", "to: 2027-02-01"), 8, "holidays[1].to", "2027-02-01"),
    # A missing key is reported at the line where the file's mapping starts (line 1 is a comment).
    ("missing source", GOOD_2027.replace("source: 测试用通知 (fixture)\n", ""), 2, "source", "source"),
    ("year differs from the file name", GOOD_2027.replace("year: 2027", "year: 2028"), 2, "year", "2028"),
    ("invalid YAML", GOOD_2027.replace("    to: 2027-02-13", "    to: [2027-02-13"), 9, None, "YAML"),
    ("day listed twice", GOOD_2027.replace("from: 2027-02-05", "from: 2027-01-03"), 6, "holidays[1]", "2027-01-03"),
    ("duplicate key", GOOD_2027.replace("year: 2027\n", "year: 2027\nyear: 2027\n"), 3, None, "duplicate key"),
    ("missing range end", GOOD_2027.replace("    to: 2027-02-13\n", ""), 6, "holidays[1].to", "to"),
]


@pytest.mark.parametrize(("text", "line", "fld", "value"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_a_bad_holiday_file_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, fld: str | None, value: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HolidayFileError) as excinfo:
        load_holiday_file(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert f"line {line}" in message
    assert excinfo.value.line == line
    if fld is not None:
        assert f"field {fld!r}" in message
        assert excinfo.value.field == fld
    assert value in message
    assert isinstance(excinfo.value, CalendarError)
    assert isinstance(excinfo.value, CaseflowError)


def test_a_bad_holiday_file_stops_the_calendar_from_loading(tmp_path: Path) -> None:
    write(tmp_path, GOOD_2027.replace("  - 2027-02-20", "  - 2027-02-22"))
    with pytest.raises(HolidayFileError, match="2027-02-22"):
        WorkCalendar.load([tmp_path])


def test_a_good_holiday_file_loads(tmp_path: Path) -> None:
    arrangement = load_holiday_file(write(tmp_path, GOOD_2027))
    assert arrangement.year == 2027
    assert arrangement.official
    assert len([n for n in arrangement.rest_days.values() if n in ("元旦", "春节")]) == 3 + 9
    # The festivals it leaves to the statute get the projection's days (劳动节 5-1, 5-2 and its 补假).
    assert arrangement.statutory_only == ("清明节", "劳动节", "端午节", "中秋节", "国庆节")
    assert arrangement.rest_days[date(2027, 5, 3)] == "劳动节(补假)"
    assert arrangement.workdays == {date(2027, 2, 20): "春节", date(2027, 2, 21): "春节"}


def test_the_parsed_form_of_the_shipped_files_is_what_reading_them_gives(tmp_path: Path) -> None:
    # The parsed form answers the shipped files at the prompt; rewrite it after editing holidays/ with
    # caseflow.calendar.write_parsed_holidays(). Checked here so that it can never silently differ.
    import json

    from caseflow.calendar import PARSED_HOLIDAYS_FILE, write_parsed_holidays
    from caseflow.holidayfile import load_holiday_file as read_and_validate

    fresh = write_parsed_holidays(target=tmp_path / "parsed.json")
    assert json.loads(PARSED_HOLIDAYS_FILE.read_text(encoding="utf-8")) == \
        json.loads(fresh.read_text(encoding="utf-8")), "run caseflow.calendar.write_parsed_holidays()"
    for path in sorted(shipped_holidays_dir().glob("*.yaml")):
        assert load_holiday_file(path) == read_and_validate(path)


def test_the_shipped_statutory_days_are_what_python_holidays_gives(tmp_path: Path) -> None:
    # Projected years are answered from caseflow/statutory_days.json; rewrite it after upgrading
    # python-holidays with caseflow.calendar.write_statutory_days(). Checked here so that it never differs.
    import json

    from caseflow.calendar import STATUTORY_DAYS_FILE, _statutory_days_from_library, write_statutory_days

    fresh = json.loads(write_statutory_days(target=tmp_path / "statutory.json").read_text(encoding="utf-8"))
    shipped = json.loads(STATUTORY_DAYS_FILE.read_text(encoding="utf-8"))
    assert shipped["years"] == fresh["years"], "run caseflow.calendar.write_statutory_days()"
    assert sorted(shipped["years"]) == [str(y) for y in range(2004, 2100)]
    for year in (2008, 2025, 2027, 2028, 2099):
        assert statutory_days(year) == _statutory_days_from_library([year])[year]


def test_an_edited_copy_of_a_shipped_file_is_read_and_validated_again(tmp_path: Path) -> None:
    text = (shipped_holidays_dir() / "2026.yaml").read_text(encoding="utf-8")
    (tmp_path / "2026.yaml").write_text(text.replace("to: 2026-10-07", "to: 2026-10-08", 1), encoding="utf-8")
    edited = load_holiday_file(tmp_path / "2026.yaml")
    assert edited.rest_days != load_holiday_file(shipped_holidays_dir() / "2026.yaml").rest_days
    # The same bytes under another year's name are refused, as when read.
    (tmp_path / "2027.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(HolidayFileError, match="named for 2027"):
        load_holiday_file(tmp_path / "2027.yaml")


def test_a_holiday_file_overrides_the_projection(tmp_path: Path, calendar: WorkCalendar) -> None:
    write(tmp_path, GOOD_2027)
    loaded = WorkCalendar.load([tmp_path])
    assert loaded.official_until == date(2027, 12, 31)
    assert loaded.is_official(date(2027, 6, 1))
    assert not loaded.is_official(date(2028, 1, 1))
    assert loaded.is_workday(date(2027, 2, 20))  # make-up Saturday now works
    assert loaded.describe(date(2027, 2, 20)).reason == "调休上班"
    assert not loaded.is_workday(date(2027, 2, 11))  # Thursday inside the block
    # The festivals it leaves to the statute keep the projection's days (劳动节's 补假 on Monday 05-03).
    assert not loaded.is_workday(date(2027, 5, 3)) and not calendar.is_workday(date(2027, 5, 3))
    diff = calendar.diff(loaded, year=2027)
    assert date(2027, 2, 20) in {d for d, _, _ in diff}
    # Earlier years are untouched.
    assert calendar.diff(loaded, year=2026) == []


def test_a_missing_holiday_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="nope"):
        WorkCalendar.load([tmp_path / "nope"])


@pytest.fixture
def fresh_calendar_cache() -> Iterator[None]:
    clear_calendar_cache()
    yield
    clear_calendar_cache()


@pytest.mark.usefixtures("fresh_calendar_cache")
def test_caseflow_holidays_dir_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, GOOD_2027)
    monkeypatch.setenv("CASEFLOW_HOLIDAYS_DIR", str(tmp_path))
    cal = default_calendar()
    assert cal.official_until == date(2027, 12, 31)
    assert cal.is_workday(date(2027, 2, 20))
    assert default_calendar() is cal  # cached
    monkeypatch.delenv("CASEFLOW_HOLIDAYS_DIR")
    assert default_calendar() is cal  # the environment is read once, not per call (issue 11)
    clear_calendar_cache()  # what `caseflow calendar reload` does
    plain = default_calendar()
    assert plain.official_until == date(2026, 12, 31)
    assert not plain.is_workday(date(2027, 2, 20))


# ------------------------------------------------------------------------------------ arithmetic


@settings(max_examples=300, deadline=None)
@given(day=DAYS, n=st.integers(0, 60))
def test_add_working_days_equals_a_day_by_day_count(calendar: WorkCalendar, day: date, n: int) -> None:
    assert calendar.add_working_days(day, n) == cc_add_working_days(day, n)


@settings(max_examples=200, deadline=None)
@given(day=st.dates(date(2004, 3, 1), date(2026, 12, 31)), n=st.integers(-60, -1))
def test_negative_n_gives_the_nth_working_day_strictly_before(calendar: WorkCalendar, day: date, n: int) -> None:
    expected = cc_add_working_days(day, n)  # rejects examples reaching before 2004 first
    result = calendar.add_working_days(day, n)
    assert result == expected
    assert result < day
    assert calendar.is_workday(result)


@settings(max_examples=200, deadline=None)
@given(day=DAYS, n=st.integers(0, 60))
def test_working_days_between_inverts_add_working_days(calendar: WorkCalendar, day: date, n: int) -> None:
    assert calendar.working_days_between(day, calendar.add_working_days(day, n)) == n


@settings(max_examples=100, deadline=None)
@given(day=DAYS)
def test_add_working_days_is_strictly_increasing_in_n(calendar: WorkCalendar, day: date) -> None:
    results = [calendar.add_working_days(day, n) for n in range(61)]
    assert results[0] == day
    assert all(a < b for a, b in itertools.pairwise(results))
    assert all(calendar.is_workday(d) for d in results[1:])


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.dates(date(2004, 6, 1), date(2099, 6, 1)), st.integers(-60, 60)),
                      min_size=1, max_size=200))
def test_add_working_days_many_equals_the_scalar_answer(
    calendar: WorkCalendar, pairs: list[tuple[date, int]]
) -> None:
    days = np.array([d.isoformat() for d, _ in pairs], dtype="datetime64[D]")
    ns = np.array([n for _, n in pairs], dtype=np.int64)
    out = calendar.add_working_days_many(days, ns)
    assert out.dtype == np.dtype("datetime64[D]")
    expected = np.array([calendar.add_working_days(d, n).isoformat() for d, n in pairs], dtype="datetime64[D]")
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=30, deadline=None)
@given(pairs=st.lists(st.tuples(st.dates(date(2004, 6, 1), date(2099, 6, 1)), st.integers(1, 60)),
                      min_size=1, max_size=200))
def test_add_working_days_many_fast_path_for_positive_n(
    calendar: WorkCalendar, pairs: list[tuple[date, int]]
) -> None:
    days = np.array([d.isoformat() for d, _ in pairs], dtype="datetime64[D]")
    ns = np.array([n for _, n in pairs], dtype=np.int32)
    expected = np.array([calendar.add_working_days(d, n).isoformat() for d, n in pairs], dtype="datetime64[D]")
    np.testing.assert_array_equal(calendar.add_working_days_many(days, ns), expected)


def test_add_working_days_many_keeps_zero_and_empty_inputs(calendar: WorkCalendar) -> None:
    days = np.array(["2026-10-03", "2026-10-09", "2026-10-10"], dtype="datetime64[D]")
    np.testing.assert_array_equal(calendar.add_working_days_many(days, np.zeros(3, dtype=np.int64)), days)
    empty = calendar.add_working_days_many(np.array([], dtype="datetime64[D]"), np.array([], dtype=np.int64))
    assert empty.shape == (0,)


def test_add_working_days_many_broadcasts_a_single_n(calendar: WorkCalendar) -> None:
    days = np.array(["2026-09-30", "2026-10-03"], dtype="datetime64[D]")
    out = calendar.add_working_days_many(days, 1)
    np.testing.assert_array_equal(out, np.array(["2026-10-08", "2026-10-08"], dtype="datetime64[D]"))


def test_add_working_days_many_accepts_finer_datetime64_units(calendar: WorkCalendar) -> None:
    days = np.array(["2026-10-03T09:00"], dtype="datetime64[m]")
    np.testing.assert_array_equal(calendar.add_working_days_many(days, np.array([1])),
                                  np.array(["2026-10-08"], dtype="datetime64[D]"))


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        (date(2026, 10, 3), 1, date(2026, 10, 8)),  # accepted on a holiday: day 1 is the first working day after
        (date(2026, 2, 27), 1, date(2026, 2, 28)),  # Friday → make-up Saturday
        (date(2026, 2, 28), 1, date(2026, 3, 2)),  # make-up Saturday itself never counts
        (date(2025, 12, 31), 1, date(2026, 1, 4)),  # over 元旦 onto the make-up Sunday
        (date(2026, 10, 8), -1, date(2026, 9, 30)),
        (date(2026, 10, 3), -1, date(2026, 9, 30)),
        (date(2026, 10, 3), 0, date(2026, 10, 3)),
    ],
)
def test_add_working_days_examples(calendar: WorkCalendar, day: date, n: int, expected: date) -> None:
    assert calendar.add_working_days(day, n) == expected


def test_next_workday_and_roll_forward(calendar: WorkCalendar) -> None:
    assert calendar.next_workday(date(2026, 10, 1)) == date(2026, 10, 8)
    assert calendar.next_workday(date(2026, 10, 9)) == date(2026, 10, 10)
    assert calendar.roll_forward(date(2026, 10, 9)) == date(2026, 10, 9)
    assert calendar.roll_forward(date(2026, 10, 4)) == date(2026, 10, 8)


def test_month_describes_every_day(calendar: WorkCalendar) -> None:
    days = calendar.month(2026, 2)
    assert [d.day for d in days] == _days(date(2026, 2, 1), date(2026, 2, 28))
    assert sum(d.workday for d in days) == 16  # 20 weekdays - 6 春节 weekdays + 2 调休上班 Saturdays


# ------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "call",
    [
        lambda c, d: c.is_workday(d),
        lambda c, d: c.describe(d),
        lambda c, d: c.add_working_days(d, 3),
        lambda c, d: c.add_working_days(d, 0),
        lambda c, d: c.working_days_between(d, date(2026, 10, 20)),
    ],
    ids=["is_workday", "describe", "add_working_days", "add_zero", "working_days_between"],
)
def test_a_datetime_is_refused_where_a_date_is_expected(calendar: WorkCalendar, call: object) -> None:
    instant = datetime(2026, 10, 9, 9, 0, tzinfo=BEIJING)
    with pytest.raises(CalendarError) as excinfo:
        call(calendar, instant)  # type: ignore[operator]
    assert "local_date" in str(excinfo.value)
    assert not isinstance(excinfo.value, CalendarCoverageError)


@pytest.mark.parametrize("day", [date(2003, 12, 31), date(2100, 1, 1)])
def test_a_date_outside_the_calendar_is_refused(calendar: WorkCalendar, day: date) -> None:
    for call in (calendar.is_workday, calendar.describe, lambda d: calendar.add_working_days(d, 1)):
        with pytest.raises(CalendarCoverageError) as excinfo:
            call(day)
        assert isinstance(excinfo.value, LookupError)
        assert isinstance(excinfo.value, CalendarError)
        assert day.isoformat() in str(excinfo.value)


def test_adding_past_the_calendar_is_refused(calendar: WorkCalendar) -> None:
    with pytest.raises(CalendarCoverageError, match="2099-12-20"):
        calendar.add_working_days(date(2099, 12, 20), 30)
    with pytest.raises(CalendarCoverageError, match="2004-01-10"):
        calendar.add_working_days(date(2004, 1, 10), -30)
    with pytest.raises(CalendarCoverageError):
        calendar.add_working_days_many(np.array(["2099-12-20"], dtype="datetime64[D]"), np.array([30]))
    with pytest.raises(CalendarCoverageError, match="2100-01-01"):
        calendar.add_working_days_many(np.array(["2100-01-01"], dtype="datetime64[D]"), np.array([1]))


@pytest.mark.parametrize("n", [1.0, True, "1"], ids=["float", "bool", "str"])
def test_a_non_integer_count_is_refused(calendar: WorkCalendar, n: object) -> None:
    with pytest.raises(CalendarError, match=re.escape(repr(n))):
        calendar.add_working_days(date(2026, 10, 9), n)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "days",
    [
        np.array([date(2026, 10, 9)], dtype=object),
        np.array([20000], dtype=np.int64),
        ["2026-10-09"],
    ],
    ids=["object", "int64", "list-of-str"],
)
def test_add_working_days_many_refuses_anything_but_datetime64(calendar: WorkCalendar, days: object) -> None:
    with pytest.raises(CalendarError, match="datetime64"):
        calendar.add_working_days_many(days, np.array([1]))  # type: ignore[arg-type]


def test_add_working_days_many_refuses_non_integer_counts(calendar: WorkCalendar) -> None:
    with pytest.raises(CalendarError, match="float64"):
        calendar.add_working_days_many(np.array(["2026-10-09"], dtype="datetime64[D]"), np.array([1.0]))


# ------------------------------------------------------------------------------------ zones


def test_local_date_converts_to_beijing_before_taking_the_date() -> None:
    late_utc = datetime(2026, 10, 8, 23, 30, tzinfo=UTC)
    assert late_utc.date() == date(2026, 10, 8)  # chinese-calendar's trap
    assert WorkCalendar.local_date(late_utc) == date(2026, 10, 9)
    assert WorkCalendar.local_date(datetime(2026, 10, 9, 0, 30, tzinfo=BEIJING)) == date(2026, 10, 9)
    assert WorkCalendar.local_date(pendulum.datetime(2026, 10, 8, 16, 0)) == date(2026, 10, 9)  # UTC 16:00
    assert WorkCalendar.local_date(pendulum.datetime(2026, 10, 8, 15, 59)) == date(2026, 10, 8)


def test_local_date_refuses_a_naive_datetime() -> None:
    with pytest.raises(CalendarError, match="2026-10-09T09:00:00"):
        WorkCalendar.local_date(datetime(2026, 10, 9, 9, 0))  # naive on purpose
