"""Reading a holiday notice file (``holidays/<year>.yaml``): validation that names file, line and field.

Kept apart from :mod:`caseflow.calendar` so that the calendar — and ``caseflow deadline`` at the
prompt — does not import PyYAML: the shipped files are answered from their parsed form
(:data:`caseflow.calendar.PARSED_HOLIDAYS_FILE`, checked against the files by content hash), and this
module is imported only when a file that is not in it has to be read.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from caseflow._yaml import LineDict, LineList, line_of, load_yaml, load_yaml_text
from caseflow.calendar import (
    _WEEKDAY_ZH,
    FESTIVALS,
    FIRST_YEAR,
    LAST_YEAR,
    YearArrangement,
    _nearest_holiday,
    complete_arrangement,
    festivals_named,
)
from caseflow.errors import HolidayFileError

__all__ = ["load_holiday_file"]

_FILE_KEYS = ("year", "source", "holidays", "workdays", "statutory_only")

def _festival_of(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    named = festivals_named(value.strip())
    return named[0] if len(named) == 1 else None
_RANGE_KEYS = ("name", "from", "to")


def _parse_day(value: Any, *, path: str, line: int | None, fld: str, year: int) -> date:
    if not isinstance(value, str):
        raise HolidayFileError(
            f"expected a date written YYYY-MM-DD, got {value!r}", path=path, line=line, field=fld
        )
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise HolidayFileError(
            f"{value!r} is not a valid date (YYYY-MM-DD)", path=path, line=line, field=fld
        ) from None
    if day.year != year:
        raise HolidayFileError(
            f"{day} lies outside the file's year {year}; days of a block that fall in a neighbouring "
            "year belong in that year's file",
            path=path,
            line=line,
            field=fld,
        )
    return day


def load_holiday_file(path: Path | str, *, text: str | None = None) -> YearArrangement:
    """Read and validate one holiday file, always from its text (the format and rules are in
    :func:`caseflow.calendar.load_holiday_file`, which answers the shipped files without this module).
    """
    path = Path(path)
    where = str(path)
    try:
        # ``text`` is an upload not yet on disk; ``path`` then only names it (and its year).
        doc = load_yaml_text(text) if text is not None else load_yaml(path)[0]
    except OSError as exc:
        raise HolidayFileError(f"cannot read the file: {exc.strerror or exc}", path=where) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise HolidayFileError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            path=where,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    if not isinstance(doc, LineDict):
        raise HolidayFileError(
            "expected a mapping with the keys year, source, holidays, workdays", path=where, line=1
        )
    for key in doc:
        if key not in _FILE_KEYS:
            raise HolidayFileError(
                f"unknown key {key!r}; allowed keys are {', '.join(_FILE_KEYS)}",
                path=where,
                line=line_of(doc, key),
                field=key,
            )
    year = doc.get("year")
    if isinstance(year, str) and year.strip().isdigit():
        year = int(year)
    if not isinstance(year, int) or isinstance(year, bool) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise HolidayFileError(
            f"year must be a whole number from {FIRST_YEAR} to {LAST_YEAR}, got {year!r}",
            path=where,
            line=line_of(doc, "year"),
            field="year",
        )
    if path.stem.isdigit() and int(path.stem) != year:
        raise HolidayFileError(
            f"the file is named for {path.stem} but says year {year}; name it {year}.yaml",
            path=where,
            line=line_of(doc, "year"),
            field="year",
        )
    source = doc.get("source")
    if not isinstance(source, str) or not source.strip():
        raise HolidayFileError(
            "source is required: the notice the arrangement comes from (e.g. 国办发明电〔2025〕7号)",
            path=where,
            line=line_of(doc, "source") or 1,
            field="source",
        )

    rest: dict[date, str] = {}
    rest_lines: dict[date, int | None] = {}
    ranges = doc.get("holidays", LineList())
    if ranges is None:
        ranges = LineList()
    if not isinstance(ranges, list):
        raise HolidayFileError(
            "holidays must be a list of {name, from, to}", path=where, line=line_of(doc, "holidays"),
            field="holidays",
        )
    for i, item in enumerate(ranges):
        line = line_of(ranges, i)
        if not isinstance(item, LineDict):
            raise HolidayFileError(
                f"each holiday must be a mapping {{name, from, to}}, got {item!r}",
                path=where, line=line, field=f"holidays[{i}]",
            )
        for key in item:
            if key not in _RANGE_KEYS:
                raise HolidayFileError(
                    f"unknown key {key!r}; allowed keys are {', '.join(_RANGE_KEYS)}",
                    path=where, line=line_of(item, key), field=f"holidays[{i}].{key}",
                )
        for key in _RANGE_KEYS:
            if key not in item:
                raise HolidayFileError(
                    f"missing {key!r}", path=where, line=line, field=f"holidays[{i}].{key}"
                )
        name = item["name"]
        if not isinstance(name, str) or not name.strip():
            raise HolidayFileError(
                "name must be the holiday's name (春节, 国庆节, …)",
                path=where, line=line_of(item, "name"), field=f"holidays[{i}].name",
            )
        start = _parse_day(item["from"], path=where, line=line_of(item, "from"),
                           fld=f"holidays[{i}].from", year=year)
        end = _parse_day(item["to"], path=where, line=line_of(item, "to"),
                         fld=f"holidays[{i}].to", year=year)
        if end < start:
            raise HolidayFileError(
                f"range runs backwards: from {start} to {end}",
                path=where, line=line_of(item, "to"), field=f"holidays[{i}].to",
            )
        day = start
        while day <= end:
            if day in rest:
                raise HolidayFileError(
                    f"{day} is listed twice (already in {rest[day]}, line {rest_lines[day]})",
                    path=where, line=line, field=f"holidays[{i}]",
                )
            rest[day] = name.strip()
            rest_lines[day] = line
            day += timedelta(days=1)

    work: dict[date, str] = {}
    items = doc.get("workdays", LineList())
    if items is None:
        items = LineList()
    if not isinstance(items, list):
        raise HolidayFileError(
            "workdays must be a list of dates", path=where, line=line_of(doc, "workdays"), field="workdays"
        )
    for i, item in enumerate(items):
        line = line_of(items, i)
        fld = f"workdays[{i}]"
        label = ""
        if isinstance(item, LineDict):
            for key in item:
                if key not in ("date", "name"):
                    raise HolidayFileError(
                        f"unknown key {key!r}; allowed keys are date, name",
                        path=where, line=line_of(item, key), field=f"{fld}.{key}",
                    )
            label = str(item.get("name", "") or "")
            value = item.get("date")
        else:
            value = item
        day = _parse_day(value, path=where, line=line, fld=fld, year=year)
        if day.weekday() < 5:
            raise HolidayFileError(
                f"{day} is a {_WEEKDAY_ZH[day.weekday()]}: a make-up working day (调休上班) is always a "
                "Saturday or Sunday",
                path=where, line=line, field=fld,
            )
        if day in rest:
            raise HolidayFileError(
                f"{day} is both a rest day ({rest[day]}, line {rest_lines[day]}) and a make-up working day",
                path=where, line=line, field=fld,
            )
        if day in work:
            raise HolidayFileError(f"{day} is listed twice", path=where, line=line, field=fld)
        work[day] = label or _nearest_holiday(day, rest)
    statutory_only = _statutory_only(doc, where)
    return complete_arrangement(
        YearArrangement(year, source.strip(), rest, work, origin=where), statutory_only, path=where,
        line=line_of(doc, "statutory_only" if "statutory_only" in doc else "holidays"),
    )


def _statutory_only(doc: LineDict, where: str) -> tuple[str, ...]:
    value = doc.get("statutory_only")
    if value is None:
        return ()
    line = line_of(doc, "statutory_only")
    if not isinstance(value, list):
        raise HolidayFileError(
            f"statutory_only must be a list of festivals, e.g. [清明节]; the festivals are {', '.join(FESTIVALS)}",
            path=where, line=line, field="statutory_only",
        )
    chosen: list[str] = []
    for i, item in enumerate(value):
        festival = _festival_of(item)
        if festival is None:
            raise HolidayFileError(
                f"{item!r} is not a festival of 全国年节及纪念日放假办法 第二条; write one of {', '.join(FESTIVALS)}",
                path=where, line=line_of(value, i) if isinstance(value, LineList) else line,
                field=f"statutory_only[{i}]",
            )
        if festival not in chosen:
            chosen.append(festival)
    return tuple(chosen)

