"""Statistics of time limits and the monthly ledger (台账).

- **On-time rate**: timers met before their due instant / timers finished (met or breached), counted in
  the month they finished (Beijing time).
- **Overdue**: timers finished late in the month, plus timers still running whose due instant lies
  before the end of the month (or now, for the current month).
- **Working days per step**: from the Beijing date a timer started to the date it finished (the start
  day does not count), less the working days it spent paused for the applicant (补正) or by law
  (鉴定, 听证 …): time paused with ``charged_to`` ``"applicant"`` or ``"law"`` is not charged to the unit.

Statistics group by unit, person (the assignee of each step: who had to act before it ran out), workflow
(procedure) or month. Only timers that ran to an outcome count: ``met`` or ``breached``; a ``cancelled``
timer (不适用: its branch was not taken, or the case ended another way) is neither on time nor late.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from caseflow.alerts import CASES, PEOPLE, TIMERS, read_in
from caseflow.asof import TimerAt, timers_as_of
from caseflow.calendar import ZONE, WorkCalendar, default_calendar
from caseflow.errors import CaseflowError, OutputFileError
from caseflow.narrate import Labels, due_text, mask_text, status_text
from caseflow.narrate import case_summary as narrate_summary
from caseflow.store import Person, Store

__all__ = [
    "GROUP_BY",
    "NOT_CHARGED",
    "CaseGroupStats",
    "GroupStats",
    "StatsError",
    "StatsTable",
    "case_summary",
    "compute_case_stats",
    "compute_stats",
    "ledger_rows",
    "limit_text",
    "month_bounds",
    "parse_month",
    "render_stats_text",
    "stats_tables",
    "write_ledger",
]

#: The groupings of :func:`compute_stats`.
GROUP_BY = ("unit", "person", "workflow", "month")
#: Pauses charged to these parties are not charged to the unit.
NOT_CHARGED = frozenset({"applicant", "law"})
_FINISHED = ("met", "breached")
_CHUNK = 900  # ids per IN (…) list: below SQLite's oldest variable limit


class StatsError(CaseflowError, ValueError):
    """A statistics or report request is invalid (bad month, unknown grouping)."""


def parse_month(text: str) -> tuple[int, int]:
    """Read ``2026-10``."""
    from caseflow.calendar import FIRST_YEAR, LAST_YEAR

    match = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", text or "")
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise StatsError(f"expected a month like 2026-10, got {text!r}")
    if not FIRST_YEAR <= int(match.group(1)) <= LAST_YEAR:
        raise StatsError(f"the month {text.strip()} lies outside the calendar's years ({FIRST_YEAR} to {LAST_YEAR})")
    return int(match.group(1)), int(match.group(2))


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """The first instant of a Beijing month and of the next one."""
    start = datetime(year, month, 1, tzinfo=ZONE)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=ZONE)
    return start, end


def _local_date(instant: datetime) -> date:
    return instant.astimezone(ZONE).date()


def _instant(value: Any) -> datetime | None:
    """A pause bound from the timer's JSON: ISO text, naive meaning Beijing time."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return parsed.replace(tzinfo=ZONE) if parsed.tzinfo is None else parsed


def excluded_pauses(pauses_json: str | None, started: datetime, stopped: datetime,
                    calendar: WorkCalendar) -> tuple[int, float]:
    """Working days and hours a timer spent paused with a cause not charged to the unit, within its span."""
    if not pauses_json or pauses_json == "[]":  # most timers never paused: nothing to parse (every month's rows)
        return 0, 0.0
    try:
        pauses = json.loads(pauses_json)
    except ValueError:
        return 0, 0.0
    days = 0
    seconds = 0.0
    if not isinstance(pauses, list):
        return 0, 0.0
    for pause in pauses:
        if not isinstance(pause, dict) or pause.get("charged_to") not in NOT_CHARGED:
            continue
        begin = _instant(pause.get("from"))
        end = _instant(pause.get("to")) or stopped
        if begin is None:
            continue
        begin, end = max(begin, started), min(end, stopped)
        if end <= begin:
            continue
        seconds += (end - begin).total_seconds()
        days += max(0, calendar.working_days_between(_local_date(begin), _local_date(end)))
    return days, seconds / 3600


