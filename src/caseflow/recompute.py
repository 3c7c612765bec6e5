"""Recompute every open timer after a holiday notice loads: in bulk, chunk by chunk.

A new notice (国务院办公厅 yearly arrangement) can move the due instant of every open day-based timer:
a projected year becomes official, a make-up working day appears. :func:`recompute_open_timers` is
the one entry point a loader calls (``caseflow calendar reload``, the HTTP upload, the loader of
notices kept in the database). It gives exactly the answers of :func:`caseflow.timing.timer_due` and
:func:`caseflow.timing.warn_instant`, timer by timer, and writes exactly the events the per-case
path (:func:`recompute_per_case`, kept as the reference) writes — a test holds the two together.

How it goes, per chunk of cases (keyset on the case id, one transaction each):

1. one read of the chunk's open timers joined to their cases, plain tuples straight from the driver
   (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds the write lock), so no
   concurrent command can slip in between; the heads of the cases' hash chains come in the same read;
2. per row only what must be Python (JSON of pauses and extensions; a pause's cap), then the
   calendar's arrays answer every row at once: ranks gathered with numpy for working days, date
   arithmetic for calendar days and months, the roll-forward, the excluded (paused) ranges one
   column at a time, the warning instant and the escalation instant (in the same pass: a notice can
   move an escalation without moving the due instant, when the working day after a last day of
   12-31 becomes 元旦);
3. the timers whose answer changed are written with one ``executemany``; each case with a moved due
   instant gets its "due moved" event, chained to the head kept on the case row, and its version
   bumped (``WHERE version = old``), also in batches.

A chunk commits or not at all, so an interrupted run leaves whole chunks done; running it again is
safe: a timer already moved computes to the value it holds and is left alone, no event repeats.
The report is streamed through ``on_move`` rather than held.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm.exc import StaleDataError

from caseflow.calendar import FIRST_YEAR, ZONE, WorkCalendar
from caseflow.clock import require_aware
from caseflow.errors import CalendarCoverageError
from caseflow.store import CaseRow, TimerRow, driver_connection
from caseflow.timelimits import TimeLimit

if TYPE_CHECKING:
    from caseflow.engine import Engine
    from caseflow.workflow import TimerDef

__all__ = ["RecomputeSummary", "recompute_open_timers", "recompute_per_case"]

Move = dict[str, Any]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_US = 1_000_000
_DAY_US = 86_400 * _US
# Asia/Shanghai has kept UTC+8 without daylight saving since 1991, so over the calendar's years
# (2004 on) a Beijing date is the UTC instant shifted by eight hours.
_OFFSET_US = 8 * 3_600 * _US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
#: Days since 1970-01-01 of the calendar's index 0.
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CAL_BASE = date(FIRST_YEAR, 1, 1).toordinal() - _EPOCH_ORDINAL
_NONE = np.iinfo(np.int64).min  # "no instant" in the integer columns

_UNIT_WD, _UNIT_DAYS, _UNIT_MONTHS = 0, 1, 2
_WARN_NONE, _WARN_CLOCK, _WARN_WD, _WARN_DAYS = 0, 1, 2, 3


@dataclass(frozen=True)
class RecomputeSummary:
    """What a recompute did."""

    #: Open day-based timers examined (clock timers never move with the calendar).
    timers: int
    #: Timers whose due instant, last day, warning, escalation or provisional flag changed and were written.
    timers_written: int
    #: Timers whose due instant or provisional flag moved ("due moved" entries of the report).
    moved: int
    #: Cases that got a "recompute" event.
    events: int
    #: Transactions committed.
    chunks: int


# ---------------------------------------------------------------------------------------- reference


def recompute_per_case(engine: Engine, calendar: WorkCalendar, *, source: str, actor: str = "system",
                       on_move: Callable[[Move], None] | None = None) -> RecomputeSummary:
    """The reference: one transaction per case through the engine's own rows and :func:`timer_due`.

    Slow (a few hundred timers a second) but plain; :func:`recompute_open_timers` must agree with it.
    """
    from sqlmodel import select

    from caseflow.timing import ACTIVE

    engine.calendar = calendar
    with engine.store.session() as s:
        ids = sorted(s.exec(
            select(TimerRow.case_id).where(TimerRow.status.in_(ACTIVE)).distinct()  # type: ignore[attr-defined]
        ))
    now = require_aware(engine.clock.now(), "clock")
    timers = written = moved = events = 0
    for case_id in ids:
        for _attempt in range(20):
            try:
                counts = _recompute_one(engine, calendar, case_id, now, source=source, actor=actor,
                                        on_move=on_move)
                timers, written = timers + counts[0], written + counts[1]
                moved, events = moved + counts[2], events + (1 if counts[2] else 0)
                break
            except (StaleDataError, sa.exc.IntegrityError):
                continue
    return RecomputeSummary(timers, written, moved, events, len(ids))


def _recompute_one(engine: Engine, calendar: WorkCalendar, case_id: int, now: datetime, *, source: str,
                   actor: str, on_move: Callable[[Move], None] | None) -> tuple[int, int, int]:
    from caseflow.timing import ACTIVE, _limit_from_spec
    from caseflow.views import _iso

    seen = written = 0
    with engine.store.session(write=True) as s:
        case = s.get(CaseRow, case_id)
        if case is None:
            return 0, 0, 0
        defn = engine.definition(case.workflow_version, s)
        moved = []
        for row in engine._timers(s, case_id):
            if row.status not in ACTIVE or _limit_from_spec(row.limit_spec).is_clock:
                continue
            seen += 1
            before = (row.due_at, row.provisional)
            fields = (row.due_at, row.last_day, row.provisional, row.warn_at, row.next_alert_at, row.escalate_at)
            engine._apply_due(row, defn.timer(row.name), calendar)
            if fields[-1] is None:
                # A row from before schema revision 0004 keeps no escalation instant of its own: the
                # scheduler applies its configured escalate_after to it (migration 0004), so it stays so.
                row.escalate_at = None
            if (row.due_at, row.last_day, row.provisional, row.warn_at, row.next_alert_at, row.escalate_at) != fields:
                written += 1
            if (row.due_at, row.provisional) != before:
                moved.append(_move_entry(row.name, before[0], row.due_at, row.provisional, source=source, iso=_iso))
        if moved:
            engine._append_event(s, case, "recompute", max(now, case.updated_at), actor,
                                 {"moved": moved, "source": source}, trigger=None,
                                 from_state=case.state, to_state=case.state)
    if on_move is not None:
        for m in moved:
            on_move({"case": case_id, **m})
    return seen, written, len(moved)


def _move_entry(name: str, before: datetime | None, after: datetime | None, provisional: bool, *,
                source: str, iso: Callable[[datetime | None], str | None]) -> Move:
    return {"timer": name, "from": iso(before), "to": iso(after), "provisional": provisional, "source": source,
            "message": f"due moved from {iso(before)} to {iso(after)} : {source}"}


# ---------------------------------------------------------------------------------------- bulk


def recompute_open_timers(engine: Engine, calendar: WorkCalendar, *, source: str, actor: str = "system",
                          on_move: Callable[[Move], None] | None = None,
                          chunk_size: int = 5000) -> RecomputeSummary:
    """Switch ``engine`` to ``calendar`` and move every open day-based timer whose answer changes.

    Each case with a moved due instant gets one "recompute" event ("due moved from … to … : SOURCE"),
    exactly as :func:`recompute_per_case` writes it. ``on_move`` receives each move as it is
    committed (``{"case", "timer", "from", "to", "provisional", "source", "message"}``). Chunks of
    ``chunk_size`` cases commit one by one; a rerun after an interruption finishes the work.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    # Commands that run while we work must already use the new calendar, or they would write the
    # old answer back on a case this run has passed.
    engine.calendar = calendar
    arrays = _CalendarArrays(calendar)
    now = require_aware(engine.clock.now(), "clock")
    kinds: dict[tuple[str, str, str], _Kind | None] = {}
    after = 0
    total = _Totals()
    while True:
        for _attempt in range(20):
            try:
                with engine.store.session(write=True) as s:
                    last, moves = _chunk(engine, s.connection(), arrays, kinds, after, chunk_size, now,
                                         source=source, actor=actor, totals=total)
                break
            except _StaleChunk:
                continue
        else:  # pragma: no cover - twenty lost races on one chunk under FOR UPDATE
            raise StaleDataError(f"cases after {after} kept changing; run the recompute again")
        if last is None:
            break
        total.chunks += 1
        total.commit()
        if on_move is not None:
            for m in moves:
                on_move(m)
        after = last
    return RecomputeSummary(total.timers, total.written, total.moved, total.events, total.chunks)


