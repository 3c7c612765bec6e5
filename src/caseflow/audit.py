"""The audit: the event chain is the record, the tables are its projection.

Three checks, each naming what it finds (:class:`~caseflow.views.AuditProblem`):

1. **The chain.** Every case's events follow one another (``seq`` 1, 2, …), each carries the hash of
   its predecessor and the hash of its own content, and the case row's version and head hash agree
   with the last event. An edited, inserted, deleted or reordered event breaks it.
2. **The projection.** Each case's events are replayed through the definition the case is pinned
   to: state, data, responsible person, unit, opening and closing, and every timer (round, status,
   start and stop, pauses, extensions, due instant, assignee) must be what the tables hold. An edited
   state, unit or due instant is named, as the chain never said so. :func:`rebuild_case` writes the
   replayed projection back.
3. **Signed checkpoints.** A checkpoint holds every case's head (last ``seq`` and hash) and the counts
   of cases and events, signed with an Ed25519 key kept outside the database (``[audit] key_file`` in
   ``caseflow.toml``), appended as one JSON line to a file an auditor keeps elsewhere. Recomputing
   every hash after an edit passes check 1, but not the latest checkpoint: the case's event at the
   checkpointed head no longer has that hash (a rewritten chain), or is gone (a cut tail), or the case
   is gone (a deleted case), or a case appeared that the checkpoint never saw although it is dated
   before it (an inserted case).

Replay takes its due instants from the engine's calendar, and where the chain recorded them (a
calendar reload's ``recompute``, a stopped timer's ``due_at``) from the chain.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, select

from caseflow.chain import GENESIS_HASH, event_hash
from caseflow.engine import Engine
from caseflow.errors import AuditError, CaseNotFoundError, CommandError
from caseflow.store import CaseRow, EventRow, Store, TimerRow
from caseflow.timelimits import TimeLimit
from caseflow.timing import ACTIVE, _limit_spec, counted_start, timer_limit
from caseflow.unitofwork import _new_row
from caseflow.views import AuditProblem

if TYPE_CHECKING:
    from caseflow.workflow import WorkflowDef

__all__ = [
    "Checkpoint",
    "Projection",
    "chain_heads",
    "checkpoint_matches",
    "compare",
    "create_key",
    "latest_checkpoint",
    "load_private_key",
    "public_key_of",
    "read_checkpoints",
    "rebuild_case",
    "replay_case",
    "verify",
    "verify_against_checkpoint",
    "verify_chain",
    "verify_chains",
    "verify_configured",
    "write_checkpoint",
]

#: ``stopped`` is the name older databases gave a timer ended by closing the case (``cancelled`` now).
_SAME_STATUS = {"stopped": "cancelled"}
CHECKPOINT_KIND = "caseflow-checkpoint/1"
CHECKPOINT_GRACE = timedelta(minutes=2)
EVENTS: sa.Table = EventRow.__table__  # type: ignore[attr-defined]


def _problem(case_id: int | None, seq: int | None, event_id: int | None, text: str, kind: str) -> AuditProblem:
    return AuditProblem(case_id, seq, event_id, text, kind=kind)


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _utc(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


# -------------------------------------------------------------------------------------------- chain


def verify_chain(session: Session, case_id: int, version: int, head: str | None, *,
                 events: Sequence[EventRow] | None = None) -> Iterator[AuditProblem]:
    """Check one case's hash chain against itself and the case row's version and head.

    ``events`` are the case's events in ``seq`` order, if the caller read them already.
    """
    rows = events if events is not None else _events(session, case_id)
    expected_seq, previous = 1, GENESIS_HASH
    for row in rows:
        if row.seq != expected_seq:
            yield _problem(case_id, expected_seq, None,
                           f"event #{expected_seq} is missing (next stored is #{row.seq}): deleted", "chain")
        if row.prev_hash != previous:
            yield _problem(case_id, row.seq, row.id,
                           "does not follow its predecessor's hash: an event before it was changed, inserted, "
                           "reordered or deleted", "chain")
        if event_hash(row) != row.hash:
            yield _problem(case_id, row.seq, row.id, "its content does not match its hash: edited", "chain")
        expected_seq, previous = row.seq + 1, row.hash
    if expected_seq - 1 != version:
        yield _problem(case_id, None, None,
                       f"the case is at version {version} but its history ends at event #{expected_seq - 1}", "chain")
    elif head is not None and head != previous:
        yield _problem(case_id, expected_seq - 1, None,
                       "the chain's last hash is not the one the case recorded: its history was rewritten", "chain")


# ---------------------------------------------------------------------------------------- projection


@dataclass
class Projection:
    """What a case's chain says its rows must hold."""

    case: CaseRow
    timers: list[TimerRow] = field(default_factory=list)


