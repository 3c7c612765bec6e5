"""``caseflow alerts``: the alerts raised and the deliveries that failed."""

from __future__ import annotations

import click

from caseflow.cli.common import (
    config_option,
    emit,
    handle_errors,
    json_option,
    open_store,
    parse_at,
    store_db_option,
)


@click.group("alerts")
def alerts_group() -> None:
    """Alerts raised by the scheduler, and notifications given up on.

    \b
    Example:
        caseflow alerts list --unit 城关派出所 --since 2026-11-01
        caseflow alerts failed --json
        caseflow alerts retry --config caseflow.toml
    """

@alerts_group.command("list")
@click.option("--unit", default=None, help="Only alerts of this unit.")
@click.option("--since", default=None, metavar="T", help="Only alerts raised at or after T (Beijing time).")
@click.option("--limit", default=1000, show_default=True, help="At most this many, newest first.")
@store_db_option
@json_option
@handle_errors
def alerts_list(unit: str | None, since: str | None, limit: int, db: str | None, as_json: bool) -> None:
    """List raised alerts (warning, overdue, escalated), newest first.

    \b
    Example:
        caseflow alerts list --unit 城关派出所 --since 2026-11-01 --json
    """
    import sqlalchemy as sa

    from caseflow.alerts import ALERTS, CASES, TIMERS
    from caseflow.calendar import ZONE

    a = ALERTS.c
    t = TIMERS.c
    c = CASES.c
    query = (sa.select(a.id, a.case_id, a.timer_id, t.name, a.level, a.raised_at, a.due_at, a.to_person, a.unit,
                       c.workflow_key, c.workflow_version)
             .join_from(ALERTS, TIMERS, a.timer_id == t.id).join(CASES, a.case_id == c.id)
             .order_by(a.raised_at.desc(), a.id.desc()).limit(limit))
    if unit:
        query = query.where(a.unit == unit)
    since_at = parse_at(since)
    if since_at is not None:
        query = query.where(a.raised_at >= since_at)
    store = open_store(db)
    with store.session() as session:
        rows = session.execute(query).all()
    items = [{"id": r.id, "case": r.case_id, "timer": r.timer_id, "timer_name": r.name, "level": r.level,
              "raised_at": r.raised_at.astimezone(ZONE).isoformat(),
              "due_at": r.due_at.astimezone(ZONE).isoformat(), "to": r.to_person, "unit": r.unit} for r in rows]
    if as_json or not rows:
        emit(as_json, items, "没有提醒")
        return
    from caseflow.narrate import Labels, due_text, text_table

    labels = Labels.from_store(store)
    levels = {"warning": "临期预警", "overdue": "已超期", "escalated": "超期督办"}
    table = [(f"{r.raised_at.astimezone(ZONE):%Y-%m-%d %H:%M}", levels.get(r.level, "提醒"), f"#{r.case_id}",
              f"{labels.workflow(r.workflow_key, r.workflow_version)}·"
              f"{labels.timer(r.workflow_key, r.name, r.workflow_version)}",
              due_text(r.due_at, prefix=""), labels.person(r.to_person), r.unit) for r in rows]
    lines = text_table(("发出时间", "级别", "案件", "程序·环节", "期满", "发给", "单位"), table)
    emit(as_json, items, "\n".join(lines))

@alerts_group.command("failed")
@store_db_option
@json_option
@handle_errors
def alerts_failed(db: str | None, as_json: bool) -> None:
    """List notifications given up on after their last attempt, with the last error.

    \b
    Example:
        caseflow alerts failed --json
    """
    from caseflow.calendar import ZONE
    from caseflow.outbox import Outbox

    rows = Outbox(open_store(db)).failed()
    items = [{"id": r.id, "kind": r.kind, "alert": r.alert_id, "to": r.recipient, "channel": r.channel,
              "address": r.address, "subject": r.subject, "attempts": r.attempts, "last_error": r.last_error,
              "created_at": r.created_at.astimezone(ZONE).isoformat()} for r in rows]
    lines = [f"#{r.id} {r.kind} → {r.recipient} via {r.channel}: {r.attempts} attempts, {r.last_error}"
             for r in rows]
    emit(as_json, items, "\n".join(lines) or "no failed notifications")


@alerts_group.command("retry")
@click.option("--id", "ids", type=click.IntRange(1, 2**63 - 1), multiple=True,
              help="Only this notification (repeatable); default: every failed one.")
@store_db_option
@config_option
@json_option
@handle_errors
def alerts_retry(ids: tuple[int, ...], db: str | None, config_path: str | None, as_json: bool) -> None:
    """Send failed notifications again, now, with a fresh set of attempts (under their same ids).

    \b
    Example:
        caseflow alerts retry --config caseflow.toml
        caseflow alerts retry --id 17 --id 18 --json
    """
    from caseflow.config import NotifyConfig
    from caseflow.scheduler import Scheduler

    scheduler = Scheduler(open_store(db), NotifyConfig.load(config_path))
    queued = scheduler.outbox.retry_failed(ids)
    report = scheduler.deliver() if queued else None
    payload = {"queued": queued, "delivery": report.to_dict() if report else None}
    text = f"{queued} failed notification(s) queued again"
    if report is not None:
        text += (f"; {report.sent} sent, {report.retried} to retry, {report.failed} failed again"
                 + "".join(f"\nerror: {e}" for e in report.errors))
    emit(as_json, payload, text)
