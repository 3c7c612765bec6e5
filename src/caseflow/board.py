"""The leader board's figures: open cases by colour, the overdue list, the monthly on-time rate.

A business query beside :mod:`caseflow.stats`; the HTTP API and the console only format it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from caseflow.calendar import ZONE
from caseflow.engine import Engine
from caseflow.store import CaseRow, Store, TimerRow


def timer_level(timer: TimerRow, now: datetime) -> str:
    """red (overdue), yellow (warned, not due), green; grey for a paused clock."""
    if timer.status == "paused":
        return "grey"
    if timer.due_at is not None and now >= timer.due_at:
        return "red"
    if timer.warn_at is not None and now >= timer.warn_at:
        return "yellow"
    return "green"


def monthly_rates(store: Store, units: frozenset[str] | None, now: datetime, months: int = 12) -> list[dict[str, Any]]:
    """On-time rate of the clocks finished in each of the last ``months`` months (Beijing months)."""
    local = now.astimezone(ZONE)
    keys = []
    y, m = local.year, local.month
    for _ in range(months):
        keys.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    keys.reverse()
    first = datetime(int(keys[0][:4]), int(keys[0][5:]), 1, tzinfo=ZONE)
    figures: dict[str, tuple[int, int]] = {}
    try:
        from caseflow import stats  # the reporting module (optional): one definition of "on time"

        groups = stats.compute_stats(store, by="month", units=units, until=now, now=now)
        figures = {g.key: (g.finished, g.on_time) for g in groups}
    except (ImportError, AttributeError, TypeError):
        # Fallback with the same rule: met strictly before the due instant, counted in the month it stopped.
        t, c = TimerRow.__table__.c, CaseRow.__table__.c  # type: ignore[attr-defined]
        query = sa.select(t.stopped_at, t.due_at, t.status).join_from(
            TimerRow.__table__, CaseRow.__table__, t.case_id == c.id  # type: ignore[attr-defined]
        ).where(t.status.in_(("met", "breached")), t.stopped_at >= first)
        if units is not None:
            query = query.where(c.unit.in_(sorted(units)))
        counts: dict[str, list[int]] = {}
        with store.session() as s:
            for stopped, due, status in s.execute(query):
                key = f"{stopped.astimezone(ZONE):%Y-%m}"
                entry = counts.setdefault(key, [0, 0])
                entry[0] += 1
                entry[1] += int(status == "met" and (due is None or stopped < due))
        figures = {k: (v[0], v[1]) for k, v in counts.items()}
    out = []
    for key in keys:
        finished, on_time = figures.get(key, (0, 0))
        out.append({"month": key, "finished": finished, "on_time": on_time,
                    "rate": round(on_time / finished, 4) if finished else None})
    return out


def board_data(engine: Engine, units: frozenset[str] | None, now: datetime) -> dict[str, Any]:
    """The leader board of ``units`` (None: every unit) as things stood at ``now``: counts, overdue list,
    monthly on-time rate — rebuilt from recorded instants (:mod:`caseflow.asof`), so a past ``now``
    shows that moment, not today.
    """
    from caseflow.asof import timers_as_of
    from caseflow.narrate import Labels

    store = engine.store
    labels = Labels.from_store(store)
    with store.session() as s:
        c = CaseRow.__table__.c  # type: ignore[attr-defined]
        counts_q = sa.select(c.unit, sa.func.count()).where(
            c.opened_at <= now, sa.or_(c.closed_at.is_(None), c.closed_at > now)).group_by(c.unit)
        if units is not None:
            counts_q = counts_q.where(c.unit.in_(sorted(units)))
        open_counts = {unit: int(n) for unit, n in s.execute(counts_q)}
    worst: dict[int, tuple[str, str]] = {}  # case id -> (unit, level)
    overdue = []
    rank = {"red": 3, "yellow": 2, "green": 1, "grey": 0}
    for timer in timers_as_of(store, now, units=units, open_only=True, calendar=engine.calendar, labels=labels):
        if timer.status == "paused":
            level = "grey"
        elif timer.due_at is not None and now >= timer.due_at:
            level = "red"
        elif timer.alert_level == "warning":
            level = "yellow"
        else:
            level = "green"
        cid = timer.case_id
        if cid not in worst or rank[level] > rank[worst[cid][1]]:
            worst[cid] = (timer.unit, level)
        if level == "red" and timer.due_at is not None:
            key, version = timer.workflow_key, timer.workflow_version
            overdue.append({
                "case": cid, "workflow": key, "workflow_title": labels.workflow(key, version),
                "state_label": labels.state(key, timer.state, version), "timer": timer.name,
                "label": labels.timer(key, timer.name, version),
                "due_at": timer.due_at.astimezone(ZONE).isoformat(), "late": _late(engine, timer.due_at, timer, now),
                "responsible": timer.responsible_id, "responsible_name": labels.person(timer.responsible_id),
                # The person who must act on this step (what the board's overdue list is about).
                "assignee": timer.assignee or timer.responsible_id,
                "assignee_name": labels.person(timer.assignee or timer.responsible_id),
                "unit": timer.unit, "_due": timer.due_at,
            })
    all_units = set(open_counts) | (set(units) if units is not None else set())
    table = []
    for unit in sorted(all_units):
        red = sum(1 for u, lv in worst.values() if u == unit and lv == "red")
        yellow = sum(1 for u, lv in worst.values() if u == unit and lv == "yellow")
        table.append({"unit": unit, "red": red, "yellow": yellow, "green": open_counts.get(unit, 0) - red - yellow})
    overdue.sort(key=lambda o: (o["_due"], o["case"]))
    for item in overdue:
        del item["_due"]
    return {"at": now.astimezone(ZONE).isoformat(), "units": table, "overdue": overdue,
            "monthly": monthly_rates(engine.store, units, now)}




def _late(engine: Engine, due: datetime, timer: Any, now: datetime) -> str:
    """How late a clock is at ``now``, in the words of the engine's queue (working days or hours)."""
    row = TimerRow(case_id=timer.case_id, name=timer.name, status="running", kind=timer.kind,
                   limit_spec=timer.limit_spec, started_at=timer.started_at, due_at=due, last_day=timer.last_day)
    return str(engine.time_left(row, now))


def window_board(store: Store, units: frozenset[str] | None, now: datetime) -> dict[str, Any]:
    """The board's window panel for the current month: 一次办结率 … 整改率 and the 考评 score per unit."""
    from caseflow.scoring import scorecard
    from caseflow.windowstats import window_stats

    month = f"{now.astimezone(ZONE):%Y-%m}"
    figures = [r.to_dict() for r in window_stats(store, month=month) if r.key != "total"]
    card = scorecard(store, month=month).to_dict()
    scores = {u["key"]: u for u in card["units"]}
    rows = []
    for row in figures:
        if units is None or row["key"] in units:
            score = scores.get(row["key"])
            rows.append({**row, "score": score["score"] if score else card["rules"]["base"]})
    for key, score in scores.items():
        if (units is None or key in units) and not any(r["key"] == key for r in rows):
            rows.append({"key": key, "visits": 0, "score": score["score"]})
    return {"month": month, "rows": sorted(rows, key=lambda r: r["key"])}