def _events(session: Session, case_id: int) -> list[EventRow]:
    return list(session.exec(select(EventRow).where(EventRow.case_id == case_id)
                             .order_by(EventRow.seq)))  # type: ignore[arg-type]


def _active(timers: Sequence[TimerRow], name: str) -> TimerRow:
    for row in reversed(timers):
        if row.name == name and row.status in ACTIVE:
            return row
    raise LookupError(f"the chain names timer {name!r}, which is not running at that point")


def replay_case(engine: Engine, session: Session, case_id: int, *,
                events: Sequence[EventRow] | None = None) -> Projection:
    """Replay a case's events through its pinned definition (raises :class:`AuditError` if it cannot)."""
    events = list(events) if events is not None else _events(session, case_id)
    if not events or events[0].kind != "open":
        raise AuditError(f"case {case_id} has no opening event to replay from")
    opening = json.loads(events[0].data)
    version = opening.get("workflow_version")
    if not version:
        stored = session.get(CaseRow, case_id)
        version = stored.workflow_version if stored is not None else ""
    defn = engine.definition(version, session)
    first = events[0]
    responsible = opening.get("responsible") or first.actor
    # Built as the engine builds its rows (_new_row): SQLModel's validating constructor cost the audit more
    # than the replay itself.
    case = _new_row(CaseRow, id=case_id, workflow_key=defn.key, workflow_version=defn.version,
                    state=first.to_state or "", version=1, responsible_id=responsible, unit=opening.get("unit", ""),
                    opened_by=first.actor, opened_at=first.at, updated_at=first.at,
                    data=_canonical(opening.get("data") or {}))
    projection = Projection(case)
    for event in events:
        try:
            _apply(engine, defn, projection, event, json.loads(event.data))
        except (LookupError, KeyError, ValueError, TypeError) as exc:
            raise AuditError(f"case {case_id}, event #{event.seq} ({event.kind}) cannot be replayed: {exc}") from None
        case.version = event.seq
        case.updated_at = case.last_event_at = event.at
        case.last_event_hash = event.hash
    for row in projection.timers:
        if row.assignee is None:
            # Started before events recorded assignees: migration 0004 gave such timers the case's
            # responsible person (as it stands), which is what the chain implies for them.
            row.assignee = case.responsible_id
    return projection


