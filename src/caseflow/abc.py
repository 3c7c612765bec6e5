"""The plug points of caseflow, in one place (as APScheduler's ``abc`` module).

- :class:`CalendarSource` gives official holiday arrangements year by year.
- :class:`Clock` tells the current instant (tests and the demo drive a simulated one).
- :class:`Notifier` delivers one message on one channel.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from caseflow.calendar import YearArrangement

__all__ = ["CalendarSource", "Clock", "Notifier"]


@runtime_checkable
class CalendarSource(Protocol):
    """Something that knows the official rest and make-up working days of some years."""

    name: str

    def arrangements(self) -> Iterable[YearArrangement]:
        """Every year this source knows, each as one :class:`YearArrangement`."""
        ...


@runtime_checkable
class Clock(Protocol):
    """The source of "now": always an aware datetime."""

    def now(self) -> datetime:
        """The current instant, time-zone aware."""
        ...


@runtime_checkable
class Notifier(Protocol):
    """Delivers one message; raises on failure so the outbox can retry."""

    name: str

    def send(self, *, to: str, subject: str, body: str) -> None:
        """Deliver ``body`` to the address ``to``; raise any exception on failure."""
        ...
