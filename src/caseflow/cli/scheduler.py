"""``caseflow scheduler``: run the alert sweep, deliveries, digests and the monthly report."""

from __future__ import annotations

import click

from caseflow.cli.common import config_option, emit, handle_errors, json_option, open_store, parse_at, store_db_option


@click.group("scheduler")
def scheduler_group() -> None:
    """Run the scheduler: the alert sweep, deliveries, digests and the monthly report.

    \b
    Example:
        caseflow scheduler run --config caseflow.toml
        caseflow scheduler run --once --at 2026-11-04T09:00 --json
    """

@scheduler_group.command("run")
@click.option("--once", is_flag=True, help="One sweep and delivery, then exit (instead of running forever).")
@click.option("--at", "at", default=None, metavar="T", help="With --once: the (simulated) instant, Beijing time.")
@click.option("--digests", is_flag=True, help="With --once: also queue the digests of the slot at or before T.")
@store_db_option
@config_option
@json_option
@handle_errors
def scheduler_run(  # noqa: PLR0917 - click passes options positionally
        once: bool, at: str | None, digests: bool, db: str | None, config_path: str | None,
        as_json: bool) -> None:
    """Run the sweep (alerts), deliveries, working-day digests and the monthly report.

    Without --once it runs until interrupted (Ctrl-C or SIGTERM); several processes may share a
    PostgreSQL database. --once --at T does one sweep and the deliveries at the instant T.

    \b
    Example:
        caseflow scheduler run --db postgresql://caseflow@db/caseflow --config caseflow.toml
        caseflow scheduler run --once --at 2026-11-04T09:00 --db caseflow.db
        caseflow scheduler run --once --at 2026-11-04T08:30 --digests --json
    """
    from caseflow.config import NotifyConfig
    from caseflow.errors import CaseflowError
    from caseflow.scheduler import Scheduler

    config = NotifyConfig.load(config_path)
    scheduler = Scheduler(open_store(db), config)
    if not once:
        if at:
            raise CaseflowError("--at needs --once: a running scheduler follows the real clock")
        import logging

        # The log channel and the jobs report through logging: show them on a console run.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        s = config.scheduler
        click.echo(f"caseflow scheduler: sweep every {s.sweep_seconds:g}s, digests {scheduler.digest_trigger}, "
                   f"monthly report {scheduler.report_trigger}; Ctrl-C stops", err=True)
        scheduler.start()
        return
    report = scheduler.run_once(parse_at(at), digests=digests)
    payload = report.to_dict()
    messages = [{"to": to, "subject": subject, "body": body}
                for to, subject, body in scheduler.outbox.log_notifier.messages]
    payload["log_messages"] = messages
    sweep = report.sweep
    lines = [f"sweep at {sweep.at:%Y-%m-%d %H:%M}: {sweep.timers} timer(s), {sweep.alerts} alert(s) "
             + ", ".join(f"{k} {v}" for k, v in sorted(sweep.raised.items())),
             f"delivery: {report.delivery.sent} sent, {report.delivery.retried} to retry, "
             f"{report.delivery.failed} failed, {report.delivery.deferred} deferred"]
    if digests:
        lines.append(f"digests queued: {report.digests}")
    for m in messages:
        lines.append(f"\n→ {m['to']}: {m['subject']}\n{m['body']}")
    lines.extend(f"error: {e}" for e in report.delivery.errors)
    emit(as_json, payload, "\n".join(lines))


