"""``caseflow demo``: three months of a county public-security bureau, simulated day by day.

It builds a database of people (units, leaders, AB岗 substitutes, one absence), opens a few hundred
cases over every shipped workflow from September to November 2026 — across the National Day holiday —
and advances them the way real windows do: most steps in time, some late, some paused (函调, 专家评审)
or extended with a leader's approval. The scheduler runs on the simulated clock every morning and
evening, raising warnings, overdue alerts and escalations and sending each leader's digest through the
log channel. The run is seeded, so it prints the same story every time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from caseflow.alerts import CASES, AlertRow
from caseflow.calendar import ZONE, WorkCalendar, default_calendar
from caseflow.clock import FixedClock
from caseflow.config import NotifyConfig
from caseflow.demo_window import WindowStory
from caseflow.engine import Engine
from caseflow.errors import CaseflowError
from caseflow.narrate import Labels, due_text
from caseflow.notify import LogNotifier
from caseflow.registry import WorkflowRegistry
from caseflow.scheduler import Scheduler
from caseflow.scoring import scorecard
from caseflow.stats import KIND_TITLES, compute_case_stats, render_stats_text, stats_tables
from caseflow.store import CaseRow, Store, TimerRow
from caseflow.textwidth import table
from caseflow.views import CaseView
from caseflow.windowstats import window_stats

__all__ = ["DemoReport", "run_demo"]

START = date(2026, 9, 1)
END = date(2026, 11, 20)

# (id, name, unit, roles, leader, substitute)
PEOPLE: tuple[tuple[str, str, str, tuple[str, ...], str | None, str | None], ...] = (
    ("ju", "局长 周建国", "县公安局", ("leader", "station_leader", "head", "supervisor"), None, None),
    ("wang", "所长 王海", "城关派出所", ("station_leader", "leader"), "ju", None),
    ("liu", "户籍民警 刘敏", "城关派出所", ("household_police",), "wang", "zhang"),
    ("zhang", "户籍民警 张丽", "城关派出所", ("household_police",), "wang", "liu"),
    ("zhao", "社区民警 赵强", "城关派出所", ("community_police",), "wang", "li"),
    ("li", "社区民警 李军", "城关派出所", ("community_police",), "wang", "zhao"),
    ("chen", "大队长 陈刚", "刑侦大队", ("leader",), "ju", None),
    ("zhou", "侦查员 周勇", "刑侦大队", ("investigator",), "chen", "sun"),
    ("sun", "侦查员 孙伟", "刑侦大队", ("investigator",), "chen", "zhou"),
    ("wu", "主任 吴芳", "信访办", ("head", "reviewer", "rechecker"), "ju", None),
    ("he", "承办人 何静", "信访办", ("handler",), "wu", "xu"),
    ("xu", "接访员 徐东", "信访办", ("clerk",), "wu", "he"),
    ("gao", "主任 高远", "政务服务中心", ("head",), "ju", None),
    ("ma", "窗口 马琳", "政务服务中心", ("clerk", "reviewer"), "gao", "lin"),
    ("lin", "窗口 林峰", "政务服务中心", ("clerk", "reviewer"), "gao", "ma"),
    ("qian", "主任 钱磊", "110指挥中心", ("supervisor",), "ju", None),
    ("hu", "接警员 胡洋", "110指挥中心", ("operator", "handler"), "qian", "qian"),
)
#: Who opens each procedure.
OPENERS = {
    "hukou_transfer": ("zhang", "liu"),
    "admin_license": ("ma", "lin"),
    "petition": ("xu",),
    "complaint_110": ("hu",),
    "criminal_detention": ("zhou", "sun"),
    "holiday_appointment": ("zhang", "liu"),
}
#: What a clerk types for each required field (``{n}``: a serial number).
SAMPLE_VALUES = {
    "slip_no": "交办单〔2026〕{n}号", "decision_no": "检察院决定书〔2026〕{n}号",
    "opinion_no": "信访处理意见书〔2026〕{n}号", "certificate_no": "受理凭证〔2026〕{n}号",
    "reason": "申请人撤回申请", "ground": "无法通知", "recipient": "县人力资源和社会保障局",
    "reply_summary": "已向投诉人说明处理结果", "correction_items": "补交户口簿复印件",
    "appointment_at": "2026-10-03 09:00",
}
#: The happy path of each procedure; a step may be skipped when its trigger is not allowed.
PATHS = {
    "hukou_transfer": ("hand_over_verification", "return_verification", "submit_for_approval",
                       "approve_at_station", "complete"),
    "admin_license": ("accept", "grant", "deliver"),
    "petition": ("accept", "answer", "close"),
    "complaint_110": ("assign", "reply"),
    # After arrest the same duties come again (刑事诉讼法 第九十三条、第九十四条), then the custody limits.
    "criminal_detention": ("deliver_to_detention_centre", "notify_family", "interrogate", "request_arrest",
                           "approve_arrest", "deliver_to_detention_centre", "notify_family", "interrogate",
                           "hand_to_custody"),
    "holiday_appointment": ("contact", "serve"),
}


@dataclass
class DemoReport:
    """What the simulation did, for printing and for tests."""

    db: str
    cases: int = 0
    commands: int = 0
    refused: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    escalations: list[str] = field(default_factory=list)
    digest: str = ""
    stats: list[str] = field(default_factory=list)
    #: Each command the engine refused, and why (the story gives their number).
    refusals: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {"db": self.db, "cases": self.cases, "commands": self.commands, "refused": self.refused,
                "alerts": dict(self.alerts), "escalations": self.escalations[:20], "stats": self.stats,
                "refusals": self.refusals, "seconds": round(self.seconds, 1)}


class _Simulation:
    def __init__(self, store: Store, rng: random.Random, calendar: WorkCalendar, say: Callable[[str], None]):
        self.clock = FixedClock(datetime.combine(START, time(8), tzinfo=ZONE))
        self.calendar = calendar
        self.engine = Engine(store, clock=self.clock, calendar=calendar, registry=WorkflowRegistry.load())
        self.log = LogNotifier()
        self.scheduler = Scheduler(store, NotifyConfig(), clock=self.clock, calendar=calendar,
                                   notifiers={"log": self.log})
        self.rng = rng
        self.say = say
        self.queue: list[tuple[datetime, int, str, int | None, int]] = []
        self.counter = itertools.count()
        self.roles: dict[str, set[str]] = {}
        self.unit_of: dict[str, str] = {}
        self.report = DemoReport(str(store.url))
        self.extended: set[int] = set()
        #: The last view of each case the simulation read or got back from a command (see :meth:`case`).
        self.views: dict[int, CaseView] = {}
        self.end = END
        # The window (demo_window.py) draws from its own generator, so the cases' story stays as it was.
        self.window = WindowStory(self.engine, self.clock, random.Random(20261130))

    # ---------------------------------------------------------------- setup

    def people(self) -> None:
        for pid, name, unit, roles, _leader, _sub in PEOPLE:  # leaders and substitutes must exist first
            self.engine.add_person(pid, name=name, unit=unit, roles=roles, replace=True)
        for pid, name, unit, roles, leader, sub in PEOPLE:
            self.engine.add_person(pid, name=name, unit=unit, roles=roles, leader=leader, substitute=sub,
                                   replace=True)
            self.roles[pid] = set(roles)
            self.unit_of[pid] = unit
        self.engine.add_person("admin", name="系统管理员", unit="县公安局", admin=True, replace=True)
        # 张丽 is on leave the week after National Day: her queue and alerts go to 刘敏 (AB岗).
        self.engine.mark_absent("zhang", start=date(2026, 10, 12), end=date(2026, 10, 16))

    def plan_openings(self) -> None:
        day = START
        while day <= self.end:
            working = self.calendar.is_workday(day)
            plan: list[str] = []
            if working:
                plan += ["hukou_transfer"] * self.rng.choice((1, 2, 2))
                plan += ["admin_license"] * self.rng.choice((0, 1))
                plan += ["petition"] * self.rng.choice((0, 0, 1))
            else:
                plan += ["holiday_appointment"] * self.rng.choice((0, 1, 1))
            plan += ["complaint_110"] * self.rng.choice((0, 0, 1))
            plan += ["criminal_detention"] * (1 if self.rng.random() < 0.25 else 0)
            for key in plan:
                minute = self.rng.randrange(9 * 60, 17 * 60)
                when = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=ZONE)
                self.push(when, key, None, 0)
            day += timedelta(days=1)

    def push(self, when: datetime, what: str, case_id: int | None, step: int) -> None:
        heapq.heappush(self.queue, (when, next(self.counter), what, case_id, step))

    # ---------------------------------------------------------------- acting

    def actor_for(self, roles: tuple[str, ...], case: CaseView) -> str:
        if not roles or (set(roles) & self.roles.get(case.responsible, set())):
            return case.responsible
        local = [p for p, r in self.roles.items() if r & set(roles) and self.unit_of[p] == case.unit]
        anywhere = [p for p, r in self.roles.items() if r & set(roles)]
        return self.rng.choice(local or anywhere)

    def next_time(self, case: CaseView, now: datetime) -> datetime:
        """Most steps come in time, some late: aim at the most urgent running clock."""
        dues = [t.due_at for t in case.timers if t.status == "running" and t.due_at is not None]
        if not dues:
            return now + timedelta(hours=self.rng.uniform(2, 30))
        due = min(dues)
        if self.rng.random() < 0.12:
            span = due - now
            late = timedelta(hours=self.rng.uniform(1, 8)) if span < timedelta(days=2) else \
                timedelta(days=self.rng.uniform(1, 4))
            return due + late
        return now + (due - now) * self.rng.uniform(0.15, 0.85)

    def open(self, key: str, when: datetime) -> None:
        actor = self.rng.choice(OPENERS[key])
        case = self.engine.open(key, actor=actor, data=self.data_for(key, None, 0))
        self.views[case.id] = case
        self.report.cases += 1
        self.report.commands += 1
        self.push(self.next_time(case, when), key, case.id, 0)

    def data_for(self, key: str, trigger: str | None, n: int) -> dict[str, str]:
        serial = next(self.counter)
        if trigger is None:
            phone = f"13{self.rng.randrange(10**8, 10**9)}"
            data = {"applicant": self.rng.choice("李王张刘陈杨赵黄周吴") + self.rng.choice(("某", "先生", "女士")),
                    "phone": phone, "no": f"{key[:2].upper()}-2026-{serial:05d}"}
            if key == "hukou_transfer":
                # The clerk states the route at acceptance: about a third of files are complete.
                data["needs_verification"] = "false" if self.rng.random() < 0.3 else "true"
            return data
        defn = self.engine.registry.latest(key)
        data = {f: self.value_for(f, serial) for t in defn.transitions_for(trigger) for f in t.requires}
        if "appointment_at" in data:  # the instant agreed with the caller: a day or two ahead, at 10:00
            agreed = self.clock.now().astimezone(ZONE) + timedelta(days=self.rng.choice((1, 2)))
            data["appointment_at"] = agreed.replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
        return data

    def value_for(self, name: str, serial: int) -> str:
        """A value such as a clerk types for a required field (a document number, a reason)."""
        if name == "handler_id":
            return self.rng.choice(("hu", "qian"))
        if name in SAMPLE_VALUES:
            return SAMPLE_VALUES[name].format(n=serial)
        return f"〔2026〕{serial}号"

    def case(self, case_id: int) -> CaseView:
        """The case as it stands: the view this simulation last saw of it, else read (see :meth:`recheck`)."""
        view = self.views.get(case_id)
        if view is None:
            view = self.views[case_id] = self.engine.get(case_id)
        return view

    def recheck(self, until: datetime) -> None:
        """Forget the views of cases moved since they were seen, with one query, for the cases with a
        step queued until ``until`` (the only ones the coming steps read).

        Every command on a case records an event and raises the case's version. Between two rechecks
        only this simulation acts on its cases, and it keeps the view each command returns (or forgets
        it); the scheduler's sweeps (a trigger acting by itself at expiry) and the window run between
        them.
        """
        ids = sorted({case_id for when, _, _, case_id, _ in self.queue
                      if when <= until and case_id is not None and case_id in self.views})
        for i in range(0, len(ids), 900):
            with self.engine.store.session() as session:
                for case_id, version in session.execute(
                    sa.select(CASES.c.id, CASES.c.version).where(CASES.c.id.in_(ids[i:i + 900]))
                ):
                    if self.views[case_id].version != version:
                        del self.views[case_id]

    def step(self, key: str, case_id: int, index: int, when: datetime) -> None:
        case = self.case(case_id)
        if case.closed_at is not None or index >= len(PATHS[key]):
            return
        defn = self.engine.registry.latest(key)
        trigger = PATHS[key][index]
        if key == "hukou_transfer" and index == 0 and case.data.get("needs_verification") == "false":
            # A complete file (证明材料齐全) needs no verification: straight to the station leader.
            trigger, index = "submit_for_approval", PATHS[key].index("submit_for_approval")
        transition = defn.find_transition(trigger, case.state)
        if transition is None:  # e.g. a complete file skipped verification
            self.push(when, key, case_id, index + 1)
            return
        if self.side_steps(key, case, when):
            self.views.pop(case_id, None)  # a pause, resume or extension moved it
        case = self.case(case_id)
        try:
            # The clerk names the community officer who takes the 交办单 (the verification is theirs).
            assign = self.rng.choice(("zhao", "li")) if trigger == "hand_over_verification" else None
            case = self.engine.fire(case_id, trigger, actor=self.actor_for(transition.roles, case),
                                    data=self.data_for(key, trigger, index), expected_version=case.version,
                                    assign=assign)
            self.views[case_id] = case
            self.report.commands += 1
        except CaseflowError as exc:
            self.report.refused += 1
            self.report.refusals.append(f"案件#{case_id} {trigger}：{exc}")
            return
        self.push(self.next_time(case, when), key, case_id, index + 1)

    def side_steps(self, key: str, case: CaseView, when: datetime) -> bool:
        """Pauses and extensions a real window would record before its next step; True when one was recorded."""
        running = {t.name: t for t in case.timers if t.status in ("running", "paused")}
        commands = self.report.commands
        try:
            if "verification" in running and running["verification"].status == "paused":
                self.engine.resume(case.id, "verification", actor="li")
                self.report.commands += 1
            elif key == "hukou_transfer" and "verification" in running and self.rng.random() < 0.15:
                self.engine.pause(case.id, "verification", reason="函调", actor="li")
                self.views.pop(case.id, None)
                self.report.commands += 1
                self.push(when + timedelta(days=self.rng.uniform(3, 9)), key, case.id,
                          PATHS[key].index("return_verification"))
                raise _Postponed
            first = case.id not in self.extended
            if key == "criminal_detention" and "arrest_request" in running and first and self.rng.random() < 0.2:
                self.extended.add(case.id)
                self.engine.extend(case.id, "arrest_request", by="4 days", grounds="特殊情况: 案情复杂",
                                   actor="chen")
                self.report.commands += 1
            if key == "admin_license" and "decision" in running and first and self.rng.random() < 0.1:
                self.extended.add(case.id)
                self.engine.extend(case.id, "decision", by="10 working_days", grounds="需组织专家论证",
                                   actor="gao", data={"applicant_notified_on": f"{when:%Y-%m-%d}"})
                self.report.commands += 1
        except CaseflowError as exc:
            self.report.refused += 1
            self.report.refusals.append(f"案件#{case.id}：{exc}")
        return self.report.commands != commands

    # ---------------------------------------------------------------- the run

    def sweep(self, at: datetime, *, digests: bool) -> None:
        self.clock.set(at)
        run = self.scheduler.run_once(at, digests=digests)
        self.report.alerts.update(run.sweep.raised)

    def run(self) -> None:
        self.people()
        self.plan_openings()
        day = START
        week_alerts: Counter[str] = Counter()
        week_cases = 0
        while day <= self.end:
            morning = datetime.combine(day, time(8, 30), tzinfo=ZONE)
            evening = datetime.combine(day, time(18, 0), tzinfo=ZONE)
            before = Counter(self.report.alerts)
            cases_before = self.report.cases
            self.sweep(morning, digests=self.calendar.is_workday(day))
            self.advance_until(evening - timedelta(minutes=30))
            self.window.day(day, self.calendar.is_workday(day))
            self.advance_until(evening)
            self.sweep(evening, digests=False)
            self.advance_until(datetime.combine(day + timedelta(days=1), time(8, 30), tzinfo=ZONE)
                               - timedelta(minutes=1))
            week_alerts.update(self.report.alerts - before)
            week_cases += self.report.cases - cases_before
            if day.weekday() == 6 or day == self.end:
                self.say(f"  {day - timedelta(days=day.weekday()):%m-%d}…{day:%m-%d}  受理 {week_cases:>3}  "
                         f"临期预警 {week_alerts['warning']:>3}  超期 {week_alerts['overdue']:>3}  "
                         f"超期督办 {week_alerts['escalated']:>3}")
                week_alerts, week_cases = Counter(), 0
            day += timedelta(days=1)

    def advance_until(self, until: datetime) -> None:
        if self.queue and self.queue[0][0] <= until:
            self.recheck(until)
        while self.queue and self.queue[0][0] <= until:
            when, _, key, case_id, index = heapq.heappop(self.queue)
            when = max(when, self.clock.now())
            self.clock.set(when)
            try:
                if case_id is None:
                    self.open(key, when)
                else:
                    self.step(key, case_id, index, when)
            except _Postponed:
                continue


def _pct(value: float | None) -> str:
    return "    —" if value is None else f"{value * 100:5.1f}%"


class _Postponed(Exception):
    """A step put off by a pause (函调): its next attempt is already queued."""


def run_demo(db: str | Path = "caseflow-demo.db", *, seed: int = 20261001,
             say: Callable[[str], None] = print, until: date = END) -> DemoReport:
    """Build ``db`` afresh and simulate 2026-09-01 … 2026-11-20 (or ``until``); ``say`` receives the story."""
    import time as _time

    started = _time.perf_counter()
    path = Path(db)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = Store(path)
    calendar = default_calendar()
    sim = _Simulation(store, random.Random(seed), calendar, say)
    sim.end = min(until, END)
    say(f"caseflow 演示 — {path}：某县公安局 {START} 至 {sim.end}（国庆 10-01…10-07，调休上班 09-20、10-10）")
    say("  周            受理  调度器发出的提醒")
    sim.run()
    report = sim.report
    say("")
    levels = {"warning": "临期预警", "overdue": "超期", "escalated": "超期督办"}
    say(f"共受理 {report.cases} 件，操作 {report.commands} 次，被引擎拒绝 {report.refused} 次；提醒："
        + "，".join(f"{levels.get(k, k)} {v} 次" for k, v in sorted(report.alerts.items())))

    labels = Labels.from_store(store)
    alerts, timers, cases = (AlertRow.__table__, TimerRow.__table__,  # type: ignore[attr-defined]
                             CaseRow.__table__)  # type: ignore[attr-defined]
    with store.session() as session:
        rows = session.execute(
            sa.select(alerts.c.case_id, timers.c.name, cases.c.workflow_key, cases.c.workflow_version,
                      cases.c.responsible_id, alerts.c.to_person, alerts.c.due_at)
            .join(timers, timers.c.id == alerts.c.timer_id).join(cases, cases.c.id == alerts.c.case_id)
            .where(alerts.c.level == "escalated")
            .order_by(alerts.c.raised_at).limit(5)
        ).all()
    if rows:
        say("最早的超期督办（发给承办人的分管领导）：")
        for case_id, timer, key, version, responsible, to, due in rows:
            line = (f"  案件#{case_id} {labels.workflow(key, version)}·{labels.timer(key, timer, version)}"
                    f"  {due_text(due)}，承办人 {labels.person(responsible)} → {labels.person(to)}")
            report.escalations.append(line.strip())
            say(line)

    # The station leader's fullest digest of the run tells the most.
    leader_digest = max((m for m in sim.log.messages if m[0] == "wang" and "日报" in m[1]),
                        key=lambda m: len(m[2]), default=None)
    if leader_digest is not None:
        to, subject, body = leader_digest
        report.digest = body
        say("")
        say(f"{labels.person(to)} 收到的内容最多的一份日报（log 通道）：{subject}")
        for line in body.splitlines()[:24]:
            say(f"  | {line}")

    say("")
    now = sim.clock.now()
    for month in ("2026-09", "2026-10", "2026-11"):
        for kind, title in KIND_TITLES.items():
            for g in compute_case_stats(store, month=month, by="unit", now=now, kind=kind, calendar=calendar):
                rate = f"{g.on_time_rate * 100:.1f}%" if g.on_time_rate is not None else "—"
                report.stats.append(f"{month} {g.key} {title} 案件办结 {g.closed} 按期办结率 {rate} "
                                    f"在办已超期 {g.open_overdue}")
    tables = stats_tables(store, month="2026-10", by="unit", now=now, calendar=calendar, labels=labels)
    say(render_stats_text(tables, heading="2026-10 按期办结率（案件与办理环节分列，法定时限与承诺时限分列；"
                                          "函调、补正等依法不计入的暂停不计入单位用时）："))
    say("  其他月份：caseflow stats --month 2026-09 --db " + str(path))
    say("")
    say("窗口服务（一次告知、当场办结、好差评）按月：")
    columns = (("visits", "来访", None), ("notices", "告知单", None), ("on_the_spot", "即办", None),
               ("accepted", "受理", None), ("over_limit_visits", "第三趟", None),
               ("first_visit_rate", "一次办结率", _pct), ("at_most_one_trip_rate", "最多跑一次率", _pct),
               ("good_rate", "好评率", _pct), ("bad", "差评", None), ("rectified_rate", "整改率", _pct),
               ("booked", "预约", None), ("no_show", "群众爽约", None), ("missed_appointments", "单位违约", None))
    window_rows = []
    for month in ("2026-09", "2026-10", "2026-11"):
        w = window_stats(store, month=month)[-1].to_dict()
        cells = [(fmt(w[key]) if fmt else str(w[key])).strip() for key, _title, fmt in columns]
        window_rows.append([month, *cells])
        report.stats.append(f"{month} 窗口 " + " ".join(f"{title} {cell}" for (_k, title, _f), cell
                                                        in zip(columns, cells, strict=True)))
    for line in table(["月份", *(title for _k, title, _f in columns)], window_rows, "<" + ">" * len(columns),
                      indent="  ").splitlines():
        say(line)
    card = scorecard(store, month="2026-10").to_dict()
    say("考评 2026-10（随附规则表 scoring.toml，得分最低的在前）：")
    lowest = sorted(card["people"], key=lambda p: p["score"])[:6]
    for line in table(["姓名", "单位", "得分", "计分事项"],
                      [[p["name"], p["unit"], p["score"],
                        "，".join(f"{card['labels'][k]} {v}" for k, v in p["counts"].items() if v)] for p in lowest],
                      "<<><", indent="  ").splitlines():
        say(line)
    problems = sim.engine.verify_audit()
    say("")
    say(f"审计：{'每个案件的事件链均校验通过' if not problems else f'{len(problems)} 处问题'}")
    report.seconds = _time.perf_counter() - started
    say(f"用时 {report.seconds:.1f} 秒。在这个数据库上打开控制台：")
    say(f"  caseflow token create wang --db {path}    # 所长的令牌（最后一行）")
    say(f"  caseflow serve --db {path}                # 然后打开 http://127.0.0.1:8000/")
    store.dispose()
    return report
