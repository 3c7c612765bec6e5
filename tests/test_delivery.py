"""Delivery a receiver can trust: stable notification ids, short renewed leases, batches, retry.

The receiver is a real local HTTP server; the schedulers in the kill test are real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from caseflow.alerts import OUTBOX
from caseflow.cli import cli
from caseflow.config import NotifyConfig
from caseflow.notify import WebhookNotifier
from caseflow.outbox import Outbox
from caseflow.scheduler import Scheduler
from caseflow.store import Store
from test_scheduler import add_case, add_timer, bj, outbox_of, seed_people


class Receiver:
    """A webhook receiver: records each request's id header and payload; optional delay and failures.

    It counts the requests it holds at once and the client connections it saw; with ``keep_alive`` it
    speaks HTTP/1.1 (connections stay open), and with ``drop_after_reply`` it closes each connection
    after answering without saying so (as a receiver restarted or timing out idle connections does).
    """

    def __init__(self, *, keep_alive: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.delay = 0.0
        self.fail_next = 0
        self.in_flight = self.max_in_flight = 0
        self.peers: set[tuple[str, int]] = set()
        self.drop_after_reply = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= failing
                    receiver.requests.append({"header": self.headers.get("X-Caseflow-Notification-Id"),
                                              "key": self.headers.get("Idempotency-Key"), **body})
                    receiver.peers.add(self.client_address)
                    drop = receiver.drop_after_reply  # read before answering: the client moves on at once
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.in_flight -= 1
                self.send_response(500 if failing else 204)
                self.end_headers()
                if drop:
                    self.close_connection = True

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self) -> list[str]:
        with self.lock:
            return [r["id"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'delivery.db'}")
    seed_people(s)
    yield s
    s.dispose()


def hook_config(url: str, **scheduler: Any) -> NotifyConfig:
    return NotifyConfig.from_dict({"channels": {"hook": {"url": url}},
                                   "scheduler": {"default_channel": "hook", **scheduler}})


def overdue_timers(store: Store, n: int, due_at: datetime) -> None:
    for i in range(n):
        case = add_case(store, responsible=("zhang", "chen", "sun")[i % 3])
        add_timer(store, case, name=f"t{i}", due_at=due_at)


def test_a_redelivery_carries_the_same_id_in_header_and_payload(store: Store, receiver: Receiver) -> None:
    overdue_timers(store, 1, bj(2026, 11, 4))
    scheduler = Scheduler(store, hook_config(receiver.url, retry_seconds=60))
    receiver.fail_next = 1
    first = scheduler.run_once(bj(2026, 11, 4, 9))
    assert first.delivery.retried == 1
    assert scheduler.deliver(bj(2026, 11, 4, 9, 2)).sent == 1
    [a, b] = receiver.requests
    assert a["id"] == b["id"] == a["header"] == a["key"] == b["header"]
    [row] = outbox_of(store)
    assert row.status == "sent" and len(a["id"]) == 36  # a UUID


def test_the_lease_is_renewed_while_a_slow_batch_is_sent(store: Store) -> None:
    """A lease of one second outlives a three-second send: nobody else claims the row meanwhile."""
    overdue_timers(store, 3, bj(2026, 11, 4))
    sending = threading.Event()

    class Slow:
        name = "hook"

        def send(self, *, to: str, subject: str, body: str, notification_id: str | None = None) -> None:
            sending.set()
            time.sleep(1.0)

    config = hook_config("log://", lease_seconds=1)
    slow = Scheduler(store, config, notifiers={"hook": Slow()})
    slow.sweep(bj(2026, 11, 4, 9))
    now = datetime.now(UTC)
    worker = threading.Thread(target=slow.outbox.deliver, args=(now,))
    worker.start()
    sending.wait(5)
    other = Outbox(store, config, owner="other")
    grabbed = []
    while worker.is_alive():
        grabbed.extend(other.claim(datetime.now(UTC)))
        time.sleep(0.2)
    worker.join()
    assert grabbed == []
    assert all(o.status == "sent" for o in outbox_of(store))


def test_a_batch_is_recorded_in_one_transaction(store: Store, receiver: Receiver) -> None:
    overdue_timers(store, 30, bj(2026, 11, 4))
    scheduler = Scheduler(store, hook_config(receiver.url))
    scheduler.sweep(bj(2026, 11, 4, 9))
    commits = []
    sa.event.listen(store.engine, "commit", lambda conn: commits.append(1))
    report = scheduler.outbox.deliver(bj(2026, 11, 4, 9))
    assert report.sent == 30
    # one claim, one record (a lease renewal would add one; this batch is far quicker than 10 s)
    assert len(commits) == 2
    assert len(set(receiver.ids())) == 30


def test_alerts_retry_resends_failed_notifications(store: Store, receiver: Receiver, tmp_path: Path) -> None:
    overdue_timers(store, 2, bj(2026, 11, 4))
    scheduler = Scheduler(store, hook_config(receiver.url, max_attempts=1))
    receiver.fail_next = 1
    report = scheduler.run_once(bj(2026, 11, 4, 9))
    # One attempt allowed: the first fails for good, the second (same destination) waits its turn.
    assert report.delivery.failed == 1 and report.delivery.deferred == 1
    config = tmp_path / "caseflow.toml"
    config.write_text(f'[scheduler]\ndefault_channel = "hook"\n[channels.hook]\nurl = "{receiver.url}"\n',
                      encoding="utf-8")
    result = CliRunner().invoke(cli, ["alerts", "retry", "--db", store.url, "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["queued"] == 1 and payload["delivery"]["sent"] == 2  # the retried and the waiting one
    assert all(o.status == "sent" for o in outbox_of(store))
    ids = receiver.ids()
    assert len(ids) == 3 and len(set(ids)) == 2  # the failed one went twice, under one id


_FIRST = """
import sys
from caseflow.config import NotifyConfig
from caseflow.scheduler import Scheduler
from caseflow.store import Store