@dataclass
class GroupStats:
    """The figures of one group (a unit, a person, a workflow or a month)."""

    key: str
    finished: int = 0
    on_time: int = 0
    late: int = 0
    open_overdue: int = 0
    working_days: int = 0
    hours: float = 0.0
    excluded_days: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def on_time_rate(self) -> float | None:
        """Share of finished timers met before their due instant (None when nothing finished)."""
        return self.on_time / self.finished if self.finished else None

    @property
    def overdue(self) -> int:
        """Finished late plus still running past due."""
        return self.late + self.open_overdue

    @property
    def avg_working_days(self) -> float | None:
        """Average working days per finished step, paused time not charged to the unit left out."""
        return self.working_days / self.finished if self.finished else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly figures."""
        rate = self.on_time_rate
        avg = self.avg_working_days
        return {
            "key": self.key, "finished": self.finished, "on_time": self.on_time, "late": self.late,
            "open_overdue": self.open_overdue, "overdue": self.overdue,
            "on_time_rate": round(rate, 4) if rate is not None else None,
            "avg_working_days": round(avg, 2) if avg is not None else None,
            "avg_hours": round(self.hours / self.finished, 1) if self.finished else None,
            "excluded_days": self.excluded_days,
        }


def _group_key(by: str, unit: str, person: str, workflow: str, instant: datetime | None) -> str:
    if by == "unit":
        return unit
    if by == "person":
        return person
    if by == "workflow":
        return workflow
    return f"{_local_date(instant):%Y-%m}" if instant is not None else "-"


def compute_stats(store: Store, *, month: str | None = None, by: str = "unit",
                  units: Collection[str] | None = None, until: datetime | None = None,
                  now: datetime | None = None, calendar: WorkCalendar | None = None,
                  kind: str | None = None, as_of: Iterable[TimerAt] | None = None,
                  session: Session | None = None) -> list[GroupStats]:
    """Figures of steps (one timer = one step) per group for ``month`` (``2026-10``; every month when None).

    ``units`` limits the cases counted; ``until`` ignores timers finished after it (a month so far);
    ``now`` is the instant "still running past due" is judged at, as things stood then (default: the end
    of the month, or now); ``kind`` keeps ``statutory`` or ``promised`` timers only. Sorted by key.
    ``as_of``: the open timers due by that instant as :func:`~caseflow.asof.timers_as_of` gives them
    (``open_only=True, due_before=`` the instant, same ``units``), when the caller has read them already.
    ``session``: read within the caller's transaction (default: one of its own).
    """
    if by not in GROUP_BY:
        raise StatsError(f"cannot group by {by!r}; choose one of {', '.join(GROUP_BY)}")
    cal = calendar or default_calendar()
    t = TIMERS.c
    c = CASES.c
    start = end = None
    if month is not None:
        start, end = month_bounds(*parse_month(month))
    groups: dict[str, GroupStats] = {}

    def group(key: str) -> GroupStats:
        found = groups.get(key)
        if found is None:
            found = groups[key] = GroupStats(key)
        return found

    # Per person: the step's assignee (who had to act), not the case's responsible person.
    person_of = sa.func.coalesce(t.assignee, c.responsible_id)
    columns = (t.started_at, t.stopped_at, t.due_at, t.status, t.pauses, c.unit, person_of, c.workflow_key)
    # In id order, so the hours add up the same whatever plan the database picks for the filters.
    finished = sa.select(*columns).join_from(TIMERS, CASES, t.case_id == c.id).where(
        t.status.in_(_FINISHED), t.stopped_at.is_not(None)).order_by(t.id)
    if start is not None and end is not None:
        finished = finished.where(t.stopped_at >= start, t.stopped_at < end)
    if until is not None:
        finished = finished.where(t.stopped_at <= until)
    if units is not None:
        finished = finished.where(c.unit.in_(list(units)))

    if kind is not None:
        finished = finished.where(t.kind == kind)

    with read_in(store, session) as reading:
        for started, stopped, due, status, pauses, unit, person, workflow in reading.execute(finished):
            g = group(_group_key(by, unit, person, workflow, stopped))
            g.finished += 1
            if status == "met" and (due is None or stopped < due):
                g.on_time += 1
            else:
                g.late += 1
            excl_days, excl_hours = excluded_pauses(pauses, started, stopped, cal)
            g.excluded_days += excl_days
            g.working_days += max(0, cal.working_days_between(_local_date(started), _local_date(stopped)) - excl_days)
            g.hours += max(0.0, (stopped - started).total_seconds() / 3600 - excl_hours)
    # Still running past due, judged as things stood at that instant (rebuilt from recorded instants).
    judged_at = now or until or end or datetime.now(ZONE)
    if end is not None:
        judged_at = min(judged_at, end)
    if as_of is None:
        as_of = timers_as_of(store, judged_at, units=units, open_only=True, due_before=judged_at, calendar=cal,
                             session=session)
    for r in as_of:
        if r.status != "running" or r.due_at is None or (kind is not None and r.kind != kind):
            continue
        if end is not None and r.due_at >= end:  # due at 24:00 of the month's last day: not late in it
            continue
        group(_group_key(by, r.unit, r.assignee or r.responsible_id, r.workflow_key, r.due_at)).open_overdue += 1
    return [groups[k] for k in sorted(groups)]


@dataclass
class CaseGroupStats:
    """The figures of cases (not steps) of one group, for one kind of limit."""

    key: str
    opened: int = 0
    closed: int = 0
    closed_on_time: int = 0
    closed_late: int = 0
    open_overdue: int = 0

    @property
    def on_time_rate(self) -> float | None:
        """Share of closed cases none of whose steps ran past its limit (None when none closed)."""
        return self.closed_on_time / self.closed if self.closed else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly figures."""
        rate = self.on_time_rate
        return {"key": self.key, "opened": self.opened, "closed": self.closed, "closed_on_time": self.closed_on_time,
                "closed_late": self.closed_late, "open_overdue": self.open_overdue,
                "on_time_rate": round(rate, 4) if rate is not None else None}