def _apply(engine: Engine, defn: WorkflowDef, p: Projection, event: EventRow,
           data: Mapping[str, Any]) -> None:
    case, at, kind = p.case, event.at, event.kind
    if event.to_state and kind in ("open", "fire", "expire"):
        case.state = event.to_state
    if kind in ("fire", "expire"):
        merged = case.data_dict()
        merged.update(data.get("data") or {})
        case.data = _canonical(merged)
    for entry in data.get("stopped", []) if kind in ("fire", "expire", "close") else []:
        name, status = (entry, "cancelled") if isinstance(entry, str) else (entry["timer"], entry["status"])
        row = _active(p.timers, name)
        _finish(row, status, at)
        if not isinstance(entry, str) and entry.get("due_at"):
            row.due_at = _instant(entry["due_at"])
    if kind in ("open", "fire", "expire"):
        assigned = {a["timer"]: a.get("assignee") for a in data.get("assigned", []) if isinstance(a, Mapping)}
        for name in data.get("started", []):
            _start(engine, defn, p, name, at, assigned.get(name))
        expired = data.get("expired") or ({"timer": data["timer"], "round": data.get("round")}
                                          if kind == "expire" and "timer" in data else None)
        if expired:
            for row in p.timers:
                if row.name == expired["timer"] and row.round == expired.get("round", row.round):
                    row.expiry_trigger = None  # it acted once
        if event.to_state in defn.final_states:
            case.closed_at = at
    elif kind == "pause":
        row = _active(p.timers, data["timer"])
        tdef = defn.timer(row.name)
        policy = tdef.pause_policy(data["reason"])
        pauses = json.loads(row.pauses)
        pause: dict[str, Any] = {"reason": data["reason"], "from": at.astimezone(UTC).isoformat(), "to": None,
                                 "charged_to": data.get("charged_to", policy.charged_to if policy else None),
                                 "actor": event.actor}
        if data.get("data"):
            pause["data"] = data["data"]
        pauses.append(pause)
        row.pauses, row.status = _canonical(pauses), "paused"
        engine._apply_due(row, tdef, engine.calendar)
    elif kind == "resume":
        row = _active(p.timers, data["timer"])
        pauses = json.loads(row.pauses)
        pauses[-1]["to"] = at.astimezone(UTC).isoformat()
        row.pauses, row.status = _canonical(pauses), "running"
        engine._apply_due(row, defn.timer(row.name), engine.calendar)
    elif kind == "extend":
        row = _active(p.timers, data["timer"])
        grant: dict[str, Any] = {"amount": TimeLimit.parse(data["by"]).amount, "grounds": data["grounds"],
                                 "approver": data.get("approver", event.actor), "at": at.astimezone(UTC).isoformat()}
        if data.get("data"):
            grant["data"] = data["data"]
        row.extensions = _canonical([*json.loads(row.extensions), grant])
        engine._apply_due(row, defn.timer(row.name), engine.calendar)
    elif kind in ("hand_over", "reassign"):
        case.responsible_id = data["to"]
        if "unit" in data:
            case.unit = data["unit"]
        for name in data.get("steps", []):
            for row in p.timers:
                if row.name == name and row.status in ACTIVE:
                    row.assignee = data["to"]
    elif kind == "hand_over_step":
        for row in p.timers:
            if row.name == data["timer"] and row.status in ACTIVE:
                row.assignee = data["to"]
    elif kind == "close":
        case.closed_at, case.close_reason = at, data.get("reason")
    elif kind == "recompute":
        for moved in data.get("moved", []):
            row = _active(p.timers, moved["timer"])
            engine._apply_due(row, defn.timer(row.name), engine.calendar)
            row.due_at = _instant(moved.get("to"))
    elif kind != "open":
        raise ValueError(f"this caseflow does not know events of kind {kind!r}")


def _start(engine: Engine, defn: WorkflowDef, p: Projection, name: str, at: datetime,  # noqa: PLR0917
           assignee: str | None) -> None:
    tdef = defn.timer(name)
    rounds = [r.round for r in p.timers if r.name == name]
    started_at = at
    if tdef.deemed_from is not None:
        earlier = [r for r in p.timers if r.name == tdef.deemed_from]
        if earlier and earlier[-1].status == "breached":
            started_at = earlier[-1].started_at
    started_at = counted_start(tdef, p.case.data_dict(), started_at)
    row = _new_row(TimerRow, case_id=p.case.id or 0, name=name, round=max(rounds, default=0) + 1, status="running",
                   kind=tdef.kind, limit_spec=_limit_spec(timer_limit(tdef, p.case.data_dict(), started_at,
                                                                     engine.calendar)), started_at=started_at)
    if hasattr(TimerRow, "assignee"):
        row.assignee = assignee
    if hasattr(TimerRow, "expiry_trigger"):
        row.expiry_trigger = getattr(tdef, "on_expiry", None)
    engine._apply_due(row, tdef, engine.calendar)
    row.original_due_at = row.due_at
    p.timers.append(row)


def _finish(row: TimerRow, status: str, at: datetime) -> None:
    if row.status == "paused":
        pauses = json.loads(row.pauses)
        pauses[-1]["to"] = at.astimezone(UTC).isoformat()
        row.pauses = _canonical(pauses)
    row.status, row.stopped_at, row.next_alert_at = status, at, None


# ------------------------------------------------------------------------------------- comparison

_CASE_FIELDS = (("state", "state"), ("responsible_id", "responsible person"), ("unit", "unit"),
                ("workflow_version", "definition version"), ("opened_by", "opener"), ("opened_at", "opening instant"),
                ("closed_at", "closing instant"), ("close_reason", "closing reason"),
                ("last_event_at", "last event instant"))
_TIMER_FIELDS = (("status", "status"), ("kind", "kind"), ("limit_spec", "limit"), ("started_at", "start"),
                 ("stopped_at", "stop"), ("due_at", "due instant"),
                 ("pauses", "pauses"), ("extensions", "extensions"), ("assignee", "assignee"),
                 ("expiry_trigger", "expiry trigger"))


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return repr(value)


