"""One command's reads and writes: hold the case and read what the command needs in one statement
(:func:`_load`), then write what it changed in one (:func:`_write`), bypassing the ORM's flush.

The rows a command works on are built and changed as the ORM would (:func:`_new_row`, :func:`_set`)
without SQLModel's validating constructor and ``__setattr__``; :class:`_Ctx` is what the command's
``apply`` step sees inside its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_attribute
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from caseflow.alerts import bind_processors, bound_values
from caseflow.chain import GENESIS_HASH, _canonical, event_hash
from caseflow.checks import _bad_text
from caseflow.errors import CaseNotFoundError, CommandError
from caseflow.published import LOCK_KEY
from caseflow.store import BEGIN_FIRST, CaseRow, CommandRecord, EventRow, Generation, Person, TimerRow

if TYPE_CHECKING:
    from caseflow.calendar import WorkCalendar
    from caseflow.workflow import WorkflowDef

_CASES: sa.Table = CaseRow.__table__  # type: ignore[attr-defined]
_TIMERS: sa.Table = TimerRow.__table__  # type: ignore[attr-defined]
_EVENTS: sa.Table = EventRow.__table__  # type: ignore[attr-defined]
_COMMANDS: sa.Table = CommandRecord.__table__  # type: ignore[attr-defined]
_GENS: sa.Table = Generation.__table__  # type: ignore[attr-defined]


def _column_map(model: type[Any]) -> tuple[tuple[str, str], ...]:
    """(attribute, column key) of a table model's columns."""
    return tuple((prop.key, prop.columns[0].key) for prop in sa.inspect(model).column_attrs)


_COLUMNS: dict[type[Any], tuple[tuple[str, str], ...]] = {
    model: _column_map(model) for model in (CaseRow, TimerRow, EventRow, CommandRecord)
}


def _defaults(model: type[Any]) -> dict[str, Any]:
    return {name: info.default for name, info in model.model_fields.items() if not info.is_required()}


_DEFAULTS: dict[type[Any], dict[str, Any]] = {model: _defaults(model) for model in _COLUMNS}


def _new_row(model: type[Any], **values: Any) -> Any:
    """A new row object of ``model`` (its other fields at their defaults), built as the ORM builds a row it
    loads: SQLModel's validating constructor costs a command more than its SQL does."""
    defaults = _DEFAULTS.get(model)
    if defaults is None:  # a table model of another module (the desk's, the ratings'): read once
        defaults = _DEFAULTS[model] = _defaults(model)
    obj = sa.inspect(model).class_manager.new_instance()
    obj.__dict__.update(defaults)
    obj.__dict__.update(values)
    return obj


def _set(obj: Any, **values: Any) -> None:
    """Set columns of a row through SQLAlchemy's instrumentation alone (the change is tracked as by an
    assignment): SQLModel's ``__setattr__`` also runs pydantic's, whose bookkeeping nothing here reads
    and which cost more than the assignment (the due instants are set on every command and replay)."""
    for name, value in values.items():
        set_attribute(obj, name, value)


def _row_values(obj: Any) -> dict[str, Any]:
    """Every column value of a new row (its id left to the database when not set)."""
    values = {column: getattr(obj, attr) for attr, column in _COLUMNS[type(obj)]}
    if values.get("id", 0) is None:
        del values["id"]
    return values


def _changed_values(obj: Any) -> dict[str, Any]:
    """The columns of a loaded row a command changed (the ORM keeps each one's value as loaded)."""
    state = sa.inspect(obj)
    columns = dict(_COLUMNS[type(obj)])
    return {columns[attr]: getattr(obj, attr) for attr, before in state.committed_state.items()
            if attr in columns and getattr(obj, attr) != before}


@dataclass(frozen=True)
class _Roster:
    """What picking assignees reads (PostgreSQL reads it with the rest of a command): who in the case's unit
    holds which roles (the unit_only_holder rule), and the roles of the leaders of the people the command
    read (the leader rule). Roles are space-separated, as stored."""

    unit: str
    members: list[tuple[str, str]]
    leaders: dict[str, str]


@dataclass
class _Loaded:
    """What one statement (two on PostgreSQL) read for a command, after it holds the case."""

    generations: tuple[int, int]
    case: CaseRow | None = None
    actor: Person | None = None
    record: CommandRecord | None = None
    timers: list[TimerRow] = field(default_factory=list)
    #: The id a case being opened takes (read with the rest, so the open event's hash can name it).
    next_id: int | None = None
    #: PostgreSQL, when asked for: the case's unit's people and roles (the unit_only_holder rule).
    roster: _Roster | None = None
    #: The first row read: it holds the people loaded, as the session's identity map holds only objects
    #: referenced elsewhere (so ``session.get`` finds them while the command runs).
    row: Any = None