url, config = sys.argv[1:3]
Scheduler(Store(url), NotifyConfig.load(config)).run_once()
"""


def test_a_killed_scheduler_s_notifications_are_delivered_by_the_other_within_a_minute(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    """Proof (issue 9): kill -9 mid-delivery; the other scheduler delivers; each alert counted once."""
    overdue_timers(store, 12, datetime.now(UTC) - timedelta(hours=1))
    config = tmp_path / "caseflow.toml"
    # The default lease (30 s) and the service's own loop: nothing tuned for the test but its pace.
    config.write_text(f'[scheduler]\ndefault_channel = "hook"\ndeliver_seconds = 2\n'
                      f'[channels.hook]\nurl = "{receiver.url}"\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # The other scheduler is the service itself, running all along (as a second process would be).
    second = subprocess.Popen([sys.executable, "-c", "from caseflow.cli import cli; cli()", "scheduler", "run",
                               "--db", store.url, "--config", str(config)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)  # let it start its loop
        receiver.delay = 0.5  # a slow receiver: the first scheduler is mid-batch when it dies
        first = subprocess.Popen([sys.executable, "-c", _FIRST, store.url, str(config)], env=env)
        deadline = time.monotonic() + 60
        while len(receiver.ids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        assert len(set(receiver.ids())) < 12, "the first scheduler finished before it could be killed"
        receiver.delay = 0.0
        while len(set(receiver.ids())) < 12 and time.monotonic() - killed_at < 90:
            time.sleep(0.2)
        took = time.monotonic() - killed_at
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    ids = receiver.ids()
    assert len(set(ids)) == 12, f"only {len(set(ids))} of 12 delivered"
    assert took < 60, f"the leased notifications waited {took:.0f} s"
    assert max(ids.count(i) for i in ids) <= 2
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(OUTBOX.c.alert_id, OUTBOX.c.status)).all()
    assert len({a for a, _ in rows}) == 12 and {s for _, s in rows} == {"sent"}


def test_webhook_payload_without_an_id_keeps_its_old_shape(receiver: Receiver) -> None:
    WebhookNotifier(receiver.url).send(to="zhang", subject="s", body="b")
    [request] = receiver.requests
    assert set(request) == {"header", "key", "to", "subject", "body", "format"} and request["header"] is None


def test_a_webhook_keeps_its_connection_and_replaces_one_the_receiver_closed() -> None:
    """Messages go over one kept-alive connection; one the receiver closed quietly is replaced, nothing lost."""
    receiver = Receiver(keep_alive=True)
    try:
        hook = WebhookNotifier(receiver.url)
        for i in range(5):
            hook.send(to="zhang", subject="s", body="b", notification_id=f"n{i}")
        assert len(receiver.peers) == 1
        receiver.drop_after_reply = True
        hook.send(to="zhang", subject="s", body="b", notification_id="n5")  # answered, then closed
        hook.send(to="zhang", subject="s", body="b", notification_id="n6")  # finds it closed: a new one
        assert receiver.ids() == [f"n{i}" for i in range(7)]
        assert len(receiver.peers) == 2
        hook.close()
    finally:
        receiver.server.shutdown()


@pytest.mark.parametrize(("concurrency", "most"), [(1, 1), (3, 3), (None, 8)])
def test_a_webhook_channel_is_sent_to_as_many_at_once_as_it_takes(
    store: Store, concurrency: int | None, most: int
) -> None:
    """One destination's batch is shared by up to its channel's ``concurrency`` workers, at least 8 rows each."""
    receiver = Receiver(keep_alive=True)
    receiver.delay = 0.05
    try:
        overdue_timers(store, 80, bj(2026, 11, 4))
        channel: dict[str, Any] = {"url": receiver.url}
        if concurrency is not None:
            channel["concurrency"] = concurrency
        config = NotifyConfig.from_dict({"channels": {"hook": channel}, "scheduler": {"default_channel": "hook"}})
        scheduler = Scheduler(store, config)
        report = scheduler.run_once(bj(2026, 11, 4, 9))
        assert report.delivery.sent == 80 and len(set(receiver.ids())) == 80
        # 80 rows make ten workers' worth; a receiver holding each request 50 ms sees them overlap.
        assert receiver.max_in_flight <= most
        assert receiver.max_in_flight > 1 or most == 1
        scheduler.outbox.close()
    finally:
        receiver.server.shutdown()
