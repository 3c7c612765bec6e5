"""Notifications: configuration, channels, and the outbox that delivers them once.

A notification is a row of ``caseflow_outbox`` queued in the same transaction as the alert (or digest)
it announces, so an alert is never raised without its notification nor the reverse. Delivery happens
afterwards, outside any transaction:

1. **claim** a batch of due rows: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED`` so several
   schedulers take disjoint batches without waiting on each other; on both databases the claim sets a
   lease (``lease_owner``, ``lease_until``) that covers the network call, so no transaction stays open
   while a mail server answers, and a process killed mid-delivery loses nothing: its lease expires and
   the row is claimed again;
2. **send** each row on its channel; rows are grouped by destination and the groups sent in parallel
   (one pool of worker threads kept by the outbox), so a slow or failing channel does not hold up the
   others; a channel that takes concurrent requests has up to its ``concurrency`` workers pulling from
   its destination's queue (a webhook, the log: 8 by default, over kept-alive connections; apprise
   channels 1 unless configured), at least eight rows each, so a small batch keeps its order and a
   destination that fails stops being tried for the rest of the batch. While the batch is being sent a
   keeper thread renews the lease (every third of ``lease_seconds``, 30 s by default), so the lease
   can be short: a killed scheduler's rows are claimed by another within a minute;
3. **record** every outcome of the batch in one transaction: ``sent``, or a retry with exponential
   backoff (``attempts``, ``next_attempt_at``, ``last_error``), or ``failed`` after the last attempt
   (``caseflow alerts failed``; ``caseflow alerts retry`` queues them again).

Delivery is at least once: a process killed after a send but before recording it sends again. So every
notification carries a stable id (:attr:`ClaimedDelivery.notification_id`, the same on every attempt):
a webhook gets it as the ``Idempotency-Key`` and ``X-Caseflow-Notification-Id`` headers and as ``"id"``
in its JSON, a mail as the ``X-Caseflow-Notification-Id`` header, so a receiver can drop a redelivery.

Channels are apprise URLs (``mailto://``, ``wecombot://``, ``dingtalk://``, ``feishu://`` …), a generic
JSON webhook (``http://`` / ``https://`` URLs: POST ``{"to", "subject", "body", "format"}``) and the log
(``log://``: python logging, and the text is kept in memory for the demo).

Configuration is a TOML file (``caseflow.toml``; ``--config`` or ``CASEFLOW_CONFIG``)::

    [scheduler]
    sweep_seconds = 30
    escalate_after = "1 working_days"
    digest_time = "08:30"

    [channels.mail]
    url = "mailto://smtp.example.org?from=caseflow@example.org"   # or url_env = "CASEFLOW_MAIL_URL"
    format = "html"

    [channels.hook]
    url = "https://oa.example.org/caseflow"
    concurrency = 16                     # sends at once to this channel (default 8; apprise 1)

    [people.zhang]
    channel = "mail"
    address = "zhang@example.org"

    [units."城关派出所"]
    channel = "hook"
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import threading
import time as _time
import tomllib
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa

from caseflow.abc import Clock, Notifier
from caseflow.alerts import OUTBOX, OutboxRow, bulk_insert
from caseflow.clock import SystemClock
from caseflow.errors import CaseflowError, TimeLimitError
from caseflow.narrate import mask_text  # one masking rule for the package; re-exported for callers
from caseflow.store import Store
from caseflow.timelimits import TimeLimit

__all__ = [
    "AppriseNotifier",
    "AuditSettings",
    "ChannelConfig",
    "ClaimedDelivery",
    "ConfigError",
    "DeliveryError",
    "DeliveryReport",
    "DeskSettings",
    "LogNotifier",
    "NotifyConfig",
    "Outbox",
    "PersonLike",
    "Route",
    "SchedulerSettings",
    "WebhookNotifier",
    "backoff_delay",
    "build_notifier",
    "insert_ignore",
    "mask_text",
    "new_owner",
]

log = logging.getLogger("caseflow.notify")

CONFIG_ENV = "CASEFLOW_CONFIG"
DEFAULT_CONFIG_NAME = "caseflow.toml"
LOG_CHANNEL = "log"
BODY_FORMATS = ("text", "markdown", "html")
#: Sends at once to one webhook (or the log) unless its channel says otherwise.
DEFAULT_CONCURRENCY = 8
#: The most a channel may ask for (each send at once is a thread and a connection).
MAX_CONCURRENCY = 64


class ConfigError(CaseflowError, ValueError):
    """The notification/scheduler configuration is invalid; the message names the file and the key."""

    def __init__(self, message: str, *, path: str = "", key: str = "") -> None:
        where = path or "<config>"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.key = key


class DeliveryError(CaseflowError):
    """A channel refused or could not take a message (the outbox retries it)."""


# ------------------------------------------------------------------------------------------ masking

# ------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ChannelConfig:
    """One named channel: where messages go and in which format digests are rendered for it."""

    name: str
    url: str
    kind: str  # apprise, webhook, log
    format: str = "text"
    timeout: float = 10.0
    #: How many messages may be sent to this channel at once (None: 8 for a webhook or the log, 1 for apprise).
    concurrency: int | None = None

    @property
    def max_concurrent(self) -> int:
        """The sends at once this channel takes: its ``concurrency``, else its kind's default."""
        if self.concurrency is not None:
            return self.concurrency
        return 1 if self.kind == "apprise" else DEFAULT_CONCURRENCY

    @staticmethod
    def infer_kind(url: str) -> str:
        """``log`` for ``log://``, ``webhook`` for plain http(s) URLs, ``apprise`` for anything else."""
        scheme = url.split(":", 1)[0].lower()
        if scheme == "log":
            return "log"
        if scheme in ("http", "https"):
            return "webhook"
        return "apprise"


