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

from caseflow.web.app import NoDelayH11Protocol, app_from_env, create_app
from caseflow.web.auth import COOKIE_NAME, Actor
from caseflow.web.commands import API_PREFIX

__all__ = ["API_PREFIX", "COOKIE_NAME", "Actor", "NoDelayH11Protocol", "app_from_env", "create_app"]
