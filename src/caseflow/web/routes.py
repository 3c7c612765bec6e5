"""The ``/api/v1`` routes: each parses, authorizes, calls the engine and answers JSON."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from caseflow.board import board_data
from caseflow.calendar import WorkCalendar
from caseflow.engine import Engine
from caseflow.errors import (
    CalendarCoverageError,
    CaseflowError,
    PermissionDeniedError,
    PersonNotFoundError,
    TimeLimitError,
    WorkflowNotFoundError,
)
from caseflow.store import Person
from caseflow.timelimits import ExcludedPeriod, TimeLimit, explain_due
from caseflow.views import CaseView
from caseflow.web.auth import ActorDep, check_case, check_person_visible, engine_of, require_admin
from caseflow.web.commands import (
    API_PREFIX,
    case_response,
    key_was_used,
    local_instant,
    read_instant,
    run_command,
    scoped_key,
    triggers_for,
)
from caseflow.web.problems import _COMMON, _ETAG_HEADER, _ON_CASE, ApiError, _problems
from caseflow.web.schemas import (
    _SAFE,
    AbsenceIn,
    AbsenceOut,
    AuditOut,
    BoardOut,
    CaseId,
    CaseOut,
    CloseIn,
    DeadlineOut,
    DefinitionIn,
    EventOut,
    ExtendIn,
    FireIn,
    HandOverIn,
    HandOverStepIn,
    HolidayUploadOut,
    HolidayYearOut,
    IdemKey,
    Ident,
    IfMatch,
    MonthOut,
    OpenCase,
    PauseIn,
    PersonId,
    PersonIn,
    PersonOut,
    Problem,
    QueueItemOut,
    ReassignIn,
    ReloadOut,
    ResumeIn,
    TriggerOut,
    WorkflowOut,
)
from caseflow.workflowfile import parse_workflow


def _person_out(person: Person, *, with_channel: bool) -> dict[str, Any]:
    return {"id": person.id, "name": person.name, "unit": person.unit, "roles": sorted(person.role_set),
            "leader": person.leader_id, "substitute": person.substitute_id, "admin": bool(person.admin),
            "channel": person.channel if with_channel else None}


def deadline_payload(calendar: WorkCalendar, start: datetime, limit: TimeLimit, excluded: list[ExcludedPeriod],
                     explain: bool) -> dict[str, Any]:
    """The deadline calculator's answer (the CLI's ``deadline --json`` plus the Chinese limit)."""
    try:
        due, steps = explain_due(start, limit, excluded=excluded, calendar=calendar)
    except CaseflowError:
        raise  # already a clear, typed refusal; the clause below must not rewrap it
    except (ValueError, OverflowError, ArithmeticError) as exc:
        # e.g. a month limit reaching past the year 9999: bad input, not a server fault
        raise TimeLimitError(f"{limit} from {start.isoformat()} cannot be computed: {exc}") from None
    payload: dict[str, Any] = {**due.to_dict(), "limit_zh": limit.chinese(),
                               "official_until": calendar.official_until.isoformat()}
    if explain:
        payload["steps"] = [{"day": s.day.isoformat(), "kind": s.kind, "count": s.count, "reason": s.reason,
                             "provisional": s.provisional} for s in steps]
    return payload


def workflow_payload(engine: Engine, key: str) -> dict[str, Any]:
    """A workflow definition as JSON."""
    d = engine.registry.latest(key)
    return {
        "key": d.key, "title": d.title, "version": d.version, "basis": d.basis, "roles": dict(d.roles),
        "states": [{"name": s.name, "label": s.label, "final": s.final} for s in d.states],
        "transitions": [{"trigger": t.trigger, "label": t.label or t.trigger, "from": list(t.sources), "to": t.dest,
                         "roles": list(t.roles), "requires": list(t.requires)} for t in d.transitions],
        "timers": [{"name": t.name, "label": t.label, "limit": str(t.limit), "basis": t.basis, "kind": t.kind,
                    "pauses": list(t.pauses), "extendable": t.extension is not None} for t in d.timers],
    }


# ------------------------------------------------------------------------------------------ API routes


def add_api_routes(app: FastAPI) -> None:
    p = API_PREFIX
    case_ok: dict[int | str, dict[str, Any]] = {200: {"model": CaseOut, "headers": _ETAG_HEADER}}

    # ---------------------------------------------------------------- cases

    @app.post(f"{p}/cases", tags=["cases"], status_code=201, response_model=CaseOut,
              responses={201: {"headers": {**_ETAG_HEADER, "Location": {"schema": {"type": "string"}}}},
                         200: {"model": CaseOut, "description": "A replay of an Idempotency-Key already used",
                               "headers": {**_ETAG_HEADER, "Idempotent-Replayed": {"schema": {"type": "string"}}}},
                         **_problems(400, 401, 403, 404, 409, 422, 503)})
    def open_case(body: OpenCase, request: Request, actor: ActorDep, idempotency_key: IdemKey = None) -> Response:
        """Open a case of ``workflow``; the requesting person opens it (首问负责 unless ``responsible`` is given)."""
        engine = engine_of(request)
        if body.responsible and body.responsible != actor.id:
            check_person_visible(engine, actor, body.responsible)
        key = scoped_key(actor, request, idempotency_key)
        replayed = key_was_used(engine, key)
        for attempt in range(3):
            try:
                view = engine.open(body.workflow, actor=actor.id, at=local_instant(body.at), data=body.data,
                                   responsible=body.responsible, key=key, assign=body.assign)
                break
            except sa.exc.IntegrityError:
                # Two workers opening the first case of a new workflow version both insert its row; the
                # loser's transaction was rolled back whole, so running it again is safe (and replays
                # under an idempotency key).
                if attempt == 2:
                    raise
        return case_response(view, 201, location=True, replayed=replayed)

    @app.get(f"{p}/cases", tags=["cases"], response_model=list[CaseOut], responses=_COMMON)
    def list_cases(request: Request, actor: ActorDep,
                   unit: Annotated[Ident | None, Query(description="Only this unit")] = None,
                   open_only: Annotated[bool, Query(alias="open", description="Only open cases")] = True,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
        """The cases the requesting person may see, newest first."""
        engine = engine_of(request)
        if unit is not None:
            units: Iterable[str | None] = [unit] if actor.sees_unit(unit) else []
        else:
            units = [None] if actor.units is None else sorted(actor.units)
        found: list[CaseView] = []
        for u in units:
            found.extend(engine.cases(unit=u, open_only=open_only, limit=limit))
        found.sort(key=lambda v: -v.id)
        return JSONResponse([v.to_dict() for v in found[:limit]])

    @app.get(f"{p}/cases/{{case_id}}", tags=["cases"], response_model=CaseOut,
             responses={**case_ok, **_problems(400, 401, 404, 422, 503)})
    def get_case(case_id: CaseId, request: Request, actor: ActorDep) -> Response:
        """The case as it stands; its version is the ETag."""
        engine = engine_of(request)
        check_case(engine, actor, case_id)
        return case_response(engine.get(case_id))

    @app.get(f"{p}/cases/{{case_id}}/history", tags=["cases"], response_model=list[EventOut],
             responses=_problems(400, 401, 404, 422, 503))
    def case_history(case_id: CaseId, request: Request, actor: ActorDep) -> Response:
        """Every event of the case, oldest first (hash-chained)."""
        engine = engine_of(request)
        check_case(engine, actor, case_id)
        return JSONResponse([e.to_dict() for e in engine.history(case_id)])

    @app.get(f"{p}/cases/{{case_id}}/triggers", tags=["cases"], response_model=list[TriggerOut],
             responses=_problems(400, 401, 404, 422, 503))
    def case_triggers(case_id: CaseId, request: Request, actor: ActorDep) -> Response:
        """The triggers the requesting person may fire on the case now."""
        engine = engine_of(request)
        check_case(engine, actor, case_id)
        return JSONResponse(triggers_for(engine, actor, case_id))

    @app.post(f"{p}/cases/{{case_id}}/fire", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def fire(case_id: CaseId, body: FireIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
             idempotency_key: IdemKey = None) -> Response:
        """Fire ``trigger``: roles and required data are checked, clocks stop and start."""
        engine = engine_of(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.fire(
            case_id, body.trigger, actor=actor.id, at=local_instant(body.at), data=body.data,
            expected_version=v, key=k, assign=body.assign))

    @app.post(f"{p}/cases/{{case_id}}/pause", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def pause(case_id: CaseId, body: PauseIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
              idempotency_key: IdemKey = None) -> Response:
        """Stop a timer's clock for a reason it admits (函调, 鉴定, 补正 …)."""
        engine = engine_of(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.pause(
            case_id, body.timer, reason=body.reason, actor=actor.id, at=local_instant(body.at), data=body.data,
            expected_version=v, key=k))

    @app.post(f"{p}/cases/{{case_id}}/resume", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def resume(case_id: CaseId, body: ResumeIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
               idempotency_key: IdemKey = None) -> Response:
        """Restart a paused timer."""
        engine = engine_of(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.resume(
            case_id, body.timer, actor=actor.id, at=local_instant(body.at), expected_version=v, key=k))

    @app.post(f"{p}/cases/{{case_id}}/extend", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def extend(case_id: CaseId, body: ExtendIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
               idempotency_key: IdemKey = None) -> Response:
        """Extend a timer within its policy; the requesting person approves."""
        engine = engine_of(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.extend(
            case_id, body.timer, by=body.by, grounds=body.grounds, actor=actor.id, at=local_instant(body.at),
            data=body.data, expected_version=v, key=k))

    @app.post(f"{p}/cases/{{case_id}}/hand-over-step", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def hand_over_step(case_id: CaseId, body: HandOverStepIn, *, request: Request, actor: ActorDep,
                       if_match: IfMatch = None, idempotency_key: IdemKey = None) -> Response:
        """Hand one running step over (转交): ``to`` (holding the step's role) must act on it from now on."""
        engine = engine_of(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.hand_over_step(
            case_id, body.timer, to=body.to, actor=actor.id, reason=body.reason, at=local_instant(body.at),
            expected_version=v, key=k))

    @app.post(f"{p}/cases/{{case_id}}/hand-over", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def hand_over(case_id: CaseId, body: HandOverIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
                  idempotency_key: IdemKey = None) -> Response:
        """Hand the case over to ``to``, who becomes responsible (the case moves to their unit)."""
        engine = engine_of(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.hand_over(
            case_id, to=body.to, actor=actor.id, slip=body.slip, at=local_instant(body.at), expected_version=v,
            key=k))

    @app.post(f"{p}/cases/{{case_id}}/reassign", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def reassign(case_id: CaseId, body: ReassignIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
                 idempotency_key: IdemKey = None) -> Response:
        """A leader (or administrator) gives the case to someone else."""
        engine = engine_of(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.reassign(
            case_id, to=body.to, actor=actor.id, reason=body.reason, at=local_instant(body.at), expected_version=v,
            key=k))

    @app.post(f"{p}/cases/{{case_id}}/close", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def close(case_id: CaseId, body: CloseIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
              idempotency_key: IdemKey = None) -> Response:
        """Close the case outside its workflow (withdrawn, merged …); every timer stops."""
        engine = engine_of(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.close(
            case_id, actor=actor.id, reason=body.reason, at=local_instant(body.at), expected_version=v, key=k))

    # ---------------------------------------------------------------- queries

    @app.get(f"{p}/queue", tags=["queries"], response_model=list[QueueItemOut],
             responses=_problems(400, 401, 404, 422, 503))
    def queue(request: Request, actor: ActorDep,
              person: Annotated[PersonId | None, Query(description="Whose queue (default: yours)")] = None,
              at: Annotated[str | None, Query(max_length=64, description="Instant to judge at (default now)")] = None,
              ) -> Response:
        """A person's running clocks, most urgent first, with the time left (还剩 2 个工作日 / 逾期 3 小时)."""
        engine = engine_of(request)
        who = person or actor.id
        if who != actor.id:
            check_person_visible(engine, actor, who)
        items = engine.queue(who, at=read_instant(at) if at else None)
        return JSONResponse([i.to_dict() for i in items])

    @app.get(f"{p}/board", tags=["queries"], response_model=BoardOut, responses=_COMMON)
    def board(request: Request, actor: ActorDep,
              at: Annotated[str | None, Query(max_length=64, description="Instant to judge at (default now)")] = None,
              ) -> Response:
        """The leader board of the units you see: red/yellow/green counts, overdue clocks, on-time rate by month."""
        engine = engine_of(request)
        now = read_instant(at) if at else engine.clock.now()
        return JSONResponse(board_data(engine, actor.units, now))

    @app.get(f"{p}/deadline", tags=["calendar"], response_model=DeadlineOut, responses=_COMMON)
    def deadline(request: Request, _actor: ActorDep, *,
                 start: Annotated[str, Query(max_length=64, description="Start instant, e.g. 2026-10-03T14:00")],
                 limit: Annotated[str, Query(max_length=40, description='e.g. "20 working_days", "24 hours"')],
                 exclude: Annotated[list[str] | None, Query(
                     max_length=20, description="[REASON=]FROM..TO, dates (instants for hour limits)")] = None,
                 no_roll: Annotated[bool, Query(description="No roll-forward past holidays (在押, 信访)")] = False,
                 last_to_last: Annotated[bool, Query(description="Months: 刑诉解释 第二百零二条")] = False,
                 deemed_next_workday: Annotated[bool, Query(
                     description="Acceptance on a rest day is deemed on the next working day")] = False,
                 next_hour: Annotated[bool, Query(description="Hours count from the next full hour (次时)")] = False,
                 explain: Annotated[bool, Query(description="Add each counted and skipped day")] = False,
                 ) -> Response:
        """When a limit started at ``start`` runs out, on the working-day calendar."""
        rule = TimeLimit.parse(limit)
        rule = TimeLimit(rule.amount, rule.unit, roll_forward=not no_roll,
                         month_end="last_to_last" if last_to_last else "corresponding",
                         start_day="next_workday" if deemed_next_workday else "actual",
                         hour_start="next_hour" if next_hour else "exact")
        if any(len(e) > 200 for e in exclude or ()):
            raise TimeLimitError("an exclude value is longer than 200 characters")
        excluded = [ExcludedPeriod.parse(e, clock=rule.is_clock) for e in exclude or []]
        engine = engine_of(request)
        return JSONResponse(deadline_payload(engine.calendar, read_instant(start), rule, excluded, explain))

    # The yyyymm convertor keeps "/calendar/reload" from also matching this route (a GET there is a 405).
    @app.get(f"{p}/calendar/{{month:yyyymm}}", tags=["calendar"], response_model=MonthOut,
             responses=_problems(400, 401, 404, 422, 503))
    def calendar_month(request: Request, _actor: ActorDep,
                       month: Annotated[str, PathParam(pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                                       description="YYYY-MM")]) -> Response:
        """A month of the working-day calendar: rest days, make-up working days (调休上班), provisional days."""
        engine = engine_of(request)
        year, mon = int(month[:4]), int(month[5:])
        if year < 1:
            raise CalendarCoverageError(f"{month} lies outside the calendar")
        days = engine.calendar.month(year, mon)
        return JSONResponse({"month": month, "official_until": engine.calendar.official_until.isoformat(),
                             "days": [{"day": d.day.isoformat(), "workday": d.workday, "reason": d.reason,
                                       "official": d.official} for d in days]})

    @app.get(f"{p}/workflows", tags=["workflows"], response_model=list[WorkflowOut], responses=_COMMON)
    def workflows(request: Request, _actor: ActorDep) -> Response:
        """Every procedure definition (latest versions)."""
        engine = engine_of(request)
        return JSONResponse([workflow_payload(engine, d.key) for d in engine.registry])

    @app.get(f"{p}/workflows/{{key}}", tags=["workflows"], response_model=WorkflowOut,
             responses=_problems(400, 401, 404, 422, 503))
    def workflow(request: Request, _actor: ActorDep,
                 key: Annotated[str, PathParam(max_length=100, pattern=_SAFE)]) -> Response:
        """One procedure definition: states, transitions, timers."""
        try:
            return JSONResponse(workflow_payload(engine_of(request), key))
        except WorkflowNotFoundError as exc:
            raise ApiError(404, "workflow-not-found", "Not found", str(exc)) from None

    # ---------------------------------------------------------------- people (admin)

    @app.get(f"{p}/me", tags=["people"], response_model=PersonOut, responses=_COMMON)
    def me(actor: ActorDep) -> Response:
        """The person the token acts as."""
        return JSONResponse(_person_out(actor.person, with_channel=True))

    @app.get(f"{p}/people", tags=["people"], response_model=list[PersonOut], responses=_COMMON)
    def people(request: Request, actor: ActorDep) -> Response:
        """The people of the units you see (everyone, for administrators)."""
        found = [q for q in engine_of(request).people() if actor.sees_unit(q.unit)]
        return JSONResponse([_person_out(q, with_channel=actor.is_admin) for q in found])

    @app.post(f"{p}/people", tags=["people"], status_code=201, response_model=PersonOut,
              responses={200: {"model": PersonOut, "description": "Updated (replace)"},
                         **_problems(400, 401, 403, 422, 503)})
    def add_person(body: PersonIn, request: Request, actor: ActorDep) -> Response:
        """Record a person (administrators only); ``replace`` updates an existing one."""
        require_admin(actor, "add people")
        person = engine_of(request).add_person(
            body.id, name=body.name, unit=body.unit, roles=body.roles, leader=body.leader,
            substitute=body.substitute, admin=body.admin, channel=body.channel, replace=body.replace)
        return JSONResponse(_person_out(person, with_channel=True), status_code=200 if body.replace else 201)

    @app.post(f"{p}/people/{{person_id}}/absences", tags=["people"], status_code=201, response_model=AbsenceOut,
              responses=_problems(400, 401, 403, 404, 422, 503))
    def add_absence(body: AbsenceIn, request: Request, actor: ActorDep,
                    person_id: Annotated[str, PathParam(max_length=64, pattern=_SAFE)]) -> Response:
        """Mark a person absent (administrators, or the person's leader): their queue goes to their substitute."""
        engine = engine_of(request)
        person = check_person_visible(engine, actor, person_id)
        if not actor.is_admin and person.leader_id != actor.id:
            raise PermissionDeniedError(
                f"{actor.id!r} may not record absences of {person_id!r}: only administrators and their leader may")
        try:
            engine.mark_absent(person_id, start=body.start, end=body.end)
        except PersonNotFoundError as exc:
            raise ApiError(404, "person-not-found", "Not found", str(exc)) from None
        return JSONResponse({"person": person_id, "from": body.start.isoformat(), "to": body.end.isoformat()},
                            status_code=201)

    @app.post(f"{p}/calendar/reload", tags=["calendar"], response_model=ReloadOut,
              responses=_problems(400, 401, 403, 422, 503))
    def calendar_reload(request: Request, actor: ActorDep) -> Response:
        """Reload the holiday files (administrators): every open deadline that moves is recorded on its case.

        Reads the shipped ``holidays/`` and ``$CASEFLOW_HOLIDAYS_DIR`` on the server; it never takes a path
        from the request.
        """
        require_admin(actor, "reload the holiday calendar")
        from caseflow.calendar import clear_calendar_cache, default_calendar

        engine = engine_of(request)
        clear_calendar_cache()
        calendar = default_calendar()
        sources = os.environ.get("CASEFLOW_HOLIDAYS_DIR") or "holidays/"
        changes = engine.reload_calendar(calendar, source=sources, actor=actor.id)
        return JSONResponse({"official_until": calendar.official_until.isoformat(), "changes": changes})

    @app.put(f"{p}/workflows/{{key}}", tags=["workflows"], response_model=WorkflowOut,
             responses=_problems(400, 401, 403, 409, 422, 503))
    def put_workflow(body: DefinitionIn, request: Request, actor: ActorDep,
                     key: Annotated[str, PathParam(max_length=100, pattern=_SAFE)]) -> Response:
        """Add or revise a procedure definition (administrators).

        The YAML is validated like `caseflow workflows validate`; a valid one is stored in the database and
        serves new cases of every API worker and scheduler from their next command on. Cases already open
        keep the version they were opened under.
        """
        require_admin(actor, "manage workflow definitions")
        defn = parse_workflow(body.yaml, path=f"{key}.yaml (upload)")
        if defn.key != key:
            raise ApiError(422, "key-mismatch", "Unprocessable",
                           f"the definition's key is {defn.key!r}, not {key!r}; PUT it to /workflows/{defn.key}")
        engine = engine_of(request)
        engine.publish_workflow(defn, actor=actor.id)
        return JSONResponse(workflow_payload(engine, key))

    @app.get(f"{p}/holidays", tags=["calendar"], response_model=list[HolidayYearOut], responses=_COMMON)
    def holidays(request: Request, _actor: ActorDep) -> Response:
        """The calendar's years up to the first projected one, with the notice each comes from."""
        calendar = engine_of(request).calendar
        last = calendar.official_until.year + 1
        return JSONResponse([
            {"year": y.year, "source": y.source, "origin": y.origin, "official": y.official,
             "rest_days": len(y.rest_days), "workdays": len(y.workdays)}
            for y in calendar.years.values() if y.year <= last])

    @app.put(f"{p}/holidays/{{year}}", tags=["calendar"], response_model=HolidayUploadOut,
             responses=_problems(400, 401, 403, 409, 422, 503))
    def put_holidays(body: DefinitionIn, request: Request, actor: ActorDep,
                     year: Annotated[int, PathParam(ge=2004, le=2099)]) -> Response:
        """Load a year's holiday notice (administrators) and move every open deadline it changes.

        The text is our YAML or holiday-cn's JSON (``{"year", "papers", "days": [...]}``), validated like
        `caseflow calendar check` (every festival of 全国年节及纪念日放假办法 第二条 arranged or named under
        ``statutory_only``). It is stored in the database: every API worker and scheduler uses it from its
        next command on. ``festivals`` compares it with the statute's projection, festival by festival.
        """
        require_admin(actor, "load holiday notices")
        from caseflow.notices import festival_check, notice_format, read_notice

        engine = engine_of(request)
        engine.refresh()
        fmt = notice_format("", body.yaml)
        name = f"{year}.{'json' if fmt == 'holiday-cn' else 'yaml'} (upload)"
        arrangement = read_notice(name, text=body.yaml, fmt=fmt, working=engine.calendar.is_workday)
        changes = engine.load_notice(arrangement, body.yaml, fmt=fmt, actor=actor.id)
        return JSONResponse({"year": arrangement.year, "source": arrangement.source, "file": name,
                             "format": fmt, "official_until": engine.calendar.official_until.isoformat(),
                             "festivals": [f.to_dict() for f in festival_check(arrangement)],
                             "changes": changes})

    @app.get(f"{p}/audit", tags=["queries"], response_model=AuditOut, responses=_problems(400, 401, 403, 422, 503))
    def audit(request: Request, actor: ActorDep) -> Response:
        """Check every case's hash chain, its tables against the replayed chain, and the latest signed
        checkpoint (administrators).

        Names each edited, inserted or deleted event, each difference between the tables and the chain,
        and each difference from the checkpoint (``kind``: ``chain``, ``projection`` or ``checkpoint``).
        The checkpoint key and file are those of ``[audit]`` in the server's ``caseflow.toml``
        (``$CASEFLOW_CONFIG``); ``checkpoints`` names the file checked, null when none is configured.
        """
        from caseflow.audit import verify_configured

        require_admin(actor, "verify the audit trail")
        problems, checkpoints = verify_configured(engine_of(request))
        return JSONResponse({"ok": not problems, "problems": [q.to_dict() for q in problems],
                             "checkpoints": checkpoints})

    # The Problem schema is referenced by hand in the responses above: register it once.
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema: dict[str, Any] = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