class PersonLike(Protocol):
    """What routing needs of a person: a :class:`~caseflow.store.Person` row or any object alike."""

    @property
    def unit(self) -> str:
        """The person's unit."""
        ...

    @property
    def channel(self) -> str | None:
        """The person's own channel: a channel name, a URL or a ``mailto:`` address."""
        ...


@dataclass(frozen=True)
class Route:
    """Where a person's or unit's messages go: a channel name (or URL) and an optional address on it."""

    channel: str
    address: str | None = None


_ONE_WORKING_DAY = TimeLimit(1, "working_days")


@dataclass(frozen=True)
class SchedulerSettings:
    """The ``[scheduler]`` table."""

    sweep_seconds: float = 30.0
    deliver_seconds: float = 10.0
    escalate_after: TimeLimit = _ONE_WORKING_DAY
    digest_time: time = time(8, 30)
    report_time: time = time(9, 0)
    report_dir: Path = Path("reports")
    batch: int = 1000
    deliver_batch: int = 200
    max_attempts: int = 6
    retry_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    #: Short, because the delivering process renews it while it sends (see the module docstring).
    lease_seconds: float = 30.0
    digest_grace_seconds: int = 3 * 3600
    digest_empty: bool = False
    default_channel: str = LOG_CHANNEL


_SCHEDULER_KEYS: dict[str, type | tuple[type, ...]] = {
    "sweep_seconds": (int, float), "deliver_seconds": (int, float), "escalate_after": str, "digest_time": str,
    "report_time": str, "report_dir": str, "batch": int, "deliver_batch": int, "max_attempts": int,
    "retry_seconds": (int, float), "retry_max_seconds": (int, float), "lease_seconds": (int, float),
    "digest_grace_seconds": int, "digest_empty": bool, "default_channel": str,
}
@dataclass(frozen=True)
class AuditSettings:
    """The ``[audit]`` table: the checkpoint key (never in the database) and the file checkpoints go to.

    ``key_file`` is an Ed25519 private key (``caseflow audit keygen FILE``); ``checkpoint_file`` is the
    JSON-lines file signed checkpoints are appended to, best on storage the database's administrators
    cannot rewrite; the scheduler appends one each working day at ``checkpoint_time``.
    """

    key_file: Path | None = None
    checkpoint_file: Path | None = None
    checkpoint_time: time = time(20, 0)


@dataclass(frozen=True)
class DeskSettings:
    """The ``[desk]`` table: the site secret keying applicant fingerprints (never in the database).

    ``secret_file`` holds the secret (``caseflow desk keygen FILE``); see :mod:`caseflow.applicants`.
    """

    secret_file: Path | None = None


