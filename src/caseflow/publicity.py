"""公示 and the applicant's view: what anyone may read without logging in.

- The procedure page (行政许可法 第三十条: "行政许可的事项、依据、条件、数量、程序、期限以及需要提交的全部材料的
  目录 … 在办公场所公示"; 户籍窗口规范 三(四): "办理户口、身份证、暂住证等具体事项的条件、程序和时限" public;
  交巡警 第三十二条 "将办事流程 … 进行公开"): conditions, materials, each limit with its basis and whether it is
  statutory or promised, the 件 type, office hours and the booking link.
- The progress query by query code (信访工作条例 第二十一条 "方便信访人查询、评价信访事项办理情况"): the state, the
  steps done with their dates, the next deadline. It shows the applicant's ID number masked and nothing else
  personal: no case data, no staff, nothing about another case. An unknown code and a malformed one get the
  same answer (``None``), and the web layer slows guessing down (:mod:`caseflow.ratelimit`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from caseflow.calendar import ZONE
from caseflow.desk import NoticeRow, QueryCodeRow, VisitRow, code_hash
from caseflow.engine import Engine
from caseflow.ratelimit import RateLimiter
from caseflow.store import CaseRow, EventRow, TimerRow
from caseflow.workflow import WorkflowDef

__all__ = ["RateLimiter", "procedure_page", "progress"]


def procedure_page(defn: WorkflowDef, *, booking_url: str | None = None) -> dict[str, Any]:
    """The 公示 of one procedure as JSON-ready data (the HTML page renders the same)."""
    limits = [{"name": t.name, "label": t.label, "limit": t.limit.chinese(), "kind": t.kind,
               "kind_label": "法定时限" if t.kind == "statutory" else "承诺时限", "basis": t.basis}
              for t in defn.timers]
    return {
        "key": defn.key, "title": defn.title, "basis": defn.basis, "type": defn.service.type,
        "conditions": list(defn.service.conditions), "office_hours": defn.service.office_hours,
        "promise": defn.service.promise, "max_visits": defn.service.max_visits,
        "service_basis": defn.service.basis,
        "materials": [m.to_dict() for m in defn.materials], "limits": limits,
        "steps": [{"trigger": t.trigger, "label": t.label or t.trigger} for t in defn.transitions],
        "booking_url": booking_url if defn.service.booking else None,
        "version": defn.version,
    }


def _day(instant: datetime | None) -> str | None:
    return instant.astimezone(ZONE).date().isoformat() if instant is not None else None


def progress(engine: Engine, code: str) -> dict[str, Any] | None:
    """What the holder of ``code`` may see, or None for any code that is not a live one (same answer for all)."""
    digest = code_hash(code)
    if digest is None:
        return None
    with engine.store.session() as s:
        entry = s.get(QueryCodeRow, digest)
        if entry is None:
            return _booking(engine, s, digest)
        visit = s.get(VisitRow, entry.visit_id)
        if visit is None:  # pragma: no cover - a foreign key holds it
            return None
        defn = engine.definition(visit.workflow_version, s)
        result: dict[str, Any] = {"title": defn.title, "workflow": defn.key, "applicant": visit.applicant_masked,
                                  "type": defn.service.type}
        case = s.get(CaseRow, entry.case_id) if entry.case_id is not None else None
        if case is None:
            notice = s.get(NoticeRow, entry.notice_id) if entry.notice_id is not None else None
            result.update(status="notice", status_label="已一次性告知,待补齐材料", visit_on=_day(visit.at), notice=None)
            if notice is not None:
                result["notice"] = {"number": notice.number, "issued_on": _day(notice.issued_at),
                                    "items": [{"name": i["name"], "condition": i.get("condition"),
                                               "source": i.get("source"), "basis": i.get("basis")}
                                              for i in json.loads(notice.items)]}
            return result
        cdef = engine.definition(case.workflow_version, s)
        labels = {t.trigger: t.label or t.trigger for t in cdef.transitions}
        events = s.exec(select(EventRow).where(EventRow.case_id == case.id)
                        .order_by(EventRow.seq)).all()  # type: ignore[arg-type]
        steps = []
        for e in events:
            if e.kind == "open":
                steps.append({"step": "受理", "on": _day(e.at)})
            elif e.kind == "fire" and e.trigger:
                steps.append({"step": labels.get(e.trigger, e.trigger), "on": _day(e.at)})
            elif e.kind == "close":
                steps.append({"step": "办结" if case.close_reason == "当场办结" else "终止办理", "on": _day(e.at)})
        running = s.exec(select(TimerRow).where(TimerRow.case_id == case.id,
                                                TimerRow.status.in_(("running", "paused")))  # type: ignore[attr-defined]
                         ).all()
        upcoming = sorted((t for t in running if t.due_at is not None), key=_due)
        next_deadline = None
        if upcoming:
            t = upcoming[0]
            tdef = next((d for d in cdef.timers if d.name == t.name), None)
            next_deadline = {"label": tdef.label if tdef else t.name,
                             "last_day": t.last_day.isoformat() if t.last_day else None,
                             "due_at": t.due_at.astimezone(ZONE).isoformat() if t.due_at else None,
                             "basis": tdef.basis if tdef else ""}
        result.update(status="closed" if case.closed_at else "open", state=cdef.state(case.state).label,
                      status_label="已办结" if case.closed_at else "办理中", accepted_on=_day(case.opened_at),
                      closed_on=_day(case.closed_at), steps=steps, next_deadline=next_deadline)
        return result


def _booking(engine: Engine, s: Session, digest: str) -> dict[str, Any] | None:
    """A booking's code: the procedure, the unit, the booked instant and its status (None if no booking has it)."""
    from caseflow.appointments import AppointmentRow, _view

    row = s.exec(select(AppointmentRow).where(AppointmentRow.code_hash == digest)).first()
    if row is None:
        return None
    view = _view(row)
    title = engine.registry.latest(row.workflow_key).title if row.workflow_key in engine.registry \
        else row.workflow_key
    local = row.at.astimezone(ZONE)
    return {"title": title, "workflow": row.workflow_key, "applicant": row.applicant_masked, "status": "booking",
            "status_label": view.status_label,
            "booking": {"number": row.id, "unit": row.unit, "at": local.isoformat(),
                        "when": f"{local:%Y-%m-%d} 周{'一二三四五六日'[local.weekday()]} {local:%H:%M}",
                        "status": row.status}}


def _due(timer: TimerRow) -> datetime:
    assert timer.due_at is not None
    return timer.due_at
