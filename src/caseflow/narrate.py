"""What people read: labels instead of keys, events as Chinese sentences, deadlines one way, data masked.

Every shell (digest, notifications, the 台账, the console, the CLI) formats person-facing text through
this module, so a clerk never reads a workflow key, a state or timer name, or a JSON brace, and a day
limit is written one way everywhere:

- ``期满 2026-11-20（周五）24:00`` — a day limit ends at 24:00 of its last day (:func:`due_text`);
- ``逾期自 11-21 00:00`` — only where the instant the timer became overdue is meant (:func:`overdue_from_text`).

Labels live in the workflow definition a case is pinned to (:class:`Labels` reads every stored version);
personal data is masked by the kind the workflow gives its field (:func:`mask_value`), unless the viewer
needs the full value (the responsible clerk on the case page).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from caseflow.calendar import ZONE
from caseflow.errors import CaseflowError, WorkflowNotFoundError
from caseflow.workflow import WorkflowDef
from caseflow.workflowfile import parse_workflow

if TYPE_CHECKING:  # pragma: no cover
    from caseflow.store import Store

__all__ = [
    "SYSTEM_ACTOR",
    "Labels",
    "case_data_items",
    "case_summary",
    "describe_event",
    "display_width",
    "due_text",
    "instant_text",
    "limit_chinese",
    "mask_text",
    "mask_value",
    "overdue_from_text",
    "status_text",
    "text_table",
    "weekday_text",
]

#: The actor the scheduler records (on_expiry triggers, calendar recomputations).
SYSTEM_ACTOR = "system"
_WEEKDAYS = "一二三四五六日"

# 18-character resident ID numbers (身份证号): 17 digits and a digit or X check character.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{14})(\d{3}[0-9Xx])(?![0-9A-Za-z])")
# Mainland mobile numbers: 11 digits starting 13–19, optionally written +86 / 86 first.
_MOBILE = re.compile(r"(?<!\d)((?:\+?86[- ]?)?)1[3-9]\d{5}(\d{4})(?!\d)")

#: How a timer's status reads (engine statuses: running, paused, met, breached, cancelled, stopped).
STATUS_ZH = {"running": "计时中", "paused": "已暂停", "met": "按期完成", "breached": "超期完成",
             "cancelled": "不适用", "stopped": "终止计时"}
#: Who bears a pause (PausePolicy.charged_to).
CHARGED_ZH = {"applicant": "申请人原因", "law": "依法不计入", "unit": "计入本单位"}


# ------------------------------------------------------------------------------------------ masking


def mask_text(text: str) -> str:
    """Mask ID numbers and mobile numbers anywhere in ``text``: only their last four characters stay readable.

    The last line of defence for free text; fields with a kind are masked by :func:`mask_value`.
    """
    if not text:
        return text
    text = _ID_NUMBER.sub(lambda m: "*" * 14 + m.group(2), text)
    return _MOBILE.sub(lambda m: m.group(1) + "*" * 7 + m.group(2), text)


def mask_value(kind: str, value: object, *, full: bool = False) -> str:
    """``value`` as a viewer of a field of ``kind`` may read it; ``full`` for the one who needs it all.

    name: the surname stays (``李**``); id_number and phone: the last four characters (the same form as
    :func:`mask_text`); address: the first six characters (the district, not the door). Other kinds are
    shown as written, still passed through :func:`mask_text` in case someone typed a number into them.
    """
    text = _plain(value)
    if full or not text:
        return text
    if kind == "name":
        return text[0] + "*" * max(1, len(text) - 1)
    if kind in ("id_number", "phone"):
        masked = mask_text(text)
        if masked != text:
            return masked
        keep = 4 if len(text) > 4 else 0
        return "*" * (len(text) - keep) + text[len(text) - keep:]
    if kind == "address":
        return text[:6] + ("***" if len(text) > 6 else "")
    return mask_text(text)


def _plain(value: object) -> str:
    """A data value as text without JSON punctuation (lists joined with 、, mappings as 键：值)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (list, tuple)):
        return "、".join(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return "；".join(f"{k}：{_plain(v)}" for k, v in value.items())
    return str(value)


# ------------------------------------------------------------------------------------------- instants


def weekday_text(day: date) -> str:
    """``周五``."""
    return "周" + _WEEKDAYS[day.weekday()]


def _is_day_end(local: datetime) -> bool:
    return local.hour == 0 and local.minute == 0 and local.second == 0 and local.microsecond == 0


def due_text(due_at: datetime | None, *, prefix: str = "期满 ") -> str:
    """A deadline as people read it: ``期满 2026-11-20（周五）24:00`` or ``期满 2026-11-20（周五）14:30``.

    A limit ending at midnight ends at 24:00 of the day before, never "00:00 the next day" (a day limit
    ends at the end of its last day). ``None`` (an uncapped pause holds the clock) reads ``期满待定（暂停中）``.
    """
    if due_at is None:
        return f"{prefix.strip()}待定（暂停中）"
    local = due_at.astimezone(ZONE)
    if _is_day_end(local):
        day = (local - timedelta(microseconds=1)).date()
        return f"{prefix}{day:%Y-%m-%d}（{weekday_text(day)}）24:00"
    return f"{prefix}{local:%Y-%m-%d}（{weekday_text(local.date())}）{local:%H:%M}"


def overdue_from_text(due_at: datetime) -> str:
    """The instant a timer became overdue: ``逾期自 11-21 00:00`` (only where that instant is meant)."""
    local = due_at.astimezone(ZONE)
    return f"逾期自 {local:%m-%d %H:%M}"


def instant_text(at: datetime) -> str:
    """An event's instant: ``2026-10-24 20:11`` (北京时间)."""
    return f"{at.astimezone(ZONE):%Y-%m-%d %H:%M}"


def limit_chinese(spec: object) -> str:
    """A limit (``"10 working_days"``, a TimeLimit, its JSON) as a clerk reads it: ``10个工作日``."""
    from caseflow.timelimits import TimeLimit

    value: Any = spec
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    try:
        if isinstance(value, TimeLimit):
            return value.chinese()
        if isinstance(value, Mapping) and "amount" in value and "unit" in value:
            return TimeLimit(int(value["amount"]), value["unit"]).chinese()
        if isinstance(value, (str, int)):
            # str(TimeLimit) may carry its options: "15 days (no roll-forward)".
            return TimeLimit.parse(str(value).split("(")[0].strip()).chinese()
    except (CaseflowError, TypeError, ValueError):
        pass
    return _plain(value)


def status_text(status: str) -> str:
    """A timer status in Chinese (``计时中``, ``超期完成`` …)."""
    return STATUS_ZH.get(status, "其他")


# -------------------------------------------------------------------------------------------- labels


#: Undeclared data under these keys is the case's title: shown first, without a label.
_TITLE_KEYS = frozenset({"title", "subject", "summary", "标题", "事由", "案由"})
_TITLE = "标题"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _unlabelled(name: str | None, fallback: str) -> str:
    """A name no definition labels: shown when it is already words (``今日到期``), never when it is a key."""
    return name if name and not _IDENTIFIER.match(name) else fallback


@lru_cache(maxsize=256)
def _parse_stored(text: str, version: str) -> WorkflowDef | None:
    try:
        return parse_workflow(text, path=f"stored version {version[:12]}")
    except CaseflowError:
        return None


class _HasDefinitions(Protocol):
    def latest(self, key: str) -> WorkflowDef: ...


@dataclass
class Labels:
    """Labels of workflows, states, timers, fields and roles, and people's names, for one rendering pass.

    Build it with :meth:`from_store` (every stored definition version and every person) or from
    definitions in hand. Look-ups take the case's pinned ``version`` when known and fall back to the
    latest definition of the ``key``. A name no definition knows reads ``其他环节``/``其他状态``, never the key.
    """

    by_version: dict[str, WorkflowDef] = field(default_factory=dict)
    by_key: dict[str, WorkflowDef] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, definitions: Iterable[WorkflowDef], people: Mapping[str, str] | None = None) -> Labels:
        """Labels from definitions in hand (the latest of each key wins)."""
        labels = cls(people=dict(people or {}))
        for defn in definitions:
            labels.add(defn)
        return labels

    @classmethod
    def from_store(cls, store: Store, *, registry: Iterable[WorkflowDef] | None = None) -> Labels:
        """Every definition version stored (cases are pinned to them) and every person's name."""
        import sqlalchemy as sa

        from caseflow.store import Person, WorkflowVersion

        labels = cls()
        for defn in registry or ():
            labels.add(defn)
        with store.session() as session:
            wv, people = WorkflowVersion.__table__, Person.__table__  # type: ignore[attr-defined]
            versions = session.execute(sa.select(wv.c.version, wv.c.text, wv.c.key, wv.c.title)
                                       .order_by(wv.c.loaded_at)).all()
            labels.people.update({pid: name for pid, name in session.execute(sa.select(people.c.id, people.c.name))})
        for version, text, key, title in versions:
            labels.titles.setdefault(key, title)
            parsed = _parse_stored(text, version)
            if parsed is not None:
                labels.by_version[version] = parsed
                labels.by_key.setdefault(parsed.key, parsed)
        if not labels.by_key or registry is None:
            from caseflow.registry import WorkflowRegistry

            try:
                for defn in WorkflowRegistry.load():
                    labels.by_version.setdefault(defn.version, defn)
                    labels.by_key.setdefault(defn.key, defn)
            except CaseflowError:  # pragma: no cover - the shipped files always load
                pass
        return labels

    def with_people(self, people: Mapping[str, str]) -> Labels:
        """These definitions with ``people``'s names: definitions kept between passes, names read afresh."""
        return Labels(by_version=dict(self.by_version), by_key=dict(self.by_key), people=dict(people),
                      titles=dict(self.titles))

    def add(self, defn: WorkflowDef) -> None:
        """Know ``defn`` (as the latest of its key)."""
        self.by_version[defn.version] = defn
        self.by_key[defn.key] = defn

    def definition(self, key: str | None, version: str | None = None) -> WorkflowDef | None:
        """The definition a case is pinned to, or the latest of its key."""
        if version and version in self.by_version:
            return self.by_version[version]
        return self.by_key.get(key or "")

    def workflow(self, key: str | None, version: str | None = None) -> str:
        """The procedure's title (``户口迁移(派出所户籍窗口)``)."""
        defn = self.definition(key, version)
        return defn.title if defn is not None else self.titles.get(key or "", _unlabelled(key, "其他程序"))

    def state(self, key: str | None, state: str | None, version: str | None = None) -> str:
        """A state's label (``社区民警调查核实``)."""
        defn = self.definition(key, version)
        if defn is not None and state is not None:
            with contextlib.suppress(WorkflowNotFoundError):  # a state of no definition known here
                return defn.state(state).label
        return _unlabelled(state, "其他状态")

    def timer(self, key: str | None, name: str | None, version: str | None = None) -> str:
        """A timer's label (``社区民警调查核实``)."""
        defn = self.definition(key, version)
        if defn is not None and name is not None:
            with contextlib.suppress(WorkflowNotFoundError):
                return defn.timer(name).label
        return _unlabelled(name, "其他环节")

    def transition(self, key: str | None, trigger: str | None, version: str | None = None) -> str:
        """A trigger's label; the target state's label when the transition has none."""
        defn = self.definition(key, version)
        if defn is not None and trigger is not None:
            for t in defn.transitions_for(trigger):
                if t.label:
                    return t.label
                return f"转入「{self.state(key, t.dest, version)}」"
        return "办理"

    def role(self, key: str | None, role: str, version: str | None = None) -> str:
        """A role's label (``户籍民警``)."""
        defn = self.definition(key, version)
        if defn is not None and role in defn.roles:
            return defn.roles[role]
        for other in self.by_key.values():
            if role in other.roles:
                return other.roles[role]
        return "其他岗位"

    def field_label(self, key: str | None, name: str, version: str | None = None) -> str:
        """A field's label; the clerk's own words for data the workflow does not declare."""
        defn = self.definition(key, version)
        if defn is not None and name in defn.fields:
            return defn.fields[name].label
        if name in _TITLE_KEYS:
            return _TITLE
        return _unlabelled(name, "其他信息")

    def field_kind(self, key: str | None, name: str, version: str | None = None) -> str:
        """A field's kind (``text`` for undeclared data)."""
        defn = self.definition(key, version)
        fdef = defn.fields.get(name) if defn is not None else None
        return fdef.kind if fdef is not None else "text"

    def person(self, pid: str | None) -> str:
        """A person's name (``社区民警 李军``); ``系统`` for the scheduler."""
        if pid is None or pid == "":
            return "—"
        if pid == SYSTEM_ACTOR:
            return "系统"
        return self.people.get(pid, pid)


