"""Refusals as RFC 9457 ``application/problem+json`` documents, and the HTTP status of each engine error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

from caseflow.applicants import ApplicantKeyError
from caseflow.errors import (
    BackdatingError,
    CaseflowError,
    CaseNotFoundError,
    CommandError,
    ConflictError,
    HolidayFileError,
    PermissionDeniedError,
    StoreError,
    TimeLimitError,
    TimerError,
    TransitionError,
    WorkflowError,
)

PROBLEM_JSON = "application/problem+json"

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
    if isinstance(exc, (StoreError, ApplicantKeyError)):
        return 503  # the database, or the site's configuration (no secret for applicant fingerprints)
    return 400


_TITLES = {400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           409: "Conflict", 412: "Precondition failed", 413: "Request too large", 422: "Unprocessable request",
           500: "Internal error",
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
    # 413 on every operation: the body limit (app.BodyLimit) refuses an oversized body before any route runs.
    return {s: {"description": _TITLES[s], "content": _PROBLEM_CONTENT} for s in sorted({*statuses, 413})}


# Every /api/v1 operation may answer these; commands add 403/404/409/412. 413: a body over MAX_BODY_BYTES.
_COMMON = _problems(400, 401, 413, 422, 503)
_ON_CASE = _problems(400, 401, 403, 404, 409, 412, 413, 422, 503)
_ETAG_HEADER = {"ETag": {"description": 'The case version, e.g. "3"', "schema": {"type": "string"}}}


