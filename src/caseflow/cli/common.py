"""What every command shares: error handling, ``--json``, ``--db`` and ``--at``, opening the engine."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import click

from caseflow.clock import parse_instant
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
            return func(*args, **kwargs)
        except CaseflowError as exc:
            if kwargs.get("as_json"):
                click.echo(printable(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}},
                                                ensure_ascii=False)))
            else:
                click.echo(printable(f"error: {exc}"), err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")



#: Case ids as the database holds them (1 to MAX_CASE_ID): a larger one is a usage error, not a traceback.
CASE_ID = click.IntRange(1, 2**31 - 1)

db_option = click.option("--db", "db", envvar="CASEFLOW_DB", default=None, metavar="URL",
                         help="Database URL or SQLite file (default: $CASEFLOW_DB or ./caseflow.db).")
at_option = click.option("--at", "at", default=None, metavar="INSTANT",
                         help="When it happened (Beijing time unless an offset is given; default now).")


def clock_from_env() -> Any:
    """The real clock, or the one fixed by ``CASEFLOW_NOW`` (simulations, tests)."""
    import os

    from caseflow.clock import FixedClock, SystemClock

    fixed = os.environ.get("CASEFLOW_NOW")
    return FixedClock(parse_instant(fixed)) if fixed else SystemClock()


def open_engine(db: str | None) -> Any:
    from caseflow.engine import Engine
    from caseflow.store import Store

    return Engine(Store(db), clock=clock_from_env())


def parse_at(value: str | None) -> datetime | None:
    return parse_instant(value) if value else None


def parse_data(pairs: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise TimeLimitError(f"--data takes NAME=VALUE, got {pair!r}")
        result[name.strip()] = value
    return result


def case_text(case: Any) -> str:
    lines = [f"案件 case {case.id}  {case.workflow}  状态 {case.state} ({case.state_label})  v{case.version}",
             f"  责任人 responsible {case.responsible} ({case.unit})"]
    if case.closed_at:
        lines.append(f"  办结 closed {case.closed_at:%Y-%m-%d %H:%M}")
    for t in case.timers:
        due = f"{t.due_at:%Y-%m-%d %H:%M}" if t.due_at else "—"
        prov = " 推算" if t.provisional else ""
        lines.append(f"  ⏱ {t.name} ({t.label}) {t.status:<8} {t.limit:<18} due {due}{prov}")
    return "\n".join(lines)


def print_case(case: Any, as_json: bool) -> None:
    emit(as_json, case.to_dict(), case_text(case))




store_db_option = click.option("--db", "db", default=None, metavar="URL",
                          help="Database URL or SQLite path (default: $CASEFLOW_DB or caseflow.db).")
config_option = click.option("--config", "config_path", default=None, metavar="FILE",
                              help="caseflow.toml (default: $CASEFLOW_CONFIG or ./caseflow.toml).")


def open_store(db: str | None) -> Any:
    from caseflow.store import Store

    return Store(db)


