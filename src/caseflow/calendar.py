"""The Chinese working-day calendar (工作日历), precomputed for O(1) arithmetic.

A working day (工作日) is a Monday–Friday that is not a rest day of the State Council's yearly
notice (国务院办公厅关于某年部分节假日安排的通知), or a Saturday or Sunday that the notice declares a
make-up working day (调休上班). 行政许可法 第八十二条 counts its limits in such days.

Sources, later overriding earlier ones year by year:

1. chinese-calendar's official data (2004–2026);
2. the holiday files shipped in ``holidays/`` (one YAML file per year, transcribed from the notice);
3. any extra directories given to :meth:`WorkCalendar.load` (or ``CASEFLOW_HOLIDAYS_DIR``).

A year no source knows is *projected*: weekends, plus the statutory days of
全国年节及纪念日放假办法 (2024 revision, in force for 2025 on: 元旦 1, 春节 4 (除夕–初三), 清明 1, 劳动节 2,
端午 1, 中秋 1, 国庆 3), plus the substitute days of its 第六条 (a statutory day on a Saturday or
Sunday is made up on the next working day after the holiday), and no make-up working days. Deadlines
that reach a projected day are marked provisional.

The calendar is held as arrays indexed by day ordinal (is-working flag, cumulative working-day rank,
working day by rank), so adding N working days is two list look-ups, never a loop over days. The arrays
are built for the announced years first; the projected years (and python-holidays, slow to import and
set up) are added only when a day past them is touched, so ``caseflow deadline`` starts at once.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from caseflow.errors import CalendarCoverageError, CalendarError, HolidayFileError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "FESTIVALS",
    "FIRST_YEAR",
    "LAST_YEAR",
    "ZONE",
    "ChineseCalendarSource",
    "DayInfo",
    "HolidayDirSource",
    "WorkCalendar",
    "YearArrangement",
    "complete_arrangement",
    "default_calendar",
    "festivals_named",
    "load_holiday_file",
    "projected_arrangement",
    "shipped_holidays_dir",
]

#: The zone every deadline is computed in.
ZONE = ZoneInfo("Asia/Shanghai")
FIRST_YEAR = 2004
LAST_YEAR = 2099

_FIRST = date(FIRST_YEAR, 1, 1)
_LAST = date(LAST_YEAR, 12, 31)
_BASE = _FIRST.toordinal()
_EPOCH = date(1970, 1, 1).toordinal()
_WEEKEND = "周末"
_WEEK = b"\x01\x01\x01\x01\x01\x00\x00"  # Monday to Sunday
_MAKEUP = "调休上班"

# chinese-calendar names its holidays in English; clerks read Chinese.
_EN_TO_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Chinese New Year's Eve": "春节",
    "Chinese New Year (Spring Festival)": "春节",
    "Tomb-sweeping Day": "清明节",
    "Tomb-Sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Labor Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Mid-Autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


@dataclass(frozen=True)
class YearArrangement:
    """The official rest and make-up working days of one year, with where they come from.

    ``rest_days`` maps each listed rest day (weekdays and weekend days inside a holiday block alike)
    to its holiday's name; ``workdays`` maps each make-up working day (always a Saturday or Sunday)
    to the holiday it serves. Weekends not listed are rest days all the same.
    """

    year: int
    source: str
    rest_days: dict[date, str] = field(default_factory=dict)
    workdays: dict[date, str] = field(default_factory=dict)
    origin: str = ""
    official: bool = True
    #: Festivals of 全国年节及纪念日放假办法 第二条 the notice leaves to the statute (their statutory days
    #: and 第六条 substitutes were filled in from the projection).
    statutory_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class DayInfo:
    """What the calendar says of one day, for explanations."""

    day: date
    workday: bool
    #: '' for an ordinary working day; '周末', a holiday's name, or '调休上班' otherwise.
    reason: str
    official: bool


# --------------------------------------------------------------------------------------------- sources


class ChineseCalendarSource:
    """The official data packaged in chinese-calendar (2004 to its last year)."""

    name = "chinese-calendar"

    def arrangements(self) -> Iterator[YearArrangement]:
        from chinese_calendar import constants

        by_year: dict[int, tuple[dict[date, str], dict[date, str]]] = {}
        for day, en in constants.holidays.items():
            by_year.setdefault(day.year, ({}, {}))[0][day] = _EN_TO_ZH.get(en, en)
        for day, en in constants.workdays.items():
            by_year.setdefault(day.year, ({}, {}))[1][day] = _EN_TO_ZH.get(en, en)
        # The package's own __version__: importlib.metadata would cost more than the whole calendar.
        import chinese_calendar

        release = getattr(chinese_calendar, "__version__", "")
        origin = f"chinese-calendar {release}".strip()
        for year in sorted(by_year):
            rest, work = by_year[year]
            yield YearArrangement(year, "chinese-calendar", rest, work, origin=origin)


class HolidayDirSource:
    """Every ``<year>.yaml`` file in a directory, in the format of ``holidays/``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.name = str(self.directory)

    def arrangements(self) -> Iterator[YearArrangement]:
        if not self.directory.is_dir():
            raise CalendarError(
                f"holiday directory {str(self.directory)!r} does not exist or is not a directory; "
                "give a directory holding <year>.yaml files"
            )
        for path in sorted(self.directory.glob("*.yaml")) + sorted(self.directory.glob("*.yml")):
            yield load_holiday_file(path)


