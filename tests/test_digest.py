"""A leader's digest: scope, order, lateness, masking, formats, exactly-once sending and the e-mail."""

from __future__ import annotations

import email.header
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from caseflow.alerts import AlertRow
from caseflow.config import NotifyConfig
from caseflow.digest import build_digest, build_digests, render_digest
from caseflow.errors import PersonNotFoundError
from caseflow.narrate import Labels
from caseflow.scheduler import Scheduler
from caseflow.store import Store
from test_notify import smtp_server, text_of
from test_scheduler import (
    EAST,
    UNIT,
    WEST,
    Recorder,
    _ops_cli,
    add_case,
    add_timer,
    bj,
    fresh_store,
    outbox_of,
    rec_config,
)

AT = bj(2026, 11, 4, 8, 30)  # Wednesday
ID_NUMBER = "110101199003071234"
MOBILE = "13812345678"
HOURS = {"amount": 24, "unit": "hours"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store with people and workflow versions."""
    yield from fresh_store(tmp_path)


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1."""
    yield from smtp_server()


@pytest.fixture
def scene(store: Store) -> dict[str, int]:
    """Timers around 2026-11-04 08:30 in three units; wang leads 城关 and 东城 (chen), zhao leads 西城."""
    ids: dict[str, int] = {}
    ids["a"] = add_case(store, responsible="zhang", data={"title": f"户口迁入 身份证{ID_NUMBER} 电话{MOBILE}"})
    ids["ta"] = add_timer(store, ids["a"], name="社区民警核查", due_at=bj(2026, 10, 31), last_day=date(2026, 10, 30),
                          alert_level="escalated")
    ids["b"] = add_case(store, responsible="li", data={"title": "<script>alert(1)</script>"})
    add_timer(store, ids["b"], name="所领导审批", due_at=bj(2026, 11, 4), last_day=date(2026, 11, 3))
    ids["c"] = add_case(store, responsible="chen", unit=EAST, workflow="detention", state="拘留")
    add_timer(store, ids["c"], name="送看守所羁押", due_at=bj(2026, 11, 4, 2, 0), limit=HOURS)
    ids["d"] = add_case(store, responsible="sun", unit=WEST)
    add_timer(store, ids["d"], name="西城的", due_at=bj(2026, 11, 2))
    ids["e"] = add_case(store, responsible="zhang")
    add_timer(store, ids["e"], name="今日到期", due_at=bj(2026, 11, 5), last_day=date(2026, 11, 4))
    ids["f"] = add_case(store, responsible="chen", unit=EAST)
    add_timer(store, ids["f"], name="明日到期", due_at=bj(2026, 11, 6), last_day=date(2026, 11, 5))
    ids["g"] = add_case(store, responsible="zhang")
    add_timer(store, ids["g"], name="下周到期", due_at=bj(2026, 11, 11))
    add_timer(store, ids["g"], name="暂停中", due_at=bj(2026, 11, 1), status="paused")
    # Finished this month: one on time, one late (50 %).
    add_timer(store, ids["g"], name="按时", due_at=bj(2026, 11, 5), status="met", stopped_at=bj(2026, 11, 2, 10))
    add_timer(store, ids["g"], name="超时", due_at=bj(2026, 11, 2), status="breached", stopped_at=bj(2026, 11, 3, 10))
    with store.session(write=True) as s:
        s.add(AlertRow(timer_id=ids["ta"], case_id=ids["a"], level="escalated", raised_at=bj(2026, 11, 3, 10),
                       level_at=bj(2026, 11, 3), due_at=bj(2026, 10, 31), to_person="wang", for_person="wang",
                       unit=UNIT))
    return ids


def test_digest_content_scope_and_order(store: Store, scene: dict[str, int]) -> None:
    digest = build_digest(store, "wang", AT)
    assert digest.units == sorted([UNIT, EAST])
    assert WEST not in digest.units
    # Worst first (longest overdue): due 10-31 00:00 (3 working days late), due 11-04 00:00 (1 working day),
    # then the detention hour limit due 11-04 02:00 (6.5 hours).
    assert [(i.case_id, i.late_text) for i in digest.overdue] == [
        (scene["a"], "逾期 3 个工作日"), (scene["b"], "逾期 1 个工作日"), (scene["c"], "逾期 6.5 小时")]
    assert digest.overdue[0].responsible == "张警官" and digest.overdue[0].unit == UNIT
    assert digest.overdue[0].level == "escalated"
    assert [i.timer for i in digest.due_today] == ["今日到期"]
    assert [i.timer for i in digest.due_next] == ["明日到期"] and digest.next_workday == date(2026, 11, 5)
    assert [i.case_id for i in digest.escalations] == [scene["a"]]
    assert digest.month_stats is not None and digest.on_time_rate == 0.5
    assert digest.overdue[0].summary == f"户口迁入 身份证{'*' * 14}1234 电话{'*' * 7}5678"
    # zhao sees 西城 only.
    assert [i.case_id for i in build_digest(store, "zhao", AT).overdue] == [scene["d"]]
    with pytest.raises(PersonNotFoundError):
        build_digest(store, "nobody", AT)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_digest_renders_masked_in_every_format(store: Store, scene: dict[str, int], fmt: str) -> None:
    text = render_digest(build_digest(store, "wang", AT), fmt)
    assert ID_NUMBER not in text and MOBILE not in text
    assert "**************1234" in text.replace("\\*", "*") and "*******5678" in text.replace("\\*", "*")
    for words in ("逾期 3 个工作日", "逾期 6.5 小时", "今日到期", "明日到期", "50.0%", "张警官",
                  "2026-10-30（周五）24:00"):
        assert words in text, (fmt, words)
    assert "西城的" not in text
    assert text.index("逾期 3 个工作日") < text.index("逾期 1 个工作日") < text.index("逾期 6.5 小时")
    if fmt in ("html", "markdown"):  # case data never turns into markup
        assert "<script>" not in text and "&lt;script&gt;" in text
    if fmt == "html":
        assert text.lstrip().startswith("<!DOCTYPE html>")
    if fmt == "markdown":
        assert "| # | 案件 |" in text


def test_each_digest_goes_out_once_per_slot(store: Store, scene: dict[str, int]) -> None:
    recorder = Recorder()
    first = Scheduler(store, rec_config(), notifiers={"rec": recorder})
    second = Scheduler(Store(store.url), rec_config(), notifiers={"rec": recorder})
    assert first.run_digests(AT) == 2  # wang and zhao
    assert second.run_digests(bj(2026, 11, 4, 9, 15)) == 0  # same slot (08:30): already claimed
    assert first.run_digests(AT) == 0
    second.deliver(AT)
    assert sorted(to for to, _, _ in recorder.sent) == ["wang", "zhao"]
    # The next working day is a new slot.
    assert second.run_digests(bj(2026, 11, 5, 8, 30)) == 2
    second.store.dispose()


def test_absent_leader_digest_goes_to_the_substitute(store: Store, scene: dict[str, int]) -> None:
    from caseflow.store import Absence

    with store.session(write=True) as s:
        s.add(Absence(person_id="wang", from_date=date(2026, 11, 4), to_date=date(2026, 11, 4)))
    scheduler = Scheduler(store, rec_config())
    scheduler.run_digests(AT, leaders=["wang"])
    [row] = outbox_of(store)
    assert row.recipient == "liu" and row.kind == "digest" and "王所长" in row.subject


def test_digest_is_mailed_as_html_to_a_real_smtp_server(store: Store, scene: dict[str, int], smtp: Any) -> None:
    config = NotifyConfig.from_dict({
        "channels": {"mail": {"url": smtp.url, "format": "html"}},
        "people": {"wang": {"channel": "mail", "address": "wang@example.org"}},
    })
    scheduler = Scheduler(store, config)
    report = scheduler.run_once(bj(2026, 11, 4, 8, 30, 5), digests=True)
    assert report.digests == 2 and report.delivery.errors == []
    mails = [(rcpts, m) for _, rcpts, m in smtp.messages if rcpts == ["wang@example.org"]]
    assert len(mails) == 1
    message = mails[0][1]
    subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
    assert subject.startswith("办理时限日报 2026-11-04 王所长")
    html = text_of(message, "html")
    assert "逾期 3 个工作日" in html and "&lt;script&gt;" in html
    assert ID_NUMBER not in html and MOBILE not in html and f"{'*' * 14}1234" in html
    # Sent once: a second run in the same slot sends nothing more.
    scheduler.run_once(bj(2026, 11, 4, 9, 0), digests=True)
    assert len([1 for _, rcpts, _ in smtp.messages if rcpts == ["wang@example.org"]]) == 1


def test_kept_definitions_give_fresh_names_and_are_read_again_for_a_version_stored_since(tmp_path: Path) -> None:
    """The scheduler hands its kept labels to the digests: people's names are read afresh each time, and
    labels lacking a version stored since (another process's revised definition) are not used."""
    from caseflow.clock import FixedClock
    from caseflow.engine import Engine
    from caseflow.registry import WorkflowRegistry
    from caseflow.workflowfile import parse_workflow

    st = Store(f"sqlite:///{tmp_path / 'engine.db'}")
    clock = FixedClock(bj(2026, 11, 3, 9))
    engine = Engine(st, clock=clock)
    engine.add_person("wang", name="王所长", unit=UNIT, roles=["station_leader"])
    engine.add_person("zhang", name="张警官", unit=UNIT, roles=["household_police"], leader="wang")
    engine.open("hukou_transfer", actor="zhang", data={"needs_verification": "true"})
    kept = Labels.from_store(st)
    engine.add_person("zhang", name="张丽", unit=UNIT, roles=["household_police"], leader="wang", replace=True)
    at = bj(2026, 11, 3, 18)

    def digest(**kwargs: Any) -> dict[str, Any]:
        return build_digests(st, ["wang"], at, **kwargs)[0].to_dict()

    assert digest(definitions=kept) == digest()
    assert {i["responsible"] for i in digest()["due_today"]} == {"张丽"}
    shipped = WorkflowRegistry.load().latest("hukou_transfer")
    revised = parse_workflow(shipped.text.replace("title: 户口迁移(派出所户籍窗口)", "title: 户口迁移(修订版)"))
    Engine(st, clock=clock, registry=WorkflowRegistry([revised])).open(
        "hukou_transfer", actor="zhang", data={"needs_verification": "true"})
    assert revised.version not in kept.by_version
    assert digest(definitions=kept) == digest()
    assert {i["workflow_label"] for i in digest()["due_today"]} == {"户口迁移(派出所户籍窗口)", "户口迁移(修订版)"}
    st.dispose()


def test_cli_digest(store: Store, scene: dict[str, int]) -> None:
    runner = CliRunner()
    result = runner.invoke(_ops_cli(), ["digest", "--leader", "wang", "--at", "2026-11-04T08:30", "--db", store.url,
                                        "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [i["case_id"] for i in payload["overdue"]] == [scene["a"], scene["b"], scene["c"]]
    assert payload["month_stats"]["on_time_rate"] == 0.5
    assert ID_NUMBER not in result.output
    md = runner.invoke(_ops_cli(), ["digest", "--leader", "wang", "--at", "2026-11-04T08:30", "--db", store.url,
                                    "--format", "markdown"])
    assert md.exit_code == 0 and md.output.startswith("## 办理时限日报")
    missing = runner.invoke(_ops_cli(), ["digest", "--leader", "ghost", "--db", store.url, "--json"])
    assert missing.exit_code == 1 and json.loads(missing.output)["error"]["type"] == "PersonNotFoundError"