_AUDIT_KEYS = ("key_file", "checkpoint_file", "checkpoint_time")
_CHANNEL_KEYS = ("url", "url_env", "type", "format", "timeout", "concurrency")
_ROUTE_KEYS = ("channel", "address")
_TOP_KEYS = ("scheduler", "channels", "people", "units", "audit", "desk")


@dataclass
class NotifyConfig:
    """Channels, routes of people and units, and scheduler settings (see the module docstring)."""

    path: str = ""
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    people: dict[str, Route] = field(default_factory=dict)
    units: dict[str, Route] = field(default_factory=dict)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    desk: DeskSettings = field(default_factory=DeskSettings)

    def __post_init__(self) -> None:
        # The log channel always exists: a message with nowhere else to go is at least logged.
        self.channels.setdefault(LOG_CHANNEL, ChannelConfig(LOG_CHANNEL, "log://", "log"))

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> NotifyConfig:
        """Read ``path``, else ``$CASEFLOW_CONFIG``, else ``./caseflow.toml`` if present, else defaults."""
        if path is None:
            path = os.environ.get(CONFIG_ENV) or None
            if path is None:
                if not Path(DEFAULT_CONFIG_NAME).is_file():
                    return cls()
                path = DEFAULT_CONFIG_NAME
        where = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration: {exc.strerror or exc}", path=where) from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text: {exc}", path=where) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=where) from None
        return cls.from_dict(data, path=where)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str = "<config>") -> NotifyConfig:
        """Build and validate a configuration from parsed TOML (``path`` names it in error messages)."""

        def fail(key: str, message: str) -> ConfigError:
            return ConfigError(message, path=path, key=key)

        for key in data:
            if key not in _TOP_KEYS:
                raise fail(key, f"unknown table; allowed tables are {', '.join(_TOP_KEYS)}")

        channels: dict[str, ChannelConfig] = {}
        for name, spec in _table(data, "channels", fail).items():
            key = f"channels.{name}"
            if not isinstance(spec, Mapping):
                raise fail(key, "must be a table with url = \"…\"")
            _check_keys(spec, _CHANNEL_KEYS, key, fail)
            url = spec.get("url")
            if "url_env" in spec:
                env_name = spec["url_env"]
                if not isinstance(env_name, str) or not env_name:
                    raise fail(f"{key}.url_env", "must name an environment variable")
                url = os.environ.get(env_name)
                if not url:
                    raise fail(f"{key}.url_env", f"the environment variable {env_name} is not set")
            if not isinstance(url, str) or "://" not in url:
                raise fail(f"{key}.url", f"must be a URL like mailto://…, https://… or log://, got {url!r}")
            kind = spec.get("type", ChannelConfig.infer_kind(url))
            if kind not in ("apprise", "webhook", "log"):
                raise fail(f"{key}.type", f"must be apprise, webhook or log, got {kind!r}")
            fmt = spec.get("format", "text")
            if fmt not in BODY_FORMATS:
                raise fail(f"{key}.format", f"must be one of {', '.join(BODY_FORMATS)}, got {fmt!r}")
            timeout = spec.get("timeout", 10.0)
            if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
                raise fail(f"{key}.timeout", f"must be a positive number of seconds, got {timeout!r}")
            concurrency = spec.get("concurrency")
            if concurrency is not None and (not isinstance(concurrency, int) or isinstance(concurrency, bool)
                                            or not 1 <= concurrency <= MAX_CONCURRENCY):
                raise fail(f"{key}.concurrency",
                           f"must be a whole number of sends at once from 1 to {MAX_CONCURRENCY}, got {concurrency!r}")
            channels[name] = ChannelConfig(name, url, kind, fmt, float(timeout), concurrency)
        channels.setdefault(LOG_CHANNEL, ChannelConfig(LOG_CHANNEL, "log://", "log"))

        def routes(table: str) -> dict[str, Route]:
            result: dict[str, Route] = {}
            for ident, spec in _table(data, table, fail).items():
                key = f"{table}.{ident}"
                if not isinstance(spec, Mapping):
                    raise fail(key, "must be a table with channel = \"NAME\"")
                _check_keys(spec, _ROUTE_KEYS, key, fail)
                channel = spec.get("channel")
                if not isinstance(channel, str) or channel not in channels:
                    raise fail(f"{key}.channel",
                               f"unknown channel {channel!r}; channels are: {', '.join(sorted(channels))}")
                address = spec.get("address")
                if address is not None and not isinstance(address, str):
                    raise fail(f"{key}.address", f"must be a string, got {address!r}")
                result[str(ident)] = Route(channel, address)
            return result

        people = routes("people")
        units = routes("units")
        settings = _scheduler_settings(_table(data, "scheduler", fail), channels, fail)
        return cls(path=path, channels=channels, people=people, units=units, scheduler=settings,
                   audit=_audit_settings(_table(data, "audit", fail), fail),
                   desk=_desk_settings(_table(data, "desk", fail), fail))

    # ----------------------------------------------------------------- routing

    def route_person(self, person_id: str, person: PersonLike | None) -> Route:
        """Where a person's messages go: ``[people.ID]``, else their row's channel, else their unit's."""
        configured = self.people.get(person_id)
        if configured is not None:
            return configured
        if person is not None and person.channel:
            value = person.channel.strip()
            if value in self.channels:
                return Route(value)
            if value.lower().startswith("mailto:") and "://" not in value:
                # An e-mail address on the person's row: sent through the configured e-mail channel.
                mail = self._mail_channel()
                if mail is not None:
                    return Route(mail, value.split(":", 1)[1])
            elif "://" in value:
                return Route(value)
        if person is not None:
            return self.route_unit(person.unit)
        return Route(self.scheduler.default_channel)

    def route_unit(self, unit: str) -> Route:
        """Where a unit's messages go: ``[units.UNIT]``, else the default channel."""
        return self.units.get(unit) or Route(self.scheduler.default_channel)

    def _mail_channel(self) -> str | None:
        for name, channel in self.channels.items():
            if channel.url.lower().startswith(("mailto://", "mailtos://")):
                return name
        return None

    def channel_format(self, channel: str) -> str:
        """The body format digests are rendered in for ``channel`` (a name or an ad-hoc URL)."""
        config = self.channels.get(channel)
        return config.format if config is not None else "text"

    def channel_config(self, channel: str) -> ChannelConfig:
        """The configuration of a channel name, or an ad-hoc one for a URL stored on a person's row."""
        config = self.channels.get(channel)
        if config is not None:
            return config
        if "://" in channel:
            return ChannelConfig(channel, channel, ChannelConfig.infer_kind(channel))
        raise DeliveryError(
            f"unknown channel {channel!r}; configured channels are: {', '.join(sorted(self.channels))}"
            + (f" (in {self.path})" if self.path else "")
        )