#: The shipped holiday files in parsed form, by the SHA-256 of each file's bytes (written by
#: :func:`write_parsed_holidays`; ``tests/test_calendar.py`` checks it against the files). A file whose
#: bytes are in it is answered without PyYAML: parsing at every command's start cost a tenth of
#: ``caseflow deadline``'s time at the prompt. Any other file is read and validated as usual.
PARSED_HOLIDAYS_FILE = Path(__file__).parent / "holidays_parsed.json"


@functools.cache
def _parsed_holidays() -> dict[str, dict[str, Any]]:
    from caseflow._yaml import parsed_form

    return parsed_form(PARSED_HOLIDAYS_FILE)


def _parsed_record(path: Path) -> dict[str, Any] | None:
    """The parsed form of the file at ``path`` when its bytes are in it. Only a file of a size the parsed
    form knows is read here (and hashed); any other is left to the full reader, which checks its size
    before reading it."""
    parsed = _parsed_holidays()
    try:
        if path.stat().st_size not in {record["size"] for record in parsed.values()}:
            return None
        data = path.read_bytes()
    except (OSError, KeyError, TypeError):
        return None  # the full reader reports an unreadable file, naming it
    import hashlib

    return parsed.get(hashlib.sha256(data).hexdigest())


def _arrangement_record(arrangement: YearArrangement) -> dict[str, Any]:
    return {
        "year": arrangement.year,
        "source": arrangement.source,
        "rest_days": {d.isoformat(): name for d, name in arrangement.rest_days.items()},
        "workdays": {d.isoformat(): name for d, name in arrangement.workdays.items()},
        "official": arrangement.official,
        "statutory_only": list(arrangement.statutory_only),
    }


def _arrangement_of_record(record: dict[str, Any], origin: str) -> YearArrangement:
    return YearArrangement(
        int(record["year"]), str(record["source"]),
        {date.fromisoformat(d): str(n) for d, n in record["rest_days"].items()},
        {date.fromisoformat(d): str(n) for d, n in record["workdays"].items()},
        origin=origin, official=bool(record["official"]), statutory_only=tuple(record["statutory_only"]),
    )


def load_holiday_file(path: Path | str, *, text: str | None = None) -> YearArrangement:
    """Read and validate one holiday file; raise :class:`HolidayFileError` naming file, line and field.

    The format (one file per year)::

        year: 2027
        source: 国办发明电〔2026〕N号
        holidays:                       # rest days, ranges inclusive
          - {name: 春节, from: 2027-02-05, to: 2027-02-13}
        workdays:                       # make-up working days (调休上班), each a Saturday or Sunday
          - 2027-02-20                  # or {date: 2027-02-20, name: 春节}
        statutory_only: [清明节]         # festivals the notice leaves to the statute (optional)

    Every festival of 全国年节及纪念日放假办法 第二条 must be arranged under ``holidays`` or named under
    ``statutory_only`` (see :func:`complete_arrangement`). ``text`` is an upload not yet on disk;
    ``path`` then only names it (and its year).
    """
    path = Path(path)
    if text is None:
        record = _parsed_record(path)
        # The name must agree with the year too (a 2026 file copied to 2027.yaml is refused below).
        if record is not None and (not path.stem.isdigit() or int(path.stem) == record["year"]):
            return _arrangement_of_record(record, str(path))
    from caseflow.holidayfile import load_holiday_file as read_and_validate

    return read_and_validate(path, text=text)


