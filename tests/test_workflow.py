"""caseflow.workflow and caseflow.workflowfile: procedure definitions as data, read from their files.

Read as a specification: what the shipped procedures say (with their legal basis), how a definition is
versioned, how a bad file is refused (naming file, line and field), and how the engine uses a definition
(a ``transitions.Machine`` per version, timers started and stopped by states and triggers).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from transitions import Machine, MachineError

from caseflow import ZONE, compute_due
from caseflow.diagram import mermaid
from caseflow.errors import WorkflowError, WorkflowNotFoundError
from caseflow.registry import WorkflowRegistry
from caseflow.timelimits import TimeLimit
from caseflow.workflow import (
    ExtensionPolicy,
    ExtensionTier,
    FieldDef,
    FrozenMap,
    PausePolicy,
    StateDef,
    TimerDef,
    TransitionDef,
    WorkflowDef,
    default_warn_before,
)
from caseflow.workflowfile import load_workflow, load_workflows, parse_workflow, shipped_workflows_dir

SHIPPED_KEYS = {
    "admin_license",
    "complaint_110",
    "criminal_detention",
    "exit_entry_permit",
    "gov_info_disclosure",
    "holiday_appointment",
    "hukou_transfer",
    "investigative_custody",
    "petition",
    "public_security_case",
    "service_followup",
}

# A small valid definition; the refusal tests below change one thing in it. Line numbers matter:
#  1 key   2 title   3 roles   4 states   5 open   6 done   7 transitions   8 finish
#  9 timers   10 name   11 label   12 limit   13 basis   14 start   15 stop
MINI = """\
key: mini
title: 小流程
roles: {clerk: 窗口工作人员}
states:
  - {name: open, label: 办理中, initial: true}
  - {name: done, label: 已办结, final: true}
transitions:
  - {trigger: finish, from: open, to: done, roles: [clerk]}
timers:
  - name: finish
    label: 办结
    limit: 3 working_days
    basis: 测试规则 第一条
    start: {state: open}
    stop: {states: [done]}