def _table(data: Mapping[str, Any], name: str, fail: Callable[[str, str], ConfigError]) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise fail(name, f"must be a table ([{name}] …), got {type(value).__name__}")
    return value


def _check_keys(spec: Mapping[str, Any], allowed: Sequence[str], where: str,
                fail: Callable[[str, str], ConfigError]) -> None:
    for key in spec:
        if key not in allowed:
            raise fail(f"{where}.{key}", f"unknown key; allowed keys are {', '.join(allowed)}")


def _parse_clock_time(text: str) -> time:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"expected a time of day like 08:30, got {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


def _scheduler_settings(table: Mapping[str, Any], channels: Mapping[str, ChannelConfig],
                        fail: Callable[[str, str], ConfigError]) -> SchedulerSettings:
    values: dict[str, Any] = {}
    for key, value in table.items():
        full = f"scheduler.{key}"
        expected = _SCHEDULER_KEYS.get(key)
        if expected is None:
            raise fail(full, f"unknown key; allowed keys are {', '.join(_SCHEDULER_KEYS)}")
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise fail(full, f"has the wrong type ({type(value).__name__}: {value!r})")
        if key in ("digest_time", "report_time"):
            try:
                values[key] = _parse_clock_time(str(value))
            except ValueError as exc:
                raise fail(full, str(exc)) from None
        elif key == "escalate_after":
            try:
                limit = TimeLimit.parse(str(value))
            except TimeLimitError as exc:
                raise fail(full, str(exc)) from None
            if limit.unit not in ("working_days", "days", "hours", "minutes") or limit.amount < 1:
                raise fail(full, f"must be a positive number of working_days, days or hours, got {value!r}")
            values[key] = limit
        elif key == "report_dir":
            values[key] = Path(str(value))
        elif key == "default_channel":
            if value not in channels:
                raise fail(full, f"unknown channel {value!r}; channels are: {', '.join(sorted(channels))}")
            values[key] = value
        else:
            if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
                raise fail(full, f"must be positive, got {value!r}")
            values[key] = value
    return SchedulerSettings(**values)


