"""The demo tells the same story, and every leader gets the same digest, however the digests are built.

``data/demo_golden.json`` was written by the code before digests were built together (one read of the
instant for all leaders): the story the demo prints for 2026-09-01 … 2026-10-16 (National Day, 调休, an
absence), every digest the scheduler queued in that run (recipient, subject and a SHA-256 of the body),
and each leader's digest rebuilt at the run's last morning. The simulated clock makes all of it
deterministic; only the wall-clock line ``用时 N 秒`` is left out.

When the story changes on purpose (a workflow, the demo's script), rewrite the file with
``python tests/test_demo_golden.py`` and read the difference before committing it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from caseflow.alerts import OUTBOX
from caseflow.demo import run_demo
from caseflow.digest import build_digest, build_digests, render_digest
from caseflow.store import Store

GOLDEN: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "demo_golden.json").read_text(encoding="utf-8"))
LEADERS = ("ju", "wang", "chen", "wu", "gao", "qian")


@dataclass
class Run:
    """A finished short demo run: its database and the lines it printed."""

    store: Store
    db: Path
    story: list[str]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The demo from 2026-09-01 to the golden run's last day."""
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    lines: list[str] = []
    run_demo(db, say=lines.append, until=date.fromisoformat(GOLDEN["until"]))
    store = Store(db)
    yield Run(store, db, [line.replace(str(db), "DEMO.db") for line in lines if not line.startswith("用时 ")])
    store.dispose()


def test_the_demo_prints_the_same_story(run: Run) -> None:
    assert run.story == GOLDEN["story"]


def test_the_story_is_told_in_chinese(run: Run) -> None:
    """People read the demo in Chinese: the only Latin words are commands to type, file names, the log
    channel's name and the applicants' file numbers (HU-2026-…)."""
    allowed = {"caseflow", "db", "DEMO.db", "stats", "month", "token", "create", "serve", "wang", "http", "log",
               "scoring.toml", "HU-"}
    words = {w for line in run.story for w in re.findall(r"[A-Za-z][A-Za-z_.-]+", line)}
    assert words <= allowed, sorted(words - allowed)


def test_the_scheduler_queues_the_same_digests_to_the_same_leaders(run: Run) -> None:
    with run.store.session() as s:
        queued = s.execute(sa.select(OUTBOX.c.recipient, OUTBOX.c.subject, OUTBOX.c.body)
                           .where(OUTBOX.c.kind == "digest").order_by(OUTBOX.c.id)).all()
    seen = [[to, subject, hashlib.sha256(body.encode()).hexdigest()] for to, subject, body in queued]
    changed = [(was[:2], now[:2]) for was, now in zip(GOLDEN["queued"], seen, strict=False) if was != now]
    assert not changed, f"digests that differ (recipient, subject): {changed[:5]}"
    assert len(seen) == len(GOLDEN["queued"])


def test_each_leaders_digest_built_alone_reads_as_before(run: Run) -> None:
    at = datetime.fromisoformat(GOLDEN["at"])
    for leader in LEADERS:
        assert render_digest(build_digest(run.store, leader, at), "markdown") == GOLDEN["rebuilt_markdown"][leader]


@pytest.mark.parametrize("at", ["2026-09-30T08:30:00+08:00", "2026-10-09T08:30:00+08:00",
                                "2026-10-16T08:30:00+08:00", "2026-10-16T19:00:00+08:00"])
def test_digests_built_together_are_the_digests_built_one_by_one(run: Run, at: str) -> None:
    """Built together the leaders share one read of the instant; each still sees only its own units."""
    instant = datetime.fromisoformat(at)
    together = build_digests(run.store, list(LEADERS), instant)
    assert [d.leader_id for d in together] == list(LEADERS)
    for leader, digest in zip(LEADERS, together, strict=True):
        alone = build_digest(run.store, leader, instant)
        assert digest.to_dict() == alone.to_dict()
        assert render_digest(digest, "text") == render_digest(alone, "text")
    # The bureau chief sees every unit; a station leader only theirs.
    assert len(together[0].units) > len(together[1].units)


