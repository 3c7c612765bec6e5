"""A leader's digest (督办日报): what is overdue, what falls due, what was escalated, the month so far.

A leader sees the cases of their own unit and of every unit whose people have them as leader. The
digest lists:

- overdue timers, worst first, with how late they are (working days for day limits, hours for hour
  limits), the step, the responsible person and the unit;
- timers falling due today and on the next working day (rest days in between included: a calendar-day
  limit can end on a Saturday);
- escalations raised since the previous working day;
- the month's on-time rate so far.

Every timer is as it stood at the digest's instant (:func:`caseflow.asof.timers_as_of`), so a digest
asked for a past morning shows what that morning's digest showed. People read labels (procedure, step,
state), a deadline written one way (``期满 2026-11-20（周五）24:00``), and case data masked by the kind
the workflow gives each field (:mod:`caseflow.narrate`).
It renders as text, Markdown or HTML through the Jinja2 templates in ``caseflow/templates``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from caseflow.alert_levels import LEVEL_ZH
from caseflow.alerts import ALERTS, CASES, PEOPLE, TIMERS, table_of
from caseflow.asof import timers_as_of
from caseflow.calendar import ZONE, WorkCalendar, default_calendar
from caseflow.errors import PersonNotFoundError
from caseflow.narrate import Labels, case_summary, due_text, mask_text
from caseflow.notify import BODY_FORMATS
from caseflow.stats import GroupStats, StatsError, compute_stats, is_clock_limit, total
from caseflow.store import Person, Store, WorkflowVersion

__all__ = ["Digest", "DigestItem", "build_digest", "build_digests", "leader_units", "render_digest"]

TEMPLATES = Path(__file__).parent / "templates"
_VERSIONS = table_of(WorkflowVersion)
#: How a timer's kind reads.
KIND_ZH = {"statutory": "法定时限", "promised": "承诺时限"}


@dataclass
class DigestItem:
    """One timer in a digest. ``timer``/``workflow``/``state`` are keys (for programs); people read the labels."""

    case_id: int
    timer_id: int
    timer: str
    workflow: str
    state: str
    responsible_id: str
    responsible: str
    unit: str
    due_at: datetime
    due_text: str
    late_text: str = ""
    late_working_days: int | None = None
    late_hours: float | None = None
    level: str | None = None
    summary: str = ""
    timer_label: str = ""
    workflow_label: str = ""
    state_label: str = ""
    kind: str = "statutory"

    @property
    def kind_label(self) -> str:
        """法定时限 or 承诺时限."""
        return KIND_ZH.get(self.kind, "时限")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        data = asdict(self)
        data["due_at"] = self.due_at.isoformat()
        return data


@dataclass
class Digest:
    """Everything a leader's digest shows, before rendering."""

    leader_id: str
    leader: str
    at: datetime
    units: list[str]
    today: date
    next_workday: date
    overdue: list[DigestItem] = field(default_factory=list)
    due_today: list[DigestItem] = field(default_factory=list)
    due_next: list[DigestItem] = field(default_factory=list)
    escalations: list[DigestItem] = field(default_factory=list)
    month: str = ""
    month_stats: GroupStats | None = None
    #: The month's window figures and 考评 score per unit (windowstats.py, scoring.py).
    window: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when there is nothing to report (no overdue, nothing due, no escalation)."""
        return not (self.overdue or self.due_today or self.due_next or self.escalations)

    @property
    def on_time_rate(self) -> float | None:
        """The month's on-time rate so far."""
        return self.month_stats.on_time_rate if self.month_stats is not None else None

    @property
    def subject(self) -> str:
        """A one-line subject for mail and chat."""
        return (f"办理时限日报 {self.today:%Y-%m-%d} {self.leader}：超期 {len(self.overdue)} 件，"
                f"今日到期 {len(self.due_today)} 件")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly digest."""
        stats = self.month_stats.to_dict() if self.month_stats is not None else None
        return {
            "leader": self.leader_id, "leader_name": self.leader, "at": self.at.isoformat(),
            "units": self.units, "today": self.today.isoformat(), "next_workday": self.next_workday.isoformat(),
            "overdue": [i.to_dict() for i in self.overdue], "due_today": [i.to_dict() for i in self.due_today],
            "due_next": [i.to_dict() for i in self.due_next],
            "escalations": [i.to_dict() for i in self.escalations],
            "month": self.month, "month_stats": stats, "subject": self.subject, "window": self.window,
        }


def leader_units(session: sa.orm.Session, leader: Person) -> list[str]:
    """The leader's unit and every unit whose people have them as leader."""
    units = {leader.unit}
    units.update(session.execute(
        sa.select(PEOPLE.c.unit).where(PEOPLE.c.leader_id == leader.id).distinct()
    ).scalars())
    return sorted(units)


