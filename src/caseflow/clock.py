"""Clocks and the reading of instants typed by people.

Every instant caseflow handles is time-zone aware. People type Beijing wall-clock time, so text
without an offset is read in Asia/Shanghai — never in UTC, pendulum's default (DESIGN.md trap).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from caseflow.calendar import ZONE
from caseflow.errors import TimeLimitError

__all__ = ["FixedClock", "SystemClock", "parse_date", "parse_instant", "require_aware"]


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


def require_aware(instant: datetime, what: str = "instant") -> datetime:
    """Return ``instant`` in Beijing time; refuse a naive one."""
    if not isinstance(instant, datetime):
        raise TimeLimitError(f"{what} must be a datetime, got {type(instant).__name__} {instant!r}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise TimeLimitError(
            f"{what} {instant.isoformat()} is naive; give a time zone (Beijing time is +08:00)"
        )
    return instant.astimezone(ZONE)


def parse_instant(text: str) -> datetime:
    """Read ``2026-10-09T09:30``, ``2026-10-09 09:30+08:00`` or ``2026-10-09`` (00:00); no offset = Beijing."""
    try:
        # ISO 8601 as people type it: the standard library reads it at once (pendulum takes long to import).
        quick = datetime.fromisoformat(text.strip())
        return (quick.replace(tzinfo=ZONE) if quick.tzinfo is None else quick).astimezone(ZONE)
    except (ValueError, TypeError, OverflowError):
        pass  # not ISO 8601 as the standard library reads it, or out of range: pendulum decides (and explains)
    import pendulum  # the other forms pendulum reads

    try:
        parsed = pendulum.parse(text.strip(), tz=ZONE, strict=False)
    except (ValueError, TypeError, OverflowError, ArithmeticError, pendulum.parsing.exceptions.ParserError) as exc:
        raise TimeLimitError(
            f"cannot read the instant {text!r} ({exc}); write it like 2026-10-09T09:30 (Beijing time) "
            "or 2026-10-09T01:30+00:00"
        ) from None
    if not isinstance(parsed, datetime):
        if isinstance(parsed, date):
            parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day, tz=ZONE)
        else:
            raise TimeLimitError(f"{text!r} is not an instant; write it like 2026-10-09T09:30")
    return datetime.fromisoformat(parsed.isoformat()).astimezone(ZONE)


def parse_date(text: str) -> date:
    """Read ``2026-10-09``."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise TimeLimitError(f"cannot read the date {text!r}; write it like 2026-10-09") from None
