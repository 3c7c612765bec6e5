"""Shared fixtures: the default working-day calendar, the Beijing zone, the reference cases."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session", autouse=True)
def desk_secret(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A site secret for applicant fingerprints, named in $CASEFLOW_DESK_SECRET_FILE for every test (and the
    processes they start), as an administrator configures one; tests of a missing secret unset it."""
    from caseflow.applicants import SECRET_ENV, write_secret

    path = write_secret(tmp_path_factory.mktemp("desk-secret") / "desk.key")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET_ENV, str(path))
        yield path
