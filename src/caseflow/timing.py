"""Timer maths: a timer's limit, due instant, warning instant and time left, from its row and definition.

Commands (:mod:`caseflow.timers`), the audit's replay and the as-of reconstruction compute due instants
through these functions alone; :mod:`caseflow.recompute` gives the same answers in bulk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from caseflow.calendar import ZONE, WorkCalendar
from caseflow.chain import _canonical
from caseflow.clock import parse_instant
from caseflow.errors import CommandError, TimeLimitError
from caseflow.timelimits import Due, TimeLimit, compute_due, escalation_instant
from caseflow.unitofwork import _set

if TYPE_CHECKING:
    from caseflow.store import TimerRow
    from caseflow.workflow import TimerDef

__all__ = [
    "ACTIVE",
    "TIMER_STATUSES",
    "apply_due",
    "counted_start",
    "pause_span",
    "time_left_text",
    "timer_due",
    "timer_limit",
    "warn_instant",
]

#: The statuses of a timer that still counts down (or may again).
ACTIVE = ("running", "paused")
#: Timer statuses: running, paused, and how a timer ended. ``stopped`` is the pre-0004 name of cancelled.
TIMER_STATUSES = ("running", "paused", "met", "breached", "cancelled")


def _limit_spec(limit: TimeLimit) -> str:
    return _canonical({"amount": limit.amount, "unit": limit.unit, "roll_forward": limit.roll_forward,
                       "month_end": limit.month_end, "start_day": limit.start_day, "hour_start": limit.hour_start})


@lru_cache(maxsize=1024)
def _limit_from_spec(spec: str) -> TimeLimit:
    # A limit is immutable and a few specs recur on every timer: each command and view read them again.
    data = json.loads(spec)
    return TimeLimit(data["amount"], data["unit"], roll_forward=data["roll_forward"], month_end=data["month_end"],
                     start_day=data["start_day"], hour_start=data["hour_start"])


def _extended_by(extensions: str) -> int:
    """The amount granted by a timer's extensions (most timers have none: nothing to parse)."""
    return 0 if extensions == "[]" else sum(int(e["amount"]) for e in json.loads(extensions))


@lru_cache(maxsize=1024)
def _limit_text(spec: str, extra: int) -> str:
    """How a view shows a timer's limit with ``extra`` granted (as ``str(TimeLimit)``)."""
    limit = _limit_from_spec(spec)
    return str(TimeLimit(limit.amount + extra, limit.unit, roll_forward=limit.roll_forward))


