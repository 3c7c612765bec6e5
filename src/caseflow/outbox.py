"""The outbox: notifications queued with what they announce, then delivered once.

A notification is a row of ``caseflow_outbox`` queued in the same transaction as the alert (or digest)
it announces, so an alert is never raised without its notification nor the reverse. Delivery happens
afterwards, outside any transaction:

1. **claim** a batch of due rows: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED`` so several
   schedulers take disjoint batches without waiting on each other; on both databases the claim sets a
   lease (``lease_owner``, ``lease_until``) that covers the network call, so no transaction stays open
   while a mail server answers, and a process killed mid-delivery loses nothing: its lease expires and
   the row is claimed again;
2. **send** each row on its channel (:mod:`caseflow.notify`); rows are grouped by destination and the
   groups sent in parallel (one pool of worker threads kept by the outbox), so a slow or failing channel
   does not hold up the others; a channel that takes concurrent requests has up to its ``concurrency``
   workers pulling from its destination's queue (a webhook, the log: 8 by default, over kept-alive
   connections; apprise channels 1 unless configured), at least eight rows each, so a small batch keeps
   its order and a destination that fails stops being tried for the rest of the batch. While the batch
   is being sent a keeper thread renews the lease (every third of ``lease_seconds``, 30 s by default), so
   the lease can be short: a killed scheduler's rows are claimed by another within a minute;
3. **record** every outcome of the batch in one transaction: ``sent``, or a retry with exponential
   backoff (``attempts``, ``next_attempt_at``, ``last_error``), or ``failed`` after the last attempt
   (``caseflow alerts failed``; ``caseflow alerts retry`` queues them again).

Delivery is at least once: a process killed after a send but before recording it sends again. So every
notification carries a stable id (:attr:`ClaimedDelivery.notification_id`, the same on every attempt)
that the channels pass on, so a receiver can drop a redelivery.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time as _time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from caseflow.abc import Clock, Notifier
from caseflow.alerts import OUTBOX, OutboxRow, bulk_insert
from caseflow.clock import SystemClock
from caseflow.config import NotifyConfig, Route
from caseflow.errors import CaseflowError
from caseflow.notify import DEFAULT_CONCURRENCY, DeliveryError, LogNotifier, build_notifier, safe_url
from caseflow.store import Store

__all__ = [
    "ClaimedDelivery",
    "DeliveryReport",
    "Outbox",
    "backoff_delay",
    "new_owner",
]

# The logger delivery has always warned on (operators' log filters name it), kept when the outbox
# moved out of caseflow.notify.
log = logging.getLogger("caseflow.notify")


def backoff_delay(attempts: int, base: float, cap: float) -> timedelta:
    """Exponential backoff after ``attempts`` failed attempts: base, 2·base, 4·base … at most ``cap``."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def new_owner() -> str:
    """A lease owner naming this process uniquely (host, pid, random suffix)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class DeliveryReport:
    """What one delivery round did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    lost_lease: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly figures."""
        return {"claimed": self.claimed, "sent": self.sent, "retried": self.retried, "failed": self.failed,
                "deferred": self.deferred, "lost_lease": self.lost_lease, "errors": self.errors[:20]}


_ID_NAMESPACE = uuid.UUID("5b0f7a43-3c1e-5d2a-9f61-0c0ffee0cafe")  # names caseflow notification ids


@dataclass(frozen=True)
class ClaimedDelivery:
    """An outbox row leased to this process for delivery."""

    id: int
    channel: str
    address: str | None
    recipient: str
    subject: str
    body: str
    attempts: int
    max_attempts: int
    created_at: datetime | None = None

    @property
    def notification_id(self) -> str:
        """The notification's stable id: the same on every attempt, unique across databases."""
        created = self.created_at.astimezone(UTC).isoformat() if self.created_at is not None else ""
        return str(uuid.uuid5(_ID_NAMESPACE, f"caseflow-outbox:{self.id}:{created}"))


