"""预约: bookable slots per unit and procedure, the booking in the clerk's queue at its time, and 违约.

- 乡计生便民服务窗口 办事预约 (seed 004); 户籍窗口 四(三) 预约服务制度 "在群众约定的时间帮助群众办理相关事项" and
  四(四) 延时服务制度 "法定大假(假期达到七天)的最后一天以及工作日中午延时服务 … 国庆和春节长假不少于2个半天、双休日
  不少于1个半天接待群众办证" (seed 000); 出入境窗口 12 "午间和周六休息时间窗口值班制".
- Slots come from the procedure's ``service`` block (``booking_hours``, ``slot_minutes``, ``per_slot``) on
  working days of the calendar; a rest day takes bookings only once a leader opens it (延时服务).
- A booking is due at its instant: :meth:`Appointments.due` lists it for the unit's clerks from
  ``lead`` before; half an hour past its instant without an outcome it is late (逾时未办) and the unit's clerks
  of that procedure and their leader are warned once (:func:`claim_late`: the scheduler's sweep runs it each
  time, ``caseflow desk sweep-bookings`` on demand). The outcome is recorded: served (已办理),
  ``no_show`` (群众爽约) or ``missed`` (违约 on the unit's side, counted against the clerk in 考评).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, select

from caseflow.alerts import table_of
from caseflow.applicants import (
    KeyedDesk,
    legacy_fingerprint,
    legacy_held,
    mask_id_number,
    rekey_held,
    scheme_field,
)
from caseflow.calendar import ZONE
from caseflow.errors import CaseflowError, CommandError, NotFoundError, PermissionDeniedError
from caseflow.store import CaseflowBase, Person, UTCDateTime
from caseflow.unitofwork import _new_row

__all__ = ["LATE_AFTER", "LATE_SUBJECT", "OUTCOMES", "AppointmentError", "AppointmentRow", "AppointmentView",
           "Appointments", "LateBooking", "RestDayRow", "claim_late", "late_condition", "missed_columns",
           "missed_in"]

#: Outcome → label.
OUTCOMES = {"served": "已按约办理", "no_show": "群众爽约", "missed": "单位违约"}
#: How long past its instant a booking without an outcome is late (逾时未办) and warned.
LATE_AFTER = timedelta(minutes=30)
#: The subject of the late-booking warning.
LATE_SUBJECT = "预约逾时未办"


class AppointmentError(CommandError):
    """A booking refused (not a slot, slot full, in the past) or an outcome refused.

    ``zh`` is the same refusal for the applicant, in Chinese (the public booking page shows it).
    """

    def __init__(self, message: str, *, zh: str = "") -> None:
        super().__init__(message)
        self.zh = zh or "预约未成功,请检查后重试"


class AppointmentRow(CaseflowBase, table=True):
    """One booking: an absolute instant at a unit for a procedure."""

    __tablename__ = "caseflow_appointments"
    __table_args__ = (sa.Index("ix_caseflow_appointments_unit_at", "unit", "at"),
                      # An applicant's bookings, found when their fingerprint is re-keyed (caseflow.applicants).
                      sa.Index("ix_caseflow_appointments_applicant", "applicant_hash"))

    id: int | None = Field(default=None, primary_key=True)
    unit: str = Field(max_length=100)
    workflow_key: str = Field(max_length=100)
    at: datetime = Field(sa_type=UTCDateTime)
    applicant_hash: str = Field(max_length=64)
    applicant_masked: str = Field(max_length=40)
    status: str = Field(default="booked", max_length=16)  # booked, served, no_show, missed, cancelled
    booked_at: datetime = Field(sa_type=UTCDateTime)
    extra_hours: bool = False  # booked in 延时服务 hours opened on a rest day
    clerk_id: str | None = Field(default=None, max_length=64)  # who recorded the outcome
    outcome_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    warned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: applicants.SCHEME, or the old "sha256"; after warned_at, where migration 0008 added it.
    applicant_scheme: str = scheme_field()
    code_hash: str | None = Field(default=None, max_length=64, index=True, unique=True)  # SHA-256 of its code


class RestDayRow(CaseflowBase, table=True):
    """延时服务: hours a leader opened for bookings on a rest day."""

    __tablename__ = "caseflow_rest_day_hours"
    __table_args__ = (sa.UniqueConstraint("unit", "workflow_key", "day", name="uq_caseflow_rest_day_hours"),)

    id: int | None = Field(default=None, primary_key=True)
    unit: str = Field(max_length=100)
    workflow_key: str = Field(max_length=100)
    day: date
    hours: str = Field(max_length=100)  # e.g. "09:00-12:00"
    opened_by: str = Field(max_length=64)


@dataclass(frozen=True)
class AppointmentView:
    """A booking as shown (the applicant masked)."""

    id: int
    unit: str
    workflow: str
    at: datetime
    applicant: str
    status: str
    extra_hours: bool = False
    #: Set only on the result of booking (the code is stored hashed).
    query_code: str | None = field(default=None, repr=False)

    @property
    def status_label(self) -> str:
        """The status in Chinese."""
        return {"booked": "已预约", "cancelled": "已取消", **OUTCOMES}.get(self.status, self.status)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (``query_code`` only on the answer to the booking itself)."""
        result = {"id": self.id, "unit": self.unit, "workflow": self.workflow, "at": self.at.isoformat(),
                  "applicant": self.applicant, "status": self.status, "extra_hours": self.extra_hours}
        if self.query_code:
            result["query_code"] = self.query_code
        return result


