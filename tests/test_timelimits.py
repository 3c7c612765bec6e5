"""Legal time limits (办理时限): the reference cases, refusals, provisional answers and explanations.

Each test states one rule of shared/reference/RULES.md ("Conventions used for the cases") or of the
"Time" section of DESIGN.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caseflow.calendar import ChineseCalendarSource, WorkCalendar
from caseflow.errors import CalendarCoverageError, CaseflowError, TimeLimitError
from caseflow.timelimits import Due, ExcludedPeriod, TimeLimit, compute_due, explain_due

BEIJING = ZoneInfo("Asia/Shanghai")
BJ = Callable[..., datetime]
CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "reference_cases.json").read_text(encoding="utf-8")
)


def midnight_after(day: date) -> datetime:
    """00:00 Beijing time of the day after ``day``: the first instant a day-based limit is overdue."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=BEIJING)


# ------------------------------------------------------------------------------------ reference cases


def limit_for(case: dict[str, Any], **options: Any) -> TimeLimit:
    """The TimeLimit a reference case's ``rule`` stands for (its primary reading unless overridden)."""
    rule, n = case["rule"], case["amount"]
    if rule == "working_days":
        kwargs: dict[str, Any] = {"unit": "working_days"}
    elif rule == "calendar_days_roll_forward":
        kwargs = {"unit": "days"}
    elif rule in ("calendar_days_criminal_custody", "calendar_days_no_roll"):
        kwargs = {"unit": "days", "roll_forward": False}
    elif rule == "hours":
        kwargs = {"unit": "hours"}
    elif rule == "months":
        kwargs = {"unit": "months"}
        if case["id"] == "C39":  # 审查起诉 while in custody: 刑诉解释 第二百零二条, no roll-forward
            kwargs.update(month_end="last_to_last", roll_forward=False)
    else:  # pragma: no cover - a new rule in cases.json needs a mapping here
        raise AssertionError(f"unmapped rule {rule!r} in case {case['id']}")
    kwargs.update(options)
    unit = kwargs.pop("unit")
    return TimeLimit(n, unit, **kwargs)


def alt_options(case: dict[str, Any]) -> dict[str, Any] | None:
    """The TimeLimit options of the alternative reading we offer for ``case``, or None if we don't."""
    if case["rule"] == "working_days":
        return {"start_day": "next_workday"}  # acceptance on a non-working day deemed on the next working day
    if case["rule"] == "hours":
        return {"hour_start": "next_hour"}  # 次时 reading (民诉解释 第一百二十五条)
    if case["id"] == "C35":
        return {"roll_forward": True}  # civil-style roll-forward applied to 信访
    if case["id"] == "C39":
        return {"month_end": "corresponding"}  # 民法典 第二百零二条 对应日
    return None


def excluded_of(case: dict[str, Any]) -> list[tuple[date, date]]:
    return [(date.fromisoformat(a), date.fromisoformat(b)) for a, b in case["excluded_periods"]]


def check_due(case: dict[str, Any], due: Due, expected: str) -> None:
    if case["rule"] == "hours":
        assert due.due_at == datetime.fromisoformat(expected), case["explanation"]
    else:
        assert due.last_day == date.fromisoformat(expected), case["explanation"]
        assert due.due_at == midnight_after(due.last_day)
        assert due.due_at.utcoffset() == timedelta(hours=8)


def _alt_params() -> list[Any]:
    params = []
    for case in CASES:
        if "alt_expected_due" not in case:
            continue
        if alt_options(case) is None:
            params.append(pytest.param(case, id=case["id"], marks=pytest.mark.skip(
                reason=f"{case['id']}'s alternative reading (every Saturday and Sunday a 节假日, ignoring "
                "调休上班) is not offered: caseflow follows the actual 调休 calendar (民通意见 第198条)")))
        else:
            params.append(pytest.param(case, id=case["id"]))
    return params


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reference_case_primary_reading(case: dict[str, Any]) -> None:
    due = compute_due(datetime.fromisoformat(case["start"]), limit_for(case), excluded=excluded_of(case))
    check_due(case, due, case["expected_due"])