def write_golden(path: Path = Path(__file__).parent / "data" / "demo_golden.json") -> None:
    """Run the short demo and write what it printed and queued as the new golden file."""
    import tempfile

    from caseflow.calendar import ZONE

    at = datetime(2026, 10, 16, 8, 30, tzinfo=ZONE)
    until = date(2026, 10, 16)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        lines: list[str] = []
        run_demo(db, say=lines.append, until=until)
        store = Store(db)
        with store.session() as s:
            queued = s.execute(sa.select(OUTBOX.c.recipient, OUTBOX.c.subject, OUTBOX.c.body)
                               .where(OUTBOX.c.kind == "digest").order_by(OUTBOX.c.id)).all()
        rebuilt = {pid: render_digest(build_digest(store, pid, at), "markdown") for pid in LEADERS}
        store.dispose()
        story = [line.replace(str(db), "DEMO.db") for line in lines if not line.startswith("用时 ")]
    golden = {
        "until": until.isoformat(),
        "story": story,
        "queued": [[to, subject, hashlib.sha256(body.encode()).hexdigest()] for to, subject, body in queued],
        "at": at.isoformat(),
        "rebuilt_markdown": rebuilt,
    }
    path.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_golden()


def _scorecard_by_hand(store: Store, month: str) -> dict[str, dict[str, int]]:
    """The month's events per person, recounted row by row in Python (the rules of caseflow.scoring)."""
    from caseflow.alerts import ALERTS, CASES, TIMERS, table_of
    from caseflow.appointments import AppointmentRow
    from caseflow.desk import NoticeRow, VisitRow
    from caseflow.ratings import BAD_LEVELS, RatingRow
    from caseflow.stats import month_bounds, parse_month

    start, end = month_bounds(*parse_month(month))
    counts: dict[str, dict[str, int]] = {}

    def count(rule: str, person: str | None) -> None:
        line = counts.setdefault(person or "", {})
        line[rule] = line.get(rule, 0) + 1

    a, t, c = ALERTS.c, TIMERS.c, CASES.c
    r, v, n, b = (table_of(RatingRow).c, table_of(VisitRow).c, table_of(NoticeRow).c,
                  table_of(AppointmentRow).c)
    with store.session() as s:
        for level, assignee, responsible, at in s.execute(
                sa.select(a.level, t.assignee, c.responsible_id, a.level_at)
                .join(TIMERS, t.id == a.timer_id).join(CASES, c.id == t.case_id)):
            if level in ("overdue", "escalated") and start <= at < end:
                count("overdue_step" if level == "overdue" else "escalation", assignee or responsible)
        for assignee, responsible, status, stopped, due in s.execute(
                sa.select(t.assignee, c.responsible_id, t.status, t.stopped_at, t.due_at)
                .join(CASES, c.id == t.case_id)):
            if status == "met" and start <= stopped < end and (due is None or stopped <= due):
                count("finished_on_time", assignee or responsible)
        for person, level, at, followup in s.execute(sa.select(r.person_id, r.level, r.at, r.followup_case_id)):
            if level in BAD_LEVELS and start <= at < end:
                count("bad_rating", person)
            if followup is not None:
                state, closed = s.execute(sa.select(c.state, c.closed_at).where(c.id == followup)).one()
                if state == "rectified" and start <= closed < end:
                    count("upheld_complaint", person)
        notices = s.execute(sa.select(n.applicant_hash, n.workflow_key, n.issued_by).order_by(n.id)).all()
        for over, at, clerk, applicant, key in s.execute(
                sa.select(v.over_limit, v.at, v.clerk_id, v.applicant_hash, v.workflow_key)):
            if over and start <= at < end:
                first = next((who for h, k, who in notices if (h, k) == (applicant, key)), None)
                count("third_visit", first if first is not None else clerk)
        for status, at, clerk in s.execute(sa.select(b.status, b.at, b.clerk_id)):
            if status == "missed" and start <= at < end:
                count("missed_appointment", clerk)
    return counts


@pytest.mark.parametrize("month", ["2026-09", "2026-10"])
def test_the_scorecard_counts_what_a_recount_by_hand_counts(run: Run, month: str) -> None:
    """The database counts a month's 考评 events in one statement; a row-by-row recount agrees, per person
    and per unit (a unit's line is the sum of its people's events there)."""
    from caseflow.scoring import scorecard

    card = scorecard(run.store, month=month)
    got = {p.key: {k: v for k, v in p.counts.items() if v} for p in card.people}
    assert got == _scorecard_by_hand(run.store, month)
    assert sum(sum(line.counts.values()) for line in card.units) == sum(map(sum, (p.counts.values()
                                                                                for p in card.people)))
    for line in card.units:
        only = scorecard(run.store, month=month, unit=line.key)
        assert [u.key for u in only.units] == [line.key] and only.units[0].counts == line.counts


