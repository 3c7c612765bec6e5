"""``caseflow audit``: verify the record, write signed checkpoints, rebuild a case from its chain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from caseflow.cli.common import config_option, db_option, emit, handle_errors, json_option, open_engine

key_option = click.option("--key", "key_path", default=None, type=click.Path(path_type=Path), metavar="FILE",
                          help="The Ed25519 checkpoint key (default: [audit] key_file in caseflow.toml).")
file_option = click.option("--checkpoints", "checkpoint_path", default=None, type=click.Path(path_type=Path),
                           metavar="FILE",
                           help="The checkpoint file (default: [audit] checkpoint_file in caseflow.toml).")


def _settings(config_path: str | None, key_path: Path | None, checkpoint_path: Path | None) -> tuple[Any, Any]:
    from caseflow.config import NotifyConfig

    audit = NotifyConfig.load(config_path).audit
    return key_path or audit.key_file, checkpoint_path or audit.checkpoint_file


@click.group("audit")
def audit_group() -> None:
    """The hash-chained history, the tables it projects, and signed checkpoints.

    \b
    Example:
        caseflow audit verify
    """


@audit_group.command("verify")
@click.option("--case", "case_id", type=click.IntRange(1, 2**63 - 1), default=None, metavar="ID",
              help="Only this case.")
@key_option
@file_option
@config_option
@db_option
@json_option
@handle_errors
def audit_verify(case_id: int | None, key_path: Path | None, checkpoint_path: Path | None,  # noqa: PLR0917
                 config_path: str | None, db: str | None, as_json: bool) -> None:
    """Check every case's chain, replay it against the tables, and compare it with the latest checkpoint.

    Names each edited, inserted, reordered or deleted event, each difference between the tables and
    the replayed chain, and (with a checkpoint file) a rewritten chain, a cut tail, a deleted or an
    inserted case. Exit status 1 when anything is found.

    \b
    Example:
        caseflow audit verify --db caseflow.db
    """
    from caseflow.audit import load_private_key, public_key_of, verify

    key_file, checkpoints = _settings(config_path, key_path, checkpoint_path)
    public = public_key_of(load_private_key(key_file)) if key_file is not None and checkpoints is not None else None
    problems = verify(open_engine(db), case_id=case_id, checkpoints=checkpoints, public_key=public)
    payload: dict[str, Any] = {"ok": not problems, "problems": [p.to_dict() for p in problems]}
    if checkpoints:
        payload["checkpoints"] = str(checkpoints)
    against = f" and the checkpoint file {checkpoints}" if checkpoints else ""
    emit(as_json, payload, "\n".join(str(p) for p in problems)
         or f"audit ok: every event chain verifies, the tables match it{against}")
    if problems:
        sys.exit(1)


@audit_group.command("keygen")
@click.argument("path", type=click.Path(path_type=Path), metavar="FILE")
@json_option
@handle_errors
def audit_keygen(path: Path, as_json: bool) -> None:
    """Create an Ed25519 checkpoint key in FILE (never overwritten; keep it away from the database).

    \b
    Example:
        caseflow audit keygen audit.key
    """
    from caseflow.audit import create_key

    public = create_key(path).hex()
    emit(as_json, {"key_file": str(path), "public_key": public},
         f"checkpoint key written to {path} (readable by its owner only)\npublic key: {public}\n"
         f"name it in caseflow.toml: [audit] key_file = \"{path}\"")


@audit_group.command("checkpoint")
@key_option
@file_option
@config_option
@db_option
@json_option
@handle_errors
def audit_checkpoint(key_path: Path | None, checkpoint_path: Path | None, config_path: str | None, db: str | None,
                     as_json: bool) -> None:
    """Append a signed checkpoint (every case's head hash, the counts of cases and events) to the file.

    Refused when any chain does not verify: a checkpoint never blesses a damaged record.

    \b
    Example:
        caseflow audit checkpoint --key audit.key --checkpoints checkpoints.jsonl
    """
    from caseflow.audit import load_private_key, write_checkpoint
    from caseflow.errors import CommandError

    key_file, checkpoints = _settings(config_path, key_path, checkpoint_path)
    if key_file is None or checkpoints is None:
        raise CommandError("a checkpoint needs a key and a file: give --key and --checkpoints, or set key_file and "
                           "checkpoint_file under [audit] in caseflow.toml")
    engine = open_engine(db)
    written = write_checkpoint(engine.store, checkpoints, load_private_key(key_file), at=engine.clock.now())
    emit(as_json, {"file": str(checkpoints), "line": written.line, "at": written.at.isoformat(),
                   "cases": written.cases, "events": written.events, "fingerprint": written.fingerprint},
         f"checkpoint {written.line} appended to {checkpoints}: {written.cases} case(s), {written.events} event(s), "
         f"heads {written.fingerprint}")


@audit_group.command("rebuild")
@click.argument("case_id", type=click.IntRange(1, 2**63 - 1), metavar="CASE")
@db_option
@json_option
@handle_errors
def audit_rebuild(case_id: int, db: str | None, as_json: bool) -> None:
    """Rewrite a case's row and timers from its event chain (which must verify), naming what was repaired.

    \b
    Example:
        caseflow audit rebuild 1
    """
    from caseflow.audit import rebuild_case

    repaired = rebuild_case(open_engine(db), case_id)
    emit(as_json, {"case": case_id, "repaired": repaired},
         "\n".join(f"repaired: {r}" for r in repaired) or f"case {case_id}: its tables already match its chain")
