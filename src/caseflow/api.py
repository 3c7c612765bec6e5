"""The HTTP API (``/api/v1``) and the server-rendered web console, as one FastAPI application.

``create_app()`` builds the application over an :class:`~caseflow.engine.Engine`; ``caseflow serve``
runs it under uvicorn (``app_from_env`` is the factory each worker calls). The shell only parses,
authorizes and formats: every rule lives in the engine.

Authorization, in one place (:class:`Actor`):

- A request acts as the person its bearer token belongs to (``Authorization: Bearer …`` for the API,
  an HttpOnly cookie for the console); the engine checks that person's roles on every command.
- A person sees the cases of their own unit and of the units they lead (the units of people whose
  ``leader_id`` is them); administrators see every unit. A case of another unit answers exactly as a
  missing case does (404, same body), so ids cannot be probed.
- Administrators manage people, absences and the holiday calendar.

Errors are RFC 9457 ``application/problem+json`` documents carrying the engine's message.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from caseflow.abc import Clock
from caseflow.calendar import ZONE, WorkCalendar
from caseflow.clock import FixedClock, SystemClock, parse_instant
from caseflow.engine import ACTIVE, CaseView, Engine
from caseflow.errors import (
    BackdatingError,
    CalendarCoverageError,
    CaseflowError,
    CaseNotFoundError,
    CommandError,
    ConflictError,
    HolidayFileError,
    PermissionDeniedError,
    PersonNotFoundError,
    StoreError,
    TimeLimitError,
    TimerError,
    TransitionError,
    WorkflowError,
    WorkflowNotFoundError,
)
from caseflow.store import CaseRow, CommandRecord, Person, Store, TimerRow
from caseflow.timelimits import ExcludedPeriod, TimeLimit, explain_due
from caseflow.tokens import csrf_token, person_for_token
from caseflow.workflow import parse_workflow

__all__ = ["API_PREFIX", "COOKIE_NAME", "Actor", "NoDelayH11Protocol", "app_from_env", "board_data", "create_app"]

log = logging.getLogger("caseflow.api")

API_PREFIX = "/api/v1"
COOKIE_NAME = "caseflow_token"
PROBLEM_JSON = "application/problem+json"
WEB_DIR = Path(__file__).parent / "web"
MAX_INT4 = 2_147_483_647  # case ids are INTEGER on PostgreSQL: larger ids cannot exist, refuse them up front

T = TypeVar("T")

# ------------------------------------------------------------------------------------------ models

# Identifiers and short texts end up in VARCHAR columns: bound their length to the column's and refuse
# control characters (PostgreSQL rejects NUL in text), so bad input is a 422, never a database error.
_SAFE = r"^[^\x00-\x1f\x7f]+$"
Ident = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_SAFE)]
PersonId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_SAFE)]
ShortText = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")]


def _finite(value: Any) -> Any:
    """Refuse NaN and infinities anywhere in a data mapping: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (NaN and Infinity are not JSON)")
    if isinstance(value, Mapping):
        for item in value.values():
            _finite(item)
    elif isinstance(value, list):
        for item in value:
            _finite(item)
    return value


def _text_only(value: Any) -> Any:
    """Dates and instants come as ISO 8601 text: refuse numbers (pydantic would read them as Unix times)."""
    if not isinstance(value, (str, date)):
        raise ValueError("write dates and instants as ISO 8601 text, e.g. 2026-10-09 or 2026-10-09T09:30:00+08:00")
    return value


CaseData = Annotated[dict[str, Any], AfterValidator(_finite)]
Instant = Annotated[datetime, BeforeValidator(_text_only)]
Day = Annotated[date, BeforeValidator(_text_only)]
_AT = Field(default=None, description="When it happened (ISO 8601; no offset means Beijing time). Default: now.")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A URI naming the kind of problem, e.g. urn:caseflow:problem:transition-error")
    title: str
    status: int
    detail: str = Field(description="The engine's message: what is wrong and what to do about it.")
    instance: str | None = None


class TimerOut(BaseModel):
    """A timer of a case (``TimerView.to_dict()``)."""

    name: str
    label: str
    status: Literal["running", "paused", "met", "breached", "stopped"]
    due_at: datetime | None = Field(description="First overdue instant; null while an uncapped pause holds it")
    last_day: date | None
    provisional: bool = Field(description="True when the due date relies on a not yet announced holiday year")
    limit: str
    kind: str
    started_at: datetime
    warn_at: datetime | None
    original_due_at: datetime | None
    paused_since: datetime | None


class CaseOut(BaseModel):
    """A case, in the CLI's JSON shape (``CaseView.to_dict()``)."""

    id: int
    workflow: str
    state: str
    state_label: str
    version: int = Field(description="Also sent as the ETag; send it back in If-Match to refuse stale writes")
    responsible: str
    unit: str
    workflow_version: str
    opened_at: datetime | None
    closed_at: datetime | None
    data: dict[str, Any]
    timers: list[TimerOut]


class EventOut(BaseModel):
    """One hash-chained event of a case's history."""

    seq: int
    kind: str
    at: datetime
    actor: str
    trigger: str | None
    from_state: str | None
    to_state: str | None
    data: dict[str, Any]
    hash: str


class QueueItemOut(BaseModel):
    """One running clock of a person's queue (``QueueItem.to_dict()``)."""

    case: int
    workflow: str
    state: str
    timer: str
    label: str
    status: str
    due_at: datetime | None
    last_day: date | None
    overdue: bool
    time_left: str = Field(description="e.g. 还剩 2 个工作日, 逾期 3 小时 5 分")
    responsible: str
    via_substitute_for: str | None


class TriggerOut(BaseModel):
    """A trigger the requesting person may fire now."""

    trigger: str
    label: str
    to: str
    requires: list[str]


class OpenCase(_In):
    """Open a case of ``workflow``; the requesting person opens it (and is responsible unless told)."""

    workflow: Ident
    at: Instant | None = _AT
    data: CaseData = Field(default_factory=dict)
    responsible: PersonId | None = Field(default=None, description="首问负责人, if not the requesting person")