def _audit_settings(table: Mapping[str, Any], fail: Callable[[str, str], ConfigError]) -> AuditSettings:
    _check_keys(table, _AUDIT_KEYS, "audit", fail)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise fail(f"audit.{key}", f"must be a non-empty string, got {value!r}")
        if key == "checkpoint_time":
            try:
                values[key] = _parse_clock_time(value)
            except ValueError as exc:
                raise fail(f"audit.{key}", str(exc)) from None
        else:
            values[key] = Path(value).expanduser()
    return AuditSettings(**values)


def _desk_settings(table: Mapping[str, Any], fail: Callable[[str, str], ConfigError]) -> DeskSettings:
    _check_keys(table, ("secret_file",), "desk", fail)
    value = table.get("secret_file")
    if value is None:
        return DeskSettings()
    if not isinstance(value, str) or not value.strip():
        raise fail("desk.secret_file", f"must be a non-empty string naming a file, got {value!r}")
    return DeskSettings(Path(value).expanduser())


# ----------------------------------------------------------------------------------------- channels


class LogNotifier:
    """The log channel: python logging, and the messages kept in memory (the demo prints them)."""

    name = LOG_CHANNEL
    #: Safe to call from several delivery threads at once.
    concurrent = True

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def send(self, *, to: str, subject: str, body: str, notification_id: str | None = None) -> None:
        """Log the message and keep it."""
        log.info("notification %s to %s: %s\n%s", notification_id or "-", to, subject, body)
        with self._lock:
            self.messages.append((to, subject, body))


