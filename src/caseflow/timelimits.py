"""Legal time limits (办理时限) and the instant at which each runs out.

The conventions (see shared/reference/RULES.md, "Conventions used for the cases"):

- **The start day (or hour) does not count** — 刑事诉讼法 第一百零五条第二款 (期间开始的时和日不算在期间
  以内), 民法典 第二百零一条, 民事诉讼法 第八十五条, 公安机关办理行政案件程序规定 第三十五条. "Within N
  (working) days" of day S ends at 24:00 of the N-th (working) day after S.
- **Working days** — 行政许可法 第八十二条: only working days of the calendar count, make-up working
  days (调休上班) included.
- **Calendar days** — when the last day is a rest day, the limit moves to the first working day after
  it (刑事诉讼法 第一百零五条第四款, 民事诉讼法 第八十五条) — except for a person in custody (在押), whose
  limit ends on its last day regardless (不得因节假日而延长): ``roll_forward=False``. 信访工作条例 has no
  roll-forward clause, so petition limits also use ``roll_forward=False``.
- **Hours and minutes** run on the clock from the exact instant (刑事诉讼法 第八十五条、第八十六条);
  holidays never matter. ``hour_start="next_hour"`` offers the 次时 reading (民诉解释 第一百二十五条:
  以时起算的期间从次时起算): the clock starts at the next full hour.
- **Months** end on the corresponding day of the final month, or its last day when it has none
  (民法典 第二百零二条); ``month_end="last_to_last"`` is 刑诉解释 第二百零二条 (a start on a month's
  last day ends on the last day of the final month).
- **Excluded time** (函调, 听证、检验、检测、鉴定、专家评审 under 行政许可法 第四十五条, 补正): for day
  units the days inside the inclusive excluded date ranges do not count; for hour units the length of
  each excluded instant range is added.
- ``start_day="next_workday"`` offers the alternative reading for an acceptance recorded on a
  non-working day: acceptance is deemed to happen on the next working day.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, cast

from caseflow.calendar import FIRST_YEAR, LAST_YEAR, ZONE, WorkCalendar, default_calendar
from caseflow.clock import check_instant
from caseflow.errors import CaseflowError, TimeLimitError

__all__ = [
    "MAX_AMOUNT",
    "UNITS",
    "Due",
    "ExcludedPeriod",
    "Step",
    "TimeLimit",
    "compute_due",
    "escalation_instant",
    "explain_due",
]

Unit = Literal["minutes", "hours", "days", "working_days", "months"]
UNITS: tuple[Unit, ...] = ("minutes", "hours", "days", "working_days", "months")
MonthEnd = Literal["corresponding", "last_to_last"]
StartDay = Literal["actual", "next_workday"]
HourStart = Literal["exact", "next_hour"]

_UNIT_WORDS: dict[str, Unit] = {
    "minute": "minutes", "minutes": "minutes", "min": "minutes", "mins": "minutes", "分钟": "minutes",
    "hour": "hours", "hours": "hours", "h": "hours", "小时": "hours", "个小时": "hours",
    "day": "days", "days": "days", "d": "days", "日": "days", "天": "days",
    "working_day": "working_days", "working_days": "working_days", "working day": "working_days",
    "working days": "working_days", "workday": "working_days", "workdays": "working_days",
    "wd": "working_days", "工作日": "working_days", "个工作日": "working_days",
    "month": "months", "months": "months", "月": "months", "个月": "months",
}
_UNIT_ZH: dict[Unit, str] = {
    "minutes": "分钟", "hours": "小时", "days": "日", "working_days": "个工作日", "months": "个月",
}
#: The longest limit of each unit: the span of the working-day calendar (2004–2099, ~96 years). No
#: statute comes near; a larger amount is a typing slip, refused when the limit is read.
MAX_AMOUNT: dict[Unit, int] = {
    "minutes": 100 * 366 * 24 * 60, "hours": 100 * 366 * 24, "days": 100 * 366, "working_days": 100 * 366,
    "months": 100 * 12,
}
_PARSE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(.*?)\s*$")


@dataclass(frozen=True)
class TimeLimit:
    """A legal or promised time limit: ``TimeLimit(20, "working_days")``, ``TimeLimit.parse("24 hours")``.

    ``roll_forward=False`` is for persons in custody (刑事诉讼法 第一百零五条) and for limits whose
    statute has no roll-forward (信访). ``month_end="last_to_last"`` is 刑诉解释 第二百零二条.
    """

    amount: int
    unit: Unit
    roll_forward: bool = field(default=True, kw_only=True)
    month_end: MonthEnd = field(default="corresponding", kw_only=True)
    start_day: StartDay = field(default="actual", kw_only=True)
    hour_start: HourStart = field(default="exact", kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TimeLimitError(
                f"a time limit's amount must be a whole number, got {self.amount!r}; "
                "write half a month as 15 days (刑诉解释 第二百零二条)"
            )
        if self.amount < 0:
            raise TimeLimitError(f"a time limit cannot be negative, got {self.amount}")
        if self.unit not in UNITS:
            raise TimeLimitError(f"unknown unit {self.unit!r}; allowed units are {', '.join(UNITS)}")
        if self.amount > MAX_AMOUNT[self.unit]:
            raise TimeLimitError(
                f"{self.amount} {self.unit} is longer than the calendar (2004–2099) can count; a time limit "
                f"runs at most {MAX_AMOUNT[self.unit]} {self.unit}"
            )
        if self.month_end not in ("corresponding", "last_to_last"):
            raise TimeLimitError(
                f"month_end must be 'corresponding' or 'last_to_last', got {self.month_end!r}"
            )
        if self.start_day not in ("actual", "next_workday"):
            raise TimeLimitError(f"start_day must be 'actual' or 'next_workday', got {self.start_day!r}")
        if self.hour_start not in ("exact", "next_hour"):
            raise TimeLimitError(f"hour_start must be 'exact' or 'next_hour', got {self.hour_start!r}")
        if not isinstance(self.roll_forward, bool):
            raise TimeLimitError(f"roll_forward must be true or false, got {self.roll_forward!r}")

    @classmethod
    def parse(cls, text: str, **options: object) -> TimeLimit:
        """Read ``"20 working_days"``, ``"3 days"``, ``"24 hours"``, ``"1 month"``, ``"5个工作日"``."""
        if isinstance(text, TimeLimit):
            return replace(text, **options) if options else text
        if not isinstance(text, str):
            raise TimeLimitError(f"a time limit is written like '20 working_days', got {text!r}")
        match = _PARSE.match(text)
        if not match or not match.group(2):
            raise TimeLimitError(
                f"cannot read the time limit {text!r}; write an amount and a unit, e.g. "
                "'20 working_days', '3 days', '24 hours', '1 month'"
            )
        number, word = match.groups()
        unit = _UNIT_WORDS.get(word.lower().replace("-", "_"))
        if unit is None:
            raise TimeLimitError(
                f"unknown unit {word!r} in {text!r}; allowed units are {', '.join(UNITS)}"
            )
        if "." in number:
            raise TimeLimitError(f"a time limit's amount must be a whole number, got {number} in {text!r}")
        return cls(int(number), unit, **options)  # type: ignore[arg-type]

    @property
    def is_clock(self) -> bool:
        """True for limits that run on the clock (hours, minutes) rather than on days."""
        return self.unit in ("hours", "minutes")

    def __str__(self) -> str:
        text = f"{self.amount} {self.unit}"
        if not self.roll_forward and self.unit in ("days", "months"):
            text += " (no roll-forward)"
        return text

    def chinese(self) -> str:
        """The limit as a clerk reads it: ``20个工作日``, ``24小时``."""
        return f"{self.amount}{_UNIT_ZH[self.unit]}"

    def __add__(self, other: TimeLimit) -> TimeLimit:
        if not isinstance(other, TimeLimit):
            return NotImplemented
        if other.unit != self.unit:
            raise TimeLimitError(f"cannot add {other} to {self}: the units differ")
        return replace(self, amount=self.amount + other.amount)


@dataclass(frozen=True)
class ExcludedPeriod:
    """Time that does not count: an inclusive date range (day units) or an instant range (hour units)."""

    start: date
    end: date
    reason: str = field(default="", kw_only=True)

    @classmethod
    def parse(cls, text: str, *, clock: bool) -> ExcludedPeriod:
        """Read ``FROM..TO`` or ``REASON=FROM..TO``: dates for day limits, instants when ``clock``."""
        from caseflow.clock import parse_date, parse_instant

        reason, _, span = text.rpartition("=")
        if ".." not in span:
            raise TimeLimitError(f"an excluded period is written FROM..TO (optionally REASON=FROM..TO), got {text!r}")
        a, b = span.split("..", 1)
        if clock:
            return cls(parse_instant(a), parse_instant(b), reason=reason or "暂停")
        return cls(parse_date(a), parse_date(b), reason=reason or "excluded")

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None):
                raise TimeLimitError(f"excluded period {name} {value.isoformat()} is naive; give a time zone")
            if not isinstance(value, date):
                raise TimeLimitError(f"excluded period {name} must be a date or datetime, got {value!r}")
        if isinstance(self.start, datetime) != isinstance(self.end, datetime):
            raise TimeLimitError(
                f"excluded period mixes a date and an instant: {self.start} .. {self.end}"
            )
        if self.end < self.start:
            raise TimeLimitError(
                f"excluded period runs backwards: {self.start} .. {self.end}; give the earlier end first"
            )


@dataclass(frozen=True)
class Step:
    """One day (or span) of an explanation: counted, skipped, or excluded, and why."""

    day: date
    kind: Literal["counted", "skipped", "excluded", "rolled", "start", "clock"]
    count: int | None
    reason: str
    provisional: bool = False


@dataclass(frozen=True)
class Due:
    """When a limit runs out.

    ``due_at`` is the first instant at which the limit is overdue (for day units 00:00 after the last
    day, Beijing time); ``last_day`` is the last day still on time; ``provisional`` is true when the
    answer used a day after ``calendar.official_until`` (a projected, not yet announced, calendar).
    """

    due_at: datetime
    last_day: date
    provisional: bool
    start: datetime = field(kw_only=True)
    limit: TimeLimit = field(kw_only=True)
    excluded_days: int = field(default=0, kw_only=True)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return {
            "start": self.start.isoformat(),
            "limit": str(self.limit),
            "due_at": self.due_at.isoformat(),
            "last_day": self.last_day.isoformat(),
            "provisional": self.provisional,
        }


_DAY_ENDS: dict[date, datetime] = {}
_new = object.__new__
_set = object.__setattr__


def _fast_due(last: date, provisional: bool, start: datetime, limit: TimeLimit) -> Due:
    """A :class:`Due` for a day limit, built without the frozen dataclass's per-field checks.

    Same fields, same values as ``Due(...)``; the instant ending each day (00:00 Beijing time of the
    next) is kept once per day, as there are at most 35 000 of them.
    """
    due_at = _DAY_ENDS.get(last)
    if due_at is None:
        due_at = _DAY_ENDS[last] = datetime.combine(last + timedelta(days=1), time(0), tzinfo=ZONE)
    due = _new(Due)
    _set(due, "__dict__", {"due_at": due_at, "last_day": last, "provisional": provisional, "start": start,
                           "limit": limit, "excluded_days": 0})
    return due


def _made_due(due_at: datetime, last: date, start: datetime, limit: TimeLimit) -> Due:
    """``Due(due_at, last, False, start=start, limit=limit)`` without the per-field checks (clock limits)."""
    due = _new(Due)
    _set(due, "__dict__", {"due_at": due_at, "last_day": last, "provisional": False, "start": start,
                           "limit": limit, "excluded_days": 0})
    return due


def _periods(excluded: Iterable[object]) -> list[ExcludedPeriod]:
    periods = []
    for item in excluded:
        if isinstance(item, ExcludedPeriod):
            periods.append(item)
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (2, 3):
            reason = str(item[2]) if len(item) == 3 else ""
            periods.append(ExcludedPeriod(cast(date, item[0]), cast(date, item[1]), reason=reason))
        else:
            raise TimeLimitError(f"an excluded period is a (from, to) pair, got {item!r}")
    return periods


def _day_ranges(periods: list[ExcludedPeriod]) -> list[tuple[date, date]]:
    """Excluded periods as merged, sorted inclusive date ranges (instants taken at their Beijing date)."""
    ranges = []
    for p in periods:
        start = WorkCalendar.local_date(p.start) if isinstance(p.start, datetime) else p.start
        end = WorkCalendar.local_date(p.end) if isinstance(p.end, datetime) else p.end
        ranges.append((start, end))
    ranges.sort()
    merged: list[tuple[date, date]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1] + timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _calendar_add(day: date, n: int) -> date:
    return day + timedelta(days=n)


def _calendar_between(a: date, b: date) -> int:
    return (b - a).days


def _count_forward(
    start: date,
    n: int,
    ranges: list[tuple[date, date]],
    add_fn: Callable[[date, int], date],
    between_fn: Callable[[date, date], int],
) -> tuple[date, int]:
    """The n-th counted day after ``start``, skipping excluded ranges; returns (day, days excluded).

    One step per excluded range, never per day: the free stretch before each range is measured
    with ``between_fn`` and the answer taken with ``add_fn`` (O(1) on the calendar's arrays).
    """
    pos, remaining, skipped = start, n, 0
    for first, b in ranges:
        if b <= pos:
            continue
        a = max(first, pos + timedelta(days=1))
        available = between_fn(pos, a - timedelta(days=1))
        if available >= remaining:
            break
        remaining -= available
        skipped += between_fn(a - timedelta(days=1), b)
        pos = b
    return add_fn(pos, remaining), skipped


def _add_months(day: date, months: int, month_end: MonthEnd) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    start_is_last = (day + timedelta(days=1)).month != day.month
    if month_end == "last_to_last" and start_is_last:
        return date(year, month, last)
    return date(year, month, min(day.day, last))


def _nominal_days(start: date, limit: TimeLimit) -> int:
    """Calendar days a day or month limit spans before exclusions and roll-forward."""
    if limit.unit == "months":
        return (_add_months(start, limit.amount, limit.month_end) - start).days
    return limit.amount


def compute_due(
    start: datetime,
    limit: TimeLimit | str,
    *,
    excluded: Iterable[object] = (),
    calendar: WorkCalendar | None = None,
) -> Due:
    """When ``limit``, started at the instant ``start``, runs out. See the module docstring for the law."""
    if type(limit) is not TimeLimit:
        if isinstance(limit, str):
            limit = TimeLimit.parse(limit)
        if not isinstance(limit, TimeLimit):
            raise TimeLimitError(f"limit must be a TimeLimit or a string like '3 days', got {limit!r}")
    if type(start) is datetime and start.tzinfo is ZONE and FIRST_YEAR <= start.year <= LAST_YEAR:
        local = start  # already what check_instant answers (Beijing time, within the calendar's years)
    elif type(start) is datetime and start.tzinfo is UTC and FIRST_YEAR <= start.year < LAST_YEAR:
        local = start.astimezone(ZONE)  # a stored instant (UTC): its offset needs no check
    else:
        local = check_instant(start, "start")
    cal = calendar if calendar is not None else default_calendar()
    if excluded == () or (type(excluded) is list and not excluded):
        # The hot paths (most limits, no pauses): _day_due and _clock_due with nothing excluded.
        try:
            if limit.unit == "working_days" and limit.start_day == "actual":
                # The hottest: two look-ups in the calendar's arrays, and the Due built in place.
                last = cal.add_working_days(local.date(), limit.amount)
                due_at = _DAY_ENDS.get(last)
                if due_at is None:
                    due_at = _DAY_ENDS[last] = datetime.combine(last + timedelta(days=1), time(0), tzinfo=ZONE)
                due = _new(Due)
                _set(due, "__dict__", {"due_at": due_at, "last_day": last, "provisional": last > cal.official_until,
                                       "start": local, "limit": limit, "excluded_days": 0})
                return due
            return _plain_due(local, limit, cal)
        except (OverflowError, ValueError) as exc:
            if isinstance(exc, CaseflowError):
                raise
            raise TimeLimitError(f"{limit} from {local.isoformat()} runs past the year 9999") from None
    periods = _periods(excluded)
    try:
        if limit.is_clock:
            return _clock_due(local, limit, periods)
        return _day_due(local, limit, periods, cal)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, CaseflowError):
            raise
        raise TimeLimitError(f"{limit} from {local.isoformat()} runs past the year 9999") from None


def _plain_due(local: datetime, limit: TimeLimit, cal: WorkCalendar) -> Due:
    """:func:`_day_due` or :func:`_clock_due` with nothing excluded: the same answers, fewer steps."""
    unit = limit.unit
    if unit == "working_days":
        day = local.date()
        if limit.start_day == "next_workday" and not cal.is_workday(day):
            day = cal.next_workday(day)
        last = cal.add_working_days(day, limit.amount)
        return _fast_due(last, last > cal.official_until, local, limit)
    if unit in {"hours", "minutes"}:
        begin = local
        if limit.hour_start == "next_hour":
            begin = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        due_at = (begin + limit.amount * (_HOUR if unit == "hours" else _MINUTE)).astimezone(ZONE)
        return _made_due(due_at, (due_at - _ONE_MICROSECOND).date(), local, limit)
    start = _start_date(local, limit, cal)
    n = _nominal_days(start, limit)
    last = start + timedelta(days=n)
    if limit.roll_forward and n > 0:
        last = cal.roll_forward(last)
        return _fast_due(last, last > cal.official_until, local, limit)
    cal.is_workday(last)  # coverage check: refuse dates outside the calendar
    return _fast_due(last, False, local, limit)


_HOUR, _MINUTE, _ONE_MICROSECOND = timedelta(hours=1), timedelta(minutes=1), timedelta(microseconds=1)


def _clock_due(local: datetime, limit: TimeLimit, periods: list[ExcludedPeriod]) -> Due:
    begin = local
    if limit.hour_start == "next_hour":
        begin = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    step = timedelta(hours=1) if limit.unit == "hours" else timedelta(minutes=1)
    due = begin + limit.amount * step
    # Paused time is added: each excluded range's overlap with the running clock extends it.
    # Overlapping ranges are merged first so no paused minute counts twice.
    spans: list[tuple[datetime, datetime]] = []
    for p in sorted(periods, key=lambda p: p.start):
        if not isinstance(p.start, datetime) or not isinstance(p.end, datetime):
            raise TimeLimitError(
                f"an hour limit excludes instant ranges (with times), got the dates {p.start} .. {p.end}"
            )
        if spans and p.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], p.end))
        else:
            spans.append((p.start, p.end))
    for start, end in spans:
        lo, hi = max(start, begin), end
        if lo < hi and lo < due:
            due += hi - lo
    due = due.astimezone(ZONE)
    last_day = (due - timedelta(microseconds=1)).date()
    return Due(due, last_day, False, start=local, limit=limit)


def _start_date(local: datetime, limit: TimeLimit, cal: WorkCalendar) -> date:
    day = local.date()
    if limit.start_day == "next_workday" and not cal.is_workday(day):
        day = cal.next_workday(day)
    return day


def _day_due(local: datetime, limit: TimeLimit, periods: list[ExcludedPeriod], cal: WorkCalendar) -> Due:
    start = _start_date(local, limit, cal)
    ranges = _day_ranges(periods)
    if limit.unit == "working_days":
        last, skipped = _count_forward(start, limit.amount, ranges, cal.add_working_days,
                                       cal.working_days_between)
        consulted: date | None = last
    else:
        n = _nominal_days(start, limit)
        last, skipped = _count_forward(start, n, ranges, _calendar_add, _calendar_between)
        if limit.roll_forward and n > 0:
            # The roll consulted every day from the nominal last day to the rolled one.
            last = cal.roll_forward(last)
            consulted = last
        else:
            # Without roll-forward the calendar was never asked: the answer is certain.
            consulted = None
            cal.is_workday(last)  # coverage check: refuse dates outside the calendar
    provisional = consulted is not None and consulted > cal.official_until
    due_at = datetime.combine(last + timedelta(days=1), time(0), tzinfo=ZONE)
    return Due(due_at, last, provisional, start=local, limit=limit, excluded_days=skipped)


def explain_due(
    start: datetime,
    limit: TimeLimit | str,
    *,
    excluded: Iterable[object] = (),
    calendar: WorkCalendar | None = None,
) -> tuple[Due, list[Step]]:
    """:func:`compute_due` and, day by day, what was counted and what was skipped and why."""
    if isinstance(limit, str):
        limit = TimeLimit.parse(limit)
    periods = _periods(excluded)
    due = compute_due(start, limit, excluded=periods, calendar=calendar)
    cal = calendar or default_calendar()
    local = due.start
    if limit.is_clock:
        steps = [Step(local.date(), "start", None, f"起算 {local:%Y-%m-%d %H:%M}")]
        for p in periods:
            steps.append(Step(WorkCalendar.local_date(cast(datetime, p.start)), "excluded", None,
                              f"{p.reason or '暂停'} {p.start:%m-%d %H:%M}–{p.end:%m-%d %H:%M} 不计入"))
        steps.append(Step(due.last_day, "clock", None,
                          f"期满 {due.due_at:%Y-%m-%d %H:%M} (按小时连续计算, 节假日不影响)"))
        return due, steps
    begin = _start_date(local, limit, cal)
    # The start day never counts; which article says so depends on the procedure (刑事诉讼法 第一百零五条,
    # 民法典 第二百零一条, 公安机关办理行政案件程序规定 第三十五条 …): the limit's own basis is cited by the caller.
    steps = [Step(local.date(), "start", None, "起算日不计入 (期间开始之日不计算在期间内)")]
    if begin != local.date():
        steps.append(Step(begin, "start", None, "视为次一工作日受理, 当日不计入"))
    ranges = _day_ranges(periods)
    reasons = {}
    for p in periods:
        a = WorkCalendar.local_date(p.start) if isinstance(p.start, datetime) else p.start
        b = WorkCalendar.local_date(p.end) if isinstance(p.end, datetime) else p.end
        d = a
        while d <= b:
            reasons[d] = p.reason or "excluded"
            d += timedelta(days=1)
    nominal_end = due.last_day
    if limit.unit != "working_days":
        nominal_end = _count_forward(begin, _nominal_days(begin, limit), ranges, _calendar_add, _calendar_between)[0]
    count = 0
    day = begin + timedelta(days=1)
    while day <= due.last_day:
        info = cal.describe(day)
        prov = not info.official
        if any(a <= day <= b for a, b in ranges):
            steps.append(Step(day, "excluded", None, f"{reasons.get(day, 'excluded')} 不计入", prov))
        elif day > nominal_end:
            steps.append(Step(day, "rolled", None, f"顺延 ({info.reason or '工作日'})", prov))
        elif limit.unit == "working_days" and not info.workday:
            steps.append(Step(day, "skipped", None, info.reason, prov))
        else:
            count += 1
            steps.append(Step(day, "counted", count, info.reason, prov))
        day += timedelta(days=1)
    return due, steps


def escalation_instant(due_at: datetime, after: TimeLimit, calendar: WorkCalendar) -> datetime:
    """When an overdue timer escalates: ``due_at`` moved by ``after``.

    For working days, the due instant moves by that many working days keeping its time of day; a due
    instant at 00:00 is read as 24:00 of the day before (a day limit ends at the end of its last day), so
    a limit whose last day is a Friday escalates at the end of the next working day, not on Monday 00:00.
    """
    if after.unit == "hours":
        return due_at + timedelta(hours=after.amount)
    if after.unit == "minutes":
        return due_at + timedelta(minutes=after.amount)
    local = due_at.astimezone(ZONE)
    at_midnight = local.time() == time(0, 0)
    day = (local - timedelta(days=1)).date() if at_midnight else local.date()
    if after.unit == "working_days":
        moved = calendar.add_working_days(day, after.amount)
    elif after.unit == "days":
        moved = day + timedelta(days=after.amount)
    else:  # months: rare, approximated as 30 days each
        moved = day + timedelta(days=30 * after.amount)
    if at_midnight:
        return datetime.combine(moved + timedelta(days=1), time(0, 0), ZONE)
    return datetime.combine(moved, local.timetz())
