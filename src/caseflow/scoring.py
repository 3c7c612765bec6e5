"""考评: the monthly scorecard of each unit and person, from a TOML rule sheet.

The shipped sheet (``caseflow/scoring.toml``, documented there) gives points per event: each overdue
step, escalation, bad rating, upheld complaint, visit beyond the limit, missed appointment, and each step
finished on time. Basis: 交巡警支队窗口单位优质服务操作规范 第三十三条、第三十四条 (seed 000) "严格考核扣分";
如皋市行政服务中心 三 "±5分裁量权" (seed 003), kept as the sheet's ``discretion`` bound.

Attribution follows the step's duty holder: the timer's ``assignee`` where the engine records one, else the
case's responsible person (首问负责); a rating counts against the person it concerns; a visit beyond the
limit against the clerk who issued the matter's first 告知单 (whose notice was incomplete), else the visit's
clerk. Instants are placed in months in Asia/Shanghai.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from caseflow.alerts import ALERTS, CASES, PEOPLE, TIMERS, read_in, table_of
from caseflow.appointments import missed_columns, missed_in
from caseflow.desk import NoticeRow, VisitRow
from caseflow.errors import CaseflowError
from caseflow.ratings import BAD_LEVELS, RatingRow
from caseflow.stats import month_bounds, parse_month
from caseflow.store import Store, UTCDateTime

__all__ = ["DEFAULT_RULES_PATH", "RULES", "ScoreLine", "Scorecard", "ScoringError", "ScoringRules", "scorecard"]

#: The events a rule sheet may give points for, in the order a scorecard shows them, with their labels.
RULES = {
    "overdue_step": "超期环节",
    "escalation": "超期督办",
    "bad_rating": "差评",
    "upheld_complaint": "投诉查实",
    "third_visit": "群众跑第三趟",
    "missed_appointment": "预约违约",
    "finished_on_time": "按时办结环节",
}
DEFAULT_RULES_PATH = Path(__file__).with_name("scoring.toml")


class ScoringError(CaseflowError, ValueError):
    """A rule sheet that cannot be used: the message names the file and the key."""


@dataclass(frozen=True)
class ScoringRules:
    """Points per event, the starting score and the bound of a leader's adjustment."""

    points: Mapping[str, int]
    base: int = 100
    discretion: int = 5
    source: str = "<default>"

    @classmethod
    def load(cls, path: str | Path | None = None) -> ScoringRules:
        """Read a rule sheet (the shipped default when ``path`` is None).

        A text parsed before is not parsed again (the rules are immutable): every digest reads the
        scorecard, and with it the sheet.
        """
        where = Path(path) if path is not None else DEFAULT_RULES_PATH
        try:
            text = where.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScoringError(f"cannot read the rule sheet {where}: {exc.strerror}") from None
        return _parsed(text, str(where))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> ScoringRules:
        """Rules from parsed TOML; unknown keys and non-integer points are refused, naming them."""
        for key in data:
            if key not in ("base", "discretion", "points"):
                raise ScoringError(f"{source}: unknown key {key!r}; allowed: base, discretion, [points]")
        points = data.get("points", {})
        if not isinstance(points, dict):
            raise ScoringError(f"{source}: [points] must be a table of event = points")
        for key, value in points.items():
            if key not in RULES:
                raise ScoringError(f"{source}: [points] has unknown event {key!r}; events are {', '.join(RULES)}")
            if isinstance(value, bool) or not isinstance(value, int):
                raise ScoringError(f"{source}: [points].{key} must be a whole number, got {value!r}")
        for key in ("base", "discretion"):
            value = data.get(key, 100 if key == "base" else 5)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ScoringError(f"{source}: {key} must be a whole number, got {value!r}")
        return cls(points={k: int(points.get(k, 0)) for k in RULES}, base=int(data.get("base", 100)),
                   discretion=int(data.get("discretion", 5)), source=source)


@lru_cache(maxsize=16)
def _parsed(text: str, where: str) -> ScoringRules:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScoringError(f"{where}: not valid TOML: {exc}") from None
    return ScoringRules.from_dict(data, source=where)


@dataclass
class ScoreLine:
    """One row of a scorecard: a unit or a person, the count of each event and the points they make."""

    key: str
    name: str
    unit: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))

    def points(self, rules: ScoringRules) -> int:
        """The month's points (without the base)."""
        return sum(self.counts[k] * rules.points.get(k, 0) for k in RULES)

    def to_dict(self, rules: ScoringRules) -> dict[str, Any]:
        """The JSON shape."""
        points = self.points(rules)
        return {"key": self.key, "name": self.name, "unit": self.unit, "counts": dict(self.counts),
                "points": points, "score": rules.base + points}


