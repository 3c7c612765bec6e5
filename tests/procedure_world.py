"""A small world for the procedure scenario tests: one store, a simulated clock, the engine and the scheduler.

Each scenario drives a shipped procedure through :class:`~caseflow.engine.Engine` on the simulated clock and
runs the scheduler's sweep at chosen instants (as tests/test_scheduler.py does), then reads the alerts the
sweep raised: which timer, which level, to whom, and the instant the level was due.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from caseflow.alerts import ALERTS, TIMERS
from caseflow.audit import verify
from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.config import NotifyConfig
from caseflow.engine import Engine
from caseflow.scheduler import Scheduler
from caseflow.store import Store
from caseflow.views import CaseView

Alert = tuple[str, str, str, datetime]  # (timer, level, to person, instant the level was due)


def bj(*parts: int) -> datetime:
    """An aware Beijing-time instant."""
    return datetime(*parts, tzinfo=ZONE)  # type: ignore[misc]


class Recorder:
    """A notifier keeping what it is given."""

    name = "rec"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def send(self, *, to: str, subject: str, body: str) -> None:
        with self.lock:
            self.sent.append((to, subject, body))


class World:
    """The engine and the scheduler on one store and one simulated clock."""

    def __init__(self, db_url: str, start: datetime,
                 people: Iterable[tuple[str, str, str, tuple[str, ...], str | None]]) -> None:
        self.store = Store(db_url)
        self.clock = FixedClock(start)
        self.engine = Engine(self.store, clock=self.clock)
        for pid, name, unit, roles, _leader in people:  # leaders first exist, then links
            self.engine.add_person(pid, name=name, unit=unit, roles=roles, replace=True)
        for pid, name, unit, roles, leader in people:
            self.engine.add_person(pid, name=name, unit=unit, roles=roles, leader=leader, replace=True)
        self.recorder = Recorder()
        config = NotifyConfig.from_dict({"channels": {"rec": {"url": "log://"}},
                                         "scheduler": {"default_channel": "rec"}})
        self.scheduler = Scheduler(self.store, config, clock=self.clock, notifiers={"rec": self.recorder})

    def at(self, *parts: int) -> datetime:
        """Move the clock to ``bj(*parts)`` (never backwards) and return that instant."""
        when = bj(*parts)
        self.clock.set(when)
        return when

    def sweep(self, *parts: int) -> list[Alert]:
        """Run the scheduler's sweep at ``bj(*parts)``; the alerts it raised, in order."""
        when = self.at(*parts)
        self.scheduler.sweep(when)
        return self.alerts(raised_at=when)

    def alerts(self, case_id: int | None = None, *, raised_at: datetime | None = None) -> list[Alert]:
        """Alerts raised so far (for one case, or at one sweep instant), in the order raised."""
        query = (sa.select(TIMERS.c.name, ALERTS.c.level, ALERTS.c.to_person, ALERTS.c.level_at)
                 .join_from(ALERTS, TIMERS, ALERTS.c.timer_id == TIMERS.c.id).order_by(ALERTS.c.id))
        if case_id is not None:
            query = query.where(ALERTS.c.case_id == case_id)
        if raised_at is not None:
            query = query.where(ALERTS.c.raised_at == raised_at)
        with self.store.session() as s:
            return [(name, level, to, at.astimezone(ZONE)) for name, level, to, at in s.execute(query).all()]

    def case(self, case_id: int) -> CaseView:
        """The case as it stands."""
        return self.engine.get(case_id)

    def timer(self, case_id: int, name: str) -> Any:
        """The latest round of timer ``name`` of the case."""
        rounds = [t for t in self.engine.get(case_id).timers if t.name == name]
        assert rounds, f"case {case_id} has no timer {name!r}"
        return rounds[-1]

    def audit(self) -> list[str]:
        """Problems the audit finds: every case's chain verifies and replays to what the tables hold."""
        return [str(problem) for problem in verify(self.engine)]

    def close(self) -> None:
        self.store.dispose()


def audited_world(db_url: str, start: datetime,
                  people: Iterable[tuple[str, str, str, tuple[str, ...], str | None]]) -> Iterator[World]:
    """A scenario's world (``yield from`` it in a fixture); afterwards every case's chain must replay to
    exactly what the tables hold."""
    world = World(db_url, start, people)
    yield world
    assert world.audit() == []
    world.close()
