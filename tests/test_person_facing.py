"""Nothing a person reads leaks the machine's words.

The demo database (three weeks of a county bureau, shortened from the full run) is read the way
people read it: every leader's digest in every format, every notification queued, every cell of every
unit's ledger, the console's board, queue and case pages, and the CLI's tables. None of it may
contain a workflow key, a state, timer, trigger or field name, or a JSON brace.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from caseflow.alerts import CASES, OutboxRow
from caseflow.calendar import ZONE
from caseflow.cli import cli
from caseflow.demo import run_demo
from caseflow.digest import build_digest, render_digest
from caseflow.engine import Engine
from caseflow.registry import WorkflowRegistry
from caseflow.stats import ledger_rows
from caseflow.store import Store

AT = datetime(2026, 9, 21, 8, 30, tzinfo=ZONE)  # the Monday after the make-up Sunday
LEADERS = ("ju", "wang", "chen", "wu", "gao", "qian")


def _machine_words() -> set[str]:
    words: set[str] = set()
    for defn in WorkflowRegistry.load():
        words.add(defn.key)
        words.update(s.name for s in defn.states)
        words.update(t.name for t in defn.timers)
        words.update(t.trigger for t in defn.transitions)
        words.update(defn.fields)
    return words


MACHINE_WORDS = _machine_words()
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def leaks(text: str) -> list[str]:
    """The machine words and JSON braces in ``text``."""
    found = sorted({w for w in _WORD.findall(text) if w in MACHINE_WORDS})
    return found + [b for b in "{}" if b in text]


def visible(page: str) -> str:
    """What a person sees of an HTML page: text, and the placeholders, titles and confirmations it shows."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    shown = re.findall(r'(?:placeholder|title|aria-label|data-confirm)="([^"]*)"', page)
    text = re.sub(r"<[^>]+>", " ", page)
    return html.unescape(text + " " + " ".join(shown))


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = tmp_path_factory.mktemp("facing") / "demo.db"
    run_demo(db, say=lambda _line: None, until=date(2026, 9, 25))
    yield db


def test_the_machine_words_are_the_ones_we_mean() -> None:
    assert {"hukou_transfer", "verification", "accepted", "hand_over_verification", "slip_no"} <= MACHINE_WORDS
    assert leaks('案件#19 hukou_transfer·report {"status": "met"}') == ["hukou_transfer", "report", "{", "}"]


def test_digests_in_every_format_speak_labels(demo_db: Path) -> None:
    store = Store(demo_db)
    try:
        for leader in LEADERS:
            digest = build_digest(store, leader, AT)
            for fmt in ("text", "markdown", "html"):
                text = render_digest(digest, fmt)
                shown = visible(text) if fmt == "html" else text
                assert leaks(shown) == [], (leader, fmt, leaks(shown))
        wang = render_digest(build_digest(store, "wang", AT), "text")
        assert "户口迁移(派出所户籍窗口)·" in wang and "（周" in wang
    finally:
        store.dispose()


def test_notifications_speak_labels(demo_db: Path) -> None:
    store = Store(demo_db)
    try:
        with store.session() as session:
            rows = session.execute(sa.select(OutboxRow.subject, OutboxRow.body, OutboxRow.body_format)).all()  # type: ignore[call-overload]
    finally:
        store.dispose()
    assert len(rows) > 50
    for subject, body, fmt in rows:
        shown = visible(body) if fmt == "html" else body
        assert leaks(subject) == [] and leaks(shown) == [], (subject, leaks(subject) + leaks(shown))


def test_every_ledger_cell_speaks_labels(demo_db: Path) -> None:
    store = Store(demo_db)
    try:
        with store.session() as session:
            units = sorted(session.execute(sa.select(CASES.c.unit).distinct()).scalars())
        cells = [str(v) for unit in units for row in ledger_rows(store, unit, "2026-09") for v in row.values()]
    finally:
        store.dispose()
    assert len(cells) > 100
    for cell in cells:
        assert leaks(cell) == [], (cell, leaks(cell))


def test_console_pages_speak_labels(demo_db: Path) -> None:
    from fastapi.testclient import TestClient

    from caseflow.clock import FixedClock
    from caseflow.tokens import create_token
    from caseflow.web import create_app

    store = Store(demo_db)
    engine = Engine(store, clock=FixedClock(AT))
    client = TestClient(create_app(engine=engine), follow_redirects=False)
    try:
        with store.session() as session:
            cases = list(session.execute(sa.select(CASES.c.id).order_by(CASES.c.id).limit(40)).scalars())
        for who in ("wang", "zhang"):
            r = client.post("/login", data={"token": create_token(store, who), "next": "/"})
            assert r.status_code == 303
            pages = ["/board", "/queue"] + [f"/cases/{cid}" for cid in cases]
            for path in pages:
                page = client.get(path)
                if page.status_code == 404:  # another unit's case
                    continue
                assert page.status_code == 200, (who, path)
                assert leaks(visible(page.text)) == [], (who, path, leaks(visible(page.text)))
    finally:
        client.close()
        store.dispose()


def test_cli_tables_speak_labels(demo_db: Path) -> None:
    runner = CliRunner()
    db = str(demo_db)
    commands = [
        ["stats", "--month", "2026-09", "--db", db],
        ["stats", "--month", "2026-09", "--by", "workflow", "--db", db],
        ["stats", "--month", "2026-09", "--by", "person", "--at", "2026-09-21T08:30", "--db", db],
        ["alerts", "list", "--limit", "200", "--db", db],
        ["queue", "--person", "zhang", "--at", "2026-09-21T08:30", "--db", db],
        ["queue", "--person", "zhou", "--at", "2026-09-21T08:30", "--db", db],
        ["digest", "--leader", "wang", "--at", "2026-09-21T08:30", "--db", db],
        ["digest", "--leader", "ju", "--at", "2026-09-21T08:30", "--format", "markdown", "--db", db],
    ]
    commands += [["case", cmd, str(cid), "--db", db] for cid in range(1, 40, 3) for cmd in ("show", "history")]
    for args in commands:
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        assert leaks(result.output) == [], (args, leaks(result.output), result.output[:2000])
