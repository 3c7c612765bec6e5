"""The front desk: visits, 当场办结, acceptance with a receipt, and the 一次告知单.

The rules it keeps (seeds in shared/seeds/):

- 户籍窗口 六(一) (seed 000): "凡能够确认符合政策规定，证明材料齐全、具备当场办理条件的，均应当场办理" — a visit with
  nothing missing may be handled on the spot: the case opens and closes at once and counts as 即办.
- 户籍窗口 四(五): "材料齐全的当场办结(受理)，材料不全的，提供办证、办事须知，不让群众跑第三趟";
  出入境窗口 10: "一次告知应补齐的所有材料", "到出入境管理部门不超过三次"; 行政服务中心 "一次告知、两次终结制"
  (seed 001); 交巡警 第十八条
  "手续不全的应一次性退办或口头告知交代清楚，确保第二次即时办结"; 行政许可法 第三十二条(四) "一次告知申请人需要补正的
  全部内容". Hence a 一次告知单 lists *every* missing material, and a later notice for the same applicant and
  matter may not ask for a material the earlier ones did not list — unless the procedure's material list
  changed since, or a leader overrides with a recorded reason.
- Visits are counted per applicant and matter; when a notice sends the applicant away on the last visit the
  procedure allows (``service.max_visits``: 户籍 2, 出入境 3), or a visit beyond it is recorded, the clerk and
  their leader are warned.

An applicant is known by a keyed fingerprint of the ID number (never the number itself: applicants.py, with
the site secret kept outside the database); the number is shown masked everywhere (last four characters).
The 告知单 and the acceptance receipt (受理回执) carry a query code for the public page (publicity.py); only
its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlmodel import Field, Session, select

from caseflow.alerts import table_of
from caseflow.applicants import (
    ApplicantKey,
    KeyedDesk,
    legacy_fingerprint,
    legacy_held,
    mask_id_number,
    rekey_held,
    scheme_field,
)
from caseflow.calendar import ZONE
from caseflow.engine import Engine
from caseflow.errors import CommandError, NotFoundError, PermissionDeniedError
from caseflow.materials import Material, materials_digest
from caseflow.outbox import Outbox
from caseflow.store import CaseflowBase, Person, UTCDateTime
from caseflow.unitofwork import _new_row
from caseflow.views import CaseView
from caseflow.workflow import WorkflowDef

__all__ = [
    "Desk",
    "DeskError",
    "Notice",
    "NoticeRow",
    "QueryCodeRow",
    "Receipt",
    "VisitRow",
    "VisitView",
    "code_hash",
    "insert_row",
    "mask_id_number",
    "new_query_code",
    "outbox_sender",
]

#: Visit outcomes: still at the desk, handled on the spot (即办), accepted (a case opened), sent away with a notice.
OUTCOMES = ("open", "on_the_spot", "accepted", "notice")
#: The reason an on-the-spot case is closed with.
ON_THE_SPOT = "当场办结"
#: Query-code alphabet: no 0/O, 1/I/L, so a code read over the phone survives.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
#: How many query codes a settlement draws before giving up (a clash is ~1 in 8·10^17 per draw).
_CODE_ATTEMPTS = 3
_CODE_RE = re.compile(r"^[2-9A-HJKMNP-Z]{4}-?[2-9A-HJKMNP-Z]{4}-?[2-9A-HJKMNP-Z]{4}$")


class DeskError(CommandError):
    """A desk command refused: the message names the rule and what to do (``zh``: for the public, if shown)."""

    def __init__(self, message: str, *, zh: str = "") -> None:
        super().__init__(message)
        self.zh = zh or "办理未成功,请检查后重试"


# ------------------------------------------------------------------------------------------- tables


class VisitRow(CaseflowBase, table=True):
    """One visit (一趟) of an applicant to the window for one matter (a workflow)."""

    __tablename__ = "caseflow_visits"
    __table_args__ = (sa.Index("ix_caseflow_visits_applicant_matter", "applicant_hash", "workflow_key"),
                      sa.Index("ix_caseflow_visits_unit_at", "unit", "at"))

    id: int | None = Field(default=None, primary_key=True)
    workflow_key: str = Field(max_length=100)
    workflow_version: str = Field(max_length=64)
    materials_digest: str = Field(max_length=64)
    applicant_hash: str = Field(max_length=64)
    applicant_masked: str = Field(max_length=40)
    unit: str = Field(max_length=100)
    clerk_id: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)
    number: int  # the applicant's n-th visit for this matter
    brought: str = "[]"  # JSON list of material keys ticked
    applies: str = "[]"  # JSON list of conditional material keys whose condition applies
    outcome: str = Field(default="open", max_length=16)
    case_id: int | None = Field(default=None, foreign_key="caseflow_cases.id", index=True)
    notice_id: int | None = None
    over_limit: bool = False  # a visit beyond the procedure's max_visits (第三趟)
    warning: str | None = None  # the 第三趟 warning given, if any
    #: applicants.SCHEME, or the old "sha256"; last, where migration 0008 added it.
    applicant_scheme: str = scheme_field()


class NoticeRow(CaseflowBase, table=True):
    """One 一次告知单: the numbered list of every missing material, issued at a visit."""

    __tablename__ = "caseflow_notices"
    __table_args__ = (sa.Index("ix_caseflow_notices_applicant_matter", "applicant_hash", "workflow_key"),)

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=40, unique=True)
    visit_id: int = Field(foreign_key="caseflow_visits.id", index=True)
    workflow_key: str = Field(max_length=100)
    applicant_hash: str = Field(max_length=64)
    unit: str = Field(max_length=100)
    materials_digest: str = Field(max_length=64)
    items: str = "[]"  # JSON list of Material.to_dict()
    issued_by: str = Field(max_length=64)
    issued_at: datetime = Field(sa_type=UTCDateTime)
    override_by: str | None = Field(default=None, max_length=64)
    override_reason: str | None = None
    applicant_scheme: str = scheme_field()  # last, where migration 0008 added it


class QueryCodeRow(CaseflowBase, table=True):
    """A query code handed to an applicant (on a 告知单 or 受理回执), stored as its SHA-256."""

    __tablename__ = "caseflow_query_codes"

    code_hash: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # notice, receipt
    visit_id: int = Field(foreign_key="caseflow_visits.id", index=True)
    case_id: int | None = Field(default=None, foreign_key="caseflow_cases.id", index=True)
    notice_id: int | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)


_VISITS, _NOTICES, _CODES = table_of(VisitRow), table_of(NoticeRow), table_of(QueryCodeRow)
_VISIT_COLUMNS = tuple(c.key for c in _VISITS.columns)
#: A visit's first read: the clerk, the applicant's earlier visits for the matter (under either
#: fingerprint: the unkeyed ones are re-keyed in the same transaction) and whether rows are left unkeyed.
_VISIT_READ = sa.select(
    Person,
    sa.select(sa.func.count()).select_from(_VISITS).where(
        _VISITS.c.applicant_hash.in_([sa.bindparam("fingerprint"), sa.bindparam("old")]),
        _VISITS.c.workflow_key == sa.bindparam("workflow")).scalar_subquery(),
    *legacy_held()).where(Person.id == sa.bindparam("actor"))  # type: ignore[arg-type]
#: Settle a visit still open (the row lock held until the case commits) and read it back, in one statement.
_SETTLE_OPEN = (_VISITS.update().where(_VISITS.c.id == sa.bindparam("w_id"), _VISITS.c.outcome == "open")
                .values(outcome=sa.bindparam("w_outcome"), case_id=sa.bindparam("w_case")).returning(*_VISITS.columns))
#: SET columns come from each call's parameters.
_UPDATE_VISIT = _VISITS.update().where(_VISITS.c.id == sa.bindparam("w_id"))
_UPDATE_NOTICE = _NOTICES.update().where(_NOTICES.c.id == sa.bindparam("w_id"))
_INSERT_CODE = _CODES.insert()
#: Earlier 告知单 codes of the same applicant and matter, not yet leading to a case.
_LINK_CODES = _CODES.update().where(
    _CODES.c.visit_id.in_(sa.select(_VISITS.c.id).where(_VISITS.c.applicant_hash == sa.bindparam("applicant"),
                                                        _VISITS.c.workflow_key == sa.bindparam("workflow"))),
    _CODES.c.case_id.is_(None)).values(case_id=sa.bindparam("link_case"))


def _settle_in_one() -> sa.Select[Any]:
    """PostgreSQL's one statement settling a recorded visit (data-modifying CTEs): the visit settled if still
    open and read back, the receipt's code inserted, the earlier 告知单 codes of the applicant and matter
    linked to the case; nothing is written when the visit was settled already (no row comes back)."""
    settled = _SETTLE_OPEN.cte("settled")
    code = _CODES.insert().from_select(
        ["code_hash", "kind", "visit_id", "case_id", "created_at"],
        sa.select(sa.bindparam("q_hash", type_=_CODES.c.code_hash.type), sa.literal("receipt"), settled.c.id,
                  settled.c.case_id, sa.bindparam("q_at", type_=_CODES.c.created_at.type)))
    link = _CODES.update().where(
        _CODES.c.visit_id.in_(sa.select(_VISITS.c.id).where(
            _VISITS.c.applicant_hash == sa.select(settled.c.applicant_hash).scalar_subquery(),
            _VISITS.c.workflow_key == sa.select(settled.c.workflow_key).scalar_subquery())),
        _CODES.c.case_id.is_(None)).values(case_id=sa.bindparam("w_case"))
    query: sa.Select[Any] = sa.select(*settled.c).add_cte(code.cte("receipt"), link.cte("linked"))
    return query


_SETTLE_IN_ONE = _settle_in_one()
_NOTICE_FIELDS = ("id", "items", "materials_digest", "number", "issued_at")


def _notice_read(sqlite: bool) -> sa.Select[Any]:
    """issue_notice's one read: the visit, the clerk, the applicant's earlier notices for the matter (one row
    each, oldest first) and, on SQLite, the id the notice will take (the next rowid, under the write lock)."""
    next_id = (sa.select(sa.func.coalesce(sa.func.max(_NOTICES.c.id), 0) + 1).scalar_subquery() if sqlite
               else sa.null())
    return (sa.select(*_VISITS.columns, Person, next_id, *(_NOTICES.c[f] for f in _NOTICE_FIELDS))
            .select_from(_VISITS)
            .outerjoin(Person, Person.id == sa.bindparam("actor"))  # type: ignore[arg-type]
            .outerjoin(_NOTICES, sa.and_(_NOTICES.c.applicant_hash == _VISITS.c.applicant_hash,
                                         _NOTICES.c.workflow_key == _VISITS.c.workflow_key))
            .where(_VISITS.c.id == sa.bindparam("visit")).order_by(_NOTICES.c.id))


_NOTICE_READS = {sqlite: _notice_read(sqlite) for sqlite in (True, False)}
#: How many visits a desk remembers having written (what never changes of them: workflow, materials).
_REMEMBERED = 1024


_INSERTS: dict[sa.Table, sa.Insert] = {}


def insert_row(s: Session, table: sa.Table, row: Any) -> int:
    """Insert a row built with ``unitofwork._new_row`` by its columns (the ORM never flushes it; its id taken from
    the database unless set, in the same statement) and give its id."""
    values = {c.key: row.__dict__[c.key] for c in table.columns}
    insert = _INSERTS.get(table)
    if insert is None:
        insert = _INSERTS[table] = table.insert()
    if values.get("id") is None:
        del values["id"]
        key = s.connection().execute(insert, values).inserted_primary_key
        assert key is not None
        row.__dict__["id"] = key[0]
    else:
        s.connection().execute(insert, values)
    return int(row.__dict__["id"])


# ------------------------------------------------------------------------------------------- helpers


def new_query_code() -> str:
    """A fresh query code like ``7KQ4-M2XD-9TNB`` (12 characters of 31: about 8·10^17 codes)."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def code_hash(code: str) -> str | None:
    """The stored form of a query code, or None when ``code`` cannot be one (wrong shape)."""
    value = str(code or "").strip().upper()
    if not _CODE_RE.match(value):
        return None
    return hashlib.sha256(value.replace("-", "").encode()).hexdigest()


