"""The public 公示 pages in a real browser, without a token: procedure list, a procedure, the progress query.

Same set-up as test_browser.py (Playwright on Debian's Chromium, uvicorn on 127.0.0.1), and it skips the
same way without them. Screenshot: ``test-artifacts/public.png``.
"""

from __future__ import annotations

from typing import Any

from caseflow.desk import Desk
from test_browser import ARTIFACTS, VIEWPORT, Demo, browser, demo  # noqa: F401 - fixtures

ALICE = "110101199003071234"


def test_anyone_reads_the_procedure_and_follows_their_matter_without_logging_in(browser: Any,  # noqa: F811
                                                                                 demo: Demo) -> None:  # noqa: F811
    desk = Desk(demo.engine)
    visit = desk.visit("hukou_transfer", applicant_id=ALICE, actor="p1", brought=["id_card"])
    code = desk.issue_notice(visit.id, actor="p1").query_code
    assert code is not None

    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")  # no cookie, no token
    page = context.new_page()
    page.goto(f"{demo.url}/public")
    assert "/login" not in page.url and page.locator("h1").inner_text().startswith("办事指南")
    page.click("a:has-text('户口迁移(派出所户籍窗口)')")
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/public/procedures/hukou_transfer")
    rows = page.locator("table").nth(0).locator("tbody tr")
    assert rows.count() == 5 and "结婚证" in rows.nth(3).inner_text() and "投靠配偶迁入的" in rows.nth(3).inner_text()
    limits = page.locator("table").nth(1).locator("tbody tr")
    assert any("所领导审核审批" in t and "2个工作日" in t and "承诺时限" in t for t in limits.all_inner_texts())
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "public.png"))

    page.goto(f"{demo.url}/public/progress")
    page.fill("input[name=code]", code.lower())
    page.click("button:has-text('查询')")
    page.wait_for_load_state("networkidle")
    result = page.locator("#progress").inner_text()
    assert "已一次性告知" in result and "**************1234" in result and ALICE not in page.content()
    assert "居民户口簿" in result and "户口迁移证或准予迁入证明" in result

    page.fill("input[name=code]", "ZZZZ-ZZZZ-ZZZZ")
    page.click("button:has-text('查询')")
    page.wait_for_load_state("networkidle")
    assert "没有查到" in page.locator(".flash.err").inner_text() and page.locator("#progress").count() == 0
    context.close()


def test_anyone_books_a_slot_from_the_procedure_page_and_finds_it_by_its_code(browser: Any,  # noqa: F811
                                                                              demo: Demo) -> None:  # noqa: F811
    # The served clock reads Thursday 2026-10-15 14:00.
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")  # no cookie, no token
    page = context.new_page()
    page.goto(f"{demo.url}/public/procedures/hukou_transfer")
    page.click("a:has-text('预约办理')")
    page.wait_for_load_state("networkidle")
    assert "/login" not in page.url and page.url.endswith("/public/procedures/hukou_transfer/booking")
    assert page.locator("select[name=unit]").input_value() == "城关派出所"
    page.click("a:has-text('2026-10-16 周五')")
    page.wait_for_load_state("networkidle")
    slots = page.locator("#slots tbody tr")
    assert slots.count() == 10 and "09:00" in slots.nth(0).inner_text() and "余 2" in slots.nth(0).inner_text()

    # A wrong ID number: a Chinese sentence on the page, the chosen slot kept.
    page.check("input[value='2026-10-16T09:00:00+08:00']")
    page.fill("input[name=applicant_id]", "123")
    page.click("button:has-text('确认预约')")
    page.wait_for_load_state("networkidle")
    assert "证件号码应为6至30位" in page.locator(".flash.err").inner_text()
    assert page.locator("input[value='2026-10-16T09:00:00+08:00']").is_checked()

    page.fill("input[name=applicant_id]", ALICE)
    page.click("button:has-text('确认预约')")
    page.wait_for_load_state("networkidle")
    booked = page.locator("#booked").inner_text()
    assert "预约成功" in booked and "2026-10-16 周五 09:00" in booked and "**************1234" in booked
    assert ALICE not in page.content()
    code = page.locator("#booked .code").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "public-booked.png"))

    page.click("a:has-text('办理进度查询')")
    page.wait_for_load_state("networkidle")
    page.fill("input[name=code]", code)
    page.click("button:has-text('查询')")
    page.wait_for_load_state("networkidle")
    result = page.locator("#progress").inner_text()
    assert "已预约" in result and "城关派出所" in result and "2026-10-16 周五 09:00" in result
    context.close()
