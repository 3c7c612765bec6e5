"""``caseflow digest``: a leader's digest (text, Markdown, HTML)."""

from __future__ import annotations

import click

from caseflow.cli.common import emit, handle_errors, json_option, open_store, parse_at, store_db_option


@click.command("digest")
@click.option("--leader", required=True, metavar="ID", help="The leader's person id.")
@click.option("--at", "at", default=None, metavar="T", help="As of this instant (Beijing time; default now).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "html"]), default="text",
              show_default=True)
@store_db_option
@json_option
@handle_errors
def digest_cmd(leader: str, at: str | None, fmt: str, db: str | None, as_json: bool) -> None:
    """Show a leader's digest: overdue worst first, due today and next working day, escalations.

    The leader sees their own unit and every unit whose people have them as leader. ID numbers and
    mobile numbers are masked.

    \b
    Example:
        caseflow digest --leader wang --at 2026-11-04T08:30
        caseflow digest --leader wang --at 2026-11-04T08:30 --format html > digest.html
        caseflow digest --leader wang --json
    """
    from caseflow.clock import SystemClock
    from caseflow.digest import build_digest, render_digest

    when = parse_at(at) or SystemClock().now()
    digest = build_digest(open_store(db), leader, when)
    rendered = render_digest(digest, fmt)
    payload = digest.to_dict()
    payload["rendered"] = rendered
    payload["format"] = fmt
    emit(as_json, payload, rendered.rstrip())


