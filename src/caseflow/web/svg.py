"""The console's inline SVG views: the monthly on-time chart and a case's timeline."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from caseflow.calendar import ZONE, WorkCalendar
from caseflow.errors import (
    CaseflowError,
)
from caseflow.store import TimerRow
from caseflow.timing import ACTIVE
from caseflow.views import CaseView
from caseflow.web.formats import fmt_due, fmt_instant

# ------------------------------------------------------------------------------------------ SVG views


def month_chart(monthly: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An inline SVG bar chart of the on-time rate by month (coordinates for the template)."""
    width, height, left, bottom, top = 720, 220, 40, 30, 16
    plot_h = height - bottom - top
    n = max(len(monthly), 1)
    slot = (width - left - 10) / n
    bars = []
    for i, m in enumerate(monthly):
        rate = m.get("rate")
        h = (rate or 0) * plot_h
        cls = "bar-none" if rate is None else ("bar-good" if rate >= 0.95 else "bar-mid" if rate >= 0.8 else "bar-bad")
        bars.append({"x": round(left + i * slot + slot * 0.15, 1), "w": round(slot * 0.7, 1),
                     "y": round(top + plot_h - h, 1), "h": round(h, 1),
                     "cls": cls, "label": str(m["month"])[2:].replace("-", "/"),
                     "value": "—" if rate is None else f"{rate * 100:.0f}%",
                     "title": f"{m['month']}: {m.get('on_time', 0)}/{m.get('finished', 0)} 按时",
                     "cx": round(left + i * slot + slot / 2, 1)})
    grid = [{"y": round(top + plot_h - f * plot_h, 1), "label": f"{int(f * 100)}%"} for f in (0, 0.5, 0.8, 1.0)]
    return {"width": width, "height": height, "bars": bars, "grid": grid, "base": top + plot_h, "left": left}


def timeline(view: CaseView, rows: Sequence[TimerRow], events: Sequence[Any], now: datetime, *,
             calendar: WorkCalendar, labels: Mapping[int | None, str],
             event_titles: Mapping[int, str] | None = None) -> dict[str, Any]:
    """The case's timeline as SVG coordinates: days (rest days shaded), events, each timer's span.

    A timer's row shows its allowed span (start → due) as an outline, the time it actually ran as a
    filled bar (red past the due instant), paused spans hatched, and the due instant marked.
    """
    instants = [view.opened_at or now, now]
    for row in rows:
        instants += [x for x in (row.started_at, row.due_at, row.stopped_at) if x is not None]
    instants += [e.at for e in events]
    t0 = min(instants).astimezone(ZONE)
    t1 = max(instants).astimezone(ZONE)
    # Whole Beijing days, one day of margin on the right so the due mark is never on the edge.
    start = datetime.combine(t0.date(), time(0), tzinfo=ZONE)
    end = datetime.combine(t1.date() + timedelta(days=1), time(0), tzinfo=ZONE)
    if end - start < timedelta(days=3):
        end = start + timedelta(days=3)
    left, width, row_h, top = 190, 1040, 34, 34
    span = (end - start).total_seconds()

    def x(t: datetime) -> float:
        return round(left + (t - start).total_seconds() / span * (width - left - 10), 1)

    ndays = (end - start).days
    step = max(1, math.ceil(ndays / 16))
    days = []
    for i in range(ndays):
        d = start.date() + timedelta(days=i)
        x0, x1 = x(start + timedelta(days=i)), x(start + timedelta(days=i + 1))
        try:
            rest = not calendar.is_workday(d)
            reason = calendar.describe(d).reason
        except CaseflowError:
            rest, reason = d.weekday() >= 5, ""
        days.append({"x": x0, "w": round(x1 - x0, 1), "rest": rest, "label": f"{d.month}/{d.day}",
                     "show": i % step == 0, "title": f"{d} {reason or ('休息日' if rest else '工作日')}"})
    event_marks = []
    lanes: list[float] = []  # the x of the last marker in each lane: close events stack instead of hiding
    for e in events:
        ex = x(e.at)
        lane = next((i for i, last in enumerate(lanes) if ex - last >= 14), len(lanes))
        if lane == len(lanes):
            lanes.append(ex)
        lanes[lane] = ex
        event_marks.append({"x": ex, "seq": e.seq, "lane": lane,
                            "title": f"#{e.seq} " + (event_titles or {}).get(e.seq, fmt_instant(e.at))})
    for mark in event_marks:
        mark["dy"] = -7 + 14 * (int(mark["lane"]) % 2) if len(lanes) > 1 else 0
    bars = []
    for i, row in enumerate(rows):
        y = top + 30 + i * row_h
        stop = row.stopped_at or now
        status = row.status
        actual_end = min(stop, row.due_at) if row.due_at is not None else stop
        late = row.due_at is not None and stop > row.due_at and status in ("running", "breached")
        pauses = []
        for pz in json.loads(row.pauses):
            a = datetime.fromisoformat(pz["from"])
            b = datetime.fromisoformat(pz["to"]) if pz.get("to") else stop
            pauses.append({"x": x(a), "w": max(2.0, round(x(b) - x(a), 1)),
                           "title": f"暂停 {pz.get('reason', '')} {fmt_instant(a)} → "
                                    f"{fmt_instant(b) if pz.get('to') else '至今'} ({pz.get('charged_to', '')})"})
        bars.append({
            "y": y, "label": labels.get(row.id, row.name), "status": status,
            "plan": {"x": x(row.started_at), "w": max(1.0, x(row.due_at) - x(row.started_at))} if row.due_at else None,
            "run": {"x": x(row.started_at), "w": max(2.0, round(x(actual_end) - x(row.started_at), 1))},
            "late": {"x": x(row.due_at), "w": max(2.0, round(x(stop) - x(row.due_at), 1))}
            if late and row.due_at is not None else None,
            "pauses": pauses,
            "due": {"x": x(row.due_at), "text": f"期满 {fmt_due(row.due_at)}"} if row.due_at else None,
            "warn": {"x": x(row.warn_at)} if row.warn_at and status in ACTIVE else None,
            "title": f"{labels.get(row.id, row.name)}: {fmt_instant(row.started_at)} → "
                     f"{fmt_instant(row.stopped_at) if row.stopped_at else '进行中'}; 期满 {fmt_due(row.due_at)}",
        })
    height = top + 30 + max(len(rows), 1) * row_h + 24
    return {"width": width, "height": height, "left": left, "top": top, "days": days, "events": event_marks,
            "bars": bars, "now": x(now), "now_label": fmt_instant(now, "%m-%d %H:%M"), "bottom": height - 20,
            "now_anchor": "end" if x(now) > width - 90 else "middle"}
