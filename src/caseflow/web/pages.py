"""The server-rendered web console (Jinja2 pages at ``/``): queue, case, board, administration."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from caseflow.appointments import Appointments
from caseflow.board import board_data, timer_level, window_board
from caseflow.engine import Engine
from caseflow.errors import (
    CaseflowError,
    CommandError,
    ConflictError,
)
from caseflow.narrate import Labels, case_data_items, describe_event, status_text
from caseflow.store import TimerRow
from caseflow.timelimits import TimeLimit
from caseflow.timing import ACTIVE
from caseflow.tokens import csrf_token, revoke
from caseflow.web.auth import COOKIE_NAME, Actor, WebActor, check_case, engine_of, resolve_actor
from caseflow.web.commands import triggers_for
from caseflow.web.formats import fmt_due, fmt_instant
from caseflow.web.problems import ApiError, error_status
from caseflow.web.schemas import CaseId
from caseflow.web.svg import month_chart, timeline

WEB_DIR = Path(__file__).parent

# ------------------------------------------------------------------------------------------ web console


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    templates.env.filters["when"] = fmt_instant
    templates.env.filters["due"] = fmt_due
    templates.env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.0f}%"
    templates.env.filters["show"] = lambda v: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    templates.env.globals["status_text"] = status_text
    return templates


_TEMPLATES: Jinja2Templates | None = None


def templates() -> Jinja2Templates:
    """The console's Jinja2 templates (built once)."""
    global _TEMPLATES  # noqa: PLW0603 - one environment per process, built on first use
    if _TEMPLATES is None:
        _TEMPLATES = _templates()
    return _TEMPLATES