class _StaleChunk(Exception):
    """A case changed under the chunk (its version moved): redo the chunk."""


@dataclass
class _Totals:
    timers: int = 0
    written: int = 0
    moved: int = 0
    events: int = 0
    chunks: int = 0
    _pending: tuple[int, int, int, int] = (0, 0, 0, 0)

    def add(self, timers: int, written: int, moved: int, events: int) -> None:
        self._pending = (timers, written, moved, events)

    def commit(self) -> None:
        t, w, m, e = self._pending
        self.timers, self.written, self.moved, self.events = (self.timers + t, self.written + w,
                                                              self.moved + m, self.events + e)
        self._pending = (0, 0, 0, 0)


@dataclass(frozen=True)
class _Kind:
    """What every timer of one (definition version, timer name, limit) shares."""

    base: TimeLimit
    tdef: TimerDef
    unit: int
    warn: int
    warn_amount: int  # working days, days, or microseconds for a clock warning
    escalate: int
    escalate_amount: int  # working days, days, or microseconds for a clock escalation
    slot: int  # its row in the per-kind columns (_KindTable)


class _KindTable:
    """The kinds met so far as columns, so each row's attributes are one numpy gather by slot."""

    def __init__(self, kinds: Sequence[_Kind]) -> None:
        self.unit = np.array([k.unit for k in kinds], dtype=np.int64)
        self.amount = np.array([k.base.amount for k in kinds], dtype=np.int64)
        self.roll = np.array([k.base.roll_forward for k in kinds], dtype=np.bool_)
        self.last_to_last = np.array([k.base.month_end == "last_to_last" for k in kinds], dtype=np.bool_)
        self.next_workday = np.array([k.base.start_day == "next_workday" for k in kinds], dtype=np.bool_)
        self.warn = np.array([k.warn for k in kinds], dtype=np.int64)
        self.warn_amount = np.array([k.warn_amount for k in kinds], dtype=np.int64)
        self.escalate = np.array([k.escalate for k in kinds], dtype=np.int64)
        self.escalate_amount = np.array([k.escalate_amount for k in kinds], dtype=np.int64)


