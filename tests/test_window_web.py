"""The window over HTTP: the desk and ratings for staff, the printable 告知单, and the public pages without login.

The public progress query is fuzzed for leaks: another applicant's code shows only their matter, and every
other code — malformed, random, well-formed but unknown — gets the very same 404 body, never a 5xx.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.ratelimit import RateLimiter
from caseflow.ratings import Ratings
from caseflow.store import Store
from caseflow.tokens import create_token
from storefixtures import db_url  # noqa: F401 - fixture

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

    from caseflow.web import create_app

ALICE = "110101199003071234"
BOB = "32010219850512432X"


class Window:
    def __init__(self, url: str) -> None:
        self.clock = FixedClock(datetime(2026, 11, 2, 9, 0, tzinfo=ZONE))
        self.store = Store(url)
        e = self.engine = Engine(self.store, clock=self.clock)
        e.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader"])
        e.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police", "clerk"], leader="l1")
        e.add_person("x1", name="陈户籍", unit="东关派出所", roles=["household_police"])
        self.tokens = {pid: create_token(self.store, pid) for pid in ("l1", "p1", "x1")}
        self.app = create_app(engine=e)
        self.app.state.rate_clock = self.clock  # the public rate limit's windows follow the test's clock
        self.client = TestClient(self.app)

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, path: str, who: str = "p1", **body: Any) -> Any:
        return self.client.post(path, json=body, headers=self.h(who))


@pytest.fixture
def window(db_url: str) -> Iterator[Window]:  # noqa: F811
    w = Window(db_url)
    yield w
    w.client.close()
    w.store.dispose()


def test_desk_notice_acceptance_and_public_progress_over_http(window: Window) -> None:
    r = window.post("/api/v1/desk/visits", workflow="hukou_transfer", applicant_id=ALICE, brought=["id_card"])
    assert r.status_code == 201, r.text
    visit = r.json()
    assert visit["applicant"] == "**************1234" and ALICE not in r.text
    assert [m["key"] for m in visit["missing"]] == ["household_register", "transfer_permit"]
    assert window.post(f"/api/v1/desk/visits/{visit['id']}", "x1").status_code in (404, 405)
    assert window.client.get(f"/api/v1/desk/visits/{visit['id']}", headers=window.h("x1")).status_code == 404

    r = window.post(f"/api/v1/desk/visits/{visit['id']}/notice")
    assert r.status_code == 201, r.text
    notice = r.json()
    assert "1. 居民户口簿" in notice["text"] and "2. 户口迁移证或准予迁入证明" in notice["text"]
    window.client.cookies.set("caseflow_token", window.tokens["p1"])
    page = window.client.get(notice["html"])
    assert page.status_code == 200 and "一次性告知单" in page.text and "户口登记条例 第十三条" in page.text
    window.client.cookies.clear()

    window.clock.set(datetime(2026, 11, 3, 9, 0, tzinfo=ZONE))
    r = window.post("/api/v1/desk/visits", workflow="hukou_transfer", applicant_id=ALICE,
                    brought=["id_card", "household_register", "transfer_permit"])
    r = window.post(f"/api/v1/desk/visits/{r.json()['id']}/accept", data={"applicant": "王五"})
    assert r.status_code == 201, r.text
    code = r.json()["query_code"]

    # No token: the public answers.
    seen = window.client.post("/api/v1/public/progress", json={"code": code})
    assert seen.status_code == 200 and seen.json()["state"] == "已受理" and "王五" not in seen.text
    html = window.client.post("/public/progress", data={"code": notice["query_code"]})
    assert html.status_code == 200 and "已受理" in html.text and "**************1234" in html.text
    proc = window.client.get("/api/v1/public/procedures/hukou_transfer").json()
    assert proc["type"] == "承诺件" and len(proc["materials"]) == 5
    assert "居民户口簿" in window.client.get("/public/procedures/hukou_transfer").text
    assert window.client.get("/public/procedures/no_such").status_code == 404


def test_on_the_spot_is_one_call_over_http_and_an_incomplete_file_writes_nothing(window: Window) -> None:
    r = window.post("/api/v1/desk/on-the-spot", workflow="hukou_transfer", applicant_id=BOB,
                    brought=["id_card", "household_register", "transfer_permit"], data={"applicant": "王五"})
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["on_the_spot"] and receipt["visit"]["outcome"] == "on_the_spot" and receipt["case"]["closed_at"]
    seen = window.client.post("/api/v1/public/progress", json={"code": receipt["query_code"]}).json()
    assert seen["status_label"] == "已办结" and [s["step"] for s in seen["steps"]] == ["受理", "办结"]
    r = window.post("/api/v1/desk/on-the-spot", workflow="hukou_transfer", applicant_id=ALICE, brought=["id_card"])
    assert r.status_code == 422 and "cannot be handled on the spot" in r.json()["detail"], r.text
    assert window.client.get("/api/v1/desk/visits/2", headers=window.h("p1")).status_code == 404
    assert window.post("/api/v1/desk/on-the-spot", "x1", workflow="hukou_transfer", applicant_id=ALICE,
                       brought=["id_card", "household_register", "transfer_permit"]).status_code == 201


def test_ratings_and_follow_up_over_http(window: Window) -> None:
    r = window.post("/api/v1/desk/visits", workflow="exit_entry_permit", applicant_id=BOB, brought=["id_card", "photo"])
    r = window.post(f"/api/v1/desk/visits/{r.json()['id']}/on-the-spot")
    assert r.status_code == 201, r.text
    code = r.json()["query_code"]
    r = window.client.post("/api/v1/public/ratings", json={"code": code, "level": "非常不满意", "comment": "态度差"})
    assert r.status_code == 201 and r.json()["label"] == "非常不满意"
    again = window.client.post("/api/v1/public/ratings", json={"code": code, "level": 5})
    assert again.status_code == 422 and "一次一评" in again.json()["detail"]
    rating = window.client.get("/api/v1/window/stats?month=2026-11", headers=window.h("l1")).json()
    assert rating[-1]["bad"] == 1 and rating[-1]["on_the_spot"] == 1
    (only,) = Ratings(window.engine).list()
    r = window.post(f"/api/v1/ratings/{only.id}/settle", "l1", outcome="解释说明", note="已回访")
    assert r.status_code == 200 and r.json()["state"] == "explained", r.text
    assert window.post(f"/api/v1/ratings/{only.id}/settle", "x1", outcome="整改", note="x").status_code == 404
    score = window.client.get("/api/v1/score?month=2026-11", headers=window.h("l1")).json()
    assert {p["key"] for p in score["people"]} == {"p1", "l1"}
    window.client.cookies.set("caseflow_token", window.tokens["l1"])
    board = window.client.get("/board")
    assert board.status_code == 200 and "窗口服务与考评" in board.text
    # 城关派出所 this month: one visit handled on the spot (100% 一次办结), one 差评 (−2), and the follow-up
    # settled in time (+1) → 99.
    flat = re.sub(r">\s+<", "><", board.text)
    assert "<td>城关派出所</td><td>1</td><td>0</td><td>1</td><td>0</td><td>100%</td>" in flat
    assert "<b>99</b>" in board.text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.one_of(st.text(max_size=30), st.from_regex(r"[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}",
                                                             fullmatch=True), st.integers().map(str)))
def test_every_wrong_code_gets_the_same_answer(code: str, public: tuple[Window, str, dict[str, Any]]) -> None:
    window, live, expected = public
    if code.strip().upper().replace("-", "") == live.replace("-", ""):
        return
    window.app.state.public_limiter = RateLimiter(10**9)  # the limiter is tested below; here every code is tried
    r = window.client.post("/api/v1/public/progress", json={"code": code})
    assert r.status_code == 404 and r.json() == expected


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> tuple[Window, str, dict[str, Any]]:
    window = Window(f"sqlite:///{tmp_path_factory.mktemp('public') / 'caseflow.db'}")
    r = window.post("/api/v1/desk/visits", workflow="hukou_transfer", applicant_id=ALICE, brought=["id_card"])
    live = window.post(f"/api/v1/desk/visits/{r.json()['id']}/notice").json()["query_code"]
    expected = window.client.post("/api/v1/public/progress", json={"code": "ZZZZ-ZZZZ-ZZZZ"}).json()
    return window, live, expected


def test_guessing_codes_is_rate_limited(public: tuple[Window, str, dict[str, Any]]) -> None:
    window, _live, _expected = public
    window.app.state.public_limiter = None  # the shared limiter of a served app
    window.clock.set(datetime(2026, 11, 2, 9, 1, tzinfo=ZONE))  # a fresh minute
    answers = [window.client.post("/api/v1/public/progress", json={"code": f"AAAA-AAAA-AAA{i}"})
               for i in range(2, 9)] + [window.client.post("/api/v1/public/progress",
                                                           json={"code": "x"}) for _ in range(5)]
    assert [a.status_code for a in answers] == [404] * 10 + [429, 429]
    assert answers[-1].headers["Retry-After"] == "60" and "稍后再试" in answers[-1].json()["detail"]


def test_the_rate_limit_is_shared_by_every_process_on_one_database(db_url: str) -> None:  # noqa: F811
    # Two app instances (as `caseflow serve --workers 2` runs) on one database: an address gets 10 tries in
    # all, not 10 from each.
    first = Window(db_url)
    other_store = Store(db_url)
    second_app = create_app(engine=Engine(other_store, clock=first.clock))
    second_app.state.rate_clock = first.clock
    second = TestClient(second_app)
    clients = [first.client, second]
    tries = [clients[i % 2].post("/api/v1/public/progress", json={"code": f"AAAA-AAAA-AA{i:02d}"})
             for i in range(12)]
    assert [t.status_code for t in tries] == [404] * 10 + [429, 429]
    first.clock.set(datetime(2026, 11, 2, 9, 0, 45, tzinfo=ZONE))
    late = second.post("/api/v1/public/ratings", json={"code": "AAAA-AAAA-AAAA", "level": 1})
    assert late.status_code == 429 and late.headers["Retry-After"] == "15"  # ratings share the codes' count
    # Booking has a count of its own; a new minute starts a new count, and old minutes are pruned.
    assert second.get("/api/v1/public/slots", params={"workflow": "hukou_transfer", "unit": "城关派出所",
                                                      "day": "2026-11-03"}).status_code == 200
    assert first.client.post("/api/v1/public/bookings", json={
        "workflow": "hukou_transfer", "unit": "城关派出所", "at": "2026-11-03T09:00:00+08:00",
        "applicant_id": ALICE}).status_code == 201
    for minute in (1, 2, 3):
        first.clock.set(datetime(2026, 11, 2, 9, minute, tzinfo=ZONE))
        assert second.post("/api/v1/public/progress", json={"code": "AAAA-AAAA-AAAA"}).status_code == 404
    with first.store.session() as s:
        windows = sorted(s.execute(sa.text("SELECT window_start, hits FROM caseflow_rate_hits")).all())
    start = int(datetime(2026, 11, 2, 9, 2, tzinfo=ZONE).timestamp())
    assert [tuple(w) for w in windows] == [(start, 1), (start + 60, 1)]  # 09:00's rows (codes, booking) are gone
    second.close()
    other_store.dispose()
    first.client.close()
    first.store.dispose()


def test_a_public_booking_reaches_the_clerks_queue_at_its_instant(window: Window) -> None:
    slots = window.client.get("/api/v1/public/slots", params={"workflow": "hukou_transfer", "unit": "城关派出所",
                                                              "day": "2026-11-03"})
    assert slots.status_code == 200 and slots.json()[0]["at"] == "2026-11-03T09:00:00+08:00"
    r = window.client.post("/api/v1/public/bookings", json={"workflow": "hukou_transfer", "unit": "城关派出所",
                                                             "at": "2026-11-03T09:00:00+08:00", "applicant_id": ALICE})
    assert r.status_code == 201 and r.json()["applicant"] == "**************1234", r.text
    assert window.client.post("/api/v1/public/bookings", json={
        "workflow": "hukou_transfer", "unit": "城关派出所", "at": "2026-11-03T09:10:00+08:00",
        "applicant_id": ALICE}).status_code == 422
    window.client.cookies.set("caseflow_token", window.tokens["p1"])
    assert "预约" not in window.client.get("/queue").text.split("<main>")[1].split("</h1>")[1][:40]
    window.clock.set(datetime(2026, 11, 3, 8, 40, tzinfo=ZONE))
    queue = window.client.get("/queue").text
    assert 'id="bookings"' in queue and "**************1234" in queue and "即将到时" in queue
    due = window.client.get("/api/v1/desk/bookings/due", headers=window.h("p1")).json()
    assert [b["id"] for b in due] == [r.json()["id"]]
    window.clock.set(datetime(2026, 11, 3, 9, 40, tzinfo=ZONE))
    out = window.post(f"/api/v1/desk/bookings/{r.json()['id']}/outcome", outcome="no_show")
    assert out.status_code == 200 and out.json()["status"] == "no_show"
    assert window.client.get("/api/v1/desk/bookings/due", headers=window.h("x1")).status_code == 200


# ------------------------------------------------------------------------------------------- the booking page

BOOKING = "/public/procedures/hukou_transfer/booking"
CODE_RE = re.compile(r'class="code">([2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4})<')


def _flash(html: str) -> list[str]:
    return re.findall(r'class="flash err"[^>]*>([^<]+)<', html)


def test_the_booking_page_books_a_free_slot_without_login(window: Window) -> None:
    procedure = window.client.get("/public/procedures/hukou_transfer")
    assert f'href="{BOOKING}"' in procedure.text and "预约办理" in procedure.text
    page = window.client.get(BOOKING, params={"unit": "城关派出所"})
    assert page.status_code == 200 and "/login" not in str(page.url)
    assert '<option value="城关派出所" selected>' in page.text and '<option value="东关派出所"' in page.text
    assert "2026-11-02 周一" in page.text and "2026-11-07" not in page.text  # Saturday: no 延时服务 opened
    # Today's slots from now on (09:00 has begun), two places each.
    assert 'value="2026-11-02T09:00:00+08:00"' not in page.text and 'value="2026-11-02T09:30:00+08:00"' in page.text

    form = {"unit": "城关派出所", "day": "2026-11-03", "at": "2026-11-03T09:00:00+08:00", "applicant_id": ALICE}
    booked = window.client.post(BOOKING, data=form)
    assert booked.status_code == 201 and "预约成功" in booked.text and "2026-11-03 周二 09:00" in booked.text
    assert "**************1234" in booked.text and ALICE not in booked.text and "居民户口簿" in booked.text
    code = CODE_RE.search(booked.text)
    assert code is not None
    seen = window.client.post("/api/v1/public/progress", json={"code": code.group(1)}).json()
    assert seen["status_label"] == "已预约" and seen["booking"]["unit"] == "城关派出所" and ALICE not in str(seen)
    # The clerk sees it in the queue at its time, as a booking made through the API.
    window.clock.set(datetime(2026, 11, 3, 8, 45, tzinfo=ZONE))
    due = window.client.get("/api/v1/desk/bookings/due", headers=window.h("p1")).json()
    assert [b["applicant"] for b in due] == ["**************1234"]

    # Refusals are Chinese sentences on the page, with the form kept.
    assert window.client.post(BOOKING, data={**form, "applicant_id": BOB}).status_code == 201
    full = window.client.post(BOOKING, data={**form, "applicant_id": "440301200101010011"})
    assert full.status_code == 422 and _flash(full.text) == ["11月03日 09:00 的时段已约满,请选择其他时段"]
    assert 'id="slots"' in full.text
    saturday = window.client.post(BOOKING, data={**form, "day": "2026-11-07", "at": "2026-11-07T09:30:00+08:00"})
    assert saturday.status_code == 422 and "不是可预约的时段" in _flash(saturday.text)[0]
    assert "休息日,单位未开放延时服务" in saturday.text
    bad_id = window.client.post(BOOKING, data={**form, "at": "2026-11-03T10:00:00+08:00", "applicant_id": "12"})
    assert bad_id.status_code == 422 and _flash(bad_id.text) == ["证件号码应为6至30位字母或数字(身份证号为18位),请核对"]
    no_slot = window.client.post(BOOKING, data={**form, "at": ""})
    assert no_slot.status_code == 422 and _flash(no_slot.text) == ["请先选择一个预约时段"]
    past = window.client.post(BOOKING, data={**form, "at": "2026-11-02T09:30:00+08:00"})
    assert past.status_code == 422 and "时段已过" in _flash(past.text)[0]
    assert window.client.get("/public/procedures/no_such/booking").status_code == 404


def test_the_booking_page_is_rate_limited_like_the_booking_api(window: Window) -> None:
    form = {"unit": "城关派出所", "day": "2026-11-03", "at": "2026-11-03T09:00:00+08:00", "applicant_id": "12"}
    answers = [window.client.post(BOOKING, data=form) for _ in range(6)]
    answers += [window.client.post("/api/v1/public/bookings", json={
        "workflow": "hukou_transfer", "unit": "城关派出所", "at": "2026-11-03T09:00:00+08:00",
        "applicant_id": ALICE if i == 0 else BOB}) for i in range(4)]
    answers.append(window.client.post(BOOKING, data=form))
    assert [a.status_code for a in answers] == [422] * 6 + [201, 201, 422, 422, 429]
    assert answers[-1].headers["Retry-After"] == "60"
    assert _flash(answers[-1].text) == ["预约操作过于频繁,请 60 秒后再试"]
    # Progress queries keep their own count.
    assert window.client.post("/api/v1/public/progress", json={"code": "ZZZZ-ZZZZ-ZZZZ"}).status_code == 404


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(st.sampled_from(["unit", "day", "at", "applicant_id", "x"]),
                            st.one_of(st.text(max_size=40), st.sampled_from([
                                "城关派出所", "2026-11-03", "2026-11-03T09:00:00+08:00", "2026-11-03T09:00",
                                "9999-12-31T23:59:59+14:00", "0001-01-01", ALICE]))))
def test_any_booking_form_gets_a_page_never_a_5xx(form: dict[str, str], public: tuple[Window, str, Any]) -> None:
    window = public[0]
    window.app.state.public_limiter = RateLimiter(10**9)
    r = window.client.post(BOOKING, data=form)
    assert r.status_code in (201, 422) and "<main>" in r.text
    if r.status_code == 422:
        assert re.search(r"[\u4e00-\u9fff]", _flash(r.text)[0])
    g = window.client.get(BOOKING, params={k: v for k, v in form.items() if k in ("unit", "day")})
    assert g.status_code == 200 and "<main>" in g.text


def test_the_site_secret_is_read_once_per_app_and_kept(
        window: Window, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Read per request it cost a file read and a TOML parse each time; kept, it cannot change under the
    # fingerprints already stored. Until one is configured, each request looks again.
    from caseflow.applicants import SECRET_ENV, write_secret

    monkeypatch.delenv(SECRET_ENV)
    r = window.post("/api/v1/desk/visits", workflow="hukou_transfer", applicant_id=ALICE, brought=["id_card"])
    assert r.status_code == 503 and "secret" in r.text
    secret = write_secret(tmp_path / "desk.key")
    monkeypatch.setenv(SECRET_ENV, str(secret))
    first = window.post("/api/v1/desk/visits", workflow="hukou_transfer", applicant_id=ALICE, brought=["id_card"])
    assert first.status_code == 201, first.text
    secret.unlink()  # read once: the app goes on with the secret it holds
    second = window.post("/api/v1/desk/visits", workflow="hukou_transfer", applicant_id=ALICE, brought=["id_card"])
    assert second.status_code == 201, second.text
    with window.store.engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT DISTINCT applicant_hash FROM caseflow_visits")).all()
    assert len(hashes) == 1  # the same applicant, under the same key both times
