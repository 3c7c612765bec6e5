"""Bearer tokens: stored hashed, authenticate as their person, revocable — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from caseflow.errors import PersonNotFoundError
from caseflow.store import ApiToken, Store
from caseflow.tokens import (
    TokenNotFoundError,
    authenticate,
    create_token,
    csrf_token,
    hash_token,
    list_tokens,
    revoke,
)
from storefixtures import db_url  # noqa: F401 - fixture


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(db_url)
    from caseflow.engine import Engine

    Engine(s).add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"])
    yield s
    s.dispose()


def test_a_token_is_stored_only_as_its_hash(store: Store) -> None:
    token = create_token(store, "p1")
    assert len(token) >= 40
    with store.session() as s:
        rows = list(s.execute(sa.select(ApiToken.token_hash)).scalars())  # type: ignore[call-overload]
    assert rows == [hash_token(token)]
    assert token not in rows[0]


def test_authenticate_returns_the_person(store: Store) -> None:
    token = create_token(store, "p1")
    person = authenticate(store, token)
    assert person is not None and person.id == "p1" and person.unit == "城关派出所"


@pytest.mark.parametrize("bad", ["", "x", "a" * 500, "zz\x00", "令牌"])
def test_unknown_or_malformed_tokens_authenticate_nobody(store: Store, bad: str) -> None:
    create_token(store, "p1")
    assert authenticate(store, bad) is None
    assert authenticate(store, None) is None


def test_tokens_are_unique_per_creation(store: Store) -> None:
    assert create_token(store, "p1") != create_token(store, "p1")


def test_a_token_for_an_unknown_person_is_refused(store: Store) -> None:
    with pytest.raises(PersonNotFoundError, match="nobody"):
        create_token(store, "nobody")


@pytest.mark.parametrize("how", ["token", "id", "hash"])
def test_revoke_by_token_id_or_hash(store: Store, how: str) -> None:
    token = create_token(store, "p1")
    other = create_token(store, "p1")
    info = list_tokens(store)[0]
    ref: str | int = {"token": token, "id": str(info.id), "hash": hash_token(token)}[how]
    revoked = revoke(store, ref)
    assert revoked.person_id == "p1" and revoked.revoked_at is not None
    assert authenticate(store, token) is None
    assert authenticate(store, other) is not None, "revoking one token leaves the others alone"
    again = revoke(store, token)
    assert again.revoked_at == revoked.revoked_at, "a second revocation keeps the first instant"


def test_revoking_an_unknown_token_says_so(store: Store) -> None:
    with pytest.raises(TokenNotFoundError):
        revoke(store, "not-a-token")


def test_list_tokens_never_shows_secrets(store: Store) -> None:
    token = create_token(store, "p1")
    listed = list_tokens(store, "p1")
    assert len(listed) == 1
    assert token not in str(listed[0].to_dict())


def test_csrf_token_is_derived_from_the_secret() -> None:
    assert csrf_token("a") == csrf_token("a")
    assert csrf_token("a") != csrf_token("b")


def test_cli_token_create_prints_the_token_alone_on_the_last_line(tmp_path: object) -> None:
    import click

    from caseflow.cli import cli

    ctx = click.Context(cli)
    group = click.Group(commands={name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)})
    db = f"sqlite:///{tmp_path}/cli.db"
    runner = CliRunner()
    assert runner.invoke(group, ["people", "add", "p1", "--name", "张", "--unit", "U", "--db", db]).exit_code == 0
    result = runner.invoke(group, ["token", "create", "p1", "--db", db])
    assert result.exit_code == 0, result.output
    token = result.output.rstrip("\n").splitlines()[-1]
    assert token.strip() == token and " " not in token
    store = Store(db)
    person = authenticate(store, token)
    assert person is not None and person.id == "p1"
    listed = runner.invoke(group, ["token", "list", "--db", db, "--json"])
    assert listed.exit_code == 0 and token not in listed.output
    revoked = runner.invoke(group, ["token", "revoke", token, "--db", db, "--json"])
    assert revoked.exit_code == 0, revoked.output
    assert authenticate(store, token) is None
    missing = runner.invoke(group, ["token", "create", "ghost", "--db", db, "--json"])
    assert missing.exit_code == 1 and "PersonNotFoundError" in missing.output
    store.dispose()