class FireIn(_In):
    """Fire ``trigger`` with the data fields it requires."""

    trigger: Ident
    data: CaseData = Field(default_factory=dict)
    at: Instant | None = _AT


class PauseIn(_In):
    """Stop a timer's clock for a reason its definition admits (函调, 鉴定, 补正 …)."""

    timer: Ident
    reason: Reason
    data: CaseData = Field(default_factory=dict, description="Fields the pause records (the written notice …)")
    at: Instant | None = _AT


class ResumeIn(_In):
    """Restart a paused timer."""

    timer: Ident
    at: Instant | None = _AT


class ExtendIn(_In):
    """Extend a timer within its policy; the requesting person is the approver."""

    timer: Ident
    by: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=_SAFE)] = Field(
        description='e.g. "10 working_days", "4 days"')
    grounds: Reason
    data: CaseData = Field(default_factory=dict, description="Fields the extension records (applicant told …)")
    at: Instant | None = _AT


class HandOverIn(_In):
    """Hand the case to another person (with the 交办单 number), who becomes responsible."""

    to: PersonId
    slip: ShortText | None = None
    at: Instant | None = _AT


class ReassignIn(_In):
    """A leader gives the case to someone else."""

    to: PersonId
    reason: ShortText = ""
    at: Instant | None = _AT


class CloseIn(_In):
    """Close the case outside its workflow (withdrawn, merged …): every timer stops."""

    reason: Reason
    at: Instant | None = _AT


class PersonIn(_In):
    """A person to record (administrators only)."""

    id: PersonId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_SAFE)]
    unit: Ident
    roles: list[PersonId] = Field(default_factory=list, max_length=50)
    leader: PersonId | None = None
    substitute: PersonId | None = Field(default=None, description="AB岗: who acts while this person is absent")
    admin: StrictBool = False
    channel: Annotated[str, StringConstraints(max_length=500, pattern=_SAFE)] | None = None
    replace: StrictBool = Field(default=False, description="Update the person if they exist")


class PersonOut(BaseModel):
    """A person. ``channel`` is shown to administrators only."""

    id: str
    name: str
    unit: str
    roles: list[str]
    leader: str | None
    substitute: str | None
    admin: bool
    channel: str | None = None


class AbsenceIn(_In):
    """An absence, dates inclusive: the person's queue and alerts go to their substitute."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: Day = Field(alias="from")
    end: Day = Field(alias="to")


class AbsenceOut(BaseModel):
    """A recorded absence."""

    model_config = ConfigDict(populate_by_name=True)
    person: str
    start: date = Field(alias="from")
    end: date = Field(alias="to")


class StepOut(BaseModel):
    """One day of a deadline's explanation."""

    day: date
    kind: str
    count: int | None
    reason: str
    provisional: bool


class DeadlineOut(BaseModel):
    """When a limit runs out."""

    start: datetime
    limit: str
    limit_zh: str
    due_at: datetime = Field(description="First overdue instant (00:00 after the last day for day limits)")
    last_day: date
    provisional: bool
    official_until: date
    steps: list[StepOut] | None = None


class DayOut(BaseModel):
    """One day of the working-day calendar."""

    day: date
    workday: bool
    reason: str = Field(description="'' for an ordinary working day; 周末, a holiday's name, or 调休上班")
    official: bool


class MonthOut(BaseModel):
    """A month of the working-day calendar."""

    month: str
    official_until: date
    days: list[DayOut]


class DefinitionIn(BaseModel):
    """A data file uploaded by an administrator: a workflow definition or a holiday notice, as YAML text."""

    model_config = ConfigDict(extra="forbid")
    yaml: Annotated[str, StringConstraints(min_length=1, max_length=500_000)]


class HolidayYearOut(BaseModel):
    """One year of the calendar: where its rest and make-up days come from."""

    year: int
    source: str
    origin: str
    official: bool
    rest_days: int
    workdays: int


class HolidayUploadOut(BaseModel):
    """A stored holiday notice and the deadlines it moved."""

    year: int
    source: str
    file: str
    official_until: date
    changes: list[dict[str, Any]]


class ReloadOut(BaseModel):
    """What a calendar reload moved."""

    official_until: date
    changes: list[dict[str, Any]]


class WorkflowStateOut(BaseModel):
    """A state of a workflow."""

    name: str
    label: str
    final: bool


class WorkflowTransitionOut(BaseModel):
    """A transition of a workflow."""

    trigger: str
    label: str
    sources: list[str] = Field(alias="from")
    to: str
    roles: list[str]
    requires: list[str]


class WorkflowTimerOut(BaseModel):
    """A timer of a workflow."""

    name: str
    label: str
    limit: str
    basis: str
    kind: str
    pauses: list[str]
    extendable: bool


class WorkflowOut(BaseModel):
    """A procedure definition (latest version)."""

    key: str
    title: str
    version: str
    basis: str
    roles: dict[str, str]
    states: list[WorkflowStateOut]
    transitions: list[WorkflowTransitionOut]
    timers: list[WorkflowTimerOut]


class UnitCountOut(BaseModel):
    """Open cases of one unit by their most urgent running clock."""

    unit: str
    red: int = Field(description="Overdue: a running clock is past its due instant")
    yellow: int = Field(description="Warning: a clock's warning instant has passed, not yet due")
    green: int


class OverdueOut(BaseModel):
    """An overdue running clock."""

    case: int
    workflow: str
    workflow_title: str
    state_label: str
    timer: str
    label: str
    due_at: datetime
    late: str = Field(description="How late, in working days, days or hours: 逾期 3 个工作日")
    responsible: str
    responsible_name: str
    unit: str


class MonthRateOut(BaseModel):
    """On-time rate of the clocks finished in one month."""

    month: str
    finished: int
    on_time: int
    rate: float | None


class BoardOut(BaseModel):
    """The leader board: counts per unit, the overdue list, on-time rate by month."""

    at: datetime
    units: list[UnitCountOut]
    overdue: list[OverdueOut]
    monthly: list[MonthRateOut]