def _load(s: Session, *, case_id: int | None, actor: str | None, key: str | None,
          people: Iterable[str | None] = (), roster: bool = False, owner: str | None = None) -> _Loaded:
    """Hold the case and read everything a command needs, in as few statements as the database allows.

    SQLite: one statement after ``BEGIN IMMEDIATE`` (the write lock is held from the start). PostgreSQL:
    the transaction's BEGIN and the case row locked ``FOR UPDATE`` in one query (:data:`BEGIN_FIRST`: the
    case id and the lock key are written into it, so it has no parameters), whose statement also takes the
    notices' advisory lock shared (:mod:`caseflow.published`); then one statement for the generation
    counters, the timers, the people, the idempotency record and, with ``roster`` (the command may start
    timers), who in the case's unit (opening: the unit of ``owner``, the person the case will belong to)
    holds which roles and the leaders of the people read, so picking assignees reads nothing. The second
    statement must stay apart from the first: it starts after both locks are held, so it sees every command
    and load that committed before (READ COMMITTED takes a snapshot per statement). So a command is four
    round trips on PostgreSQL: BEGIN with the locks, the read, the write (:func:`_write`), COMMIT. People
    and the case land in the session, so later ``session.get`` calls for them send nothing.
    """
    pg = s.get_bind().dialect.name == "postgresql"
    case = None
    if pg:
        if case_id is not None:
            if isinstance(case_id, bool) or not isinstance(case_id, int):  # it is written into the query
                raise CaseNotFoundError(f"no case has the id {case_id!r}")
            case = s.execute(_LOCK_CASE, {"case_id": case_id}).scalar()
        else:
            s.execute(_LOCK_ONLY)
    wanted = [p for p in dict.fromkeys(people) if p is not None and p != actor]
    params: dict[str, Any] = {"case_id": case_id, "actor": actor, "key": key}
    params.update({f"person{i}": pid for i, pid in enumerate(wanted)})
    responsible = "join" if case_id is not None and not pg else None
    if pg and case is not None and case.responsible_id not in (actor, *wanted):
        responsible, params["responsible"] = "param", case.responsible_id
    unit_of = None
    if pg and roster and case is not None:
        unit_of, params["unit"] = "unit", case.unit
    elif pg and roster and case_id is None and owner is not None:
        unit_of = "actor" if owner == actor else f"person{wanted.index(owner)}"
    shape = (pg, case_id is None, actor is not None, len(wanted), responsible, bool(key), unit_of)
    query, slots = _READS.get(shape) or _read_query(*shape)
    rows = s.execute(query, params).all()
    first = rows[0]
    loaded = _Loaded((int(first[0] or 0), int(first[1] or 0)), case=case,
                     next_id=int(first[2]) if first[2] is not None else None, row=first)
    if "case" in slots:
        loaded.case = first[slots["case"]]
    if "actor" in slots:
        loaded.actor = first[slots["actor"]]
    if "record" in slots:
        loaded.record = first[slots["record"]]
    if "timers" in slots:
        column = slots["timers"]
        loaded.timers = [row[column] for row in rows if row[column] is not None]
    if unit_of is not None:
        unit = params["unit"] if unit_of == "unit" else getattr(first[slots[unit_of]], "unit", None)
        if unit is not None:
            leaders = {first[i]: first[i + 1] for name, i in slots.items()
                       if name.endswith("_leader") and first[i] is not None}
            # json_agg over nobody is NULL: a unit without people
            loaded.roster = _Roster(unit, [(str(pid), str(roles)) for pid, roles in first[slots["roster"]] or ()],
                                    leaders)
    return loaded


_PEOPLE: sa.Table = Person.__table__  # type: ignore[attr-defined]
#: Who in a unit holds which roles (for the unit_only_holder rule).
_UNIT_ROLES = sa.select(_PEOPLE.c.id, _PEOPLE.c.roles).where(_PEOPLE.c.unit == sa.bindparam("unit"))
#: Our own constant, written into the query (BEGIN_FIRST takes no parameters).
_LOCK = sa.func.pg_advisory_xact_lock_shared(sa.literal_column(str(int(LOCK_KEY)), sa.BigInteger))
#: Each generation counter as a scalar subquery: read alone (:data:`_GENERATIONS`, the HTTP refresh) and as
#: the head of every command's read (:func:`_read_query`).
_GENERATION = {name: sa.select(_GENS.c.value).where(_GENS.c.name == name).scalar_subquery()
               for name in ("calendar", "workflows")}
