"""The audit as a contract on SQLite and PostgreSQL: the chain is the record, the tables its projection,
and a signed checkpoint kept outside the database names what a rewrite of the whole chain hides.

The tamper suite edits the database directly, as an attacker with write access would, and expects
``audit verify`` to name each change: edit, delete, insert, reorder, recompute-after-edit, cut tail,
delete case, edit state / unit / due instant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from caseflow.audit import (
    create_key,
    latest_checkpoint,
    load_private_key,
    public_key_of,
    rebuild_case,
    verify,
    write_checkpoint,
)
from caseflow.calendar import ZONE
from caseflow.chain import event_hash
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.errors import AuditError
from caseflow.store import EventRow, Store
from caseflow.views import AuditProblem
from storefixtures import db_url  # noqa: F401 - fixture

T0 = datetime(2026, 9, 30, 9, 0, tzinfo=ZONE)
RETURN: dict[str, Any] = {}


class Office:
    """A station with three cases that used every command, a key and a checkpoint file."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.clock = FixedClock(T0)
        self.store = Store(url)
        self.engine = e = Engine(self.store, clock=self.clock)
        e.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader", "leader"])
        e.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1")
        e.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], leader="l1", substitute="p2")
        e.add_person("i1", name="赵侦查", unit="刑侦大队", roles=["investigator"], leader="l1")
        e.add_person("admin", name="管理员", unit="城关派出所", admin=True)
        c1 = e.open("hukou_transfer", actor="p1", data={"applicant": "李四", "needs_verification": "true"})
        e.fire(c1.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
        self.tick()
        e.pause(c1.id, "verification", reason="函调", actor="p2")
        self.tick(hours=30)
        e.resume(c1.id, "verification", actor="p2")
        e.hand_over(c1.id, to="p2", actor="p1", slip="交-7")
        c2 = e.open("criminal_detention", actor="i1", data={"suspect": "某甲"})
        self.tick()
        e.extend(c2.id, "arrest_request", by="4 days", grounds="特殊情况", actor="l1")
        e.reassign(c2.id, to="i1", actor="l1", reason="承办")
        c3 = e.open("hukou_transfer", actor="p1")
        self.tick()
        e.close(c3.id, actor="p1", reason="申请人撤回")
        self.ids = (c1.id, c2.id, c3.id)
        self.key_path = tmp / "keys" / "audit.key"
        create_key(self.key_path)
        self.key = load_private_key(self.key_path)
        self.checkpoints = tmp / "elsewhere" / "checkpoints.jsonl"

    def tick(self, hours: int = 1) -> None:
        self.clock.advance(timedelta(hours=hours))

    def checkpoint(self) -> None:
        write_checkpoint(self.store, self.checkpoints, self.key, at=self.clock.now())

    def verify(self) -> list[AuditProblem]:
        checkpoints = self.checkpoints if self.checkpoints.exists() else None
        return verify(self.engine, checkpoints=checkpoints, public_key=public_key_of(self.key))

    def sql(self, text: str, **params: Any) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(sa.text(text), params)

    def rehash(self, case_id: int) -> None:
        """What a careful forger does after an edit: recompute every hash of the case and its head."""
        with self.store.session(write=True) as s:
            rows = list(s.exec(select(EventRow).where(EventRow.case_id == case_id)
                               .order_by(EventRow.seq)))  # type: ignore[arg-type]
            previous = "0" * 64
            for row in rows:
                row.prev_hash = previous
                row.hash = event_hash(row)
                previous = row.hash
        self.sql("UPDATE caseflow_cases SET last_event_hash = :h, version = :v WHERE id = :c",
                 h=previous, v=len(rows), c=case_id)


@pytest.fixture
def office(db_url: str, tmp_path: Path) -> Iterator[Office]:  # noqa: F811
    o = Office(db_url, tmp_path)
    yield o
    o.store.dispose()


def named(problems: list[AuditProblem], *words: str, case: int | None = None) -> bool:
    return any(all(w in str(p) for w in words) and (case is None or p.case_id == case) for p in problems)


def test_an_honest_database_verifies_clean_against_its_checkpoint(office: Office) -> None:
    office.checkpoint()
    assert office.verify() == []
    # the case goes on after the checkpoint: still clean
    office.tick()
    office.engine.fire(office.ids[0], "return_verification", actor="p2", data=RETURN)
    assert office.verify() == []


def test_edit_an_event(office: Office) -> None:
    c1 = office.ids[0]
    office.sql("UPDATE caseflow_events SET data = :d WHERE case_id = :c AND seq = 2",
               d=json.dumps({"data": {"slip_no": "forged"}}), c=c1)
    problems = office.verify()
    assert named(problems, "event #2", "edited", case=c1)


def test_delete_an_event(office: Office) -> None:
    c1 = office.ids[0]
    office.sql("DELETE FROM caseflow_events WHERE case_id = :c AND seq = 3", c=c1)
    assert named(office.verify(), "#3 is missing", "deleted", case=c1)


def test_insert_an_event(office: Office) -> None:
    c1 = office.ids[0]
    office.sql("UPDATE caseflow_events SET seq = seq + 100 WHERE case_id = :c AND seq >= 3", c=c1)
    office.sql("INSERT INTO caseflow_events (case_id, seq, kind, at, recorded_at, actor, data, prev_hash, hash) "
               "SELECT case_id, 3, 'hand_over', at, recorded_at, actor, :d, prev_hash, hash FROM caseflow_events "
               "WHERE case_id = :c AND seq = 2", c=c1, d=json.dumps({"from": "p1", "to": "i1"}))
    problems = office.verify()
    assert named(problems, "event #3", case=c1)
    assert named(problems, "missing", case=c1) or named(problems, "edited", case=c1)


def test_reorder_events(office: Office) -> None:
    c1 = office.ids[0]
    office.sql("UPDATE caseflow_events SET seq = -1 WHERE case_id = :c AND seq = 3", c=c1)
    office.sql("UPDATE caseflow_events SET seq = 3 WHERE case_id = :c AND seq = 4", c=c1)
    office.sql("UPDATE caseflow_events SET seq = 4 WHERE case_id = :c AND seq = -1", c=c1)
    problems = office.verify()
    assert named(problems, "predecessor's hash", case=c1)


def test_recompute_the_hashes_after_an_edit(office: Office) -> None:
    """The chain verifies against itself; only the signed checkpoint names the rewrite."""
    office.checkpoint()
    c1 = office.ids[0]
    office.sql("UPDATE caseflow_events SET actor = 'l1' WHERE case_id = :c AND seq = 2", c=c1)
    office.rehash(c1)
    problems = office.verify()
    assert not [p for p in problems if p.kind == "chain"], "a recomputed chain verifies against itself"
    assert named(problems, "not the one the checkpoint", "rewritten", case=c1)


def test_cut_the_tail_and_fix_the_head(office: Office) -> None:
    office.checkpoint()
    c1 = office.ids[0]
    office.sql("DELETE FROM caseflow_events WHERE case_id = :c AND seq >= 4", c=c1)
    office.rehash(c1)
    problems = office.verify()
    assert named(problems, "ends at event #3", "tail was cut", case=c1)


def test_delete_a_whole_case(office: Office) -> None:
    office.checkpoint()
    c3 = office.ids[2]
    for table in ("caseflow_events", "caseflow_timers"):
        office.sql(f"DELETE FROM {table} WHERE case_id = :c", c=c3)
    office.sql("DELETE FROM caseflow_cases WHERE id = :c", c=c3)
    assert named(office.verify(), "the case is gone", "deleted", case=c3)


def test_insert_a_case_dated_before_the_checkpoint(office: Office) -> None:
    office.checkpoint()
    forger = Engine(office.store, clock=FixedClock(T0 + timedelta(hours=1)))
    forged = forger.open("hukou_transfer", actor="p1")
    problems = office.verify()
    assert named(problems, "not in the checkpoint", "inserted", case=forged.id)
    # a case opened honestly after the checkpoint is not named
    office.clock.advance(timedelta(days=1))
    honest = office.engine.open("hukou_transfer", actor="p1")
    assert not [p for p in office.verify() if p.case_id == honest.id]


def test_edit_the_state(office: Office) -> None:
    c1 = office.ids[0]
    office.sql("UPDATE caseflow_cases SET state = 'done' WHERE id = :c", c=c1)
    assert named(office.verify(), "state: the tables say 'done'", "'verifying'", case=c1)


def test_edit_the_unit(office: Office) -> None:
    c1 = office.ids[0]
    office.sql("UPDATE caseflow_cases SET unit = '东关派出所' WHERE id = :c", c=c1)
    assert named(office.verify(), "unit: the tables say '东关派出所'", "'城关派出所'", case=c1)


def test_edit_a_due_instant(office: Office) -> None:
    c2 = office.ids[1]
    office.sql("UPDATE caseflow_timers SET due_at = :d WHERE case_id = :c AND name = 'arrest_request'",
               d=datetime(2026, 12, 1, tzinfo=UTC).replace(tzinfo=None) if office.store.is_sqlite
               else datetime(2026, 12, 1, tzinfo=UTC), c=c2)
    assert named(office.verify(), "timer arrest_request (round 1) due instant", case=c2)


def test_edit_pauses_status_and_responsible(office: Office) -> None:
    c1, c2 = office.ids[0], office.ids[1]
    office.sql("UPDATE caseflow_timers SET pauses = '[]' WHERE case_id = :c AND name = 'verification'", c=c1)
    office.sql("UPDATE caseflow_timers SET status = 'met' WHERE case_id = :c AND name = 'arrest_request'", c=c2)
    office.sql("UPDATE caseflow_cases SET responsible_id = 'p1' WHERE id = :c", c=c2)
    problems = office.verify()
    assert named(problems, "timer verification (round 1) pauses", case=c1)
    assert named(problems, "timer arrest_request (round 1) status: the tables say 'met'", case=c2)
    assert named(problems, "responsible person: the tables say 'p1'", "'i1'", case=c2)


def test_a_forged_checkpoint_line_is_named(office: Office, tmp_path: Path) -> None:
    office.checkpoint()
    other = tmp_path / "other.key"
    create_key(other)
    write_checkpoint(office.store, office.checkpoints, load_private_key(other), at=office.clock.now())
    problems = office.verify()
    assert named(problems, "line 2", "does not verify")
    latest = latest_checkpoint(office.checkpoints, public_key_of(office.key))
    assert latest is not None and latest.line == 1


def test_rebuild_restores_the_tables_from_the_chain(office: Office) -> None:
    c1, c2 = office.ids[0], office.ids[1]
    before = office.engine.get(c1).to_dict()
    office.sql("UPDATE caseflow_cases SET state = 'done', unit = 'x' WHERE id = :c", c=c1)
    office.sql("UPDATE caseflow_timers SET pauses = '[]', due_at = NULL WHERE case_id = :c", c=c1)
    office.sql("DELETE FROM caseflow_timers WHERE case_id = :c AND name = 'hand_over'", c=c1)
    repaired = rebuild_case(office.engine, c1)
    assert any("state" in r for r in repaired) and any("missing from the tables" in r for r in repaired)
    assert office.verify() == []
    after = office.engine.get(c1).to_dict()
    assert {k: v for k, v in after.items() if k != "timers"} == {k: v for k, v in before.items() if k != "timers"}
    def timers(view: dict[str, Any]) -> list[tuple[str, str, str]]:
        return sorted((t["name"], t["status"], t["due_at"] or "") for t in view["timers"])

    assert timers(after) == timers(before)
    assert rebuild_case(office.engine, c2) == []  # nothing to repair
    # the case goes on after the rebuild
    office.tick()
    office.engine.fire(c1, "return_verification", actor="p2", data=RETURN)
    assert office.verify() == []


def test_rebuild_refuses_a_broken_chain(office: Office) -> None:
    c1 = office.ids[0]
    office.sql("UPDATE caseflow_events SET actor = 'l1' WHERE case_id = :c AND seq = 2", c=c1)
    with pytest.raises(AuditError, match="does not verify"):
        rebuild_case(office.engine, c1)


def test_no_checkpoint_is_signed_over_a_broken_chain(office: Office) -> None:
    office.sql("DELETE FROM caseflow_events WHERE case_id = :c AND seq = 2", c=office.ids[0])
    with pytest.raises(AuditError, match="no checkpoint was signed"):
        office.checkpoint()
    assert not office.checkpoints.exists()


# ------------------------------------------------------------------------------- command line, backup


def run(*args: str) -> Any:
    from click.testing import CliRunner

    from caseflow.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_checkpoint_verify_and_rebuild_with_the_key_named_in_caseflow_toml(office: Office,
                                                                             tmp_path: Path) -> None:
    config = tmp_path / "caseflow.toml"
    config.write_text(f'[audit]\nkey_file = "{office.key_path}"\ncheckpoint_file = "{office.checkpoints}"\n',
                      encoding="utf-8")
    db = office.store.url
    result = run("audit", "checkpoint", "--config", str(config), "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["cases"] == 3
    result = run("audit", "verify", "--config", str(config), "--db", db)
    assert result.exit_code == 0, result.output
    assert "audit ok" in result.output and str(office.checkpoints) in result.output

    c1 = office.ids[0]
    office.sql("UPDATE caseflow_cases SET state = 'done' WHERE id = :c", c=c1)
    result = run("audit", "verify", "--config", str(config), "--db", db, "--json")
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    assert [(p["case"], p["kind"]) for p in problems] == [(c1, "projection")]
    result = run("audit", "rebuild", str(c1), "--db", db)
    assert result.exit_code == 0 and "repaired: state" in result.output, result.output
    assert run("audit", "verify", "--config", str(config), "--db", db).exit_code == 0


def test_cli_checkpoint_without_a_key_says_how_to_get_one(office: Office, tmp_path: Path) -> None:
    result = run("audit", "checkpoint", "--db", office.store.url, "--checkpoints", str(tmp_path / "c.jsonl"))
    assert result.exit_code == 1 and "--key" in result.output and "[audit]" in result.output
    result = run("audit", "checkpoint", "--db", office.store.url, "--key", str(tmp_path / "none.key"),
                 "--checkpoints", str(tmp_path / "c.jsonl"))
    assert result.exit_code == 1 and "keygen" in result.output
    assert "Traceback" not in result.output


def test_restore_drill(tmp_path: Path) -> None:
    """Back up a working SQLite database, lose it, restore the copy: the audit is clean and the checkpoint
    taken before the backup still matches the restored chain exactly."""
    from caseflow.audit import checkpoint_matches

    office = Office(f"sqlite:///{tmp_path / 'live.db'}", tmp_path)
    db = office.store.url
    office.checkpoint()
    backup = tmp_path / "backup" / "caseflow-2026-10-01.db"
    backup.parent.mkdir()
    result = run("db", "backup", str(backup), "--db", db)
    assert result.exit_code == 0, result.output
    assert run("db", "backup", str(backup), "--db", db).exit_code == 1  # never overwrites
    # the live database is lost
    office.tick()
    office.engine.fire(office.ids[0], "return_verification", actor="p2", data=RETURN)
    office.store.dispose()
    (tmp_path / "live.db").unlink()
    for extra in ("live.db-wal", "live.db-shm"):
        (tmp_path / extra).unlink(missing_ok=True)
    # restore: the backup in its place
    (tmp_path / "live.db").write_bytes(backup.read_bytes())
    restored = Engine(Store(db), clock=FixedClock(T0 + timedelta(days=1)))
    assert verify(restored, checkpoints=office.checkpoints, public_key=public_key_of(office.key)) == []
    latest = latest_checkpoint(office.checkpoints, public_key_of(office.key))
    assert latest is not None and checkpoint_matches(restored.store, latest)
    result = run("audit", "verify", "--db", db, "--key", str(office.key_path), "--checkpoints",
                 str(office.checkpoints))
    assert result.exit_code == 0, result.output
    restored.store.dispose()


def test_backup_of_postgresql_points_to_pg_dump(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite backups are the restore drill above")
    result = run("db", "backup", str(tmp_path / "b.db"), "--db", db_url)
    assert result.exit_code == 1 and "pg_dump" in result.output


def test_the_scheduler_writes_one_checkpoint_per_working_day(office: Office, tmp_path: Path) -> None:
    from caseflow.config import NotifyConfig
    from caseflow.scheduler import Scheduler

    config = NotifyConfig.from_dict({"audit": {"key_file": str(office.key_path),
                                               "checkpoint_file": str(office.checkpoints),
                                               "checkpoint_time": "20:00"}})
    first = Scheduler(office.store, config, clock=office.clock)
    second = Scheduler(office.store, config, clock=office.clock)
    evening = datetime(2026, 10, 9, 20, 30, tzinfo=ZONE)  # a Friday, a working day after National Day
    assert first.run_checkpoint(evening) == office.checkpoints
    assert second.run_checkpoint(evening + timedelta(minutes=5)) is None  # the slot is taken
    # Saturday 10-10 is a make-up working day (调休上班): it has a slot; Sunday has none
    assert first.run_checkpoint(datetime(2026, 10, 10, 21, tzinfo=ZONE)) == office.checkpoints
    assert first.run_checkpoint(datetime(2026, 10, 11, 21, tzinfo=ZONE)) is None
    assert first.run_checkpoint(datetime(2026, 10, 12, 21, tzinfo=ZONE)) == office.checkpoints
    lines = office.checkpoints.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert office.verify() == []
    jobs = {job.id for job in first.build(background=True).get_jobs()}
    assert "caseflow-audit-checkpoint" in jobs


def test_bad_audit_configuration_is_named() -> None:
    from caseflow.config import ConfigError, NotifyConfig

    with pytest.raises(ConfigError, match=r"audit\.key"):
        NotifyConfig.from_dict({"audit": {"key": "x"}})
    with pytest.raises(ConfigError, match=r"audit\.checkpoint_time"):
        NotifyConfig.from_dict({"audit": {"checkpoint_time": "25:00"}})


def test_the_http_audit_names_a_table_edit(office: Office) -> None:
    import warnings

    from caseflow.tokens import create_token

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        from caseflow.web import create_app

    token = create_token(office.store, "admin")
    c1 = office.ids[0]
    office.sql("UPDATE caseflow_cases SET unit = '东关派出所' WHERE id = :c", c=c1)
    with TestClient(create_app(engine=office.engine)) as client:
        body = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {token}"}).json()
    assert body["ok"] is False
    assert [(p["case"], p["kind"]) for p in body["problems"]] == [(c1, "projection")]
    assert "unit" in body["problems"][0]["problem"]


def test_the_replay_follows_a_loaded_holiday_notice(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    """Deadlines moved by a newly loaded notice are what the chain recorded ('recompute'), and timers that
    had stopped keep the due instant their stop recorded: the audit stays clean, an edit is still named."""
    from datetime import date

    from caseflow.calendar import WorkCalendar

    clock = FixedClock(datetime(2026, 12, 30, 9, tzinfo=ZONE))
    engine = Engine(Store(db_url), clock=clock)
    engine.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"])
    case = engine.open("hukou_transfer", actor="p1")
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    assert case.timer("verification").provisional
    notice = tmp_path / "2027.yaml"
    notice.write_text("year: 2027\nsource: test notice\nholidays:\n"
                      "  - {name: 元旦, from: 2027-01-01, to: 2027-01-04}\n"
                      "statutory_only: [春节, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n", encoding="utf-8")
    engine.reload_calendar(WorkCalendar.load([tmp_path]), source=str(notice))
    assert engine.get(case.id).timer("verification").last_day == date(2027, 1, 6)
    assert engine.history(case.id)[-1].kind == "recompute"
    assert engine.verify_audit() == []
    clock.set(datetime(2026, 12, 31, 9, tzinfo=ZONE))
    engine.pause(case.id, "verification", reason="函调", actor="p1")
    assert engine.verify_audit() == []
    with engine.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE caseflow_timers SET status = 'running' WHERE case_id = :c "
                             "AND name = 'verification'"), {"c": case.id})
    assert named(engine.verify_audit(), "timer verification (round 1) status", case=case.id)
    engine.store.dispose()


def test_postgresql_restore_drill(tmp_path: Path) -> None:
    """README's PostgreSQL procedure: pg_dump in custom format, pg_restore --clean --if-exists over the
    damaged database, then `audit verify` with the checkpoint file: the checkpoint taken before the dump
    matches; one taken after it names the case opened meanwhile (the one to re-enter)."""
    import shutil
    import subprocess
    import uuid
    from urllib.parse import quote

    from storefixtures import pg_base_url

    base = pg_base_url()
    assert base is not None
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump / pg_restore are not installed")
    url = sa.engine.make_url(base)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    db = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    libpq = [f"--host={url.host or '127.0.0.1'}", f"--port={url.port or 5432}",
             f"--username={url.username or 'postgres'}", f"--dbname={url.database}"]
    try:
        office = Office(db, tmp_path)
        office.checkpoint()
        dump = tmp_path / "caseflow.dump"
        subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", f"--schema={schema}", *libpq],
                       check=True, capture_output=True)
        # After the dump: a case is opened and checkpointed, then the database is damaged.
        office.tick()
        late = office.engine.open("hukou_transfer", actor="p1", data={"applicant": "王五"})
        office.checkpoint()
        office.sql("DELETE FROM caseflow_timers")
        office.store.dispose()
        subprocess.run(["pg_restore", "--clean", "--if-exists", *libpq, str(dump)], check=True, capture_output=True)
        restored = Engine(Store(db), clock=FixedClock(T0 + timedelta(days=2)))
        problems = verify(restored, checkpoints=office.checkpoints, public_key=public_key_of(office.key))
        # Chains and tables are whole again; the later checkpoint names the case opened after the dump
        # (and the totals it signed), nothing else.
        assert {p.kind for p in problems} == {"checkpoint"}, problems
        assert {p.case_id for p in problems} <= {late.id, None}, problems
        assert any(p.case_id == late.id and "gone" in p.problem for p in problems), problems
        restored.store.dispose()
        # With only the checkpoint taken before the dump, the restored database verifies clean.
        lines = office.checkpoints.read_text(encoding="utf-8").splitlines()
        before = tmp_path / "before.jsonl"
        before.write_text(lines[0] + "\n", encoding="utf-8")
        again = Engine(Store(db), clock=FixedClock(T0 + timedelta(days=2)))
        assert verify(again, checkpoints=before, public_key=public_key_of(office.key)) == []
        again.store.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
