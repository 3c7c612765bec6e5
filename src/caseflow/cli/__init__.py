"""The ``caseflow`` command line: it parses, calls the core, and formats — nothing more.

Every verb takes ``--json``; an error then prints ``{"error": {"type", "message"}}`` and exits 1.

One module per command group (``caseflow.cli.cases`` for ``caseflow case …``); this module builds the
root group and registers them all, here and nowhere else. Command modules import only
:mod:`caseflow.cli.common`, never this package, and load the heavy parts (the store, the scheduler,
the server) inside the command that needs them, so ``caseflow deadline`` starts at once.
"""

from __future__ import annotations

import click

from caseflow.cli import (
    alerts,
    audit,
    calendar,
    cases,
    db,
    deadline,
    demo,
    desk,
    digest,
    people,
    queue,
    report,
    scheduler,
    server,
    stats,
    tokens,
    workflows,
)

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="caseflow")
def cli() -> None:
    """caseflow — 办理时限: deadlines on the Chinese working-day calendar.

    \b
    Example:
        caseflow deadline 2026-10-03T14:00 "20 working_days" --explain
    """


for _command in (
    deadline.deadline, calendar.calendar_group, db.db_group, workflows.workflows_group, people.people_group,
    cases.case_group, queue.queue, audit.audit_group, demo.demo,
    scheduler.scheduler_group, alerts.alerts_group, digest.digest_cmd, stats.stats_cmd, report.report_group,
    server.serve, tokens.token_group, desk.desk_group, desk.rating_group,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``caseflow`` console script."""
    cli(prog_name="caseflow")