"""


class _Light:
    """What the engine loads a case into for one command: nothing but a state."""

    def __init__(self, state: str) -> None:
        self.state = state


@pytest.fixture(scope="module")
def shipped() -> dict[str, WorkflowDef]:
    return load_workflows()


def _write(tmp_path: Path, text: str, name: str = "mini.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(tmp_path: Path, text: str) -> WorkflowError:
    path = _write(tmp_path, text)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    return info.value


# --- the shipped definitions ---------------------------------------------------------------------------


def test_every_shipped_file_loads(shipped: dict[str, WorkflowDef]) -> None:
    assert set(shipped) == SHIPPED_KEYS
    assert shipped_workflows_dir().is_dir()
    for defn in shipped.values():
        assert Path(defn.source).parent == shipped_workflows_dir()
        assert defn.final_states, defn.key
        assert defn.text == Path(defn.source).read_text(encoding="utf-8")


def test_every_shipped_timer_cites_its_basis(shipped: dict[str, WorkflowDef]) -> None:
    for defn in shipped.values():
        assert defn.basis, defn.key
        for timer in defn.timers:
            assert timer.basis.strip(), (defn.key, timer.name)
            assert timer.kind in ("statutory", "promised")


def test_seed_rules_are_promises_and_statutes_are_statutory(shipped: dict[str, WorkflowDef]) -> None:
    for key in ("hukou_transfer", "complaint_110", "holiday_appointment"):
        assert {t.kind for t in shipped[key].timers} == {"promised"}, key
        assert all("seed 000" in t.basis for t in shipped[key].timers), key
    for key in ("petition", "admin_license", "public_security_case", "gov_info_disclosure", "investigative_custody"):
        assert {t.kind for t in shipped[key].timers} == {"statutory"}, key
    # 刑事诉讼法 第八十五条、第九十三条 say 立即 and give no hours: the 2 hours read into them are this
    # workflow's, so those timers are promises and say so in their basis; every other limit is the law's.
    detention = shipped["criminal_detention"]
    readings = {t.name for t in detention.timers if "the law sets no hours" in t.basis}
    assert readings == {"notify_family_after_obstacle", "deliver_after_arrest"}
    assert {t.name for t in detention.timers if t.kind == "promised"} == readings


def test_hukou_timers_follow_the_household_window_rules(shipped: dict[str, WorkflowDef]) -> None:
    hukou = shipped["hukou_transfer"]
    limits = {t.name: t.limit for t in hukou.timers}
    assert limits == {
        "hand_over": TimeLimit(0, "working_days"),  # 受理当日填写《受理户口交办单》
        "submit_complete": TimeLimit(2, "working_days"),
        "verification": TimeLimit(3, "working_days"),
        "report": TimeLimit(2, "working_days"),
        "approval": TimeLimit(2, "working_days"),
        "notify": TimeLimit(1, "working_days"),
        "finish_after_verification": TimeLimit(1, "working_days"),  # 社区民警提交调查核实材料后1个工作日内办结
        "escalate": TimeLimit(2, "working_days"),
    }
    # The route stated at acceptance decides which of the first two runs (issue 8: hand_over only on the
    # verification route).
    assert dict(hukou.timer("hand_over").start_when) == {"needs_verification": True}
    assert dict(hukou.timer("submit_complete").start_when) == {"needs_verification": False}
    assert hukou.fields["needs_verification"].kind == "bool"
    verification = hukou.timer("verification")
    assert verification.start_state == "verifying"
    assert verification.stop_states == {"reporting"}
    pause = verification.pause_policy("函调")
    assert pause is not None and pause.charged_to == "law" and pause.cap is None
    assert verification.pause_policy("补正") is None
    hand_over = hukou.find_transition("hand_over_verification", "accepted")
    assert hand_over is not None and hand_over.requires == ("slip_no",)  # the 《受理户口交办单》 number
    # A complete file goes straight to the station leader.
    straight = hukou.find_transition("submit_for_approval", "accepted")
    assert straight is not None and straight.dest == "approving"
    assert hukou.roles == {"household_police": "户籍民警", "community_police": "社区民警", "station_leader": "所领导"}
    reject = hukou.transitions_for("reject")
    assert len(reject) == 1
    assert set(reject[0].sources) == {s.name for s in hukou.states if not s.final}


def test_hukou_same_day_hand_over_ends_on_the_day_of_acceptance(shipped: dict[str, WorkflowDef]) -> None:
    hand_over = shipped["hukou_transfer"].timer("hand_over")
    saturday = datetime(2026, 10, 10, 9, 30, tzinfo=ZONE)  # a make-up working Saturday
    holiday = datetime(2026, 10, 3, 9, 30, tzinfo=ZONE)  # 国庆节
    assert compute_due(saturday, hand_over.limit).last_day == saturday.date()
    assert compute_due(holiday, hand_over.limit).last_day == holiday.date()
    assert hand_over.warn_before == TimeLimit(4, "hours")


def test_detention_limits_run_in_custody(shipped: dict[str, WorkflowDef]) -> None:
    detention = shipped["criminal_detention"]
    assert detention.initial == "detained"
    for name in ("deliver_to_detention_centre", "notify_family", "interrogate"):
        timer = detention.timer(name)
        assert timer.limit == TimeLimit(24, "hours")
        assert timer.start_state == "detained"
        assert timer.warn_before == TimeLimit(360, "minutes")  # a quarter of the limit
    # 第八十五条: a lawful exemption makes the 24 hours not applicable (cancelled), it does not meet them;
    # only its grounds are taken, with the reason for the 拘留通知书 (程序规定 第一百二十七条).
    assert detention.timer("notify_family").stop_triggers == {"notify_family"}
    assert detention.timer("notify_family").cancel_triggers == {"exempt_family_notice"}
    exempt = detention.find_transition("exempt_family_notice", "detained")
    assert exempt is not None and exempt.requires == ("ground", "exemption_reason")
    assert exempt.grounds == ("无法通知", "有碍侦查(涉嫌危害国家安全犯罪)", "有碍侦查(涉嫌恐怖活动犯罪)")

    arrest = detention.timer("arrest_request")
    assert arrest.limit.amount == 3 and arrest.limit.unit == "days"
    assert arrest.limit.roll_forward is False  # 刑事诉讼法 第一百零五条: 在押期间不因节假日而延长
    assert arrest.stop_triggers == {"request_arrest"}
    assert arrest.extension is not None
    special = arrest.extension.tier_for("特殊情况")
    assert special is not None and special.max_total.amount == 4  # 延长一日至四日
    assert special.min_each is not None and (special.min_each.amount, special.min_each.unit) == (1, "days")
    # Extensions are read with the timer's options, so limit + extension keeps the custody rule.
    assert (arrest.limit + special.max_total).roll_forward is False
    gang = arrest.extension.tier_for("结伙作案")
    assert gang is not None and gang.max_total.amount == 27  # 3 + 27 = 30 days in all
    assert gang.approver_roles == ("leader",)

    decision = detention.timer("procuratorate_decision")
    assert decision.limit.amount == 7 and decision.limit.roll_forward is False
    assert decision.start_state == "awaiting_approval"
    # A 3-day limit ending on a holiday is not moved for a person in custody.
    due = compute_due(datetime(2026, 9, 30, 20, 0, tzinfo=ZONE), arrest.limit)
    assert due.last_day.isoformat() == "2026-10-03"


def test_detention_release_ends_every_timer(shipped: dict[str, WorkflowDef]) -> None:
    detention = shipped["criminal_detention"]
    release = detention.transitions_for("release")
    assert [t.sources for t in release] == [("detained", "awaiting_approval", "arrested")]
    assert release[0].dest in detention.final_states
    assert detention.timers_stopped_by("released", "release") == list(detention.timers)


def test_petition_counts_calendar_days_without_roll(shipped: dict[str, WorkflowDef]) -> None:
    petition = shipped["petition"]
    limits = {t.name: (t.limit.amount, t.limit.unit, t.limit.roll_forward) for t in petition.timers}
    assert limits == {
        "intake": (15, "days", False),
        "handling": (60, "days", False),
        "review": (30, "days", False),
        "recheck": (30, "days", False),
        "objection": (5, "working_days", True),  # 第二十三条第三款: 5个工作日
        "review_window": (30, "days", True),  # the petitioner's own 30 days (第三十五条)
        "recheck_window": (30, "days", True),  # (第三十六条)
    }
    handling = petition.timer("handling")
    assert handling.extension is not None
    assert handling.extension.max_total.amount == 30
    assert handling.extension.tiers[0].approver_roles == ("head",)
    hearing = petition.timer("recheck").pause_policy("听证")  # 第三十六条: 听证所需时间不计算在期限内
    assert hearing is not None and hearing.charged_to == "law"


def test_admin_license_counts_working_days(shipped: dict[str, WorkflowDef]) -> None:
    licence = shipped["admin_license"]
    assert {t.name: t.limit for t in licence.timers} == {
        "correction_notice": TimeLimit(5, "working_days"),
        "decision": TimeLimit(20, "working_days"),
        "joint_decision": TimeLimit(45, "working_days"),  # 第四十二条第二款
        "hearing_request": TimeLimit(5, "working_days"),  # 第四十七条: 五日内提出听证申请
        "hearing": TimeLimit(20, "working_days"),  # 第四十七条: 二十日内组织听证
        "delivery": TimeLimit(10, "working_days"),
    }
    decision = licence.timer("decision")
    assert decision.extension is not None and decision.extension.max_times == 1
    tier = decision.extension.tier_for("情况复杂")
    assert tier is not None and tier.max_total == TimeLimit(10, "working_days")
    assert tier.approver_roles == ("head",)
    # 第四十五条's eight reasons and no other, each recording the written notice to the applicant; 补正 comes
    # before acceptance (第三十二条), so it no longer stops the decision clock (issue 8: the old pause was wrong).
    assert set(decision.pauses) == {"听证", "招标", "拍卖", "检验", "检测", "检疫", "鉴定", "专家评审"}
    for reason in decision.pauses:
        policy = decision.pause_policy(reason)
        assert policy is not None and policy.charged_to == "law" and policy.requires == ("time_notice_no",)
    assert decision.pause_policy("补正") is None
    assert decision.extension.requires == ("applicant_notified_on",)
    assert licence.timer("correction_notice").on_expiry == "deem_accept"


def test_window_promises(shipped: dict[str, WorkflowDef]) -> None:
    assert shipped["complaint_110"].timer("reply").limit == TimeLimit(3, "working_days")
    assert "三个工作日" in shipped["complaint_110"].timer("reply").basis
    contact = shipped["holiday_appointment"].timer("contact")
    assert contact.limit == TimeLimit(24, "hours")
    assert "24小时内主动联系" in contact.basis


# --- versions ------------------------------------------------------------------------------------------


def test_version_is_the_hash_of_the_canonical_content(tmp_path: Path) -> None:
    defn = load_workflow(_write(tmp_path, MINI))
    canonical = json.dumps(yaml.safe_load(MINI), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert defn.version == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_version_is_stable_across_loads_comments_and_layout(tmp_path: Path) -> None:
    first = parse_workflow(MINI)
    again = load_workflow(_write(tmp_path, MINI))
    reformatted = parse_workflow("# 注释 only\n" + MINI.replace("roles: {clerk: 窗口工作人员}",
                                                                "roles:\n  clerk: 窗口工作人员   # 窗口"))
    assert first.version == again.version == reformatted.version
    assert len(first.version) == 64


def test_version_changes_when_a_limit_changes() -> None:
    before = parse_workflow(MINI)
    after = parse_workflow(MINI.replace("limit: 3 working_days", "limit: 5 working_days"))
    assert before.version != after.version
    assert after.timer("finish").limit.amount == 5


def test_the_stored_text_reads_back_to_the_same_version(shipped: dict[str, WorkflowDef]) -> None:
    for defn in shipped.values():
        assert parse_workflow(defn.text, path="stored").version == defn.version


def test_the_parsed_form_of_the_shipped_workflows_is_what_reading_them_gives(tmp_path: Path) -> None:
    # The parsed form answers the shipped texts without PyYAML; rewrite it after editing workflows/ with
    # caseflow.workflowfile.write_parsed_workflows(). Checked here so that it can never silently differ.
    from caseflow._yaml import load_yaml_text
    from caseflow.workflowfile import PARSED_WORKFLOWS_FILE, _Parser, shipped_workflows_dir, write_parsed_workflows

    fresh = write_parsed_workflows(target=tmp_path / "parsed.json")
    assert PARSED_WORKFLOWS_FILE.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), \
        "run caseflow.workflowfile.write_parsed_workflows()"
    files = json.loads(fresh.read_text(encoding="utf-8"))["files"]
    assert sorted(r["file"] for r in files.values()) == sorted(p.name for p in shipped_workflows_dir().glob("*.yaml"))
    for path in sorted(shipped_workflows_dir().glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        from_yaml = _Parser(load_yaml_text(text), str(path)).parse(text)
        answered = load_workflow(path)
        assert answered == from_yaml  # every field, in the file's order
        assert [s.name for s in answered.states] == [s.name for s in from_yaml.states]
        assert [t.name for t in answered.timers] == [t.name for t in from_yaml.timers]


def test_an_edited_shipped_workflow_is_read_as_yaml_and_its_errors_name_the_line(tmp_path: Path) -> None:
    from caseflow.workflowfile import shipped_workflows_dir

    text = (shipped_workflows_dir() / "hukou_transfer.yaml").read_text(encoding="utf-8")
    edited = tmp_path / "hukou_transfer.yaml"
    edited.write_text(text.replace("limit: 3 working_days", "limit: 4 working_days", 1), encoding="utf-8")
    assert load_workflow(edited).timer("verification").limit.amount == 4
    edited.write_text(text.replace("limit: 3 working_days", "limit: three days", 1), encoding="utf-8")
    with pytest.raises(WorkflowError) as refused:
        load_workflow(edited)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "limit: 3 working_days" in row)
    assert refused.value.line == line and str(edited) in str(refused.value)


# --- refusals: each names the file, the line and the field ---------------------------------------------


REFUSALS = [
    pytest.param(MINI + "colour: red\n", 16, "colour", ["unknown key 'colour'", "'key', 'title'"],
                 id="unknown-top-level-key"),
    pytest.param(MINI.replace("roles: [clerk]}", "roles: [clerk], when: now}"), 8, "transitions[0].when",
                 ["unknown key 'when' in a transition", "'trigger', 'from', 'to'"], id="unknown-transition-key"),
    pytest.param(MINI + "    colour: red\n", 16, "timers[0].colour",
                 ["unknown key 'colour' in a timer", "'limit'"], id="unknown-timer-key"),
    pytest.param(MINI.replace("key: mini\n", ""), 1, "key", ["key is missing"], id="missing-key"),
    pytest.param(MINI.replace("title: 小流程\n", ""), 1, "title", ["title is missing"], id="missing-title"),
    pytest.param(MINI.partition("states:")[0], 1, "states", ["states is missing"], id="missing-states"),
    pytest.param(MINI.replace(", initial: true", ""), 4, "states", ["no initial state"], id="no-initial"),
    pytest.param(MINI.replace("  - {name: done", "  - {name: also, label: 也是, initial: true}\n  - {name: done"),
                 6, "states[1].initial", ["more than one initial state", "'open', 'also'"], id="two-initials"),
    pytest.param(MINI.replace("transitions:", "  - {name: open, label: 重复}\ntransitions:"), 7,
                 "states[2].name", ["duplicate state 'open'"], id="duplicate-state"),
    pytest.param(MINI.replace("timers:", "  - {trigger: finish, from: open, to: done}\ntimers:"), 9,
                 "transitions[1]", ["trigger 'finish' from state 'open' is already defined", "line 8"],
                 id="duplicate-trigger-source"),
    pytest.param(MINI.replace("to: done", "to: finished"), 8, "transitions[0].to",
                 ["unknown state 'finished'", "states are 'open', 'done'"], id="unknown-target-state"),
    pytest.param(MINI.replace("from: open", "from: opened"), 8, "transitions[0].from",
                 ["unknown state 'opened'", "states are 'open', 'done'"], id="unknown-source-state"),
    pytest.param(MINI.replace("roles: [clerk]}", "roles: [boss]}"), 8, "transitions[0].roles[0]",
                 ["unknown role 'boss'", "declared roles are 'clerk'"], id="unknown-role"),
    pytest.param(MINI.replace("start: {state: open}", "start: {state: opened}"), 14, "timers[0].start.state",
                 ["unknown state 'opened'", "states are 'open', 'done'"], id="timer-starts-in-unknown-state"),
    pytest.param(MINI.replace("start: {state: open}", "start: {trigger: begin}"), 14, "timers[0].start.trigger",
                 ["unknown trigger 'begin'", "triggers are 'finish'"], id="timer-starts-on-unknown-trigger"),
    pytest.param(MINI.replace("stop: {states: [done]}", "stop: {states: [closed]}"), 15, "timers[0].stop.states",
                 ["stops in unknown state 'closed'"], id="timer-stops-in-unknown-state"),
    pytest.param(MINI.replace("stop: {states: [done]}", "stop: {triggers: [finnish]}"), 15,
                 "timers[0].stop.triggers", ["unknown trigger 'finnish'", "triggers are 'finish'"],
                 id="timer-stops-on-unknown-trigger"),
    pytest.param(MINI.replace("transitions:", "  - {name: limbo, label: 悬置}\ntransitions:"), 7,
                 "states[2].name", ["state 'limbo' cannot be reached from the initial state 'open'"],
                 id="unreachable-state"),
    pytest.param(MINI.replace(", final: true", ""), 4, "states", ["no final state"], id="no-final-state"),
    pytest.param(MINI.replace("transitions:\n", "  - {name: stuck, label: 卡住}\ntransitions:\n"
                                                "  - {trigger: park, from: open, to: stuck}\n"),
                 7, "states[2].name", ["'stuck' is not final but has no transition out"], id="no-way-out"),
    pytest.param(MINI.replace("limit: 3 working_days", "limit: 3 fortnights"), 12, "timers[0].limit",
                 ["bad limit '3 fortnights'", "unknown unit 'fortnights'"], id="bad-limit"),
    pytest.param(MINI.replace("limit: 3 working_days", "limit: 3"), 12, "timers[0].limit",
                 ["written like '3 working_days'", "got 3"], id="limit-without-unit"),
    pytest.param(MINI + "    pauses: {函调: {cap: soon}}\n", 16, "timers[0].pauses.函调.cap",
                 ["bad cap of pause '函调' 'soon'"], id="pause-cap-unreadable"),
    pytest.param(MINI + "    pauses: {函调: {cap: 0 days}}\n", 16, "timers[0].pauses.函调.cap",
                 ["must be longer than zero"], id="pause-cap-zero"),
    pytest.param(MINI + "    pauses: {补正: {charged_to: clerk}}\n", 16, "timers[0].pauses.补正.charged_to",
                 ["charged_to of pause '补正' is 'clerk'", "'applicant', 'law', 'unit'"], id="pause-charged-to"),
    pytest.param(MINI + "    extension: {tiers: [{max_total: 10 days}]}\n", 16,
                 "timers[0].extension.tiers[0].max_total",
                 ["max_total is in days but the timer counts working_days"], id="extension-unit"),
    pytest.param(MINI + "    extension: {tiers: [{max_total: 10 working_days, approver_roles: [boss]}]}\n", 16,
                 "timers[0].extension.tiers[0].approver_roles[0]",
                 ["unknown approver role 'boss'", "declared roles are 'clerk'"], id="extension-approver"),
    pytest.param(MINI + "    extension: {tiers: [{max_total: 10 working_days}], max_times: 0}\n", 16,
                 "timers[0].extension.max_times", ["max_times must be a whole number of at least 1"],
                 id="extension-max-times"),
    pytest.param(MINI.replace("basis: 测试规则 第一条", 'basis: ""'), 13, "timers[0].basis",
                 ["must cite its basis"], id="empty-basis"),
    pytest.param(MINI.replace("    basis: 测试规则 第一条\n", ""), 10, "timers[0].basis",
                 ["must cite its basis"], id="missing-basis"),
    pytest.param(MINI.replace("start: {state: open}", "start: {state: open, trigger: finish}"), 14,
                 "timers[0].start", ["exactly one of 'state' or 'trigger'"], id="two-starts"),
    pytest.param(MINI + "    kind: hoped\n", 16, "timers[0].kind", ["kind 'hoped'", "'statutory', 'promised'"],
                 id="bad-kind"),
    pytest.param(MINI + "    warn_before: 4 working_days\n", 16, "timers[0].warn_before",
                 ["longer than the limit"], id="warn-before-too-long"),
    pytest.param(MINI + "    warn_before: 1 days\n", 16, "timers[0].warn_before",
                 ["warn_before is in days", "'hours', 'minutes', 'working_days'"], id="warn-before-unit"),
    pytest.param(MINI + "    options: {roll_forward: maybe}\n", 16, "timers[0].options.roll_forward",
                 ["bad option roll_forward", "true or false"], id="bad-option"),
    pytest.param(MINI.replace("timers:", "  - {trigger: reopen, from: done, to: open}\ntimers:"), 9,
                 "transitions[1].from",
                 ["leaves final state 'done'"], id="transition-from-final-state"),
    pytest.param(MINI.replace("initial: true}", "initial: true, final: true}"), 5, "states[0].final",
                 ["the initial state 'open' cannot be final"], id="initial-and-final"),
    pytest.param(MINI.replace("to: done, ", ""), 8, "transitions[0]",
                 ["needs 'to' (or 'internal: true'"], id="missing-target"),
    pytest.param(MINI.replace("timers:", "  - {trigger: note, from: open, to: open, internal: true}\ntimers:"), 9,
                 "transitions[1].to", ["internal transition 'note' stays in its state: remove 'to'"],
                 id="internal-with-target"),
    pytest.param(MINI.replace("    start: {state: open}\n", ""), 10, "timers[0]",
                 ["needs 'start: {state: ...}'"], id="missing-start"),
    pytest.param(MINI + "    extension: {tiers: [{max_total: 2 working_days, min_each: 3 working_days}]}\n", 16,
                 "timers[0].extension.tiers[0].min_each", ["min_each 3 exceeds max_total 2"],
                 id="extension-min-exceeds-max"),
    pytest.param(MINI.replace("roles: [clerk]}", "roles: [clerk], requires: [slip_no]}"), 8,
                 "transitions[0].requires[0]",
                 ["requires 'slip_no', which the 'fields' block does not declare"], id="requires-undeclared"),
    pytest.param(MINI + "    pauses: {检验: {requires: [notice_no]}}\n", 16, "timers[0].pauses.检验.requires[0]",
                 ["pause '检验' requires 'notice_no', which the 'fields' block does not declare"],
                 id="pause-requires-undeclared"),
    pytest.param(MINI + "    extension: {tiers: [{max_total: 10 working_days}], requires: [told_on]}\n", 16,
                 "timers[0].extension.requires[0]", ["the extension of 'finish' requires 'told_on'"],
                 id="extension-requires-undeclared"),
    pytest.param(MINI.replace("roles: {clerk", "fields: {phone: {kind: phone}}\nroles: {clerk"), 3, "fields.phone",
                 ["'phone' needs a Chinese label"], id="field-without-label"),
    pytest.param(MINI.replace("roles: {clerk", "fields:\n  phone: {label: 电话, kind: mobile}\nroles: {clerk"), 4,
                 "fields.phone.kind", ["kind 'mobile'", "'name', 'id_number', 'phone'"], id="field-bad-kind"),
    pytest.param(MINI.replace("roles: {clerk", "fields:\n  phone: {label: 电话, mask: true}\nroles: {clerk"), 4,
                 "fields.phone.mask", ["unknown key 'mask' in the entry for 'phone'", "'label', 'kind'"],
                 id="field-unknown-key"),
    pytest.param(MINI.replace("roles: {clerk", "fields: [phone]\nroles: {clerk"), 3, "fields",
                 ["fields must map each key to"], id="fields-not-a-mapping"),
    pytest.param("- key: mini\n", 1, "", ["a workflow file must be a mapping, got a list"], id="not-a-mapping"),
    pytest.param(MINI.replace("roles: {clerk: 窗口工作人员}", "roles: {clerk: [窗口]"), 4, "",
                 ["not valid YAML"], id="yaml-syntax"),
]


@pytest.mark.parametrize(("text", "line", "fld", "fragments"), REFUSALS)
def test_a_bad_definition_is_refused_naming_file_line_and_field(
    tmp_path: Path, text: str, line: int, fld: str, fragments: list[str]
) -> None:
    error = _refusal(tmp_path, text)
    assert error.line == line, str(error)
    assert error.field == fld, str(error)
    assert f"line {line}" in str(error)
    assert str(error).count("field ") <= 1, str(error)  # file, line and field are said once, up front
    for fragment in fragments:
        assert fragment in str(error)


def test_every_field_a_shipped_workflow_uses_has_a_label_and_kind(shipped: dict[str, WorkflowDef]) -> None:
    for defn in shipped.values():
        used = {name for t in defn.transitions for name in t.requires} | {"applicant", "phone", "no"}
        assert used <= set(defn.fields), (defn.key, used - set(defn.fields))
        for key, fdef in defn.fields.items():
            assert fdef.key == key and defn.field_label(key) == fdef.label
            assert not fdef.label.isascii(), (defn.key, key, fdef.label)  # a Chinese label, not the key again
    hukou = shipped["hukou_transfer"]
    assert hukou.fields["phone"].kind == "phone" and hukou.fields["phone"].personal
    assert hukou.fields["applicant"].kind == "name" and not hukou.fields["slip_no"].personal
    assert hukou.field_label("slip_no") == "受理户口交办单编号"
    assert hukou.field_label("备注") == "备注"  # free data a clerk typed keeps the clerk's own words


def test_a_fields_block_parses_label_and_kind(tmp_path: Path) -> None:
    text = MINI.replace("roles: {clerk", "fields:\n  phone: {label: 联系电话, kind: phone}\n  no: {label: 编号}\n"
                        "roles: {clerk").replace("roles: [clerk]}", 'roles: [clerk], requires: ["no"]}')
    defn = load_workflow(_write(tmp_path, text))
    assert defn.fields["phone"] == FieldDef("phone", "联系电话", "phone")
    assert defn.fields["no"].kind == "text"  # kind defaults to text
    assert defn.version != load_workflow(_write(tmp_path, text.replace("联系电话", "电话"), "b.yaml")).version


def test_hand_built_definitions_check_required_fields_too() -> None:
    base = load_workflows()["hukou_transfer"]
    with pytest.raises(WorkflowError, match="requires 'slip_no'"):
        WorkflowDef(base.key, base.title, version="x", roles=base.roles, states=base.states, initial=base.initial,
                    transitions=base.transitions, timers=base.timers,
                    fields={k: v for k, v in base.fields.items() if k != "slip_no"})
    with pytest.raises(WorkflowError, match="kind 'mobile'"):
        FieldDef("phone", "电话", "mobile")  # type: ignore[arg-type]


def test_a_timer_that_can_never_stop_is_refused(tmp_path: Path) -> None:
    # open → loop_a ⇄ loop_b: every state has a way out and `done` is reachable, but not from the loop.
    text = """\