@dataclass(frozen=True)
class LateBooking:
    """A booking found late and marked warned by :func:`claim_late`: who must hear of it, and what."""

    id: int
    unit: str
    workflow: str
    at: datetime
    recipients: tuple[str, ...]
    text: str


def _recipients(session: Session, unit: str, roles: frozenset[str] | None) -> tuple[str, ...]:
    """The unit's staff who serve the procedure (a role of it) and their leaders within the unit (the unit's
    leader, not the county's); everyone of the unit if no one holds a role of it."""
    people = session.exec(select(Person).where(Person.unit == unit).order_by(Person.id)).all()
    in_unit = {p.id for p in people}
    serving = [p for p in people if roles is None or p.role_set & roles] or list(people)
    result: list[str] = []
    for person in serving:
        for pid in (person.id, person.leader_id):
            if pid and pid in in_unit and pid not in result:
                result.append(pid)
    return tuple(result)


def late_condition(before: datetime | sa.BindParameter[Any]) -> tuple[sa.ColumnElement[bool], ...]:
    """The bookings :func:`claim_late` claims: booked for ``before`` (its instant less the grace) or earlier,
    no outcome, not warned yet."""
    c = table_of(AppointmentRow).c
    return c.status == "booked", c.at <= before, c.warned_at.is_(None)


def claim_late(session: Session, now: datetime, *, roles_of: Callable[[str], frozenset[str] | None],
               grace: timedelta = LATE_AFTER) -> list[LateBooking]:
    """Mark every booking ``grace`` past its instant with no outcome as warned, and return them (once each).

    One ``UPDATE … WHERE warned_at IS NULL … RETURNING``: of two schedulers sweeping one PostgreSQL database
    at once, the second waits for the first's row locks, re-reads ``warned_at`` and claims nothing; a
    rolled-back sweep leaves the booking to the next one. The caller queues the warnings in ``session``'s
    transaction, so a warning exists exactly when its booking is marked. ``roles_of(workflow)`` gives the
    procedure's roles (None when unknown: then the whole unit is told).
    """
    table = table_of(AppointmentRow)
    c = table.c
    claimed = session.execute(
        sa.update(table).where(*late_condition(now - grace))
        .values(warned_at=now).returning(c.id, c.unit, c.workflow_key, c.at, c.applicant_masked)).all()
    result: list[LateBooking] = []
    roles: dict[str, frozenset[str] | None] = {}
    for row_id, unit, workflow, at, masked in sorted(claimed, key=lambda r: (r[3], r[0])):
        if workflow not in roles:
            roles[workflow] = roles_of(workflow)
        text = (f"预约 {row_id}({workflow},{at.astimezone(ZONE):%m-%d %H:%M},申请人 {masked})已过约定时间仍未办理:"
                "请办理,或登记群众爽约/单位违约")
        result.append(LateBooking(id=row_id, unit=unit, workflow=workflow, at=at,
                                  recipients=_recipients(session, unit, roles[workflow]), text=text))
    return result


_BOOKINGS, _PEOPLE = table_of(AppointmentRow), table_of(Person)
_UNIT_KNOWN = sa.exists().where(_PEOPLE.c.unit == sa.bindparam("unit"))
_IN_SLOT = (_BOOKINGS.c.unit == sa.bindparam("unit"), _BOOKINGS.c.workflow_key == sa.bindparam("workflow"),
            _BOOKINGS.c.status != "cancelled")