@pytest.mark.parametrize("case", _alt_params())
def test_reference_case_alternative_reading(case: dict[str, Any]) -> None:
    options = alt_options(case)
    assert options is not None
    due = compute_due(datetime.fromisoformat(case["start"]), limit_for(case, **options),
                      excluded=excluded_of(case))
    check_due(case, due, case["alt_expected_due"])


def test_every_reference_case_is_checked(reference_cases: list[dict[str, Any]]) -> None:
    assert reference_cases == CASES
    assert len(CASES) == 20  # the odd-numbered half of RULES.md's 40 cases
    assert len({c["id"] for c in CASES}) == len(CASES)
    # Every ambiguous case offers an alternative, and every alternative is either offered or skipped.
    assert all("alt_expected_due" in c for c in CASES if c["ambiguous"])


def test_expert_review_days_are_reported_as_excluded() -> None:
    c13 = next(c for c in CASES if c["id"] == "C13")
    due = compute_due(datetime.fromisoformat(c13["start"]), limit_for(c13), excluded=excluded_of(c13))
    assert due.excluded_days == 10  # 06-16..06-27: ten working days under 专家评审
    without = compute_due(datetime.fromisoformat(c13["start"]), limit_for(c13))
    assert without.last_day == date(2025, 7, 7)


def test_extension_continues_from_the_end_of_the_first_limit(bj: BJ) -> None:
    # 行政许可法 第四十二条: 20 working days + 10 = 30 working days from acceptance (case C05).
    limit = TimeLimit(20, "working_days") + TimeLimit(10, "working_days")
    assert limit == TimeLimit(30, "working_days")
    assert compute_due(bj(2025, 4, 25, 9), limit).last_day == date(2025, 6, 11)


def test_acceptance_on_a_make_up_saturday_counts_from_the_next_day(bj: BJ) -> None:
    # C07: accepted on 调休上班 Saturday 2026-02-28; the acceptance day itself never counts.
    assert compute_due(bj(2026, 2, 28, 10), "10 working_days").last_day == date(2026, 3, 13)
    # The next_workday reading changes nothing when the acceptance day is a working day.
    due = compute_due(bj(2026, 2, 28, 10), TimeLimit(10, "working_days", start_day="next_workday"))
    assert due.last_day == date(2026, 3, 13)


# ------------------------------------------------------------------------------------ refusals


def assert_refused(excinfo: pytest.ExceptionInfo[TimeLimitError], *values: str) -> None:
    assert isinstance(excinfo.value, CaseflowError)
    assert isinstance(excinfo.value, ValueError)
    for value in values:
        assert value in str(excinfo.value), (value, str(excinfo.value))


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        compute_due(datetime(2026, 10, 9, 9, 30), "3 days")  # naive on purpose
    assert_refused(excinfo, "2026-10-09T09:30:00", "naive")


def test_a_start_that_is_not_an_instant_is_refused() -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        compute_due(date(2026, 10, 9), "3 days")  # type: ignore[arg-type]
    assert_refused(excinfo, "datetime.date(2026, 10, 9)")


@pytest.mark.parametrize("which", ["start", "end"])
def test_naive_excluded_instants_are_refused(bj: BJ, which: str) -> None:
    naive = datetime(2026, 3, 2, 14, 0)  # naive on purpose
    aware = bj(2026, 3, 2, 16, 0)
    pair = (naive, aware) if which == "start" else (bj(2026, 3, 2, 12, 0), naive.replace(hour=16))
    with pytest.raises(TimeLimitError) as excinfo:
        compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=[pair])
    assert_refused(excinfo, "T14:00:00" if which == "start" else "T16:00:00", "naive")


@pytest.mark.parametrize("amount", [-1, -20])
def test_negative_amounts_are_refused(amount: int) -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        TimeLimit(amount, "working_days")
    assert_refused(excinfo, str(amount))
    with pytest.raises(TimeLimitError) as excinfo:
        TimeLimit.parse(f"{amount} days")
    assert_refused(excinfo, str(amount))


@pytest.mark.parametrize("amount", [2.5, True, "3"], ids=["float", "bool", "str"])
def test_non_integer_amounts_are_refused(amount: object) -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        TimeLimit(amount, "days")  # type: ignore[arg-type]
    assert_refused(excinfo, repr(amount))


def test_a_fractional_amount_in_text_is_refused() -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        TimeLimit.parse("2.5 days")
    assert_refused(excinfo, "2.5")


