"""What "one truth for every process" costs: the generation check per command, and a reload after a load.

Run it as ``python benchmarks/bench_generation.py`` (figures only, no assertions). SQLite always (a temporary
file); PostgreSQL too when ``$CASEFLOW_BENCH_PG_URL`` (or ``$CASEFLOW_TEST_PG_URL``) names a server, in a fresh
schema dropped at the end.

Method, per database, in one process and one thread:

1. *check*: ``read_generations(session, lock=True)`` inside a write transaction already begun, ``--n`` times;
   the median of each call's wall time (the statements a command adds).
2. *open*: ``Engine.open`` ``--n`` times with the check on, then ``--n`` times with it replaced by a no-op;
   medians and their difference (the check's share of a whole command). A command reads the counters in
   the statement that loads its case (two scalar subqueries), so the no-op removes only the comparison
   and any reload; what the subqueries cost is inside both figures, bounded by *check* above.
3. *reload*: after a notice is loaded through another engine, the first command of this one rebuilds its
   calendar: the wall time of that first ``open``, against the median ``open``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sqlalchemy as sa

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.notices import read_notice
from caseflow.published import read_generations
from caseflow.store import Store

NOTICE = ("year: 2027\nsource: benchmark fixture (not the 2027 notice)\nholidays:\n"
          "  - {name: 元旦, from: 2027-01-01, to: 2027-01-04}\n"
          "statutory_only: [春节, 清明节, 劳动节, 端午节, 中秋节, 国庆节]\n")


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.3f} ms"


def run(url: str, n: int) -> None:
    clock = FixedClock(datetime(2026, 12, 30, 9, tzinfo=ZONE))
    store, other_store = Store(url), Store(url)
    engine, other = Engine(store, clock=clock), Engine(other_store, clock=clock)
    engine.add_person("c1", name="窗口", unit="u", roles=["clerk", "reviewer"])
    engine.open("admin_license", actor="c1")  # warm-up: pin the definition, fill the pools

    checks = []
    for _ in range(n):
        with store.session(write=True) as s:
            s.execute(sa.text("SELECT 1"))  # begin the transaction first: time the check alone
            t = time.perf_counter()
            read_generations(s, lock=True)
            checks.append(time.perf_counter() - t)

    with_check = []
    for _ in range(n):
        t = time.perf_counter()
        engine.open("admin_license", actor="c1")
        with_check.append(time.perf_counter() - t)
    real_check = engine.published.check
    engine.published.check = lambda session, *, lock=False, seen=None: False  # type: ignore[method-assign]
    without = []
    for _ in range(n):
        t = time.perf_counter()
        engine.open("admin_license", actor="c1")
        without.append(time.perf_counter() - t)
    engine.published.check = real_check  # type: ignore[method-assign]

    other.load_notice(read_notice("2027.yaml", text=NOTICE), NOTICE, fmt="yaml", actor="c1")
    t = time.perf_counter()
    engine.open("admin_license", actor="c1")
    first = time.perf_counter() - t

    print(f"  check (shared load lock on PostgreSQL, read of the two counters): {_ms(checks)} median of {n}")
    print(f"  open with the check: {_ms(with_check)}; without: {_ms(without)}; "
          f"difference {(statistics.median(with_check) - statistics.median(without)) * 1000:+.3f} ms")
    print(f"  first open after a notice was loaded elsewhere (calendar rebuilt): {first * 1000:.1f} ms")
    store.dispose()
    other_store.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="commands per phase (default 200)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite ({tmp}/bench.db):")
        run(f"sqlite:///{tmp}/bench.db", args.n)
    base = os.environ.get("CASEFLOW_BENCH_PG_URL") or os.environ.get("CASEFLOW_TEST_PG_URL")
    if not base:
        print("PostgreSQL: skipped (set CASEFLOW_BENCH_PG_URL)")
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin: Any = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        sep = "&" if "?" in base else "?"
        print(f"PostgreSQL ({schema}):")
        run(f"{base}{sep}options={quote(f'-csearch_path={schema}')}", args.n)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