def _window_by_hand(store: Store, month: str) -> dict[str, dict[str, Any]]:
    """The month's window figures per unit, recounted row by row in Python (the definitions of caseflow.windowstats)."""
    from caseflow.alerts import CASES, table_of
    from caseflow.appointments import AppointmentRow
    from caseflow.desk import VisitRow
    from caseflow.ratings import BAD_LEVELS, RatingRow
    from caseflow.stats import month_bounds, parse_month

    start, end = month_bounds(*parse_month(month))
    units: dict[str, dict[str, Any]] = {}

    def add(unit: str, name: str, n: int = 1) -> None:
        line = units.setdefault(unit, {"levels": {}})
        line[name] = line.get(name, 0) + n

    v, b, r, c = table_of(VisitRow).c, table_of(AppointmentRow).c, table_of(RatingRow).c, CASES.c
    with store.session() as s:
        for unit, outcome, warning, over, number, at in s.execute(
                sa.select(v.unit, v.outcome, v.warning, v.over_limit, v.number, v.at)):
            if start <= at < end:
                add(unit, "visits")
                add(unit, outcome)
                add(unit, "warnings", warning is not None)
                add(unit, "over_limit_visits", bool(over))
                if outcome in ("on_the_spot", "accepted"):
                    add(unit, "settled_first_visit", number == 1)
                    add(unit, "settled_by_second_visit", number <= 2)
        for unit, status, at in s.execute(sa.select(b.unit, b.status, b.at)):
            if start <= at < end and status != "cancelled":
                add(unit, "booked")
                add(unit, status)
        for unit, level, at, followup in s.execute(sa.select(r.unit, r.level, r.at, r.followup_case_id)):
            if start <= at < end:
                add(unit, "ratings")
                levels = units[unit]["levels"]
                levels[level] = levels.get(level, 0) + 1
                if level in BAD_LEVELS:
                    add(unit, "bad")
                    state, closed = s.execute(sa.select(c.state, c.closed_at).where(c.id == followup)).one() \
                        if followup is not None else ("", None)
                    add(unit, "followed_up", closed is not None)
                    add(unit, "rectified", state == "rectified")
                else:
                    add(unit, "good")
    return units


@pytest.mark.parametrize("month", ["2026-09", "2026-10"])
def test_the_window_figures_are_what_a_recount_by_hand_gives(run: Run, month: str) -> None:
    """The database counts the month's visits, bookings and ratings per unit; a row-by-row recount agrees,
    and the total row adds up the units."""
    from caseflow.windowstats import window_stats

    rows = window_stats(run.store, month=month)
    expected = _window_by_hand(run.store, month)
    assert [w.key for w in rows[:-1]] == sorted(expected)
    for w in rows[:-1]:
        want = expected[w.key]
        got = {"visits": w.visits, "notice": w.notices, "on_the_spot": w.on_the_spot, "accepted": w.accepted,
               "warnings": w.warnings, "over_limit_visits": w.over_limit_visits,
               "settled_first_visit": w.settled_first_visit, "settled_by_second_visit": w.settled_by_second_visit,
               "booked": w.booked, "no_show": w.no_show, "missed": w.missed_appointments, "ratings": w.ratings,
               "good": w.good, "bad": w.bad, "followed_up": w.followed_up, "rectified": w.rectified,
               "levels": w.levels}
        assert got == {k: want.get(k, {} if k == "levels" else 0) for k in got}
    total = rows[-1]
    assert total.key == "total" and total.visits == sum(w.visits for w in rows[:-1])
    assert total.bad == sum(w.bad for w in rows[:-1]) and total.booked == sum(w.booked for w in rows[:-1])
    assert total.levels == {k: sum(w.levels.get(k, 0) for w in rows[:-1]) for k in total.levels}
    assert sum(total.levels.values()) == total.ratings > 0 and total.visits > 0 and total.booked > 0
    for w in rows[:-1]:
        assert [x.key for x in window_stats(run.store, month=month, unit=w.key)] == [w.key, "total"]
