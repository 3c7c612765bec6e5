"""Bearer tokens for the HTTP API and the web console: create, authenticate, revoke.

A token is ``secrets.token_urlsafe(32)`` (256 random bits). Only its SHA-256 is stored, so a copy of
the database does not hand out working credentials; the token itself is shown once, when it is
created (``caseflow token create PERSON``). A plain hash (no salt, no slow KDF) is enough here: the
secret has 256 bits of entropy, so there is nothing to guess, and every API request must verify it.

This module is core: it knows the store, not FastAPI.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeGuard

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from caseflow.errors import NotFoundError, PersonNotFoundError
from caseflow.store import ApiToken, Person, Store

__all__ = [
    "TokenInfo",
    "TokenNotFoundError",
    "authenticate",
    "create_token",
    "csrf_token",
    "hash_token",
    "list_tokens",
    "person_and_led_units",
    "person_for_token",
    "revoke",
]

#: Bytes of randomness in a new token (43 URL-safe characters).
TOKEN_BYTES = 32
#: Longest text that can be a token; longer input is refused before hashing (cheap denial of work).
MAX_TOKEN_LENGTH = 200


class TokenNotFoundError(NotFoundError):
    """No token matches the given token, hash or id."""


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: int
    person_id: str
    created_at: datetime
    revoked_at: datetime | None
    hash_prefix: str

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return {"id": self.id, "person": self.person_id, "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "hash_prefix": self.hash_prefix}


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which ``token`` is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(token: str) -> str:
    """The anti-CSRF value the web console puts in its forms for the session holding ``token``.

    Derived from the secret itself, so every API worker computes the same value without shared state,
    and a page on another site, which cannot read the HttpOnly cookie, cannot compute it.
    """
    return hmac.new(token.encode("utf-8"), b"caseflow-csrf", hashlib.sha256).hexdigest()


def create_token(store: Store, person_id: str, *, now: datetime | None = None) -> str:
    """Create a token acting as ``person_id`` and return it (the only time it is visible)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    created = now or datetime.now(UTC)
    with store.session(write=True) as s:
        if s.get(Person, person_id) is None:
            raise PersonNotFoundError(
                f"no person has the id {person_id!r}; add them with `caseflow people add` first"
            )
        s.add(ApiToken(token_hash=hash_token(token), person_id=person_id, created_at=created))
    return token


def authenticate(store: Store, token: str | None) -> Person | None:
    """The person a live (not revoked) token acts as, or None for an unknown, revoked or malformed one."""
    with store.session() as s:
        return person_for_token(s, token)


def _plausible(token: str | None) -> TypeGuard[str]:
    """A token worth hashing and looking up: present, not overlong, printable ASCII."""
    return token is not None and 0 < len(token) <= MAX_TOKEN_LENGTH and token.isascii() and token.isprintable()


def person_and_led_units(session: Session, token: str | None) -> tuple[Person, set[str]] | None:
    """The token's live person and the units of the people they lead, in one statement (one row per
    person led); None for a missing, malformed or revoked token."""
    if not _plausible(token):
        return None
    led = aliased(Person)
    rows = session.exec(
        select(Person, led.unit).join(ApiToken, ApiToken.person_id == Person.id)  # type: ignore[arg-type]
        .outerjoin(led, led.leader_id == Person.id)  # type: ignore[arg-type]
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))  # type: ignore[union-attr]
    ).all()
    if not rows:
        return None
    return rows[0][0], {unit for _, unit in rows if unit is not None}


def person_for_token(session: Session, token: str | None) -> Person | None:
    """:func:`authenticate` inside the caller's transaction."""
    if not _plausible(token):
        return None
    # One indexed probe (unique token_hash) joined to the person: the cost every request pays.
    return session.exec(
        select(Person).join(ApiToken, ApiToken.person_id == Person.id)  # type: ignore[arg-type]
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))  # type: ignore[union-attr]
    ).first()


def _find(token_or_id: str | int) -> sa.ColumnElement[bool]:
    """The WHERE clause selecting a token by id (digits), stored hash (64 hex digits) or the token itself."""
    if isinstance(token_or_id, int) and not isinstance(token_or_id, bool):
        return ApiToken.id == token_or_id  # type: ignore[return-value]
    text = str(token_or_id).strip()
    # A token has 43 characters; ids are short digit strings, hashes exactly 64 hex digits.
    if text.isdigit() and len(text) < 19:
        return ApiToken.id == int(text)  # type: ignore[return-value]
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return ApiToken.token_hash == text  # type: ignore[return-value]
    return ApiToken.token_hash == hash_token(text)  # type: ignore[return-value]


def revoke(store: Store, token_or_id: str | int, *, now: datetime | None = None) -> TokenInfo:
    """Revoke a token given as the token itself, its id or its stored hash; return what was revoked.

    Revoking an already revoked token changes nothing (the first revocation instant is kept).
    """
    when = now or datetime.now(UTC)
    with store.session(write=True) as s:
        row = s.exec(select(ApiToken).where(_find(token_or_id))).first()
        if row is None:
            raise TokenNotFoundError("no token matches that token, id or hash; list them with `caseflow token list`")
        if row.revoked_at is None:
            row.revoked_at = when
            s.add(row)
        assert row.id is not None
        return TokenInfo(row.id, row.person_id, row.created_at, row.revoked_at, row.token_hash[:12])


def list_tokens(store: Store, person_id: str | None = None) -> list[TokenInfo]:
    """Stored tokens (never their secrets), oldest first, optionally of one person."""
    with store.session() as s:
        query = select(ApiToken).order_by(ApiToken.id)  # type: ignore[arg-type]
        if person_id is not None:
            query = query.where(ApiToken.person_id == person_id)
        return [TokenInfo(r.id or 0, r.person_id, r.created_at, r.revoked_at, r.token_hash[:12])
                for r in s.exec(query)]