def _kind_of(engine: Engine, version: str, name: str, spec: str, *, slot: int) -> _Kind | None:
    from caseflow.timing import _limit_from_spec

    base = _limit_from_spec(spec)
    if base.is_clock:
        return None
    tdef = engine.definition(version)
    tdef_timer = tdef.timer(name)
    unit = {"working_days": _UNIT_WD, "days": _UNIT_DAYS, "months": _UNIT_MONTHS}[base.unit]
    warn, amount = _offset(tdef_timer.warn_before)
    escalate, escalate_amount = _offset(tdef_timer.escalate_after)
    return _Kind(base, tdef_timer, unit, warn, amount, escalate, escalate_amount, slot)


def _offset(limit: TimeLimit | None) -> tuple[int, int]:
    """A warning or escalation offset as (code, amount): microseconds on the clock, else (working) days."""
    if limit is None:
        return _WARN_NONE, 0
    if limit.is_clock:
        return _WARN_CLOCK, limit.amount * (3_600 if limit.unit == "hours" else 60) * _US
    if limit.unit == "working_days":
        return _WARN_WD, limit.amount
    # Months: warn_instant and escalation_instant both read a month as 30 days.
    return _WARN_DAYS, limit.amount * (30 if limit.unit == "months" else 1)


class _CalendarArrays:
    """The calendar's arrays in calendar-index space (0 = 2004-01-01), with checked gathers."""

    def __init__(self, calendar: WorkCalendar) -> None:
        self.calendar = calendar
        np_work, np_rank, np_by_rank = calendar._numpy_arrays()  # built on first use, then kept
        self.work: I64 = np_work
        self.rank: I64 = np_rank
        self.by_rank: I64 = np_by_rank - _CAL_BASE
        self.size = int(self.work.size)
        self.total = int(self.by_rank.size - 1)
        self.official = calendar._official_until_index

    def check(self, idx: I64) -> None:
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.size):
            raise CalendarCoverageError("a deadline leaves the calendar (2004-01-01 to 2099-12-31)")

    def ranked(self, r: I64) -> I64:
        if r.size and (int(r.min()) < 1 or int(r.max()) > self.total):
            raise CalendarCoverageError("a deadline leaves the calendar (2004-01-01 to 2099-12-31)")
        return self.by_rank[r]

    def next_workday(self, idx: I64) -> I64:
        self.check(idx)
        return self.ranked(self.rank[idx] + 1)

    def add_working(self, idx: I64, n: I64) -> I64:
        """``add_working_days`` for n >= 0."""
        self.check(idx)
        r = self.rank[idx] + n
        safe = np.where(n > 0, r, 1)
        return np.where(n > 0, self.ranked(safe), idx)

    def between(self, a: I64, b: I64) -> I64:
        self.check(a)
        self.check(b)
        return cast(I64, self.rank[b] - self.rank[a])


_INSTANT_COLS = ("started_at", "due_at", "warn_at", "next_alert_at", "escalate_at")
_CASE_COLS = ("workflow_version", "state", "version", "last_event_hash")
# Positions in a chunk row (plain indexing: a chunk may hold a hundred thousand rows).
_ID, _CASE, _NAME, _SPEC, _FLAGS, _PAUSES, _EXT = range(7)
_START, _DUE, _WARN, _NEXT, _ESCALATE, _LAST_DAY, _VERSION_KEY, _STATE, _CASE_VERSION, _HEAD, _UPDATED = range(7, 18)
# Bits of the _FLAGS column, answered by the database (an integer costs less to read than the strings).
_RUNNING, _NO_LEVEL, _DUE_LEVEL, _PROVISIONAL = 1, 2, 4, 8


