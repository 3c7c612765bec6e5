"""The APScheduler trigger of caseflow's daily and monthly jobs: working days of caseflow's calendar only.

The scheduler (:mod:`caseflow.scheduler`) runs digests and audit checkpoints on every working day and the
monthly report on the first working day of each month with it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from caseflow.calendar import WorkCalendar, default_calendar
from caseflow.errors import CalendarError

__all__ = ["SCHED_ZONE", "WorkingDayTrigger"]

#: APScheduler wants a plain zoneinfo; this is caseflow's ZONE under its IANA name.
SCHED_ZONE = ZoneInfo("Asia/Shanghai")


class WorkingDayTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires at ``hour:minute`` on working days of caseflow's calendar only.

    Make-up working days (调休上班 Saturdays) fire; weekends and holidays do not. With
    ``first_of_month=True`` it fires on the first working day of each month only (the monthly report).
    """

    def __init__(self, hour: int = 8, minute: int = 30, calendar: WorkCalendar | None = None,
                 timezone: tzinfo | str | None = None, *, first_of_month: bool = False) -> None:
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            raise CalendarError(f"a time of day needs 0 <= hour <= 23 and 0 <= minute <= 59, got {hour}:{minute}")
        self.hour = hour
        self.minute = minute
        self.calendar = calendar or default_calendar()
        self.timezone: tzinfo = ZoneInfo(timezone) if isinstance(timezone, str) else (timezone or SCHED_ZONE)
        self.first_of_month = first_of_month

    def _eligible(self, day: date) -> bool:
        if not self.calendar.is_workday(day):
            return False
        return not self.first_of_month or self.calendar.roll_forward(day.replace(day=1)) == day

    def _next_eligible(self, day: date) -> date:
        """The first eligible day on or after ``day``."""
        if not self.first_of_month:
            return self.calendar.roll_forward(day)
        first = self.calendar.roll_forward(day.replace(day=1))
        if first >= day:
            return first
        following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        return self.calendar.roll_forward(following)

    def _at(self, day: date) -> datetime:
        return datetime.combine(day, time(self.hour, self.minute), self.timezone)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """The first firing instant at or after ``now`` (and strictly after ``previous_fire_time``)."""
        start = now.astimezone(self.timezone)
        if previous_fire_time is not None:
            start = max(start, previous_fire_time.astimezone(self.timezone) + timedelta(microseconds=1))
        day = start.date()
        if self._at(day) < start:
            day += timedelta(days=1)
        try:
            return self._at(self._next_eligible(day))
        except CalendarError:
            return None  # past the calendar's last year: no more firings

    def last_fire_time(self, now: datetime) -> datetime | None:
        """The latest firing instant at or before ``now`` (the slot a late or simulated run belongs to)."""
        local = now.astimezone(self.timezone)
        day = local.date()
        if self._at(day) > local:
            day -= timedelta(days=1)
        for _ in range(62):
            try:
                if self._eligible(day):
                    return self._at(day)
            except CalendarError:
                return None
            day -= timedelta(days=1)
        return None

    def __str__(self) -> str:
        what = "first working day of the month" if self.first_of_month else "working days"
        return f"{what} at {self.hour:02d}:{self.minute:02d}"

    def __repr__(self) -> str:
        return (f"<WorkingDayTrigger (hour={self.hour}, minute={self.minute}, first_of_month={self.first_of_month}, "
                f"timezone='{self.timezone}')>")