key: looping
title: 循环
states:
  - {name: open, label: 办理中, initial: true}
  - {name: loop_a, label: 甲}
  - {name: loop_b, label: 乙}
  - {name: done, label: 已办结, final: true}
transitions:
  - {trigger: finish, from: open, to: done}
  - {trigger: wander, from: open, to: loop_a}
  - {trigger: ping, from: loop_a, to: loop_b}
  - {trigger: pong, from: loop_b, to: loop_a}
timers:
  - name: stuck
    label: 循环计时
    limit: 1 days
    basis: 测试规则
    start: {state: loop_a}
"""
    error = _refusal(tmp_path, text)
    assert "timer 'stuck' can never stop" in str(error)
    assert error.field == "timers[0].stop"
    assert error.line == 14


def test_a_stop_state_unreachable_after_the_start_is_refused(tmp_path: Path) -> None:
    text = MINI.replace("stop: {states: [done]}", "stop: {states: [open]}")
    error = _refusal(tmp_path, text)
    assert "starts and stops in state 'open'" in str(error)
    assert (error.line, error.field) == (15, "timers[0].stop.states")


def test_two_files_with_the_same_key_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, MINI, "a.yaml")
    second = _write(tmp_path, "# the same procedure again\n" + MINI, "b.yaml")
    with pytest.raises(WorkflowError) as info:
        load_workflows(tmp_path)
    assert info.value.path == str(second)
    assert (info.value.line, info.value.field) == (2, "key")
    assert "'mini' is already defined in" in str(info.value) and "a.yaml" in str(info.value)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="no such workflow directory"):
        load_workflows(tmp_path / "absent")
    assert load_workflows(tmp_path) == {}


def test_hand_built_definitions_are_checked_too() -> None:
    states = (StateDef("open", "办理中"), StateDef("done", "已办结", final=True))
    good = TransitionDef("finish", ("open",), "done")
    with pytest.raises(WorkflowError, match="unknown state 'closed'"):
        WorkflowDef("mini", "小流程", version="x", roles={}, states=states, initial="open",
                    transitions=(good, TransitionDef("close", ("open",), "closed")), timers=())
    with pytest.raises(WorkflowError, match="must cite its basis"):
        TimerDef("finish", "办结", TimeLimit(3, "working_days"), basis=" ", start_state="open")
    with pytest.raises(WorkflowError, match="is in days but timer 'finish' counts working_days"):
        TimerDef("finish", "办结", TimeLimit(3, "working_days"), basis="规则", start_state="open",
                 extension=ExtensionPolicy((ExtensionTier((), TimeLimit(2, "days")),)))
    with pytest.raises(WorkflowError, match="must be longer than zero"):
        PausePolicy("函调", cap=TimeLimit(0, "days"))


# --- what the engine uses ------------------------------------------------------------------------------


def test_a_machine_built_from_the_definition_fires_on_a_light_object(shipped: dict[str, WorkflowDef]) -> None:
    hukou = shipped["hukou_transfer"]
    machine = Machine(model=None, **hukou.transitions_kwargs())
    case = _Light(hukou.initial)
    assert machine.events["hand_over_verification"].trigger(case)
    assert case.state == "verifying"
    with pytest.raises(MachineError):
        machine.events["complete"].trigger(case)
    assert case.state == "verifying"
    for trigger in ("return_verification", "submit_for_approval", "approve_at_station", "complete"):
        machine.events[trigger].trigger(case)
    assert case.state == "completed"
    assert machine.models == []  # nothing per case is kept by the shared machine


def test_an_internal_trigger_keeps_the_state_and_starts_no_state_timer(shipped: dict[str, WorkflowDef]) -> None:
    detention = shipped["criminal_detention"]
    machine = Machine(model=None, **detention.transitions_kwargs())
    case = _Light("detained")
    machine.events["notify_family"].trigger(case)
    assert case.state == "detained"
    step = detention.find_transition("notify_family", "detained")
    assert step is not None and step.internal and step.dest == "detained"
    assert detention.timers_started_on(step) == []
    assert [t.name for t in detention.timers_stopped_by(None, "notify_family")] == [
        "notify_family", "notify_family_after_obstacle", "notify_family_after_arrest"]
    # The same duty can still be done after the request for arrest.
    machine.events["request_arrest"].trigger(case)
    machine.events["interrogate"].trigger(case)
    assert case.state == "awaiting_approval"


def test_every_shipped_definition_builds_a_machine(shipped: dict[str, WorkflowDef]) -> None:
    for defn in shipped.values():
        machine = Machine(model=None, **defn.transitions_kwargs())
        assert set(machine.states) == {s.name for s in defn.states}
        assert set(machine.events) == set(defn.triggers)


def test_timers_started_and_stopped(shipped: dict[str, WorkflowDef]) -> None:
    hukou = shipped["hukou_transfer"]
    assert [t.name for t in hukou.timers_started_by(hukou.initial, None)] == ["hand_over", "submit_complete"]
    assert [t.name for t in hukou.timers_started_by("verifying", "hand_over_verification")] == ["verification"]
    # Issue 8: a complete file going to approval meets submit_complete; the 交办单 step (hand_over) does
    # not apply to it and is cancelled, not met.
    assert [t.name for t in hukou.timers_stopped_by("approving", "submit_for_approval")] == [
        "submit_complete", "report"]
    assert hukou.timer("hand_over").cancels_on("approving", "submit_for_approval")
    assert hukou.timers_stopped_by("rejected", "reject") == list(hukou.timers)
    detention = shipped["criminal_detention"]
    assert [t.name for t in detention.timers_started_by("detained", None)] == [
        "deliver_to_detention_centre", "notify_family", "interrogate", "arrest_request"]


def test_look_ups(shipped: dict[str, WorkflowDef]) -> None:
    hukou = shipped["hukou_transfer"]
    assert hukou.state("accepted").label == "已受理"
    assert hukou.allowed_triggers("accepted") == ["hand_over_verification", "submit_for_approval", "reject"]
    assert hukou.allowed_triggers("completed") == []
    assert hukou.find_transition("complete", "accepted") is None
    assert hukou.transitions_for("no_such_trigger") == []
    assert hukou.final_states == {"completed", "reported", "rejected"}
    with pytest.raises(WorkflowNotFoundError, match="no state 'nowhere'; states are 'accepted'"):
        hukou.state("nowhere")
    with pytest.raises(WorkflowNotFoundError, match="no timer 'nothing'"):
        hukou.timer("nothing")
    step = hukou.find_transition("hand_over_verification", "accepted")
    assert step is not None
    assert step.allows(["household_police"]) and not step.allows(["community_police"])
    assert step.missing_fields({}) == ["slip_no"] and step.missing_fields({"slip_no": "2026-001"}) == []


def test_definitions_are_hashable_values(shipped: dict[str, WorkflowDef]) -> None:
    assert len({hash(defn) for defn in shipped.values()}) == len(shipped)
    assert isinstance(shipped["admin_license"].timer("decision").pauses, FrozenMap)
    again = parse_workflow(shipped["admin_license"].text, path=shipped["admin_license"].source)
    assert again == shipped["admin_license"]


def test_default_warning() -> None:
    assert default_warn_before(TimeLimit(20, "working_days")) == TimeLimit(1, "working_days")
    assert default_warn_before(TimeLimit(60, "days")) == TimeLimit(1, "days")
    assert default_warn_before(TimeLimit(1, "months")) == TimeLimit(1, "days")
    assert default_warn_before(TimeLimit(24, "hours")) == TimeLimit(360, "minutes")
    assert default_warn_before(TimeLimit(30, "minutes")) == TimeLimit(7, "minutes")
    assert default_warn_before(TimeLimit(0, "working_days")) == TimeLimit(0, "working_days")


def test_mermaid_shows_states_labels_and_triggers(shipped: dict[str, WorkflowDef]) -> None:
    text = mermaid(shipped["hukou_transfer"])
    assert text.startswith("stateDiagram-v2\n")
    assert "[*] --> accepted" in text
    assert "accepted : 已受理" in text
    assert "accepted --> verifying : hand_over_verification" in text
    assert "completed --> [*]" in text
    assert "社区民警调查核实 3个工作日" in text
    for defn in shipped.values():
        diagram = mermaid(defn)
        for state in defn.states:
            assert f"    {state.name} : " in diagram


# --- the registry --------------------------------------------------------------------------------------


def test_registry_latest_and_pinned_versions(tmp_path: Path) -> None:
    old = parse_workflow(MINI)
    new = parse_workflow(MINI.replace("limit: 3 working_days", "limit: 5 working_days"))
    registry = WorkflowRegistry([old, new])
    assert registry.latest("mini") is new
    assert registry.get("mini", old.version) is old
    assert registry.get("mini", old.version[:10]) is old
    assert registry.versions("mini") == [old.version, new.version]
    assert registry.keys() == ["mini"] and list(registry) == [new] and "mini" in registry
    # A case pinned to an archived version: add it back without making it the latest.
    archive = WorkflowRegistry([new])
    archive.add(old, make_latest=False)
    assert archive.latest("mini") is new and archive.get("mini", old.version) is old
    with pytest.raises(WorkflowNotFoundError, match="no workflow 'nothing'; known workflows are 'mini'"):
        registry.latest("nothing")
    with pytest.raises(WorkflowNotFoundError, match="has no version 'abc'"):
        registry.get("mini", "abc")
    with pytest.raises(WorkflowNotFoundError, match="no workflow 'nothing'"):
        registry.get("nothing", old.version)


def test_registry_loads_the_shipped_definitions() -> None:
    registry = WorkflowRegistry.load()
    assert set(registry.keys()) == SHIPPED_KEYS
    assert len(registry) == len(SHIPPED_KEYS)


def test_deemed_from_must_name_another_timer(tmp_path: Path) -> None:
    text = (shipped_workflows_dir() / "admin_license.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "admin_license.yaml"
    bad.write_text(text.replace("deemed_from: correction_notice", "deemed_from: nosuch"), encoding="utf-8")
    with pytest.raises(WorkflowError, match=r"deemed from unknown timer 'nosuch'") as info:
        load_workflow(bad)
    assert "start.deemed_from" in str(info.value) and "line" in str(info.value)


def test_counted_from_must_name_a_declared_date_field(tmp_path: Path) -> None:
    # 刑事诉讼法 第一百六十条 "自发现之日起": the recount counts from the recorded day of discovery.
    text = (shipped_workflows_dir() / "investigative_custody.yaml").read_text(encoding="utf-8")
    assert load_workflow(shipped_workflows_dir() / "investigative_custody.yaml").timer(
        "custody_recount").counted_from == "crime_found_on"
    bad = tmp_path / "investigative_custody.yaml"
    bad.write_text(text.replace("counted_from: crime_found_on", "counted_from: nosuch"), encoding="utf-8")
    with pytest.raises(WorkflowError, match=r"'nosuch'.*fields") as info:
        load_workflow(bad)
    assert "start.counted_from" in str(info.value)
    bad.write_text(text.replace("counted_from: crime_found_on", "counted_from: reason"), encoding="utf-8")
    with pytest.raises(WorkflowError, match=r"'reason', which is of kind 'text'; it must be of kind 'date'"):
        load_workflow(bad)


def test_a_text_read_again_is_the_same_definition_named_for_where_it_was_read(tmp_path: Path) -> None:
    from caseflow.workflowfile import parse_workflow

    text = (shipped_workflows_dir() / "petition.yaml").read_text(encoding="utf-8")
    first = parse_workflow(text, path="a.yaml")
    again = parse_workflow(text, path="stored version 1234")
    assert again.version == first.version and again.timers == first.timers
    assert (first.source, again.source) == ("a.yaml", "stored version 1234")
    broken = text.replace("key: petition", "key: [petition")
    for name in ("one.yaml", "two.yaml"):  # a refused text is refused each time, naming its own file
        with pytest.raises(WorkflowError) as excinfo:
            parse_workflow(broken, path=name)
        assert name in str(excinfo.value)
