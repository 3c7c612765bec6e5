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
