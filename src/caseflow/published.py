"""Holiday notices and workflow definitions as published in the database: one truth for every process.

An administrator loads a year's notice (``caseflow calendar import``, ``PUT /api/v1/holidays/{year}``) or a
revised definition (``caseflow workflows import``, ``PUT /api/v1/workflows/{key}``); it is stored in the
database — the YAML (or holiday-cn JSON) files are only how it is brought in and taken out — and a
generation counter is raised in the same transaction. Every process (API workers, schedulers, the CLI)
keeps a :class:`Published` view: before each command it reads the two counters and, when one moved,
rereads what was published. So a notice loaded through one worker governs the very next command on any
other, without a restart.

Why commands take a shared lock before reading the counters (PostgreSQL: a transaction-level advisory lock;
a load takes it exclusively): a load waits for the commands in flight to commit and later commands wait
for the load. A command therefore
either commits before the load (and the recompute that follows the load sees and moves its deadlines) or
starts after it (and computes with the notice): the recompute and any later command agree. SQLite runs
one writer at a time, which gives the same order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from caseflow.calendar import WorkCalendar, YearArrangement
from caseflow.errors import StoreError
from caseflow.notices import read_notice
from caseflow.registry import WorkflowRegistry
from caseflow.store import Generation, HolidayNotice, PublishedWorkflow, Store, WorkflowVersion
from caseflow.workflow import WorkflowDef
from caseflow.workflowfile import parse_workflow

__all__ = [
    "CALENDAR",
    "LOCK_KEY",
    "WORKFLOWS",
    "Published",
    "StoredNotice",
    "publish_notice",
    "publish_workflow",
    "read_generations",
    "stored_notices",
]

#: The names of the two generation counters.
CALENDAR = "calendar"
WORKFLOWS = "workflows"

_GEN = Generation.__table__  # type: ignore[attr-defined]


#: The PostgreSQL advisory lock that orders loads and commands (an arbitrary constant: "casefgen"); commands
#: take it shared in the statement that locks their case (:mod:`caseflow.engine`).
LOCK_KEY = 0x6361736566676560
_LOCK_KEY = LOCK_KEY


def read_generations(session: Session, *, lock: bool = False) -> tuple[int, int]:
    """The (calendar, workflows) generations; ``lock`` holds the load lock shared until the transaction ends.

    PostgreSQL: a transaction-level shared advisory lock (shared memory only: no row is written, so a
    command pays one round trip, not a tuple lock), then the read, in its own statement so that it sees a
    load that committed while the lock was awaited. SQLite's single writer needs no lock.
    """
    if lock and session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(LOCK_KEY)))
    values = {str(name): int(value) for name, value in session.execute(sa.select(_GEN.c.name, _GEN.c.value))}
    return int(values.get(CALENDAR, 0)), int(values.get(WORKFLOWS, 0))


def _raise(session: Session, name: str, at: datetime) -> int:
    """Raise a counter, holding the load lock exclusively: it waits for commands in flight, and commands
    starting now wait for this load to commit. The new value."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))
    result = session.execute(sa.update(_GEN).where(_GEN.c.name == name)
                             .values(value=_GEN.c.value + 1, changed_at=at).returning(_GEN.c.value))
    value = result.scalar()
    if value is None:  # a database created before the counters' rows (never by our migrations)
        session.add(Generation(name=name, value=1, changed_at=at))
        return 1
    return int(value)


@dataclass(frozen=True)
class StoredNotice:
    """A notice as kept in the database."""

    year: int
    source: str
    format: str
    text: str
    loaded_at: datetime
    loaded_by: str


def stored_notices(store: Store) -> list[StoredNotice]:
    """Every loaded notice, by year."""
    with store.session() as s:
        return [StoredNotice(r.year, r.source, r.format, r.text, r.loaded_at, r.loaded_by)
                for r in s.exec(select(HolidayNotice).order_by(HolidayNotice.year))]  # type: ignore[arg-type]


def publish_notice(store: Store, arrangement: YearArrangement, text: str, *, fmt: str, actor: str,
                   at: datetime | None = None) -> int:
    """Store a validated notice (replacing the year's earlier one) and raise the calendar generation."""
    at = at or datetime.now(UTC)
    with store.session(write=True) as s:
        generation = _raise(s, CALENDAR, at)
        row = s.get(HolidayNotice, arrangement.year)
        if row is None:
            row = HolidayNotice(year=arrangement.year, source="", format=fmt, text=text, loaded_at=at, loaded_by=actor)
        row.source, row.format, row.text = arrangement.source[:500], fmt, text
        row.loaded_at, row.loaded_by = at, actor
        s.add(row)
    return generation


