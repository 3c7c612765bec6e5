"""How the console writes instants and due instants (Beijing time; a day limit ends at 24:00)."""

from __future__ import annotations

from datetime import datetime

from caseflow.calendar import ZONE
from caseflow.narrate import due_text


def fmt_instant(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant in Beijing time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(ZONE).strftime(fmt)


def fmt_due(value: datetime | str | None) -> str:
    """A due instant as a clerk reads it, one way everywhere: ``2026-11-20（周五）24:00`` (see caseflow.narrate)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return due_text(value, prefix="")
