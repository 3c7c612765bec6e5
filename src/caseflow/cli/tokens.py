"""``caseflow token``: create, revoke and list the bearer tokens of the HTTP API."""

from __future__ import annotations

import click

from caseflow.cli.common import db_option, emit, handle_errors, json_option


@click.group("token")
def token_group() -> None:
    """Bearer tokens for the HTTP API and the web console (stored hashed; revocable).

    \b
    Example:
        caseflow token create p1
    """

@token_group.command("create")
@click.argument("person", metavar="PERSON")
@db_option
@json_option
@handle_errors
def token_create(person: str, db: str | None, as_json: bool) -> None:
    """Create a token acting as PERSON; it is printed once, alone on the last line.

    Only its SHA-256 is stored: a lost token cannot be shown again, only revoked and replaced.

    \b
    Example:
        caseflow token create p1 --db caseflow.db
        TOKEN=$(caseflow token create p1 | tail -n 1)
    """
    from caseflow.store import Person, Store
    from caseflow.tokens import create_token

    store = Store(db)
    token = create_token(store, person)  # refuses an unknown person
    with store.session() as s:
        who = s.get(Person, person)
    assert who is not None
    emit(as_json, {"person": who.id, "name": who.name, "unit": who.unit, "token": token},
          f"token for {who.id} ({who.name}, {who.unit}); shown once, keep it secret:\n{token}")

@token_group.command("revoke")
@click.argument("token", metavar="TOKEN")
@db_option
@json_option
@handle_errors
def token_revoke(token: str, db: str | None, as_json: bool) -> None:
    """Revoke TOKEN (the token itself, its id, or its stored hash from `token list`).

    \b
    Example:
        caseflow token revoke 3
        caseflow token revoke "$TOKEN"
    """
    from caseflow.store import Store
    from caseflow.tokens import revoke

    info = revoke(Store(db), token)
    emit(as_json, info.to_dict(), f"revoked token {info.id} of {info.person_id} ({info.hash_prefix}…)")

@token_group.command("list")
@click.option("--person", default=None, metavar="ID", help="Only this person's tokens.")
@db_option
@json_option
@handle_errors
def token_list(person: str | None, db: str | None, as_json: bool) -> None:
    """List stored tokens (never their secrets): id, person, created, revoked.

    \b
    Example:
        caseflow token list --person p1
    """
    from caseflow.store import Store
    from caseflow.tokens import list_tokens

    tokens = list_tokens(Store(db), person)
    text = "\n".join(
        f"{t.id:>4}  {t.person_id:<12} {t.created_at:%Y-%m-%d %H:%M}  "
        + (f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active")
        + f"  {t.hash_prefix}…"
        for t in tokens
    ) or "no tokens"
    emit(as_json, [t.to_dict() for t in tokens], text)
