"""``caseflow demo``: a simulated month of a police station, into a demo database."""

from __future__ import annotations

import json

import click

from caseflow.cli.common import handle_errors, json_option


@click.command()
@click.option("--db", "db", default="caseflow-demo.db", show_default=True, metavar="FILE",
              help="The SQLite file to build afresh.")
@click.option("--seed", default=20261001, show_default=True, help="The random seed of the simulation.")
@json_option
@handle_errors
def demo(db: str, seed: int, as_json: bool) -> None:
    """Simulate a county bureau from September to November 2026 and print what happened.

    Builds DB afresh (people, units, leaders, substitutes; a few hundred cases over every shipped
    workflow, across the National Day holiday), runs the scheduler on a simulated clock day by day,
    and prints the alerts, escalations, a leader's digest and the on-time statistics.

    \b
    Example:
        caseflow demo
        caseflow demo --db /tmp/demo.db --seed 7
    """
    from caseflow.demo import run_demo

    report = run_demo(db, seed=seed, say=(lambda _line: None) if as_json else click.echo)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))