class WebhookNotifier:
    """A generic JSON webhook: POST ``{"id", "to", "subject", "body", "format"}``; any non-2xx status fails.

    ``id`` (also the ``Idempotency-Key`` and ``X-Caseflow-Notification-Id`` headers) is the same on every
    attempt at one notification: a receiver drops a redelivery by it. Connections are kept alive and
    reused (HTTP/1.1; a receiver that closes them gets a new one), one per send at once.
    """

    #: One POST per message, independent of the others: the outbox may send several at once.
    concurrent = True

    def __init__(self, url: str, *, name: str = "webhook", timeout: float = 10.0, body_format: str = "text") -> None:
        self.url = url
        self.name = name
        self.timeout = timeout
        self.body_format = body_format
        parts = urlsplit(url)
        self._https = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self._host_header = parts.netloc.rsplit("@", 1)[-1]
        self._auth = None
        if parts.username:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._auth = f"Basic {base64.b64encode(credentials).decode('ascii')}"
        self._idle: list[Any] = []  # kept-alive connections not in use (http.client.HTTPConnection)
        self._idle_lock = threading.Lock()
        # A proxy named in the environment (https_proxy …) is honoured through urllib, as before.
        import urllib.request

        proxies = urllib.request.getproxies()
        self._proxied = parts.scheme.lower() in proxies and not urllib.request.proxy_bypass(self._host)

    def send(self, *, to: str, subject: str, body: str, notification_id: str | None = None) -> None:
        """POST the message; raise :class:`DeliveryError` on a network error or an error status."""
        # http.client rather than an HTTP client library: a POST over a kept-alive connection needs no
        # extra dependency.
        import http.client

        payload = {"to": to, "subject": subject, "body": body, "format": self.body_format}
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "caseflow",
                   "Host": self._host_header}
        if self._auth:
            headers["Authorization"] = self._auth
        if notification_id:
            payload["id"] = notification_id
            headers["Idempotency-Key"] = headers["X-Caseflow-Notification-Id"] = notification_id
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        if self._proxied:
            self._send_urllib(data, headers)
            return
        stale = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError,
                 ConnectionAbortedError)
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                connection.request("POST", self._target, body=data, headers=headers)
                response = connection.getresponse()
                detail = response.read()
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                if reused and attempt == 1 and isinstance(exc, stale):
                    continue  # the receiver had closed the idle connection: once more on a new one
                raise DeliveryError(f"webhook {_safe(self.url)}: {type(exc).__name__}: {exc}") from None
            if response.will_close:
                connection.close()
            else:
                with self._idle_lock:
                    self._idle.append(connection)
            if response.status >= 300:
                text = detail[:200].decode("utf-8", "replace")
                raise DeliveryError(f"webhook {_safe(self.url)} answered {response.status}"
                                    + (f": {text}" if text else ""))
            return

    def _send_urllib(self, data: bytes, headers: dict[str, str]) -> None:
        """One POST through urllib (which applies the environment's proxy), a connection per message."""
        import urllib.error
        import urllib.request

        headers = {k: v for k, v in headers.items() if k not in ("Host", "Authorization")}
        request = urllib.request.Request(self.url, data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace")
            raise DeliveryError(f"webhook {_safe(self.url)} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook {_safe(self.url)}: {type(exc).__name__}: {reason}") from None
        if status >= 300:
            raise DeliveryError(f"webhook {_safe(self.url)} answered {status}")

    def _connection(self) -> tuple[Any, bool]:
        """An idle kept-alive connection (True), else a new one (False)."""
        import http.client

        with self._idle_lock:
            if self._idle:
                return self._idle.pop(), True
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout), False
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout), False

    def close(self) -> None:
        """Close the kept-alive connections."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class AppriseNotifier:
    """Any apprise URL: ``mailto://``, ``wecombot://``, ``dingtalk://``, ``feishu://`` …

    For e-mail URLs the message's address is added as ``to=``, so one channel serves every person.
    """

    def __init__(self, url: str, *, name: str = "apprise", body_format: str = "text") -> None:
        self.url = url
        self.name = name
        self.body_format = body_format

    def _url_for(self, to: str, notification_id: str | None = None) -> str:
        parts = urlsplit(self.url)
        if parts.scheme.lower() in ("mailto", "mailtos"):
            query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                     if k != "to" or "@" not in to]
            if "@" in to:
                query.append(("to", to))
            if notification_id:
                # apprise turns a "+NAME" argument of an e-mail URL into the header NAME.
                query.append(("+X-Caseflow-Notification-Id", notification_id))
            return urlunsplit(parts._replace(query=urlencode(query)))
        return self.url

    def send(self, *, to: str, subject: str, body: str, notification_id: str | None = None) -> None:
        """Send through apprise; raise :class:`DeliveryError` with apprise's own log when it fails."""
        import apprise

        notifier = apprise.Apprise()
        if not notifier.add(self._url_for(to, notification_id)):
            raise DeliveryError(f"apprise does not accept the URL {_safe(self.url)}")
        fmt = {"html": apprise.NotifyFormat.HTML, "markdown": apprise.NotifyFormat.MARKDOWN}.get(
            self.body_format, apprise.NotifyFormat.TEXT)
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            ok = notifier.notify(title=subject, body=body, body_format=fmt)
        if not ok:
            detail = " ".join(captured.getvalue().split())[:500] or "no detail"
            raise DeliveryError(f"apprise {_safe(self.url)} failed: {detail}")


def _safe(url: str) -> str:
    """A URL without its password, for messages and the outbox's last_error."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def build_notifier(channel: ChannelConfig, log_notifier: LogNotifier) -> Notifier:
    """The notifier of a configured channel."""
    if channel.kind == "log":
        return log_notifier
    if channel.kind == "webhook":
        return WebhookNotifier(channel.url, name=channel.name, timeout=channel.timeout, body_format=channel.format)
    return AppriseNotifier(channel.url, name=channel.name, body_format=channel.format)


# ------------------------------------------------------------------------------------------- outbox


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
                log.warning("delivery of outbox #%s via %s failed: %s", item.id, _safe(item.channel), message)
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
                report.errors.append(f"outbox #{item.id} via {_safe(item.channel)}: {error}")
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


def insert_ignore(session: sa.orm.Session, table: Any, conflict: Iterable[str]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the session's dialect (SQLite: ``INSERT OR IGNORE`` semantics)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    raise CaseflowError(f"unsupported database dialect {name!r}; use SQLite or PostgreSQL")