#: A day's places taken, slot by slot, with whether the unit exists (a row with a NULL slot when none is taken).
_TAKEN = (sa.select(_UNIT_KNOWN, _BOOKINGS.c.at, sa.func.count(_BOOKINGS.c.id))
          .select_from(sa.select(sa.literal(1).label("one")).subquery("head"))
          .outerjoin(_BOOKINGS, sa.and_(*_IN_SLOT, _BOOKINGS.c.at >= sa.bindparam("start"),
                                        _BOOKINGS.c.at < sa.bindparam("end")))
          .group_by(_BOOKINGS.c.at))
#: A booking's one read under the slot's lock: whether the unit exists, the places taken in the slot and
#: whether the applicant has rows under the unkeyed hash.
_BOOK_READ = sa.select(_UNIT_KNOWN,
                       sa.select(sa.func.count()).select_from(_BOOKINGS)
                       .where(*_IN_SLOT, _BOOKINGS.c.at == sa.bindparam("at")).scalar_subquery(),
                       *legacy_held())
_RECORD_READ = (sa.select(_BOOKINGS.c.unit, _BOOKINGS.c.status, _BOOKINGS.c.at, Person)
                .select_from(_BOOKINGS).outerjoin(Person, Person.id == sa.bindparam("actor"))  # type: ignore[arg-type]
                .where(_BOOKINGS.c.id == sa.bindparam("booking")))
_UPDATE_BOOKING = _BOOKINGS.update().where(_BOOKINGS.c.id == sa.bindparam("w_id")).returning(*_BOOKINGS.columns)


def _view(row: Any) -> AppointmentView:
    assert row.id is not None
    return AppointmentView(id=row.id, unit=row.unit, workflow=row.workflow_key, at=row.at,
                           applicant=row.applicant_masked, status=row.status, extra_hours=row.extra_hours)


def _hours(text: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(p.strip()) for p in text.split("-"))
    except ValueError:
        raise AppointmentError(f"hours must look like 09:00-12:00, got {text!r}") from None
    if start >= end:
        raise AppointmentError(f"hours {text!r} end before they start")
    return start, end


def _check_year(day: date) -> None:
    if not 2000 <= day.year <= 2100:
        raise AppointmentError(f"{day} is not a day one can book (years 2000–2100)", zh="该日期不可预约")


