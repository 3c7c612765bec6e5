"""Notifications: configuration, routing, real webhook and SMTP deliveries, retries, leases, masking."""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from caseflow.clock import FixedClock
from caseflow.config import ConfigError, NotifyConfig, Route
from caseflow.narrate import mask_text
from caseflow.notify import WebhookNotifier
from caseflow.outbox import Outbox, backoff_delay
from caseflow.scheduler import Scheduler
from caseflow.store import Person, Store
from test_scheduler import (
    UNIT,
    Recorder,
    _ops_cli,
    add_case,
    add_timer,
    bj,
    fresh_store,
    outbox_of,
    rec_config,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store with people and workflow versions."""
    yield from fresh_store(tmp_path)


# ------------------------------------------------------------------------------------ local servers


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length).decode("utf-8"))
        self.server.received.append(payload)  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Any]:
    """A local HTTP server (thread) recording JSON POSTs; set ``.status`` to answer with an error."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def smtp_server() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; ``.url`` is an apprise mailto:// URL for it (no TLS)."""
    mailbox = _Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.url = (f"mailto://127.0.0.1:{port}?smtp=127.0.0.1&mode=insecure"  # type: ignore[attr-defined]
                   "&from=caseflow@example.org")
    yield mailbox
    controller.stop()


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server for one test."""
    yield from smtp_server()


def text_of(message: Message, subtype: str = "plain") -> str:
    """The decoded text/<subtype> part of a mail."""
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part")


# -------------------------------------------------------------------------------------------- config


def test_config_reads_channels_routes_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_TEST_HOOK", "https://hooks.example.org/caseflow")
    path = tmp_path / "caseflow.toml"
    path.write_text("""
[scheduler]
sweep_seconds = 15
escalate_after = "2 working_days"
digest_time = "07:45"
default_channel = "hook"

[channels.mail]
url = "mailto://smtp.example.org?from=caseflow@example.org"
format = "html"

[channels.hook]
url_env = "CF_TEST_HOOK"

[channels.wecom]
url = "wecombot://BOTKEY"

[people.zhang]
channel = "mail"
address = "zhang@example.org"

[units."城关派出所"]
channel = "wecom"
""", encoding="utf-8")
    config = NotifyConfig.load(path)
    s = config.scheduler
    assert (s.sweep_seconds, s.escalate_after.amount, s.escalate_after.unit) == (15, 2, "working_days")
    assert (s.digest_time.hour, s.digest_time.minute) == (7, 45)
    assert config.channels["hook"].kind == "webhook" and config.channels["hook"].url.endswith("/caseflow")
    assert config.channels["mail"].kind == "apprise" and config.channels["mail"].format == "html"
    assert config.channels["log"].kind == "log"  # always there
    monkeypatch.setenv("CASEFLOW_CONFIG", str(path))
    assert NotifyConfig.load().channels.keys() == config.channels.keys()

    # Routing: [people.ID], then the person's own channel (a name, a URL, a mailto: address), the unit, default.
    li = Person(id="li", name="李", unit=UNIT)
    assert config.route_person("zhang", None) == Route("mail", "zhang@example.org")
    assert config.route_person("li", li) == Route("wecom")
    li.channel = "hook"
    assert config.route_person("li", li) == Route("hook")
    li.channel = "https://other.example.org/hook"
    assert config.route_person("li", li) == Route("https://other.example.org/hook")
    li.channel = "mailto:li@example.org"
    assert config.route_person("li", li) == Route("mail", "li@example.org")
    assert config.route_person("ghost", None) == Route("hook")
    assert config.route_unit("西城派出所") == Route("hook")


def test_a_channel_sends_as_many_at_once_as_it_says() -> None:
    """A webhook or the log takes 8 sends at once by default, an apprise channel one; ``concurrency`` sets it."""
    config = NotifyConfig.from_dict({"channels": {"hook": {"url": "https://x"}, "mail": {"url": "mailto://x"},
                                                  "wide": {"url": "https://y", "concurrency": 32}}})
    assert [config.channels[c].max_concurrent for c in ("hook", "mail", "wide", "log")] == [8, 1, 32, 8]


@pytest.mark.parametrize(("text", "key", "words"), [
    ('[people.zhang]\nchannel = "mial"\n', "people.zhang.channel", "unknown channel 'mial'"),
    ('[scheduler]\ndigest_time = "25:00"\n', "scheduler.digest_time", "08:30"),
    ('[scheduler]\nescalate_after = "1 fortnight"\n', "scheduler.escalate_after", "unknown unit"),
    ('[scheduler]\nsweep_seconds = "fast"\n', "scheduler.sweep_seconds", "wrong type"),
    ('[scheduler]\nsweep_every = 3\n', "scheduler.sweep_every", "unknown key"),
    ('[channels.mail]\nurl = "smtp.example.org"\n', "channels.mail.url", "must be a URL"),
    ('[channels.mail]\nurl_env = "CF_TEST_UNSET_VARIABLE"\n', "channels.mail.url_env", "is not set"),
    ('[channels.mail]\nurl = "mailto://x"\nformat = "pdf"\n', "channels.mail.format", "text, markdown, html"),
    ('[chanels.mail]\nurl = "mailto://x"\n', "chanels", "unknown table"),
    ('[channels.hook]\nurl = "https://x"\nconcurrency = 0\n', "channels.hook.concurrency", "from 1 to 64, got 0"),
    ('[channels.hook]\nurl = "https://x"\nconcurrency = "8"\n', "channels.hook.concurrency", "got '8'"),
])
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = tmp_path / "caseflow.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        NotifyConfig.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}:"), message
    assert words in message


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "caseflow.toml"
    path.write_text("[scheduler\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"caseflow\.toml: not valid TOML"):
        NotifyConfig.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        NotifyConfig.load(tmp_path / "missing.toml")


# ------------------------------------------------------------------------------------------- masking


def test_masking_keeps_only_the_last_four_digits() -> None:
    assert mask_text("身份证号110101199003071234，电话13812345678") == "身份证号**************1234，电话*******5678"
    assert mask_text("ID 11010119900307123X; +86 139-0000") == "ID **************123X; +86 139-0000"
    assert mask_text("tel +8613912345678.") == "tel +86*******5678."
    # Not personal numbers: case ids, dates, a 12-digit number, a landline.
    assert mask_text("案件#123 2026-11-04 123456789012 010-12345678") == "案件#123 2026-11-04 123456789012 010-12345678"


# ------------------------------------------------------------------------------------------ delivery


def test_webhook_receives_json(store: Store, webhook: Any) -> None:
    config = NotifyConfig.from_dict({"channels": {"hook": {"url": webhook.url}},
                                     "scheduler": {"default_channel": "hook"}})
    case = add_case(store, responsible="zhang")
    add_timer(store, case, due_at=bj(2026, 11, 4))
    report = Scheduler(store, config).run_once(bj(2026, 11, 4, 9))
    assert report.delivery.sent == 1
    assert len(webhook.received) == 1
    payload = webhook.received[0]
    assert payload["to"] == "zhang" and "已超期" in payload["subject"] and payload["format"] == "text"
    assert f"案件#{case}" in payload["body"]


def test_webhook_error_status_is_retried_with_backoff_then_failed(store: Store, webhook: Any) -> None:
    webhook.status = 503
    config = NotifyConfig.from_dict({"channels": {"hook": {"url": webhook.url}},
                                     "scheduler": {"default_channel": "hook", "max_attempts": 3,
                                                   "retry_seconds": 60}})
    case = add_case(store)
    add_timer(store, case, due_at=bj(2026, 11, 4))
    clock = FixedClock(bj(2026, 11, 4, 9))
    scheduler = Scheduler(store, config, clock=clock)
    scheduler.sweep()
    first = scheduler.deliver()
    assert (first.sent, first.retried) == (0, 1)
    row = outbox_of(store)[0]
    assert row.attempts == 1 and row.status == "pending" and "503" in (row.last_error or "")
    assert row.next_attempt_at == bj(2026, 11, 4, 9, 1)  # base 60 s
    assert scheduler.deliver().claimed == 0  # not due yet
    clock.advance(timedelta(seconds=60))
    assert scheduler.deliver().retried == 1
    assert outbox_of(store)[0].next_attempt_at == clock.now() + timedelta(seconds=120)  # doubled
    clock.advance(timedelta(seconds=120))
    assert scheduler.deliver().failed == 1
    row = outbox_of(store)[0]
    assert row.status == "failed" and row.attempts == 3
    assert len(webhook.received) == 3

    result = CliRunner().invoke(_ops_cli(), ["alerts", "failed", "--db", store.url, "--json"])
    assert result.exit_code == 0, result.output
    [failed] = json.loads(result.output)
    assert failed["attempts"] == 3 and "503" in failed["last_error"] and failed["to"] == "zhang"

    # Once the webhook recovers a new alert goes through; the failed one stays failed.
    webhook.status = 200
    case2 = add_case(store)
    add_timer(store, case2, due_at=bj(2026, 11, 4))
    assert scheduler.run_once().delivery.sent == 1


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_delay(n, 30, 3600).total_seconds() for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_failing_channel_does_not_hold_up_the_others(store: Store) -> None:
    good, bad = Recorder(), Recorder(fail_for={"li", "zhang"})
    config = NotifyConfig.from_dict({
        "channels": {"good": {"url": "log://"}, "bad": {"url": "log://"}},
        "people": {"zhang": {"channel": "bad"}, "li": {"channel": "bad"}},
        "scheduler": {"default_channel": "good"},
    })
    for person in ("zhang", "zhang", "zhang", "li", "chen", "sun"):
        case = add_case(store, responsible=person)
        add_timer(store, case, due_at=bj(2026, 11, 4))
    scheduler = Scheduler(store, config, notifiers={"good": good, "bad": bad})
    report = scheduler.run_once(bj(2026, 11, 4, 9))
    assert report.delivery.sent == 2 and {to for to, _, _ in good.sent} == {"chen", "sun"}
    # The first message on "bad" failed (an attempt spent); the rest of that destination's batch was
    # deferred to the same retry instant without being tried (nor charged an attempt).
    assert report.delivery.retried == 1 and report.delivery.deferred == 3
    rows = [o for o in outbox_of(store) if o.channel == "bad"]
    assert sorted(o.attempts for o in rows) == [0, 0, 0, 1]
    assert len({o.next_attempt_at for o in rows}) == 1 and all(o.status == "pending" for o in rows)


def test_an_expired_lease_is_delivered_by_another_process(store: Store) -> None:
    case = add_case(store)
    add_timer(store, case, due_at=bj(2026, 11, 4))
    now = bj(2026, 11, 4, 9)
    first = Scheduler(store, rec_config(lease_seconds=120))
    first.sweep(now)
    claimed = first.outbox.claim(now)  # …and the process dies before sending
    assert len(claimed) == 1
    recorder = Recorder()
    second = Scheduler(store, rec_config(lease_seconds=120), notifiers={"rec": recorder})
    assert second.deliver(now + timedelta(seconds=119)).claimed == 0
    assert second.deliver(now + timedelta(seconds=121)).sent == 1
    assert len(recorder.sent) == 1
    # The first process waking up cannot record over the second one's delivery.
    assert first.outbox._record_sent(claimed[0]) is False


def test_alert_mail_goes_through_apprise_to_a_real_smtp_server(store: Store, smtp: Any) -> None:
    config = NotifyConfig.from_dict({
        "channels": {"mail": {"url": smtp.url}},
        "people": {"zhang": {"channel": "mail", "address": "zhang@example.org"}},
    })
    case = add_case(store, responsible="zhang")
    add_timer(store, case, due_at=bj(2026, 11, 4))
    report = Scheduler(store, config).run_once(bj(2026, 11, 4, 9))
    assert report.delivery.sent == 1, report.delivery.errors
    [(sender, rcpts, message)] = smtp.messages
    assert sender == "caseflow@example.org" and rcpts == ["zhang@example.org"]
    subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
    assert "已超期" in subject and f"案件#{case}" in subject
    assert "承办人 张警官" in text_of(message)


def test_unreachable_smtp_server_is_an_error_recorded_for_retry(store: Store) -> None:
    port = _free_port()  # nothing listens there
    config = NotifyConfig.from_dict({"channels": {"mail": {"url": f"mailto://127.0.0.1:{port}?smtp=127.0.0.1"
                                                                  "&mode=insecure&from=cf@example.org"}},
                                     "scheduler": {"default_channel": "mail"}})
    case = add_case(store)
    add_timer(store, case, due_at=bj(2026, 11, 4))
    report = Scheduler(store, config).run_once(bj(2026, 11, 4, 9))
    assert report.delivery.retried == 1
    assert "apprise" in (outbox_of(store)[0].last_error or "")


def test_unknown_channel_on_a_row_is_an_error_not_a_crash(store: Store) -> None:
    outbox = Outbox(store, NotifyConfig(), clock=FixedClock(bj(2026, 11, 4, 9)))
    with store.session(write=True) as s:
        outbox.insert(s, [outbox.row(kind="alert", recipient="zhang", route=Route("gone"), subject="s", body="b",
                                     now=bj(2026, 11, 4, 9))])
    report = outbox.deliver()
    assert report.retried == 1 and "unknown channel 'gone'" in report.errors[0]


def test_webhook_notifier_reports_connection_errors() -> None:
    notifier = WebhookNotifier(f"http://127.0.0.1:{_free_port()}/x", timeout=2)
    with pytest.raises(Exception, match=r"webhook http://127\.0\.0\.1"):
        notifier.send(to="x", subject="s", body="b")


def test_log_channel_keeps_the_text(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    case = add_case(store)
    add_timer(store, case, due_at=bj(2026, 11, 4))
    scheduler = Scheduler(store)
    with caplog.at_level("INFO", logger="caseflow.notify"):
        scheduler.run_once(bj(2026, 11, 4, 9))
    [(to, subject, _body)] = scheduler.outbox.log_notifier.messages
    assert to == "zhang" and "已超期" in subject
    assert "已超期" in caplog.text