def _same(name: str, table: Any, chain: Any) -> bool:
    if name == "status":
        return bool(_SAME_STATUS.get(table, table) == _SAME_STATUS.get(chain, chain))
    if name in ("pauses", "extensions", "limit_spec"):
        # The same text is the same ledger (nearly always: both written canonical); else compare what it says.
        return table == chain or bool(json.loads(table or "null") == json.loads(chain or "null"))
    return bool(table == chain)


def compare(stored: CaseRow, timers: Sequence[TimerRow], projection: Projection) -> Iterator[AuditProblem]:
    """Name each difference between a case's rows and what its chain says."""
    case_id = stored.id
    chain = projection.case
    for attr, label in _CASE_FIELDS:
        if attr == "unit" and not chain.unit:
            continue  # opened before the unit was recorded in the chain
        mine, theirs = getattr(stored, attr), getattr(chain, attr)
        if not _same(attr, mine, theirs):
            yield _problem(case_id, None, None, f"{label}: the tables say {_shown(mine)}, the chain says "
                                                f"{_shown(theirs)}", "projection")
    if stored.data_dict() != chain.data_dict():
        yield _problem(case_id, None, None, "data: the tables differ from what the chain recorded", "projection")
    have = {(t.name, t.round): t for t in timers}
    want = {(t.name, t.round): t for t in projection.timers}
    for key in sorted(have.keys() - want.keys()):
        yield _problem(case_id, None, None, f"timer {key[0]} (round {key[1]}) is in the tables but the chain "
                                            "never started it", "projection")
    for key in sorted(want.keys() - have.keys()):
        yield _problem(case_id, None, None, f"timer {key[0]} (round {key[1]}) was started by the chain but is "
                                            "missing from the tables", "projection")
    for key in sorted(have.keys() & want.keys()):
        mine_row, chain_row = have[key], want[key]
        for attr, label in _TIMER_FIELDS:
            if not hasattr(mine_row, attr):
                continue
            mine, theirs = getattr(mine_row, attr), getattr(chain_row, attr)
            if not _same(attr, mine, theirs):
                yield _problem(case_id, None, None, f"timer {key[0]} (round {key[1]}) {label}: the tables say "
                                                    f"{_shown(mine)}, the chain says {_shown(theirs)}", "projection")


# ------------------------------------------------------------------------------------------ verify


def verify_chains(store: Store) -> list[AuditProblem]:
    """The chain check alone, for every case (what a checkpoint is signed over)."""
    problems: list[AuditProblem] = []
    with store.session() as s:
        table = CaseRow.__table__  # type: ignore[attr-defined]
        for cid, version, head in s.execute(sa.select(table.c.id, table.c.version, table.c.last_event_hash)).all():
            problems.extend(verify_chain(s, int(cid), int(version), head))
    return problems


#: Cases verified per round of queries (below SQLite's oldest limit of 999 variables per statement).
_VERIFY_CHUNK = 500


def verify_configured(
    engine: Engine, config: str | os.PathLike[str] | None = None,
) -> tuple[list[AuditProblem], str | None]:
    """:func:`verify` with the checkpoint key and file of ``[audit]`` in ``caseflow.toml`` (``config``,
    default ``$CASEFLOW_CONFIG`` or ``./caseflow.toml``): the HTTP API's check, as ``caseflow audit verify``
    with no options. Returns the problems and the checkpoint file checked (None when none is configured).
    """
    from caseflow.config import NotifyConfig

    settings = NotifyConfig.load(config).audit
    if settings.key_file is None or settings.checkpoint_file is None:
        return verify(engine), None
    public = public_key_of(load_private_key(settings.key_file))
    return verify(engine, checkpoints=settings.checkpoint_file, public_key=public), str(settings.checkpoint_file)


