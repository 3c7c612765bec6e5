"""The FastAPI application: ``create_app()`` (tests, embedding) and ``app_from_env()`` (uvicorn's factory)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from caseflow.abc import Clock
from caseflow.clock import FixedClock, SystemClock, parse_instant
from caseflow.engine import Engine
from caseflow.errors import (
    CaseflowError,
)
from caseflow.store import Store
from caseflow.web.pages import add_web_routes, error_page
from caseflow.web.problems import _TITLES, ApiError, LoginRequired, _slug, error_status, problem
from caseflow.web.routes import add_api_routes
from caseflow.web.window import add_window_routes

WEB_DIR = Path(__file__).parent

log = logging.getLogger("caseflow.web")

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
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    add_api_routes(app)
    add_web_routes(app)
    add_window_routes(app)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    return app


def app_from_env() -> Any:
    """The factory uvicorn's workers call (``uvicorn caseflow.web.app:app_from_env --factory``): ``$CASEFLOW_DB``."""
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


#: The largest request body accepted: a holiday notice or a workflow definition is a few kilobytes, a
#: command far less; a larger body is refused with 413 before it is read into memory whole.
MAX_BODY_BYTES = 2 * 1024 * 1024


class BodyLimit:
    """Pure ASGI middleware: refuse a request body over :data:`MAX_BODY_BYTES` with 413 problem+json.

    A declared ``Content-Length`` over the limit is refused at once; a body sent without one (chunked) is
    read up to the limit and refused when it goes beyond, so no route ever sees an oversized body.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            await self._refuse(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Any, receive: Any, send: Any) -> None:
        response = problem(413, "request-too-large",
                           f"the request body is larger than {MAX_BODY_BYTES} bytes; a command carries at most "
                           "64 KiB of case data and an upload a few hundred kilobytes", instance=scope.get("path"))
        await response(scope, receive, send)


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


def install_error_handlers(app: FastAPI) -> None:
    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"

    @app.exception_handler(CaseflowError)
    async def _caseflow_error(request: Request, exc: CaseflowError) -> Response:
        status = error_status(exc)
        if not is_api(request):
            return error_page(request, status, str(exc))
        return problem(status, _slug(type(exc).__name__), str(exc), instance=request.url.path)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if not is_api(request):
            return error_page(request, exc.status, exc.detail)
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
        if request.method in ("POST", "PUT", "PATCH") and "json" not in request.headers.get("content-type", ""):
            # curl -d sends application/x-www-form-urlencoded: the JSON body then reads as missing.
            detail += ("; the body was not read as JSON: send it with the header `Content-Type: application/json` "
                       f"(got {request.headers.get('content-type') or 'no Content-Type'})")
        if not is_api(request):
            return error_page(request, 422, detail)
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
            return error_page(request, exc.status_code, detail, headers=headers)
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
            return error_page(request, status, detail)
        return problem(status, slug, detail, instance=request.url.path)

    @app.exception_handler(UnicodeError)
    async def _unicode(request: Request, exc: UnicodeError) -> Response:
        # Lone surrogates in JSON strings cannot be stored: bad input.
        if not is_api(request):
            return error_page(request, 400, "the text is not valid Unicode")
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


