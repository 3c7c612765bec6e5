"""Shared fixtures: the default working-day calendar, the Beijing zone, the reference cases."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from caseflow.calendar import WorkCalendar, default_calendar

BEIJING = ZoneInfo("Asia/Shanghai")
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference_cases() -> list[dict[str, Any]]:
    """The reference cases of shared/reference/cases.json (copied to tests/data)."""
    cases: list[dict[str, Any]] = json.loads((DATA / "reference_cases.json").read_text(encoding="utf-8"))
    return cases


@pytest.fixture(scope="session")
def calendar() -> WorkCalendar:
    """The shared calendar: chinese-calendar, then the shipped holidays/ files."""
    return default_calendar()


@pytest.fixture(scope="session")
def beijing() -> ZoneInfo:
    return BEIJING


@pytest.fixture(scope="session")
def bj() -> Callable[..., datetime]:
    """``bj(2026, 10, 9, 17)``: an aware Beijing-time instant."""

    def make(*parts: int) -> datetime:
        return datetime(*parts, tzinfo=BEIJING)  # type: ignore[misc]

    return make