def compute_case_stats(store: Store, *, month: str | None = None, by: str = "unit",
                       units: Collection[str] | None = None, now: datetime | None = None,
                       kind: str | None = None, calendar: WorkCalendar | None = None,
                       as_of: Iterable[TimerAt] | None = None) -> list[CaseGroupStats]:
    """Figures of cases per group for ``month`` as they stood at ``now`` (default: the month's end, or now).

    A case counts under ``kind`` (statutory/promised; None: any) when it has a step of that kind. It was
    closed late when one of those steps finished at or after its due instant (a step cut short by the
    case's end counts as late when its due instant had passed). Open and overdue: still open at ``now``
    with one of those steps running past due then (rebuilt from recorded instants). ``as_of`` as in
    :func:`compute_stats`.
    """
    if by not in GROUP_BY:
        raise StatsError(f"cannot group by {by!r}; choose one of {', '.join(GROUP_BY)}")
    start = end = None
    if month is not None:
        start, end = month_bounds(*parse_month(month))
    at = now or end or datetime.now(ZONE)
    if end is not None:
        at = min(at, end)
    t, c = TIMERS.c, CASES.c
    query = (sa.select(c.id, c.unit, c.responsible_id, c.workflow_key, c.opened_at, c.closed_at, t.kind, t.status,
                       t.due_at, t.stopped_at)
             .join_from(CASES, TIMERS, t.case_id == c.id)
             .where(c.opened_at <= at, t.status != "cancelled"))
    if start is not None:
        query = query.where(sa.or_(c.closed_at.is_(None), c.closed_at >= start))
    if units is not None:
        query = query.where(c.unit.in_(list(units)))
    if kind is not None:
        query = query.where(t.kind == kind)
    cases: dict[int, dict[str, Any]] = {}
    with store.session() as session:
        for cid, unit, person, workflow, opened, closed, _kind, _status, due, stopped in session.execute(query):
            info = cases.setdefault(cid, {"unit": unit, "person": person, "workflow": workflow, "opened": opened,
                                          "closed": closed if closed is not None and closed <= at else None,
                                          "late": False})
            if stopped is not None and stopped <= at and due is not None and stopped >= due:
                info["late"] = True
    if as_of is None:
        as_of = timers_as_of(store, at, units=units, open_only=True, due_before=at, calendar=calendar)
    overdue_cases = {r.case_id for r in as_of
                     if r.status == "running" and r.due_at is not None and (kind is None or r.kind == kind)}
    groups: dict[str, CaseGroupStats] = {}
    for cid, info in cases.items():
        in_month = start is None or (end is not None and start <= info["opened"] < end)
        closed = info["closed"]
        closed_in = closed is not None and (start is None or (end is not None and start <= closed < end))
        overdue = closed is None and cid in overdue_cases
        if not (in_month or closed_in or overdue):
            continue
        when = closed if closed is not None else info["opened"]
        g = groups.setdefault(key := _group_key(by, info["unit"], info["person"], info["workflow"], when),
                              CaseGroupStats(key))
        g.opened += int(in_month)
        if closed_in:
            g.closed += 1
            g.closed_late += int(info["late"])
            g.closed_on_time += int(not info["late"])
        g.open_overdue += int(overdue)
    return [groups[k] for k in sorted(groups)]