# ----------------------------------------------------------------------------------------- case data


def case_data_items(labels: Labels, key: str | None, data: Mapping[str, Any] | str | None, *,
                    version: str | None = None, full: bool = False) -> list[tuple[str, str]]:
    """``[(label, value)]`` of a case's data, masked by kind unless ``full``; empty values left out."""
    if isinstance(data, str):
        try:
            data = json.loads(data or "{}")
        except ValueError:
            return []
    if not isinstance(data, Mapping):
        return []
    items = []
    defn = labels.definition(key, version)
    # Declared fields first, in the workflow's order; then the clerk's own, as given.
    order = [k for k in (defn.fields if defn is not None else ()) if k in data] + \
        [k for k in data if defn is None or k not in defn.fields]
    for name in order:
        value = mask_value(labels.field_kind(key, name, version), data[name], full=full)
        if value:
            items.append((labels.field_label(key, name, version), value))
    return items


def case_summary(labels: Labels, key: str | None, data: Mapping[str, Any] | str | None, *,
                 version: str | None = None, limit: int = 60) -> str:
    """A short, masked description of a case: ``申请人 李** · 联系电话 *******5678 · 受理编号 HU-2026-00012``."""
    items = case_data_items(labels, key, data, version=version)
    titles = [value for label, value in items if label == _TITLE]
    text = " · ".join(titles + [f"{label} {value}" for label, value in items if label != _TITLE])
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------- events


