"""How many statements each operation of the window sends to the database (issue 11: lean commands).

The window of a real office runs these all day: a visit, the 一次告知单, acceptance, 当场办结 (of a
recorded visit, and in one call), a rating (good, and bad: with its follow-up case), a booking and its
outcome. Each reads what it needs in one read and writes in one transaction; the counts are pinned (as
tests/test_statements.py pins the engine's commands) so that a change adding a query shows here. They are
counts, not timings. BEGIN and COMMIT are not counted (SQLite's ``BEGIN IMMEDIATE`` is: we send it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from caseflow.applicants import ApplicantKey
from caseflow.appointments import Appointments
from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.desk import Desk
from caseflow.engine import Engine
from caseflow.ratings import Ratings
from caseflow.store import Store
from storefixtures import db_url  # noqa: F401 - fixture
from test_statements import counting

UNIT = "城关派出所"
COMPLETE = ["id_card", "household_register", "transfer_permit"]


@pytest.fixture
def engine(db_url: str) -> Engine:  # noqa: F811
    e = Engine(Store(db_url), clock=FixedClock(datetime(2026, 11, 2, 9, 0, tzinfo=ZONE)))
    e.add_person("zhang", name="张所长", unit=UNIT, roles=["station_leader"])
    e.add_person("li", name="李警官", unit=UNIT, roles=["household_police", "clerk"], leader="zhang")
    return e


# (SQLite, PostgreSQL) statements for each operation below (before this was pinned: visit 5/4, notice 8/7,
# accept 12/9, on the spot 13/9 and 13/10, rate 7/5, a bad rating 20/13, booking 7/6, its outcome 4/3).
EXPECTED = {
    "visit": (3, 2),
    "issue notice": (5, 5),
    "accept": (9, 5),
    "on the spot (a recorded visit)": (10, 5),
    "on the spot (in one call)": (11, 8),
    "accept at a fresh desk (the visit read first)": (11, 6),
    "rate": (3, 2),
    "rate badly (a follow-up opens)": (11, 6),
    "book": (3, 3),
    "record a booking's outcome": (3, 2),
}


def test_each_window_operation_sends_a_fixed_few_statements(engine: Engine) -> None:
    key = ApplicantKey(b"k" * 32, source="test")
    desk, ratings, bookings = Desk(engine, key=key), Ratings(engine), Appointments(engine, key=key)
    for workflow, actor in (("hukou_transfer", "li"), ("service_followup", "zhang")):
        engine.open(workflow, actor=actor)  # each definition is stored once per process, before its first case
    counts: dict[str, int] = {}
    results: list[Any] = []

    def count(name: str, operation: Callable[[], Any]) -> Any:
        with counting(engine) as sent:
            results.append(operation())
        counts[name] = len(sent)
        return results[-1]

    short = count("visit", lambda: desk.visit("hukou_transfer", applicant_id="110101199003071234", actor="li",
                                              brought=["id_card"]))
    count("issue notice", lambda: desk.issue_notice(short.id, actor="li"))
    whole = desk.visit("hukou_transfer", applicant_id="32010219850512432X", actor="li", brought=COMPLETE)
    count("accept", lambda: desk.accept(whole.id, actor="li"))
    spot = desk.visit("hukou_transfer", applicant_id="440301200101010011", actor="li", brought=COMPLETE)
    receipt = count("on the spot (a recorded visit)", lambda: desk.handle_on_the_spot(spot.id, actor="li"))
    other = count("on the spot (in one call)", lambda: desk.on_the_spot(
        "hukou_transfer", applicant_id="440301200101010022", actor="li", brought=COMPLETE))
    fresh = desk.visit("hukou_transfer", applicant_id="440301200101010033", actor="li", brought=COMPLETE)
    count("accept at a fresh desk (the visit read first)",  # as the HTTP API does: a desk per request
          lambda: Desk(engine, key=key).accept(fresh.id, actor="li"))
    count("rate", lambda: ratings.rate(case_id=receipt.case.id, level=5, actor="li"))
    bad = count("rate badly (a follow-up opens)", lambda: ratings.rate(case_id=other.case.id, level=1, actor="li"))
    assert bad.followup_case_id is not None
    slot = datetime(2026, 11, 3, 9, 0, tzinfo=ZONE)
    booking = count("book", lambda: bookings.book(UNIT, "hukou_transfer", slot, applicant_id="110101199003071234"))
    engine.clock.set(slot)  # type: ignore[attr-defined]
    count("record a booking's outcome", lambda: bookings.record(booking.id, "served", actor="li"))
    dialect = 0 if engine.store.is_sqlite else 1
    assert counts == {name: pair[dialect] for name, pair in EXPECTED.items()}
