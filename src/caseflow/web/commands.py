"""Engine commands over HTTP: ``If-Match`` versions, scoped ``Idempotency-Key``s, the case answer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from caseflow.calendar import ZONE
from caseflow.clock import check_instant, parse_instant
from caseflow.engine import Engine
from caseflow.errors import (
    CalendarCoverageError,
    ConflictError,
    PersonNotFoundError,
    TimeLimitError,
)
from caseflow.store import CommandRecord
from caseflow.views import CaseView
from caseflow.web.auth import Actor, check_case
from caseflow.web.problems import ApiError

API_PREFIX = "/api/v1"

# ------------------------------------------------------------------------------------------- helpers


def local_instant(value: datetime | None) -> datetime | None:
    """An API instant in Beijing time; a naive one is read as Beijing time (as the CLI does)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=ZONE)
    try:
        return check_instant(value)  # within the calendar's years, offset within ±14 h
    except CalendarCoverageError as exc:  # a field of the body: a 422 like any other invalid field
        raise TimeLimitError(str(exc)) from None


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


REPLAYED_HEADER = "Idempotent-Replayed"


def case_response(view: CaseView, status: int = 200, location: bool = False, *,
                  replayed: bool = False) -> JSONResponse:
    """A case in the CLI's JSON shape, its version as the ETag.

    A replay (an ``Idempotency-Key`` already used) answers 200 with ``Idempotent-Replayed: true``, so a
    client knows nothing was done again.
    """
    headers = {"ETag": _etag(view)}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
        status = 200
    if location:
        headers["Location"] = f"{API_PREFIX}/cases/{view.id}"
    return JSONResponse(view.to_dict(), status_code=status, headers=headers)


def run_command(engine: Engine, actor: Actor, request: Request, case_id: int, *, if_match: str | None,
                key: str | None, command: Callable[[int | None, str | None], CaseView]) -> JSONResponse:
    """Authorize, run one engine command with If-Match and Idempotency-Key, and answer the case."""
    check_case(engine, actor, case_id)
    expected = parse_if_match(if_match)
    scoped = scoped_key(actor, request, key)
    replayed = key_was_used(engine, scoped)
    try:
        view = command(expected, scoped)
    except PersonNotFoundError as exc:
        # A person the command names who does not exist, or whom the actor may not see (another unit's,
        # on a hand-over or reassignment), answers one way: 404, revealing nothing (issue 9).
        raise ApiError(404, "person-not-found", "Not found", str(exc)) from None
    except ConflictError as exc:
        if expected is not None and not key_was_used(engine, scoped):
            raise ApiError(412, "precondition-failed", "Precondition failed", str(exc)) from None
        raise
    return case_response(view, replayed=replayed)


def key_was_used(engine: Engine, key: str | None) -> bool:
    """Was the (scoped) idempotency key recorded already? Then a conflict is about the key, not the version."""
    if key is None:
        return False
    with engine.store.session() as s:
        return s.get(CommandRecord, key) is not None


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