def test_an_unknown_unit_is_refused() -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        TimeLimit.parse("3 fortnights")
    assert_refused(excinfo, "fortnights")
    with pytest.raises(TimeLimitError) as excinfo:
        TimeLimit(3, "fortnights")  # type: ignore[arg-type]
    assert_refused(excinfo, "fortnights")


@pytest.mark.parametrize("text", ["", "days", "twenty days", "20"])
def test_text_without_an_amount_and_a_unit_is_refused(text: str) -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        TimeLimit.parse(text)
    assert_refused(excinfo, repr(text) if text else "''")


def test_a_reversed_excluded_range_is_refused(bj: BJ) -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        ExcludedPeriod(date(2026, 3, 10), date(2026, 3, 1))
    assert_refused(excinfo, "2026-03-10", "2026-03-01")
    with pytest.raises(TimeLimitError) as excinfo:
        compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=[(bj(2026, 3, 2, 16), bj(2026, 3, 2, 14))])
    assert_refused(excinfo, "2026-03-02 16:00:00")


def test_an_excluded_range_mixing_a_date_and_an_instant_is_refused(bj: BJ) -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        compute_due(bj(2026, 3, 2, 9), "20 working_days", excluded=[(date(2026, 3, 3), bj(2026, 3, 5, 12))])
    assert_refused(excinfo, "2026-03-03", "2026-03-05 12:00:00")


def test_date_ranges_are_refused_for_an_hour_limit(bj: BJ) -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=[(date(2026, 3, 2), date(2026, 3, 3))])
    assert_refused(excinfo, "2026-03-02", "2026-03-03")


def test_an_excluded_period_that_is_not_a_pair_is_refused(bj: BJ) -> None:
    with pytest.raises(TimeLimitError) as excinfo:
        compute_due(bj(2026, 3, 2, 9), "3 days", excluded=[date(2026, 3, 3)])
    assert_refused(excinfo, "2026, 3, 3")


# ------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("20 working_days", 20, "working_days"),
        ("3 days", 3, "days"),
        ("24 hours", 24, "hours"),
        ("1 month", 1, "months"),
        ("5个工作日", 5, "working_days"),
        ("24小时", 24, "hours"),
        ("1个月", 1, "months"),
        ("30日", 30, "days"),
        ("  8 hours ", 8, "hours"),
        ("10 working days", 10, "working_days"),
    ],
)
def test_parse_reads_english_and_chinese_limits(text: str, amount: int, unit: str) -> None:
    assert TimeLimit.parse(text) == TimeLimit(amount, unit)  # type: ignore[arg-type]


def test_parse_passes_options_through() -> None:
    limit = TimeLimit.parse("7 days", roll_forward=False)
    assert limit == TimeLimit(7, "days", roll_forward=False)
    assert TimeLimit.parse(limit) is limit


def test_a_limit_reads_back_in_chinese() -> None:
    assert TimeLimit(20, "working_days").chinese() == "20个工作日"
    assert TimeLimit(24, "hours").chinese() == "24小时"
    assert TimeLimit(1, "months").chinese() == "1个月"


def test_limits_of_different_units_cannot_be_added() -> None:
    with pytest.raises(TimeLimitError, match="units differ"):
        TimeLimit(20, "working_days") + TimeLimit(10, "days")


# ------------------------------------------------------------------------------------ zero, zones


@pytest.mark.parametrize("text", ["0 days", "0 working_days"])
@pytest.mark.parametrize("start", [(2026, 10, 9, 17), (2026, 10, 3, 9)], ids=["workday", "holiday"])
def test_a_zero_limit_ends_at_the_end_of_the_start_day(bj: BJ, text: str, start: tuple[int, ...]) -> None:
    due = compute_due(bj(*start), text)
    assert due.last_day == date(*start[:3])
    assert due.due_at == midnight_after(date(*start[:3]))