class AuditOut(BaseModel):
    """The result of checking every visible case's hash chain."""

    ok: bool
    problems: list[dict[str, Any]]


# ------------------------------------------------------------------------------------------ errors


class ApiError(Exception):
    """A refusal of the HTTP layer itself (authentication, preconditions, unknown path resources)."""

    def __init__(self, status: int, slug: str, title: str, detail: str, *,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.headers = dict(headers or {})


class LoginRequired(Exception):
    """A console page was asked for without a valid session cookie."""


def _slug(name: str) -> str:
    """``CaseNotFoundError`` → ``case-not-found``."""
    out = []
    for i, ch in enumerate(name.removesuffix("Error")):
        if ch.isupper() and i:
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


def error_status(exc: CaseflowError) -> int:
    """The HTTP status of an engine error (see the module docstring of the issue: never 500)."""
    if isinstance(exc, CaseNotFoundError):
        return 404
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, (TransitionError, TimerError, BackdatingError, CommandError, TimeLimitError, WorkflowError,
                        HolidayFileError)):
        return 422
    if isinstance(exc, StoreError):
        return 503
    return 400


_TITLES = {400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           409: "Conflict", 412: "Precondition failed", 422: "Unprocessable request", 500: "Internal error",
           503: "Service unavailable"}


def problem(status: int, slug: str, detail: str, *, title: str | None = None, instance: str | None = None,
            headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An ``application/problem+json`` response."""
    body = {"type": f"urn:caseflow:problem:{slug}", "title": title or _TITLES.get(status, "Error"),
            "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"description": _TITLES[s], "content": _PROBLEM_CONTENT} for s in statuses}


# Every /api/v1 operation may answer these; commands add 403/404/409/412.
_COMMON = _problems(400, 401, 422, 503)
_ON_CASE = _problems(400, 401, 403, 404, 409, 412, 422, 503)
_ETAG_HEADER = {"ETag": {"description": 'The case version, e.g. "3"', "schema": {"type": "string"}}}


# ------------------------------------------------------------------------------------- authorization


@dataclass(frozen=True)
class Actor:
    """The person a request acts as, and the units whose cases they may see (None: every unit)."""

    person: Person
    units: frozenset[str] | None
    token: str

    @property
    def id(self) -> str:
        """The person's id (the engine's actor)."""
        return self.person.id

    @property
    def is_admin(self) -> bool:
        """Administrators manage people and the calendar and see every unit."""
        return bool(self.person.admin)

    leads_others: bool = False

    @property
    def leads(self) -> bool:
        """True for administrators and for anyone who is someone's leader (they land on the board)."""
        return self.units is None or self.leads_others

    def sees_unit(self, unit: str) -> bool:
        """May this person see cases of ``unit``?"""
        return self.units is None or unit in self.units


def resolve_actor(store: Store, token: str | None) -> Actor | None:
    """The actor a token stands for, with the units they see; None for a missing or dead token."""
    # The token's person and the units they lead in one transaction: every request pays for it.
    with store.session() as s:
        person = person_for_token(s, token)
        if person is None or token is None:
            return None
        if person.admin:
            return Actor(person, None, token)
        led = set(s.exec(select(Person.unit).where(Person.leader_id == person.id).distinct()))
    return Actor(person, frozenset({person.unit, *led}), token, leads_others=bool(led))


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


_bearer = HTTPBearer(auto_error=False, description="A token from `caseflow token create PERSON`")


def api_actor(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
    """The requesting person, from ``Authorization: Bearer``; 401 otherwise."""
    challenge = {"WWW-Authenticate": 'Bearer realm="caseflow"'}
    if credentials is None:
        raise ApiError(401, "not-authenticated", "Not authenticated",
                       "send a token as `Authorization: Bearer …` (create one with `caseflow token create PERSON`)",
                       headers=challenge)
    actor = resolve_actor(_engine(request).store, credentials.credentials)
    if actor is None:
        raise ApiError(401, "invalid-token", "Not authenticated",
                       "the token is unknown or revoked; ask an administrator for a new one",
                       headers={"WWW-Authenticate": 'Bearer realm="caseflow", error="invalid_token"'})
    return actor


ActorDep = Annotated[Actor, Depends(api_actor)]


def _writable_dir(variable: str, what: str) -> Path:
    """The server's directory for uploaded ``what`` (the first entry of ``variable``), or 409."""
    value = os.environ.get(variable, "").split(os.pathsep)[0]
    if not value:
        raise ApiError(409, "no-directory", "Conflict",
                       f"this server keeps no directory for {what}: start it with {variable}=/path/to/dir")
    directory = Path(value)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def require_admin(actor: Actor, what: str) -> None:
    """Refuse a non-administrator (403)."""
    if not actor.is_admin:
        raise PermissionDeniedError(f"{actor.id!r} is not an administrator; only administrators may {what}")


def check_case(engine: Engine, actor: Actor, case_id: int) -> None:
    """404 for a case the actor may not see, with the very message of a missing case."""
    with engine.store.session() as s:
        unit = s.exec(select(CaseRow.unit).where(CaseRow.id == case_id)).first()
    if unit is None or not actor.sees_unit(unit):
        raise CaseNotFoundError(f"no case has the id {case_id}")


def check_person_visible(engine: Engine, actor: Actor, person_id: str) -> Person:
    """A person the actor may see (same visibility as cases), else 404."""
    with engine.store.session() as s:
        person = s.get(Person, person_id)
    if person is None or not actor.sees_unit(person.unit):
        raise ApiError(404, "person-not-found", "Not found", f"no person has the id {person_id!r}")
    return person


# ------------------------------------------------------------------------------------------- helpers


def local_instant(value: datetime | None) -> datetime | None:
    """An API instant in Beijing time; a naive one is read as Beijing time (as the CLI does)."""
    if value is None:
        return None
    try:
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=ZONE)
        return value.astimezone(ZONE)
    except (OverflowError, ValueError):
        raise TimeLimitError(f"{value.isoformat()} is outside the range of instants caseflow handles") from None


def read_instant(text: str) -> datetime:
    """Text typed by a person (``2026-10-09T09:30``; no offset = Beijing)."""
    return parse_instant(text)