_GENERATIONS = sa.select(_GENERATION["calendar"], _GENERATION["workflows"])
#: The case id is rendered into the query when it runs (an int: _load checks), the compiled form cached once.
_LOCK_CASE = (sa.select(CaseRow, _LOCK)
              .where(CaseRow.id == sa.bindparam("case_id", type_=sa.Integer, literal_execute=True))  # type: ignore[arg-type]
              .with_for_update().execution_options(**{BEGIN_FIRST: True}))
_LOCK_ONLY = sa.select(_LOCK).execution_options(**{BEGIN_FIRST: True})
#: How many statement shapes each cache below keeps (then it starts again).
_SHAPES = 256
#: Built once per shape, so SQLAlchemy's compiled cache answers without rebuilding or re-keying them.
_READS: dict[tuple[Any, ...], tuple[Any, dict[str, int]]] = {}


def _read_query(pg: bool, opening: bool, has_actor: bool, people: int, responsible: str | None,  # noqa: PLR0917
                has_key: bool, unit_of: str | None = None) -> tuple[Any, dict[str, int]]:
    """The one SELECT of :func:`_load` for a shape of command: a one-row head (the generation counters,
    the next case id when opening) outer-joined to each thing the command reads.

    ``unit_of`` adds the unit's roster as one JSON value: of the unit given as a parameter (``unit``), or
    of the person read under that name (an uncorrelated subquery, or one per row of a one-row read); and
    the leader of each person read (the assignee rules: module docstring)."""

    head: list[Any] = [_GENERATION["calendar"].label("cal"), _GENERATION["workflows"].label("wf")]
    if opening:
        head.append((sa.func.nextval(sa.func.pg_get_serial_sequence("caseflow_cases", "id")) if pg else
                     sa.select(sa.func.coalesce(sa.func.max(_CASES.c.id), 0) + 1).scalar_subquery())
                    .label("next_id"))
    g = sa.select(*head).subquery("g")
    columns: list[Any] = [g.c.cal, g.c.wf, g.c.next_id if opening else sa.null()]
    joins: list[tuple[Any, Any]] = []
    slots: dict[str, int] = {}

    def entity(name: str, target: Any, onclause: Any) -> None:
        slots[name] = len(columns)
        columns.append(target)
        joins.append((target, onclause))

    aliases: dict[str, Any] = {}

    def person(name: str, equals: Any) -> None:
        alias = aliases[name] = aliased(Person, name=name)
        entity(name, alias, alias.id == equals)

    if not opening and not pg:
        entity("case", CaseRow, CaseRow.id == sa.bindparam("case_id"))
    if has_actor:
        person("actor", sa.bindparam("actor"))
    for i in range(people):
        person(f"person{i}", sa.bindparam(f"person{i}"))
    if responsible == "join":
        person("responsible", CaseRow.responsible_id)
    elif responsible == "param":
        person("responsible", sa.bindparam("responsible"))
    if has_key:
        entity("record", CommandRecord, CommandRecord.key == sa.bindparam("key"))
    if not opening:
        entity("timers", TimerRow, TimerRow.case_id == sa.bindparam("case_id"))
    if unit_of is not None:
        # The leader rule may follow: the id and roles of each one's leader (two columns, not a Person).
        for name, alias in aliases.items():
            leader = _PEOPLE.alias(f"{name}_leader")
            slots[f"{name}_leader"] = len(columns)
            columns.extend((leader.c.id, leader.c.roles))
            joins.append((leader, leader.c.id == alias.leader_id))
        unit = sa.bindparam("unit") if unit_of == "unit" else aliases[unit_of].unit
        member = _PEOPLE.alias("member")
        slots["roster"] = len(columns)
        columns.append(sa.select(sa.func.json_agg(sa.func.json_build_array(member.c.id, member.c.roles)))
                       .where(member.c.unit == unit).scalar_subquery())
    query = sa.select(*columns).select_from(g)
    for target, onclause in joins:
        query = query.outerjoin(target, onclause)
    if not opening:
        query = query.order_by(TimerRow.id)  # type: ignore[arg-type]
    if len(_READS) >= _SHAPES:
        _READS.clear()
    _READS[(pg, opening, has_actor, people, responsible, has_key, unit_of)] = query, slots
    return query, slots


