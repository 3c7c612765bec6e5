"""The one exception tree of caseflow.

Every error caseflow raises on purpose derives from :class:`CaseflowError`; where a
stdlib meaning fits, the class also derives from it, so ``except LookupError`` or
``except ValueError`` in a host application keeps working::

    CaseflowError
    ├── CalendarError (ValueError)
    │   ├── CalendarCoverageError (LookupError)   date outside the calendar's years
    │   └── HolidayFileError                      bad holidays/*.yaml (file, line, field)
    ├── TimeLimitError (ValueError)               bad limit, bad start, bad excluded range
    ├── WorkflowError (ValueError)                bad workflow definition (file, line, field)
    │   └── WorkflowNotFoundError (LookupError)
    ├── CommandError (ValueError)                 a command the engine refuses
    │   ├── TransitionError                       trigger impossible in this state
    │   ├── PermissionDeniedError (PermissionError)
    │   ├── ConflictError                         stale expected version / concurrent change
    │   ├── TimerError                            pause / resume / extend refused
    │   └── BackdatingError                       instant too far in the past or in the future
    ├── NotFoundError (LookupError)
    │   ├── CaseNotFoundError
    │   └── PersonNotFoundError
    ├── StoreError                                database unreachable, schema not upgraded
    ├── config.ConfigError (ValueError)           bad caseflow.toml (file, key)
    │   └── applicants.ApplicantKeyError          no site secret for applicant fingerprints
    ├── notify.DeliveryError                      a channel failed to deliver
    ├── stats.StatsError (ValueError)             bad month / grouping
    └── AuditError                                hash chain broken (names the event)

Messages name the offending values and say what to do about them.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "BackdatingError",
    "CalendarCoverageError",
    "CalendarError",
    "CaseNotFoundError",
    "CaseflowError",
    "CommandError",
    "ConflictError",
    "HolidayFileError",
    "NotFoundError",
    "OutputFileError",
    "PermissionDeniedError",
    "PersonNotFoundError",
    "StoreError",
    "TimeLimitError",
    "TimerError",
    "TransitionError",
    "WorkflowError",
    "WorkflowNotFoundError",
]


class CaseflowError(Exception):
    """Root of every error caseflow raises on purpose."""


class CalendarError(CaseflowError, ValueError):
    """The working-day calendar cannot answer or cannot be built."""


class CalendarCoverageError(CalendarError, LookupError):
    """A date lies outside the years the calendar covers (2004–2099)."""


class _Located(Exception):
    """An error in a data file: the message is prefixed with file, line and field."""

    def __init__(self, message: str, *, path: str = "", line: int | None = None, field: str = "") -> None:
        parts = [path] if path else []
        if line is not None:
            parts.append(f"line {line}")
        if field:
            parts.append(f"field {field!r}")
        where = ", ".join(parts)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line
        self.field = field


class HolidayFileError(_Located, CalendarError):
    """A holiday file is invalid; the message names the file, line and field."""


class TimeLimitError(CaseflowError, ValueError):
    """A time limit, a start instant or an excluded period is invalid."""


class WorkflowError(_Located, CaseflowError, ValueError):
    """A workflow definition is invalid; the message names the file, line and field."""


class WorkflowNotFoundError(WorkflowError, LookupError):
    """No workflow definition has the requested key or version."""


class CommandError(CaseflowError, ValueError):
    """The engine refused a command; nothing was changed."""


class TransitionError(CommandError):
    """The trigger cannot be fired in the case's current state."""


class PermissionDeniedError(CommandError, PermissionError):
    """The actor lacks a role the command needs."""


class ConflictError(CommandError):
    """The case changed since the caller read it (stale expected version)."""


class TimerError(CommandError):
    """A pause, resume or extension the timer's policy does not allow."""


class BackdatingError(CommandError):
    """The command's instant lies too far in the past (or in the future)."""


class NotFoundError(CaseflowError, LookupError):
    """A stored object does not exist."""


class CaseNotFoundError(NotFoundError):
    """No case has that id."""


class PersonNotFoundError(NotFoundError):
    """No person has that id."""


class StoreError(CaseflowError):
    """The store cannot be reached or its schema is not at the expected revision."""


class AuditError(CaseflowError):
    """An event chain does not verify; the message names the case and event."""


class OutputFileError(CaseflowError, OSError):
    """A file caseflow was asked to write (a ledger, an export) cannot be written; the message names it."""
