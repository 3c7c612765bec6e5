"""Notification channels: where a message goes, and how it is sent there.

Channels are apprise URLs (``mailto://``, ``wecombot://``, ``dingtalk://``, ``feishu://`` …), a generic
JSON webhook (``http://`` / ``https://`` URLs: POST ``{"to", "subject", "body", "format"}``) and the log
(``log://``: python logging, and the text is kept in memory for the demo).

Every send carries the notification's stable id (:attr:`caseflow.outbox.ClaimedDelivery.notification_id`,
the same on every attempt): a webhook gets it as the ``Idempotency-Key`` and ``X-Caseflow-Notification-Id``
headers and as ``"id"`` in its JSON, a mail as the ``X-Caseflow-Notification-Id`` header, so a receiver can
drop a redelivery.

Channels are named in the configuration file (:mod:`caseflow.config`); messages are queued and delivered
once by the outbox (:mod:`caseflow.outbox`).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from caseflow.abc import Notifier
from caseflow.errors import CaseflowError

if TYPE_CHECKING:  # caseflow.config imports this module (channel kinds, formats, DeliveryError)
    from caseflow.config import ChannelConfig

__all__ = [
    "AppriseNotifier",
    "DeliveryError",
    "LogNotifier",
    "WebhookNotifier",
    "build_notifier",
    "safe_url",
]

log = logging.getLogger("caseflow.notify")

LOG_CHANNEL = "log"
BODY_FORMATS = ("text", "markdown", "html")
#: Sends at once to one webhook (or the log) unless its channel says otherwise.
DEFAULT_CONCURRENCY = 8


class DeliveryError(CaseflowError):
    """A channel refused or could not take a message (the outbox retries it)."""


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
                raise DeliveryError(f"webhook {safe_url(self.url)}: {type(exc).__name__}: {exc}") from None
            if response.will_close:
                connection.close()
            else:
                with self._idle_lock:
                    self._idle.append(connection)
            if response.status >= 300:
                text = detail[:200].decode("utf-8", "replace")
                raise DeliveryError(f"webhook {safe_url(self.url)} answered {response.status}"
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
            raise DeliveryError(f"webhook {safe_url(self.url)} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook {safe_url(self.url)}: {type(exc).__name__}: {reason}") from None
        if status >= 300:
            raise DeliveryError(f"webhook {safe_url(self.url)} answered {status}")

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
            raise DeliveryError(f"apprise does not accept the URL {safe_url(self.url)}")
        fmt = {"html": apprise.NotifyFormat.HTML, "markdown": apprise.NotifyFormat.MARKDOWN}.get(
            self.body_format, apprise.NotifyFormat.TEXT)
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            ok = notifier.notify(title=subject, body=body, body_format=fmt)
        if not ok:
            detail = " ".join(captured.getvalue().split())[:500] or "no detail"
            raise DeliveryError(f"apprise {safe_url(self.url)} failed: {detail}")


def safe_url(url: str) -> str:
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
