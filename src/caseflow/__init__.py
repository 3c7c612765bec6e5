"""caseflow — the time limits (办理时限) of Chinese administrative and public-security procedures.

Deadlines on the Chinese working-day calendar (weekends, statutory holidays, make-up working days),
procedures as state machines, and a scheduler that warns before a limit runs out.
"""

from __future__ import annotations

from caseflow.audit import Checkpoint, rebuild_case, write_checkpoint
from caseflow.calendar import ZONE, DayInfo, WorkCalendar, YearArrangement, default_calendar
from caseflow.clock import FixedClock, SystemClock, parse_instant
from caseflow.engine import AuditProblem, CaseView, Engine, EventView, QueueItem, TimerView
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
    OutputFileError,
    PermissionDeniedError,
    PersonNotFoundError,
    StoreError,
    TimeLimitError,
    TimerError,
    TransitionError,
    WorkflowError,
    WorkflowNotFoundError,
)
from caseflow.store import Store
from caseflow.timelimits import Due, ExcludedPeriod, TimeLimit, compute_due, explain_due
from caseflow.workflow import (
    FieldDef,
    TimerDef,
    TransitionDef,
    WorkflowDef,
    WorkflowRegistry,
    load_workflow,
    load_workflows,
    parse_workflow,
)

__version__ = "0.1.0"

__all__ = [
    "ZONE",
    "AuditError",
    "AuditProblem",
    "BackdatingError",
    "CalendarCoverageError",
    "CalendarError",
    "CaseNotFoundError",
    "CaseView",
    "CaseflowError",
    "Checkpoint",
    "CommandError",
    "ConflictError",
    "DayInfo",
    "Due",
    "Engine",
    "EventView",
    "ExcludedPeriod",
    "FieldDef",
    "FixedClock",
    "HolidayFileError",
    "NotFoundError",
    "OutputFileError",
    "PermissionDeniedError",
    "PersonNotFoundError",
    "QueueItem",
    "Store",
    "StoreError",
    "SystemClock",
    "TimeLimit",
    "TimeLimitError",
    "TimerDef",
    "TimerError",
    "TimerView",
    "TransitionDef",
    "TransitionError",
    "WorkCalendar",
    "WorkflowDef",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowRegistry",
    "YearArrangement",
    "__version__",
    "compute_due",
    "default_calendar",
    "explain_due",
    "load_workflow",
    "load_workflows",
    "parse_instant",
    "parse_workflow",
    "rebuild_case",
    "write_checkpoint",
]
