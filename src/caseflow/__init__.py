"""caseflow — the time limits (办理时限) of Chinese administrative and public-security procedures.

Deadlines on the Chinese working-day calendar (weekends, statutory holidays, make-up working days),
procedures as state machines, and a scheduler that warns before a limit runs out.
"""

from __future__ import annotations

from caseflow.calendar import ZONE, DayInfo, WorkCalendar, YearArrangement, default_calendar
from caseflow.errors import (
    AuditError,
    BackdatingError,
    CalendarCoverageError,
    CalendarError,
    CaseflowError,
    CaseNotFoundError,
    CommandError,
    ConflictError,
    HolidayFileError,
    NotFoundError,
    PermissionDeniedError,
    PersonNotFoundError,
    StoreError,
    TimeLimitError,
    TimerError,
    TransitionError,
    WorkflowError,
    WorkflowNotFoundError,
)
from caseflow.timelimits import Due, ExcludedPeriod, TimeLimit, compute_due, explain_due

__version__ = "0.1.0"

__all__ = [
    "ZONE",
    "AuditError",
    "BackdatingError",
    "CalendarCoverageError",
    "CalendarError",
    "CaseNotFoundError",
    "CaseflowError",
    "CommandError",
    "ConflictError",
    "DayInfo",
    "Due",
    "ExcludedPeriod",
    "HolidayFileError",
    "NotFoundError",
    "PermissionDeniedError",
    "PersonNotFoundError",
    "StoreError",
    "TimeLimit",
    "TimeLimitError",
    "TimerError",
    "TransitionError",
    "WorkCalendar",
    "WorkflowError",
    "WorkflowNotFoundError",
    "YearArrangement",
    "__version__",
    "compute_due",
    "default_calendar",
    "explain_due",
]
