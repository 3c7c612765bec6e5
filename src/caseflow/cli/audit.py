"""``caseflow audit``: verify the hash-chained event record."""

from __future__ import annotations

import sys

import click

from caseflow.cli.common import db_option, emit, handle_errors, json_option, open_engine


@click.group("audit")
def audit_group() -> None:
    """The hash-chained history.

    \b
    Example:
        caseflow audit verify
    """


@audit_group.command("verify")
@db_option
@json_option
@handle_errors
def audit_verify(db: str | None, as_json: bool) -> None:
    """Check every case's event chain; name each edited, inserted or deleted event.

    \b
    Example:
        caseflow audit verify --db caseflow.db
    """
    problems = open_engine(db).verify_audit()
    payload = {"ok": not problems, "problems": [{"case": p.case_id, "seq": p.seq, "event_id": p.event_id,
                                                  "problem": p.problem} for p in problems]}
    emit(as_json, payload, "\n".join(str(p) for p in problems) or "audit ok: every event chain verifies")
    if problems:
        sys.exit(1)


