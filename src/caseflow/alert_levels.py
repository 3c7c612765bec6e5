"""Alert levels: which a sweep raises for a timer now, and when the next one falls due.

A timer passes the levels in order (``warning`` at ``warn_at``, ``overdue`` at ``due_at``, ``escalated`` at
``escalate_at``); a catch-up after downtime raises every level passed at once (the scheduler notifies only
the highest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from caseflow.alerts import ALERT_LEVELS

__all__ = ["LEVEL_ZH", "LevelPlan", "plan_levels"]

#: Each level as notifications name it.
LEVEL_ZH = {"warning": "临期预警", "overdue": "已超期", "escalated": "超期督办"}


@dataclass(frozen=True)
class LevelPlan:
    """What a sweep does with one timer: the levels to raise now, the new level and the next instant."""

    raise_now: tuple[tuple[str, datetime], ...]
    level: str | None
    next_at: datetime | None


def plan_levels(*, now: datetime, due_at: datetime | None, warn_at: datetime | None, alert_level: str | None,
                escalate_at: datetime | None) -> LevelPlan:
    """Every level not yet raised whose instant has passed (all at once after downtime), and what is next."""
    if due_at is None:
        return LevelPlan((), alert_level, None)
    instants: dict[str, datetime | None] = {
        "warning": warn_at if warn_at is not None and warn_at < due_at else None,
        "overdue": due_at,
        "escalated": escalate_at,
    }
    done = ALERT_LEVELS.index(alert_level) + 1 if alert_level in ALERT_LEVELS else 0
    raise_now: list[tuple[str, datetime]] = []
    level = alert_level
    next_at: datetime | None = None
    for name in ALERT_LEVELS[done:]:
        at = instants[name]
        if at is None:
            continue
        if at <= now:
            raise_now.append((name, at))
            level = name
        else:
            next_at = at
            break
    return LevelPlan(tuple(raise_now), level, next_at)