def _ticked(defn: WorkflowDef, brought: Iterable[str], applies: Iterable[str]) -> tuple[list[str], list[str]]:
    """The materials ticked as brought and the conditional ones said to apply, checked against ``defn``."""
    brought_keys = _check_keys(defn, brought, "ticked as brought")
    applies_keys = _check_keys(defn, applies, "said to apply")
    for key in applies_keys:
        if next(m for m in defn.materials if m.key == key).required:
            raise DeskError(f"material {key!r} is always required; only conditional materials 'apply'")
    return brought_keys, applies_keys


def _lacking(defn: WorkflowDef, brought: Iterable[str], applies: Iterable[str]) -> list[Material]:
    """The materials required, or conditional and applying, that were not brought."""
    have, needed = set(brought), set(applies)
    return [m for m in defn.materials if m.key not in have and (m.required or m.key in needed)]


def _materials(defn: WorkflowDef, keys: Iterable[str]) -> list[Material]:
    by_key = {m.key: m for m in defn.materials}
    return [by_key[k] for k in keys if k in by_key]


def _check_keys(defn: WorkflowDef, keys: Iterable[str], what: str) -> list[str]:
    known = [m.key for m in defn.materials]
    result: list[str] = []
    for key in keys:
        if key not in known:
            raise DeskError(f"{defn.key} has no material {key!r} ({what}); its materials are "
                            f"{', '.join(known) or 'none (the workflow lists no materials:)'}")
        if key not in result:
            result.append(key)
    return result


