"""The console in a real browser: Playwright driving Debian's Chromium against uvicorn on 127.0.0.1.

A leader logs in with a token, finds the overdue case on the board, opens its timeline; a community police
officer then returns the verification from the case page (a confirm dialog, a form, a redirect). Screenshots
go to ``test-artifacts/board.png`` and ``test-artifacts/case.png`` at 1366×768.

Needs ``pip install playwright`` and ``apt-get install chromium`` (never ``playwright install``: the browser
is Debian's). Skips without them unless ``CASEFLOW_TEST_BROWSER_REQUIRED=1``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.store import Store
from caseflow.tokens import create_token

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}


def _unavailable(reason: str) -> None:
    if os.environ.get("CASEFLOW_TEST_BROWSER_REQUIRED") == "1":
        pytest.fail(f"CASEFLOW_TEST_BROWSER_REQUIRED=1 but {reason}")
    pytest.skip(reason)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZONE)  # type: ignore[misc]


@dataclass
class Demo:
    url: str
    tokens: dict[str, str]
    overdue: int
    engine: Engine


def build_demo(db: str) -> tuple[Engine, dict[str, str], int]:
    """A leader over two units, finished cases for the monthly chart, and an overdue case with a pause."""
    clock = FixedClock(at(2026, 8, 3, 9, 0))
    engine = Engine(Store(db), clock=clock)
    e = engine
    e.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader"])
    e.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1")
    e.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], leader="l1", substitute="p2")
    e.add_person("i1", name="赵侦查", unit="刑侦大队", roles=["investigator"], leader="l1")
    e.add_person("il", name="刘大队长", unit="刑侦大队", roles=["leader"])
    # August: a complete file handled on time.
    done = e.open("hukou_transfer", actor="p1", data={"applicant": "陈一"}).id
    clock.set(at(2026, 8, 3, 15, 0))
    e.fire(done, "submit_for_approval", actor="p1")
    clock.set(at(2026, 8, 4, 10, 0))
    e.fire(done, "approve_at_station", actor="l1")
    clock.set(at(2026, 8, 4, 16, 0))
    e.fire(done, "complete", actor="p1")
    # September: one reported late.
    clock.set(at(2026, 9, 1, 9, 0))
    slow = e.open("hukou_transfer", actor="p1", data={"applicant": "周二"}).id
    clock.set(at(2026, 9, 4, 9, 0))
    e.fire(slow, "submit_for_approval", actor="p1")
    clock.set(at(2026, 9, 4, 11, 0))
    e.fire(slow, "approve_at_station", actor="l1")
    clock.set(at(2026, 9, 4, 15, 0))
    e.fire(slow, "complete", actor="p1")
    # The overdue one: verification handed over on 29 September, paused for an inter-county inquiry (函调).
    clock.set(at(2026, 9, 29, 9, 0))
    overdue = e.open("hukou_transfer", actor="p1", data={"applicant": "李四", "事由": "夫妻投靠"}).id
    clock.set(at(2026, 9, 29, 10, 0))
    e.fire(overdue, "hand_over_verification", actor="p1", data={"slip_no": "JB-2026-0917"})
    clock.set(at(2026, 10, 9, 9, 0))
    e.pause(overdue, "verification", reason="函调", actor="p2")
    clock.set(at(2026, 10, 12, 9, 0))
    e.resume(overdue, "verification", actor="p2")
    # Brigade: a detention whose 24-hour clock is running.
    clock.set(at(2026, 10, 15, 8, 0))
    e.open("criminal_detention", actor="i1", data={"suspect": "某甲"})
    clock.set(at(2026, 10, 15, 14, 0))
    tokens = {p: create_token(engine.store, p) for p in ("l1", "p2")}
    return engine, tokens, overdue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright; never `playwright install`)")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    import uvicorn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from caseflow.web import create_app

    engine, tokens, overdue = build_demo(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'demo.db'}")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine=engine), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield Demo(f"http://127.0.0.1:{port}", tokens, overdue, engine)
    server.should_exit = True
    thread.join(timeout=10)
    engine.store.dispose()


@pytest.fixture(scope="module")
def browser(demo: Demo) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:  # the browser binary exists but cannot start here
            _unavailable(f"Chromium did not start: {exc}")
        yield chromium
        chromium.close()


def login(browser: Any, demo: Demo, who: str) -> Any:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{demo.url}/")
    assert "/login" in page.url, "an anonymous visitor is sent to the login page"
    page.fill("#token", demo.tokens[who])
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def test_leader_finds_the_overdue_case_and_opens_its_timeline(browser: Any, demo: Demo) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = login(browser, demo, "l1")
    assert page.url.endswith("/board"), page.url
    assert page.locator("h1").first.inner_text().startswith("领导看板")
    units = page.locator(".unit h2").all_inner_texts()
    assert units == ["刑侦大队", "城关派出所"], units
    red = page.locator(".unit", has_text="城关派出所").locator(".count.red b").inner_text()
    assert red == "1"
    row = page.locator("#overdue tbody tr", has_text="社区民警调查核实")
    assert row.count() == 1
    # 3 working days from 29 September: 30 Sep, 8 Oct, (9–11 Oct 函调 excluded) 12 Oct; late on 13, 14, 15 Oct.
    assert row.locator("td.late").inner_text() == "3 个工作日"
    assert page.locator(".chart svg rect.bar-good").count() >= 1, "August was on time"
    page.screenshot(path=str(ARTIFACTS / "board.png"))

    row.locator("a").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/cases/{demo.overdue}")
    timeline = page.locator("svg#timeline")
    assert timeline.is_visible()
    assert timeline.locator("rect.paused").count() == 1, "the 函调 pause is shaded"
    assert timeline.locator("rect.late").count() >= 1 and timeline.locator("line.due").count() >= 1
    assert page.locator("#events tbody tr").count() == 4
    box = timeline.bounding_box()
    assert box is not None and box["width"] <= VIEWPORT["width"], "the timeline fits the screen's width"
    page.screenshot(path=str(ARTIFACTS / "case.png"))
    page.context.close()


def test_community_police_returns_the_verification_from_the_case_page(browser: Any, demo: Demo) -> None:
    page = login(browser, demo, "p2")
    assert page.url.endswith("/queue"), "a clerk lands on their queue"
    page.goto(f"{demo.url}/cases/{demo.overdue}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('送回调查核实材料')")
    page.wait_for_load_state("networkidle")
    assert "已办理" in page.locator(".flash.ok").inner_text()
    assert demo.engine.get(demo.overdue).state == "reporting"
    page.context.close()