def test_a_start_given_in_utc_counts_from_its_beijing_date() -> None:
    # 2026-10-08 23:30 UTC is Friday 2026-10-09 07:30 in Beijing; the UTC date would be a day early.
    start = datetime(2026, 10, 8, 23, 30, tzinfo=UTC)
    assert compute_due(start, "0 days").last_day == date(2026, 10, 9)
    # The first working day after Friday 10-09 is the make-up Saturday 10-10, not Friday itself.
    assert compute_due(start, "1 working_days").last_day == date(2026, 10, 10)
    assert compute_due(start, "3 days").last_day == date(2026, 10, 12)
    due = compute_due(start, "24 hours")
    assert due.due_at == datetime(2026, 10, 10, 7, 30, tzinfo=BEIJING)
    assert due.start == datetime(2026, 10, 9, 7, 30, tzinfo=BEIJING)


def test_a_day_limit_is_overdue_from_midnight_beijing_time(bj: BJ) -> None:
    due = compute_due(bj(2026, 3, 2, 23, 59), "3 days")
    assert due.last_day == date(2026, 3, 5)
    assert due.due_at == datetime(2026, 3, 5, 16, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------ hours and pauses


def test_hours_ignore_holidays(bj: BJ) -> None:
    # Detained on the eve of the Spring Festival block: the holiday does not stop the clock.
    due = compute_due(bj(2026, 2, 14, 16, 40), "24 hours")
    assert due.due_at == bj(2026, 2, 15, 16, 40)
    assert due.last_day == date(2026, 2, 15)


def test_an_hour_limit_ending_at_midnight_ends_on_the_previous_day(bj: BJ) -> None:
    due = compute_due(bj(2026, 3, 2, 0, 0), "24 hours")
    assert due.due_at == bj(2026, 3, 3, 0, 0)
    assert due.last_day == date(2026, 3, 2)


def test_a_pause_adds_its_duration_to_an_hour_limit(bj: BJ) -> None:
    due = compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=[(bj(2026, 3, 2, 14), bj(2026, 3, 2, 16, 30))])
    assert due.due_at == bj(2026, 3, 3, 11, 30)


def test_several_pauses_add_up(bj: BJ) -> None:
    pauses = [(bj(2026, 3, 2, 14), bj(2026, 3, 2, 15)), (bj(2026, 3, 2, 20), bj(2026, 3, 2, 22))]
    assert compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=pauses).due_at == bj(2026, 3, 3, 12)


def test_a_pause_before_the_start_adds_nothing(bj: BJ) -> None:
    due = compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=[(bj(2026, 3, 1, 10), bj(2026, 3, 1, 12))])
    assert due.due_at == bj(2026, 3, 3, 9)


def test_only_the_part_of_a_pause_after_the_start_counts(bj: BJ) -> None:
    due = compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=[(bj(2026, 3, 2, 8), bj(2026, 3, 2, 10))])
    assert due.due_at == bj(2026, 3, 3, 10)


def test_a_pause_after_the_due_instant_adds_nothing(bj: BJ) -> None:
    due = compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=[(bj(2026, 3, 3, 10), bj(2026, 3, 3, 12))])
    assert due.due_at == bj(2026, 3, 3, 9)


def test_a_pause_reached_only_because_of_an_earlier_pause_counts(bj: BJ) -> None:
    # The first pause moves the due instant from 03-03 09:00 to 11:00; the second starts at 10:00.
    pauses = [(bj(2026, 3, 2, 10), bj(2026, 3, 2, 12)), (bj(2026, 3, 3, 10), bj(2026, 3, 3, 11))]
    assert compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=pauses).due_at == bj(2026, 3, 3, 12)


def test_overlapping_pauses_count_their_paused_time_once(bj: BJ) -> None:
    # BUG (timelimits._clock_due): overlapping instant ranges are each added in full, so the clock
    # stops 10:00-12:00 and 11:00-13:00 = 3 h paused, but 4 h are added (due 13:00, not 12:00).
    # Day ranges are merged first (_day_ranges); instant ranges should be too.
    pauses = [(bj(2026, 3, 2, 10), bj(2026, 3, 2, 12)), (bj(2026, 3, 2, 11), bj(2026, 3, 2, 13))]
    assert compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=pauses).due_at == bj(2026, 3, 3, 12)


def test_pauses_given_in_utc_are_the_same_pauses(bj: BJ) -> None:
    pause = (datetime(2026, 3, 2, 6, tzinfo=UTC), datetime(2026, 3, 2, 8, 30, tzinfo=UTC))  # 14:00-16:30 BJ
    assert compute_due(bj(2026, 3, 2, 9), "24 hours", excluded=[pause]).due_at == bj(2026, 3, 3, 11, 30)


