"""Clocks and the reading of instants typed by people.

Every instant caseflow handles is time-zone aware. People type Beijing wall-clock time, so text
without an offset is read in Asia/Shanghai — never in UTC, pendulum's default (DESIGN.md trap).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from caseflow.calendar import FIRST_YEAR, LAST_YEAR, ZONE
from caseflow.errors import CalendarCoverageError, TimeLimitError

__all__ = [
    "MAX_OFFSET",
    "FixedClock",
    "SystemClock",
    "check_date",
    "check_instant",
    "parse_date",
    "parse_instant",
    "require_aware",
]


class SystemClock:
    """The real clock, in Asia/Shanghai."""

    def now(self) -> datetime:
        """The current instant."""
        return datetime.now(ZONE)


class FixedClock:
    """A clock that says what it is told: for tests, the demo and simulated runs."""

    def __init__(self, instant: datetime) -> None:
        self._now = require_aware(instant, "clock instant")

    def now(self) -> datetime:
        """The instant the clock was set to."""
        return self._now

    def set(self, instant: datetime) -> None:
        """Move the clock to ``instant``."""
        self._now = require_aware(instant, "clock instant")

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        self._now = self._now + delta


#: UTC offsets in use on Earth run from -12:00 to +14:00; anything beyond ±14 h is a typing slip.
MAX_OFFSET = timedelta(hours=14)


def require_aware(instant: datetime, what: str = "instant") -> datetime:
    """Return ``instant`` in Beijing time; refuse a naive one or one whose offset exceeds ±14 h."""
    if not isinstance(instant, datetime):
        raise TimeLimitError(f"{what} must be a datetime, got {type(instant).__name__} {instant!r}")
    offset = instant.utcoffset() if instant.tzinfo is not None else None
    if offset is None:
        raise TimeLimitError(
            f"{what} {instant.isoformat()} is naive; give a time zone (Beijing time is +08:00)"
        )
    if abs(offset) > MAX_OFFSET:
        raise TimeLimitError(f"{what} {instant.isoformat()} has the UTC offset {offset}; offsets run from -14:00 "
                             "to +14:00 (Beijing time is +08:00)")
    try:
        return instant.astimezone(ZONE)
    except (OverflowError, ValueError):
        raise CalendarCoverageError(f"{what} {instant.isoformat()} lies outside the calendar's years "
                             f"({FIRST_YEAR} to {LAST_YEAR})") from None


def check_instant(instant: datetime, what: str = "instant") -> datetime:
    """:func:`require_aware`, and the instant must fall within the calendar's years (2004–2099, Beijing time).

    Every instant that comes from outside (typed, or sent over HTTP) passes here: a deadline, a board or
    a command cannot mean anything outside the years the working-day calendar covers.
    """
    local = require_aware(instant, what)
    if not FIRST_YEAR <= local.year <= LAST_YEAR:
        raise CalendarCoverageError(f"{what} {local.isoformat()} lies outside the calendar's years "
                             f"({FIRST_YEAR} to {LAST_YEAR})")
    return local


def check_date(day: date, what: str = "date") -> date:
    """A date within the calendar's years (2004–2099)."""
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise CalendarCoverageError(
            f"{what} {day.isoformat()} lies outside the calendar's years ({FIRST_YEAR} to {LAST_YEAR})")
    return day


def parse_instant(text: str) -> datetime:
    """Read ``2026-10-09T09:30``, ``2026-10-09 09:30+08:00`` or ``2026-10-09`` (00:00); no offset = Beijing.

    The instant must lie within the calendar's years with an offset within ±14 h (:func:`check_instant`).
    """
    try:
        # ISO 8601 as people type it: the standard library reads it at once (pendulum takes long to import).
        quick: datetime | None = datetime.fromisoformat(text.strip())
    except (ValueError, TypeError):
        quick = None  # not ISO 8601 as the standard library reads it: pendulum decides (and explains)
    if quick is not None:
        return check_instant(quick.replace(tzinfo=ZONE) if quick.tzinfo is None else quick)
    import pendulum  # the other forms pendulum reads

    try:
        parsed = pendulum.parse(text.strip(), tz=ZONE, strict=False)
        if not isinstance(parsed, datetime):
            if not isinstance(parsed, date):
                raise TimeLimitError(f"{text!r} is not an instant; write it like 2026-10-09T09:30")
            parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day, tz=ZONE)
        value = datetime.fromisoformat(parsed.isoformat())
    except (ValueError, TypeError, OverflowError, ArithmeticError, pendulum.parsing.exceptions.ParserError) as exc:
        if isinstance(exc, TimeLimitError):
            raise
        raise TimeLimitError(
            f"cannot read the instant {text!r} ({exc}); write it like 2026-10-09T09:30 (Beijing time) "
            "or 2026-10-09T01:30+00:00"
        ) from None
    return check_instant(value)


def parse_date(text: str) -> date:
    """Read ``2026-10-09``."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise TimeLimitError(f"cannot read the date {text!r}; write it like 2026-10-09") from None
    return check_date(day)