def _last_day(due: datetime, last_day: date | None) -> date:
    return last_day or (due.astimezone(ZONE) - timedelta(microseconds=1)).date()


def build_digest(store: Store, leader_id: str, at: datetime, *, calendar: WorkCalendar | None = None,
                 labels: Labels | None = None) -> Digest:
    """Collect a leader's digest as it stood at ``at`` (rebuilt from recorded instants, see :mod:`caseflow.asof`).

    Raise :class:`PersonNotFoundError` for an unknown leader.
    """
    return build_digests(store, [leader_id], at, calendar=calendar, labels=labels)[0]


def build_digests(store: Store, leader_ids: Sequence[str], at: datetime, *, calendar: WorkCalendar | None = None,
                  labels: Labels | None = None, definitions: Labels | None = None) -> list[Digest]:
    """The digests of several leaders as they stood at ``at``, in the order asked; each as :func:`build_digest`.

    What the leaders share is read once for all of them: the timers of every unit any of them sees as
    they stood at ``at``, the escalations of the day, the month's figures per unit, the window's figures
    and the scorecard; each digest then keeps the rows of its own units. Raise
    :class:`PersonNotFoundError` naming the first unknown leader.

    ``labels`` are used as given; without them, ``definitions`` (labels a caller keeps between runs, such
    as the scheduler's) give the definitions' labels with people's names read afresh, unless a version
    stored since is missing from them; else every label is read from ``store``.
    """
    cal = calendar or default_calendar()
    at = at.astimezone(ZONE)
    today = at.date()
    next_wd = cal.next_workday(today)
    tomorrow_start = datetime.combine(today + timedelta(days=1), datetime.min.time(), ZONE)
    after_next = datetime.combine(next_wd + timedelta(days=1), datetime.min.time(), ZONE)
    since = datetime.combine(cal.add_working_days(today, -1), at.timetz())
    month = f"{today:%Y-%m}"
    t = TIMERS.c
    c = CASES.c
    a = ALERTS.c
    p = PEOPLE.c
    if labels is None and definitions is None:
        labels = Labels.from_store(store)
    # One read transaction for everything the digests show: their figures agree with one another.
    with store.session() as session:
        # The roster, read once: the leaders' names and units, whose people they lead, and every name shown.
        roster = session.execute(sa.select(p.id, p.name, p.unit, p.leader_id)).all()
        if labels is None:
            labels = _kept_or_fresh(store, session, definitions, {pid: name for pid, name, _, _ in roster})
        found = {pid: (name, unit) for pid, name, unit, _ in roster}
        for leader_id in leader_ids:
            if leader_id not in found:
                raise PersonNotFoundError(
                    f"no person has the id {leader_id!r}; a digest needs a leader's person id")
        # A leader sees their own unit and every unit whose people have them as leader (leader_units).
        scopes: dict[str, set[str]] = {pid: {found[pid][1]} for pid in leader_ids}
        for _, _, unit, leader in roster:
            if leader in scopes:
                scopes[leader].add(unit)
        every_unit = sorted(set().union(*scopes.values())) if scopes else []
        escalated = session.execute(
            sa.select(a.timer_id, a.case_id, a.raised_at, a.due_at, a.to_person, a.unit.label("alert_unit"),
                      t.name, t.kind, t.last_day, t.limit_spec, c.workflow_key, c.workflow_version, c.state,
                      sa.func.coalesce(t.assignee, c.responsible_id).label("responsible_id"), c.unit, c.data)
            .join_from(ALERTS, TIMERS, a.timer_id == t.id)
            .join(CASES, a.case_id == c.id)
            .where(a.level == "escalated", a.unit.in_(every_unit), a.raised_at > since, a.raised_at <= at)
            .order_by(a.due_at, a.id)
        ).all() if every_unit else []
        rows = sorted(timers_as_of(store, at, units=every_unit, open_only=True, due_before=after_next,
                                   calendar=cal, labels=labels, session=session),
                      key=lambda r: (r.due_at, r.id))
        # The month so far per unit: the rows just read that were running past due at ``at`` are the ones
        # compute_stats would read again (due_before=at is a narrower look at the same instant).
        overdue_now = [r for r in rows if r.due_at is not None and r.due_at <= at]
        try:
            groups = compute_stats(store, month=month, by="unit", units=every_unit, until=at, now=at,
                                   calendar=cal, as_of=overdue_now, session=session)
        except StatsError:  # pragma: no cover - the month is always valid here
            groups = []
        window = _Window(store, month, session)
    summaries: dict[tuple[int, str], str] = {}

    def item(r: Any, level: str | None, *, timer_id: int, state: str, responsible: str, unit: str) -> DigestItem:
        version = r.workflow_version
        summary = summaries.get((r.case_id, version))
        if summary is None:
            summary = summaries[(r.case_id, version)] = case_summary(labels, r.workflow_key, r.data,
                                                                     version=version)
        return DigestItem(
            case_id=r.case_id, timer_id=timer_id, timer=r.name, workflow=r.workflow_key,
            state=state, responsible_id=responsible, responsible=labels.person(responsible),
            unit=unit, due_at=r.due_at, due_text=due_text(r.due_at), level=level, summary=summary,
            timer_label=labels.timer(r.workflow_key, r.name, version),
            workflow_label=labels.workflow(r.workflow_key, version),
            state_label=labels.state(r.workflow_key, state, version), kind=r.kind,
        )

    digests = []
    for leader_id in leader_ids:
        scope = scopes[leader_id]
        units = sorted(scope)
        digest = Digest(leader_id, found[leader_id][0], at, units, today, next_wd, month=month)
        for r in rows:
            if r.unit not in scope or r.due_at is None or r.status != "running":  # a paused clock does not fall due
                continue
            # The step's assignee answers for it, not the case's first clerk.
            entry = item(r, r.alert_level, timer_id=r.id, state=r.state, responsible=r.assignee or r.responsible_id,
                         unit=r.unit)
            if r.due_at <= at:
                if is_clock_limit(r.limit_spec, r.last_day):
                    entry.late_hours = round((at - r.due_at).total_seconds() / 3600, 1)
                    entry.late_text = f"逾期 {entry.late_hours:g} 小时"
                else:
                    entry.late_working_days = max(1, cal.working_days_between(_last_day(r.due_at, r.last_day),
                                                                              today))
                    entry.late_text = f"逾期 {entry.late_working_days} 个工作日"
                digest.overdue.append(entry)
            elif r.due_at <= tomorrow_start:
                digest.due_today.append(entry)
            else:
                digest.due_next.append(entry)
        # Worst first: the longest overdue (earliest due instant) leads; rows come sorted by due_at already.
        for e in escalated:
            if e.alert_unit not in scope:
                continue
            entry = item(e, "escalated", timer_id=e.timer_id, state=e.state, responsible=e.responsible_id,
                         unit=e.unit)
            entry.late_text = f"{LEVEL_ZH['escalated']}，已通知 {labels.person(e.to_person)}"
            digest.escalations.append(entry)
        digest.month_stats = total((g for g in groups if g.key in scope), key="month")
        digest.window = window.lines(units)
        digests.append(digest)
    return digests


