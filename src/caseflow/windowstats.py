"""Figures of the window, beside ``stats``: visits, 即办, 告知单, 第三趟, and 好差评 with their follow-ups.

Definitions (each a share of a count shown beside it, None when the count is zero):

- 一次办结率 ``first_visit_rate``: matters settled at the window (accepted or handled on the spot) on the
  applicant's first visit, over all matters settled at the window that month (交巡警 第十八条 "一次性即时
  办结"; 行政服务中心 "一次告知、两次终结").
- 最多跑一次率 ``at_most_one_trip_rate``: settled matters for which the applicant came at most once *after*
  the first 告知单 — i.e. settled on the first or second visit (户籍 四(五) "不让群众跑第三趟").
- 即办 ``on_the_spot``: visits handled on the spot (户籍 六(一)).
- 第三趟 ``over_limit_visits``: visits beyond the procedure's ``max_visits``.
- 预约 ``booked`` / ``no_show`` (群众爽约) / ``missed_appointments`` (单位违约): bookings whose instant is in the month.
- 好评率 ``good_rate``: ratings 非常满意 / 满意 / 基本满意 over all ratings; 差评数 ``bad``: 不满意 + 非常不满意.
- 回访率 ``followed_up_rate``: bad ratings whose follow-up is closed (any outcome), over bad ratings;
  整改率 ``rectified_rate``: bad ratings whose follow-up ended 整改, over bad ratings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from caseflow.alerts import CASES, read_in, table_of
from caseflow.appointments import AppointmentRow
from caseflow.desk import VisitRow
from caseflow.ratings import BAD_LEVELS, RatingRow
from caseflow.stats import month_bounds, parse_month
from caseflow.store import Store, UTCDateTime

__all__ = ["WindowStats", "window_stats"]

def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class WindowStats:
    """The window's figures for one unit (or ``total``) and month."""

    key: str
    visits: int = 0
    notices: int = 0
    on_the_spot: int = 0
    accepted: int = 0
    over_limit_visits: int = 0
    warnings: int = 0
    settled_first_visit: int = 0
    settled_by_second_visit: int = 0
    ratings: int = 0
    good: int = 0
    bad: int = 0
    followed_up: int = 0
    rectified: int = 0
    booked: int = 0
    no_show: int = 0
    missed_appointments: int = 0
    levels: dict[int, int] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        """Matters accepted or handled on the spot."""
        return self.on_the_spot + self.accepted

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (rates as fractions)."""
        return {
            "key": self.key, "visits": self.visits, "notices": self.notices, "on_the_spot": self.on_the_spot,
            "accepted": self.accepted, "over_limit_visits": self.over_limit_visits, "warnings": self.warnings,
            "first_visit_rate": _rate(self.settled_first_visit, self.settled),
            "at_most_one_trip_rate": _rate(self.settled_by_second_visit, self.settled),
            "ratings": self.ratings, "good": self.good, "bad": self.bad,
            "good_rate": _rate(self.good, self.ratings),
            "followed_up_rate": _rate(self.followed_up, self.bad),
            "rectified_rate": _rate(self.rectified, self.bad),
            "booked": self.booked, "no_show": self.no_show, "missed_appointments": self.missed_appointments,
            "levels": {str(k): v for k, v in sorted(self.levels.items())},
        }


#: The figures a total adds up: every count (``levels`` is added per level).
_COUNTS = tuple(f.name for f in fields(WindowStats) if f.name not in ("key", "levels"))


def _count(condition: Any) -> Any:
    """How many rows of a group meet ``condition`` (portable: no boolean sums)."""
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _queries() -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    """The month's visits, bookings and ratings counted per unit by the database (bound parameters
    ``start``, ``end`` and ``unit``, which may be NULL): a busy window has thousands of each a month, a
    county a handful of units, and the leaders' digest reads these figures every working day."""
    visits, bookings, ratings, cases = (table_of(VisitRow), table_of(AppointmentRow), table_of(RatingRow),
                                        CASES)
    start, end = sa.bindparam("start", type_=UTCDateTime()), sa.bindparam("end", type_=UTCDateTime())
    unit = sa.bindparam("unit", type_=sa.String())
    v, b, r, c = visits.c, bookings.c, ratings.c, cases.c
    settled = v.outcome.in_(("on_the_spot", "accepted"))
    visit_query = (sa.select(v.unit, sa.func.count(), _count(v.outcome == "notice"),
                             _count(v.outcome == "on_the_spot"), _count(v.outcome == "accepted"),
                             _count(v.warning.is_not(None)), _count(v.over_limit),
                             _count(sa.and_(settled, v.number == 1)), _count(sa.and_(settled, v.number <= 2)))
                   .where(v.at >= start, v.at < end, sa.or_(unit.is_(None), v.unit == unit))
                   .group_by(v.unit))
    booking_query = (sa.select(b.unit, sa.func.count(), _count(b.status == "no_show"), _count(b.status == "missed"))
                     .where(b.at >= start, b.at < end, b.status != "cancelled",
                            sa.or_(unit.is_(None), b.unit == unit))
                     .group_by(b.unit))
    # A bad rating's follow-up case: closed (any outcome) counts as followed up; ended 整改 as rectified.
    rating_query = (sa.select(r.unit, r.level, sa.func.count(), _count(c.closed_at.is_not(None)),
                              _count(c.state == "rectified"))
                    .select_from(ratings).outerjoin(cases, c.id == r.followup_case_id)
                    .where(r.at >= start, r.at < end, sa.or_(unit.is_(None), r.unit == unit))
                    .group_by(r.unit, r.level))
    return visit_query, booking_query, rating_query


_VISITS, _BOOKINGS, _RATINGS = _queries()


def window_stats(store: Store, *, month: str, unit: str | None = None,
                 session: Session | None = None) -> list[WindowStats]:
    """Per-unit window figures for ``month`` (YYYY-MM, Asia/Shanghai), with a ``total`` row last.

    ``session``: read within the caller's transaction (default: one of its own).
    """
    start, end = month_bounds(*parse_month(month))
    params = {"start": start, "end": end, "unit": unit or None}
    groups: dict[str, WindowStats] = {}

    def group(key: str) -> WindowStats:
        return groups.setdefault(key, WindowStats(key))

    with read_in(store, session) as s:
        visits = s.execute(_VISITS, params).all()
        bookings = s.execute(_BOOKINGS, params).all()
        ratings = s.execute(_RATINGS, params).all()
    for v_unit, count, notices, on_the_spot, accepted, warnings, over_limit, first, by_second in visits:
        g = group(v_unit)
        g.visits, g.notices, g.on_the_spot, g.accepted = count, notices, on_the_spot, accepted
        g.warnings, g.over_limit_visits = warnings, over_limit
        g.settled_first_visit, g.settled_by_second_visit = first, by_second
    for b_unit, count, no_show, missed in bookings:
        g = group(b_unit)
        g.booked, g.no_show, g.missed_appointments = count, no_show, missed
    for r_unit, level, count, closed, rectified in ratings:
        g = group(r_unit)
        g.ratings += count
        g.levels[level] = count
        if level in BAD_LEVELS:
            g.bad += count
            g.followed_up += closed
            g.rectified += rectified
        else:
            g.good += count
    total = WindowStats("total")
    for g in groups.values():
        for name in _COUNTS:
            setattr(total, name, getattr(total, name) + getattr(g, name))
        for level, count in g.levels.items():
            total.levels[level] = total.levels.get(level, 0) + count
    return [*(groups[k] for k in sorted(groups)), total]