def write_parsed_holidays(directory: Path | str | None = None, target: Path | str | None = None) -> Path:
    """Write the parsed form of every holiday file in ``directory`` (default: the shipped ones).

    Run after editing ``holidays/`` (``python -c "from caseflow.calendar import write_parsed_holidays;
    write_parsed_holidays()"``); a stale parsed form is never wrong, only slower (the file is read).
    """
    import hashlib
    import json

    from caseflow.holidayfile import load_holiday_file as read_and_validate

    folder = Path(directory) if directory is not None else shipped_holidays_dir()
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        data = path.read_bytes()
        files[hashlib.sha256(data).hexdigest()] = {
            "file": path.name, "size": len(data), **_arrangement_record(read_and_validate(path)),
        }
    out = Path(target) if target is not None else PARSED_HOLIDAYS_FILE
    out.write_text(json.dumps({"files": files}, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                   encoding="utf-8")
    _parsed_holidays.cache_clear()
    return out


def shipped_holidays_dir() -> Path:
    """The ``holidays/`` directory shipped with caseflow (in the wheel, or in a source checkout)."""
    packaged = Path(__file__).parent / "_data" / "holidays"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "holidays"


#: The festivals of 全国年节及纪念日放假办法 第二条 (2024 revision), each with the word that names it in a
#: notice's holiday names ("国庆节、中秋节" names two).
FESTIVALS: dict[str, str] = {
    "元旦": "元旦",
    "春节": "春节",
    "清明节": "清明",
    "劳动节": "劳动",
    "端午节": "端午",
    "中秋节": "中秋",
    "国庆节": "国庆",
}


def festivals_named(name: str) -> list[str]:
    """The 第二条 festivals a holiday name speaks of ("国庆节、中秋节" → 中秋节, 国庆节; "春节(补假)" → 春节)."""
    return [festival for festival, word in FESTIVALS.items() if word in name]


def complete_arrangement(arrangement: YearArrangement, statutory_only: Sequence[str] = (), *,
                         path: str = "", line: int | None = None) -> YearArrangement:
    """Check that a notice covers every festival of 第二条 and fill in those it leaves to the statute.

    全国年节及纪念日放假办法 第二条 gives every citizen seven festivals off; a notice arranges each of them.
    A file that names none of a festival's days and does not list it under ``statutory_only`` is a
    transcription cut short: refused, naming the missing festivals. A festival listed under
    ``statutory_only`` gets its statutory days and the 第六条 substitutes of the projection.
    """
    covered = {f for name in arrangement.rest_days.values() for f in festivals_named(name)}
    both = [f for f in statutory_only if f in covered]
    if both:
        raise HolidayFileError(
            f"{'、'.join(both)} is listed under statutory_only but the file also arranges its days; "
            "keep one of the two",
            path=path, line=line, field="statutory_only",
        )
    missing = [f for f in FESTIVALS if f not in covered and f not in statutory_only]
    if missing:
        raise HolidayFileError(
            f"the notice for {arrangement.year} does not arrange {'、'.join(missing)} (全国年节及纪念日放假办法 "
            "第二条 gives every citizen these days off): add their days under holidays, or list them under "
            f"statutory_only: [{', '.join(missing)}] to leave them to the statute",
            path=path, line=line, field="holidays",
        )
    if not statutory_only:
        return arrangement
    rest = dict(arrangement.rest_days)
    for day, name in projected_arrangement(arrangement.year).rest_days.items():
        if day not in rest and day not in arrangement.workdays and set(festivals_named(name)) & set(statutory_only):
            rest[day] = name
    return YearArrangement(arrangement.year, arrangement.source, dict(sorted(rest.items())), arrangement.workdays,
                           origin=arrangement.origin, official=arrangement.official,
                           statutory_only=tuple(statutory_only))


_WEEKDAY_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def _nearest_holiday(day: date, rest: dict[date, str]) -> str:
    if not rest:
        return ""
    nearest = min(rest, key=lambda d: abs((d - day).days))
    return rest[nearest]


# ------------------------------------------------------------------------------------------ projection

# Statutory days of 全国年节及纪念日放假办法 第二条 as python-holidays names them; the observed and
# "substituted" entries it adds are dropped: 第六条 substitutes are computed here, and projected years
# have no make-up working days.
_STATUTORY_EN = {
    "New Year's Day": "元旦",
    "Chinese New Year's Eve": "春节",
    "Chinese New Year (Spring Festival)": "春节",
    "Tomb-Sweeping Day": "清明节",
    "Labor Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "Mid-Autumn Festival": "中秋节",
    "National Day": "国庆节",
}


def statutory_days(year: int) -> dict[date, str]:
    """The statutory holidays (全国年节及纪念日放假办法 第二条) of ``year``, lunar dates included."""
    return _statutory_days_of((year,)).get(year, {})


#: The statutory days of every year of the calendar (2004–2099) as python-holidays gives them, by year
#: (written by :func:`write_statutory_days`; ``tests/test_calendar.py`` checks it against the library). A
#: projected year is answered from it: importing python-holidays and setting up its years cost a sixth of a
#: second the first time a deadline reached past the last notice. A year not in it asks the library.
STATUTORY_DAYS_FILE = Path(__file__).parent / "statutory_days.json"


@functools.cache
def _statutory_table() -> dict[str, dict[str, str]]:
    from caseflow._yaml import parsed_form

    return parsed_form(STATUTORY_DAYS_FILE, "years")  # empty in a trimmed install: the library answers


def _statutory_days_of(years: Iterable[int]) -> dict[int, dict[date, str]]:
    table = _statutory_table()
    by_year: dict[int, dict[date, str]] = {}
    asked: list[int] = []
    for year in years:
        record = table.get(str(year))
        if record is None:
            asked.append(year)
        else:
            by_year[year] = {date.fromisoformat(day): name for day, name in record.items()}
    if asked:
        by_year.update(_statutory_days_from_library(asked))
    return by_year


def write_statutory_days(target: Path | str | None = None) -> Path:
    """Write the statutory days of 2004–2099 from python-holidays (run after upgrading it:
    ``python -c "from caseflow.calendar import write_statutory_days; write_statutory_days()"``)."""
    import json
    from importlib.metadata import version

    by_year = _statutory_days_from_library(range(FIRST_YEAR, LAST_YEAR + 1))
    years = {str(y): {d.isoformat(): n for d, n in sorted(by_year.get(y, {}).items())}
             for y in range(FIRST_YEAR, LAST_YEAR + 1)}
    out = Path(target) if target is not None else STATUTORY_DAYS_FILE
    out.write_text(json.dumps({"source": f"python-holidays {version('holidays')}", "years": years},
                              ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    _statutory_table.cache_clear()
    return out


def _statutory_days_from_library(years: Iterable[int]) -> dict[int, dict[date, str]]:
    import holidays as pyholidays

    by_year: dict[int, dict[date, str]] = {}
    # One call for all years: python-holidays is slow to set up per call.
    for day, names in sorted(pyholidays.country_holidays("CN", years=list(years), language="en_US").items()):
        result = by_year.setdefault(day.year, {})
        for en in str(names).split("; "):
            if "observed" in en or "substituted" in en:
                continue
            zh = _STATUTORY_EN.get(en)
            if zh is None:
                continue
            # 国庆 and 中秋 can fall on one day (2028-10-03): one day off, named for both.
            result[day] = zh if day not in result or result[day] == zh else f"{result[day]}、{zh}"
    return by_year


def projected_arrangement(year: int, statutory: dict[date, str] | None = None) -> YearArrangement:
    """A year no notice has announced yet: statutory days plus 第六条 substitutes, no make-up days.

    全国年节及纪念日放假办法 第六条: 全体公民放假的假日，如果适逢周六、周日，应当在工作日补假. Each run of
    rest days holding statutory days gets, right after it, one substitute weekday for each statutory
    day that fell on a Saturday or Sunday.
    """
    if statutory is None:
        statutory = statutory_days(year)
    rest: dict[date, str] = dict(statutory)
    pending: list[tuple[date, str]] = sorted(statutory.items())
    i = 0
    while i < len(pending):
        # One block: consecutive days that are statutory or weekend, starting at a statutory day.
        first, name = pending[i]
        day = first
        owed = 0
        while day in statutory or day.weekday() >= 5:
            if day in statutory and day.weekday() >= 5:
                owed += 1
            day += timedelta(days=1)
        while i < len(pending) and pending[i][0] < day:
            i += 1
        while owed:
            if day.weekday() < 5 and day not in rest:
                rest[day] = f"{name}(补假)"
                owed -= 1
            day += timedelta(days=1)
    rest = {d: n for d, n in rest.items() if d.year == year}
    return YearArrangement(
        year,
        "全国年节及纪念日放假办法(2024修订) 第二条、第六条 (推算, 未公布)",
        rest,
        {},
        origin="projected",
        official=False,
    )


# ---------------------------------------------------------------------------------------- the calendar


class WorkCalendar:
    """The working-day calendar for 2004–2099, held in arrays for O(1) arithmetic.

    Build it with :meth:`load` (or take the shared :func:`default_calendar`). Dates are plain
    ``datetime.date`` values in Beijing time: convert instants with :meth:`local_date` first, never
    with ``datetime.date()`` on a UTC value.
    """

    def __init__(self, arrangements: Iterable[YearArrangement]) -> None:
        by_year: dict[int, YearArrangement] = {}
        for arrangement in arrangements:
            if not FIRST_YEAR <= arrangement.year <= LAST_YEAR:
                continue
            by_year[arrangement.year] = arrangement
        # The years the sources give; the others are projected on first need (see _complete).
        self._years: dict[int, YearArrangement] = dict(sorted(by_year.items()))
        self._complete_done = False

        official_until = date(FIRST_YEAR - 1, 12, 31)
        for year in range(FIRST_YEAR, LAST_YEAR + 1):
            if year not in by_year or not by_year[year].official:
                break  # a missing year is projected, hence not official
            official_until = date(year, 12, 31)
        #: The last day of the run of officially announced years; everything after is provisional.
        self.official_until: date = official_until
        self._official_until_index = official_until.toordinal() - _BASE

        self._size = _LAST.toordinal() - _BASE + 1  # the days the calendar covers, built or not
        self._built = 0  # the days whose entries the arrays hold so far (a prefix)
        self._work = bytearray()
        self._rank: list[int] = []
        self._by_rank: list[date] = [_FIRST - timedelta(days=1)]  # rank 0: before the calendar
        self._reasons: dict[int, str] = {}
        self._total = 0
        self._np: tuple[Any, Any, Any] | None = None  # numpy twins, built for the vectorised path
        self._next_year = FIRST_YEAR  # the first year the arrays do not hold yet
        # The run of years the sources give, from the first: no projection needed for those.
        year = FIRST_YEAR
        while year in by_year:
            year += 1
        self._append_years(range(FIRST_YEAR, year))
        if year > LAST_YEAR:
            self._complete_done = True

    def _append_years(self, years: Iterable[int]) -> None:
        """Extend the arrays by ``years`` (consecutive, right after the built prefix)."""
        work, rank, by_rank, reasons = self._work, self._rank, self._by_rank, self._reasons
        count = self._total
        i = self._built
        for year in years:
            arrangement = self._years[year]
            first = date(year, 1, 1).toordinal()
            size = date(year, 12, 31).toordinal() - first + 1
            # A year at a time, not a day at a time (this runs at every command's start): the weekday
            # pattern by slicing, then the notice's rest and make-up days written over it.
            offset = (first - 1) % 7  # date.fromordinal(1) is a Monday
            days = bytearray((_WEEK * 54)[offset:offset + size])
            for k in range(size):
                if not days[k]:
                    reasons[i + k] = _WEEKEND
            for d, name in arrangement.rest_days.items():
                k = d.toordinal() - first
                days[k] = 0
                reasons[i + k] = name
            for d in arrangement.workdays:
                k = d.toordinal() - first
                days[k] = 1
                reasons[i + k] = _MAKEUP
            work += days
            ranks = accumulate(days, initial=count)
            next(ranks)  # the initial value is the previous day's rank
            rank.extend(ranks)
            count = rank[-1]
            by_rank.extend([date.fromordinal(first + k) for k in range(size) if days[k]])
            i += size
            self._next_year = year + 1
        self._built = i
        self._total = count

    def _complete(self) -> bool:
        """Project the years no source gives and build the arrays to the end; False if already done."""
        if self._complete_done:
            return False
        missing = [y for y in range(FIRST_YEAR, LAST_YEAR + 1) if y not in self._years]
        statutory = _statutory_days_of(missing) if missing else {}
        for year in missing:
            self._years[year] = projected_arrangement(year, statutory.get(year, {}))
        self._years = dict(sorted(self._years.items()))
        self._append_years(range(self._next_year, LAST_YEAR + 1))
        self._complete_done = True
        return True

    @property
    def years(self) -> dict[int, YearArrangement]:
        """The arrangement of every year 2004–2099, projected years included (which projects them)."""
        self._complete()
        return self._years

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(
        cls,
        holiday_dirs: Sequence[Path | str] = (),
        *,
        include_shipped: bool = True,
        include_chinese_calendar: bool = True,
        sources: Sequence[Any] = (),
    ) -> WorkCalendar:
        """Build a calendar: chinese-calendar, then shipped ``holidays/``, then ``holiday_dirs``.

        Later sources override earlier ones year by year. ``sources`` are further
        :class:`~caseflow.abc.CalendarSource` objects applied last.
        """
        chain: list[Any] = []
        if include_chinese_calendar:
            chain.append(ChineseCalendarSource())
        if include_shipped:
            chain.append(HolidayDirSource(shipped_holidays_dir()))
        chain.extend(HolidayDirSource(d) for d in holiday_dirs)
        chain.extend(sources)
        arrangements: list[YearArrangement] = []
        for source in chain:
            arrangements.extend(source.arrangements())
        return cls(arrangements)

    # ------------------------------------------------------------------ helpers

    def _index(self, day: date) -> int:
        if isinstance(day, datetime) or not isinstance(day, date):
            raise CalendarError(
                f"expected a date, got {type(day).__name__} {day!r}; convert an instant with "
                "WorkCalendar.local_date() first (its Beijing date, not its UTC date)"
            )
        i = day.toordinal() - _BASE
        if not 0 <= i < self._size:
            raise CalendarCoverageError(
                f"{day} lies outside the calendar ({_FIRST} to {_LAST})"
            )
        if i >= self._built:
            self._complete()
        return i

    def _out_of_range(self, day: date, n: int) -> CalendarCoverageError:
        return CalendarCoverageError(
            f"{n} working days from {day} leaves the calendar ({_FIRST} to {_LAST})"
        )

    @staticmethod
    def local_date(instant: datetime) -> date:
        """The Beijing date of an aware instant (chinese-calendar's trap: never the UTC date)."""
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise CalendarError(
                f"naive datetime {instant.isoformat()}: give a time zone (e.g. +08:00 for Beijing time)"
            )
        return instant.astimezone(ZONE).date()

    # ------------------------------------------------------------------ queries

    def is_workday(self, day: date) -> bool:
        """True for a working day: Mon–Fri not a rest day, or a make-up working day (调休上班)."""
        return self._work[self._index(day)] == 1

    def is_official(self, day: date) -> bool:
        """True when ``day`` lies within the officially announced years (not projected)."""
        return self._index(day) <= self._official_until_index

    def describe(self, day: date) -> DayInfo:
        """Whether ``day`` works, and why not (周末, the holiday's name) or why so (调休上班)."""
        i = self._index(day)
        return DayInfo(day, self._work[i] == 1, self._reasons.get(i, ""), i <= self._official_until_index)

    def add_working_days(self, day: date, n: int) -> date:
        """The N-th working day after ``day``; ``day`` itself never counts.

        ``n == 0`` returns ``day`` (当日: by the end of the start day). ``n < 0`` gives the |n|-th
        working day strictly before ``day``.
        """
        if type(day) is date and type(n) is int and n > 0:
            i = day.toordinal() - _BASE
            if 0 <= i < self._built:
                r = self._rank[i] + n
                if r <= self._total:
                    return self._by_rank[r]
                if not self._complete():
                    raise self._out_of_range(day, n)
        i = self._index(day)
        if not isinstance(n, int) or isinstance(n, bool):
            raise CalendarError(f"n must be a whole number of working days, got {n!r}")
        if n == 0:
            return day
        r = self._rank[i] + n if n > 0 else self._rank[i] - self._work[i] + n + 1
        if r > self._total and self._complete():
            r = self._rank[i] + n
        if not 1 <= r <= self._total:
            raise self._out_of_range(day, n)
        return self._by_rank[r]

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days lie in (start, end]; negative when ``end`` is before ``start``.

        It inverts :meth:`add_working_days`: ``working_days_between(d, add_working_days(d, n)) == n``.
        """
        return self._rank[self._index(end)] - self._rank[self._index(start)]

    def next_workday(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        r = self._rank[self._index(day)] + 1
        if r > self._total and not self._complete():
            raise self._out_of_range(day, 1)
        return self._by_rank[r]

    def roll_forward(self, day: date) -> date:
        """``day`` if it is a working day, else the first working day after it."""
        return day if self.is_workday(day) else self.next_workday(day)

    def add_working_days_many(
        self, days: npt.ArrayLike, ns: npt.ArrayLike
    ) -> npt.NDArray[np.datetime64]:
        """Vectorised :meth:`add_working_days` over ``datetime64[D]`` dates and integer counts."""
        import numpy as np  # only this vectorised path needs numpy

        np_work, np_rank, np_by_rank = self._numpy_arrays()
        d = np.asarray(days)
        if d.dtype.kind != "M":
            raise CalendarError(f"days must be a numpy datetime64 array, got dtype {d.dtype}")
        idx = d.astype("datetime64[D]").astype(np.int64) - (_BASE - _EPOCH)
        n = np.asarray(ns)
        if n.dtype.kind not in "iu":
            raise CalendarError(f"ns must be an integer array, got dtype {n.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self._size):
            bad = d.reshape(-1)[np.flatnonzero((idx < 0) | (idx >= self._size))[0]]
            raise CalendarCoverageError(f"{bad} lies outside the calendar ({_FIRST} to {_LAST})")
        ranks = np_rank[idx]
        all_positive = bool(n.size and n.min() > 0)
        # The common case (every n > 0) skips the where() passes: two gathers and an add.
        r = ranks + n if all_positive else np.where(n > 0, ranks + n, ranks - np_work[idx] + n + 1)
        if r.size and (r.min() < 1 or r.max() > self._total):
            raise CalendarCoverageError(f"a result leaves the calendar ({_FIRST} to {_LAST})")
        out = np_by_rank[r]
        if not all_positive:
            out = np.where(n == 0, idx + (_BASE - _EPOCH), out)
        result: npt.NDArray[np.datetime64] = out.astype("datetime64[D]")
        return result

    def _numpy_arrays(self) -> tuple[Any, Any, Any]:
        """The arrays as numpy int64 (is-working, rank, working day by rank in days since 1970-01-01)."""
        import numpy as np

        if self._np is None:
            self._complete()
            self._np = (np.frombuffer(bytes(self._work), dtype=np.uint8).astype(np.int64),
                        np.asarray(self._rank, dtype=np.int64),
                        np.asarray([d.toordinal() - _EPOCH for d in self._by_rank], dtype=np.int64))
        return self._np

    def month(self, year: int, month: int) -> list[DayInfo]:
        """Every day of a month, described."""
        day = date(year, month, 1)
        days = []
        while day.month == month:
            days.append(self.describe(day))
            day += timedelta(days=1)
        return days

    def diff(self, other: WorkCalendar, *, year: int | None = None) -> list[tuple[date, DayInfo, DayInfo]]:
        """Days whose working status differs between ``self`` and ``other`` (``(day, ours, theirs)``)."""
        changes = []
        years = [year] if year is not None else range(FIRST_YEAR, LAST_YEAR + 1)
        for y in years:
            day = date(y, 1, 1)
            while day.year == y:
                a, b = self.describe(day), other.describe(day)
                if a.workday != b.workday:
                    changes.append((day, a, b))
                day += timedelta(days=1)
        return changes


@functools.lru_cache(maxsize=8)
def _cached_calendar(extra: tuple[str, ...]) -> WorkCalendar:
    return WorkCalendar.load(extra)


_shared: WorkCalendar | None = None


def default_calendar() -> WorkCalendar:
    """The shared calendar: chinese-calendar, shipped ``holidays/``, then ``CASEFLOW_HOLIDAYS_DIR``.

    ``CASEFLOW_HOLIDAYS_DIR`` may list several directories separated by ``os.pathsep``. It is read
    once, on the first call (and again after :func:`clear_calendar_cache`), not on every call: the
    shared calendar sits on the hot path of :func:`~caseflow.timelimits.compute_due`.
    """
    global _shared  # noqa: PLW0603 - the process-wide shared calendar
    calendar = _shared
    if calendar is None:
        env = os.environ.get("CASEFLOW_HOLIDAYS_DIR", "")
        calendar = _shared = _cached_calendar(tuple(p for p in env.split(os.pathsep) if p))
    return calendar


def clear_calendar_cache() -> None:
    """Forget cached calendars, e.g. after a holiday file was added (``caseflow calendar reload``).

    The next :func:`default_calendar` reads ``CASEFLOW_HOLIDAYS_DIR`` again.
    """
    global _shared  # noqa: PLW0603
    _shared = None
    _cached_calendar.cache_clear()
