"""The ``caseflow`` command line: it parses, calls the core, and formats — nothing more.

Every verb takes ``--json``; an error then prints ``{"error": {"type", "message"}}`` and exits 1.

One module per command group (``caseflow.cli.cases`` for ``caseflow case …``); this module builds the
root group and registers them all, here and nowhere else. Command modules import only
:mod:`caseflow.cli.common`, never this package, and load the heavy parts (the store, the scheduler,
the server) inside the command that needs them, so ``caseflow deadline`` starts at once.

The root group imports a command's module only when that command runs (click's lazy-group pattern):
``caseflow --help`` lists each command from the one-line summary registered in :data:`COMMANDS`, which
``tests/test_cli.py`` checks against the command's own docstring.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["COMMANDS", "cli", "main"]

#: Every command: name → (module, attribute, the summary ``--help`` lists — its docstring's first line).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "alerts": ("alerts", "alerts_group", "Alerts raised by the scheduler, and notifications given up on."),
    "audit": ("audit", "audit_group",
              "The hash-chained history, the tables it projects, and signed checkpoints."),
    "calendar": ("calendar", "calendar_group",
                 "The working-day calendar: show a month; check, import and export holiday notices."),
    "case": ("cases", "case_group", "Open, advance and inspect cases."),
    "db": ("db", "db_group", "The database schema."),
    "deadline": ("deadline", "deadline", "Compute when LIMIT, started at START, runs out."),
    "demo": ("demo", "demo",
             "Simulate a county bureau from September to November 2026 and print what happened."),
    "desk": ("desk", "desk_group", "The front desk: visits, 当场办结, acceptance and the 一次告知单."),
    "digest": ("digest", "digest_cmd",
               "Show a leader's digest: overdue worst first, due today and next working day, escalations."),
    "people": ("people", "people_group", "People: units, roles, leaders and substitutes (AB岗)."),
    "queue": ("queue", "queue", "A person's running clocks, most urgent first (overdue, then least time left)."),
    "rating": ("desk", "rating_group", "好差评: record a rating, settle the follow-up of a bad one."),
    "report": ("report", "report_group", "Reports: the monthly ledger (台账) of a unit."),
    "scheduler": ("scheduler", "scheduler_group",
                  "Run the scheduler: the alert sweep, deliveries, digests and the monthly report."),
    "serve": ("server", "serve",
              "Serve the HTTP API (/api/v1, OpenAPI at /openapi.json) and the web console (/)."),
    "stats": ("stats", "stats_cmd",
              "Cases and steps, statutory and promised limits apart, by unit, person, workflow or month."),
    "token": ("tokens", "token_group",
              "Bearer tokens for the HTTP API and the web console (stored hashed; revocable)."),
    "workflows": ("workflows", "workflows_group",
                  "Procedure definitions (workflows/*.yaml): validate, show, import into the database."),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported when run, and listed in ``--help`` from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, _summary = entry
        command = getattr(importlib.import_module(f"caseflow.cli.{module}"), attr)
        if not isinstance(command, click.Command):  # pragma: no cover - a registration mistake
            raise TypeError(f"caseflow.cli.{module}.{attr} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click.Group.format_commands, but from the registered summaries: no command module is imported.
        names = self.list_commands(ctx)
        if not names:  # pragma: no cover
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="caseflow")
def cli() -> None:
    """caseflow — 办理时限: deadlines on the Chinese working-day calendar.

    \b
    Example:
        caseflow deadline 2026-10-03T14:00 "20 working_days" --explain
    """


def main() -> None:
    """Entry point of the ``caseflow`` console script."""
    cli(prog_name="caseflow")