@dataclass
class _Old:
    """The chunk's stored answers, as integers (microseconds since the epoch; calendar indices)."""

    start: I64
    due: I64
    warn: I64
    next_alert: I64
    escalate: I64
    last_day: I64
    provisional: B
    running: B
    no_level: B
    due_level: B


def _chunk(engine: Engine, conn: sa.Connection, cal: _CalendarArrays,  # noqa: PLR0917
           kinds: dict[tuple[str, str, str], _Kind | None], after: int, size: int, now: datetime, *,
           source: str, actor: str, totals: _Totals) -> tuple[int | None, list[Move]]:
    from caseflow.timing import ACTIVE

    t = TimerRow.__table__  # type: ignore[attr-defined]
    c = CaseRow.__table__  # type: ignore[attr-defined]
    # Keyset on the cases' primary key: each chunk costs its own size, never a scan of what is left.
    ids = (sa.select(c.c.id).where(c.c.id > after, c.c.closed_at.is_(None)).order_by(c.c.id).limit(size)
           .subquery())
    last = conn.execute(sa.select(sa.func.max(ids.c.id))).scalar()
    if last is None:
        return None, []
    sqlite = conn.dialect.name == "sqlite"

    def raw(column: Any) -> Any:
        # On SQLite instants and dates are read as the stored text and parsed by numpy, a column at a
        # time; PostgreSQL answers them as integers (microseconds, days since 1970-01-01: its epoch is exact).
        if sqlite:
            return sa.type_coerce(column, sa.String).label(column.name)
        if isinstance(column.type, sa.Date):
            return sa.literal_column(f"({column.table.name}.{column.name} - DATE '1970-01-01')").label(column.name)
        return sa.cast(sa.extract("epoch", column) * _US, sa.BigInteger).label(column.name)

    flags = (sa.case((t.c.status == "running", _RUNNING), else_=0)
             + sa.case((t.c.alert_level.is_(None), _NO_LEVEL),
                       (t.c.alert_level.in_(("warning", "overdue")), _DUE_LEVEL), else_=0)
             + sa.case((t.c.provisional, _PROVISIONAL), else_=0))
    # The case-id range is what the index serves: on SQLite the status test is kept off the status
    # index (unary +), which would walk every open timer of the database per chunk.
    status: Any = sa.literal_column(f"{'+' if sqlite else ''}{t.name}.status")
    query = (sa.select(t.c.id, t.c.case_id, t.c.name, t.c.limit_spec, flags,
                       sa.func.nullif(t.c.pauses, "[]"), sa.func.nullif(t.c.extensions, "[]"),
                       *(raw(t.c[k]) for k in _INSTANT_COLS), raw(t.c.last_day),
                       *(c.c[k] for k in _CASE_COLS), raw(c.c.updated_at))
             .select_from(t.join(c, c.c.id == t.c.case_id))
             .where(t.c.case_id > after, t.c.case_id <= last, status.in_(ACTIVE))
             .order_by(t.c.case_id, t.c.id))
    if not sqlite:
        query = query.with_for_update()
    # Straight to the driver: plain tuples, no per-value processing (the bounds are integers we hold).
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = driver_connection(conn).cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()

    if not rows:
        return int(last), []
    # Column by column; Python per row only where it must be: JSON of extensions and pauses.
    columns = list(zip(*rows, strict=True))
    keys = list(zip(columns[_VERSION_KEY], columns[_NAME], columns[_SPEC], strict=True))
    for key in set(keys) - kinds.keys():
        kinds[key] = _kind_of(engine, *key, slot=sum(k is not None for k in kinds.values()))
    slot_of = {key: -1 if kind is None else kind.slot for key, kind in kinds.items()}
    slot = np.fromiter(map(slot_of.__getitem__, keys), dtype=np.int64, count=len(keys))
    picked = np.flatnonzero(slot >= 0)  # day-based timers (clock timers never move)
    if not picked.size:
        return int(last), []
    if picked.size < len(rows):
        take = picked.tolist()
        rows = [rows[i] for i in take]
        columns = [tuple(col[i] for i in take) for col in columns]
        slot = slot[picked]
    kind_list = sorted((k for k in kinds.values() if k is not None), key=lambda k: k.slot)
    table = _KindTable(kind_list)
    # Most timers have neither (the database answers NULL for '[]'): only the others are parsed.
    extra = np.zeros(len(rows), dtype=np.int64)
    extended = _not_null(columns[_EXT])
    ext_column = columns[_EXT]
    extra[extended] = [sum(int(e["amount"]) for e in json.loads(ext_column[i])) for i in extended.tolist()]
    pause_column = columns[_PAUSES]
    ranges = {i: _pause_ranges(pause_column[i], kind_list[k].tdef, cal.calendar)
              for i, k in zip(_not_null(pause_column).tolist(), slot[_not_null(pause_column)].tolist(), strict=True)}
    bits = np.array(columns[_FLAGS], dtype=np.int64)
    old = _Old(_instants(columns[_START], sqlite), _instants(columns[_DUE], sqlite),
               _instants(columns[_WARN], sqlite), _instants(columns[_NEXT], sqlite),
               _instants(columns[_ESCALATE], sqlite), _days(columns[_LAST_DAY], sqlite),
               (bits & _PROVISIONAL) != 0, (bits & _RUNNING) != 0, (bits & _NO_LEVEL) != 0, (bits & _DUE_LEVEL) != 0)
    new = _bulk_due(cal, table, slot, table.amount[slot] + extra, old.start, ranges=ranges)
    moves, counts = _write(conn, rows, old, new, now, source=source, actor=actor)
    totals.add(len(rows), *counts)
    return int(last), moves


