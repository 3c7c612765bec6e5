"""Rate limits of the public pages: how many tries a client address gets per window, in memory or shared.

The public progress query, the applicant's rating and the booking form take no login, so a client address
may try only a few times a minute (guessing query codes must stay hopeless: 信访工作条例 第二十一条 opens
the query to the holder of the code, no one else). With several web workers (``caseflow serve --workers
4``) a count kept in each process would give an address four times the tries, so the count lives in the
store: :class:`SharedRateLimiter` keeps one row per (hashed address and scope, fixed window) and counts
with one atomic ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` — two processes never both take the last
try. Rows of past windows are deleted as new windows start, so the table holds about one row per active
address. The address is stored only as a SHA-256 with the scope (an IP address is personal data) and is
gone within two windows.

:class:`RateLimiter` is the in-memory form (one process; tests and embedding).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Field

from caseflow.abc import Clock
from caseflow.alerts import table_of
from caseflow.errors import CaseflowError
from caseflow.store import CaseflowBase, Store

__all__ = ["Limiter", "RateHitRow", "RateLimiter", "SharedRateLimiter"]


class Limiter(Protocol):
    """What the web layer asks of a limiter."""

    def hit(self, key: str) -> int:
        """Count one try for ``key``: 0 when allowed, else the seconds to wait (``Retry-After``)."""
        ...


class RateHitRow(CaseflowBase, table=True):
    """Tries of one hashed client address and scope within one fixed window."""

    __tablename__ = "caseflow_rate_hits"
    __table_args__ = (sa.Index("ix_caseflow_rate_hits_window", "window_start"),)

    key: str = Field(primary_key=True, max_length=64)  # SHA-256 of "scope|address"
    window_start: int = Field(primary_key=True, sa_type=sa.BigInteger)  # epoch seconds
    hits: int = 0


_HITS = table_of(RateHitRow)


class SharedRateLimiter:
    """At most ``limit`` tries per ``per`` seconds for each key, counted in the store (all processes).

    Fixed windows aligned to ``per`` seconds of ``clock`` (the wall clock when served; tests pass a
    simulated one): an address that spent its tries waits until the window ends, and is told how long.
    """

    def __init__(self, store: Store, limit: int = 10, per: int = 60, *, clock: Clock, scope: str = "") -> None:
        if limit < 1 or per < 1:
            raise CaseflowError(f"a rate limit needs limit >= 1 and per >= 1 second, got {limit} per {per}")
        self.store, self.limit, self.per, self.clock, self.scope = store, limit, int(per), clock, scope

    def _key(self, key: str) -> str:
        return hashlib.sha256(f"caseflow-rate|{self.scope}|{key}".encode()).hexdigest()

    def hit(self, key: str) -> int:
        """Count one try for ``key``: 0 when allowed, else the whole seconds until its window ends."""
        now = self.clock.now().timestamp()
        window = int(now // self.per) * self.per
        digest = self._key(key)
        with self.store.session(write=True) as s:
            name = s.get_bind().dialect.name
            if name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            elif name == "sqlite":
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            else:  # pragma: no cover - Store accepts only these two
                raise CaseflowError(f"unsupported database dialect {name!r}")
            statement = insert(_HITS).values(key=digest, window_start=window, hits=1)
            statement = statement.on_conflict_do_update(
                index_elements=["key", "window_start"], set_={"hits": _HITS.c.hits + 1})
            hits = int(s.execute(statement.returning(_HITS.c.hits)).scalar_one())
            if hits == 1:
                # A new window for this address: drop what every address left in windows before the last.
                s.execute(sa.delete(_HITS).where(_HITS.c.window_start < window - self.per))
        if hits <= self.limit:
            return 0
        return max(1, math.ceil(window + self.per - now))

    def allow(self, key: str) -> bool:
        """Count one try for ``key``; False once it is over the limit in the current window."""
        return self.hit(key) == 0


class RateLimiter:
    """At most ``limit`` calls per ``per`` seconds for each key (a client address); thread-safe, in memory."""

    def __init__(self, limit: int = 10, per: float = 60.0, *, now: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.per, self._now = limit, per, now
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        """Count one call for ``key``: 0 when allowed, else the seconds until its oldest call leaves the window."""
        now = self._now()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.per:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, math.ceil(hits[0] + self.per - now))
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle clients so memory stays bounded
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.per]:
                    del self._hits[k]
            return 0

    def allow(self, key: str) -> bool:
        """Count one call for ``key``; False once it is over the limit in the current window."""
        return self.hit(key) == 0