def _etag(view: CaseView) -> str:
    return f'"{view.version}"'


def parse_if_match(value: str | None) -> int | None:
    """The case version an ``If-Match`` header demands (``"3"``, ``W/"3"`` or ``3``; ``*`` demands none)."""
    if value is None:
        return None
    text = value.strip()
    if text == "*":
        return None
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or len(text) > 18:
        raise ApiError(400, "bad-if-match", "Bad request",
                       f"If-Match must be a case version as sent in the ETag, like \"3\"; got {value!r}")
    return int(text)


def scoped_key(actor: Actor, request: Request, key: str | None) -> str | None:
    """The engine idempotency key for a client's ``Idempotency-Key``.

    Scoped to the person and the path: two clients choosing the same key must never receive each
    other's results (that would show one unit's case to another), and a key reused on another case or
    command is a new request, not a replay.
    """
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise ApiError(400, "bad-idempotency-key", "Bad request",
                       "Idempotency-Key must be 1 to 200 printable characters, e.g. a UUID")
    digest = hashlib.sha256(f"{actor.id}\n{request.url.path}\n{key}".encode()).hexdigest()[:40]
    return f"api:{digest}"


def case_response(view: CaseView, status: int = 200, location: bool = False) -> JSONResponse:
    """A case in the CLI's JSON shape, its version as the ETag."""
    headers = {"ETag": _etag(view)}
    if location:
        headers["Location"] = f"{API_PREFIX}/cases/{view.id}"
    return JSONResponse(view.to_dict(), status_code=status, headers=headers)


def run_command(engine: Engine, actor: Actor, request: Request, case_id: int, *, if_match: str | None,
                key: str | None, command: Callable[[int | None, str | None], CaseView]) -> JSONResponse:
    """Authorize, run one engine command with If-Match and Idempotency-Key, and answer the case."""
    check_case(engine, actor, case_id)
    expected = parse_if_match(if_match)
    scoped = scoped_key(actor, request, key)
    try:
        view = command(expected, scoped)
    except ConflictError as exc:
        if expected is not None and not _key_used_elsewhere(engine, scoped):
            raise ApiError(412, "precondition-failed", "Precondition failed", str(exc)) from None
        raise
    return case_response(view)


def _key_used_elsewhere(engine: Engine, key: str | None) -> bool:
    """Was the (scoped) idempotency key recorded already? Then a conflict is about the key, not the version."""
    if key is None:
        return False
    with engine.store.session() as s:
        return s.get(CommandRecord, key) is not None


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


def triggers_for(engine: Engine, actor: Actor, case_id: int) -> list[dict[str, Any]]:
    """The triggers the actor may fire on the case now, with labels and required fields."""
    names = engine.allowed_triggers(case_id, actor.id)
    if not names:
        return []
    view = engine.get(case_id)
    defn = engine.definition(view.workflow_version)
    result = []
    for name in names:
        t = defn.find_transition(name, view.state)
        if t is not None:
            result.append({"trigger": name, "label": t.label or name, "to": t.dest, "requires": list(t.requires)})
    return result


# -------------------------------------------------------------------------------------------- board


def _level(timer: TimerRow, now: datetime) -> str:
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

        groups = stats.compute_stats(store, by="month", units=units, now=now)
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