def test_next_hour_reading_starts_the_clock_at_the_next_full_hour(bj: BJ) -> None:
    due = compute_due(bj(2026, 1, 31, 18, 45), TimeLimit(12, "hours", hour_start="next_hour"))
    assert due.due_at == bj(2026, 2, 1, 7, 0)


def test_minutes_run_on_the_clock(bj: BJ) -> None:
    assert compute_due(bj(2026, 3, 2, 23, 30), "90 minutes").due_at == bj(2026, 3, 3, 1, 0)


# ------------------------------------------------------------------------------------ excluded days


def test_excluded_days_do_not_count_for_calendar_days(bj: BJ) -> None:
    # 治安案件 30 days with 鉴定 03-10..03-14 (5 days) not counted: nominal 04-01 + 5 = 04-06 (清明, Mon)
    # → rolls to Tuesday 04-07.
    due = compute_due(bj(2026, 3, 2, 10), "30 days", excluded=[(date(2026, 3, 10), date(2026, 3, 14))])
    assert due.excluded_days == 5
    assert due.last_day == date(2026, 4, 7)


def test_overlapping_excluded_day_ranges_count_once(bj: BJ) -> None:
    ranges = [(date(2026, 3, 10), date(2026, 3, 12)), (date(2026, 3, 11), date(2026, 3, 14))]
    due = compute_due(bj(2026, 3, 2, 10), "30 days", excluded=ranges)
    assert due.excluded_days == 5
    assert due.last_day == date(2026, 4, 7)


def test_excluded_instants_exclude_their_beijing_dates_for_day_limits(bj: BJ) -> None:
    # An instant range for a day limit excludes the Beijing dates it touches, inclusive.
    instants = [(datetime(2026, 3, 9, 16, 30, tzinfo=UTC), bj(2026, 3, 13, 9))]  # 03-10 00:30 .. 03-13 BJ
    by_dates = [(date(2026, 3, 10), date(2026, 3, 13))]
    a = compute_due(bj(2026, 3, 2, 10), "20 working_days", excluded=instants)
    b = compute_due(bj(2026, 3, 2, 10), "20 working_days", excluded=by_dates)
    assert a.last_day == b.last_day
    assert a.excluded_days == b.excluded_days == 4


def _brute_force(calendar: WorkCalendar, start: date, n: int, ranges: list[tuple[date, date]],
                 working: bool) -> tuple[date, int]:
    """Day by day: the n-th counted day after ``start`` and how many countable days were excluded."""
    day, count, skipped = start, 0, 0
    while count < n:
        day += timedelta(days=1)
        countable = calendar.is_workday(day) if working else True
        if any(a <= day <= b for a, b in ranges):
            skipped += countable
        elif countable:
            count += 1
    return day, skipped


