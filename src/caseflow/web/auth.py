"""Who a request acts as (:class:`Actor`) and what they may see: one place for authorization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import select

from caseflow.engine import Engine
from caseflow.errors import (
    CaseNotFoundError,
    PermissionDeniedError,
)
from caseflow.store import CaseRow, Person, Store
from caseflow.tokens import person_and_led_units
from caseflow.web.problems import ApiError, LoginRequired

COOKIE_NAME = "caseflow_token"

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
    # One statement, every request pays for it: the token's person, and one row per person they lead (the
    # units they see beside their own). No transaction around it (Store.lookup).
    with store.lookup() as s:
        found = person_and_led_units(s, token)
    if found is None or token is None:
        return None
    person, led = found
    if person.admin:
        return Actor(person, None, token)
    return Actor(person, frozenset({person.unit, *led}), token, leads_others=bool(led))


def engine_of(request: Request) -> Engine:
    """The application's engine, having taken up any notice or definition loaded since (by any worker).

    Refreshed once per request: the actor's dependency and the route both ask for it, and a second read of
    the counters within one request would only cost a round trip.
    """
    engine: Engine = request.app.state.engine
    if not getattr(request.state, "caseflow_refreshed", False):
        engine.refresh()
        request.state.caseflow_refreshed = True
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
    actor = resolve_actor(engine_of(request).store, credentials.credentials)
    if actor is None:
        raise ApiError(401, "invalid-token", "Not authenticated",
                       "the token is unknown or revoked; ask an administrator for a new one",
                       headers={"WWW-Authenticate": 'Bearer realm="caseflow", error="invalid_token"'})
    return actor


ActorDep = Annotated[Actor, Depends(api_actor)]


def require_admin(actor: Actor, what: str) -> None:
    """Refuse a non-administrator (403)."""
    if not actor.is_admin:
        raise PermissionDeniedError(f"{actor.id!r} is not an administrator; only administrators may {what}")


def check_case(engine: Engine, actor: Actor, case_id: int) -> None:
    """404 for a case the actor may not see, with the very message of a missing case."""
    with engine.store.lookup() as s:
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


def web_actor(request: Request) -> Actor:
    """The console's person, from the HttpOnly session cookie; otherwise redirect to the login page."""
    actor = resolve_actor(engine_of(request).store, request.cookies.get(COOKIE_NAME))
    if actor is None:
        raise LoginRequired
    return actor


WebActor = Annotated[Actor, Depends(web_actor)]
