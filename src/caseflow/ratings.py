"""好差评: the applicant's rating of a finished case or visit, and the follow-up (回访整改) of a bad one.

- 交巡警支队窗口规范 第二十二条 (seed 000): "每位群众业务办理完结后，提示其对本次服务进行满意度评价，窗口民警和工作
  人员不得对评价结果弄虚作假" — a rating is given once the case (or the visit) is finished, by the applicant with
  the query code on the public page, or by the clerk recording the window's 评价器; never changed afterwards.
- 信访工作条例 第二十一条: matters on line "方便信访人查询、评价信访事项办理情况".
- Five levels (非常满意 / 满意 / 基本满意 / 不满意 / 非常不满意), one rating per case (一次一评); a late rating
  is accepted for ``service.rating_window_days`` calendar days after the case or visit ended.
- A bad rating (不满意 / 非常不满意) opens a ``service_followup`` case held by the unit leader: its timer is
  alerted, escalated and counted like any other (workflows/service_followup.yaml), and its outcome is one
  of 整改 / 解释说明 / 申诉复核 (triggers rectify / explain / review).

The person a rating concerns is the case's responsible person (首问负责) — or the clerk of a visit rated
on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, select

from caseflow.alerts import table_of
from caseflow.desk import QueryCodeRow, VisitRow, code_hash, insert_row
from caseflow.engine import Engine
from caseflow.errors import CommandError, NotFoundError, PermissionDeniedError
from caseflow.store import CaseflowBase, CaseRow, Person, UTCDateTime
from caseflow.unitofwork import _new_row
from caseflow.views import CaseView

__all__ = [
    "BAD_LEVELS",
    "FOLLOWUP_OUTCOMES",
    "FOLLOWUP_WORKFLOW",
    "LEVELS",
    "RatingError",
    "RatingRow",
    "RatingView",
    "Ratings",
    "parse_level",
]

#: The five levels, best first (政务服务"好差评" 五级).
LEVELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
#: 差评: the levels that open a follow-up.
BAD_LEVELS = frozenset({1, 2})
#: The follow-up procedure and its outcomes: trigger → label.
FOLLOWUP_WORKFLOW = "service_followup"
FOLLOWUP_OUTCOMES = {"rectify": "整改", "explain": "解释说明", "review": "申诉复核"}
_OUTCOME_BY_LABEL = {label: trigger for trigger, label in FOLLOWUP_OUTCOMES.items()}


class RatingError(CommandError):
    """A rating refused (not finished yet, already rated, too late, unknown level)."""


class RatingRow(CaseflowBase, table=True):
    """One rating of one case (or of a visit that opened no case)."""

    __tablename__ = "caseflow_ratings"
    __table_args__ = (sa.Index("ix_caseflow_ratings_unit_at", "unit", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = Field(default=None, foreign_key="caseflow_cases.id", unique=True)
    visit_id: int | None = Field(default=None, foreign_key="caseflow_visits.id", unique=True)
    workflow_key: str = Field(max_length=100)
    unit: str = Field(max_length=100)
    person_id: str = Field(max_length=64)  # whom the rating concerns
    level: int
    comment: str = ""
    by: str = Field(max_length=16)  # applicant, clerk
    recorded_by: str | None = Field(default=None, max_length=64)  # the clerk who keyed in the 评价器's result
    at: datetime = Field(sa_type=UTCDateTime)
    followup_case_id: int | None = Field(default=None, foreign_key="caseflow_cases.id")


def parse_level(value: int | str) -> int:
    """A level from its number (1–5) or its label (满意 …); refused otherwise, naming the five."""
    if isinstance(value, int) and not isinstance(value, bool) and value in LEVELS:
        return value
    text = str(value).strip()
    if text.isdigit() and int(text) in LEVELS:
        return int(text)
    for number, label in LEVELS.items():
        if text == label:
            return number
    choices = ", ".join(f"{n}={label}" for n, label in LEVELS.items())
    raise RatingError(f"unknown rating {value!r}; give one of {choices}")


@dataclass(frozen=True)
class RatingView:
    """A rating as shown."""

    id: int
    level: int
    case_id: int | None
    visit_id: int | None
    workflow: str
    unit: str
    person: str
    by: str
    at: datetime
    comment: str = ""
    followup_case_id: int | None = None

    @property
    def label(self) -> str:
        """The level's label (非常满意 …)."""
        return LEVELS[self.level]

    @property
    def bad(self) -> bool:
        """True for 不满意 / 非常不满意."""
        return self.level in BAD_LEVELS

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape."""
        return {"id": self.id, "level": self.level, "label": self.label, "case_id": self.case_id,
                "visit_id": self.visit_id, "workflow": self.workflow, "unit": self.unit, "person": self.person,
                "by": self.by, "at": self.at.isoformat(), "comment": self.comment,
                "followup_case_id": self.followup_case_id}


_RATINGS = table_of(RatingRow)
_CASE_COLUMNS = ("closed_at", "workflow_key", "unit", "responsible_id", "workflow_version", "state")
_ACTOR, _RATED, _LEAD = (sa.orm.aliased(Person, name=name) for name in ("actor", "rated", "lead"))
#: A case's rating reads in one statement: the case, the clerk recording it, an earlier rating, and whom a
#: bad rating concerns with their leader (the follow-up goes to the leader).
_CASE_READ = (sa.select(*(CaseRow.__table__.c[c] for c in _CASE_COLUMNS),  # type: ignore[attr-defined]
                        _ACTOR, _RATINGS.c.level, _RATINGS.c.at, _RATED, _LEAD)
              .select_from(CaseRow)
              .outerjoin(_ACTOR, _ACTOR.id == sa.bindparam("actor"))  # type: ignore[arg-type]
              .outerjoin(_RATINGS, _RATINGS.c.case_id == CaseRow.id)
              .outerjoin(_RATED, _RATED.id == CaseRow.responsible_id)  # type: ignore[arg-type]
              .outerjoin(_LEAD, _LEAD.id == _RATED.leader_id)  # type: ignore[arg-type]
              .where(CaseRow.id == sa.bindparam("case_id")))  # type: ignore[arg-type]
_SET_FOLLOWUP = _RATINGS.update().where(_RATINGS.c.id == sa.bindparam("w_id"))


def _view(row: RatingRow) -> RatingView:
    assert row.id is not None
    return RatingView(id=row.id, level=row.level, case_id=row.case_id, visit_id=row.visit_id,
                      workflow=row.workflow_key, unit=row.unit, person=row.person_id, by=row.by, at=row.at,
                      comment=row.comment, followup_case_id=row.followup_case_id)


class Ratings:
    """Record ratings and settle follow-ups over an :class:`~caseflow.engine.Engine`."""

    def __init__(self, engine: Engine, *, notify: Callable[[str, str, str], None] | None = None) -> None:
        self.engine = engine
        self.notify = notify

    def rate_by_code(self, code: str, level: int | str, *, comment: str = "",
                     at: datetime | None = None) -> RatingView:
        """The applicant's rating on the public page, with the query code of the receipt or 告知单."""
        digest = code_hash(code)
        with self.engine.store.session() as s:
            row = s.get(QueryCodeRow, digest) if digest else None
            if row is None:
                raise NotFoundError("unknown query code")
            case_id, visit_id = row.case_id, row.visit_id
        return self._rate(case_id=case_id, visit_id=visit_id, level=level, comment=comment, by="applicant",
                          recorded_by=None, at=at)

    def rate(self, *, level: int | str, actor: str, case_id: int | None = None, visit_id: int | None = None,
             comment: str = "", at: datetime | None = None) -> RatingView:
        """The clerk records the window's 评价器 result for a case or a visit of their unit."""
        if (case_id is None) == (visit_id is None):
            raise RatingError("rate either a case (--case) or a visit (--visit), not both or neither")
        return self._rate(case_id=case_id, visit_id=visit_id, level=level, comment=comment, by="clerk",
                          recorded_by=actor, at=at)

    @staticmethod
    def _check_clerk(clerk: Person | None, actor: str, unit: str) -> None:
        if clerk is None:
            raise NotFoundError(f"no person has the id {actor!r}")
        if not clerk.admin and clerk.unit != unit:
            raise PermissionDeniedError(f"{actor!r} ({clerk.unit}) may not record a rating for {unit}")

    def _rate(self, *, case_id: int | None, visit_id: int | None, level: int | str, comment: str, by: str,
              recorded_by: str | None, at: datetime | None) -> RatingView:
        """Record a rating (``recorded_by``: the clerk keying it in, checked to be of the rated unit), in one
        transaction: one read of what it concerns, one insert; a bad one then opens its follow-up."""
        # The applicant's level is judged first; the clerk's after their own checks (who and which unit).
        number = parse_level(level) if recorded_by is None else 0
        when = self.engine._now(at) if recorded_by is None else None
        rated: Person | None = None
        lead: Person | None = None
        with self.engine.store.session(write=True) as s:
            visit = s.get(VisitRow, visit_id) if visit_id is not None else None
            if visit_id is not None and visit is None:
                if recorded_by is not None and s.get(Person, recorded_by) is None:
                    raise NotFoundError(f"no person has the id {recorded_by!r}")
                raise NotFoundError(f"no visit has the id {visit_id}")
            if visit is not None and recorded_by is not None:
                self._check_clerk(s.get(Person, recorded_by), recorded_by, visit.unit)
            if visit is not None and visit.case_id is not None and case_id is None:
                case_id = visit.case_id  # a visit that opened a case is rated through its case (一次一评)
            existing: tuple[int, datetime] | None = None
            if case_id is not None:
                found = s.execute(_CASE_READ, {"case_id": case_id, "actor": recorded_by}).first()
                if found is None:
                    if recorded_by is not None and visit is None and s.get(Person, recorded_by) is None:
                        raise NotFoundError(f"no person has the id {recorded_by!r}")
                    raise NotFoundError(f"no case has the id {case_id}")
                ended, workflow, unit, person, version, state, clerk, old_level, old_at, rated, lead = found
                if recorded_by is not None and visit is None:
                    self._check_clerk(clerk, recorded_by, unit)
                if recorded_by is not None:
                    number, when = parse_level(level), self.engine._now(at)
                if workflow == FOLLOWUP_WORKFLOW:
                    raise RatingError("a follow-up is not rated by the applicant")
                if ended is None:
                    raise RatingError(f"case {case_id} is not finished ({state}); rate it once it is done "
                                      "(交巡警 第二十二条 \"业务办理完结后\")")
                existing = (old_level, old_at) if old_level is not None else None
                visit_id = None
            else:
                assert visit is not None
                if recorded_by is not None:
                    number, when = parse_level(level), self.engine._now(at)
                if visit.outcome == "open":
                    raise RatingError(f"visit {visit.id} is not settled yet; rate it once the clerk has handled it")
                ended, workflow, unit, person = visit.at, visit.workflow_key, visit.unit, visit.clerk_id
                version = visit.workflow_version
                earlier = s.exec(select(RatingRow).where(RatingRow.visit_id == visit.id)).first()
                existing = (earlier.level, earlier.at) if earlier is not None else None
            if existing is not None:
                raise RatingError(f"already rated ({LEVELS[existing[0]]}, {existing[1]:%Y-%m-%d}): one rating "
                                  "per case (一次一评), never changed afterwards")
            assert when is not None
            window = self.engine.definition(version, s).service.rating_window_days
            if when > ended + timedelta(days=window):
                raise RatingError(f"the rating window closed {window} days after the matter ended "
                                  f"({ended:%Y-%m-%d}); it is {when:%Y-%m-%d}")
            row: RatingRow = _new_row(RatingRow, id=None, case_id=case_id,
                                      visit_id=visit_id if case_id is None else None, workflow_key=workflow,
                                      unit=unit, person_id=person, level=number, comment=comment.strip()[:500],
                                      by=by, recorded_by=recorded_by, at=when)
            insert_row(s, _RATINGS, row)
            leader = None
            if number in BAD_LEVELS:
                if case_id is None:  # a visit rated on its own: whom it concerns read now
                    rated = s.get(Person, person)
                    lead = s.get(Person, rated.leader_id) if rated is not None and rated.leader_id else None
                leader = self._leader(s, rated, lead, unit)
        view = _view(row)
        if leader is not None:
            view = self._open_followup(view, leader, rated, when)
        return view

    def _leader(self, s: Session, person: Person | None, leader: Person | None, unit: str) -> str:
        """The unit leader who must follow a bad rating up: the person's leader, else a leader of the unit."""
        roles = set(self.engine.registry.latest(FOLLOWUP_WORKFLOW).roles)
        if person is not None and person.leader_id and leader is not None and (leader.role_set & roles or
                                                                                leader.admin):
            return leader.id
        for candidate in s.exec(select(Person).where(Person.unit == unit).order_by(Person.id)):
            if candidate.role_set & roles:
                return candidate.id
        raise RatingError(f"no leader of {unit} holds a role of {FOLLOWUP_WORKFLOW} ({', '.join(sorted(roles))}) "
                          "to follow the bad rating up; give the unit's leader one of these roles")

    def _open_followup(self, view: RatingView, leader: str, rated: Person | None, when: datetime) -> RatingView:
        # The leader reads the person's name (a label, never a key); the id stays on the rating row.
        who = f"{rated.name}({rated.id})" if rated is not None else view.person
        case = self.engine.open(FOLLOWUP_WORKFLOW, actor=leader, at=when, data={
            "rating_id": view.id, "rated_case_id": view.case_id, "rated_visit_id": view.visit_id,
            "rating": view.label, "rated_person": who, "comment": view.comment})
        with self.engine.store.session(write=True) as s:
            s.execute(_SET_FOLLOWUP, {"w_id": view.id, "followup_case_id": case.id})
        view = replace(view, followup_case_id=case.id)
        if self.notify is not None:
            self.notify(leader, "差评回访整改", f"收到{view.label}评价({view.workflow},涉及 {view.person}),"
                        f"请在时限内回访整改(回访案件 {case.id})")
        return view

    def settle(self, rating_id: int, outcome: str, *, actor: str, note: str,
               at: datetime | None = None) -> CaseView:
        """Record the follow-up's outcome: rectify (整改), explain (解释说明) or review (申诉复核)."""
        trigger = _OUTCOME_BY_LABEL.get(outcome.strip(), outcome.strip())
        if trigger not in FOLLOWUP_OUTCOMES:
            choices = ", ".join(f"{t} ({label})" for t, label in FOLLOWUP_OUTCOMES.items())
            raise RatingError(f"unknown follow-up outcome {outcome!r}; give one of {choices}")
        rating = self.get(rating_id)
        if rating.followup_case_id is None:
            raise RatingError(f"rating {rating_id} ({rating.label}) has no follow-up: only 差评 are followed up")
        return self.engine.fire(rating.followup_case_id, trigger, actor=actor, at=at, data={"note": note})

    def get(self, rating_id: int) -> RatingView:
        """A rating by id."""
        with self.engine.store.session() as s:
            row = s.get(RatingRow, rating_id)
            if row is None:
                raise NotFoundError(f"no rating has the id {rating_id}")
            return _view(row)

    def list(self, *, unit: str | None = None, case_id: int | None = None, limit: int = 200) -> list[RatingView]:
        """Ratings, newest first."""
        query = select(RatingRow)
        if unit:
            query = query.where(RatingRow.unit == unit)
        if case_id is not None:
            query = query.where(RatingRow.case_id == case_id)
        with self.engine.store.session() as s:
            rows = s.exec(query.order_by(RatingRow.id.desc()).limit(limit))  # type: ignore[union-attr]
            return [_view(r) for r in rows]