def verify(engine: Engine, *, case_id: int | None = None, checkpoints: str | os.PathLike[str] | None = None,
           public_key: bytes | None = None, replay: bool = True) -> list[AuditProblem]:
    """Check every case (or one): its chain, its tables against the replayed chain, and the latest checkpoint.

    ``checkpoints`` names the checkpoint file; ``public_key`` (raw Ed25519 bytes) is the key its lines must
    be signed with (from the configured key file). Without a file, only the first two checks run.
    """
    problems: list[AuditProblem] = []
    engine.refresh()  # replay with the notices loaded into the database, as the commands computed
    with engine.store.session() as s:
        table = CaseRow.__table__  # type: ignore[attr-defined]
        query = sa.select(table.c.id, table.c.version, table.c.last_event_hash).order_by(table.c.id)
        if case_id is not None:
            query = query.where(table.c.id == case_id)
        cases = s.execute(query).all()
        # A chunk of cases at a time: their events, rows and timers in one query each, and memory
        # that does not grow with the database.
        for first in range(0, len(cases), _VERIFY_CHUNK):
            chunk = cases[first:first + _VERIFY_CHUNK]
            ids = [int(cid) for cid, _version, _head in chunk]
            events_of: dict[int, list[EventRow]] = {cid: [] for cid in ids}
            for event in s.exec(select(EventRow).where(EventRow.case_id.in_(ids))  # type: ignore[attr-defined]
                                .order_by(EventRow.case_id, EventRow.seq)):  # type: ignore[arg-type]
                events_of[event.case_id].append(event)
            stored_of: dict[int, CaseRow] = {}
            timers_of: dict[int, list[TimerRow]] = {cid: [] for cid in ids}
            if replay:
                stored_of = {int(row.id or 0): row for row in s.exec(select(CaseRow).where(
                    CaseRow.id.in_(ids)))}  # type: ignore[union-attr]
                for timer in s.exec(select(TimerRow).where(TimerRow.case_id.in_(ids))  # type: ignore[attr-defined]
                                    .order_by(TimerRow.id)):  # type: ignore[arg-type]
                    timers_of[timer.case_id].append(timer)
            for cid, version, head in chunk:
                events = events_of[int(cid)]
                problems.extend(verify_chain(s, int(cid), int(version), head, events=events))
                if replay:
                    stored = stored_of[int(cid)]
                    try:
                        projection = replay_case(engine, s, int(cid), events=events)
                    except AuditError as exc:
                        problems.append(_problem(int(cid), None, None, str(exc), "projection"))
                    else:
                        problems.extend(compare(stored, timers_of[int(cid)], projection))
            s.expunge_all()
        orphans = s.execute(sa.select(EventRow.case_id).distinct()  # type: ignore[call-overload]
                            .where(~EventRow.case_id.in_(sa.select(table.c.id)))).scalars().all()  # type: ignore[attr-defined]
        for orphan in orphans if case_id is None else ():
            problems.append(_problem(int(orphan), None, None, "has events but no case row: the case was deleted",
                                     "chain"))
    if checkpoints is not None:
        problems.extend(verify_against_checkpoint(engine.store, checkpoints, public_key, case_id=case_id))
    return problems


# ------------------------------------------------------------------------------------------ rebuild


def rebuild_case(engine: Engine, case_id: int) -> list[str]:
    """Rewrite a case's row and timers from its chain; return the differences that were repaired.

    Refuses when the chain itself does not verify: a forged record is not a source to rebuild from.
    """
    engine.refresh()
    with engine.store.session(write=True) as s:
        stored = s.get(CaseRow, case_id)
        if stored is None:
            if not _events(s, case_id):
                raise CaseNotFoundError(f"no case has the id {case_id}, and no event names it")
            raise CommandError(f"case {case_id} has events but no row; restore it from a backup "
                               "(`caseflow db backup`), the chain alone does not say its id was free")
        last = _events(s, case_id)
        broken = list(verify_chain(s, case_id, last[-1].seq if last else 0, last[-1].hash if last else None))
        if broken:
            raise AuditError(f"case {case_id}'s chain does not verify, so it cannot be rebuilt from it: {broken[0]}")
        projection = replay_case(engine, s, case_id)
        timers = engine._timers(s, case_id)
        repaired = [p.problem for p in compare(stored, timers, projection)]
        if not repaired:
            return []
        chain = projection.case
        for attr in ("state", "responsible_id", "workflow_key", "workflow_version", "opened_by", "opened_at",
                     "updated_at", "closed_at", "close_reason", "last_event_hash", "last_event_at", "data", "version"):
            setattr(stored, attr, getattr(chain, attr))
        if chain.unit:
            stored.unit = chain.unit
        existing = {(t.name, t.round): t for t in timers}
        wanted = {(t.name, t.round) for t in projection.timers}
        for key, row in existing.items():
            if key not in wanted:
                s.delete(row)
        for new in projection.timers:
            kept = existing.get((new.name, new.round))
            if kept is None:
                s.add(new)
                continue
            for attr, _label in _TIMER_FIELDS:
                if hasattr(kept, attr):
                    setattr(kept, attr, getattr(new, attr))
            # Derived from the due instant and the calendar, not compared (the due instant is the legal limit).
            kept.last_day, kept.provisional, kept.warn_at = new.last_day, new.provisional, new.warn_at
            kept.original_due_at = new.original_due_at
            kept.next_alert_at = new.next_alert_at if kept.status == "running" and kept.alert_level is None else (
                kept.due_at if kept.status == "running" else None)
    return repaired


