"""The window in ``caseflow demo``: applicants at the 户籍 and 出入境 windows, notices, bookings, ratings.

Each working day some applicants come to 城关派出所's 户籍 window (hukou_transfer) and to the 政务服务中心's
出入境 window (exit_entry_permit). Most bring everything and are served on the spot or accepted; the rest get
a 一次告知单 and come back a few days later — a few still incomplete, so the third-visit warning fires.
Finished matters are rated; a bad rating opens a follow-up the leader settles, sometimes late enough for
the scheduler to raise it as overdue. Seeded by the demo's random generator, so the story repeats.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from caseflow.applicants import ApplicantKey
from caseflow.appointments import Appointments
from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.desk import Desk
from caseflow.engine import Engine
from caseflow.errors import CaseflowError
from caseflow.ratings import Ratings

__all__ = ["WindowStory"]

#: (workflow, clerks, every material key, a conditional key some applicants need)
WINDOWS = (
    ("hukou_transfer", ("zhang", "liu"), ("id_card", "household_register", "transfer_permit"), "marriage_cert"),
    ("exit_entry_permit", ("ma", "lin"), ("id_card", "photo"), "guardian_consent"),
)
#: Rating levels and their weights (most applicants are satisfied).
LEVELS = ((5, 50), (4, 28), (3, 12), (2, 7), (1, 3))


@dataclass
class _Return:
    workflow: str
    applicant: str
    applies: tuple[str, ...]
    complete: bool
    missing: tuple[str, ...] = ()  # what the last 告知单 listed: an incomplete return lacks one of these


@dataclass
class WindowStory:
    """Drives the desk and ratings once per simulated day (called by the demo at 17:30)."""

    engine: Engine
    clock: FixedClock
    rng: random.Random
    returns: dict[date, list[_Return]] = field(default_factory=dict)
    to_finish: dict[date, list[tuple[int, str]]] = field(default_factory=dict)
    to_settle: dict[date, list[tuple[int, str]]] = field(default_factory=dict)
    refused: int = 0
    applicants: int = 0

    booked: list[tuple[int, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The demo's own site secret (a throwaway database needs no configured one; applicants.py).
        key = ApplicantKey(secrets.token_bytes(32), source="caseflow demo")
        self.desk = Desk(self.engine, key=key)
        self.ratings = Ratings(self.engine)
        self.appointments = Appointments(self.engine, key=key)

    def _tick(self) -> None:
        self.clock.set(self.clock.now() + timedelta(minutes=1))

    def day(self, day: date, working: bool) -> None:
        """One day at the windows: new applicants, returns, finished matters, ratings, follow-ups."""
        self.clock.set(max(self.clock.now(), datetime.combine(day, time(17, 30), tzinfo=ZONE)))
        try:
            if working:
                for _ in range(self.rng.choice((1, 2, 3))):
                    workflow = self.rng.choice(("hukou_transfer", "hukou_transfer", "exit_entry_permit"))
                    self.applicants += 1
                    applicant = f"3204{self.rng.randrange(10**12, 10**13)}{self.rng.choice('0123456789X')}"
                    applies = (self._window(workflow)[3],) if self.rng.random() < 0.2 else ()
                    self._visit(day, _Return(workflow, applicant, applies, self.rng.random() < 0.65))
                for ret in self.returns.pop(day, []):
                    self._visit(day, ret)
            self._bookings(day, working)
            for case_id, actor in self.to_finish.pop(day, []):
                self._finish(case_id, actor)
            for rating_id, leader in self.to_settle.pop(day, []):
                self._tick()
                outcome = self.rng.choice(("整改", "整改", "整改", "解释说明", "申诉复核"))
                self.ratings.settle(rating_id, outcome, actor=leader, note="已电话回访")
        except CaseflowError:
            self.refused += 1

    def _bookings(self, day: date, working: bool) -> None:
        """Today's bookings get their outcome; a working day takes one or two bookings for a later day."""
        for booking_id, at in [b for b in self.booked if b[1].astimezone(ZONE).date() == day]:
            self.booked.remove((booking_id, at))
            outcome = self.rng.choices(("served", "no_show", "missed"), weights=(85, 11, 4))[0]
            self._tick()
            self.appointments.record(booking_id, outcome, actor=self.rng.choice(("zhang", "liu")))
        if not working:
            return
        for _ in range(self.rng.choice((0, 1, 2))):
            later = day + timedelta(days=self.rng.randint(1, 4))
            free = [x for x in self.appointments.slots("城关派出所", "hukou_transfer", later) if x["free"] > 0]
            if free:
                at = self.rng.choice(free)["at"]
                applicant = f"3204{self.rng.randrange(10**12, 10**13)}{self.rng.choice('0123456789')}"
                view = self.appointments.book("城关派出所", "hukou_transfer", at, applicant_id=applicant)
                self.booked.append((view.id, at))

    @staticmethod
    def _window(workflow: str) -> tuple[str, tuple[str, ...], tuple[str, ...], str]:
        return next(w for w in WINDOWS if w[0] == workflow)

    def _later(self, day: date, low: int, high: int) -> date:
        return day + timedelta(days=self.rng.randint(low, high))

    def _visit(self, day: date, ret: _Return) -> None:
        _key, clerks, materials, _conditional = self._window(ret.workflow)
        clerk = self.rng.choice(clerks)
        brought = list(materials) + list(ret.applies)
        if not ret.complete:
            brought.remove(self.rng.choice([m for m in brought if m in ret.missing] or brought))
        self._tick()
        visit = self.desk.visit(ret.workflow, applicant_id=ret.applicant, actor=clerk, brought=brought,
                                applies=ret.applies)
        self._tick()
        if visit.missing:
            self.desk.issue_notice(visit.id, actor=clerk)
            again = _Return(ret.workflow, ret.applicant, ret.applies, self.rng.random() < 0.7,
                            tuple(m.key for m in visit.missing))
            self.returns.setdefault(self._later(day, 1, 6), []).append(again)
            return
        if ret.workflow == "hukou_transfer" or self.rng.random() < 0.3:
            receipt = self.desk.handle_on_the_spot(visit.id, actor=clerk)
            self._rate(day, receipt.case.id, clerk)
        else:
            receipt = self.desk.accept(visit.id, actor=clerk)
            self.to_finish.setdefault(self._later(day, 2, 5), []).append((receipt.case.id, clerk))

    def _finish(self, case_id: int, clerk: str) -> None:
        self._tick()
        self.engine.fire(case_id, "issue", actor=clerk)
        self._tick()
        self.engine.fire(case_id, "collect", actor=clerk)
        self._rate(self.clock.now().astimezone(ZONE).date(), case_id, clerk)

    def _rate(self, day: date, case_id: int, clerk: str) -> None:
        if self.rng.random() > 0.7:
            return
        level = self.rng.choices([lv for lv, _ in LEVELS], weights=[w for _, w in LEVELS])[0]
        self._tick()
        view = self.ratings.rate(case_id=case_id, level=level, actor=clerk)
        if view.followup_case_id is not None:
            case = self.engine.get(view.followup_case_id)
            # Most follow-ups within the 5 working days; one in four late enough to be escalated.
            days = self.rng.randint(1, 4) if self.rng.random() < 0.75 else self.rng.randint(9, 14)
            self.to_settle.setdefault(day + timedelta(days=days), []).append((view.id, case.responsible))