@dataclass
class _Outcomes:
    """What the sends of one claimed batch came to, recorded together in one transaction."""

    sent: list[ClaimedDelivery] = field(default_factory=list)
    failed: list[tuple[ClaimedDelivery, str]] = field(default_factory=list)
    deferred: list[tuple[ClaimedDelivery, datetime]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Destination:
    """One destination's claimed rows: a queue its workers take from, and the retry instant once one failed."""

    def __init__(self, items: Sequence[ClaimedDelivery]) -> None:
        self._items = deque(items)
        self._failed_until: datetime | None = None
        self._lock = threading.Lock()

    def take(self) -> tuple[ClaimedDelivery, datetime | None] | None:
        """The next row and, if the destination failed meanwhile, the instant it is deferred to."""
        with self._lock:
            if not self._items:
                return None
            return self._items.popleft(), self._failed_until

    def failed(self, retry_at: datetime) -> None:
        with self._lock:
            if self._failed_until is None:
                self._failed_until = retry_at


class _LeaseKeeper:
    """Renews this owner's lease on a claimed batch while it is being sent (a thread, stopped after)."""

    def __init__(self, outbox: Outbox, ids: list[int], claimed_at: datetime) -> None:
        self.outbox, self.ids, self.claimed_at = outbox, ids, claimed_at
        self.lease = outbox.config.scheduler.lease_seconds
        self._stop = threading.Event()
        self._started = _time.monotonic()
        self._thread = threading.Thread(target=self._run, name="caseflow-lease", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.lease / 3):
            # Measured from the claim's instant (simulated or real) plus the real time spent since.
            until = self.claimed_at + timedelta(seconds=_time.monotonic() - self._started + self.lease)
            t = OUTBOX.c
            try:
                with self.outbox.store.session(write=True) as session:
                    session.execute(sa.update(OUTBOX).where(
                        t.id.in_(self.ids), t.lease_owner == self.outbox.owner, t.status == "pending",
                    ).values(lease_until=until))
            except Exception as exc:  # the sends go on; at worst the lease lapses and a row is sent twice
                log.warning("could not renew the delivery lease: %s", exc)


class Outbox:
    """Queues notifications and delivers them (claim with a lease, send, record; retries with backoff)."""

    def __init__(self, store: Store, config: NotifyConfig | None = None, *, clock: Clock | None = None,
                 owner: str | None = None, notifiers: Mapping[str, Notifier] | None = None,
                 max_workers: int = 32) -> None:
        self.store = store
        self.config = config or NotifyConfig()
        self.clock: Clock = clock or SystemClock()
        self.owner = owner or new_owner()
        self.log_notifier = LogNotifier()
        self._overrides: dict[str, Notifier] = dict(notifiers or {})
        self._cache: dict[str, Notifier] = {}
        self._cache_lock = threading.Lock()
        #: The most sends at once over all channels (each channel is bounded by its own concurrency).
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None  # kept from batch to batch: threads are not free

    # ----------------------------------------------------------------- queueing

    def row(self, *, kind: str, recipient: str, route: Route, subject: str, body: str, now: datetime,
            body_format: str = "text", alert_id: int | None = None, job_run_id: int | None = None) -> dict[str, Any]:
        """The column values of one outbox row (for a bulk insert in the caller's transaction)."""
        return {
            "kind": kind, "alert_id": alert_id, "job_run_id": job_run_id, "recipient": recipient,
            "channel": route.channel, "address": route.address, "subject": subject, "body": body,
            "body_format": body_format, "status": "pending", "attempts": 0,
            "max_attempts": self.config.scheduler.max_attempts, "next_attempt_at": now, "last_error": None,
            "lease_owner": None, "lease_until": None, "created_at": now, "sent_at": None,
        }

    @staticmethod
    def insert(session: sa.orm.Session, rows: Sequence[dict[str, Any]]) -> None:
        """Insert outbox rows in the caller's transaction; a row already queued for its alert and recipient is kept."""
        bulk_insert(session, OUTBOX, rows, conflict=("alert_id", "recipient"))

    # ----------------------------------------------------------------- delivery

    def notifier(self, channel: str) -> Notifier:
        """The notifier for a channel name (or ad-hoc URL); built once and cached."""
        if channel in self._overrides:
            return self._overrides[channel]
        with self._cache_lock:
            found = self._cache.get(channel)
            if found is None:
                found = build_notifier(self.config.channel_config(channel), self.log_notifier)
                self._cache[channel] = found
            return found

    @staticmethod
    def due_condition(now: datetime | sa.BindParameter[Any]) -> tuple[sa.ColumnElement[bool], ...]:
        """The rows :meth:`claim` takes at ``now``: pending, due, and not leased to a sender still at work."""
        t = OUTBOX.c
        return t.status == "pending", t.next_attempt_at <= now, sa.or_(t.lease_until.is_(None), t.lease_until < now)

    def claim(self, now: datetime | None = None, limit: int | None = None) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due rows to this owner (SKIP LOCKED on PostgreSQL); return them."""
        now = now or self.clock.now()
        limit = limit or self.config.scheduler.deliver_batch
        t = OUTBOX.c
        lease_free = sa.or_(t.lease_until.is_(None), t.lease_until < now)
        until = now + timedelta(seconds=self.config.scheduler.lease_seconds)
        pick = sa.select(t.id).where(*self.due_condition(now)).order_by(t.next_attempt_at).limit(limit)
        if self.store.dialect == "postgresql":
            # Two schedulers take disjoint batches instead of queueing on each other's row locks.
            pick = pick.with_for_update(skip_locked=True)
        with self.store.session(write=True) as session:
            # One statement picks the due rows and leases them, returning what is sent (was: pick, lease,
            # read back); on SQLite (no row locks) the lease condition is re-checked by the UPDATE itself.
            rows = sorted(session.execute(
                sa.update(OUTBOX).where(t.id.in_(pick), lease_free)
                .values(lease_owner=self.owner, lease_until=until)
                .returning(t.id, t.channel, t.address, t.recipient, t.subject, t.body, t.attempts, t.max_attempts,
                           t.created_at)
            ).all(), key=lambda row: row[0])
        return [ClaimedDelivery(*row) for row in rows]

    def deliver(self, now: datetime | None = None, *, limit: int | None = None) -> DeliveryReport:
        """Claim due rows, send them (by destination, in parallel) under a renewed lease, record them at once."""
        report = DeliveryReport()
        claimed_at = now or self.clock.now()
        claimed = self.claim(claimed_at, limit)
        report.claimed = len(claimed)
        if not claimed:
            return report
        groups: dict[tuple[str, str | None], list[ClaimedDelivery]] = {}
        for item in claimed:
            groups.setdefault((item.channel, item.address), []).append(item)
        # Each destination is one queue; its channel's concurrency says how many workers pull from it,
        # at least eight rows each (a small batch goes in order, and stops at its first failure).
        work: list[_Destination] = []
        for (channel, _address), items in groups.items():
            destination = _Destination(items)
            work.extend([destination] * max(1, min(self._concurrency(channel), len(items) // 8)))
        outcomes = _Outcomes()
        with _LeaseKeeper(self, [item.id for item in claimed], claimed_at):
            if len(work) == 1:
                self._deliver_group(work[0], outcomes, now)
            else:
                pool = self._workers()
                for future in [pool.submit(self._deliver_group, destination, outcomes, now) for destination in work]:
                    future.result()
            self._record(outcomes, report, now)
        return report

    def _concurrency(self, channel: str) -> int:
        """How many sends at once a channel takes: its configured concurrency, else its notifier's word."""
        if channel not in self._overrides:
            try:
                return self.config.channel_config(channel).max_concurrent
            except DeliveryError:  # a misconfigured channel fails per row, in _deliver_group
                return 1
        notifier = self._overrides[channel]
        return DEFAULT_CONCURRENCY if getattr(notifier, "concurrent", False) else 1

    def _workers(self) -> ThreadPoolExecutor:
        with self._cache_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="caseflow-deliver")
            return self._pool

    def close(self) -> None:
        """Stop the delivery threads and close the channels' kept-alive connections."""
        with self._cache_lock:
            pool, self._pool = self._pool, None
            notifiers = list(self._cache.values())
        if pool is not None:
            pool.shutdown(wait=True)
        for notifier in notifiers:
            close = getattr(notifier, "close", None)
            if close is not None:
                close()

    def _send(self, item: ClaimedDelivery) -> None:
        notifier = self.notifier(item.channel)
        to = item.address or item.recipient
        if _takes_id(notifier):
            notifier.send(to=to, subject=item.subject, body=item.body,  # type: ignore[call-arg]
                          notification_id=item.notification_id)
        else:  # a plug-in Notifier of the older, id-less form
            notifier.send(to=to, subject=item.subject, body=item.body)

    def _deliver_group(self, destination: _Destination, outcomes: _Outcomes, now: datetime | None) -> None:
        while (taken := destination.take()) is not None:
            item, failed_until = taken
            if failed_until is not None:
                # The destination just failed: the rest of its batch waits for the same retry instant
                # without spending an attempt, instead of timing out one by one.
                with outcomes.lock:
                    outcomes.deferred.append((item, failed_until))
                continue
            try:
                self._send(item)
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CaseflowError) else str(exc)
                with outcomes.lock:
                    outcomes.failed.append((item, message[:1000]))
                log.warning("delivery of outbox #%s via %s failed: %s", item.id, safe_url(item.channel), message)
                destination.failed(self._retry_at(item, now))
                continue
            with outcomes.lock:
                outcomes.sent.append(item)

    def _retry_at(self, item: ClaimedDelivery, now: datetime | None) -> datetime:
        settings = self.config.scheduler
        return (now or self.clock.now()) + backoff_delay(item.attempts + 1, settings.retry_seconds,
                                                         settings.retry_max_seconds)

    def _mine(self, item: ClaimedDelivery) -> Any:
        t = OUTBOX.c
        return sa.and_(t.id == item.id, t.lease_owner == self.owner, t.status == "pending")

    # ``now`` is the instant of a simulated run (run_once --at T); a live run reads the clock again,
    # since sending took time.
    def _record(self, outcomes: _Outcomes, report: DeliveryReport, now: datetime | None) -> None:
        """Every outcome of a batch in one transaction; a row whose lease passed to another is left alone."""
        now = now or self.clock.now()
        t = OUTBOX.c
        mine = sa.and_(t.lease_owner == self.owner, t.status == "pending")
        free = {"lease_owner": None, "lease_until": None}
        with self.store.session(write=True) as session:
            if outcomes.sent:
                result = session.execute(
                    sa.update(OUTBOX).where(t.id.in_([i.id for i in outcomes.sent]), mine)
                    .values(status="sent", sent_at=now, attempts=t.attempts + 1, last_error=None, **free))
                report.sent += _rowcount(result)
                report.lost_lease += len(outcomes.sent) - _rowcount(result)
            for item, error in outcomes.failed:
                attempts = item.attempts + 1
                status = "failed" if attempts >= item.max_attempts else "pending"
                result = session.execute(sa.update(OUTBOX).where(self._mine(item)).values(
                    status=status, attempts=attempts, last_error=error, next_attempt_at=self._retry_at(item, now),
                    **free))
                report.errors.append(f"outbox #{item.id} via {safe_url(item.channel)}: {error}")
                if not _rowcount(result):
                    report.lost_lease += 1
                elif status == "failed":
                    report.failed += 1
                else:
                    report.retried += 1
            by_instant: dict[datetime, list[int]] = {}
            for item, retry_at in outcomes.deferred:
                by_instant.setdefault(retry_at, []).append(item.id)
            for retry_at, ids in by_instant.items():
                session.execute(sa.update(OUTBOX).where(t.id.in_(ids), mine)
                                .values(next_attempt_at=retry_at, **free))
                report.deferred += len(ids)
        if report.lost_lease:
            log.warning("%s notification(s) were sent but their lease had passed to another process",
                        report.lost_lease)

    def _record_sent(self, item: ClaimedDelivery, now: datetime | None = None) -> bool:
        """Record one row as sent (False when its lease passed to another process)."""
        report = DeliveryReport()
        self._record(_Outcomes(sent=[item]), report, now)
        return report.sent == 1

    def retry_failed(self, ids: Sequence[int] = (), *, now: datetime | None = None) -> int:
        """Queue failed notifications again (all, or those of ``ids``) with a fresh set of attempts.

        The next delivery round sends them, under the same notification ids as before.
        """
        now = now or self.clock.now()
        t = OUTBOX.c
        query = sa.update(OUTBOX).where(t.status == "failed")
        if ids:
            query = query.where(t.id.in_(list(ids)))
        with self.store.session(write=True) as session:
            result = session.execute(query.values(status="pending", attempts=0, next_attempt_at=now,
                                                  lease_owner=None, lease_until=None))
        return _rowcount(result)

    # ----------------------------------------------------------------- queries

    def failed(self) -> list[OutboxRow]:
        """Rows given up on after their last attempt, oldest first."""
        with self.store.session() as session:
            return list(session.execute(
                sa.select(OutboxRow).where(OUTBOX.c.status == "failed").order_by(OUTBOX.c.id)
            ).scalars())

    def pending_count(self) -> int:
        """How many rows wait for delivery."""
        with self.store.session() as session:
            t = OUTBOX.c
            return int(session.execute(sa.select(sa.func.count()).where(t.status == "pending")).scalar_one())


_TAKES_ID: dict[type, bool] = {}


def _takes_id(notifier: Notifier) -> bool:
    """Whether a notifier's ``send`` accepts ``notification_id`` (ours do; older plug-ins may not)."""
    kind = type(notifier)
    known = _TAKES_ID.get(kind)
    if known is None:
        import inspect

        try:
            params = inspect.signature(notifier.send).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        known = _TAKES_ID[kind] = "notification_id" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return known


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
