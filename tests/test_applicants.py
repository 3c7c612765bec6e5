"""The applicant's keyed fingerprint: HMAC-SHA256 with a site secret kept outside the database.

An ID number has too little entropy for a plain hash; the secret lives in a file named by ``[desk]
secret_file`` (or $CASEFLOW_DESK_SECRET_FILE), never in the database. Without one, the commands that must
fingerprint an applicant are refused by name; rows hashed before (migration 0008 marks them ``sha256``)
still match their applicant and are re-keyed at the next visit.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from caseflow.applicants import SECRET_ENV, ApplicantKey, ApplicantKeyError, legacy_fingerprint, write_secret
from caseflow.appointments import Appointments
from caseflow.cli import cli
from caseflow.clock import FixedClock
from caseflow.config import ConfigError, NotifyConfig
from caseflow.desk import Desk
from caseflow.engine import Engine
from caseflow.materials import materials_digest
from caseflow.registry import WorkflowRegistry
from caseflow.store import Store, UTCDateTime
from caseflow.tokens import create_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

    from caseflow.web import create_app

BJ = ZoneInfo("Asia/Shanghai")
UNIT = "城关派出所"
ALICE = "110101199003071234"
COMPLETE = ["id_card", "household_register", "transfer_permit"]


def bj(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BJ)  # type: ignore[misc]


def engine_on(url: str) -> Engine:
    engine = Engine(Store(url), clock=FixedClock(bj(2026, 11, 2, 9, 0)))
    engine.add_person("zhang", name="张所长", unit=UNIT, roles=["station_leader"])
    engine.add_person("li", name="李警官", unit=UNIT, roles=["household_police"], leader="zhang")
    return engine


def stored_hashes(store: Store, table: str) -> list[tuple[str, str]]:
    with store.session() as s:
        return [tuple(r) for r in s.execute(sa.text(f"SELECT applicant_hash, applicant_scheme FROM {table} "
                                                    "ORDER BY id")).all()]  # type: ignore[misc]


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No secret anywhere: no $CASEFLOW_DESK_SECRET_FILE, no $CASEFLOW_CONFIG, no ./caseflow.toml."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.delenv("CASEFLOW_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_stored_fingerprint_is_keyed_and_means_nothing_without_the_secret(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'caseflow.db'}"
    engine = engine_on(url)
    key = ApplicantKey.from_file(write_secret(tmp_path / "site.key"))
    desk = Desk(engine, key=key)
    desk.visit("hukou_transfer", applicant_id=ALICE, actor="li", brought=["id_card"])
    [(stored, scheme)] = stored_hashes(engine.store, "caseflow_visits")
    assert scheme == "hmac-sha256" and stored == key.fingerprint(ALICE) == key.fingerprint("1101 0119 9003 0712 34")
    # Neither the unkeyed hash nor the keyed one under another secret is what the database holds.
    assert stored != hashlib.sha256(f"caseflow-applicant:{ALICE}".encode()).hexdigest() == legacy_fingerprint(ALICE)
    other = ApplicantKey.from_file(write_secret(tmp_path / "other.key"))
    assert other.fingerprint(ALICE) != stored and "site.key" in repr(key) and key.source not in stored
    # The same secret recognises the applicant: the second visit is the second.
    assert desk.visit("hukou_transfer", applicant_id=ALICE, actor="li", brought=COMPLETE).number == 2
    assert [v.number for v in desk.visits(applicant_id=ALICE)] == [2, 1]
    # No table holds the secret or the ID number.
    secret = (tmp_path / "site.key").read_text().strip()
    raw = (tmp_path / "caseflow.db").read_bytes()
    assert secret.encode() not in raw and ALICE.encode() not in raw


def test_without_a_secret_the_desk_is_refused_naming_the_setting(no_secret: Path) -> None:
    engine = engine_on(f"sqlite:///{no_secret / 'caseflow.db'}")
    with pytest.raises(ApplicantKeyError, match=r"desk\.secret_file.*caseflow desk keygen") as refused:
        Desk(engine).visit("hukou_transfer", applicant_id=ALICE, actor="li")
    assert isinstance(refused.value, ConfigError) and SECRET_ENV in str(refused.value)
    with pytest.raises(ApplicantKeyError, match="no site secret"):
        Appointments(engine).book(UNIT, "hukou_transfer", bj(2026, 11, 3, 9, 0), applicant_id=ALICE)
    with engine.store.session() as s:
        assert s.execute(sa.text("SELECT count(*) FROM caseflow_visits")).scalar_one() == 0
    # What needs no fingerprint still works: the slots, the public pages.
    assert Appointments(engine).slots(UNIT, "hukou_transfer", bj(2026, 11, 3, 0, 0).date())

    # The command line says the same, with no traceback; keygen makes the file, then the desk works.
    runner = CliRunner()
    db = str(no_secret / "caseflow.db")
    args = ["desk", "visit", "hukou_transfer", "--actor", "li", "--applicant", ALICE, "--db", db]
    result = runner.invoke(cli, args)
    assert result.exit_code != 0 and "desk.secret_file" in result.output and "Traceback" not in result.output
    made = runner.invoke(cli, ["desk", "keygen", str(no_secret / "desk.key")])
    assert made.exit_code == 0 and "[desk] secret_file" in made.output, made.output
    assert os.stat(no_secret / "desk.key").st_mode & 0o777 == 0o600
    again = runner.invoke(cli, ["desk", "keygen", str(no_secret / "desk.key"), "--json"])
    assert again.exit_code != 0 and "must not be replaced" in again.output
    (no_secret / "caseflow.toml").write_text(f'[desk]\nsecret_file = "{no_secret / "desk.key"}"\n')
    assert NotifyConfig.load().desk.secret_file == no_secret / "desk.key"
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["number"] == 1, result.output

    # Over HTTP a missing secret is the site's configuration: 503 with the same message, never a 500.
    (no_secret / "caseflow.toml").unlink()
    client = TestClient(create_app(engine=engine))
    token = create_token(engine.store, "li")
    r = client.post("/api/v1/desk/visits", json={"workflow": "hukou_transfer", "applicant_id": ALICE},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503 and "desk.secret_file" in r.json()["detail"], r.text
    r = client.post("/api/v1/public/bookings", json={"workflow": "hukou_transfer", "unit": UNIT,
                                                     "at": "2026-11-03T09:00:00+08:00", "applicant_id": ALICE})
    assert r.status_code == 503
    client.close()


def test_a_bad_secret_setting_is_refused_by_name(no_secret: Path) -> None:
    with pytest.raises(ApplicantKeyError, match="does not exist"):
        ApplicantKey.from_file(no_secret / "missing.key")
    (no_secret / "short.key").write_text("abcd\n")
    with pytest.raises(ApplicantKeyError, match="at least 32 bytes"):
        ApplicantKey.from_file(no_secret / "short.key")
    (no_secret / "text.key").write_text("not hex at all\n")
    with pytest.raises(ApplicantKeyError, match="hex text"):
        ApplicantKey.from_file(no_secret / "text.key")
    with pytest.raises(ConfigError, match=r"desk\.secret_file: must be a non-empty string"):
        NotifyConfig.from_dict({"desk": {"secret_file": 3}})
    with pytest.raises(ConfigError, match="unknown key"):
        NotifyConfig.from_dict({"desk": {"secret": "abc"}})


def test_rows_hashed_before_still_match_and_are_rekeyed_at_the_next_visit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url, upgrade=False)
    old.upgrade("0007")
    defn = WorkflowRegistry.load().latest("hukou_transfer")
    visits = sa.table("caseflow_visits", *(sa.column(c) for c in (
        "workflow_key", "workflow_version", "materials_digest", "applicant_hash", "applicant_masked", "unit",
        "clerk_id", "number", "brought", "applies", "outcome", "over_limit")), sa.column("at", UTCDateTime()))
    with old.engine.begin() as conn:
        conn.execute(visits.insert().values(
            workflow_key="hukou_transfer", workflow_version=defn.version, materials_digest=materials_digest(
                defn.materials), applicant_hash=legacy_fingerprint(ALICE), applicant_masked="**************1234",
            unit=UNIT, clerk_id="li", at=bj(2026, 10, 30, 10, 0), number=1, brought='["id_card"]', applies="[]",
            outcome="notice", over_limit=False))
    old.dispose()
    Store(url, upgrade=True).dispose()  # `caseflow db upgrade`: 0008 marks the old row as the unkeyed scheme
    engine = engine_on(url)
    assert stored_hashes(engine.store, "caseflow_visits") == [(legacy_fingerprint(ALICE), "sha256")]
    key = ApplicantKey.from_file(write_secret(tmp_path / "site.key"))
    desk = Desk(engine, key=key)
    # Found by the old hash before any re-keying (a query reads both).
    assert [v.number for v in desk.visits(applicant_id=ALICE)] == [1]
    # The applicant comes back: the earlier visit counts (this is the second), and both rows are keyed now.
    assert desk.visit("hukou_transfer", applicant_id=ALICE, actor="li", brought=COMPLETE).number == 2
    keyed = (key.fingerprint(ALICE), "hmac-sha256")
    assert stored_hashes(engine.store, "caseflow_visits") == [keyed, keyed]
    with engine.store.session() as s:
        left = s.execute(sa.text("SELECT count(*) FROM caseflow_visits WHERE applicant_scheme = 'sha256'"))
        assert left.scalar_one() == 0
