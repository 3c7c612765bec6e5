"""HTTP of the window: the desk and ratings for staff (``/api/v1/desk``, ``/api/v1/ratings``), the printable
告知单, and the public pages anyone may open without logging in (``/public``, ``/api/v1/public``).

The public side shows only what publicity.py returns: the 公示 of each procedure, and the progress of one
matter for the holder of its query code. A code that is wrong, malformed or unknown gets one and the same
answer, and each client address may try a few codes a minute, counted in the store so that every worker
process shares the count (:class:`~caseflow.ratelimit.SharedRateLimiter`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from caseflow.abc import Clock
from caseflow.applicants import ApplicantKey, ApplicantKeyError
from caseflow.appointments import AppointmentError, Appointments
from caseflow.calendar import ZONE
from caseflow.clock import SystemClock
from caseflow.desk import Desk, DeskError
from caseflow.errors import CaseflowError, NotFoundError
from caseflow.publicity import procedure_page, progress
from caseflow.ratelimit import Limiter, SharedRateLimiter
from caseflow.ratings import LEVELS, Ratings
from caseflow.scoring import scorecard
from caseflow.web.auth import ActorDep, WebActor, check_case, engine_of
from caseflow.web.problems import _PROBLEM_CONTENT, ApiError, _problems, error_status, problem
from caseflow.web.schemas import MAX_INT4
from caseflow.windowstats import window_stats

API = "/api/v1"
#: A row id in a path: bounded like case ids, so a huge number is a 422, never a database overflow.
RowId = Annotated[int, PathParam(ge=1, le=MAX_INT4)]
#: Progress queries and ratings per client address per minute.
PUBLIC_LIMIT = 10
#: The problems each kind of route may answer (documented in /openapi.json, checked by the schema fuzz).
_STAFF = _problems(400, 401, 403, 404, 409, 422, 503)
_PUBLIC = {**_problems(400, 404, 422, 503),
           429: {"description": "Too many requests", "content": _PROBLEM_CONTENT}}
_UNKNOWN = "没有查到与该查询码对应的办理事项,请核对查询码 (no matter has this query code)"


class VisitIn(BaseModel):
    """A visit at the desk: the applicant's ID number (stored only as a fingerprint) and the materials ticked."""

    workflow: str
    applicant_id: str = Field(min_length=6, max_length=40)
    brought: list[str] = []
    applies: list[str] = []


class OpenIn(BaseModel):
    """Accept the file (or handle it on the spot): case data and, for acceptance, the responsible person."""

    data: dict[str, Any] = {}
    responsible: str | None = None


class OnTheSpotIn(VisitIn):
    """当场办结 in one call: the visit (complete file) and the case data."""

    data: dict[str, Any] = {}


class NoticeIn(BaseModel):
    """Issue the 一次告知单: extra materials found defective, and a leader's reason to override 一次告知."""

    also: list[str] = []
    reason: str | None = None


class RatingIn(BaseModel):
    """A rating recorded by the clerk from the window's 评价器."""

    case_id: int | None = Field(default=None, ge=1, le=MAX_INT4)
    visit_id: int | None = Field(default=None, ge=1, le=MAX_INT4)
    level: int | str
    comment: str = Field(default="", max_length=500)


class SettleIn(BaseModel):
    """The outcome of a follow-up: rectify (整改), explain (解释说明) or review (申诉复核)."""

    outcome: str
    note: str = Field(min_length=1, max_length=2000)


class BookingIn(BaseModel):
    """A booking: the procedure, the unit, the slot's start (with its zone) and the applicant's ID number."""

    workflow: str = Field(max_length=100)
    unit: str = Field(max_length=100)
    at: datetime
    applicant_id: str = Field(min_length=6, max_length=40)


class OutcomeIn(BaseModel):
    """A booking's outcome: served, no_show (群众爽约) or missed (单位违约)."""

    outcome: str = Field(max_length=20)


class CodeIn(BaseModel):
    """A query code (in the body, so it stays out of URLs and access logs)."""

    code: str = Field(default="", max_length=100)