@dataclass
class Scorecard:
    """The month's scorecard: one line per unit and per person."""

    month: str
    rules: ScoringRules
    units: list[ScoreLine]
    people: list[ScoreLine]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``caseflow stats --score --json`` and the API."""
        return {"month": self.month, "rules": {"source": self.rules.source, "base": self.rules.base,
                                               "points": dict(self.rules.points)},
                "labels": dict(RULES),
                "units": [u.to_dict(self.rules) for u in self.units],
                "people": [p.to_dict(self.rules) for p in self.people]}

    def to_text(self) -> str:
        """A plain table: units first, then people."""
        head = ["对象", "单位", *RULES.values(), "得分"]
        lines = [f"{self.month} 考评(规则 {self.rules.source},基础分 {self.rules.base})", "\t".join(head)]
        for line in [*self.units, *self.people]:
            counts = [str(line.counts[k]) for k in RULES]
            lines.append("\t".join([line.name, line.unit, *counts, str(self.rules.base + line.points(self.rules))]))
        return "\n".join(lines) + "\n"


def _events_query() -> sa.Select[Any]:
    """One statement for a month's scorecard: every rule's events counted per (person, unit), with the
    person's name and unit, between the bound parameters ``start`` and ``end`` (and ``unit``, when not NULL).

    Counted by the database: a month of a busy bureau is thousands of events, a scorecard a few dozen lines
    (the daily digest reads it every working day). Built once; SQLAlchemy's compiled cache does the rest.
    """
    cases, timers, alerts, ratings = CASES.c, TIMERS.c, ALERTS.c, table_of(RatingRow).c
    visits, notices = table_of(VisitRow).c, table_of(NoticeRow).c
    start, end = sa.bindparam("start", type_=UTCDateTime()), sa.bindparam("end", type_=UTCDateTime())
    # The duty holder: the timer's assignee where the engine records one, else the case's responsible person.
    who = sa.func.coalesce(timers.assignee, cases.responsible_id, "")

    def counted(rule: str | Any, person: Any, unit: Any, query: sa.Select[Any]) -> sa.Select[Any]:
        """``query``'s rows counted per (person, unit), and per rule when the rule is worked out per row."""
        keys = (person, unit) if isinstance(rule, str) else (rule, person, unit)
        column = sa.literal(rule) if isinstance(rule, str) else rule
        return (query.add_columns(column.label("rule"), person.label("person"), unit.label("unit"),
                                  sa.func.count().label("n"))
                .group_by(*keys))

    # An overdue step and an escalation are each an alert level raised in the month.
    raised = sa.case((alerts.level == "overdue", "overdue_step"), else_="escalation")
    branches = [
        counted(raised, who, cases.unit, sa.select().select_from(ALERTS)
                .join(TIMERS, timers.id == alerts.timer_id).join(CASES, cases.id == timers.case_id)
                .where(alerts.level.in_(("overdue", "escalated")), alerts.level_at >= start, alerts.level_at < end)),
        # Finished on time: stopped by its due instant (a step without one is on time by definition).
        counted("finished_on_time", who, cases.unit, sa.select().select_from(TIMERS)
                .join(CASES, cases.id == timers.case_id)
                .where(timers.status == "met", timers.stopped_at >= start, timers.stopped_at < end,
                       sa.or_(timers.due_at.is_(None), timers.stopped_at <= timers.due_at))),
        counted("bad_rating", ratings.person_id, ratings.unit, sa.select().select_from(table_of(RatingRow))
                .where(ratings.at >= start, ratings.at < end, ratings.level.in_(BAD_LEVELS))),
        counted("upheld_complaint", ratings.person_id, ratings.unit, sa.select().select_from(table_of(RatingRow))
                .join(CASES, cases.id == ratings.followup_case_id)
                .where(cases.state == "rectified", cases.closed_at >= start, cases.closed_at < end)),
    ]
    # A visit beyond the limit counts against the clerk of the matter's first 告知单 (whose notice was
    # incomplete), else the visit's clerk.
    first_notice = (sa.select(notices.issued_by)
                    .where(notices.applicant_hash == visits.applicant_hash,
                           notices.workflow_key == visits.workflow_key)
                    .order_by(notices.id).limit(1).scalar_subquery())
    branches.append(counted("third_visit", sa.func.coalesce(first_notice, visits.clerk_id), visits.unit,
                            sa.select().select_from(table_of(VisitRow))
                            .where(visits.over_limit, visits.at >= start, visits.at < end)))
    branches.append(counted("missed_appointment", *missed_columns(), missed_in(start, end)))
    events = sa.union_all(*branches).subquery("events")
    people = PEOPLE.c
    unit = sa.bindparam("unit", type_=sa.String())
    return (sa.select(events.c.rule, events.c.person, events.c.unit, events.c.n, people.name, people.unit)
            .outerjoin(PEOPLE, people.id == events.c.person)
            .where(sa.or_(unit.is_(None), events.c.unit == unit))
            .order_by(events.c.unit, events.c.person, events.c.rule))


_EVENTS_QUERY = _events_query()


def scorecard(store: Store, *, month: str, rules: ScoringRules | None = None,
              unit: str | None = None, session: Session | None = None) -> Scorecard:
    """The scorecard of ``month`` (YYYY-MM) for every unit (or one) and the people who had events.

    ``session``: read within the caller's transaction (default: one of its own).
    """
    rules = rules or ScoringRules.load()
    start, end = month_bounds(*parse_month(month))
    with read_in(store, session) as s:
        rows = s.execute(_EVENTS_QUERY, {"start": start, "end": end, "unit": unit or None}).all()
    units: dict[str, ScoreLine] = {}
    persons: dict[str, ScoreLine] = {}
    for rule, person, event_unit, count, name, person_unit in rows:
        unit_line = units.get(event_unit)
        if unit_line is None:
            unit_line = units[event_unit] = ScoreLine(event_unit, event_unit, event_unit)
        unit_line.counts[rule] += count
        line = persons.get(person)
        if line is None:
            # Someone no longer on the roster keeps their id as name and the unit of their events.
            line = persons[person] = ScoreLine(person, name if name is not None else person,
                                               person_unit if name is not None else event_unit)
        line.counts[rule] += count
    return Scorecard(month=month, rules=rules, units=[units[k] for k in sorted(units)],
                     people=sorted(persons.values(), key=lambda p: (p.unit, p.key)))