def _not_null(values: Sequence[Any]) -> I64:
    """The positions of the values that are not None (compared in numpy, not in a Python loop)."""
    column: npt.NDArray[np.object_] = np.array(values, dtype=object)
    return np.flatnonzero(column != None)  # noqa: E711 - numpy compares element by element


def _instants(values: Sequence[Any], sqlite: bool) -> I64:
    """Stored instants as microseconds since the epoch (``_NONE`` for NULL)."""
    if sqlite:
        # SQLite keeps UTC as 'YYYY-MM-DD HH:MM:SS.ffffff'; numpy reads it (and None as NaT = _NONE).
        return np.array(values, dtype="datetime64[us]").astype(np.int64)
    return np.fromiter((_NONE if v is None else v for v in values), dtype=np.int64, count=len(values))


def _days(values: Sequence[Any], sqlite: bool) -> I64:
    """Stored dates as calendar indices (``_NONE`` for NULL)."""
    if sqlite:
        days = np.array(values, dtype="datetime64[D]").astype(np.int64)
    else:
        days = np.fromiter((_NONE if v is None else v for v in values), dtype=np.int64, count=len(values))
    return np.where(days == _NONE, _NONE, days - _CAL_BASE)


def _pause_ranges(text: str, tdef: TimerDef, calendar: WorkCalendar) -> list[tuple[int, int]] | None:
    """A timer's pause ledger as merged excluded day ranges (calendar indices), as :func:`timer_due` reads it.

    None when an open pause without a cap leaves the due instant unknown.
    """
    from caseflow.timing import pause_span

    spans: list[tuple[date, date]] = []
    for pause in json.loads(text):
        start, end = pause_span(pause, tdef, calendar)
        if end is None:
            return None
        first = start.astimezone(ZONE).date()
        last = end.astimezone(ZONE).date() - timedelta(days=1)
        if last >= first:
            spans.append((first, last))
    spans.sort()
    merged: list[tuple[date, date]] = []
    for a, b in spans:  # timelimits._day_ranges: adjacent or overlapping ranges become one
        if merged and a <= merged[-1][1] + timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    base = date(FIRST_YEAR, 1, 1).toordinal()
    return [(a.toordinal() - base, b.toordinal() - base) for a, b in merged]


@dataclass
class _Answers:
    known: B
    due: I64  # microseconds since the epoch, UTC
    last_day: I64  # calendar index
    provisional: B
    warn: I64  # _NONE when there is no warning
    escalate: I64  # engine.escalation_instant of the due instant