class PublicRatingIn(CodeIn):
    """The applicant's rating with the query code."""

    level: int | str
    comment: str = Field(default="", max_length=500)


def _site_key(request: Request) -> ApplicantKey | None:
    """The applicant-fingerprint secret, read once per app (``app.state.applicant_key``), not per request.

    While none is configured each request tries again (an administrator may add one while the server
    runs) and the desk refuses, by name, only what needs a fingerprint. One read is kept for good: the
    secret in use must never change under the stored fingerprints.
    """
    key: ApplicantKey | None = getattr(request.app.state, "applicant_key", None)
    if key is None:
        try:
            key = request.app.state.applicant_key = ApplicantKey.configured()
        except ApplicantKeyError:
            return None
    return key


def _desk(request: Request) -> Desk:
    return Desk(engine_of(request), key=_site_key(request))


def _appointments(request: Request) -> Appointments:
    return Appointments(engine_of(request), key=_site_key(request))


def _ratings(request: Request) -> Ratings:
    return Ratings(engine_of(request))


def _limiter(request: Request, scope: str) -> Limiter:
    """The limiter of ``scope`` ("code": progress and ratings, which both take a query code; "booking").

    ``app.state.public_limiter``, when set, replaces them all (an embedding application's own). The windows
    follow the wall clock, not the engine's (a demo served at a fixed ``CASEFLOW_NOW`` must not lock an
    address out for good); ``app.state.rate_clock`` replaces it (tests move it).
    """
    chosen: Limiter | None = getattr(request.app.state, "public_limiter", None)
    if chosen is not None:
        return chosen
    limiters: dict[str, Limiter] | None = getattr(request.app.state, "public_limiters", None)
    if limiters is None:
        limiters = request.app.state.public_limiters = {}
    if scope not in limiters:
        clock: Clock = getattr(request.app.state, "rate_clock", None) or SystemClock()
        limiters[scope] = SharedRateLimiter(engine_of(request).store, PUBLIC_LIMIT, 60, clock=clock, scope=scope)
    return limiters[scope]


def _throttle(request: Request, scope: str = "code") -> None:
    client = request.client.host if request.client else "?"
    wait = _limiter(request, scope).hit(client)
    if wait:
        raise ApiError(429, "too-many-requests", "Too many requests",
                       "查询过于频繁,请稍后再试 (too many tries from this address; wait and retry)",
                       headers={"Retry-After": str(wait)})


def _missing(what: str) -> ApiError:
    return ApiError(404, "not-found", "Not found", f"no {what}")


def _visit_visible(request: Request, actor: Any, visit_id: int) -> None:
    try:
        visit = _desk(request).get_visit(visit_id)
    except NotFoundError:
        raise _missing(f"visit has the id {visit_id}") from None
    if not actor.sees_unit(visit.unit):
        raise _missing(f"visit has the id {visit_id}")