#: What the figures mean, printed under each table (口径).
CASE_DEFINITIONS = (
    "受理：期间内受理的案件数；办结：期间内办结的案件数。",
    "按期办结：办结的案件中，没有一个环节在期满后才完成；按期办结率 = 按期办结 ÷ 办结。",
    "在办已超期：截至统计时点仍未办结、且有环节已过期满时刻的案件数（按当时记录的计时、暂停、延长重建）。",
)
STEP_DEFINITIONS = (
    "办理环节：每个时限计一个环节（如「社区民警调查核实」）；一个案件有多个环节。",
    "完成：期间内完成的环节；按期完成率 = 在期满前完成的环节 ÷ 完成的环节。",
    "在办已超期：截至统计时点仍在计时、已过期满时刻的环节；暂停中的环节不计。",
    "平均用时：环节开始次日起至完成日的工作日数，扣除因申请人或依法不计入的暂停（函调、补正、鉴定等）。",
)
KIND_TITLES = {"statutory": "法定时限", "promised": "承诺时限"}
BY_TITLES = {"unit": "单位", "person": "承办人", "workflow": "程序", "month": "月份"}


@dataclass(frozen=True)
class StatsTable:
    """One table of a statistics report: title, column headers, rows of cells, definitions under it."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]


def _pct(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "—"


def stats_tables(store: Store, *, month: str | None = None, by: str = "unit",
                 units: Collection[str] | None = None, now: datetime | None = None,
                 calendar: WorkCalendar | None = None, labels: Any = None) -> list[StatsTable]:
    """The four tables a leader reads: cases and steps, statutory and promised limits apart, as of ``now``.

    Group keys read as people read them: units and months as they are, a person's name, a procedure's title.
    """
    from caseflow.narrate import Labels

    if by not in GROUP_BY:
        raise StatsError(f"cannot group by {by!r}; choose one of {', '.join(GROUP_BY)}")
    labels = labels or Labels.from_store(store)
    # All four tables are judged at one instant, so the timers running past due then are read once.
    end = month_bounds(*parse_month(month))[1] if month is not None else None
    at = now or end or datetime.now(ZONE)
    if end is not None:
        at = min(at, end)
    overdue = timers_as_of(store, at, units=units, open_only=True, due_before=at, calendar=calendar, labels=labels)

    def name(key: str) -> str:
        if by == "person":
            return str(labels.person(key))
        if by == "workflow":
            return str(labels.workflow(key))
        return key

    first = BY_TITLES[by]
    tables = []
    until = now
    for kind, kind_title in KIND_TITLES.items():
        cases = compute_case_stats(store, month=month, by=by, units=units, now=at, kind=kind, calendar=calendar,
                                   as_of=overdue)
        tables.append(StatsTable(
            f"案件（{kind_title}）", (first, "受理", "办结", "按期办结", "超期办结", "按期办结率", "在办已超期"),
            tuple((name(g.key), str(g.opened), str(g.closed), str(g.closed_on_time), str(g.closed_late),
                   _pct(g.on_time_rate), str(g.open_overdue)) for g in cases),
            CASE_DEFINITIONS))
    for kind, kind_title in KIND_TITLES.items():
        steps = compute_stats(store, month=month, by=by, units=units, until=until, now=at, calendar=calendar,
                              kind=kind, as_of=overdue)
        tables.append(StatsTable(
            f"办理环节（{kind_title}）", (first, "完成", "按期完成", "超期完成", "按期完成率", "在办已超期",
                                        "平均用时(工作日)"),
            tuple((name(g.key), str(g.finished), str(g.on_time), str(g.late), _pct(g.on_time_rate),
                   str(g.open_overdue), f"{g.avg_working_days:.1f}" if g.avg_working_days is not None else "—")
                  for g in steps),
            STEP_DEFINITIONS))
    return tables


def render_stats_text(tables: Sequence[StatsTable], *, heading: str = "") -> str:
    """The tables as terminal text, aligned by display width, each with its definitions (口径) under it."""
    from caseflow.narrate import text_table

    lines = [heading] if heading else []
    for table in tables:
        lines += ["", table.title]
        lines += ["  " + line for line in text_table(table.headers, table.rows)] if table.rows else ["  （无）"]
        lines += ["  口径：" + table.notes[0]] + ["        " + note for note in table.notes[1:]]
    return "\n".join(lines).lstrip("\n")


def total(groups: Iterable[GroupStats], key: str = "total") -> GroupStats:
    """The sum of several groups."""
    result = GroupStats(key)
    for g in groups:
        result.finished += g.finished
        result.on_time += g.on_time
        result.late += g.late
        result.open_overdue += g.open_overdue
        result.working_days += g.working_days
        result.hours += g.hours
        result.excluded_days += g.excluded_days
    return result


# ------------------------------------------------------------------------------------------- ledger

_SUMMARY_KEYS = ("title", "subject", "summary", "事由", "案由", "标题", "applicant", "申请人", "name", "姓名")


def case_summary(data_json: str | None, limit: int = 60) -> str:
    """A short, masked description of a case from its data (ID and phone numbers masked)."""
    try:
        data = json.loads(data_json or "{}")
    except ValueError:
        return ""
    if not isinstance(data, dict) or not data:
        return ""
    # Titles first, then the other fields in their order, as far as the length allows.
    keys = [k for k in _SUMMARY_KEYS if k in data] + [k for k in data if k not in _SUMMARY_KEYS]
    text = "；".join(f"{k}: {data[k]}" if k not in ("title", "subject", "summary", "标题") else str(data[k])
                    for k in keys[:4])
    text = mask_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def limit_text(spec: str | None) -> str:
    """A timer's limit as a clerk reads it (``20个工作日``), from its stored JSON."""
    from caseflow.timelimits import TimeLimit

    try:
        value = json.loads(spec or "null")
    except ValueError:
        value = spec
    try:
        if isinstance(value, dict) and "amount" in value and "unit" in value:
            return TimeLimit(int(value["amount"]), value["unit"]).chinese()
        if isinstance(value, str):
            return TimeLimit.parse(value).chinese()
    except (CaseflowError, TypeError, ValueError):
        pass
    return str(value) if value is not None else ""