def error_page(request: Request, status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> Response:
    titles = {400: "请求有误", 401: "未登录", 403: "无权操作", 404: "未找到", 405: "不支持的操作", 409: "冲突",
              412: "案件已被他人修改", 422: "无法办理", 503: "服务暂不可用"}
    return templates().TemplateResponse(request, "error.html", {
        "actor": None, "title": titles.get(status, "出错了"), "status": status, "detail": detail},
        status_code=status, headers=dict(headers or {}))


async def _form(request: Request) -> dict[str, str]:
    """An url-encoded form (no multipart needed: the console posts plain fields)."""
    body = await request.body()
    if len(body) > 64_000:
        raise ApiError(400, "form-too-large", "Bad request", "the form is too large")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _check_csrf(actor: Actor, form: Mapping[str, str]) -> None:
    if not hmac.compare_digest(form.get("csrf", ""), csrf_token(actor.token)):
        raise ApiError(403, "csrf", "Forbidden", "表单已过期, 请刷新页面后重试 (the form's CSRF token does not match)")


def _page(request: Request, name: str, actor: Actor | None, status: int = 200, **context: Any) -> Response:
    engine = engine_of(request)
    base = {"actor": actor, "csrf": csrf_token(actor.token) if actor else "", "now": engine.clock.now()}
    return templates().TemplateResponse(request, name, {**base, **context}, status_code=status)


def _safe_next(target: str | None) -> str:
    # Only local paths: never redirect a freshly logged-in user to another site.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def add_web_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def home(actor: WebActor) -> Response:
        return RedirectResponse("/board" if actor.is_admin or actor.leads else "/queue", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Response:
        return _page(request, "login.html", None, next=_safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        token = form.get("token", "").strip()
        engine = engine_of(request)
        actor = await run_in_threadpool(resolve_actor, engine.store, token)
        if actor is None:
            return _page(request, "login.html", None, status=401, next=_safe_next(form.get("next")),
                         error="令牌无效或已被吊销 (the token is unknown or revoked)")
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        # HttpOnly: scripts never see the token; SameSite=Strict: other sites cannot post with it.
        response.set_cookie(COOKIE_NAME, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=12 * 3600, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        # Logging out ends the session everywhere: the token the console was opened with is revoked, so a
        # copied cookie is worth nothing afterwards (log in to the console with a token of its own).
        token = request.cookies.get(COOKIE_NAME)
        if token:
            engine = engine_of(request)
            if await run_in_threadpool(resolve_actor, engine.store, token) is not None:
                await run_in_threadpool(revoke, engine.store, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @app.get("/board", include_in_schema=False)
    def board_page(request: Request, actor: WebActor) -> Response:
        engine = engine_of(request)
        now = engine.clock.now()
        data = board_data(engine, actor.units, now)
        return _page(request, "board.html", actor, board=data, chart=month_chart(data["monthly"]),
                     window=window_board(engine.store, actor.units, now))

    @app.get("/queue", include_in_schema=False)
    def queue_page(request: Request, actor: WebActor, msg: str | None = None) -> Response:
        engine = engine_of(request)
        return _page(request, "queue.html", actor, **queue_context(engine, actor), msg=msg, error=None)

    @app.post("/cases", include_in_schema=False)
    async def open_from_form(request: Request, actor: WebActor) -> Response:
        form = await _form(request)
        _check_csrf(actor, form)
        engine = engine_of(request)
        try:
            data = parse_data_lines(form.get("data", ""))
            key = form.get("workflow", "")
            if key in engine.registry:
                # Clerks write the labels they read (申请人=李四); the record keeps the workflow's field keys.
                by_label = {f.label: f.key for f in engine.registry.latest(key).fields.values()}
                data = {by_label.get(name, name): value for name, value in data.items()}
            view = await run_in_threadpool(lambda: engine.open(key, actor=actor.id, data=data))
        except CaseflowError as exc:
            ctx = await run_in_threadpool(queue_context, engine, actor)
            return _page(request, "queue.html", actor, status=error_status(exc), **ctx, msg=None, error=str(exc))
        return RedirectResponse(f"/cases/{view.id}?msg={quote('已立案')}", status_code=303)

    @app.get("/cases/{case_id}", include_in_schema=False)
    def case_page(request: Request, case_id: CaseId, actor: WebActor, msg: str | None = None) -> Response:
        engine = engine_of(request)
        check_case(engine, actor, case_id)
        return _page(request, "case.html", actor, **case_context(engine, actor, case_id), msg=msg, error=None)

    @app.post("/cases/{case_id}/{action}", include_in_schema=False)
    async def case_action(request: Request, case_id: CaseId, action: str, actor: WebActor) -> Response:
        form = await _form(request)
        _check_csrf(actor, form)
        engine = engine_of(request)
        await run_in_threadpool(check_case, engine, actor, case_id)
        try:
            message = await run_in_threadpool(web_command, engine, actor, case_id, action, form)
        except CaseflowError as exc:
            status = error_status(exc)
            text = str(exc)
            if isinstance(exc, ConflictError):
                status, text = 412, f"案件已被他人修改, 请核对后重试。{exc}"
            ctx = await run_in_threadpool(case_context, engine, actor, case_id)
            return _page(request, "case.html", actor, status=status, **ctx, msg=None, error=text)
        return RedirectResponse(f"/cases/{case_id}?msg={quote(message)}", status_code=303)


def parse_data_lines(text: str) -> dict[str, str]:
    """``name=value`` lines (or ``name：value``) from a console textarea."""
    data = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.replace("：", "=").partition("=")
        if not sep or not name.strip():
            raise CommandError(f"每行写作 名称=内容 (NAME=VALUE), got {line!r}")
        data[name.strip()] = value.strip()
    return data


def web_command(engine: Engine, actor: Actor, case_id: int, action: str, form: Mapping[str, str]) -> str:
    """Run a console form's command; returns the message shown after the redirect."""
    version = form.get("version")
    expected = int(version) if version and version.isdigit() and len(version) < 12 else None
    if action == "fire":
        trigger = form.get("trigger", "")
        data = {k[5:]: v for k, v in form.items() if k.startswith("data_") and v.strip()}
        data.update(parse_data_lines(form.get("extra", "")))
        engine.fire(case_id, trigger, actor=actor.id, data=data, expected_version=expected)
        return f"已办理: {form.get('label') or trigger}"
    if action == "pause":
        timer, _, reason = form.get("timer_reason", "").partition("|")
        engine.pause(case_id, timer, reason=reason, actor=actor.id, expected_version=expected)
        return f"已暂停计时: {reason}"
    if action == "resume":
        engine.resume(case_id, form.get("timer", ""), actor=actor.id, expected_version=expected)
        return "已恢复计时"
    if action == "extend":
        engine.extend(case_id, form.get("timer", ""), by=form.get("by", ""), grounds=form.get("grounds", ""),
                      actor=actor.id, expected_version=expected)
        return "已延期"
    if action == "hand-over":
        engine.hand_over(case_id, to=form.get("to", "").strip(), actor=actor.id, slip=form.get("slip") or None,
                         expected_version=expected)
        return "已移交"
    if action == "close":
        engine.close(case_id, actor=actor.id, reason=form.get("reason", ""), expected_version=expected)
        return "已结案"
    raise CommandError(f"unknown action {action!r}")


# ------------------------------------------------------------------------------------ page contexts


def queue_context(engine: Engine, actor: Actor) -> dict[str, Any]:
    """The clerk's queue: most urgent first, with the colour of each clock."""
    now = engine.clock.now()
    items = engine.queue(actor.id)
    levels: dict[tuple[int, str], str] = {}
    texts: dict[tuple[int, str], str] = {}
    if items:
        with engine.store.session() as s:
            rows = list(s.exec(select(TimerRow).where(
                TimerRow.case_id.in_({i.case_id for i in items}),  # type: ignore[attr-defined]
                TimerRow.status.in_(ACTIVE))))  # type: ignore[attr-defined]
        levels = {(r.case_id, r.name): timer_level(r, now) for r in rows}
        texts = {(r.case_id, r.name): engine.time_left(r, now) for r in rows}
    titles = {d.key: d.title for d in engine.registry}
    people = {q.id: q.name for q in engine.people()}

    def state_label(workflow: str, state: str) -> str:
        try:
            return engine.registry.latest(workflow).state(state).label
        except (CaseflowError, KeyError, LookupError):
            return "其他状态"

    rows_out = [{"item": i, "level": levels.get((i.case_id, i.timer), "green"),
                 "time_left": texts.get((i.case_id, i.timer), i.time_left),
                 "workflow_title": titles.get(i.workflow, i.workflow), "state_label": state_label(i.workflow, i.state),
                 # The person the step is on (the absent colleague when standing in, 代岗).
                 "responsible_name": people.get(i.assignee or i.responsible, i.assignee or i.responsible)}
                for i in items]
    openable = [d for d in engine.registry if actor.is_admin or actor.person.role_set & set(d.roles)]
    # 预约 due at the person's unit now (appointments.py): shown above the clocks, at their instant.
    bookings = [{"booking": a, "title": titles.get(a.workflow, a.workflow), "late": a.at <= now}
                for a in Appointments(engine).due(actor.person.unit, now=now)]
    return {"rows": rows_out, "workflows": openable, "bookings": bookings}


def case_context(engine: Engine, actor: Actor, case_id: int) -> dict[str, Any]:
    """The case page: summary, SVG timeline, events, and the commands the person may give."""
    now = engine.clock.now()
    view = engine.get(case_id)
    events = engine.history(case_id)
    defn = engine.definition(view.workflow_version)
    with engine.store.session() as s:
        rows = list(s.exec(select(TimerRow).where(TimerRow.case_id == case_id).order_by(TimerRow.id)))  # type: ignore[arg-type]
    people = {q.id: q for q in engine.people()}
    triggers = triggers_for(engine, actor, case_id)
    timers: list[dict[str, Any]] = []
    for row in rows:
        try:
            tdef = defn.timer(row.name)
            label, pauses, extendable = tdef.label, list(tdef.pauses), tdef.extension is not None
            basis = tdef.basis
        except (KeyError, LookupError):
            label, pauses, extendable, basis = row.name, [], False, ""
        assignee = row.assignee or view.responsible
        timers.append({"row": row, "label": label, "pauses": pauses, "extendable": extendable,
                       "level": timer_level(row, now) if row.status in ACTIVE else row.status,
                       "time_left": engine.time_left(row, now) if row.status in ACTIVE else "",
                       "limit": _limit_text(row), "basis": basis, "assignee": assignee,
                       "assignee_name": getattr(people.get(assignee), "name", assignee)})
    kinds = {"open": "受理", "pause": "暂停计时", "resume": "恢复计时", "extend": "批准延期", "hand_over": "移交",
             "reassign": "改派", "close": "结案", "recompute": "重算期限", "hand_over_step": "转交环节",
             "expire": "期满自动办理"}
    labels = Labels.from_store(engine.store, registry=[defn])
    # Personal data in full for the responsible clerk only; everyone else reads it masked by kind.
    full = actor.id == view.responsible
    event_rows = [{"e": e, "action": labels.transition(view.workflow, e.trigger, view.workflow_version)
                   if e.kind == "fire" else kinds.get(e.kind, "其他操作"),
                   "actor": labels.person(e.actor),
                   "text": describe_event(e, labels, view.workflow, version=view.workflow_version, full=full,
                                          head=False),
                   "from": _state_label(defn, e.from_state), "to": _state_label(defn, e.to_state)} for e in events]
    closed = view.closed_at is not None
    may_act = not closed and (actor.is_admin or actor.id == view.responsible
                              or getattr(people.get(view.responsible), "leader_id", None) == actor.id)
    return {
        "case": view, "events": events, "event_rows": event_rows, "timers": timers,
        "triggers": [] if closed else triggers,
        "timeline": timeline(view, rows, events, now, calendar=engine.calendar,
                             labels={t["row"].id: t["label"] for t in timers},
                             event_titles={e.seq: f"{row['actor']} {row['text']}" for e, row in zip(events, event_rows,
                                                                                                   strict=True)}),
        "workflow_title": defn.title, "people": people,
        "case_fields": case_data_items(labels, view.workflow, view.data, version=view.workflow_version, full=full),
        "field_labels": {k: f.label for k, f in defn.fields.items()},
        "responsible_name": getattr(people.get(view.responsible), "name", view.responsible),
        "may_act": may_act, "closed": closed,
        "handover_people": [q for q in people.values() if actor.sees_unit(q.unit) and q.id != view.responsible],
    }


def _state_label(defn: Any, state: str | None) -> str:
    if state is None:
        return "—"
    try:
        return str(defn.state(state).label)
    except (CaseflowError, KeyError, LookupError):
        return "其他状态"


def _limit_text(row: TimerRow) -> str:
    spec = json.loads(row.limit_spec)
    extra = sum(int(e["amount"]) for e in json.loads(row.extensions))
    try:
        return TimeLimit(int(spec["amount"]) + extra, spec["unit"]).chinese() + (
            f" (含延期 {extra})" if extra else "")
    except (CaseflowError, KeyError, ValueError):
        return str(spec.get("amount", ""))


