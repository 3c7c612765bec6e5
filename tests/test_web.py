"""The web console, server-rendered: login by token (HttpOnly cookie), leader board, clerk's queue, case page
with its SVG timeline and the forms for what the person may do — on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.store import Store
from caseflow.tokens import create_token, csrf_token, revoke
from storefixtures import db_url  # noqa: F401 - fixture

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

    from caseflow.web import COOKIE_NAME, create_app

T0 = datetime(2026, 9, 30, 9, 0, tzinfo=ZONE)


class Console:
    """Two stations; an overdue hukou case in 城关派出所 and a fresh one in 东关派出所."""

    def __init__(self, url: str) -> None:
        self.clock = FixedClock(T0)
        self.store = Store(url)
        e = self.engine = Engine(self.store, clock=self.clock)
        e.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader"])
        e.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1")
        e.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], leader="l1", substitute="p2")
        e.add_person("x1", name="陈户籍", unit="东关派出所", roles=["household_police"])
        self.tokens = {p: create_token(self.store, p) for p in ("l1", "p1", "p2", "x1")}
        # A file that needs verification: its same-day 交办单 step is what runs late (issue 8).
        self.late = e.open("hukou_transfer", actor="p1", data={"applicant": "李四", "needs_verification": "true"}).id
        self.clock.set(datetime(2026, 10, 12, 10, 0, tzinfo=ZONE))
        self.theirs = e.open("hukou_transfer", actor="x1", data={"applicant": "王五"}).id
        self.client = TestClient(create_app(engine=e), follow_redirects=False)

    def login(self, who: str) -> None:
        r = self.client.post("/login", data={"token": self.tokens[who], "next": "/"})
        assert r.status_code == 303, r.text

    def csrf(self, who: str) -> str:
        return csrf_token(self.tokens[who])


@pytest.fixture
def console(db_url: str) -> Iterator[Console]:  # noqa: F811
    c = Console(db_url)
    yield c
    c.client.close()
    c.store.dispose()


def test_pages_need_a_login(console: Console) -> None:
    for path in ("/", "/board", "/queue", f"/cases/{console.late}"):
        r = console.client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    page = console.client.get("/login")
    assert page.status_code == 200 and "访问令牌" in page.text and 'type="password"' in page.text


def test_login_sets_an_httponly_strict_cookie_and_refuses_bad_tokens(console: Console) -> None:
    bad = console.client.post("/login", data={"token": "nope"})
    assert bad.status_code == 401 and "令牌无效" in bad.text and COOKIE_NAME not in bad.headers.get("set-cookie", "")
    r = console.client.post("/login", data={"token": console.tokens["l1"], "next": "/board"})
    assert r.status_code == 303 and r.headers["location"] == "/board"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert console.client.get("/").headers["location"] == "/board"


def test_login_never_redirects_off_site(console: Console) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "\\\\evil"):
        r = console.client.post("/login", data={"token": console.tokens["p1"], "next": target})
        assert r.headers["location"] == "/", target


def test_a_clerk_lands_on_the_queue_and_logout_ends_the_session(console: Console) -> None:
    console.login("p1")
    assert console.client.get("/").headers["location"] == "/queue"
    console.client.post("/logout")
    console.client.cookies.clear()
    assert console.client.get("/queue").status_code == 303


def test_logout_revokes_the_token_the_console_was_opened_with(console: Console) -> None:
    console.login("p2")
    stolen = dict(console.client.cookies)
    r = console.client.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    # a copy of the cookie taken before logging out opens nothing afterwards
    console.client.cookies.update(stolen)
    assert console.client.get("/queue").status_code == 303
    again = console.client.post("/login", data={"token": console.tokens["p2"]})
    assert again.status_code == 401
    api = console.client.get("/api/v1/queue", headers={"Authorization": f"Bearer {console.tokens['p2']}"})
    assert api.status_code == 401


def test_a_revoked_token_ends_the_console_session(console: Console) -> None:
    console.login("p1")
    assert console.client.get("/queue").status_code == 200
    revoke(console.store, console.tokens["p1"])
    assert console.client.get("/queue").status_code == 303


def test_leader_board_shows_counts_overdue_list_and_chart(console: Console) -> None:
    console.login("l1")
    r = console.client.get("/board")
    assert r.status_code == 200
    html = r.text
    assert "城关派出所" in html and "东关派出所" not in html, "only the units the leader sees"
    assert re.search(r'<span class="count red"[^>]*><b>1</b>', html)
    table = html[html.index('id="overdue"'):]
    assert f'href="/cases/{console.late}"' in table and "张户籍" in table and "个工作日" in table
    assert "当日填写交办单交社区民警" in table
    assert "按月按时办结率" in html and "<svg" in html and 'class="bar-' in html


def test_queue_is_most_urgent_first_with_time_left(console: Console) -> None:
    console.engine.open("hukou_transfer", actor="p1")
    console.login("p1")
    html = console.client.get("/queue").text
    rows = re.findall(r'<tr class="lv-(\w+)">', html)
    assert rows[0] == "red" and "逾期" in html and "还剩" in html
    assert html.index(f"#{console.late}<") < html.rindex("还剩")
    assert "新建案件" in html and 'value="hukou_transfer"' in html


def test_case_page_has_the_timeline_and_the_persons_triggers(console: Console) -> None:
    console.login("p1")
    r = console.client.get(f"/cases/{console.late}")
    assert r.status_code == 200
    html = r.text
    assert 'id="timeline"' in html and 'class="due"' in html and 'class="late"' in html
    assert 'class="rest"' in html, "rest days are shaded (National Day)"
    assert "填写受理户口交办单并交办核查" in html and 'name="data_slip_no"' in html
    assert "李四" in html and "办理记录" in html


def test_another_units_case_page_is_not_found(console: Console) -> None:
    console.login("p1")
    r = console.client.get(f"/cases/{console.theirs}")
    assert r.status_code == 404 and "未找到" in r.text and "王五" not in r.text
    r = console.client.post(f"/cases/{console.theirs}/close", data={"csrf": console.csrf("p1"), "reason": "x"})
    assert r.status_code == 404
    assert console.engine.get(console.theirs).closed_at is None


def test_firing_from_the_form_needs_the_csrf_value(console: Console) -> None:
    console.login("p1")
    form = {"trigger": "hand_over_verification", "data_slip_no": "JB-7", "version": "1", "label": "交办"}
    r = console.client.post(f"/cases/{console.late}/fire", data=form)
    assert r.status_code == 403 and console.engine.get(console.late).state == "accepted"
    r = console.client.post(f"/cases/{console.late}/fire", data={**form, "csrf": console.csrf("p1")})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/cases/{console.late}?msg=")
    assert console.engine.get(console.late).state == "verifying"
    page = console.client.get(r.headers["location"])
    assert "已办理" in page.text


def test_a_stale_form_is_refused_with_a_clear_message(console: Console) -> None:
    console.login("p1")
    console.engine.fire(console.late, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    r = console.client.post(f"/cases/{console.late}/fire", data={
        "trigger": "reject", "data_reason": "x", "version": "1", "csrf": console.csrf("p1")})
    assert r.status_code == 412 and "已被他人修改" in r.text
    assert console.engine.get(console.late).state == "verifying"


def test_pause_and_resume_from_the_console_shade_the_paused_span(console: Console) -> None:
    console.engine.fire(console.late, "hand_over_verification", actor="p1", data={"slip_no": "1"})
    console.login("p2")
    csrf = console.csrf("p2")
    r = console.client.post(f"/cases/{console.late}/pause", data={"timer_reason": "verification|函调", "csrf": csrf})
    assert r.status_code == 303, r.text
    console.clock.advance(timedelta(days=1))
    html = console.client.get(f"/cases/{console.late}").text
    assert 'class="paused"' in html and "恢复计时" in html
    r = console.client.post(f"/cases/{console.late}/resume", data={"timer": "verification", "csrf": csrf})
    assert r.status_code == 303
    assert next(t for t in console.engine.get(console.late).timers if t.name == "verification").status == "running"


def test_engine_refusals_show_on_the_page(console: Console) -> None:
    console.login("p2")
    r = console.client.post(f"/cases/{console.late}/fire", data={
        "trigger": "hand_over_verification", "data_slip_no": "1", "csrf": console.csrf("p2")})
    assert r.status_code == 403 and "household_police" in r.text and 'class="flash err"' in r.text


def test_open_a_case_from_the_queue(console: Console) -> None:
    console.login("p1")
    r = console.client.post("/cases", data={"workflow": "hukou_transfer", "data": "applicant=赵六\n电话=123",
                                            "csrf": console.csrf("p1")})
    assert r.status_code == 303
    cid = int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])
    assert console.engine.get(cid).data == {"applicant": "赵六", "电话": "123"}
    # Clerks write the labels they read; the record keeps the workflow's keys.
    r = console.client.post("/cases", data={"workflow": "hukou_transfer", "data": "申请人=钱七\n联系电话=13800000000",
                                            "csrf": console.csrf("p1")})
    cid = int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])
    assert console.engine.get(cid).data == {"applicant": "钱七", "phone": "13800000000"}
    bad = console.client.post("/cases", data={"workflow": "criminal_detention", "data": "", "csrf": console.csrf("p1")})
    assert bad.status_code == 403 and 'class="flash err"' in bad.text


def test_the_case_page_speaks_labels_and_masks_for_all_but_the_responsible_clerk(console: Console) -> None:
    console.engine.fire(console.late, "hand_over_verification", actor="p1", data={"slip_no": "JB-1"})
    cid = console.engine.open("hukou_transfer", actor="p1", data={"applicant": "李四", "phone": "13812345678"}).id
    console.login("p1")  # the responsible clerk sees it all
    mine = console.client.get(f"/cases/{cid}").text
    assert "<dt>申请人</dt><dd>李四</dd>" in mine and "13812345678" in mine
    console.login("l1")  # the leader reads it masked
    theirs = console.client.get(f"/cases/{cid}").text
    assert "<dt>申请人</dt><dd>李*</dd>" in theirs and "*******5678" in theirs and "13812345678" not in theirs
    history = console.client.get(f"/cases/{console.late}").text
    assert "填写受理户口交办单并交办核查（受理户口交办单编号 JB-1）" in history
    for key in ("applicant", "slip_no", "hand_over_verification", "stopped", "workflow_version", '"status"'):
        assert key not in history.split("<table id=\"events\">")[1], key


def test_static_files_are_served(console: Console) -> None:
    css = console.client.get("/static/style.css")
    assert css.status_code == 200 and "--red" in css.text
    assert console.client.get("/static/app.js").status_code == 200


def test_pages_refuse_framing_and_foreign_scripts(console: Console) -> None:
    r = console.client.get("/login")
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_hand_over_and_close_from_the_more_actions_forms(console: Console) -> None:
    console.login("p1")
    csrf = console.csrf("p1")
    html = console.client.get(f"/cases/{console.late}").text
    assert "更多操作" in html and f'action="/cases/{console.late}/hand-over"' in html
    r = console.client.post(f"/cases/{console.late}/hand-over", data={"to": "p2", "slip": "JB-8", "csrf": csrf})
    assert r.status_code == 303 and console.engine.get(console.late).responsible == "p2"
    console.login("l1")
    r = console.client.post(f"/cases/{console.late}/close", data={"reason": "申请人撤回", "csrf": console.csrf("l1")})
    assert r.status_code == 303 and console.engine.get(console.late).closed_at is not None
    assert "案件已办结" in console.client.get(f"/cases/{console.late}").text