# ---------------------------------------------------------------------------------------- checkpoints


def create_key(path: str | os.PathLike[str]) -> bytes:
    """Write a new Ed25519 private key (PEM, owner-readable only) to ``path``; return its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    target = Path(path)
    if target.exists():
        raise CommandError(f"{target} exists already; a checkpoint key is never overwritten (move it away first)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 private key in ``path`` (PEM), with errors that name the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read the checkpoint key {path}: {exc.strerror or exc}; create one with "
                           "`caseflow audit keygen FILE`") from None
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise CommandError(f"{path} is not an unencrypted PEM private key ({exc}); create one with "
                           "`caseflow audit keygen FILE`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CommandError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def public_key_of(private_key: Any) -> bytes:
    """The raw 32 bytes of a private key's public key."""
    from cryptography.hazmat.primitives import serialization

    raw: bytes = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


@dataclass(frozen=True)
class Checkpoint:
    """One signed line of the checkpoint file."""

    line: int
    at: datetime
    cases: int
    events: int
    heads: Mapping[int, tuple[int, str]]
    key: str
    valid: bool

    @property
    def fingerprint(self) -> str:
        """A short digest of the heads, to compare checkpoints by eye."""
        text = _canonical({str(k): list(v) for k, v in sorted(self.heads.items())})
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def chain_heads(store: Store) -> dict[int, tuple[int, str]]:
    """Every case's last event (``seq``, ``hash``), read from the chain itself (not the case rows)."""
    heads: dict[int, tuple[int, str]] = {}
    with store.session() as s:
        rows = s.execute(sa.select(EventRow.case_id, EventRow.seq, EventRow.hash)  # type: ignore[call-overload]
                         .order_by(EventRow.case_id, EventRow.seq))
        for case_id, seq, digest in rows:
            heads[int(case_id)] = (int(seq), str(digest))
    return heads