def _write(s: Session, case: CaseRow, old_version: int | None, timers: list[TimerRow],
           rows: Iterable[EventRow | CommandRecord]) -> None:
    """Write what a command changed: the case (inserted, or updated if still at ``old_version``), the timers
    it changed or started, its events and idempotency record; the session forgets the case and timers, so
    the ORM flushes nothing of theirs (rows a caller added to the session itself still commit with it).

    PostgreSQL: one statement (data-modifying CTEs; the case's ``RETURNING`` tells whether its version
    still matched). SQLite: one statement per table touched, with no round trip to pay, sent to the
    driver as SQL text (:func:`_driver_sql`: SQLAlchemy's per-statement work cost more than SQLite's). A stale
    version raises :class:`StaleDataError`, as the ORM's version check did.
    """
    pg = s.get_bind().dialect.name == "postgresql"
    new_case = sa.inspect(case).transient
    case_values = _row_values(case) if new_case else _changed_values(case)
    changed: list[tuple[int, dict[str, Any]]] = []
    started: list[dict[str, Any]] = []
    for row in timers:
        if row.id is None:
            started.append(_row_values(row))
        else:
            changes = _changed_values(row)
            if changes:
                changed.append((row.id, changes))
    added = [(_EVENTS if isinstance(obj, EventRow) else _COMMANDS, _row_values(obj)) for obj in rows]
    conn = s.connection()
    if pg:
        shape = (new_case, tuple(case_values), tuple(tuple(c) for _, c in changed), len(started),
                 tuple(t.name for t, _ in added))
        query = _WRITES.get(shape)
        if query is None:
            query = _write_query(shape)
        params: dict[str, Any] = {f"c_{k}": v for k, v in case_values.items()}
        params.update(c_id=case.id, c_old=old_version)
        for i, (timer_id, changes) in enumerate(changed):
            params[f"t{i}_id"] = timer_id
            params.update({f"t{i}_{k}": v for k, v in changes.items()})
        for j, values in enumerate(started):
            params.update({f"n{j}_{k}": v for k, v in values.items()})
        for j, (_table, values) in enumerate(added):
            params.update({f"a{j}_{k}": v for k, v in values.items()})
        count = conn.execute(query, params).scalar()
    else:
        dialect = conn.dialect
        if new_case:
            count = _driver_run(conn, _driver_sql(dialect, _CASES, tuple(case_values), ()), case_values, ())
        else:
            count = _driver_run(conn, _driver_sql(dialect, _CASES, tuple(case_values), ("id", "version")),
                                case_values, (case.id, old_version))
        if count == 1:
            for timer_id, changes in changed:
                _driver_run(conn, _driver_sql(dialect, _TIMERS, tuple(changes), ("id",)), changes, (timer_id,))
            if started:  # one executemany: every new timer row has the same columns
                columns = tuple(started[0])
                sql, procs = _driver_sql(dialect, _TIMERS, columns, ())
                conn.exec_driver_sql(sql, bound_values(started, columns, procs))
            for table, values in added:
                _driver_run(conn, _driver_sql(dialect, table, tuple(values), ()), values, ())
    if count != 1:
        raise StaleDataError(f"case {case.id} is no longer at version {old_version}")
    for obj in (case, *timers):  # written: the ORM must not flush them again at commit
        if obj in s:
            s.expunge(obj)


_WRITES: dict[tuple[Any, ...], Any] = {}

#: SQLite's write statements by (table, columns set, columns matched), with each value's bind processor.
_DRIVER_SQL: dict[tuple[str, tuple[str, ...], tuple[str, ...]], tuple[str, tuple[Any, ...]]] = {}


def _driver_sql(dialect: sa.engine.Dialect, table: sa.Table, columns: tuple[str, ...],
                where: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    """SQLite: the INSERT (no ``where``) or the UPDATE of ``columns`` matched on ``where``, as SQL text for the
    driver, and the bind processor of each column set (the same conversions SQLAlchemy's compiled statement
    applies: UTCDateTime's refusal of naive instants and its UTC text, dates, booleans).

    A command writes four or five rows; through the compiled path each statement cost several times what
    SQLite takes to run it (parameter processing and result set-up for a statement that returns nothing).
    """
    key = (table.name, columns, where)
    found = _DRIVER_SQL.get(key)
    if found is None:
        quoted = [dialect.identifier_preparer.quote(c) for c in columns]
        if where:
            matched = " AND ".join(f"{dialect.identifier_preparer.quote(c)} = ?" for c in where)
            sql = f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in quoted)} WHERE {matched}"
        else:
            sql = f"INSERT INTO {table.name} ({', '.join(quoted)}) VALUES ({', '.join('?' * len(columns))})"
        procs = tuple(bind_processors(table, columns, dialect, memoise=False))  # kept: no memo (it would grow)
        if len(_DRIVER_SQL) >= _SHAPES:
            _DRIVER_SQL.clear()
        found = _DRIVER_SQL[key] = (sql, procs)
    return found