def _bulk_due(cal: _CalendarArrays, table: _KindTable, slot: I64, amount: I64, start_us: I64, *,
              ranges: dict[int, list[tuple[int, int]] | None]) -> _Answers:
    """:func:`caseflow.timing.timer_due` and :func:`caseflow.timing.warn_instant` for many timers at once.

    ``ranges`` holds the excluded day ranges of the rows that have pauses (None: an open pause
    without a cap, the due instant unknown).
    """
    n = slot.size
    unit, roll = table.unit[slot], table.roll[slot]
    last_to_last, next_wd = table.last_to_last[slot], table.next_workday[slot]
    known = np.ones(n, dtype=np.bool_)
    known[[i for i, r in ranges.items() if r is None]] = False

    # The start's Beijing date; an acceptance on a rest day may count from the next working day.
    idx = (start_us + _OFFSET_US) // _DAY_US - _CAL_BASE
    cal.check(idx)
    move = next_wd & (cal.work[idx] == 0)
    if move.any():
        idx = np.where(move, cal.next_workday(np.where(move, idx, 0)), idx)

    # Excluded ranges, padded to the longest ledger; a pad (-1, -1) is always behind the position.
    width = max((len(r) for r in ranges.values() if r), default=0)
    lo = np.full((n, width), -1, dtype=np.int64)
    hi = np.full((n, width), -1, dtype=np.int64)
    if width:
        for i, r in ranges.items():
            for k, (a, b) in enumerate(r or ()):
                lo[i, k], hi[i, k] = a, b

    last = np.zeros(n, dtype=np.int64)
    provisional = np.zeros(n, dtype=np.bool_)
    wd = unit == _UNIT_WD
    if wd.any():
        pos, remaining = _count_forward(cal, idx[wd], amount[wd], lo[wd], hi[wd], working=True)
        day = cal.add_working(pos, remaining)
        last[wd] = day
        provisional[wd] = day > cal.official
    other = ~wd
    if other.any():
        start = idx[other]
        nominal = amount[other].copy()
        months = unit[other] == _UNIT_MONTHS
        if months.any():
            nominal[months] = _month_days(start[months], amount[other][months], last_to_last[other][months])
        pos, remaining = _count_forward(cal, start, nominal, lo[other], hi[other], working=False)
        day = pos + remaining
        cal.check(day)
        rolls = roll[other] & (nominal > 0)
        rest = rolls & (cal.work[day] == 0)
        if rest.any():
            day = np.where(rest, cal.next_workday(np.where(rest, day, 0)), day)
        last[other] = day
        provisional[other] = rolls & (day > cal.official)

    due = (last + _CAL_BASE + 1) * _DAY_US - _OFFSET_US
    warn = _warnings(cal, table.warn[slot], table.warn_amount[slot], last, due, start_us)
    escalate = _escalations(cal, table.escalate[slot], table.escalate_amount[slot], last, due)
    provisional &= known
    return _Answers(known, due, last, provisional, warn, escalate)


def _count_forward(cal: _CalendarArrays, pos: I64, remaining: I64, lo: I64, hi: I64, *,
                   working: bool) -> tuple[I64, I64]:
    """timelimits._count_forward, one excluded range (column) at a time for every row."""
    remaining = remaining.copy()
    active = np.ones(pos.size, dtype=np.bool_)

    def between(a: I64, b: I64) -> I64:
        return cal.between(a, b) if working else b - a

    for k in range(lo.shape[1]):
        a0, b = lo[:, k], hi[:, k]
        consider = active & (b > pos)
        if not consider.any():
            continue
        a = np.maximum(a0, pos + 1)
        available = between(pos, np.where(consider, a - 1, pos))
        stop = consider & (available >= remaining)
        step = consider & ~stop
        remaining = np.where(step, remaining - available, remaining)
        pos = np.where(step, b, pos)
        active &= ~stop
    return pos, remaining


def _month_days(start: I64, months: I64, last_to_last: B) -> I64:
    """Calendar days from each start to its day ``months`` later (民法典 第二百零二条; 刑诉解释 第二百零二条)."""
    day = (start + _CAL_BASE).astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    dom = (day - month.astype("datetime64[D]")).astype(np.int64)
    target = month + months.astype("timedelta64[M]")
    target_last = (target + np.timedelta64(1, "M")).astype("datetime64[D]") - np.timedelta64(1, "D")
    start_is_last = (day + np.timedelta64(1, "D")).astype("datetime64[M]") != month
    same = np.minimum(target.astype("datetime64[D]") + dom, target_last)
    end = np.where(last_to_last & start_is_last, target_last, same)
    return cast(I64, (end - day).astype(np.int64))


def _warnings(cal: _CalendarArrays, code: I64, amount: I64, last: I64, due: I64,  # noqa: PLR0917
              start_us: I64) -> I64:
    n = code.size
    warn = np.full(n, _NONE, dtype=np.int64)
    clock = code == _WARN_CLOCK
    warn[clock] = due[clock] - amount[clock]
    wd = code == _WARN_WD
    if wd.any():
        lw, aw = last[wd], amount[wd]
        r = cal.rank[lw] - cal.work[lw] - aw + 1
        day = np.where(aw > 0, cal.ranked(np.where(aw > 0, r, 1)), lw)
        warn[wd] = (day + _CAL_BASE + 1) * _DAY_US - _OFFSET_US
    days = code == _WARN_DAYS
    warn[days] = (last[days] - (amount[days] - 1) + _CAL_BASE) * _DAY_US - _OFFSET_US
    valid = (code != _WARN_NONE) & (warn > start_us) & (warn < due)
    return np.where(valid, warn, _NONE)


def _escalations(cal: _CalendarArrays, code: I64, amount: I64, last: I64, due: I64) -> I64:
    """timelimits.escalation_instant: a day limit's due instant is 24:00 of its last day, so the
    escalation is 24:00 of the day ``amount`` (working) days after the last day, or ``amount`` later on the clock."""
    day = last.copy()
    wd = code == _WARN_WD
    if wd.any():
        day[wd] = cal.add_working(last[wd], amount[wd])
    days = code == _WARN_DAYS
    day[days] += amount[days]
    escalate = (day + _CAL_BASE + 1) * _DAY_US - _OFFSET_US
    clock = code == _WARN_CLOCK
    escalate[clock] = due[clock] + amount[clock]
    return escalate


