"""caseflow — the time limits (办理时限) of Chinese administrative and public-security procedures.

Deadlines on the Chinese working-day calendar (weekends, statutory holidays, make-up working days),
procedures as state machines, and a scheduler that warns before a limit runs out.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caseflow.audit import Checkpoint, rebuild_case, write_checkpoint
    from caseflow.calendar import ZONE, DayInfo, WorkCalendar, YearArrangement, default_calendar
    from caseflow.clock import FixedClock, SystemClock, parse_instant
    from caseflow.desk import Desk, DeskError, Notice, Receipt, VisitView
    from caseflow.engine import Engine
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
    from caseflow.materials import Material, ServiceSpec
    from caseflow.ratings import RatingError, Ratings, RatingView
    from caseflow.registry import WorkflowRegistry
    from caseflow.store import Store
    from caseflow.timelimits import Due, ExcludedPeriod, TimeLimit, compute_due, explain_due
    from caseflow.views import AuditProblem, CaseView, EventView, QueueItem, TimerView
    from caseflow.windowstats import WindowStats, window_stats
    from caseflow.workflow import FieldDef, TimerDef, TransitionDef, WorkflowDef
    from caseflow.workflowfile import load_workflow, load_workflows, parse_workflow

# Each public name and the module defining it. They are imported on first use (PEP 562), so
# ``import caseflow`` (and ``caseflow deadline``) does not load SQLAlchemy, SQLModel or the scheduler.
_EXPORTS: dict[str, str] = {
    "Desk": "caseflow.desk",
    "DeskError": "caseflow.desk",
    "Notice": "caseflow.desk",
    "Receipt": "caseflow.desk",
    "VisitView": "caseflow.desk",
    "Material": "caseflow.materials",
    "ServiceSpec": "caseflow.materials",
    "RatingError": "caseflow.ratings",
    "Ratings": "caseflow.ratings",
    "RatingView": "caseflow.ratings",
    "WindowStats": "caseflow.windowstats",
    "window_stats": "caseflow.windowstats",
    "Checkpoint": "caseflow.audit",
    "rebuild_case": "caseflow.audit",
    "write_checkpoint": "caseflow.audit",
    "ZONE": "caseflow.calendar",
    "DayInfo": "caseflow.calendar",
    "WorkCalendar": "caseflow.calendar",
    "YearArrangement": "caseflow.calendar",
    "default_calendar": "caseflow.calendar",
    "FixedClock": "caseflow.clock",
    "SystemClock": "caseflow.clock",
    "parse_instant": "caseflow.clock",
    "AuditProblem": "caseflow.views",
    "CaseView": "caseflow.views",
    "Engine": "caseflow.engine",
    "EventView": "caseflow.views",
    "QueueItem": "caseflow.views",
    "TimerView": "caseflow.views",
    "AuditError": "caseflow.errors",
    "BackdatingError": "caseflow.errors",
    "CalendarCoverageError": "caseflow.errors",
    "CalendarError": "caseflow.errors",
    "CaseflowError": "caseflow.errors",
    "CaseNotFoundError": "caseflow.errors",
    "CommandError": "caseflow.errors",
    "ConflictError": "caseflow.errors",
    "HolidayFileError": "caseflow.errors",
    "NotFoundError": "caseflow.errors",
    "OutputFileError": "caseflow.errors",
    "PermissionDeniedError": "caseflow.errors",
    "PersonNotFoundError": "caseflow.errors",
    "StoreError": "caseflow.errors",
    "TimeLimitError": "caseflow.errors",
    "TimerError": "caseflow.errors",
    "TransitionError": "caseflow.errors",
    "WorkflowError": "caseflow.errors",
    "WorkflowNotFoundError": "caseflow.errors",
    "Store": "caseflow.store",
    "Due": "caseflow.timelimits",
    "ExcludedPeriod": "caseflow.timelimits",
    "TimeLimit": "caseflow.timelimits",
    "compute_due": "caseflow.timelimits",
    "explain_due": "caseflow.timelimits",
    "FieldDef": "caseflow.workflow",
    "TimerDef": "caseflow.workflow",
    "TransitionDef": "caseflow.workflow",
    "WorkflowDef": "caseflow.workflow",
    "WorkflowRegistry": "caseflow.registry",
    "load_workflow": "caseflow.workflowfile",
    "load_workflows": "caseflow.workflowfile",
    "parse_workflow": "caseflow.workflowfile",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'caseflow' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
    "Desk",
    "DeskError",
    "Due",
    "Engine",
    "EventView",
    "ExcludedPeriod",
    "FieldDef",
    "FixedClock",
    "HolidayFileError",
    "Material",
    "NotFoundError",
    "Notice",
    "OutputFileError",
    "PermissionDeniedError",
    "PersonNotFoundError",
    "QueueItem",
    "RatingError",
    "RatingView",
    "Ratings",
    "Receipt",
    "ServiceSpec",
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
    "VisitView",
    "WindowStats",
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
    "window_stats",
    "write_checkpoint",
]