def _clock_text(span: timedelta) -> str:
    hours, minutes = divmod(int(span.total_seconds()) // 60, 60)
    return f"{hours} 小时 {minutes} 分" if hours else f"{minutes} 分"


def timer_limit(tdef: TimerDef, data: Mapping[str, Any], started_at: datetime, calendar: WorkCalendar) -> TimeLimit:
    """The limit a timer starts with: its own, or for ``until: FIELD`` the span in minutes from ``started_at``
    to the instant agreed in that case-data field (the audit's replay computes it the same way).

    Refused (:class:`CommandError`, nothing written) when that instant is missing or unreadable, is not
    ahead of the start, or lies further ahead than the timer's ``limit``.
    """
    if tdef.until is None:
        return tdef.limit
    value = data.get(tdef.until)
    try:
        agreed = value if isinstance(value, datetime) else parse_instant(str(value or ""))
    except TimeLimitError:
        raise CommandError(
            f"timer {tdef.name!r} ({tdef.label}) is due at the instant in {tdef.until!r}; got {value!r} — "
            f"give it like {tdef.until}=2026-10-03T10:00 (Beijing time)"
        ) from None
    if agreed.tzinfo is None:
        agreed = agreed.replace(tzinfo=ZONE)
    if agreed <= started_at:
        raise CommandError(f"{tdef.until}={agreed.isoformat()} is not after {started_at.isoformat()}; "
                           "the agreed instant must lie ahead")
    latest = compute_due(started_at, tdef.limit, calendar=calendar).due_at
    if agreed > latest:
        raise CommandError(f"{tdef.until}={agreed.isoformat()} lies more than {tdef.limit} ahead "
                           f"(latest {latest.isoformat()}); check the date")
    return TimeLimit(int((agreed - started_at).total_seconds() // 60), "minutes")


def counted_start(tdef: TimerDef, data: Mapping[str, Any], at: datetime) -> datetime:
    """The instant a timer counts from: ``at``, or for ``start.counted_from: FIELD`` 00:00 (Beijing) of the date
    in that case-data field — the day the law counts from (刑事诉讼法 第一百六十条 "自发现之日起"), recorded by
    the command that starts the timer; ``at`` when the field is not given (the event happened when it is
    recorded: a window application received in person). The audit's replay computes it the same way.

    Refused (:class:`CommandError`, nothing written) when the date is unreadable or lies after ``at`` (the
    law's day cannot come after the command recording it).
    """
    if tdef.counted_from is None:
        return at
    value = data.get(tdef.counted_from)
    if value is None or value == "":
        return at
    try:
        day = value if isinstance(value, date) else parse_instant(str(value or "")).astimezone(ZONE).date()
    except TimeLimitError:
        raise CommandError(
            f"timer {tdef.name!r} ({tdef.label}) counts from the date in {tdef.counted_from!r}; got {value!r} — "
            f"give it like {tdef.counted_from}=2026-10-03"
        ) from None
    if isinstance(day, datetime):
        day = day.astimezone(ZONE).date()
    start = datetime.combine(day, time(0), tzinfo=ZONE)
    if start > at:
        raise CommandError(f"{tdef.counted_from}={day.isoformat()} lies after {at.astimezone(ZONE).isoformat()}; "
                           "the day the law counts from cannot be later than the command recording it")
    return start


def pause_span(pause: Mapping[str, Any], tdef: TimerDef, calendar: WorkCalendar) -> tuple[datetime, datetime | None]:
    """When one entry of a pause ledger began and stopped counting: at its resume, or at its reason's cap
    if that comes first; None for an open pause without a cap (its end is not known yet)."""
    start = datetime.fromisoformat(pause["from"])
    end = datetime.fromisoformat(pause["to"]) if pause.get("to") else None
    policy = tdef.pause_policy(pause["reason"])
    if policy is not None and policy.cap is not None:
        cap_end = compute_due(start, policy.cap, calendar=calendar).due_at
        end = cap_end if end is None else min(end, cap_end)
    return start, end


def timer_due(row: TimerRow, tdef: TimerDef, calendar: WorkCalendar) -> Due | None:
    """A timer's due instant from its start, limit, extensions and pause ledger.

    A pause on day P resumed on day R excludes days P..R-1 for day limits (the resume day counts);
    for hour limits the paused duration is added. A pause reason with a cap excludes at most the
    cap. An open pause without a cap leaves the due instant unknown (None).
    """
    base = _limit_from_spec(row.limit_spec)
    extra = _extended_by(row.extensions)
    limit = base if not extra else TimeLimit(base.amount + extra, base.unit, roll_forward=base.roll_forward,
                                             month_end=base.month_end, start_day=base.start_day,
                                             hour_start=base.hour_start)
    excluded: list[tuple[Any, Any, str]] = []
    for pause in json.loads(row.pauses) if row.pauses != "[]" else ():
        start, end = pause_span(pause, tdef, calendar)
        if end is None:
            return None
        if limit.is_clock:
            if end > start:
                excluded.append((start, end, pause["reason"]))
        else:
            first = start.astimezone(ZONE).date()
            last = end.astimezone(ZONE).date() - timedelta(days=1)
            if last >= first:
                excluded.append((first, last, pause["reason"]))
    return compute_due(row.started_at, limit, excluded=excluded, calendar=calendar)


def warn_instant(due: Due, tdef: TimerDef, calendar: WorkCalendar, started_at: datetime) -> datetime | None:
    """When the warning (yellow card) is due: ``warn_before`` ahead of the due instant; None if before the start."""
    before = tdef.warn_before
    if before is None:
        return None
    if before.is_clock:
        step = timedelta(hours=1) if before.unit == "hours" else timedelta(minutes=1)
        warn = due.due_at - before.amount * step
    elif before.unit == "working_days":
        day = calendar.add_working_days(due.last_day, -before.amount) if before.amount else due.last_day
        warn = datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZONE)
    else:
        days = before.amount * (30 if before.unit == "months" else 1)
        warn = datetime.combine(due.last_day - timedelta(days=days - 1), time(0), tzinfo=ZONE)
    if warn <= started_at or warn >= due.due_at:
        return None
    return warn


def apply_due(row: TimerRow, tdef: TimerDef, calendar: WorkCalendar) -> None:
    """Set a timer row's due instant, last day, warning, escalation and next alert from its ledger."""
    due = timer_due(row, tdef, calendar)
    if due is None:
        _set(row, due_at=None, last_day=None, warn_at=None, provisional=False, next_alert_at=None,
             escalate_at=None)
        return
    warn_at = warn_instant(due, tdef, calendar, row.started_at)
    _set(row, due_at=due.due_at, last_day=due.last_day, provisional=due.provisional, warn_at=warn_at,
         escalate_at=escalation_instant(due.due_at, tdef.escalate_after, calendar))
    if row.status != "running":
        _set(row, next_alert_at=None)
    elif row.alert_level is None:
        _set(row, next_alert_at=warn_at if warn_at is not None else due.due_at)
    elif row.alert_level in ("warning", "overdue"):
        # For an overdue timer the sweep moves the instant on to escalation (it knows escalate_after);
        # a due instant moved earlier by a calendar reload must not delay that.
        _set(row, next_alert_at=due.due_at)


def time_left_text(timer: TimerRow, now: datetime, calendar: WorkCalendar) -> str:
    """What :meth:`caseflow.engine.Engine.time_left` says of ``timer`` at ``now``, days counted on ``calendar``."""
    if timer.status == "paused":
        return "暂停中"
    if timer.due_at is None or timer.last_day is None:
        return ""
    limit = _limit_from_spec(timer.limit_spec)
    today = now.astimezone(ZONE).date()
    unit = "个工作日" if limit.unit == "working_days" else "天"
    if now >= timer.due_at:
        late = 0
        if limit.unit == "working_days":
            late = calendar.working_days_between(timer.last_day, today)
        elif not limit.is_clock:
            late = (today - timer.last_day).days
        return f"逾期 {late} {unit}" if late >= 1 else f"逾期 {_clock_text(now - timer.due_at)}"
    if limit.is_clock or timer.due_at - now < timedelta(days=1):
        return f"还剩 {_clock_text(timer.due_at - now)}"
    # Whole days after today up to and including the last day (today's remainder is not a day).
    if limit.unit == "working_days":
        left = calendar.working_days_between(today, timer.last_day)
    else:
        left = (timer.last_day - today).days
    if left < 1:
        return f"还剩 {_clock_text(timer.due_at - now)}"
    return f"还剩 {left} {unit}"