def is_clock_limit(spec: str | None, last_day: date | None) -> bool:
    """True when a timer runs on the clock (hours), judged from its stored limit (or lack of a last day)."""
    try:
        value = json.loads(spec or "null")
    except ValueError:
        value = spec
    unit = value.get("unit") if isinstance(value, dict) else None
    if isinstance(value, str):
        unit = "hours" if re.search(r"hour|小时|minute|分钟", value) else "days"
    if unit is not None:
        return unit in ("hours", "minutes")
    return last_day is None


LEDGER_COLUMNS = ("序号", "案件编号", "程序", "当前状态", "承办人", "承办人编号", "分管领导", "单位", "受理时间",
                  "办结时间", "办结原因", "时限明细", "最早期满", "是否超期", "不计入时限的暂停(工作日)", "案情摘要")


def _fmt(instant: datetime | None) -> str:
    return f"{instant.astimezone(ZONE):%Y-%m-%d %H:%M}" if instant is not None else ""


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def ledger_rows(store: Store, unit: str, month: str, *, calendar: WorkCalendar | None = None,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per case of ``unit`` open at some time in ``month``: dates, limits, status, people."""
    cal = calendar or default_calendar()
    start, end = month_bounds(*parse_month(month))
    judged_at = min(now, end) if now is not None else end
    c = CASES.c
    t = TIMERS.c
    with store.session() as session:
        cases = session.execute(
            sa.select(c.id, c.workflow_key, c.workflow_version, c.state, c.responsible_id, c.unit, c.opened_at,
                      c.closed_at, c.close_reason, c.data)
            .where(c.unit == unit, c.opened_at < end, sa.or_(c.closed_at.is_(None), c.closed_at >= start))
            .order_by(c.opened_at, c.id)
        ).all()
        timers: dict[int, list[Any]] = {}
        ids = [row.id for row in cases]
        for chunk in _chunks(ids):
            for row in session.execute(
                sa.select(t.case_id, t.name, t.round, t.status, t.limit_spec, t.started_at, t.due_at, t.last_day,
                          t.stopped_at, t.pauses, t.assignee)
                .where(t.case_id.in_(list(chunk))).order_by(t.case_id, t.id)
            ):
                timers.setdefault(row.case_id, []).append(row)
        person_ids = {row.responsible_id for row in cases}
        people: dict[str, Person] = {}
        if person_ids:
            people.update({p.id: p for p in session.execute(
                sa.select(Person).where(PEOPLE.c.id.in_(list(person_ids)))).scalars()})
        leader_ids = {p.leader_id for p in people.values() if p.leader_id} - set(people)
        if leader_ids:
            people.update({p.id: p for p in session.execute(
                sa.select(Person).where(PEOPLE.c.id.in_(list(leader_ids)))).scalars()})

    labels = Labels.from_store(store)
    rows = []
    for number, case in enumerate(cases, 1):
        key, version = case.workflow_key, case.workflow_version
        person = people.get(case.responsible_id)
        leader = people.get(person.leader_id) if person is not None and person.leader_id else None
        details = []
        dues = []
        overdue = False
        excluded = 0
        for timer in timers.get(case.id, []):
            due = timer.due_at
            if due is not None:
                dues.append(due)
            late = (timer.status == "breached"
                    or (timer.status == "met" and due is not None and timer.stopped_at is not None
                        and timer.stopped_at >= due)
                    or (timer.status == "running" and due is not None and due <= judged_at))
            overdue = overdue or late
            stopped = timer.stopped_at or judged_at
            excluded += excluded_pauses(timer.pauses, timer.started_at, max(stopped, timer.started_at), cal)[0]
            name = labels.timer(key, timer.name, version) + (f"（第{timer.round}轮）" if timer.round and timer.round > 1
                                                           else "")
            details.append(f"{name} {limit_text(timer.limit_spec)} → {due_text(due)}"
                           f"（{status_text(timer.status)}{'，超期' if late else ''}）")
        rows.append({
            "序号": number,
            "案件编号": case.id,
            "程序": labels.workflow(key, version),
            "当前状态": labels.state(key, case.state, version),
            "承办人": person.name if person is not None else case.responsible_id,
            "承办人编号": case.responsible_id,
            "分管领导": leader.name if leader is not None else ((person.leader_id or "") if person is not None else ""),
            "单位": case.unit,
            "受理时间": _fmt(case.opened_at),
            "办结时间": _fmt(case.closed_at),
            "办结原因": case.close_reason or "",
            "时限明细": "\n".join(details),
            "最早期满": due_text(min(dues), prefix="") if dues else "",
            "是否超期": "是" if overdue else "否",
            "不计入时限的暂停(工作日)": excluded,
            "案情摘要": narrate_summary(labels, key, case.data, version=version, limit=200),
        })
    return rows




def write_ledger(rows: Sequence[dict[str, Any]], path: str | Path, *, unit: str, month: str,
                 score: Mapping[str, Any] | None = None) -> Path:
    """Write the ledger as an .xlsx workbook (a title row, a header row, one row per case).

    ``score`` (a :meth:`caseflow.scoring.Scorecard.to_dict`) adds a second sheet, the unit's 考评 for the month.
    """
    # openpyxl ships no type information; imported as modules typed Any (an optional dependency).
    from importlib import import_module

    openpyxl: Any = import_module("openpyxl")
    styles: Any = import_module("openpyxl.styles")
    utils: Any = import_module("openpyxl.utils")
    Workbook, Alignment, Font, get_column_letter = (openpyxl.Workbook, styles.Alignment, styles.Font,
                                                   utils.get_column_letter)

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(f"cannot write {path}: {exc.strerror or exc}; choose a writable path") from None
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = f"台账 {month}"
    sheet.append([_xlsx_text(f"{unit} 办理时限台账 {month}")])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(list(LEDGER_COLUMNS))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([_xlsx_text(row.get(col, "")) for col in LEDGER_COLUMNS])
    widths = {"时限明细": 60, "案情摘要": 40, "受理时间": 17, "办结时间": 17, "最早期满": 17}
    for i, col in enumerate(LEDGER_COLUMNS, 1):
        sheet.column_dimensions[get_column_letter(i)].width = widths.get(col, max(8, len(col) * 2 + 2))
    wrap = Alignment(wrap_text=True, vertical="top")
    for row_cells in sheet.iter_rows(min_row=3):
        for cell in row_cells:
            cell.alignment = wrap
    for row_cells in sheet.iter_rows():
        for cell in row_cells:
            _as_text_if_formula_like(cell)
    sheet.freeze_panes = "A3"
    if score is not None:
        _score_sheet(workbook.create_sheet(f"考评 {month}"), score, unit=unit, month=month, font=Font)
    try:
        workbook.save(path)
    except OSError as exc:
        raise OutputFileError(f"cannot write {path}: {exc.strerror or exc}; choose a writable path") from None
    return path


#: What a spreadsheet reads as the start of a formula (or, typed again, turns into one): case data,
#: names and units are typed by anyone, so a leader's 台账 must never run them (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _xlsx_text(value: Any) -> Any:
    """Text without the control characters a worksheet cannot hold (typed units and names may carry them)."""
    if not isinstance(value, str):
        return value
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]

    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)


def _as_text_if_formula_like(cell: Any) -> None:
    """Write a cell whose text starts like a formula as text, quote-prefixed as a person typing ``'=`` would."""
    value = cell.value
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        cell.data_type = "s"  # openpyxl made it a formula ("f") on assignment
        cell.quotePrefix = True  # and Excel keeps it text when someone edits the cell


def previous_month(day: date) -> str:
    """The month before ``day``'s, as ``YYYY-MM``."""
    first = day.replace(day=1) - timedelta(days=1)
    return f"{first:%Y-%m}"


def _score_sheet(sheet: Any, score: Mapping[str, Any], *, unit: str, month: str, font: Any) -> None:
    """The 考评 sheet of the ledger: the unit's line, then its people, one column per rule (scoring.py)."""
    labels: Mapping[str, str] = score["labels"]
    rules = score["rules"]
    sheet.append([_xlsx_text(f"{unit} 考评 {month}(规则表 {rules['source']},基础分 {rules['base']})")])
    sheet["A1"].font = font(bold=True, size=14)
    sheet.append(["对象", *labels.values(), "加减分", "得分"])
    lines = [u for u in score["units"] if u["key"] == unit] + [p for p in score["people"] if p["unit"] == unit]
    for line in lines:
        sheet.append([_xlsx_text(line["name"]), *(line["counts"][k] for k in labels), line["points"], line["score"]])