def board_data(engine: Engine, actor: Actor, now: datetime) -> dict[str, Any]:
    """The leader board of the units the actor sees: counts, overdue list, monthly on-time rate."""
    units = actor.units
    with engine.store.session() as s:
        counts_q = sa.select(CaseRow.unit, sa.func.count()).where(  # type: ignore[call-overload]
            CaseRow.closed_at.is_(None)).group_by(CaseRow.unit)  # type: ignore[union-attr]
        active_q = select(TimerRow, CaseRow).join(CaseRow, CaseRow.id == TimerRow.case_id).where(  # type: ignore[arg-type]
            TimerRow.status.in_(ACTIVE), CaseRow.closed_at.is_(None))  # type: ignore[attr-defined, union-attr]
        if units is not None:
            counts_q = counts_q.where(CaseRow.unit.in_(sorted(units)))  # type: ignore[attr-defined]
            active_q = active_q.where(CaseRow.unit.in_(sorted(units)))  # type: ignore[attr-defined]
        open_counts = {unit: int(n) for unit, n in s.execute(counts_q)}
        worst: dict[int, tuple[str, str]] = {}  # case id -> (unit, level)
        overdue = []
        names = {p.id: p.name for p in s.exec(select(Person))}
        rank = {"red": 3, "yellow": 2, "green": 1, "grey": 0}
        for timer, case in s.exec(active_q).all():
            level = _level(timer, now)
            cid = case.id or 0
            if cid not in worst or rank[level] > rank[worst[cid][1]]:
                worst[cid] = (case.unit, level)
            if level == "red" and timer.due_at is not None:
                defn = engine.definition(case.workflow_version, s)
                try:
                    label = defn.timer(timer.name).label
                except (KeyError, LookupError):
                    label = timer.name
                try:
                    state_label = defn.state(case.state).label
                except (KeyError, LookupError):
                    state_label = case.state
                overdue.append({
                    "case": cid, "workflow": case.workflow_key, "workflow_title": defn.title,
                    "state_label": state_label, "timer": timer.name, "label": label,
                    "due_at": timer.due_at.astimezone(ZONE).isoformat(), "late": engine.time_left(timer, now),
                    "responsible": case.responsible_id, "responsible_name": names.get(case.responsible_id, ""),
                    "unit": case.unit, "_due": timer.due_at,
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


# ----------------------------------------------------------------------------------------- app factory


def _default_clock() -> Clock:
    """The real clock, or the one fixed by ``CASEFLOW_NOW`` (demos, simulated runs), as the CLI does."""
    fixed = os.environ.get("CASEFLOW_NOW")
    return FixedClock(parse_instant(fixed)) if fixed else SystemClock()


def create_app(store_url: str | None = None, *, engine: Engine | None = None, clock: Clock | None = None) -> Any:
    """The FastAPI application: ``/api/v1`` (OpenAPI at ``/openapi.json``) and the web console at ``/``.

    Give an ``engine`` (tests) or a database URL (default ``$CASEFLOW_DB`` or ``./caseflow.db``).
    """
    if engine is None:
        engine = Engine(Store(store_url), clock=clock or _default_clock())
    elif clock is not None:
        engine.clock = clock
    app = FastAPI(
        title="caseflow",
        version=_version(),
        summary="办理时限: the legal time limits of Chinese administrative and public-security procedures",
        description=(
            "Cases, their clocks on the Chinese working-day calendar, and the deadline calculator.\n\n"
            "Authenticate with `Authorization: Bearer <token>` (`caseflow token create PERSON`). A person sees the "
            "cases of their unit and of the units they lead; another unit's case answers 404 like a missing one. "
            "Errors are `application/problem+json`. Commands accept `Idempotency-Key` (a retry returns the first "
            "result) and `If-Match` with the case's ETag (a stale version answers 412)."
        ),
        openapi_url="/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.add_middleware(SecurityHeaders)
    _install_error_handlers(app)
    _add_api_routes(app)
    _add_web_routes(app)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    return app


def app_from_env() -> Any:
    """The factory uvicorn's workers call (``uvicorn caseflow.api:app_from_env --factory``): ``$CASEFLOW_DB``."""
    return create_app(os.environ.get("CASEFLOW_DB"))


class SecurityHeaders:
    """Pure ASGI middleware: the console may not be framed (clickjacking), scripts and styles come from us only.

    Swagger UI at ``/api/docs`` loads its assets from a CDN, so it is left without the content policy.
    """

    _COMMON = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"same-origin"))
    _CSP = (b"content-security-policy",
            b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with_csp = scope.get("path") != "/api/docs"

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self._COMMON)
                if with_csp:
                    headers.append(self._CSP)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with ``TCP_NODELAY`` set on every connection (``caseflow serve`` uses it).

    With ``--workers`` uvicorn binds the listening socket itself with protocol number 0, so asyncio does not
    switch Nagle's algorithm off for accepted connections; a response written as headers then body then
    waits for the client's delayed ACK: about 40 ms on every request (measured: 48 ms for ``GET /me`` with
    4 workers against 3 ms with one).
    """

    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # not a TCP socket after all: nothing to tune
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def _version() -> str:
    from caseflow import __version__

    return __version__


def _install_error_handlers(app: FastAPI) -> None:
    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"

    @app.exception_handler(CaseflowError)
    async def _caseflow_error(request: Request, exc: CaseflowError) -> Response:
        status = error_status(exc)
        if not is_api(request):
            return _error_page(request, status, str(exc))
        return problem(status, _slug(type(exc).__name__), str(exc), instance=request.url.path)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if not is_api(request):
            return _error_page(request, exc.status, exc.detail)
        return problem(exc.status, exc.slug, exc.detail, title=exc.title, instance=request.url.path,
                       headers=exc.headers)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            errors.append(f"{where}: {err.get('msg', 'invalid')}")
        detail = "; ".join(errors) or "the request is invalid"
        if not is_api(request):
            return _error_page(request, 422, detail)
        return problem(422, "validation-error", detail, instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, ensure_ascii=False)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route matching the path only; a path served by
            # several routes (GET and POST /cases) must list them all.
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        if not is_api(request):
            return _error_page(request, exc.status_code, detail, headers=headers)
        return problem(exc.status_code, _slug(_TITLES.get(exc.status_code, "error").title().replace(" ", "")),
                       detail, instance=request.url.path, headers=headers)

    @app.exception_handler(sa.exc.StatementError)
    async def _database(request: Request, exc: sa.exc.StatementError) -> Response:
        orig = getattr(exc, "orig", None)
        if isinstance(exc, sa.exc.OperationalError):
            status, slug, detail = 503, "database-unavailable", "the database is unavailable; try again shortly"
        elif isinstance(exc, sa.exc.IntegrityError):
            status, slug, detail = 409, "concurrent-change", "a concurrent command changed the same rows; retry"
        elif isinstance(exc, sa.exc.DataError) or isinstance(orig, (UnicodeError, ValueError, OverflowError)):
            status, slug, detail = 400, "invalid-value", f"the database refused a value: {type(orig).__name__}"
        else:
            log.exception("database error on %s %s", request.method, request.url.path)
            status, slug, detail = 500, "internal-error", "an internal error occurred; it has been logged"
        if not is_api(request):
            return _error_page(request, status, detail)
        return problem(status, slug, detail, instance=request.url.path)

    @app.exception_handler(UnicodeError)
    async def _unicode(request: Request, exc: UnicodeError) -> Response:
        # Lone surrogates in JSON strings cannot be stored: bad input.
        if not is_api(request):
            return _error_page(request, 400, "the text is not valid Unicode")
        return problem(400, "invalid-text", "the request holds text that is not valid Unicode (a lone surrogate)",
                       instance=request.url.path)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, the method does not
        route_methods = getattr(route, "methods", None)
        if match != Match.NONE and route_methods:
            methods.update(route_methods)
    return sorted(methods)


# ------------------------------------------------------------------------------------------ API routes


IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=100,
                                       description='The case version from the ETag, e.g. "3"')]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                       description="A retry with the same key returns the first result")]
CaseId = Annotated[int, PathParam(ge=1, le=MAX_INT4, description="The case id")]


class _MonthConvertor(Convertor[str]):
    """``YYYY-MM`` in a path (shape only; the month's range is checked by the route's pattern)."""

    regex = "[0-9]{4}-[0-9]{2}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("yyyymm", _MonthConvertor())


def _add_api_routes(app: FastAPI) -> None:
    p = API_PREFIX
    case_ok: dict[int | str, dict[str, Any]] = {200: {"model": CaseOut, "headers": _ETAG_HEADER}}

    # ---------------------------------------------------------------- cases

    @app.post(f"{p}/cases", tags=["cases"], status_code=201, response_model=CaseOut,
              responses={201: {"headers": {**_ETAG_HEADER, "Location": {"schema": {"type": "string"}}}},
                         **_problems(400, 401, 403, 404, 409, 422, 503)})
    def open_case(body: OpenCase, request: Request, actor: ActorDep, idempotency_key: IdemKey = None) -> Response:
        """Open a case of ``workflow``; the requesting person opens it (首问负责 unless ``responsible`` is given)."""
        engine = _engine(request)
        if body.responsible and body.responsible != actor.id:
            check_person_visible(engine, actor, body.responsible)
        key = scoped_key(actor, request, idempotency_key)
        for attempt in range(3):
            try:
                view = engine.open(body.workflow, actor=actor.id, at=local_instant(body.at), data=body.data,
                                   responsible=body.responsible, key=key)
                break
            except sa.exc.IntegrityError:
                # Two workers opening the first case of a new workflow version both insert its row; the
                # loser's transaction was rolled back whole, so running it again is safe (and replays
                # under an idempotency key).
                if attempt == 2:
                    raise
        return case_response(view, 201, location=True)

    @app.get(f"{p}/cases", tags=["cases"], response_model=list[CaseOut], responses=_COMMON)
    def list_cases(request: Request, actor: ActorDep,
                   unit: Annotated[Ident | None, Query(description="Only this unit")] = None,
                   open_only: Annotated[bool, Query(alias="open", description="Only open cases")] = True,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
        """The cases the requesting person may see, newest first."""
        engine = _engine(request)
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
        engine = _engine(request)
        check_case(engine, actor, case_id)
        return case_response(engine.get(case_id))

    @app.get(f"{p}/cases/{{case_id}}/history", tags=["cases"], response_model=list[EventOut],
             responses=_problems(400, 401, 404, 422, 503))
    def case_history(case_id: CaseId, request: Request, actor: ActorDep) -> Response:
        """Every event of the case, oldest first (hash-chained)."""
        engine = _engine(request)
        check_case(engine, actor, case_id)
        return JSONResponse([e.to_dict() for e in engine.history(case_id)])

    @app.get(f"{p}/cases/{{case_id}}/triggers", tags=["cases"], response_model=list[TriggerOut],
             responses=_problems(400, 401, 404, 422, 503))
    def case_triggers(case_id: CaseId, request: Request, actor: ActorDep) -> Response:
        """The triggers the requesting person may fire on the case now."""
        engine = _engine(request)
        check_case(engine, actor, case_id)
        return JSONResponse(triggers_for(engine, actor, case_id))

    @app.post(f"{p}/cases/{{case_id}}/fire", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def fire(case_id: CaseId, body: FireIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
             idempotency_key: IdemKey = None) -> Response:
        """Fire ``trigger``: roles and required data are checked, clocks stop and start."""
        engine = _engine(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.fire(
            case_id, body.trigger, actor=actor.id, at=local_instant(body.at), data=body.data,
            expected_version=v, key=k))

    @app.post(f"{p}/cases/{{case_id}}/pause", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def pause(case_id: CaseId, body: PauseIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
              idempotency_key: IdemKey = None) -> Response:
        """Stop a timer's clock for a reason it admits (函调, 鉴定, 补正 …)."""
        engine = _engine(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.pause(
            case_id, body.timer, reason=body.reason, actor=actor.id, at=local_instant(body.at), data=body.data,
            expected_version=v, key=k))

    @app.post(f"{p}/cases/{{case_id}}/resume", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def resume(case_id: CaseId, body: ResumeIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
               idempotency_key: IdemKey = None) -> Response:
        """Restart a paused timer."""
        engine = _engine(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.resume(
            case_id, body.timer, actor=actor.id, at=local_instant(body.at), expected_version=v, key=k))

    @app.post(f"{p}/cases/{{case_id}}/extend", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def extend(case_id: CaseId, body: ExtendIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
               idempotency_key: IdemKey = None) -> Response:
        """Extend a timer within its policy; the requesting person approves."""
        engine = _engine(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.extend(
            case_id, body.timer, by=body.by, grounds=body.grounds, actor=actor.id, at=local_instant(body.at),
            data=body.data, expected_version=v, key=k))

    @app.post(f"{p}/cases/{{case_id}}/hand-over", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def hand_over(case_id: CaseId, body: HandOverIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
                  idempotency_key: IdemKey = None) -> Response:
        """Hand the case over to ``to``, who becomes responsible (the case moves to their unit)."""
        engine = _engine(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.hand_over(
            case_id, to=body.to, actor=actor.id, slip=body.slip, at=local_instant(body.at), expected_version=v,
            key=k))

    @app.post(f"{p}/cases/{{case_id}}/reassign", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def reassign(case_id: CaseId, body: ReassignIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
                 idempotency_key: IdemKey = None) -> Response:
        """A leader (or administrator) gives the case to someone else."""
        engine = _engine(request)
        return run_command(engine, actor, request, case_id, if_match=if_match, key=idempotency_key,
                           command=lambda v, k: engine.reassign(
            case_id, to=body.to, actor=actor.id, reason=body.reason, at=local_instant(body.at), expected_version=v,
            key=k))

    @app.post(f"{p}/cases/{{case_id}}/close", tags=["commands"], response_model=CaseOut,
              responses={**case_ok, **_ON_CASE})
    def close(case_id: CaseId, body: CloseIn, *, request: Request, actor: ActorDep, if_match: IfMatch = None,
              idempotency_key: IdemKey = None) -> Response:
        """Close the case outside its workflow (withdrawn, merged …); every timer stops."""
        engine = _engine(request)
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
        engine = _engine(request)
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
        engine = _engine(request)
        now = read_instant(at) if at else engine.clock.now()
        return JSONResponse(board_data(engine, actor, now))

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
        engine = _engine(request)
        return JSONResponse(deadline_payload(engine.calendar, read_instant(start), rule, excluded, explain))

    # The yyyymm convertor keeps "/calendar/reload" from also matching this route (a GET there is a 405).
    @app.get(f"{p}/calendar/{{month:yyyymm}}", tags=["calendar"], response_model=MonthOut,
             responses=_problems(400, 401, 404, 422, 503))
    def calendar_month(request: Request, _actor: ActorDep,
                       month: Annotated[str, PathParam(pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                                       description="YYYY-MM")]) -> Response:
        """A month of the working-day calendar: rest days, make-up working days (调休上班), provisional days."""
        engine = _engine(request)
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
        engine = _engine(request)
        return JSONResponse([workflow_payload(engine, d.key) for d in engine.registry])

    @app.get(f"{p}/workflows/{{key}}", tags=["workflows"], response_model=WorkflowOut,
             responses=_problems(400, 401, 404, 422, 503))
    def workflow(request: Request, _actor: ActorDep,
                 key: Annotated[str, PathParam(max_length=100, pattern=_SAFE)]) -> Response:
        """One procedure definition: states, transitions, timers."""
        try:
            return JSONResponse(workflow_payload(_engine(request), key))
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
        found = [q for q in _engine(request).people() if actor.sees_unit(q.unit)]
        return JSONResponse([_person_out(q, with_channel=actor.is_admin) for q in found])

    @app.post(f"{p}/people", tags=["people"], status_code=201, response_model=PersonOut,
              responses={200: {"model": PersonOut, "description": "Updated (replace)"},
                         **_problems(400, 401, 403, 422, 503)})
    def add_person(body: PersonIn, request: Request, actor: ActorDep) -> Response:
        """Record a person (administrators only); ``replace`` updates an existing one."""
        require_admin(actor, "add people")
        person = _engine(request).add_person(
            body.id, name=body.name, unit=body.unit, roles=body.roles, leader=body.leader,
            substitute=body.substitute, admin=body.admin, channel=body.channel, replace=body.replace)
        return JSONResponse(_person_out(person, with_channel=True), status_code=200 if body.replace else 201)

    @app.post(f"{p}/people/{{person_id}}/absences", tags=["people"], status_code=201, response_model=AbsenceOut,
              responses=_problems(400, 401, 403, 404, 422, 503))
    def add_absence(body: AbsenceIn, request: Request, actor: ActorDep,
                    person_id: Annotated[str, PathParam(max_length=64, pattern=_SAFE)]) -> Response:
        """Mark a person absent (administrators, or the person's leader): their queue goes to their substitute."""
        engine = _engine(request)
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

        engine = _engine(request)
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

        The YAML is validated like `caseflow workflows validate`; a valid one is written to
        ``$CASEFLOW_WORKFLOWS_DIR/<key>.yaml`` and serves new cases at once. Cases already open keep the
        version they were opened under.
        """
        require_admin(actor, "manage workflow definitions")
        directory = _writable_dir("CASEFLOW_WORKFLOWS_DIR", "workflow definitions")
        defn = parse_workflow(body.yaml, path=f"{key}.yaml (upload)")
        if defn.key != key:
            raise ApiError(422, "key-mismatch", "Unprocessable",
                           f"the definition's key is {defn.key!r}, not {key!r}; PUT it to /workflows/{defn.key}")
        _write_atomically(directory / f"{key}.yaml", body.yaml)
        engine = _engine(request)
        engine.registry.add(defn)
        return JSONResponse(workflow_payload(engine, key))

    @app.get(f"{p}/holidays", tags=["calendar"], response_model=list[HolidayYearOut], responses=_COMMON)
    def holidays(request: Request, _actor: ActorDep) -> Response:
        """The calendar's years up to the first projected one, with the notice each comes from."""
        calendar = _engine(request).calendar
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

        Validated like `caseflow calendar check`; a valid file is written to the first directory of
        ``$CASEFLOW_HOLIDAYS_DIR`` as ``<year>.yaml`` and the calendar reloaded.
        """
        require_admin(actor, "load holiday notices")
        from caseflow.calendar import clear_calendar_cache, default_calendar, load_holiday_file

        directory = _writable_dir("CASEFLOW_HOLIDAYS_DIR", "holiday files")
        target = directory / f"{year}.yaml"
        arrangement = load_holiday_file(f"{year}.yaml (upload)", text=body.yaml)
        _write_atomically(target, body.yaml)
        clear_calendar_cache()
        calendar = default_calendar()
        changes = _engine(request).reload_calendar(calendar, source=str(target), actor=actor.id)
        return JSONResponse({"year": arrangement.year, "source": arrangement.source, "file": str(target),
                             "official_until": calendar.official_until.isoformat(), "changes": changes})

    @app.get(f"{p}/audit", tags=["queries"], response_model=AuditOut, responses=_problems(400, 401, 403, 422, 503))
    def audit(request: Request, actor: ActorDep) -> Response:
        """Check every case's hash chain (administrators); names each edited, inserted or deleted event."""
        require_admin(actor, "verify the audit trail")
        problems = _engine(request).verify_audit()
        return JSONResponse({"ok": not problems, "problems": [
            {"case": q.case_id, "seq": q.seq, "event_id": q.event_id, "problem": q.problem} for q in problems]})

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


# ------------------------------------------------------------------------------------------ web console


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    templates.env.filters["when"] = fmt_instant
    templates.env.filters["due"] = fmt_due
    templates.env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.0f}%"
    templates.env.filters["show"] = lambda v: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return templates


_TEMPLATES: Jinja2Templates | None = None


def templates() -> Jinja2Templates:
    """The console's Jinja2 templates (built once)."""
    global _TEMPLATES  # noqa: PLW0603 - one environment per process, built on first use
    if _TEMPLATES is None:
        _TEMPLATES = _templates()
    return _TEMPLATES


def fmt_instant(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant in Beijing time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(ZONE).strftime(fmt)


def fmt_due(value: datetime | str | None) -> str:
    """A due instant as a clerk reads it: a day limit ends at 24:00 of its last day, not 00:00 the next."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(ZONE)
    if local.time() == time(0):
        return f"{local - timedelta(days=1):%Y-%m-%d} 24:00"
    return f"{local:%Y-%m-%d %H:%M}"


def _error_page(request: Request, status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> Response:
    titles = {400: "请求有误", 401: "未登录", 403: "无权操作", 404: "未找到", 405: "不支持的操作", 409: "冲突",
              412: "案件已被他人修改", 422: "无法办理", 503: "服务暂不可用"}
    return templates().TemplateResponse(request, "error.html", {
        "actor": None, "title": titles.get(status, "出错了"), "status": status, "detail": detail},
        status_code=status, headers=dict(headers or {}))


def web_actor(request: Request) -> Actor:
    """The console's person, from the HttpOnly session cookie; otherwise redirect to the login page."""
    actor = resolve_actor(_engine(request).store, request.cookies.get(COOKIE_NAME))
    if actor is None:
        raise LoginRequired
    return actor


WebActor = Annotated[Actor, Depends(web_actor)]


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
    engine = _engine(request)
    base = {"actor": actor, "csrf": csrf_token(actor.token) if actor else "", "now": engine.clock.now()}
    return templates().TemplateResponse(request, name, {**base, **context}, status_code=status)


def _safe_next(target: str | None) -> str:
    # Only local paths: never redirect a freshly logged-in user to another site.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _add_web_routes(app: FastAPI) -> None:
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
        engine = _engine(request)
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
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @app.get("/board", include_in_schema=False)
    def board_page(request: Request, actor: WebActor) -> Response:
        engine = _engine(request)
        now = engine.clock.now()
        data = board_data(engine, actor, now)
        return _page(request, "board.html", actor, board=data, chart=month_chart(data["monthly"]))

    @app.get("/queue", include_in_schema=False)
    def queue_page(request: Request, actor: WebActor, msg: str | None = None) -> Response:
        engine = _engine(request)
        return _page(request, "queue.html", actor, **queue_context(engine, actor), msg=msg, error=None)

    @app.post("/cases", include_in_schema=False)
    async def open_from_form(request: Request, actor: WebActor) -> Response:
        form = await _form(request)
        _check_csrf(actor, form)
        engine = _engine(request)
        try:
            data = parse_data_lines(form.get("data", ""))
            view = await run_in_threadpool(lambda: engine.open(form.get("workflow", ""), actor=actor.id, data=data))
        except CaseflowError as exc:
            ctx = await run_in_threadpool(queue_context, engine, actor)
            return _page(request, "queue.html", actor, status=error_status(exc), **ctx, msg=None, error=str(exc))
        return RedirectResponse(f"/cases/{view.id}?msg={quote('已立案')}", status_code=303)

    @app.get("/cases/{case_id}", include_in_schema=False)
    def case_page(request: Request, case_id: CaseId, actor: WebActor, msg: str | None = None) -> Response:
        engine = _engine(request)
        check_case(engine, actor, case_id)
        return _page(request, "case.html", actor, **case_context(engine, actor, case_id), msg=msg, error=None)

    @app.post("/cases/{case_id}/{action}", include_in_schema=False)
    async def case_action(request: Request, case_id: CaseId, action: str, actor: WebActor) -> Response:
        form = await _form(request)
        _check_csrf(actor, form)
        engine = _engine(request)
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
        levels = {(r.case_id, r.name): _level(r, now) for r in rows}
        texts = {(r.case_id, r.name): engine.time_left(r, now) for r in rows}
    titles = {d.key: d.title for d in engine.registry}
    people = {q.id: q.name for q in engine.people()}

    def state_label(workflow: str, state: str) -> str:
        try:
            return engine.registry.latest(workflow).state(state).label
        except (CaseflowError, KeyError, LookupError):
            return state

    rows_out = [{"item": i, "level": levels.get((i.case_id, i.timer), "green"),
                 "time_left": texts.get((i.case_id, i.timer), i.time_left),
                 "workflow_title": titles.get(i.workflow, i.workflow), "state_label": state_label(i.workflow, i.state),
                 "responsible_name": people.get(i.responsible, i.responsible)} for i in items]
    openable = [d for d in engine.registry if actor.is_admin or actor.person.role_set & set(d.roles)]
    return {"rows": rows_out, "workflows": openable}


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
        except (KeyError, LookupError):
            label, pauses, extendable = row.name, [], False
        timers.append({"row": row, "label": label, "pauses": pauses, "extendable": extendable,
                       "level": _level(row, now) if row.status in ACTIVE else row.status,
                       "time_left": engine.time_left(row, now) if row.status in ACTIVE else "",
                       "limit": _limit_text(row)})
    kinds = {"open": "立案", "pause": "暂停计时", "resume": "恢复计时", "extend": "批准延期", "hand_over": "移交",
             "reassign": "改派", "close": "结案", "recompute": "重算期限"}
    actions = {t.trigger: t.label or t.trigger for t in defn.transitions}
    event_rows = [{"e": e, "action": actions.get(e.trigger or "", e.trigger or "") if e.kind == "fire"
                   else kinds.get(e.kind, e.kind),
                   "from": _state_label(defn, e.from_state), "to": _state_label(defn, e.to_state)} for e in events]
    closed = view.closed_at is not None
    may_act = not closed and (actor.is_admin or actor.id == view.responsible
                              or getattr(people.get(view.responsible), "leader_id", None) == actor.id)
    return {
        "case": view, "events": events, "event_rows": event_rows, "timers": timers,
        "triggers": [] if closed else triggers,
        "timeline": timeline(view, rows, events, now, calendar=engine.calendar,
                             labels={t["row"].id: t["label"] for t in timers}),
        "workflow_title": defn.title, "people": people,
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
        return state


def _limit_text(row: TimerRow) -> str:
    spec = json.loads(row.limit_spec)
    extra = sum(int(e["amount"]) for e in json.loads(row.extensions))
    try:
        return TimeLimit(int(spec["amount"]) + extra, spec["unit"]).chinese() + (
            f" (含延期 {extra})" if extra else "")
    except (CaseflowError, KeyError, ValueError):
        return str(spec.get("amount", ""))


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
             calendar: WorkCalendar, labels: Mapping[int | None, str]) -> dict[str, Any]:
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
                            "title": f"#{e.seq} {fmt_instant(e.at)} {e.kind} {e.trigger or ''} {e.actor}".strip()})
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