def publish_workflow(store: Store, defn: WorkflowDef, *, actor: str, at: datetime | None = None) -> int:
    """Make ``defn`` the definition new cases of its key use, in every process; raise the generation."""
    at = at or datetime.now(UTC)
    with store.session(write=True) as s:
        generation = _raise(s, WORKFLOWS, at)
        if s.get(WorkflowVersion, defn.version) is None:
            s.add(WorkflowVersion(version=defn.version, key=defn.key, title=defn.title, text=defn.text,
                                  loaded_at=at))
            s.flush()
        row = s.get(PublishedWorkflow, defn.key)
        if row is None:
            row = PublishedWorkflow(key=defn.key, version=defn.version, loaded_at=at, loaded_by=actor)
        row.version, row.loaded_at, row.loaded_by = defn.version, at, actor
        s.add(row)
    return generation


def overlay(base: WorkCalendar, arrangements: Iterable[YearArrangement]) -> WorkCalendar:
    """``base`` with ``arrangements`` replacing its years."""
    extra = list(arrangements)
    if not extra:
        return base
    return WorkCalendar([*base.years.values(), *extra])


def published_calendar(store: Store, base: WorkCalendar | None = None) -> WorkCalendar:
    """The calendar the engine on ``store`` uses: ``base`` (default: the files') with the notices loaded
    into the database replacing their years — what ``caseflow deadline --db`` answers from."""
    from caseflow.calendar import default_calendar

    with store.session() as session:
        return overlay(base or default_calendar(), Published._arrangements(session))


class Published:
    """One process's view of what is published: its calendar and registry, refreshed when a counter moves.

    ``base`` is the calendar built from files (chinese-calendar, ``holidays/``, ``$CASEFLOW_HOLIDAYS_DIR``);
    loaded notices replace its years. ``registry`` is updated in place: a published definition becomes
    its key's latest.
    """

    def __init__(self, base: WorkCalendar, registry: WorkflowRegistry | None = None) -> None:
        self.base = base
        self.calendar = base
        self.registry = registry
        self._seen: tuple[int, int] = (0, 0)
        self._lock = threading.Lock()
        #: How many times this process reread the notices / definitions (for tests and benchmarks).
        self.reloads = 0

    def rebase(self, base: WorkCalendar, session: Session) -> WorkCalendar:
        """Take a new file-built calendar (``caseflow calendar reload``); loaded notices still win."""
        with self._lock:
            self.base = base
            self.calendar = overlay(base, self._arrangements(session))
            return self.calendar

    def moved(self, seen: tuple[int, int]) -> bool:
        """Whether the (calendar, workflows) counters as just read differ from those last taken up."""
        return seen != self._seen

    def check(self, session: Session, *, lock: bool = False, seen: tuple[int, int] | None = None) -> bool:
        """Reread what moved since the last check; True when something did.

        ``seen``: the (calendar, workflows) generations as the caller already read them in this
        transaction (a command reads them in the statement that loads its case, after the lock).
        """
        if seen is None:
            seen = read_generations(session, lock=lock)
        if seen == self._seen:
            return False
        with self._lock:
            if seen[0] != self._seen[0]:
                self.calendar = overlay(self.base, self._arrangements(session))
            if seen[1] != self._seen[1] and self.registry is not None:
                self._load_definitions(session)
            self._seen = seen
            self.reloads += 1
        return True

    @staticmethod
    def _arrangements(session: Session) -> list[YearArrangement]:
        out = []
        for row in session.exec(select(HolidayNotice).order_by(HolidayNotice.year)):  # type: ignore[arg-type]
            try:
                out.append(read_notice(f"{row.year} notice (database)", text=row.text, fmt=row.format))
            except ValueError as exc:  # validated at load: only a hand-edited row can fail
                raise StoreError(f"the stored {row.year} holiday notice no longer reads: {exc}; load it again "
                                 "with `caseflow calendar import`") from None
        return out

    def _load_definitions(self, session: Session) -> None:
        assert self.registry is not None
        rows = session.execute(
            sa.select(PublishedWorkflow.key, WorkflowVersion.version, WorkflowVersion.text)  # type: ignore[call-overload]
            .join(WorkflowVersion, WorkflowVersion.version == PublishedWorkflow.version)
            .order_by(PublishedWorkflow.key)
        ).all()
        for key, version, text in rows:
            if key in self.registry and self.registry.latest(key).version == version:
                continue
            try:
                known = self.registry.get(key, version) if key in self.registry else None
            except LookupError:
                known = None
            self.registry.add(known or parse_workflow(text, path=f"<published {key}@{version[:12]}>"))