def add_window_routes(app: FastAPI) -> None:
    """Register the desk, rating, statistics and public routes."""

    # ---------------------------------------------------------------- desk (staff)

    @app.post(f"{API}/desk/visits", tags=["desk"], status_code=201, responses=_STAFF)
    def record_visit(body: VisitIn, request: Request, actor: ActorDep) -> Response:
        """Record a visit; the answer lists what is missing and any 第三趟 warning."""
        visit = _desk(request).visit(body.workflow, applicant_id=body.applicant_id, actor=actor.id,
                                     brought=body.brought, applies=body.applies)
        return JSONResponse(visit.to_dict(), status_code=201)

    @app.get(f"{API}/desk/visits/{{visit_id}}", tags=["desk"], responses=_STAFF)
    def get_visit(visit_id: RowId, request: Request, actor: ActorDep) -> Response:
        """A visit of the actor's units."""
        _visit_visible(request, actor, visit_id)
        return JSONResponse(_desk(request).get_visit(visit_id).to_dict())

    @app.post(f"{API}/desk/visits/{{visit_id}}/accept", tags=["desk"], status_code=201, responses=_STAFF)
    def accept(visit_id: RowId, request: Request, actor: ActorDep,
               body: Annotated[OpenIn | None, Body()] = None) -> Response:
        """Accept the file: the case opens with the visit linked; the receipt carries the query code."""
        _visit_visible(request, actor, visit_id)
        body = body or OpenIn()
        receipt = _desk(request).accept(visit_id, actor=actor.id, data=body.data, responsible=body.responsible)
        return JSONResponse(receipt.to_dict(), status_code=201)

    @app.post(f"{API}/desk/visits/{{visit_id}}/on-the-spot", tags=["desk"], status_code=201, responses=_STAFF)
    def on_the_spot(visit_id: RowId, request: Request, actor: ActorDep,
                    body: Annotated[OpenIn | None, Body()] = None) -> Response:
        """当场办结: the case opens and closes at once (counted 即办)."""
        _visit_visible(request, actor, visit_id)
        receipt = _desk(request).handle_on_the_spot(visit_id, actor=actor.id, data=(body or OpenIn()).data)
        return JSONResponse(receipt.to_dict(), status_code=201)

    @app.post(f"{API}/desk/on-the-spot", tags=["desk"], status_code=201, responses=_STAFF)
    def visit_on_the_spot(body: OnTheSpotIn, request: Request, actor: ActorDep) -> Response:
        """当场办结 in one call: the visit is recorded and the case opens and closes, in one transaction."""
        receipt = _desk(request).on_the_spot(body.workflow, applicant_id=body.applicant_id, actor=actor.id,
                                             brought=body.brought, applies=body.applies, data=body.data)
        return JSONResponse(receipt.to_dict(), status_code=201)

    @app.post(f"{API}/desk/visits/{{visit_id}}/notice", tags=["desk"], status_code=201, responses=_STAFF)
    def issue_notice(visit_id: RowId, request: Request, actor: ActorDep,
                     body: Annotated[NoticeIn | None, Body()] = None) -> Response:
        """Issue the 一次告知单 (JSON, with its plain-text form and the query code)."""
        _visit_visible(request, actor, visit_id)
        body = body or NoticeIn()
        notice = _desk(request).issue_notice(visit_id, actor=actor.id, also=body.also, reason=body.reason)
        return JSONResponse({**notice.to_dict(), "text": notice.to_text(), "html": f"/notices/{notice.id}"},
                            status_code=201)

    @app.get(f"{API}/notices/{{notice_id}}", tags=["desk"], responses=_STAFF)
    def get_notice(notice_id: RowId, request: Request, actor: ActorDep) -> Response:
        """A 告知单 of the actor's units (without its query code, which is stored hashed)."""
        try:
            notice = _desk(request).notice(notice_id)
        except NotFoundError:
            raise _missing(f"告知单 {notice_id}") from None
        if not actor.sees_unit(notice.unit):
            raise _missing(f"告知单 {notice_id}")
        return JSONResponse({**notice.to_dict(), "text": notice.to_text()})

    @app.get("/notices/{notice_id}", include_in_schema=False)
    def notice_page(notice_id: RowId, request: Request, actor: WebActor) -> Response:
        """The printable 一次告知单."""
        try:
            notice = _desk(request).notice(notice_id)
        except NotFoundError:
            raise _missing(f"告知单 {notice_id}") from None
        if not actor.sees_unit(notice.unit):
            raise _missing(f"告知单 {notice_id}")
        from caseflow.web.pages import templates

        return templates().TemplateResponse(request, "notice.html", {"actor": actor, "notice": notice,
                                                                     "now": engine_of(request).clock.now()})

    # ---------------------------------------------------------------- ratings (staff)

    @app.post(f"{API}/ratings", tags=["ratings"], status_code=201, responses=_STAFF)
    def rate(body: RatingIn, request: Request, actor: ActorDep) -> Response:
        """Record the 评价器's result for a finished case or settled visit of the actor's unit."""
        if body.case_id is not None:
            check_case(engine_of(request), actor, body.case_id)
        view = _ratings(request).rate(level=body.level, actor=actor.id, case_id=body.case_id,
                                      visit_id=body.visit_id, comment=body.comment)
        return JSONResponse(view.to_dict(), status_code=201)

    @app.post(f"{API}/ratings/{{rating_id}}/settle", tags=["ratings"], responses=_STAFF)
    def settle(rating_id: RowId, body: SettleIn, request: Request,
               actor: ActorDep) -> Response:
        """Record the follow-up's outcome (the follow-up case's leader, or an administrator)."""
        try:
            rating = _ratings(request).get(rating_id)
        except NotFoundError:
            raise _missing(f"rating has the id {rating_id}") from None
        if not actor.sees_unit(rating.unit):
            raise _missing(f"rating has the id {rating_id}")
        case = _ratings(request).settle(rating_id, body.outcome, actor=actor.id, note=body.note)
        return JSONResponse(case.to_dict())

    @app.get(f"{API}/window/stats", tags=["queries"], responses=_STAFF)
    def stats(request: Request, actor: ActorDep, month: str, unit: str | None = None) -> Response:
        """一次办结率, 最多跑一次率, 即办, 第三趟, 好评率, 差评数, 回访率, 整改率 per unit for ``month``.

        An administrator sees every unit and the total; anyone else one unit they see (their own by default).
        """
        if not actor.is_admin:
            unit = unit or actor.person.unit
            if not actor.sees_unit(unit):
                raise ApiError(404, "unit-not-found", "Not found", f"no unit {unit!r} among the units you see")
        rows = window_stats(engine_of(request).store, month=month, unit=unit)
        return JSONResponse([r.to_dict() for r in rows])

    @app.get(f"{API}/score", tags=["queries"], responses=_STAFF)
    def score(request: Request, actor: ActorDep, month: str) -> Response:
        """The month's 考评 scorecard (the shipped rule sheet) for the actor's units."""
        card = scorecard(engine_of(request).store, month=month).to_dict()
        card["units"] = [u for u in card["units"] if actor.sees_unit(u["key"])]
        card["people"] = [p for p in card["people"] if actor.sees_unit(p["unit"])]
        return JSONResponse(card)

    # ---------------------------------------------------------------- bookings

    @app.get(f"{API}/desk/bookings/due", tags=["desk"], responses=_STAFF)
    def bookings_due(request: Request, actor: ActorDep, unit: str | None = None) -> Response:
        """Bookings the unit must serve now: from half an hour before their instant until an outcome."""
        unit = unit or actor.person.unit
        if not actor.sees_unit(unit):
            raise _missing(f"unit {unit!r} among the units you see")
        return JSONResponse([a.to_dict() for a in _appointments(request).due(unit)])

    @app.post(f"{API}/desk/bookings/{{booking_id}}/outcome", tags=["desk"], responses=_STAFF)
    def booking_outcome(booking_id: RowId, body: OutcomeIn, request: Request,
                        actor: ActorDep) -> Response:
        """Record a booking's outcome (the actor must be of its unit)."""
        try:
            view = _appointments(request).record(booking_id, body.outcome, actor=actor.id)
        except NotFoundError:
            raise _missing(f"booking has the id {booking_id}") from None
        return JSONResponse(view.to_dict())

    @app.get(f"{API}/public/slots", tags=["public"], responses=_PUBLIC)
    def public_slots(request: Request, workflow: str, unit: str, day: date) -> Response:
        """A day's bookable slots of a procedure at a unit, with the places left (no login)."""
        _procedure(request, workflow)
        rows = _appointments(request).slots(unit, workflow, day)
        return JSONResponse([{**r, "at": r["at"].isoformat()} for r in rows])

    @app.post(f"{API}/public/bookings", tags=["public"], status_code=201, responses=_PUBLIC)
    def public_book(body: BookingIn, request: Request) -> Response:
        """Book a slot (no login; rate-limited like the progress query)."""
        _throttle(request, "booking")
        _procedure(request, body.workflow)
        view = _appointments(request).book(body.unit, body.workflow, body.at,
                                                     applicant_id=body.applicant_id)
        return JSONResponse(view.to_dict(), status_code=201)

    # ---------------------------------------------------------------- public (no login)

    @app.get(f"{API}/public/procedures", tags=["public"], responses=_PUBLIC)
    def public_procedures(request: Request) -> Response:
        """Every procedure's 公示 (行政许可法 第三十条), no login."""
        engine = engine_of(request)
        return JSONResponse([procedure_page(d, booking_url=None) for d in _public(engine)])

    @app.get(f"{API}/public/procedures/{{key}}", tags=["public"], responses=_PUBLIC)
    def public_procedure(key: str, request: Request) -> Response:
        """One procedure's 公示 as JSON, no login."""
        return JSONResponse(procedure_page(_procedure(request, key), booking_url=f"/public/procedures/{key}/booking"))

    @app.post(f"{API}/public/progress", tags=["public"], responses=_PUBLIC)
    def public_progress(body: CodeIn, request: Request) -> Response:
        """The progress of the matter with this query code; any other code gets the same 404."""
        _throttle(request)
        seen = progress(engine_of(request), body.code)
        if seen is None:
            return problem(404, "unknown-code", _UNKNOWN, instance=request.url.path)
        return JSONResponse(seen)

    @app.post(f"{API}/public/ratings", tags=["public"], status_code=201, responses=_PUBLIC)
    def public_rate(body: PublicRatingIn, request: Request) -> Response:
        """The applicant rates the finished matter of this query code (once)."""
        _throttle(request)
        try:
            view = _ratings(request).rate_by_code(body.code, body.level, comment=body.comment)
        except NotFoundError:
            return problem(404, "unknown-code", _UNKNOWN, instance=request.url.path)
        return JSONResponse({"level": view.level, "label": view.label}, status_code=201)

    @app.get("/public", include_in_schema=False)
    def public_index(request: Request) -> Response:
        return _public_page(request, "public_index.html", procedures=[
            procedure_page(d) for d in _public(engine_of(request))])

    @app.get("/public/procedures/{key}", include_in_schema=False)
    def public_procedure_page(key: str, request: Request) -> Response:
        return _public_page(request, "public_procedure.html", page=procedure_page(
            _procedure(request, key), booking_url=f"/public/procedures/{key}/booking"))

    @app.get("/public/procedures/{key}/booking", include_in_schema=False)
    def public_booking_page(key: str, request: Request, unit: str | None = None, day: str | None = None
                            ) -> Response:
        """预约 without login: the units, the next days with free slots, a day's slots and the form."""
        return _booking_page(request, _bookable(request, key), unit, day)

    @app.post("/public/procedures/{key}/booking", include_in_schema=False)
    async def public_book_page(key: str, request: Request) -> Response:
        """Book the chosen slot; the confirmation shows the booking and its query code, a refusal says why."""
        from caseflow.web.pages import _form

        defn = _bookable(request, key)
        form = await _form(request)
        unit, day, chosen = form.get("unit") or None, form.get("day") or None, form.get("at", "")
        client = request.client.host if request.client else "?"
        wait = _limiter(request, "booking").hit(client)
        if wait:
            return _booking_page(request, defn, unit, day, status=429, chosen=chosen, headers={
                "Retry-After": str(wait)}, error=f"预约操作过于频繁,请 {wait} 秒后再试")
        try:
            at = datetime.fromisoformat(chosen) if chosen else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            return _booking_page(request, defn, unit, day, status=422, error="请先选择一个预约时段")
        if not unit:
            return _booking_page(request, defn, unit, day, status=422, error="请先选择办理单位")
        try:
            booked = _appointments(request).book(unit, defn.key, at,
                                                           applicant_id=form.get("applicant_id", ""))
        except ApplicantKeyError:
            return _booking_page(request, defn, unit, day, status=503, chosen=chosen,
                                 error="网上预约暂不可用,请致电或到窗口预约 (the site has no secret for applicant "
                                       "fingerprints configured)")
        except (AppointmentError, DeskError) as exc:
            return _booking_page(request, defn, unit, day, status=422, chosen=chosen, error=exc.zh)
        except CaseflowError:
            return _booking_page(request, defn, unit, day, status=422, chosen=chosen,
                                 error="预约未成功,请检查填写的内容后重试")
        local = booked.at.astimezone(ZONE)
        return _public_page(request, "public_booking.html", status=201, page=procedure_page(defn), booked=booked,
                            when=f"{local:%Y-%m-%d} 周{'一二三四五六日'[local.weekday()]} {local:%H:%M}")

    @app.get("/public/progress", include_in_schema=False)
    def public_progress_form(request: Request) -> Response:
        return _public_page(request, "public_progress.html", seen=None, error=None, levels=LEVELS)

    @app.post("/public/progress", include_in_schema=False)
    async def public_progress_page(request: Request) -> Response:
        from caseflow.web.pages import _form

        form = await _form(request)
        _throttle(request)
        code = form.get("code", "")
        message, error = None, None
        if form.get("level"):
            try:
                rating = _ratings(request).rate_by_code(code, form["level"], comment=form.get("comment", ""))
                message = f"感谢您的评价:{rating.label}"
            except NotFoundError:
                pass
            except CaseflowError as exc:
                error = str(exc) if error_status(exc) != 404 else None
        seen = progress(engine_of(request), code)
        if seen is None:
            return _public_page(request, "public_progress.html", status=404, seen=None, error=_UNKNOWN,
                                levels=LEVELS)
        return _public_page(request, "public_progress.html", seen=seen, code=code, error=error, msg=message,
                            levels=LEVELS)