def write_checkpoint(store: Store, path: str | os.PathLike[str], private_key: Any, *,
                     at: datetime | None = None) -> Checkpoint:
    """Append a signed checkpoint of every case's head to ``path``; refuse if any chain does not verify."""
    broken = verify_chains(store)
    if broken:
        raise AuditError(f"{len(broken)} audit problem(s), so no checkpoint was signed; first: {broken[0]}")
    when = (at or datetime.now(UTC)).astimezone(UTC)
    heads = chain_heads(store)
    body = {"kind": CHECKPOINT_KIND, "at": when.isoformat(), "cases": len(heads),
            "events": sum(seq for seq, _ in heads.values()),
            "heads": {str(k): [seq, digest] for k, (seq, digest) in sorted(heads.items())}}
    public = public_key_of(private_key).hex()
    signature = private_key.sign(_canonical(body).encode("utf-8")).hex()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as fh:
        fh.write(_canonical({"body": body, "key": public, "signature": signature}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    lines = sum(1 for _ in target.open(encoding="utf-8"))
    return Checkpoint(lines, when, len(heads), body["events"], heads, public, True)  # type: ignore[arg-type]


def read_checkpoints(path: str | os.PathLike[str], public_key: bytes | None = None) -> list[Checkpoint]:
    """Every checkpoint in the file; ``valid`` says whether its signature verifies (with ``public_key``
    if given, which must then also be the key the line names)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read the checkpoint file {path}: {exc.strerror or exc}") from None
    result = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            body = record["body"]
            key = bytes.fromhex(record["key"])
            valid = public_key is None or key == public_key
            try:
                Ed25519PublicKey.from_public_bytes(key).verify(bytes.fromhex(record["signature"]),
                                                               _canonical(body).encode("utf-8"))
            except InvalidSignature:
                valid = False
            heads = {int(k): (int(v[0]), str(v[1])) for k, v in body["heads"].items()}
            valid = valid and body.get("kind") == CHECKPOINT_KIND
            result.append(Checkpoint(number, datetime.fromisoformat(body["at"]), int(body["cases"]),
                                     int(body["events"]), heads, record["key"], valid))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            result.append(Checkpoint(number, datetime.min.replace(tzinfo=UTC), 0, 0, {}, "", False))
    return result


def latest_checkpoint(path: str | os.PathLike[str], public_key: bytes | None = None) -> Checkpoint | None:
    """The last checkpoint whose signature verifies, if any."""
    valid = [c for c in read_checkpoints(path, public_key) if c.valid]
    return valid[-1] if valid else None


def verify_against_checkpoint(store: Store, path: str | os.PathLike[str], public_key: bytes | None, *,
                              case_id: int | None = None) -> Iterator[AuditProblem]:
    """Compare the chain with the latest signed checkpoint, naming what changed in what it covered."""
    if not Path(path).exists():
        yield _problem(None, None, None, f"the checkpoint file {path} does not exist; write the first checkpoint "
                                         "with `caseflow audit checkpoint` (and keep the file away from the database)",
                       "checkpoint")
        return
    all_lines = read_checkpoints(path, public_key)
    for bad in (c for c in all_lines if not c.valid):
        yield _problem(None, None, None, f"checkpoint file {path}, line {bad.line}: its signature does not verify "
                                         "with the configured key (forged or damaged)", "checkpoint")
    valid = [c for c in all_lines if c.valid]
    if not valid:
        yield _problem(None, None, None, f"checkpoint file {path} holds no checkpoint signed with the configured key",
                       "checkpoint")
        return
    checkpoint = valid[-1]
    where = f"checkpoint of {checkpoint.at.isoformat()} (line {checkpoint.line})"
    with store.session() as s:
        for cid, (seq, digest) in sorted(checkpoint.heads.items()):
            if case_id is not None and cid != case_id:
                continue
            row = s.execute(sa.select(EventRow.hash).where(EventRow.case_id == cid,  # type: ignore[call-overload]
                                                           EventRow.seq == seq)).first()
            if row is not None:
                if row[0] != digest:
                    yield _problem(cid, seq, None, f"event #{seq} is not the one the {where} signed: the chain "
                                                   "was rewritten", "checkpoint")
                continue
            last = s.execute(sa.select(sa.func.max(EVENTS.c.seq)).where(EVENTS.c.case_id == cid)).scalar()
            if s.get(CaseRow, cid) is None and last is None:
                yield _problem(cid, None, None, f"the case is gone, but the {where} holds it with {seq} event(s): "
                                                "deleted", "checkpoint")
            else:
                yield _problem(cid, seq, None, f"the history ends at event #{last or 0}, but the {where} signed "
                                               f"#{seq}: its tail was cut", "checkpoint")
        if case_id is None:
            known = set(checkpoint.heads)
            table = CaseRow.__table__  # type: ignore[attr-defined]
            newest = max(known, default=0)
            # A case opened in the last moments before a checkpoint may commit just after it read the heads.
            cutoff = checkpoint.at - CHECKPOINT_GRACE
            first_at = dict(s.execute(sa.select(EVENTS.c.case_id, EVENTS.c.at).where(EVENTS.c.seq == 1)).all())
            for cid, opened_at in s.execute(sa.select(table.c.id, table.c.opened_at).order_by(table.c.id)):
                if int(cid) in known:
                    continue
                dated = min(opened_at, first_at.get(cid, opened_at))
                if dated <= cutoff:
                    numbered = " numbered and" if int(cid) < newest else ""
                    yield _problem(int(cid), None, None, f"the case is not in the {where}, yet it is{numbered} "
                                                         f"dated before it ({dated.astimezone(UTC).isoformat()}): "
                                                         "inserted", "checkpoint")
            counted = s.execute(sa.select(sa.func.count()).select_from(EVENTS)
                                .where(EVENTS.c.case_id.in_(list(known)) if known else sa.false())).scalar() or 0
            # Events added after the checkpoint to the cases it covers are fine; fewer are not.
            if counted < checkpoint.events:
                yield _problem(None, None, None, f"the cases of the {where} hold {counted} event(s), it signed "
                                                 f"{checkpoint.events}: events were removed", "checkpoint")


def checkpoint_matches(store: Store, checkpoint: Checkpoint) -> bool:
    """Whether the chain's heads are exactly those of ``checkpoint`` (a restore drill's last check)."""
    return chain_heads(store) == dict(checkpoint.heads)