def _texts(us: I64, sqlite: bool) -> list[str | None]:
    """Instants (microseconds since the epoch, UTC) in UTCDateTime's stored form, a column at a time.

    SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC); PostgreSQL reads the same text with its offset.
    """
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us").tolist()
    suffix = "" if sqlite else "+00:00"
    return [None if t == "NaT" else f"{t[:10]} {t[11:]}{suffix}" for t in text]


def _date_texts(day: I64) -> list[str | None]:
    """Calendar indices as ISO dates (None for ``_NONE``)."""
    days = np.where(day == _NONE, _NONE, day + _CAL_BASE).astype("datetime64[D]")
    return [None if t == "NaT" else t for t in np.datetime_as_string(days).tolist()]


def _isoformats(us: I64, offset_us: int, suffix: str) -> list[str | None]:
    """``datetime.isoformat()`` of instants at a fixed offset: microseconds only when there are some."""
    local = np.where(us == _NONE, _NONE, us + offset_us).astype("datetime64[us]")
    whole = (us % _US == 0).tolist()
    return [None if t == "NaT" else (t[:19] if w else t) + suffix
            for t, w in zip(np.datetime_as_string(local, unit="us").tolist(), whole, strict=True)]


def _write(conn: sa.Connection, rows: Sequence[Any], old: _Old, new: _Answers, now: datetime, *,
           source: str, actor: str) -> tuple[list[Move], tuple[int, int, int]]:
    """Write the changed timers, and one "recompute" event per case whose due moved.

    The statements go to the driver as plain ``executemany`` with values made a column at a time in
    UTCDateTime's stored form: SQLAlchemy's per-parameter processing, or a datetime per value, would
    cost more than the arithmetic. The events' JSON and hashes are written out here as
    :func:`caseflow.chain._canonical` and :func:`caseflow.chain.event_hash` write them (sorted keys,
    no spaces, non-ASCII kept); the audit's chain check and the bulk/per-case test hold them together.
    """
    from caseflow.chain import GENESIS_HASH

    sqlite = conn.dialect.name == "sqlite"
    known = new.known
    due = np.where(known, new.due, _NONE)
    last = np.where(known, new.last_day, _NONE)
    warn = np.where(known, new.warn, _NONE)
    # A row from before schema revision 0004 has no escalation instant (the scheduler's configured
    # escalate_after applies to it) and keeps none; the others follow the due instant.
    escalate = np.where(known & (old.escalate != _NONE), new.escalate, _NONE)
    # timing.apply_due's rule for the next alert instant.
    nxt = np.where(old.no_level, np.where(warn != _NONE, warn, due), np.where(old.due_level, due, old.next_alert))
    nxt = np.where(known & old.running, nxt, _NONE)
    moved_mask = (due != old.due) | (new.provisional != old.provisional)
    changed = np.flatnonzero(moved_mask | (last != old.last_day) | (warn != old.warn) | (nxt != old.next_alert)
                             | (escalate != old.escalate))
    if not changed.size:
        return [], (0, 0, 0)
    _batch(conn, "UPDATE caseflow_timers", ("due_at", "last_day", "provisional", "warn_at", "next_alert_at",
                                            "escalate_at"), ("id",),
           [_texts(due[changed], sqlite), _date_texts(last[changed]), new.provisional[changed].tolist(),
            _texts(warn[changed], sqlite), _texts(nxt[changed], sqlite), _texts(escalate[changed], sqlite),
            [rows[i][_ID] for i in changed.tolist()]])
    moved = np.flatnonzero(moved_mask)
    if not moved.size:
        return [], (int(changed.size), 0, 0)

    # The "due moved" entries, grouped by case (the rows come ordered by case, then timer id).
    source_json = encode_basestring(source)
    name_json: dict[str, str] = {}
    by_case: list[tuple[Any, list[Move], list[str]]] = []
    for i, before, after, provisional in zip(moved.tolist(), _isoformats(old.due[moved], _OFFSET_US, "+08:00"),
                                             _isoformats(due[moved], _OFFSET_US, "+08:00"),
                                             new.provisional[moved].tolist(), strict=True):
        row = rows[i]
        name = row[_NAME]
        message = f"due moved from {before} to {after} : {source}"
        entry = {"case": row[_CASE], "timer": name, "from": before, "to": after, "provisional": provisional,
                 "source": source, "message": message}
        if name not in name_json:
            name_json[name] = encode_basestring(name)
        fragment = (f'{{"from":{_json_text(before)},"message":"due moved from {before} to {after} : '
                    f'{source_json[1:-1]}","provisional":{"true" if provisional else "false"},'
                    f'"source":{source_json},"timer":{name_json[name]},"to":{_json_text(after)}}}')
        if by_case and by_case[-1][0][_CASE] == row[_CASE]:
            by_case[-1][1].append(entry)
            by_case[-1][2].append(fragment)
        else:
            by_case.append((row, [entry], [fragment]))

    # One "recompute" event per case, chained to the head kept on the case row.
    now_us = (now - _EPOCH) // _ONE_US
    recorded_us = np.array([(datetime.now(UTC) - _EPOCH) // _ONE_US], dtype=np.int64)
    recorded_text, recorded_iso = _texts(recorded_us, sqlite)[0], _isoformats(recorded_us, 0, "+00:00")[0]
    at_us = np.maximum(_instants([row[_UPDATED] for row, _e, _f in by_case], sqlite), now_us)
    at_texts, at_isos = _texts(at_us, sqlite), _isoformats(at_us, 0, "+00:00")
    actor_json = encode_basestring(actor)
    events: list[tuple[Any, ...]] = []
    cases: list[tuple[Any, ...]] = []
    moves: list[Move] = []
    for (row, entries, fragments), at_text, at_iso in zip(by_case, at_texts, at_isos, strict=True):
        case_id, state, version, previous = row[_CASE], row[_STATE], row[_CASE_VERSION], row[_HEAD]
        seq = version + 1 if previous is not None else 1
        prev_hash = previous or GENESIS_HASH
        data = f'{{"moved":[{",".join(fragments)}],"source":{source_json}}}'
        state_json = encode_basestring(state)
        payload = (f'{{"actor":{actor_json},"at":"{at_iso}","case_id":{case_id},"data":{encode_basestring(data)},'
                   f'"from_state":{state_json},"kind":"recompute","prev_hash":{encode_basestring(prev_hash)},'
                   f'"recorded_at":"{recorded_iso}","seq":{seq},"to_state":{state_json},"trigger":null}}')
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        events.append((case_id, seq, "recompute", at_text, recorded_text, actor, None, state, state, data,
                       prev_hash, digest))
        cases.append((seq if previous is not None else version, at_text, digest, at_text, case_id, version))
        moves.extend(entries)
    updated = _batch(conn, "UPDATE caseflow_cases", ("version", "updated_at", "last_event_hash", "last_event_at"),
                     ("id", "version"), [list(column) for column in zip(*cases, strict=True)])
    if updated is not None and updated != len(cases):
        raise _StaleChunk()
    columns = ("case_id, seq, kind, at, recorded_at, actor, trigger, from_state, to_state, data, prev_hash, hash")
    if sqlite:
        conn.exec_driver_sql(f"INSERT INTO caseflow_events ({columns}) VALUES ({', '.join(['?'] * 12)})", events)
    else:
        cursor = driver_connection(conn).cursor()
        with cursor.copy(f"COPY caseflow_events ({columns}) FROM STDIN") as copy:
            for event in events:
                copy.write_row(event)
    return moves, (int(changed.size), len(moves), len(by_case))


_PG_TYPES = {"due_at": "timestamptz", "warn_at": "timestamptz", "next_alert_at": "timestamptz",
             "escalate_at": "timestamptz", "updated_at": "timestamptz", "last_event_at": "timestamptz",
             "last_day": "date", "provisional": "boolean", "id": "bigint", "version": "bigint",
             "last_event_hash": "text"}


def _batch(conn: sa.Connection, update: str, sets: Sequence[str], where: Sequence[str],
           columns: list[list[Any]]) -> int | None:
    """``UPDATE … SET sets… WHERE where…`` for many rows given column by column; the rows matched.

    SQLite: one ``executemany`` (its rowcount is not told: None). PostgreSQL: one statement over
    ``unnest`` of one array per column — one round trip, not one per row.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"{update} SET {', '.join(f'{c} = ?' for c in sets)} "
                             f"WHERE {' AND '.join(f'{c} = ?' for c in where)}", list(zip(*columns, strict=True)))
        return None
    names = [*sets, *(f"where_{c}" for c in where)]
    types = [_PG_TYPES[c] for c in (*sets, *where)]
    cursor = driver_connection(conn).cursor()
    cursor.execute(f"{update} AS target SET {', '.join(f'{c} = v.{c}' for c in sets)} "
                   f"FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) AS v({', '.join(names)}) "
                   f"WHERE {' AND '.join(f'target.{c} = v.where_{c}' for c in where)}", columns)
    return int(cursor.rowcount)


def _json_text(value: str | None) -> str:
    """An ISO instant (plain ASCII) or None as JSON."""
    return "null" if value is None else f'"{value}"'
