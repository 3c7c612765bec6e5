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
from caseflow.appointments import missed_by_unit
from caseflow.desk import NoticeRow, VisitRow
from caseflow.errors import CaseflowError
from caseflow.ratings import BAD_LEVELS, RatingRow
from caseflow.stats import month_bounds, parse_month
from caseflow.store import Store

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


def scorecard(store: Store, *, month: str, rules: ScoringRules | None = None,
              unit: str | None = None, session: Session | None = None) -> Scorecard:
    """The scorecard of ``month`` (YYYY-MM) for every unit (or one) and the people who had events.

    ``session``: read within the caller's transaction (default: one of its own).
    """
    rules = rules or ScoringRules.load()
    start, end = month_bounds(*parse_month(month))
    events: list[tuple[str, str, str]] = []  # (rule, person, unit)
    cases, timers, alerts, ratings = CASES.c, TIMERS.c, ALERTS.c, table_of(RatingRow).c
    visits, notices = table_of(VisitRow).c, table_of(NoticeRow).c
    # The duty holder: the timer's assignee where the engine records one, else the case's responsible person.
    who = sa.func.coalesce(timers.assignee, cases.responsible_id) if "assignee" in timers \
        else cases.responsible_id
    with read_in(store, session) as s:
        raised = s.execute(
            sa.select(alerts.level, who, cases.unit)
            .join(TIMERS, timers.id == alerts.timer_id).join(CASES, cases.id == timers.case_id)
            .where(alerts.level.in_(("overdue", "escalated")), alerts.level_at >= start,
                   alerts.level_at < end)).all()
        for level, person, case_unit in raised:
            events.append(("overdue_step" if level == "overdue" else "escalation", person or "", case_unit))
        met = s.execute(
            sa.select(who, cases.unit, timers.stopped_at, timers.due_at)
            .join(CASES, cases.id == timers.case_id)
            .where(timers.status == "met", timers.stopped_at >= start, timers.stopped_at < end)).all()
        for person, case_unit, stopped, due in met:
            if due is None or stopped <= due:
                events.append(("finished_on_time", person or "", case_unit))
        events += [("bad_rating", person, r_unit) for person, r_unit in s.execute(
            sa.select(ratings.person_id, ratings.unit)
            .where(ratings.at >= start, ratings.at < end, ratings.level.in_(BAD_LEVELS)).order_by(ratings.id))]
        upheld = s.execute(
            sa.select(ratings.person_id, ratings.unit).join(CASES, cases.id == ratings.followup_case_id)
            .where(cases.state == "rectified", cases.closed_at >= start, cases.closed_at < end)).all()
        events += [("upheld_complaint", person, r_unit) for person, r_unit in upheld]
        # The clerk of the matter's first 告知单 (whose notice was incomplete), read with the visit in one query.
        first_notice = (sa.select(notices.issued_by)
                        .where(notices.applicant_hash == visits.applicant_hash,
                               notices.workflow_key == visits.workflow_key)
                        .order_by(notices.id).limit(1).scalar_subquery())
        for issued_by, clerk, v_unit in s.execute(
            sa.select(first_notice, visits.clerk_id, visits.unit)
            .where(visits.over_limit, visits.at >= start, visits.at < end).order_by(visits.id)
        ):
            events.append(("third_visit", issued_by if issued_by is not None else clerk, v_unit))
        events += [("missed_appointment", person, a_unit) for person, a_unit in missed_by_unit(s, start, end)]
        if unit:
            events = [e for e in events if e[2] == unit]
        people = {pid: (name, p_unit) for pid, name, p_unit in s.execute(
            sa.select(PEOPLE.c.id, PEOPLE.c.name, PEOPLE.c.unit))}
    units: dict[str, ScoreLine] = {}
    persons: dict[str, ScoreLine] = {}
    for rule, person, event_unit in events:
        # A line is made once per unit and person (a month has thousands of events, a unit a handful of lines).
        unit_line = units.get(event_unit)
        if unit_line is None:
            unit_line = units[event_unit] = ScoreLine(event_unit, event_unit, event_unit)
        unit_line.counts[rule] += 1
        line = persons.get(person)
        if line is None:
            row = people.get(person)
            line = persons[person] = ScoreLine(person, row[0] if row else person, row[1] if row else event_unit)
        line.counts[rule] += 1
    return Scorecard(month=month, rules=rules, units=[units[k] for k in sorted(units)],
                     people=sorted(persons.values(), key=lambda p: (p.unit, p.key)))

