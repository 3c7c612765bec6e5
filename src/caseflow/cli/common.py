"""What every command shares: error handling, ``--json``, ``--db`` and ``--at``, opening the engine."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import click

from caseflow.errors import CaseflowError, TimeLimitError

F = TypeVar("F", bound=Callable[..., Any])

_WEEKDAYS = ("一", "二", "三", "四", "五", "六", "日")


def weekday_zh(day: date) -> str:
    return f"周{_WEEKDAYS[day.weekday()]}"


def printable(text: str) -> str:
    """``text`` safe to print: a lone surrogate (an undecodable byte of argv, echoed back) as ``\\udcff``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def emit(as_json: bool, payload: Any, text: str) -> None:
    if as_json:
        click.echo(printable(json.dumps(payload, ensure_ascii=False, indent=2, default=str)))
    else:
        click.echo(printable(text))


def handle_errors(func: F) -> F:
    """Turn a :class:`CaseflowError` into a clear message (or JSON error) and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            _check_text(kwargs)
            return func(*args, **kwargs)
        except CaseflowError as exc:
            if kwargs.get("as_json"):
                click.echo(printable(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}},
                                                ensure_ascii=False)))
            else:
                click.echo(printable(f"error: {exc}"), err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _check_text(params: dict[str, Any]) -> None:
    """Refuse a parameter that is not valid text (a lone surrogate from undecodable bytes on the command line).

    Such text cannot be stored, printed or compared as UTF-8; it is refused here, naming the option, before
    any command sees it.
    """
    from caseflow.errors import CommandError

    for name, value in params.items():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise CommandError(f"--{name.replace('_', '-')} holds a character that is not valid text "
                                       f"(a lone surrogate, {item.encode('utf-8', 'backslashreplace')!r}); "
                                       "type it again in UTF-8") from None


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")



#: Case ids as the database holds them (1 to MAX_CASE_ID): a larger one is a usage error, not a traceback.
CASE_ID = click.IntRange(1, 2**31 - 1)

db_option = click.option("--db", "db", envvar="CASEFLOW_DB", default=None, metavar="URL",
                         help="Database URL or SQLite file (default: $CASEFLOW_DB or ./caseflow.db).")
notices_db_option = click.option(
    "--db", "db", default=None, metavar="URL",
    help="Also use the holiday notices loaded into this database (`caseflow calendar import`), as its "
         "engine does; without it only the files are read and no database is opened.")
at_option = click.option("--at", "at", default=None, metavar="INSTANT",
                         help="When it happened (Beijing time unless an offset is given; default now).")


def prompt_calendar(db: str | None) -> Any:
    """The calendar of ``deadline`` and ``calendar show``: the files', or with ``--db`` the engine's."""
    from caseflow.calendar import default_calendar

    if db is None:
        return default_calendar()
    from caseflow.published import published_calendar
    from caseflow.store import Store

    return published_calendar(Store(db))


def clock_from_env() -> Any:
    """The real clock, or the one fixed by ``CASEFLOW_NOW`` (simulations, tests)."""
    import os

    from caseflow.clock import FixedClock, SystemClock, parse_instant

    fixed = os.environ.get("CASEFLOW_NOW")
    return FixedClock(parse_instant(fixed)) if fixed else SystemClock()


def open_engine(db: str | None) -> Any:
    from caseflow.engine import Engine
    from caseflow.store import Store

    return Engine(Store(db), clock=clock_from_env())


def parse_at(value: str | None) -> datetime | None:
    from caseflow.clock import parse_instant

    return parse_instant(value) if value else None


def parse_data(pairs: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise TimeLimitError(f"--data takes NAME=VALUE, got {pair!r}")
        result[name.strip()] = value
    return result


def case_text(case: Any, store: Any = None) -> str:
    """A case as a clerk reads it: procedure, state, responsible person, each step's deadline, data masked."""
    from caseflow.narrate import Labels, case_data_items, due_text, status_text

    if store is not None:
        labels = Labels.from_store(store)
    else:
        from caseflow.registry import WorkflowRegistry

        labels = Labels.of(WorkflowRegistry.load())
    key, version = case.workflow, case.workflow_version
    title = labels.workflow(key, version)
    state = case.state_label or labels.state(key, case.state, version)
    lines = [f"案件 {case.id}  {title}  状态「{state}」  第 {case.version} 版",
             f"  承办人 {labels.person(case.responsible)}（{case.unit}）"]
    if case.closed_at:
        lines.append(f"  办结于 {case.closed_at:%Y-%m-%d %H:%M}")
    for label, value in case_data_items(labels, key, case.data, version=version):
        lines.append(f"  {label}：{value}")
    for t in case.timers:
        kind = "法定时限" if t.kind == "statutory" else "承诺时限"
        prov = "（按推算的节假日安排）" if t.provisional else ""
        limit = labels_limit(t.limit)
        who = f"  由 {labels.person(t.assignee)} 办理" if t.assignee and t.status in ("running", "paused") else ""
        lines.append(f"  ⏱ {t.label}（{kind} {limit}）{status_text(t.status)}  {due_text(t.due_at)}{prov}{who}")
    return "\n".join(lines)


REPLAYED = "重复提交，返回首次结果"


def key_was_used(engine: Any, key: str | None) -> bool:
    """Was the idempotency key recorded already (the command will replay, not run again)?"""
    if not key:
        return False
    from caseflow.store import CommandRecord

    with engine.store.session() as s:
        return s.get(CommandRecord, key) is not None


def labels_limit(limit: str) -> str:
    """A stored limit text (``3 working_days``) as a clerk reads it (``3个工作日``)."""
    from caseflow.narrate import limit_chinese

    return limit_chinese(limit)


def print_case(case: Any, as_json: bool, *, replayed: bool = False) -> None:
    if replayed:
        # Said first (on stderr with --json, so the JSON stays the first result's): nothing was done again.
        click.echo(f"{REPLAYED} (--key was used before; nothing was done again)", err=as_json)
    if as_json:
        emit(as_json, case.to_dict(), "")
        return
    # Labels come from the definitions stored in the command's database (uploaded ones included).
    db = click.get_current_context().params.get("db")
    from caseflow.store import Store

    store = Store(db)
    try:
        emit(as_json, case.to_dict(), case_text(case, store))
    finally:
        store.dispose()




store_db_option = click.option("--db", "db", default=None, metavar="URL",
                          help="Database URL or SQLite path (default: $CASEFLOW_DB or caseflow.db).")
config_option = click.option("--config", "config_path", default=None, metavar="FILE",
                              help="caseflow.toml (default: $CASEFLOW_CONFIG or ./caseflow.toml).")


def open_store(db: str | None) -> Any:
    from caseflow.store import Store

    return Store(db)