# ------------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class VisitView:
    """A visit as shown: the applicant masked, what was brought, what is missing, the outcome."""

    id: int
    workflow: str
    number: int
    applicant: str  # masked
    unit: str
    clerk: str
    at: datetime
    brought: tuple[str, ...]
    missing: tuple[Material, ...]
    outcome: str
    max_visits: int
    case_id: int | None = None
    notice_id: int | None = None
    warning: str | None = None
    over_limit: bool = False

    @property
    def complete(self) -> bool:
        """True when nothing is missing (the file may be handled on the spot or accepted)."""
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the CLI and HTTP API."""
        return {"id": self.id, "workflow": self.workflow, "number": self.number, "applicant": self.applicant,
                "unit": self.unit, "clerk": self.clerk, "at": self.at.isoformat(), "brought": list(self.brought),
                "missing": [m.to_dict() for m in self.missing], "outcome": self.outcome,
                "max_visits": self.max_visits, "case_id": self.case_id, "notice_id": self.notice_id,
                "warning": self.warning, "over_limit": self.over_limit}


@dataclass(frozen=True)
class Notice:
    """A 一次告知单. ``query_code`` is set only on the result of issuing it (it is stored hashed)."""

    id: int
    number: str
    visit_id: int
    workflow: str
    title: str
    unit: str
    applicant: str  # masked
    items: tuple[Material, ...]
    issued_by: str
    issued_at: datetime
    override_reason: str | None = None
    query_code: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (``items`` numbered from 1 in the printed forms)."""
        return {"id": self.id, "number": self.number, "visit_id": self.visit_id, "workflow": self.workflow,
                "title": self.title, "unit": self.unit, "applicant": self.applicant,
                "items": [m.to_dict() for m in self.items], "issued_by": self.issued_by,
                "issued_at": self.issued_at.isoformat(), "override_reason": self.override_reason,
                "query_code": self.query_code}

    def to_text(self) -> str:
        """The printable plain-text form: one numbered line per missing material, with source and basis."""
        local = self.issued_at.astimezone(ZONE)
        lines = [f"一次性告知单  编号 {self.number}", f"事项:{self.title}", f"申请人证件号码:{self.applicant}",
                 f"告知时间:{local:%Y-%m-%d %H:%M}  单位:{self.unit}", "",
                 "请补齐以下全部材料(本单一次告知,不再增加其他材料):"]
        for i, m in enumerate(self.items, 1):
            when = f"({m.condition})" if m.condition else ""
            lines.append(f"{i}. {m.name}{when}")
            lines.append(f"   获取途径:{m.source or '—'}  依据:{m.basis or '—'}")
        if self.query_code:
            lines += ["", f"查询码:{self.query_code}(凭此码在公示页查询办理进度)"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Receipt:
    """A 受理回执 (or an on-the-spot result): the case, the visit and the applicant's query code."""

    case: CaseView
    visit: VisitView
    query_code: str
    on_the_spot: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape."""
        return {"case": self.case.to_dict(), "visit": self.visit.to_dict(), "query_code": self.query_code,
                "on_the_spot": self.on_the_spot}

    def to_text(self, title: str) -> str:
        """The printable 受理回执."""
        kind = "当场办结凭证" if self.on_the_spot else "受理回执"
        local = (self.case.opened_at or self.visit.at).astimezone(ZONE)
        return (f"{kind}  案件编号 {self.case.id}\n事项:{title}\n申请人证件号码:{self.visit.applicant}\n"
                f"受理时间:{local:%Y-%m-%d %H:%M}  单位:{self.case.unit}\n"
                f"查询码:{self.query_code}(凭此码在公示页查询办理进度、评价服务)\n")


# ------------------------------------------------------------------------------------------- the desk


class Desk(KeyedDesk):
    """Visits, 当场办结, acceptance and 一次告知 over an :class:`~caseflow.engine.Engine`.

    ``notify`` (optional) is called with ``(person_id, subject, body)`` for each warning to a clerk or
    leader (the CLI and API pass the outbox); the warning is also kept on the visit row. ``key`` is the
    site secret of applicant fingerprints; without it the configured one is read when first needed
    (:meth:`caseflow.applicants.ApplicantKey.configured`).
    """

    def __init__(self, engine: Engine, *, notify: Callable[[str, str, str], None] | None = None,
                 key: ApplicantKey | None = None) -> None:
        super().__init__(engine, notify=notify, key=key)
        #: Visits this desk wrote or settled, as it wrote them: a settlement checks the workflow and the
        #: materials from here instead of reading the visit back (its outcome is checked again, held).
        self._seen: dict[int, VisitRow] = {}

    # ---------------------------------------------------------------- visits

    def visit(self, workflow: str, *, applicant_id: str, actor: str, brought: Iterable[str] = (),
              applies: Iterable[str] = (), at: datetime | None = None) -> VisitView:
        """Record a visit: the clerk ticks the materials brought and the conditional ones that apply."""
        defn = self.engine.registry.latest(workflow)
        brought_keys, applies_keys = _ticked(defn, brought, applies)
        when = self.engine._now(at)
        fingerprint = self.key.fingerprint(applicant_id)
        masked = mask_id_number(applicant_id)
        with self.engine.store.session(write=True) as s:
            clerk, row = self._new_visit(s, defn, actor, applicant_id, fingerprint, masked, brought_keys,
                                         applies_keys, when)
            insert_row(s, _VISITS, row)
            warned = self._warn(s, clerk, row.warning)
        self._remember(row)
        view = self._view(defn, row)
        self._send(warned)
        return view

    def _new_visit(self, s: Session, defn: WorkflowDef, actor: str, applicant_id: str,  # noqa: PLR0917
                   fingerprint: str, masked: str, brought: list[str], applies: list[str], when: datetime
                   ) -> tuple[Person, VisitRow]:
        """The clerk, and the applicant's next visit for this matter (counted, and flagged beyond max_visits),
        not inserted yet; read in one statement, the applicant's rows under the unkeyed hash re-keyed."""
        found = s.execute(_VISIT_READ, {"actor": actor, "fingerprint": fingerprint, "workflow": defn.key,
                                        "old": legacy_fingerprint(applicant_id)}).first()
        if found is None:
            raise NotFoundError(f"no person has the id {actor!r}; add them with `caseflow person add`")
        clerk, prior, *held = found
        if not clerk.admin and not (clerk.role_set & set(defn.roles)):
            raise PermissionDeniedError(f"{actor!r} has no role in {defn.key!r}; its roles are "
                                        f"{', '.join(defn.roles)}")
        if any(held):  # earlier visits under the unkeyed hash count too (they were counted above)
            rekey_held(s, held, applicant_id, self.key)
        number = int(prior) + 1
        over_limit, warning = False, None
        if number > defn.service.max_visits:
            # 户籍 四(五) "不让群众跑第三趟" / 出入境 10 "不超过三次": this visit is already one too many.
            over_limit = True
            warning = (f"申请人第{number}次来办理「{defn.title}」,已超过{defn.service.max_visits}次的规定"
                       f"(申请人 {masked})")
        row: VisitRow = _new_row(VisitRow, id=None, workflow_key=defn.key, workflow_version=defn.version,
                                 materials_digest=materials_digest(defn.materials), applicant_hash=fingerprint,
                                 applicant_masked=masked, unit=clerk.unit, clerk_id=clerk.id, at=when,
                                 number=number, brought=json.dumps(brought), applies=json.dumps(applies),
                                 over_limit=over_limit, warning=warning)
        return clerk, row

    def _remember(self, row: VisitRow) -> None:
        if len(self._seen) >= _REMEMBERED:
            self._seen.clear()
        assert row.id is not None
        self._seen[row.id] = row

    def get_visit(self, visit_id: int) -> VisitView:
        """A visit by id."""
        with self.engine.store.session() as s:
            row = self._visit(s, visit_id)
            return self._view(self.engine.definition(row.workflow_version, s), row)

    def visits(self, *, applicant_id: str | None = None, workflow: str | None = None,
               unit: str | None = None, limit: int = 200) -> list[VisitView]:
        """Visits, newest first, filtered by applicant (ID number), matter and unit."""
        query = select(VisitRow)
        if applicant_id:
            query = query.where(VisitRow.applicant_hash.in_(  # type: ignore[attr-defined]
                (self.key.fingerprint(applicant_id), legacy_fingerprint(applicant_id))))
        if workflow:
            query = query.where(VisitRow.workflow_key == workflow)
        if unit:
            query = query.where(VisitRow.unit == unit)
        query = query.order_by(VisitRow.id.desc()).limit(limit)  # type: ignore[union-attr]
        with self.engine.store.session() as s:
            return [self._view(self.engine.definition(r.workflow_version, s), r) for r in s.exec(query)]

    # ---------------------------------------------------------------- outcomes

    def handle_on_the_spot(self, visit_id: int, *, actor: str, data: Mapping[str, Any] | None = None,
                           at: datetime | None = None) -> Receipt:
        """当场办结 (户籍 六(一)) of a recorded visit: open the case and close it at once, counted as 即办.

        Nothing may be missing. One transaction: the case, its ``open`` and ``close`` events, the visit's
        outcome and the query code are written together or not at all.
        """
        return self._open_case(visit_id, actor=actor, data=data, at=at, on_the_spot=True)

    def on_the_spot(self, workflow: str, *, applicant_id: str, actor: str, brought: Iterable[str] = (),
                    applies: Iterable[str] = (), data: Mapping[str, Any] | None = None,
                    at: datetime | None = None) -> Receipt:
        """当场办结 in one command: record the visit and handle it on the spot, in one transaction.

        What a clerk does with a complete file at the window (户籍 六(一) "具备当场办理条件的,均应当场办理"):
        refused — with nothing written — if a material is missing (record the visit and issue a 一次告知单
        instead).
        """
        defn = self.engine.registry.latest(workflow)
        brought_keys, applies_keys = _ticked(defn, brought, applies)
        missing = _lacking(defn, brought_keys, applies_keys)
        if missing:
            raise DeskError(f"the file lacks {'、'.join(m.name for m in missing)}: it cannot be handled on the "
                            "spot; record the visit (caseflow desk visit) and issue a 一次告知单")
        when = self.engine._now(at)
        fingerprint = self.key.fingerprint(applicant_id)
        masked = mask_id_number(applicant_id)
        warned: list[tuple[str, str, str]] = []

        def new_visit(s: Session) -> VisitRow:
            clerk, row = self._new_visit(s, defn, actor, applicant_id, fingerprint, masked, brought_keys,
                                         applies_keys, when)
            warned[:] = self._warn(s, clerk, row.warning)
            return row  # inserted by _settle, settled

        receipt = self._settle(defn.key, new_visit, actor=actor, data=data, when=when, on_the_spot=True)
        self._send(warned)
        return receipt

    def accept(self, visit_id: int, *, actor: str, data: Mapping[str, Any] | None = None,
               responsible: str | None = None, at: datetime | None = None) -> Receipt:
        """Accept the file: the case opens with the visit linked; the receipt carries a query code.

        One transaction, as :meth:`handle_on_the_spot`.
        """
        return self._open_case(visit_id, actor=actor, data=data, at=at, responsible=responsible)

    def _open_case(self, visit_id: int, *, actor: str, data: Mapping[str, Any] | None, at: datetime | None,
                   on_the_spot: bool = False, responsible: str | None = None) -> Receipt:
        known = self._seen.get(visit_id)
        if known is None:
            with self.engine.store.lookup() as s:
                known = self._visit(s, visit_id)
        if known.outcome != "open":
            raise DeskError(f"visit {visit_id} is already settled ({known.outcome}); record a new visit")
        missing = self._missing(self.engine.definition(known.workflow_version), known)
        if missing:
            names = "、".join(m.name for m in missing)
            raise DeskError(f"visit {visit_id} lacks {names}: issue a 一次告知单 (caseflow desk notice {visit_id}) "
                            "or tick what the applicant brought")
        if known.workflow_key not in self.engine.registry:
            raise DeskError(f"unknown workflow {known.workflow_key!r}")

        return self._settle(known.workflow_key, visit_id, actor=actor, data=data, when=self.engine._now(at),
                            on_the_spot=on_the_spot, responsible=responsible)

    def _settle(self, workflow: str, visit_of: int | Callable[[Session], VisitRow], *, actor: str,
                data: Mapping[str, Any] | None, when: datetime, on_the_spot: bool,
                responsible: str | None = None) -> Receipt:
        """Open (and for 当场办结 close) the case with the visit settled and a query code, in one transaction.

        ``visit_of`` is a recorded visit's id (settled here if still open, else refused), or gives the visit
        row inside the case's transaction (new: not inserted yet, it is inserted here settled). A query code
        that happens to exist already (1 in 8·10^17) is drawn again with the whole transaction.
        """
        outcome = "on_the_spot" if on_the_spot else "accepted"
        for _attempt in range(_CODE_ATTEMPTS):
            code = new_query_code()
            settled: list[VisitRow] = []

            def prepare(s: Session, case_id: int, code: str = code, settled: list[VisitRow] = settled
                        ) -> dict[str, Any]:
                if isinstance(visit_of, int) and s.get_bind().dialect.name == "postgresql":
                    found = s.execute(_SETTLE_IN_ONE, {"w_id": visit_of, "w_outcome": outcome, "w_case": case_id,
                                                       "q_hash": code_hash(code) or "", "q_at": when}
                                      ).mappings().first()
                    if found is None:
                        self._refuse_settled(s, visit_of)
                    row = _new_row(VisitRow, **found)
                    settled.append(row)
                    return {"visit_id": row.id}
                if isinstance(visit_of, int):
                    row = self._settle_open(s, visit_of, outcome, case_id)
                else:
                    row = visit_of(s)
                    # The row is never flushed by the ORM: it is written here, by its columns.
                    row.__dict__.update(outcome=outcome, case_id=case_id)
                    if row.id is None:
                        insert_row(s, _VISITS, row)
                    else:
                        s.execute(_UPDATE_VISIT, {"w_id": row.id, "outcome": outcome, "case_id": case_id})
                s.execute(_INSERT_CODE, {"code_hash": code_hash(code) or "", "kind": "receipt",
                                            "visit_id": row.id, "case_id": case_id, "notice_id": None,
                                            "created_at": when})
                # Earlier 告知单 codes of the same applicant and matter now lead to this case too.
                s.execute(_LINK_CODES, {"applicant": row.applicant_hash, "workflow": row.workflow_key,
                                        "link_case": case_id})
                settled.append(row)
                return {"visit_id": row.id}

            try:
                # 户籍 六(一) "具备当场办理条件的,均应当场办理": the case opens and closes in the same instant.
                case = self.engine.open(workflow, actor=actor, at=when, data=dict(data or {}),
                                        responsible=responsible, prepare=prepare,
                                        close_reason=ON_THE_SPOT if on_the_spot else None)
            except sa.exc.IntegrityError:
                continue  # the drawn query code exists (or a concurrent settlement): nothing was written
            row = settled[-1]
            self._remember(row)
            view = self._view(self.engine.definition(row.workflow_version), row)
            return Receipt(case=case, visit=view, query_code=code, on_the_spot=on_the_spot)
        raise DeskError("the case could not be opened: the visit was settled by another command, or the query "
                        "codes drawn were taken; nothing was written — try again")

    @staticmethod
    def _settle_open(s: Session, visit_id: int, outcome: str, case_id: int) -> VisitRow:
        found = s.execute(_SETTLE_OPEN, {"w_id": visit_id, "w_outcome": outcome, "w_case": case_id}).mappings().first()
        if found is None:
            Desk._refuse_settled(s, visit_id)
        row: VisitRow = _new_row(VisitRow, **found)
        return row

    @staticmethod
    def _refuse_settled(s: Session, visit_id: int) -> NoReturn:
        """A concurrent command settled the visit first: the first settlement is kept."""
        settled = s.execute(sa.select(_VISITS.c.outcome).where(_VISITS.c.id == visit_id)).scalar()
        raise DeskError(f"visit {visit_id} was settled by another command ({settled})")

    def issue_notice(self, visit_id: int, *, actor: str, also: Iterable[str] = (), reason: str | None = None,
                     at: datetime | None = None) -> Notice:
        """Issue the 一次告知单 of a visit: every missing material, plus ``also`` (materials found defective).

        Refused when it asks for a material no earlier notice to this applicant for this matter listed,
        unless the procedure's material list changed since that notice, or ``reason`` is given by a
        leader (recorded on the notice).
        """
        when = self.engine._now(at)
        warned: list[tuple[str, str, str]] = []
        with self.engine.store.session(write=True) as s:
            sqlite = s.get_bind().dialect.name == "sqlite"
            found = s.execute(_NOTICE_READS[sqlite], {"visit": visit_id, "actor": actor}).all()
            if not found:
                raise NotFoundError(f"no visit has the id {visit_id}")
            width = len(_VISIT_COLUMNS)
            row: VisitRow = _new_row(VisitRow, **dict(zip(_VISIT_COLUMNS, found[0][:width], strict=True)))
            clerk: Person | None = found[0][width]
            next_id = found[0][width + 1]
            earlier = [dict(zip(_NOTICE_FIELDS, r[width + 2:], strict=True)) for r in found if r[width + 2] is not None]
            defn = self.engine.definition(row.workflow_version, s)
            current = self.engine.registry.latest(row.workflow_key) if row.workflow_key in self.engine.registry \
                else defn
            if row.outcome != "open":
                raise DeskError(f"visit {visit_id} is already settled ({row.outcome}); record a new visit")
            if clerk is None:
                raise NotFoundError(f"no person has the id {actor!r}; add them with `caseflow person add`")
            missing = [m.key for m in self._missing(defn, row)]
            extra = _check_keys(defn, also, "to add to the notice")
            keys = missing + [k for k in extra if k not in missing]
            if not keys:
                raise DeskError(f"visit {visit_id} lacks nothing: accept it or handle it on the spot")
            override_by = None
            if earlier:
                first = earlier[0]
                listed = {item["key"] for n in earlier for item in json.loads(n["items"])}
                unlisted = [k for k in keys if k not in listed]
                changed = first["materials_digest"] != materials_digest(current.materials)
                if unlisted and not changed:
                    names = "、".join(m.name for m in _materials(defn, unlisted))
                    if not reason or not reason.strip():
                        raise DeskError(
                            f"一次告知: notice {first['number']} of {first['issued_at'].astimezone(ZONE):%Y-%m-%d}"
                            f" did not ask for {names}, and the material list of {defn.key} has not changed "
                            "since; a later notice may not ask for more (出入境窗口规范 10, 交巡警 第十八条). "
                            "A leader may override with --reason")
                    if not self._is_leader(s, clerk):
                        raise PermissionDeniedError(
                            f"{actor!r} leads no one: only a leader may override 一次告知 with a reason")
                    override_by = clerk.id
            prefix = f"GZ{when.astimezone(ZONE):%Y%m%d}-"
            notice: NoticeRow = _new_row(
                NoticeRow, id=next_id, number=f"{prefix}{next_id:06d}" if next_id is not None else "",
                visit_id=visit_id, workflow_key=row.workflow_key, applicant_hash=row.applicant_hash,
                applicant_scheme=row.applicant_scheme, unit=row.unit, materials_digest=materials_digest(defn.materials),
                items=json.dumps([m.to_dict() for m in _materials(defn, keys)], ensure_ascii=False),
                issued_by=clerk.id, issued_at=when, override_by=override_by,
                override_reason=reason.strip() if override_by and reason else None)
            notice_id = insert_row(s, _NOTICES, notice)
            if next_id is None:  # PostgreSQL: the number names the id the sequence gave
                notice.__dict__["number"] = f"{prefix}{notice_id:06d}"
                s.execute(_UPDATE_NOTICE, {"w_id": notice_id, "number": notice.number})
            changes: dict[str, Any] = {"outcome": "notice", "notice_id": notice_id}
            if row.number >= defn.service.max_visits and row.warning is None:
                # The applicant leaves without a result on the last visit allowed: the next one breaks the rule.
                changes["warning"] = (f"申请人(证件 {row.applicant_masked})第{row.number}次来办理「{defn.title}」"
                                      f"仍未办成,下一趟将超过{defn.service.max_visits}次的规定:请当面确认材料,必要时由领导协调")
                warned = self._warn(s, clerk, changes["warning"])
            s.execute(_UPDATE_VISIT, {"w_id": visit_id, **changes})
            row.__dict__.update(changes)
            code = new_query_code()
            s.execute(_INSERT_CODE, {"code_hash": code_hash(code) or "", "kind": "notice", "visit_id": visit_id,
                                        "case_id": None, "notice_id": notice_id, "created_at": when})
            result = self._notice_of(notice, defn, row.applicant_masked, query_code=code)
        self._remember(row)
        self._send(warned)
        return result

    def notice(self, notice_id: int | str) -> Notice:
        """A 告知单 by id or number (without its query code, which is stored hashed)."""
        with self.engine.store.session() as s:
            if isinstance(notice_id, str) and not notice_id.isdigit():
                row = s.exec(select(NoticeRow).where(NoticeRow.number == notice_id)).first()
            else:
                row = s.get(NoticeRow, int(notice_id))
            if row is None:
                raise NotFoundError(f"no 告知单 {notice_id!r}")
            visit = self._visit(s, row.visit_id)
            return self._notice_of(row, self.engine.definition(visit.workflow_version, s), visit.applicant_masked)

    # ---------------------------------------------------------------- internals

    @staticmethod
    def _visit(s: Session, visit_id: int) -> VisitRow:
        row = s.get(VisitRow, visit_id)
        if row is None:
            raise NotFoundError(f"no visit has the id {visit_id}")
        return row

    @staticmethod
    def _is_leader(s: Session, person: Person) -> bool:
        if person.admin:
            return True
        led = s.exec(select(Person.id).where(Person.leader_id == person.id).limit(1)).first()
        return led is not None

    @staticmethod
    def _missing(defn: WorkflowDef, row: VisitRow) -> list[Material]:
        return _lacking(defn, json.loads(row.brought), json.loads(row.applies))

    def _view(self, defn: WorkflowDef, row: VisitRow) -> VisitView:
        assert row.id is not None
        return VisitView(id=row.id, workflow=row.workflow_key, number=row.number, applicant=row.applicant_masked,
                         unit=row.unit, clerk=row.clerk_id, at=row.at, brought=tuple(json.loads(row.brought)),
                         missing=tuple(self._missing(defn, row)), outcome=row.outcome,
                         max_visits=defn.service.max_visits, case_id=row.case_id, notice_id=row.notice_id,
                         warning=row.warning, over_limit=row.over_limit)

    @staticmethod
    def _notice_of(row: NoticeRow, defn: WorkflowDef, applicant: str, *, query_code: str | None = None) -> Notice:
        assert row.id is not None
        items = tuple(Material(key=d["key"], name=d["name"], source=d.get("source") or "",
                               basis=d.get("basis") or "", condition=d.get("condition") or "")
                      for d in json.loads(row.items))
        return Notice(id=row.id, number=row.number, visit_id=row.visit_id, workflow=row.workflow_key,
                      title=defn.title, unit=row.unit, applicant=applicant, items=items,
                      issued_by=row.issued_by, issued_at=row.issued_at, override_reason=row.override_reason,
                      query_code=query_code)

    @staticmethod
    def _warn(s: Session, clerk: Person, text: str | None) -> list[tuple[str, str, str]]:
        if not text:
            return []
        recipients = [clerk.id]
        if clerk.leader_id and clerk.leader_id not in recipients:
            recipients.append(clerk.leader_id)
        return [(pid, "第三趟预警", text) for pid in recipients]

    def _send(self, warned: Sequence[tuple[str, str, str]]) -> None:
        if self.notify is None:
            return
        for person, subject, body in warned:
            self.notify(person, subject, body)



def outbox_sender(outbox: Outbox) -> Callable[[str, str, str], None]:
    """A ``notify`` for :class:`Desk` and :class:`~caseflow.ratings.Ratings` that queues on the outbox."""

    def send(person_id: str, subject: str, body: str) -> None:
        with outbox.store.session(write=True) as s:
            route = outbox.config.route_person(person_id, s.get(Person, person_id))
            outbox.insert(s, [outbox.row(kind="window", recipient=person_id, route=route, subject=subject,
                                         body=body, now=outbox.clock.now())])

    return send