def _public(engine: Any) -> list[Any]:
    """The procedures published to the public: every one with materials or declared service terms."""
    return [d for d in engine.registry if d.materials or d.service.declared]


def _procedure(request: Request, key: str) -> Any:
    for defn in _public(engine_of(request)):
        if defn.key == key:
            return defn
    raise ApiError(404, "procedure-not-found", "Not found", f"no public procedure is called {key!r}")


def _public_page(request: Request, name: str, *, status: int = 200, headers: dict[str, str] | None = None,
                 **context: Any) -> Response:
    from caseflow.web.pages import templates

    response: HTMLResponse = templates().TemplateResponse(
        request, name, {"actor": None, "msg": context.pop("msg", None), **context}, status_code=status,
        headers=headers)
    return response


def _bookable(request: Request, key: str) -> Any:
    """A public procedure that takes bookings (``service.booking``), or 404."""
    defn = _procedure(request, key)
    if not defn.service.booking:
        raise ApiError(404, "procedure-not-found", "Not found", f"{key!r} takes no bookings")
    return defn


def _booking_page(request: Request, defn: Any, unit: str | None, day_text: str | None, *,
                  status: int = 200, error: str | None = None, chosen: str = "",
                  headers: dict[str, str] | None = None) -> Response:
    """The booking page: the units, the next days with free slots, the slots of ``day_text`` and the form."""
    bookings = _appointments(request)
    now = engine_of(request).clock.now()
    units = bookings.units(defn.key)
    context: dict[str, Any] = {"page": procedure_page(defn), "units": units, "unit": None, "days": [],
                               "day": None, "slots": [], "working": True, "chosen": chosen}
    if unit is not None and unit not in units:
        error = error or "没有该办理单位,请从列表中选择"
        unit = None
    unit = unit or (units[0] if units else None)
    if unit is not None:
        context["unit"] = unit
        try:
            days = bookings.bookable_days(unit, defn.key)
            day = date.fromisoformat(day_text) if day_text else (days[0][0] if days else None)
            context["days"] = days
            if day is not None:
                slots = [x for x in bookings.slots(unit, defn.key, day) if x["at"] > now]
                context.update(day=day, slots=slots, working=engine_of(request).calendar.is_workday(day))
        except AppointmentError as exc:  # before ValueError, which it also is
            error = error or exc.zh
        except ValueError:
            error = error or "日期格式不正确,请从页面上选择日期"
        except CaseflowError:
            error = error or "该日期不可预约,请另选日期"
    elif not units:
        error = error or "本事项暂无可预约的办理单位"
    return _public_page(request, "public_booking.html", status=status, error=error, headers=headers, **context)
