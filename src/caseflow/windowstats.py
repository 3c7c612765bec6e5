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

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from caseflow.alerts import CASES, read_in, table_of
from caseflow.appointments import AppointmentRow
from caseflow.desk import VisitRow
from caseflow.ratings import BAD_LEVELS, RatingRow
from caseflow.stats import month_bounds, parse_month
from caseflow.store import Store

__all__ = ["WindowStats", "window_stats"]

_CHUNK = 900  # ids per IN (…) list: below SQLite's oldest variable limit


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


def window_stats(store: Store, *, month: str, unit: str | None = None,
                 session: Session | None = None) -> list[WindowStats]:
    """Per-unit window figures for ``month`` (YYYY-MM, Asia/Shanghai), with a ``total`` row last.

    ``session``: read within the caller's transaction (default: one of its own).
    """
    start, end = month_bounds(*parse_month(month))
    groups: dict[str, WindowStats] = {}

    def group(key: str) -> WindowStats:
        return groups.setdefault(key, WindowStats(key))

    total = WindowStats("total")
    visits, bookings, ratings, cases = (table_of(VisitRow).c, table_of(AppointmentRow).c, table_of(RatingRow).c,
                                        CASES.c)
    with read_in(store, session) as s:
        # Core selects of the columns counted: a month of a busy window is thousands of rows.
        visit_query = sa.select(visits.unit, visits.outcome, visits.warning, visits.over_limit, visits.number).where(
            visits.at >= start, visits.at < end)
        if unit:
            visit_query = visit_query.where(visits.unit == unit)
        for v_unit, outcome, warning, over_limit, number in s.execute(visit_query):
            for g in (group(v_unit), total):
                g.visits += 1
                g.notices += outcome == "notice"
                g.on_the_spot += outcome == "on_the_spot"
                g.accepted += outcome == "accepted"
                g.warnings += warning is not None
                g.over_limit_visits += bool(over_limit)
                if outcome in ("on_the_spot", "accepted"):
                    g.settled_first_visit += number == 1
                    g.settled_by_second_visit += number <= 2
        booking_query = sa.select(bookings.unit, bookings.status).where(bookings.at >= start, bookings.at < end,
                                                                bookings.status != "cancelled")
        if unit:
            booking_query = booking_query.where(bookings.unit == unit)
        for a_unit, status in s.execute(booking_query):
            for g in (group(a_unit), total):
                g.booked += 1
                g.no_show += status == "no_show"
                g.missed_appointments += status == "missed"
        rating_query = sa.select(ratings.unit, ratings.level, ratings.followup_case_id).where(ratings.at >= start,
                                                                                      ratings.at < end)
        if unit:
            rating_query = rating_query.where(ratings.unit == unit)
        rows = s.execute(rating_query).all()
        followups = sorted({r.followup_case_id for r in rows if r.followup_case_id is not None})
        states: dict[int, tuple[str, datetime | None]] = {}
        for i in range(0, len(followups), _CHUNK):
            states.update({case_id: (state, closed) for case_id, state, closed in s.execute(
                sa.select(cases.id, cases.state, cases.closed_at).where(cases.id.in_(followups[i:i + _CHUNK])))})
        for r_unit, level, followup in rows:
            for g in (group(r_unit), total):
                g.ratings += 1
                g.levels[level] = g.levels.get(level, 0) + 1
                if level in BAD_LEVELS:
                    g.bad += 1
                    state, closed = states.get(followup or -1, ("", None))
                    g.followed_up += closed is not None
                    g.rectified += state == "rectified"
                else:
                    g.good += 1
    return [*(groups[k] for k in sorted(groups)), total]

