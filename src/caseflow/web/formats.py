"""How the console writes instants and due instants (Beijing time; a day limit ends at 24:00)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from caseflow.calendar import ZONE


def fmt_instant(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant in Beijing time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(ZONE).strftime(fmt)


def fmt_due(value: datetime | str | None) -> str:
    """A due instant as a clerk reads it: a day limit ends at 24:00 of its last day, not 00:00 the next."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(ZONE)
    if local.time() == time(0):
        return f"{local - timedelta(days=1):%Y-%m-%d} 24:00"
    return f"{local:%Y-%m-%d %H:%M}"
