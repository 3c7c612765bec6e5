"""Holiday notices as files: our YAML, holiday-cn's JSON, and the festival-by-festival check.

A notice (国务院办公厅关于某年部分节假日安排的通知) reaches caseflow as a file — our YAML (see
:func:`~caseflow.calendar.load_holiday_file`) or the JSON of holiday-cn, the open dataset that turns each
notice into ``{"year", "papers", "days": [{"name", "date", "isOffDay"}]}`` within a day of its
publication — and is kept in the database (:mod:`caseflow.published`). Before it is loaded, an
administrator sees how it differs from the projection of 全国年节及纪念日放假办法, festival by festival
(:func:`festival_check`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from caseflow.calendar import (
    FESTIVALS,
    FIRST_YEAR,
    LAST_YEAR,
    YearArrangement,
    complete_arrangement,
    festivals_named,
    load_holiday_file,
    projected_arrangement,
)
from caseflow.errors import HolidayFileError

__all__ = [
    "FORMATS",
    "FestivalDiff",
    "arrangement_yaml",
    "festival_check",
    "notice_format",
    "parse_holiday_cn",
    "read_notice",
]

#: The file formats a notice may come in.
FORMATS = ("yaml", "holiday-cn")
_HOLIDAY_CN_KEYS = ("$schema", "$id", "year", "papers", "days")
_DAY_KEYS = ("name", "date", "isOffDay")
#: A notice is a few kilobytes; anything far larger is not one (and is not read into memory whole).
MAX_NOTICE_BYTES = 256 * 1024


def notice_format(path: Path | str, text: str | None = None) -> str:
    """``holiday-cn`` for a ``.json`` file (or text starting with ``{``), else ``yaml``."""
    if str(path).lower().endswith(".json"):
        return "holiday-cn"
    if text is not None and text.lstrip().startswith("{"):
        return "holiday-cn"
    return "yaml"


def _read_text(path: Path) -> str:
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_NOTICE_BYTES:
            raise HolidayFileError(
                f"the file holds {size} bytes; a holiday notice is a few kilobytes (at most {MAX_NOTICE_BYTES})",
                path=where,
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise HolidayFileError(f"cannot read the file: {exc.strerror or exc}", path=where) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HolidayFileError(
            f"not UTF-8 text (byte {exc.start}): a holiday notice is a YAML or holiday-cn JSON text file",
            path=where,
        ) from None


def read_notice(path: Path | str, *, text: str | None = None, fmt: str | None = None,
                working: Callable[[date], bool] | None = None) -> YearArrangement:
    """Read a notice in either format, validated (festival coverage included).

    ``text`` is an upload not yet on disk (``path`` then only names it). ``working`` tells whether the
    calendar in use has a day as a working day: a holiday-cn file may list days of a neighbouring year,
    which belong to that year's notice (see :func:`parse_holiday_cn`).
    """
    path = Path(path)
    if text is None:
        text = _read_text(path)
    if "\x00" in text:
        raise HolidayFileError("the file holds NUL characters: it is not a text file", path=str(path))
    fmt = fmt or notice_format(path, text)
    if fmt == "holiday-cn":
        return parse_holiday_cn(text, path=str(path), working=working)
    if fmt != "yaml":
        raise HolidayFileError(f"unknown notice format {fmt!r}; the formats are {', '.join(FORMATS)}",
                               path=str(path))
    return load_holiday_file(path, text=text)


def parse_holiday_cn(text: str, *, path: str = "<holiday-cn>",
                     working: Callable[[date], bool] | None = None) -> YearArrangement:
    """One year of holiday-cn (``{"year", "papers", "days": [{"name", "date", "isOffDay"}]}``).

    ``isOffDay: true`` is a rest day of the named holiday; ``false`` a make-up working day (调休上班), which
    must be a Saturday or Sunday. holiday-cn files list the days of a block that reach into the previous
    or next year (元旦 from 12-30, say); those belong to that year's notice and are left out. With
    ``working`` (is this day a working day in the calendar in use?) they are checked: refused, named,
    unless the calendar already treats them as the file does.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HolidayFileError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(doc, dict):
        raise HolidayFileError("expected a JSON object with the keys year, papers, days", path=path)
    for key in doc:
        if key not in _HOLIDAY_CN_KEYS:
            raise HolidayFileError(f"unknown key {key!r}; holiday-cn files have {', '.join(_HOLIDAY_CN_KEYS)}",
                                   path=path, field=key)
    year = doc.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise HolidayFileError(f"year must be a whole number from {FIRST_YEAR} to {LAST_YEAR}, got {year!r}",
                               path=path, field="year")
    if Path(path).stem.isdigit() and int(Path(path).stem) != year:
        raise HolidayFileError(f"the file is named for {Path(path).stem} but says year {year}; name it {year}.json",
                               path=path, field="year")
    papers = doc.get("papers", [])
    if not isinstance(papers, list) or not all(isinstance(p, str) and p.strip() for p in papers) or not papers:
        raise HolidayFileError("papers must list the notice's address(es), e.g. "
                               '["https://www.gov.cn/zhengce/content/…"]', path=path, field="papers")
    days = doc.get("days")
    if not isinstance(days, list):
        raise HolidayFileError("days must be a list of {name, date, isOffDay}", path=path, field="days")
    rest: dict[date, str] = {}
    work: dict[date, str] = {}
    unknown: list[str] = []
    for i, item in enumerate(days):
        fld = f"days[{i}]"
        if not isinstance(item, dict) or set(item) != set(_DAY_KEYS):
            raise HolidayFileError(f"each day must be {{name, date, isOffDay}}, got {item!r}"[:300],
                                   path=path, field=fld)
        name, value, off = item["name"], item["date"], item["isOffDay"]
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise HolidayFileError("name must be the holiday's name (春节, 国庆节, …)", path=path, field=f"{fld}.name")
        if not isinstance(off, bool):
            raise HolidayFileError(f"isOffDay must be true or false, got {off!r}", path=path, field=f"{fld}.isOffDay")
        try:
            day = date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            day = None
        if day is None:
            raise HolidayFileError(f"{value!r} is not a date written YYYY-MM-DD", path=path, field=f"{fld}.date")
        if day in rest or day in work:
            raise HolidayFileError(f"{day} is listed twice", path=path, field=f"{fld}.date")
        if not off and day.weekday() < 5:
            raise HolidayFileError(f"{day} is a weekday: a make-up working day (调休上班) is always a Saturday or "
                                   "Sunday", path=path, field=fld)
        if day.year != year:
            if abs(day.year - year) != 1:
                raise HolidayFileError(f"{day} lies far outside the file's year {year}", path=path, field=f"{fld}.date")
            if working is not None and working(day) == off:
                unknown.append(f"{day} ({'休' if off else '班'} {name.strip()})")
            continue
        (rest if off else work)[day] = name.strip()
    if unknown:
        raise HolidayFileError(
            f"{', '.join(unknown)} lie(s) outside {year} and the calendar in use does not treat them so: "
            "load that year's notice with these days first",
            path=path, field="days",
        )
    source = "; ".join(p.strip() for p in papers)
    return complete_arrangement(YearArrangement(year, f"holiday-cn: {source}", rest, work, origin=path),
                                path=path, line=None)


# ------------------------------------------------------------------------------------------- export


def _ranges(days: dict[date, str]) -> list[tuple[str, date, date]]:
    out: list[tuple[str, date, date]] = []
    for day, name in sorted(days.items()):
        if out and out[-1][0] == name and out[-1][2] + timedelta(days=1) == day:
            out[-1] = (name, out[-1][1], day)
        else:
            out.append((name, day, day))
    return out


def arrangement_yaml(arrangement: YearArrangement) -> str:
    """The arrangement as our YAML holiday file (what ``caseflow calendar export`` writes).

    Days filled in for ``statutory_only`` festivals are written as that list again, not as days, so the
    file reads back to the same arrangement.
    """
    left = set(arrangement.statutory_only)
    rest = {d: n for d, n in arrangement.rest_days.items() if not set(festivals_named(n)) & left}
    lines = [f"year: {arrangement.year}", f"source: {json.dumps(arrangement.source, ensure_ascii=False)}",
             "holidays:"]
    lines += [f"  - {{name: {json.dumps(n, ensure_ascii=False)}, from: {a}, to: {b}}}" for n, a, b in _ranges(rest)]
    if not rest:
        lines[-1] = "holidays: []"
    if arrangement.workdays:
        lines.append("workdays:")
        lines += [f"  - {{date: {d}, name: {json.dumps(n, ensure_ascii=False)}}}"
                  for d, n in sorted(arrangement.workdays.items())]
    if arrangement.statutory_only:
        lines.append(f"statutory_only: [{', '.join(arrangement.statutory_only)}]")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ festival check


@dataclass(frozen=True)
class FestivalDiff:
    """How a notice arranges one festival of 第二条, against the projection of the statute."""

    festival: str
    #: ``as projected``, ``differs``, or ``statutory only`` (left to the statute by the file).
    status: str
    rest_days: tuple[date, ...]
    workdays: tuple[date, ...]
    projected: tuple[date, ...]
    #: Weekdays the notice gives off beyond the projection, and projected rest days it makes working days.
    added: tuple[date, ...]
    dropped: tuple[date, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        def days(values: tuple[date, ...]) -> list[str]:
            return [d.isoformat() for d in values]

        return {"festival": self.festival, "status": self.status, "rest_days": days(self.rest_days),
                "workdays": days(self.workdays), "projected": days(self.projected), "added": days(self.added),
                "dropped": days(self.dropped)}


def festival_check(arrangement: YearArrangement, projection: YearArrangement | None = None) -> list[FestivalDiff]:
    """Festival by festival (全国年节及纪念日放假办法 第二条), how ``arrangement`` differs from the projection.

    The projection is the statute's days plus 第六条 substitutes and no make-up working days
    (:func:`~caseflow.calendar.projected_arrangement`). Rest days named for no festival (a one-off
    commemoration) come last, under their own name.
    """
    projection = projection or projected_arrangement(arrangement.year)
    out: list[FestivalDiff] = []

    def working(day: date) -> bool:
        return day in arrangement.workdays or (day.weekday() < 5 and day not in arrangement.rest_days)

    def of(days: dict[date, str], festival: str) -> tuple[date, ...]:
        return tuple(sorted(d for d, n in days.items() if festival in festivals_named(n)))

    for festival in FESTIVALS:
        rest, projected = of(arrangement.rest_days, festival), of(projection.rest_days, festival)
        # Compared as working status: a Saturday inside a block is no change, a weekday is.
        added = tuple(d for d in rest if d.weekday() < 5 and d not in projection.rest_days)
        dropped = tuple(d for d in projected if working(d))
        if festival in arrangement.statutory_only:
            status = "statutory only"
        else:
            status = "as projected" if not added and not dropped and not of(arrangement.workdays, festival) \
                else "differs"
        out.append(FestivalDiff(festival, status, rest, of(arrangement.workdays, festival), projected, added,
                                dropped))
    others = sorted({n for n in arrangement.rest_days.values() if not festivals_named(n)})
    for name in others:
        rest = tuple(sorted(d for d, n in arrangement.rest_days.items() if n == name))
        work = tuple(sorted(d for d, n in arrangement.workdays.items() if n == name))
        out.append(FestivalDiff(name, "differs", rest, work, (), tuple(d for d in rest if d.weekday() < 5), ()))
    return out