def _driver_run(conn: sa.Connection, statement: tuple[str, tuple[Any, ...]], values: dict[str, Any],
                matched: tuple[Any, ...]) -> int:
    """Run a :func:`_driver_sql` statement with ``values`` (in its columns' order) and ``matched``; the rows
    it wrote."""
    sql, procs = statement
    (bound,) = bound_values([values], tuple(values), procs)
    return int(conn.exec_driver_sql(sql, bound + matched).rowcount)


def _write_query(shape: tuple[Any, ...]) -> Any:
    """PostgreSQL's one write statement for a shape of command (which columns, how many rows)."""
    new_case, case_columns, timer_changes, started, added = shape

    def binds(table: sa.Table, prefix: str, columns: Iterable[str]) -> dict[str, Any]:
        return {c: sa.bindparam(f"{prefix}_{c}", type_=table.c[c].type) for c in columns}

    if new_case:
        case_stmt: Any = _CASES.insert().values(binds(_CASES, "c", case_columns))
    else:
        case_stmt = (_CASES.update().where(_CASES.c.id == sa.bindparam("c_id"),
                                           _CASES.c.version == sa.bindparam("c_old"))
                     .values(binds(_CASES, "c", case_columns)))
    others: list[Any] = []
    for i, columns in enumerate(timer_changes):
        others.append(_TIMERS.update().where(_TIMERS.c.id == sa.bindparam(f"t{i}_id"))
                      .values(binds(_TIMERS, f"t{i}", columns)))
    timer_columns = [c.key for c in _TIMERS.columns if c.key != "id"]
    for j in range(started):  # an INSERT each: SQLAlchemy does not cache a multi-row VALUES
        others.append(_TIMERS.insert().values(binds(_TIMERS, f"n{j}", timer_columns)))
    for j, name in enumerate(added):
        table = _EVENTS if name == _EVENTS.name else _COMMANDS
        columns = [c.key for c in table.columns if not (table is _EVENTS and c.key == "id")]
        others.append(table.insert().values(binds(table, f"a{j}", columns)))
    written = case_stmt.returning(_CASES.c.id).cte("w_case")
    query = sa.select(sa.func.count()).select_from(written)
    if others:
        query = query.add_cte(*(stmt.cte(f"w_{i}") for i, stmt in enumerate(others)))
    if len(_WRITES) >= _SHAPES:  # a few dozen shapes occur; the bound only keeps an odd workload from growing it
        _WRITES.clear()
    _WRITES[shape] = query
    return query


def _next_event(case: CaseRow, kind: str, at: datetime, actor: str,
                data: dict[str, Any], *, trigger: str | None, from_state: str | None,
                to_state: str | None) -> EventRow:
    """The case's next event, chained to the head the case row keeps (the case row moves on with it:
    version, head hash, last instant). Its hash is computed here, so it is inserted once, complete."""
    assert case.id is not None
    previous = case.last_event_hash
    seq = case.version + 1 if previous is not None else 1
    if previous is not None:
        case.version = seq  # version_id_col: UPDATE … WHERE version = old; a stale one raises
    case.updated_at = at
    text = _canonical(data)
    problem = _bad_text(text)
    if problem:  # a reason or a ground typed with a lone surrogate: nothing is written
        raise CommandError(f"the command's text {problem}; retype it")
    row: EventRow = _new_row(EventRow, case_id=case.id, seq=seq, kind=kind, at=at, recorded_at=datetime.now(UTC),
                             actor=actor, trigger=trigger, from_state=from_state, to_state=to_state, data=text,
                             prev_hash=previous or GENESIS_HASH, hash="")
    row.hash = event_hash(row)
    case.last_event_hash, case.last_event_at = row.hash, at
    return row


@dataclass
class _Ctx:
    """What one command works on, inside its transaction."""

    session: Session
    case: CaseRow
    definition: WorkflowDef
    actor: Person
    at: datetime
    timers: list[TimerRow]
    #: The calendar due instants are computed on: the engine's, as the command's read left it.
    calendar: WorkCalendar
    #: The person the command names for the timers it starts (``assign=``), if any.
    assign: str | None = None
    #: What the command's timer starts decided: [{timer, assignee, rule}].
    assigned: list[dict[str, Any]] = field(default_factory=list)
    #: Who in a unit holds which roles, if the command's read brought it (PostgreSQL).
    roster: _Roster | None = None
