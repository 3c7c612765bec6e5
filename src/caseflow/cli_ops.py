"""Operations commands: the scheduler, alerts, digests, statistics and the ledger.

``caseflow.cli`` calls :func:`register` to add them to the ``caseflow`` group; they are kept apart so
the core command line does not import APScheduler, Jinja2 or openpyxl.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]

_db_option = click.option("--db", "db", default=None, metavar="URL",
                          help="Database URL or SQLite path (default: $CASEFLOW_DB or caseflow.db).")
_config_option = click.option("--config", "config_path", default=None, metavar="FILE",
                              help="caseflow.toml (default: $CASEFLOW_CONFIG or ./caseflow.toml).")


def _emit(as_json: bool, payload: Any, text: str) -> None:
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(text)


def _store(db: str | None) -> Any:
    from caseflow.store import Store

    return Store(db)


def _at(text: str | None) -> datetime | None:
    from caseflow.clock import parse_instant

    return parse_instant(text) if text else None


def register(cli: click.Group) -> None:
    """Add ``scheduler``, ``alerts``, ``digest``, ``stats`` and ``report`` to the ``caseflow`` group."""
    from caseflow.cli import handle_errors, json_option

    # ------------------------------------------------------------------------------------ scheduler

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
    @_db_option
    @_config_option
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
        from caseflow.errors import CaseflowError
        from caseflow.notify import NotifyConfig
        from caseflow.scheduler import Scheduler

        config = NotifyConfig.load(config_path)
        scheduler = Scheduler(_store(db), config)
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
        report = scheduler.run_once(_at(at), digests=digests)
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
        _emit(as_json, payload, "\n".join(lines))

    cli.add_command(scheduler_group)

    # --------------------------------------------------------------------------------------- alerts

    @click.group("alerts")
    def alerts_group() -> None:
        """Alerts raised by the scheduler, and notifications given up on.

        \b
        Example:
            caseflow alerts list --unit 城关派出所 --since 2026-11-01
            caseflow alerts failed --json
        """

    @alerts_group.command("list")
    @click.option("--unit", default=None, help="Only alerts of this unit.")
    @click.option("--since", default=None, metavar="T", help="Only alerts raised at or after T (Beijing time).")
    @click.option("--limit", default=1000, show_default=True, help="At most this many, newest first.")
    @_db_option
    @json_option
    @handle_errors
    def alerts_list(unit: str | None, since: str | None, limit: int, db: str | None, as_json: bool) -> None:
        """List raised alerts (warning, overdue, escalated), newest first.

        \b
        Example:
            caseflow alerts list --unit 城关派出所 --since 2026-11-01 --json
        """
        import sqlalchemy as sa

        from caseflow.alerts import ALERTS, TIMERS
        from caseflow.calendar import ZONE

        a = ALERTS.c
        t = TIMERS.c
        query = (sa.select(a.id, a.case_id, a.timer_id, t.name, a.level, a.raised_at, a.due_at, a.to_person, a.unit)
                 .join_from(ALERTS, TIMERS, a.timer_id == t.id)
                 .order_by(a.raised_at.desc(), a.id.desc()).limit(limit))
        if unit:
            query = query.where(a.unit == unit)
        since_at = _at(since)
        if since_at is not None:
            query = query.where(a.raised_at >= since_at)
        store = _store(db)
        with store.session() as session:
            rows = session.execute(query).all()
        items = [{"id": r.id, "case": r.case_id, "timer": r.timer_id, "timer_name": r.name, "level": r.level,
                  "raised_at": r.raised_at.astimezone(ZONE).isoformat(),
                  "due_at": r.due_at.astimezone(ZONE).isoformat(), "to": r.to_person, "unit": r.unit} for r in rows]
        lines = [f"{r.raised_at.astimezone(ZONE):%Y-%m-%d %H:%M}  {r.level:<9}  案件#{r.case_id} {r.name}  "
                 f"期满 {r.due_at.astimezone(ZONE):%Y-%m-%d %H:%M}  → {r.to_person} ({r.unit})" for r in rows]
        _emit(as_json, items, "\n".join(lines) or "no alerts")

    @alerts_group.command("failed")
    @_db_option
    @json_option
    @handle_errors
    def alerts_failed(db: str | None, as_json: bool) -> None:
        """List notifications given up on after their last attempt, with the last error.

        \b
        Example:
            caseflow alerts failed --json
        """
        from caseflow.calendar import ZONE
        from caseflow.notify import Outbox

        rows = Outbox(_store(db)).failed()
        items = [{"id": r.id, "kind": r.kind, "alert": r.alert_id, "to": r.recipient, "channel": r.channel,
                  "address": r.address, "subject": r.subject, "attempts": r.attempts, "last_error": r.last_error,
                  "created_at": r.created_at.astimezone(ZONE).isoformat()} for r in rows]
        lines = [f"#{r.id} {r.kind} → {r.recipient} via {r.channel}: {r.attempts} attempts, {r.last_error}"
                 for r in rows]
        _emit(as_json, items, "\n".join(lines) or "no failed notifications")

    cli.add_command(alerts_group)

    # --------------------------------------------------------------------------------------- digest

    @click.command("digest")
    @click.option("--leader", required=True, metavar="ID", help="The leader's person id.")
    @click.option("--at", "at", default=None, metavar="T", help="As of this instant (Beijing time; default now).")
    @click.option("--format", "fmt", type=click.Choice(["text", "markdown", "html"]), default="text",
                  show_default=True)
    @_db_option
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

        when = _at(at) or SystemClock().now()
        digest = build_digest(_store(db), leader, when)
        rendered = render_digest(digest, fmt)
        payload = digest.to_dict()
        payload["rendered"] = rendered
        payload["format"] = fmt
        _emit(as_json, payload, rendered.rstrip())

    cli.add_command(digest_cmd)

    # ---------------------------------------------------------------------------------------- stats

    @click.command("stats")
    @click.option("--month", default=None, metavar="YYYY-MM", help="The month (Beijing time); all months if omitted.")
    @click.option("--by", "by", type=click.Choice(["unit", "person", "workflow", "month"]), default="unit",
                  show_default=True)
    @click.option("--unit", "units", multiple=True, help="Only these units (repeatable).")
    @_db_option
    @json_option
    @handle_errors
    def stats_cmd(month: str | None, by: str, units: tuple[str, ...], db: str | None, as_json: bool) -> None:
        """On-time rate, overdue count and working days per step, by unit, person, workflow or month.

        Time paused for the applicant or by law (charged_to applicant/law) is not charged to the unit.

        \b
        Example:
            caseflow stats --month 2026-10 --by unit
            caseflow stats --month 2026-10 --by person --json
            caseflow stats --by month --unit 城关派出所
        """
        from caseflow.stats import compute_stats

        groups = compute_stats(_store(db), month=month, by=by, units=list(units) or None)
        payload = [g.to_dict() for g in groups]
        header = f"{by:<20} {'finished':>8} {'on time':>8} {'rate':>7} {'overdue':>8} {'avg wd':>7}"
        lines = [header]
        for g in groups:
            rate = f"{g.on_time_rate * 100:.1f}%" if g.on_time_rate is not None else "—"
            avg = f"{g.avg_working_days:.1f}" if g.avg_working_days is not None else "—"
            lines.append(f"{g.key:<20} {g.finished:>8} {g.on_time:>8} {rate:>7} {g.overdue:>8} {avg:>7}")
        _emit(as_json, payload, "\n".join(lines) if groups else "no timers in that period")

    cli.add_command(stats_cmd)

    # --------------------------------------------------------------------------------------- report

    @click.group("report")
    def report_group() -> None:
        """Reports: the monthly ledger (台账) of a unit.

        \b
        Example:
            caseflow report ledger --unit 城关派出所 --month 2026-10 --xlsx ledger-2026-10.xlsx
        """

    @report_group.command("ledger")
    @click.option("--unit", required=True, help="The unit.")
    @click.option("--month", required=True, metavar="YYYY-MM", help="The month (Beijing time).")
    @click.option("--xlsx", "xlsx", required=True, type=click.Path(path_type=Path), metavar="FILE",
                  help="Where to write the workbook.")
    @_db_option
    @json_option
    @handle_errors
    def report_ledger(unit: str, month: str, xlsx: Path, db: str | None, as_json: bool) -> None:
        """Write a unit's ledger (台账) for a month: one row per case with dates, limits, status, people.

        \b
        Example:
            caseflow report ledger --unit 城关派出所 --month 2026-10 --xlsx ledger-2026-10.xlsx
        """
        from caseflow.stats import ledger_rows, write_ledger

        rows = ledger_rows(_store(db), unit, month)
        path = write_ledger(rows, xlsx, unit=unit, month=month)
        _emit(as_json, {"file": str(path), "unit": unit, "month": month, "cases": len(rows)},
              f"{path}: {len(rows)} case(s) of {unit} in {month}")

    cli.add_command(report_group)
