"""The configuration file: channels, where people's and units' messages go, and the scheduler's settings.

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

The channels themselves are in :mod:`caseflow.notify`, the delivery of queued messages in
:mod:`caseflow.outbox`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Protocol

from caseflow.errors import CaseflowError, TimeLimitError
from caseflow.notify import BODY_FORMATS, DEFAULT_CONCURRENCY, LOG_CHANNEL, DeliveryError
from caseflow.timelimits import TimeLimit

__all__ = [
    "AuditSettings",
    "ChannelConfig",
    "ConfigError",
    "DeskSettings",
    "NotifyConfig",
    "PersonLike",
    "Route",
    "SchedulerSettings",
]

CONFIG_ENV = "CASEFLOW_CONFIG"
DEFAULT_CONFIG_NAME = "caseflow.toml"
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
    #: Short, because the delivering process renews it while it sends (see :mod:`caseflow.outbox`).
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