def _kept_or_fresh(store: Store, session: sa.orm.Session, definitions: Labels | None,
                   names: dict[str, str]) -> Labels:
    """``definitions`` with people's ``names`` as read now, unless a version stored since is missing from them."""
    if definitions is not None:
        stored = set(session.execute(sa.select(_VERSIONS.c.version)).scalars())
        if stored <= definitions.by_version.keys():
            return definitions.with_people(names)
    return Labels.from_store(store)


class _Window:
    """The month's window figures and scorecard, read once for all the digests of one instant."""

    def __init__(self, store: Store, month: str, session: sa.orm.Session | None = None) -> None:
        from caseflow.scoring import scorecard
        from caseflow.windowstats import window_stats

        self.figures = {r.key: r.to_dict() for r in window_stats(store, month=month, session=session)}
        card = scorecard(store, month=month, session=session).to_dict()
        self.base = card["rules"]["base"]
        self.scores = {u["key"]: u["score"] for u in card["units"]}

    def lines(self, units: list[str]) -> list[dict[str, Any]]:
        """Per unit of a digest: the window's figures and the month's 考评 score so far (units with either)."""
        from caseflow.windowstats import WindowStats

        return [{**self.figures.get(unit, WindowStats(unit).to_dict()), "score": self.scores.get(unit, self.base)}
                for unit in units if unit in self.figures or unit in self.scores]


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.1f}%"
    env.filters["mask"] = mask_text
    env.filters["md"] = _md_escape
    return env


def _md_escape(value: Any) -> str:
    """Escape text for a Markdown table or list: no markup, and no raw HTML either."""
    text = str(value)
    for ch in ("\\", "|", "*", "_", "`", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


_TEMPLATE_NAMES = {"text": "digest.txt.j2", "markdown": "digest.md.j2", "html": "digest.html.j2"}


def render_digest(digest: Digest, fmt: str = "text") -> str:
    """Render a digest as ``text``, ``markdown`` or ``html``; personal numbers come out masked."""
    if fmt not in BODY_FORMATS:
        raise StatsError(f"unknown digest format {fmt!r}; choose one of {', '.join(BODY_FORMATS)}")
    template = _environment().get_template(_TEMPLATE_NAMES[fmt])
    text: str = template.render(d=digest, level_zh=LEVEL_ZH)
    # A last pass: whatever a template shows, no full ID or mobile number leaves the process.
    return mask_text(text)


def digest_formats() -> Sequence[str]:
    """The formats :func:`render_digest` knows."""
    return BODY_FORMATS