class EventLike(Protocol):
    """What :func:`describe_event` reads of an event (``EventView`` has it)."""

    @property
    def kind(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def trigger(self) -> str | None: ...
    @property
    def from_state(self) -> str | None: ...
    @property
    def to_state(self) -> str | None: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


def _timers_phrase(labels: Labels, key: str, version: str | None, names: Iterable[Any]) -> str:
    return "".join(f"「{labels.timer(key, n if isinstance(n, str) else n.get('timer'), version)}」" for n in names)


def _transition_phrase(labels: Labels, key: str, version: str | None, event: Any,
                       d: Mapping[str, Any]) -> str:
    """What a transition did, fired by a person or by an expiry: the state change, the clocks it stopped
    and those it started."""
    text = ""
    if event.to_state and event.to_state != event.from_state:
        before, after = labels.state(key, event.from_state, version), labels.state(key, event.to_state, version)
        text += f"，状态「{before}」→「{after}」"
    stopped = _stopped_phrase(labels, key, version, d.get("stopped") or ())
    if stopped:
        text += "；" + "、".join(stopped)
    if d.get("started"):
        text += f"；开始计时{_timers_phrase(labels, key, version, d['started'])}"
    return text


def _stopped_phrase(labels: Labels, key: str, version: str | None, stopped: Iterable[Any]) -> list[str]:
    parts = []
    for item in stopped:
        if isinstance(item, Mapping):
            name, status = item.get("timer"), str(item.get("status", "stopped"))
        else:
            name, status = item, "stopped"
        parts.append(f"「{labels.timer(key, name, version)}」{status_text(status)}")
    return parts


def _due_of(iso: object) -> str:
    if not isinstance(iso, str) or not iso:
        return "期满待定（暂停中）"
    try:
        return due_text(datetime.fromisoformat(iso))
    except ValueError:
        return "期满待定"


def describe_event(event: EventLike, labels: Labels, key: str, *, version: str | None = None,
                   full: bool = False, head: bool = True) -> str:
    """One event of a case as a sentence, e.g.
    ``2026-10-24 20:11 社区民警 李军 暂停「社区民警调查核实」计时：函调``.

    ``key``/``version`` name the case's workflow (labels come from it); data fields are masked by kind
    unless ``full``; ``head=False`` leaves out the instant and the person (a table shows them apart).
    """
    who = labels.person(event.actor)
    text = describe_event_parts(event, labels, key, version=version, full=full)
    return f"{instant_text(event.at)} {who} {text}" if head else text


def describe_event_parts(event: EventLike, labels: Labels, key: str, *, version: str | None = None,
                         full: bool = False) -> str:
    """What :func:`describe_event` says after the instant and the person (``暂停「…」计时：函调``)."""
    d = event.data or {}
    timer = labels.timer(key, d.get("timer"), version) if d.get("timer") else ""

    def data_phrase(values: object) -> str:
        items = case_data_items(labels, key, values if isinstance(values, Mapping) else {}, version=version,
                                full=full)
        return "（" + "，".join(f"{label} {value}" for label, value in items) + "）" if items else ""

    kind = event.kind
    if kind == "open":
        text = f"受理「{labels.workflow(key, version)}」，状态「{labels.state(key, event.to_state, version)}」"
        text += data_phrase(d.get("data"))
        responsible = d.get("responsible")
        if responsible and responsible != event.actor:
            text += f"，由 {labels.person(responsible)} 承办"
        if d.get("started"):
            text += f"；开始计时{_timers_phrase(labels, key, version, d['started'])}"
        return text
    if kind == "fire":
        action = labels.transition(key, event.trigger, version)
        text = f"{action}"
        text += data_phrase(d.get("data"))
        return text + _transition_phrase(labels, key, version, event, d)
    if kind == "pause":
        text = f"暂停「{timer}」计时：{_plain(d.get('reason'))}"
        charged = CHARGED_ZH.get(str(d.get("charged_to")))
        return text + (f"（{charged}）" if charged else "") + data_phrase(d.get("data"))
    if kind == "resume":
        return f"恢复「{timer}」计时（{_plain(d.get('reason'))}结束），{_due_of(d.get('due_at'))}"
    if kind == "extend":
        return (f"批准延长「{timer}」{limit_chinese(d.get('by'))}：{_plain(d.get('grounds'))}"
                f"{data_phrase(d.get('data'))}，{_due_of(d.get('due_at'))}")
    if kind == "hand_over":
        slip = f"（交办单 {_plain(d.get('slip'))}）" if d.get("slip") else ""
        return f"将案件交给 {labels.person(d.get('to'))}{slip}"
    if kind in ("hand_over_step", "hand_over_timer"):
        reason = f"：{_plain(d.get('reason'))}" if d.get("reason") else ""
        return f"将「{timer}」转交 {labels.person(d.get('to'))}{reason}"
    if kind == "reassign":
        reason = f"：{_plain(d.get('reason'))}" if d.get("reason") else ""
        return f"将案件改派给 {labels.person(d.get('to'))}{reason}"
    if kind == "close":
        text = f"在流程外结案：{_plain(d.get('reason'))}"
        ended = d.get("stopped") or ()
        return text + (f"；终止计时{_timers_phrase(labels, key, version, ended)}" if ended else "")
    if kind == "recompute":
        moved = [f"「{labels.timer(key, m.get('timer'), version)}」{_due_of(m.get('to'))}"
                 for m in d.get("moved") or () if isinstance(m, Mapping)]
        return "因节假日安排变更重算期限：" + "、".join(moved)
    if kind == "assign":
        return f"指定 {labels.person(d.get('to') or d.get('assignee'))} 负责「{timer}」"
    if kind == "expire":
        # on_expiry: the timer acted by itself at its due instant (event.actor is "system").
        found = d.get("expired")
        expired: Mapping[str, Any] = found if isinstance(found, Mapping) else d
        name = labels.timer(key, expired.get("timer"), version) if expired.get("timer") else ""
        action = labels.transition(key, event.trigger, version)
        text = f"「{name}」期满，自动{action}"
        if d.get("refused"):
            return text + f"未执行：{_plain(d.get('refused'))}"
        return text + _transition_phrase(labels, key, version, event, d)
    return "记录了一项操作"


# -------------------------------------------------------------------------------------------- tables


_FIGURE = re.compile(r"^(—|-?[\d.,]+%?)$")


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: East Asian wide and full-width characters take two."""
    from caseflow.textwidth import width

    return width(text)


def text_table(headers: tuple[str, ...] | list[str], rows: Iterable[Iterable[str]]) -> list[str]:
    """Lines of a table aligned by display width: columns of figures to the right, words to the left."""
    body = [list(map(str, row)) for row in rows]
    columns = list(zip(headers, *body, strict=False))
    widths = [max(display_width(str(cell)) for cell in column) for column in columns]
    figures = [bool(body) and all(_FIGURE.match(cell) for cell in column[1:]) for column in columns]

    def line(cells: Iterable[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - display_width(cell))
            out.append(pad + cell if figures[i] else cell + pad)
        return "  ".join(out).rstrip()

    return [line(list(headers))] + [line(row) for row in body]