_RANGES = st.lists(
    st.tuples(st.integers(-10, 80), st.integers(0, 15)).map(
        lambda t: (date(2025, 9, 1) + timedelta(days=t[0]), date(2025, 9, 1) + timedelta(days=t[0] + t[1]))
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(start=st.dates(date(2025, 8, 1), date(2025, 12, 31)), n=st.integers(0, 40), ranges=_RANGES)
def test_working_days_with_excluded_ranges_equal_a_day_by_day_count(
    calendar: WorkCalendar, start: date, n: int, ranges: list[tuple[date, date]]
) -> None:
    due = compute_due(datetime.combine(start, time(10), tzinfo=BEIJING), TimeLimit(n, "working_days"),
                      excluded=ranges)
    expected, skipped = _brute_force(calendar, start, n, ranges, working=True)
    assert due.last_day == expected
    assert due.excluded_days == skipped


@settings(max_examples=150, deadline=None)
@given(start=st.dates(date(2025, 8, 1), date(2025, 12, 31)), n=st.integers(1, 60), ranges=_RANGES,
       roll=st.booleans())
def test_calendar_days_with_excluded_ranges_equal_a_day_by_day_count(
    calendar: WorkCalendar, start: date, n: int, ranges: list[tuple[date, date]], roll: bool
) -> None:
    due = compute_due(datetime.combine(start, time(10), tzinfo=BEIJING), TimeLimit(n, "days", roll_forward=roll),
                      excluded=ranges)
    expected, skipped = _brute_force(calendar, start, n, ranges, working=False)
    if roll:
        expected = calendar.roll_forward(expected)
    assert due.last_day == expected
    assert due.excluded_days == skipped


# ------------------------------------------------------------------------------------ months


@pytest.mark.parametrize(
    ("start", "months", "options", "last_day"),
    [
        ((2025, 1, 31), 1, {}, date(2025, 2, 28)),  # no 02-31: the month's last day (C37)
        ((2024, 1, 31), 1, {}, date(2024, 2, 29)),  # leap year
        ((2025, 4, 30), 1, {"roll_forward": False}, date(2025, 5, 30)),  # 民法典: 对应日 exists
        ((2025, 4, 30), 1, {"roll_forward": False, "month_end": "last_to_last"}, date(2025, 5, 31)),  # 刑诉解释
        ((2025, 4, 15), 1, {"month_end": "last_to_last"}, date(2025, 5, 15)),  # not a month end: same day
        ((2025, 11, 30), 3, {}, date(2026, 2, 28)),  # Saturday 02-28 is 调休上班: no roll-forward
        ((2025, 12, 15), 2, {}, date(2026, 2, 24)),  # 02-15 inside 春节 → first working day after
        ((2025, 12, 15), 2, {"roll_forward": False}, date(2026, 2, 15)),
    ],
)
def test_months_end_on_the_corresponding_day(bj: BJ, start: tuple[int, int, int], months: int,
                                             options: dict[str, Any], last_day: date) -> None:
    due = compute_due(bj(*start, 10), TimeLimit(months, "months", **options))
    assert due.last_day == last_day


# ------------------------------------------------------------------------------------ provisional


def test_a_limit_reaching_an_unannounced_year_is_provisional(calendar: WorkCalendar, bj: BJ) -> None:
    assert calendar.official_until == date(2026, 12, 31)
    due = compute_due(bj(2026, 12, 10, 10), "20 working_days")
    assert due.last_day > calendar.official_until
    assert due.provisional


def test_a_limit_within_announced_years_is_not_provisional(bj: BJ) -> None:
    due = compute_due(bj(2026, 11, 2, 10), "20 working_days")
    assert due.last_day == date(2026, 11, 30)
    assert not due.provisional


def test_a_limit_ending_on_the_last_announced_day_is_not_provisional(bj: BJ) -> None:
    due = compute_due(bj(2026, 12, 30, 10), "1 working_days")
    assert due.last_day == date(2026, 12, 31)
    assert not due.provisional


@pytest.mark.parametrize("start", [(2026, 12, 31, 20), (2027, 6, 1, 9)])
def test_hour_limits_are_never_provisional(bj: BJ, start: tuple[int, ...]) -> None:
    assert not compute_due(bj(*start), "24 hours").provisional


def test_calendar_days_ending_in_an_unannounced_year_are_provisional(bj: BJ) -> None:
    # Whether 2027-01-04 (Monday) is a working day is not yet announced: the roll-forward may change.
    assert compute_due(bj(2026, 12, 28, 10), "7 days").provisional
    assert compute_due(bj(2026, 12, 15, 10), "1 month").provisional


def test_custody_days_crossing_into_an_unannounced_year_are_not_provisional(bj: BJ) -> None:
    due = compute_due(bj(2026, 12, 28, 10), TimeLimit(7, "days", roll_forward=False))
    assert due.last_day == date(2027, 1, 4)
    assert not due.provisional


def test_custody_days_inside_an_unannounced_year_are_not_provisional(bj: BJ) -> None:
    # BUG (timelimits._day_due): without roll-forward the calendar is never consulted, yet
    # ``consulted = start`` makes every custody limit starting after official_until provisional.
    # 7 days (在押, no roll) from 2027-03-01 → last day 2027-03-08, certain whatever the 2027 notice says.
    due = compute_due(bj(2027, 3, 1, 10), TimeLimit(7, "days", roll_forward=False))
    assert due.last_day == date(2027, 3, 8)
    assert not due.provisional


def test_a_roll_forward_into_an_unannounced_year_is_provisional(bj: BJ) -> None:
    # BUG (latent, timelimits._day_due): ``consulted`` is taken before the roll-forward, so a last day
    # on the final announced day that rolls into a projected year is not marked provisional. It cannot
    # happen with 2026 (12-31 is a Thursday), so build a calendar whose official data stops at 2022
    # (2022-12-31 is a Saturday): 3 days from 2022-12-28 → Sat 12-31 → rolls over the *projected*
    # 元旦 and its 补假 to 2023-01-03, an answer that depends on unannounced days.
    cal = WorkCalendar([a for a in ChineseCalendarSource().arrangements() if a.year <= 2022])
    assert cal.official_until == date(2022, 12, 31)
    due = compute_due(bj(2022, 12, 28, 10), "3 days", calendar=cal)
    assert due.last_day == date(2023, 1, 3)
    assert due.provisional


@settings(max_examples=100, deadline=None)
def _answer(start: datetime, limit: TimeLimit, **kwargs: Any) -> tuple[Any, ...]:
    """Every field of compute_due's answer (instants with their offsets), or the refusal's class and text."""
    try:
        due = compute_due(start, limit, **kwargs)
    except CaseflowError as exc:
        return type(exc), str(exc)
    return (due.due_at.isoformat(), due.last_day, due.provisional, due.start.isoformat(), due.limit,
            due.excluded_days)


@settings(max_examples=400, deadline=None)
@given(start=st.datetimes(datetime(2004, 1, 1), datetime(2099, 12, 31),
                          timezones=st.sampled_from([BEIJING, UTC, ZoneInfo("America/New_York")])),
       amount=st.integers(0, 400), unit=st.sampled_from(["working_days", "days", "months", "hours", "minutes"]),
       roll=st.booleans(), last_to_last=st.booleans(), next_workday=st.booleans(), next_hour=st.booleans())
def test_a_limit_with_nothing_excluded_gets_the_general_path_s_answer(  # noqa: PLR0917
    start: datetime, amount: int, unit: str, roll: bool, last_to_last: bool, next_workday: bool, next_hour: bool
) -> None:
    """compute_due's short paths (no pause, no exclusion) answer exactly as the full computation does."""
    limit = TimeLimit(amount, unit, roll_forward=roll,  # type: ignore[arg-type]
                      month_end="last_to_last" if last_to_last else "corresponding",
                      start_day="next_workday" if next_workday else "actual",
                      hour_start="next_hour" if next_hour else "exact")
    # An empty iterator is not recognised as "nothing excluded": it takes the full computation.
    assert _answer(start, limit) == _answer(start, limit, excluded=iter(()))


@given(start=st.dates(date(2026, 9, 1), date(2026, 12, 31)), n=st.integers(1, 80))
def test_working_days_are_provisional_exactly_when_a_counted_day_is_unannounced(
    calendar: WorkCalendar, start: date, n: int
) -> None:
    due = compute_due(datetime.combine(start, time(10), tzinfo=BEIJING), TimeLimit(n, "working_days"))
    assert due.provisional == (due.last_day > calendar.official_until)


# ------------------------------------------------------------------------------------ coverage


def test_a_start_before_the_calendar_is_refused(bj: BJ) -> None:
    with pytest.raises(CalendarCoverageError) as excinfo:
        compute_due(bj(2003, 12, 30, 10), "5 working_days")
    assert isinstance(excinfo.value, LookupError)
    assert "2003-12-30" in str(excinfo.value)


@pytest.mark.parametrize(
    "limit",
    ["5 working_days", "5 days", TimeLimit(5, "days", roll_forward=False), "1 month"],
    ids=str,
)
def test_a_result_past_the_calendar_is_refused(bj: BJ, limit: TimeLimit | str) -> None:
    with pytest.raises(CalendarCoverageError) as excinfo:
        compute_due(bj(2099, 12, 29, 10), limit)
    assert isinstance(excinfo.value, LookupError)
    assert "2099-12-31" in str(excinfo.value)


# ------------------------------------------------------------------------------------ explanations


def test_explain_numbers_counted_working_days_and_names_skipped_days(bj: BJ) -> None:
    due, steps = explain_due(bj(2025, 1, 20, 10), "20 working_days")  # C01
    assert due.last_day == date(2025, 2, 21)
    assert steps[0].kind == "start" and steps[0].day == date(2025, 1, 20)
    counted = [s for s in steps if s.kind == "counted"]
    assert [s.count for s in counted] == list(range(1, 21))
    assert counted[-1].day == due.last_day
    by_day = {s.day: s for s in steps}
    assert by_day[date(2025, 1, 25)].kind == "skipped" and by_day[date(2025, 1, 25)].reason == "周末"
    assert by_day[date(2025, 1, 26)].kind == "counted" and by_day[date(2025, 1, 26)].reason == "调休上班"
    assert by_day[date(2025, 2, 8)].count == 10 and by_day[date(2025, 2, 8)].reason == "调休上班"
    for offset in range(8):  # 01-28 (除夕) .. 02-04
        step = by_day[date(2025, 1, 28) + timedelta(days=offset)]
        assert (step.kind, step.reason) == ("skipped", "春节")
    # One step per day from the start to the last day, nothing after it.
    assert [s.day for s in steps] == [date(2025, 1, 20) + timedelta(days=i) for i in range(len(steps))]


def test_explain_names_national_day_and_its_make_up_saturday(bj: BJ) -> None:
    due, steps = explain_due(bj(2026, 9, 28, 10), "10 working_days")
    by_day = {s.day: s for s in steps}
    for offset in range(7):  # 2026-10-01 .. 10-07
        step = by_day[date(2026, 10, 1) + timedelta(days=offset)]
        assert (step.kind, step.reason) == ("skipped", "国庆节")
    assert (by_day[date(2026, 10, 10)].kind, by_day[date(2026, 10, 10)].reason) == ("counted", "调休上班")
    assert by_day[date(2026, 10, 10)].count == 5  # 09-29, 09-30, 10-08, 10-09, 10-10
    assert due.last_day == date(2026, 10, 16)


def test_explain_marks_excluded_days_with_their_reason(bj: BJ) -> None:
    excluded = [ExcludedPeriod(date(2025, 6, 16), date(2025, 6, 27), reason="专家评审")]
    due, steps = explain_due(bj(2025, 6, 9, 10), "20 working_days", excluded=excluded)  # C13
    assert due.last_day == date(2025, 7, 21)
    excluded_steps = [s for s in steps if s.kind == "excluded"]
    assert [s.day for s in excluded_steps] == [date(2025, 6, 16) + timedelta(days=i) for i in range(12)]
    assert all("专家评审" in s.reason for s in excluded_steps)
    assert [s.count for s in steps if s.kind == "counted"] == list(range(1, 21))


def test_explain_shows_roll_forward_after_the_nominal_last_day(bj: BJ) -> None:
    due, steps = explain_due(bj(2026, 9, 20, 10), "15 days")  # C31: day 15 is 10-05, inside 国庆节
    assert due.last_day == date(2026, 10, 8)
    assert [s.count for s in steps if s.kind == "counted"] == list(range(1, 16))
    rolled = [s for s in steps if s.kind == "rolled"]
    assert [s.day for s in rolled] == [date(2026, 10, 6), date(2026, 10, 7), date(2026, 10, 8)]


def test_explain_of_a_deemed_next_workday_start(bj: BJ) -> None:
    limit = TimeLimit(20, "working_days", start_day="next_workday")
    due, steps = explain_due(bj(2026, 10, 3, 14), limit)  # C09, alternative reading
    assert due.last_day == date(2026, 11, 4)
    starts = [s for s in steps if s.kind == "start"]
    assert [s.day for s in starts] == [date(2026, 10, 3), date(2026, 10, 8)]
    assert [s.count for s in steps if s.kind == "counted"] == list(range(1, 21))


def test_explain_marks_unannounced_days_provisional(bj: BJ) -> None:
    due, steps = explain_due(bj(2026, 12, 10, 10), "20 working_days")
    assert due.provisional
    assert all(s.provisional == (s.day > date(2026, 12, 31)) for s in steps if s.kind != "start")


def test_explain_of_an_hour_limit_lists_its_pauses(bj: BJ) -> None:
    due, steps = explain_due(bj(2026, 3, 2, 9), "24 hours",
                             excluded=[ExcludedPeriod(bj(2026, 3, 2, 14), bj(2026, 3, 2, 16), reason="函调")])
    assert due.due_at == bj(2026, 3, 3, 11)
    assert [s.kind for s in steps] == ["start", "excluded", "clock"]
    assert "函调" in steps[1].reason