class Appointments(KeyedDesk):
    """Slots, bookings, the queue at the booked instant, the late warning and the outcome."""

    def _periods(self, s: Session, unit: str, workflow: str, day: date) -> tuple[list[tuple[time, time]], bool]:
        service = self.engine.registry.latest(workflow).service
        if self.engine.calendar.is_workday(day):
            return [_hours(h) for h in service.booking_hours], False
        opened = s.exec(select(RestDayRow).where(RestDayRow.unit == unit, RestDayRow.workflow_key == workflow,
                                                 RestDayRow.day == day)).first()
        return ([_hours(opened.hours)] if opened else []), True

    def slots(self, unit: str, workflow: str, day: date) -> list[dict[str, Any]]:
        """The day's slots with how many places are left (none on a rest day not opened)."""
        self.engine.registry.latest(workflow)  # an unknown procedure is refused first
        _check_year(day)
        with self.engine.store.lookup() as s:
            start_of_day = datetime.combine(day, time(0), tzinfo=ZONE)
            rows = s.execute(_TAKEN, {"unit": unit, "workflow": workflow, "start": start_of_day,
                                      "end": start_of_day + timedelta(days=1)}).all()
            if not rows[0][0]:
                raise AppointmentError(f"no unit is called {unit!r}", zh="没有该办理单位,请从页面上选择")
            periods, extra = self._periods(s, unit, workflow, day)
        taken = {at: int(n) for _known, at, n in rows if at is not None}
        return self._free(workflow, day, periods, extra, taken)

    def _free(self, workflow: str, day: date, periods: list[tuple[time, time]], extra: bool,
              taken: dict[datetime, int]) -> list[dict[str, Any]]:
        service = self.engine.registry.latest(workflow).service
        result = []
        step = timedelta(minutes=service.slot_minutes)
        for start, end in periods:
            at = datetime.combine(day, start, tzinfo=ZONE)
            while at + step <= datetime.combine(day, end, tzinfo=ZONE):
                result.append({"at": at, "free": service.per_slot - taken.get(at, 0), "extra_hours": extra})
                at += step
        return result

    def open_rest_day(self, unit: str, workflow: str, day: date, hours: str, *, actor: str) -> None:
        """延时服务 (户籍 四(四)): a leader opens hours on a rest day for bookings."""
        _hours(hours)
        if self.engine.calendar.is_workday(day):
            raise AppointmentError(f"{day} is a working day: its slots are open already")
        with self.engine.store.session(write=True) as s:
            person = s.get(Person, actor)
            leads = person is not None and (person.admin or s.exec(
                select(Person.id).where(Person.leader_id == actor).limit(1)).first() is not None)
            if not leads:
                raise PermissionDeniedError(f"{actor!r} leads no one: only a leader opens 延时服务 hours")
            s.add(RestDayRow(unit=unit, workflow_key=workflow, day=day, hours=hours, opened_by=actor))

    def units(self, workflow: str) -> list[str]:
        """The units that take bookings for ``workflow``: those with someone holding a role of it."""
        roles = set(self.engine.registry.latest(workflow).roles)
        with self.engine.store.session() as s:
            rows = s.exec(select(Person.unit, Person.roles)).all()
        return sorted({unit for unit, held in rows if roles & set(held.split())})

    def bookable_days(self, unit: str, workflow: str, *, start: date | None = None, count: int = 7,
                      horizon: int = 30) -> list[tuple[date, list[dict[str, Any]]]]:
        """The next ``count`` days (within ``horizon`` days from ``start``, default today) with slots still ahead.

        Each day with its slots as :meth:`slots` gives them, those already begun left out.
        """
        now = self.engine.clock.now()
        day = start or now.astimezone(ZONE).date()
        result: list[tuple[date, list[dict[str, Any]]]] = []
        for _ in range(horizon):
            ahead = [x for x in self.slots(unit, workflow, day) if x["at"] > now]
            if ahead:
                result.append((day, ahead))
                if len(result) >= count:
                    break
            day += timedelta(days=1)
        return result

    def book(self, unit: str, workflow: str, at: datetime, *, applicant_id: str) -> AppointmentView:
        """Book the slot starting at ``at``; refused unless it is an open slot with a free place, in the future.

        The answer carries the booking's query code (stored hashed), for the progress page.
        """
        from caseflow.desk import code_hash, insert_row, new_query_code

        now = self.engine.clock.now()
        if at.tzinfo is None:
            raise AppointmentError("give the booked instant with its zone (e.g. 2026-11-03T09:00+08:00)",
                                   zh="预约时间不完整,请从页面上选择时段")
        _check_year(at.date())
        local = at.astimezone(ZONE)
        if at <= now:
            raise AppointmentError(f"{local:%Y-%m-%d %H:%M} has passed; book a later slot",
                                   zh=f"{local:%m月%d日 %H:%M} 的时段已过,请选择以后的时段")
        self.engine.registry.latest(workflow)  # an unknown procedure is refused before the database is asked
        malformed: CaseflowError | None = None
        try:
            old = legacy_fingerprint(applicant_id)
        except CaseflowError as exc:  # a malformed ID number is refused once the slot is found bookable
            old, malformed = "", exc
        for _attempt in range(3):
            code = new_query_code()
            try:
                with self.engine.store.session(write=True) as s:
                    if s.get_bind().dialect.name == "postgresql":
                        # Bookings of one slot queue here, so the count below sees every committed one
                        # (SQLite's BEGIN IMMEDIATE already serialises writers).
                        s.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:slot))"),
                                  {"slot": f"caseflow-booking|{unit}|{workflow}|{at.isoformat()}"})
                    known, taken, *held = s.execute(_BOOK_READ, {
                        "unit": unit, "workflow": workflow, "at": at, "old": old}).one()
                    if not known:
                        raise AppointmentError(f"no unit is called {unit!r}", zh="没有该办理单位,请从页面上选择")
                    periods, extra = self._periods(s, unit, workflow, local.date())
                    slot = next((x for x in self._free(workflow, local.date(), periods, extra, {at: int(taken)})
                                 if x["at"] == at), None)
                    if slot is None:
                        raise AppointmentError(
                            f"{local:%Y-%m-%d %H:%M} is not a bookable slot of {workflow} at "
                            f"{unit} (working days within the booking hours, or 延时服务 hours opened)",
                            zh=f"{local:%m月%d日 %H:%M} 不是可预约的时段:工作日的预约时段,或单位已开放延时服务的"
                               "休息日方可预约")
                    if slot["free"] <= 0:
                        raise AppointmentError(f"the slot {local:%Y-%m-%d %H:%M} is full; choose another",
                                               zh=f"{local:%m月%d日 %H:%M} 的时段已约满,请选择其他时段")
                    if malformed is not None:
                        raise malformed
                    if any(held):
                        rekey_held(s, held, applicant_id, self.key)
                    row: AppointmentRow = _new_row(
                        AppointmentRow, id=None, unit=unit, workflow_key=workflow, at=at,
                        applicant_hash=self.key.fingerprint(applicant_id),
                        applicant_masked=mask_id_number(applicant_id),
                        booked_at=now, extra_hours=bool(slot["extra_hours"]), code_hash=code_hash(code))
                    insert_row(s, _BOOKINGS, row)
                    view = _view(row)
            except sa.exc.IntegrityError:
                continue  # the drawn code exists already (1 in 8·10^17): draw again; nothing was written
            return replace(view, query_code=code)
        raise AppointmentError("no free query code could be drawn; try again", zh="预约未成功,请稍后重试")

    def due(self, unit: str, *, now: datetime | None = None, lead: timedelta = timedelta(minutes=30)
            ) -> list[AppointmentView]:
        """Bookings the unit's clerks must see now: from ``lead`` before their instant until an outcome is recorded."""
        now = now or self.engine.clock.now()
        with self.engine.store.session() as s:
            rows = s.exec(select(AppointmentRow).where(AppointmentRow.unit == unit,
                                                       AppointmentRow.status == "booked",
                                                       AppointmentRow.at <= now + lead)
                          .order_by(AppointmentRow.at))  # type: ignore[arg-type]
            return [_view(r) for r in rows]

    def roles_of(self, workflow: str) -> frozenset[str] | None:
        """The roles of a procedure (None when the registry no longer has it)."""
        return frozenset(self.engine.registry.latest(workflow).roles) if workflow in self.engine.registry else None

    def sweep(self, *, now: datetime | None = None, grace: timedelta = LATE_AFTER) -> list[int]:
        """Warn (once) the unit's clerks and their leader of bookings ``grace`` past their instant with no outcome.

        The scheduler's sweep does the same each time it runs (queuing on the outbox); this is the on-demand
        form (``caseflow desk sweep-bookings``), sending through ``notify`` after the marks are committed.
        """
        now = now or self.engine.clock.now()
        with self.engine.store.session(write=True) as s:
            late = claim_late(s, now, roles_of=self.roles_of, grace=grace)
        if self.notify is not None:
            for booking in late:
                for who in booking.recipients:
                    self.notify(who, LATE_SUBJECT, booking.text)
        return [b.id for b in late]

    def record(self, appointment_id: int, outcome: str, *, actor: str) -> AppointmentView:
        """Record the outcome: served, no_show (群众爽约) or missed (单位违约)."""
        if outcome not in OUTCOMES:
            raise AppointmentError(f"unknown outcome {outcome!r}; give one of {', '.join(OUTCOMES)}")
        now = self.engine.clock.now()
        with self.engine.store.session(write=True) as s:
            found = s.execute(_RECORD_READ, {"booking": appointment_id, "actor": actor}).first()
            if found is None:
                raise NotFoundError(f"no appointment has the id {appointment_id}")
            unit, status, at, person = found
            if person is None or (not person.admin and person.unit != unit):
                raise PermissionDeniedError(f"{actor!r} is not of {unit}")
            if status != "booked":
                raise AppointmentError(f"appointment {appointment_id} is already {status}")
            if outcome == "no_show" and now < at:
                raise AppointmentError("a no-show can be recorded only after the booked instant")
            written = s.execute(_UPDATE_BOOKING, {"w_id": appointment_id, "status": outcome, "clerk_id": actor,
                                                  "outcome_at": now}).one()
            return _view(written)

def missed_columns() -> tuple[Any, Any]:
    """Who answers for a booking missed on the unit's side (its clerk, '' when none was named) and its unit."""
    c = table_of(AppointmentRow).c
    return sa.func.coalesce(c.clerk_id, ""), c.unit


def missed_in(start: Any, end: Any) -> sa.Select[Any]:
    """The bookings missed on the unit's side whose instant lies in [start, end) (考评), columns to be added."""
    c = table_of(AppointmentRow).c
    return sa.select().select_from(table_of(AppointmentRow)).where(c.status == "missed", c.at >= start,
                                                                     c.at < end)
