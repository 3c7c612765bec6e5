"""Benchmark of loading a holiday notice with many open cases (``caseflow calendar reload``).

Method (printed with the figures):

- The database is bulk-loaded (raw ``executemany`` on SQLite, ``COPY`` on PostgreSQL — not the ORM)
  with N open cases opened between 2026-10-08 and 2026-12-31, each with one event and its open timers
  in the shipped workflows (admin_license decision: 20 working days with pauses and extensions;
  petition intake and handling: 15 and 60 calendar days; hukou_transfer verification: 3 working
  days); 10 % carry a closed pause, 5 % an open one, 10 % an extension. Their deadlines are computed
  under the shipped calendar, in which 2027 is projected.
- The notice for 2027 (a test notice: 元旦 3 days, 春节 9 days with two make-up days, 国庆 7 days) is then
  loaded: every timer reaching into 2027 moves and gets its "due moved" event.
- The databases are built in a child process of their own; each side then runs in a child process
  of its own on its own copy of the same database, so each reports its own peak RSS
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``; Linux carries the parent's figure over a fork and
  exec, so the parent stays small: numpy and SQLAlchemy imported, nothing built) and wall and CPU time,
  one pass each: the bulk recompute (``recompute_open_timers``, escalation instants included) and
  the per-case reference (``recompute_per_case``, what ``calendar reload`` did before) on the small
  size; the bulk recompute alone on the large size.
- The memory bound: a preallocated two-gather chain (``by_rank[rank[idx] + n]``) on the same
  indices — the large database's open timers' start days and limits, read in a child of its own —
  min of 5 passes: what the arithmetic alone would cost if reading and writing were free.

    python benchmarks/bench_recompute.py                        # 2 000 side by side, 100 000 bulk
    python benchmarks/bench_recompute.py --large 1000000         # the issue's target
    python benchmarks/bench_recompute.py --db postgres           # needs CASEFLOW_TEST_PG_URL
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

NOTICE_2027 = ("year: 2027\nsource: 测试通知\nholidays:\n"
               "  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}\n"
               "  - {name: 春节, from: 2027-02-05, to: 2027-02-13}\n"
               "  - {name: 国庆节, from: 2027-10-01, to: 2027-10-07}\n"
               "workdays:\n  - 2027-02-20\n  - 2027-10-09\n"
               "statutory_only: [清明节, 劳动节, 端午节, 中秋节]\n")
NOW = datetime(2026, 12, 31, 2, 0, tzinfo=UTC)
TIMERS = (("admin_license", "decision"), ("petition", "handling"), ("hukou_transfer", "verification"))


def _fmt(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def build(url: str, n: int, seed: int) -> dict[str, Any]:
    """Bulk-load ``n`` open cases; return what was loaded."""
    from caseflow.calendar import default_calendar
    from caseflow.chain import _canonical
    from caseflow.clock import FixedClock
    from caseflow.engine import Engine
    from caseflow.store import Store, TimerRow
    from caseflow.timing import _limit_spec, apply_due
    from caseflow.unitofwork import _new_row

    engine = Engine(Store(url), calendar=default_calendar(), clock=FixedClock(NOW))
    engine.add_person("c1", name="窗口一", unit="城关派出所",
                      roles=["clerk", "household_police", "handler", "reviewer", "head"])
    defs = {}
    for key, timer in TIMERS:
        defn = engine.registry.latest(key)
        engine._pin_version(defn, NOW)
        defs[key] = (defn, defn.timer(timer))
    rng = random.Random(seed)
    cal = engine.calendar
    intake = defs["petition"][0].timer("intake")
    spec = {tdef.name: _limit_spec(tdef.limit) for tdef in [intake, *(t for _d, t in defs.values())]}
    low = datetime(2026, 10, 8, tzinfo=UTC)
    span = int((datetime(2026, 12, 31, tzinfo=UTC) - low).total_seconds())
    cases: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    timers: list[tuple[Any, ...]] = []
    timer_id = total = 0
    for cid in range(1, n + 1):
        if len(cases) == 50_000:  # loaded in batches: the builder's memory stays flat at any size
            _load(engine, cases, events, timers)
            total += len(timers)
            cases, events, timers = [], [], []
        opened = low + timedelta(seconds=rng.randrange(span))
        head = hashlib.sha256(str(cid).encode()).hexdigest()  # stands for the open event's hash
        key = TIMERS[cid % 2 if cid % 7 else 2][0]
        defn, first = defs[key]
        cases.append((cid, key, defn.version, "open", 1, "c1", "城关派出所", "c1", _fmt(opened), _fmt(opened),
                      head, _fmt(opened), "{}"))
        events.append((cid, 1, "open", _fmt(opened), _fmt(opened), "c1", None, None, "open", "{}", "0" * 64, head))
        second = [intake] if key == "petition" else []
        for tdef in [first, *second]:
            timer_id += 1
            pauses: list[dict[str, Any]] = []
            roll = rng.random()
            status = "running"
            if tdef.pauses and roll < 0.15:
                p_from = opened + timedelta(days=rng.randint(0, 10))
                p_to = None if roll < 0.05 else p_from + timedelta(days=rng.randint(1, 20))
                status = "paused" if p_to is None else "running"
                pauses.append({"reason": next(iter(tdef.pauses)), "from": p_from.isoformat(),
                               "to": p_to.isoformat() if p_to else None, "charged_to": "law", "actor": "c1"})
            extensions = ([{"amount": 5, "grounds": "复杂", "approver": "c1", "at": opened.isoformat()}]
                          if tdef.extension is not None and rng.random() < 0.1 else [])
            # The engine's own rule computes each deadline, on a row built as the engine builds one.
            row = _new_row(TimerRow, name=tdef.name, status=status, kind=tdef.kind, limit_spec=spec[tdef.name],
                           started_at=opened, pauses=_canonical(pauses), extensions=_canonical(extensions),
                           alert_level=None)
            apply_due(row, tdef, cal)
            timers.append((timer_id, cid, row.name, 1, status, row.kind, row.limit_spec, _fmt(opened), row.pauses,
                           row.extensions, _fmt(row.due_at), row.last_day.isoformat() if row.last_day else None,
                           _fmt(row.warn_at), _fmt(row.due_at), row.provisional, _fmt(row.next_alert_at),
                           _fmt(row.escalate_at), "c1"))
    _load(engine, cases, events, timers)
    engine.store.dispose()
    return {"cases": n, "timers": total + len(timers)}


_CASE_COLS = ("id, workflow_key, workflow_version, state, version, responsible_id, unit, opened_by, opened_at, "
              "updated_at, last_event_hash, last_event_at, data")
_EVENT_COLS = "case_id, seq, kind, at, recorded_at, actor, trigger, from_state, to_state, data, prev_hash, hash"
_TIMER_COLS = ("id, case_id, name, round, status, kind, limit_spec, started_at, pauses, extensions, due_at, "
               "last_day, warn_at, original_due_at, provisional, next_alert_at, escalate_at, assignee")


def _load(engine: Any, cases: list[tuple[Any, ...]], events: list[tuple[Any, ...]],
          timers: list[tuple[Any, ...]]) -> None:
    raw = engine.store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.store.is_sqlite:
            for table, cols, rows in (("caseflow_cases", _CASE_COLS, cases), ("caseflow_events", _EVENT_COLS, events),
                                      ("caseflow_timers", _TIMER_COLS, timers)):
                marks = ", ".join("?" * len(cols.split(", ")))
                cur.execute("BEGIN")
                cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
                cur.execute("COMMIT")
        else:
            for table, cols, rows in (("caseflow_cases", _CASE_COLS, cases), ("caseflow_events", _EVENT_COLS, events),
                                      ("caseflow_timers", _TIMER_COLS, timers)):
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row([f"{v}+00" if isinstance(v, str) and len(v) == 26 and v[10] == " " else v
                                        for v in r])
            for table in ("caseflow_cases", "caseflow_timers", "caseflow_events"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT coalesce(max(id), 1) FROM {table}))")
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()


def run_side(url: str, side: str, notices: str) -> dict[str, Any]:
    """In a child: load the 2027 notice with ``side`` and report time and peak RSS."""
    from caseflow.calendar import WorkCalendar, default_calendar
    from caseflow.clock import FixedClock
    from caseflow.engine import Engine
    from caseflow.recompute import recompute_open_timers, recompute_per_case
    from caseflow.store import Store

    engine = Engine(Store(url), calendar=default_calendar(), clock=FixedClock(NOW))
    calendar = WorkCalendar.load([notices])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = 0

    def stream(_move: dict[str, Any]) -> None:
        nonlocal lines
        lines += 1

    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if side == "bulk":
        summary = recompute_open_timers(engine, calendar, source="2027.yaml", on_move=stream)
    else:
        summary = recompute_per_case(engine, calendar, source="2027.yaml", on_move=stream)
    seconds = time.perf_counter() - t0
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {"side": side, "seconds": seconds, "timers": summary.timers, "moved": summary.moved,
            "events": summary.events, "written": summary.timers_written, "streamed": lines,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": rss_before,
            "cpu_s": cpu.ru_utime + cpu.ru_stime - before.ru_utime - before.ru_stime}


def memory_bound(url: str) -> dict[str, Any]:
    """Min of 5: a preallocated two-gather chain on the open timers' start days and limits."""
    from caseflow.calendar import FIRST_YEAR, default_calendar

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT started_at, limit_spec FROM caseflow_timers "
                                    "WHERE status IN ('running', 'paused')")).all()
    engine.dispose()
    started = [r[0] if isinstance(r[0], str) else r[0].astimezone(UTC).replace(tzinfo=None) for r in rows]
    day = (np.array(started, dtype="datetime64[us]") + np.timedelta64(8, "h")).astype("datetime64[D]")
    idx = day.astype(np.int64) - (np.datetime64(f"{FIRST_YEAR}-01-01").astype(np.int64))
    amounts = {spec: json.loads(spec)["amount"] for spec in {r[1] for r in rows}}
    steps = np.array([amounts[r[1]] for r in rows], dtype=np.int64)
    n = idx.size
    ranks, out = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    _work, rank, by_rank = default_calendar()._numpy_arrays()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        np.take(rank, idx, out=ranks)
        np.add(ranks, steps, out=ranks)
        np.take(by_rank, ranks, out=out)
        best = min(best, time.perf_counter() - t0)
    return {"seconds": best, "timers": n}


def _child(url: str, side: str, notices: str = "", n: int = 0, seed: int = 0) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", side, "--url", url, "--notices", notices,
                          "--n", str(n), "--seed", str(seed)], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(out.stderr)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _databases(kind: str, tmp: Path, pg_url: str | None, copies: int) -> list[tuple[str, Any]]:
    """``copies`` fresh databases: SQLite files, or PostgreSQL schemas (with their drop callbacks)."""
    if kind == "sqlite":
        return [(f"sqlite:///{tmp / f'db{i}.sqlite'}", None) for i in range(copies)]
    assert pg_url
    out = []
    admin = sa.create_engine(pg_url)
    for _ in range(copies):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in pg_url else "?"
        out.append((f"{pg_url}{sep}options=-csearch_path%3D{schema}", schema))
    return out


def _drop(pg_url: str | None, schemas: list[Any]) -> None:
    if pg_url and any(schemas):
        admin = sa.create_engine(pg_url)
        with admin.begin() as conn:
            for schema in schemas:
                if schema:
                    conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=2000, help="cases for the side-by-side run")
    parser.add_argument("--large", type=int, default=100_000, help="cases for the bulk-only run (0: skip)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("CASEFLOW_TEST_PG_URL"))
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--notices")
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.child == "build":
        t0 = time.perf_counter()
        built = build(args.url, args.n, args.seed)
        print(json.dumps({**built, "seconds": time.perf_counter() - t0}))
        return
    if args.child == "bound":
        print(json.dumps(memory_bound(args.url)))
        return
    if args.child:
        print(json.dumps(run_side(args.url, args.child, args.notices)))
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        notices = tmp / "notices"
        notices.mkdir()
        (notices / "2027.yaml").write_text(NOTICE_2027, encoding="utf-8")
        print(__doc__.split("\n\n    python")[0])
        print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start "
              "(shared with other work: figures are wall time under that load)")
        dbs = _databases(args.db, tmp, args.pg_url, 3 if args.large else 2)
        try:
            small_a, small_b = dbs[0][0], dbs[1][0]
            loaded = _child(small_a, "build", n=args.small, seed=1)
            if args.db == "sqlite":
                shutil.copy(small_a.removeprefix("sqlite:///"), small_b.removeprefix("sqlite:///"))
            else:
                _child(small_b, "build", n=args.small, seed=1)
            per_case = _child(small_a, "per-case", str(notices))
            bulk = _child(small_b, "bulk", str(notices))
            print(f"\n{args.db}, {loaded['cases']} cases, {loaded['timers']} open timers, one pass each:")
            for r in (per_case, bulk):
                rate = r["timers"] / r["seconds"]
                print(f"  {r['side']:>8}: {r['seconds']:7.2f} s  {rate:9.0f} timers/s  moved {r['moved']} "
                      f"({r['events']} events)  peak RSS {r['peak_rss_mb']:.0f} MB (before the run "
                      f"{r['rss_before_mb']:.0f} MB)  cpu {r['cpu_s']:.1f} s")
            same = all(per_case[k] == bulk[k] for k in ("timers", "moved", "events", "written"))
            print(f"  same timers, moves and events: {same};  bulk/per-case speed-up "
                  f"{per_case['seconds'] / bulk['seconds']:.1f}x")
            if args.large:
                loaded = _child(dbs[2][0], "build", n=args.large, seed=2)
                load_s = loaded["seconds"]
                bound = _child(dbs[2][0], "bound")
                print(f"\nload average before the large run {os.getloadavg()[0]:.1f}")
                r = _child(dbs[2][0], "bulk", str(notices))
                print(f"\n{args.db}, {loaded['cases']} cases, {loaded['timers']} open timers "
                      f"(bulk-loaded in {load_s:.0f} s), bulk recompute, one pass:")
                print(f"  {r['seconds']:.2f} s ({r['timers'] / r['seconds']:.0f} timers/s), moved {r['moved']} "
                      f"with {r['events']} events, {r['written']} timers written, {r['streamed']} report lines "
                      f"streamed; peak RSS {r['peak_rss_mb']:.0f} MB (before the run {r['rss_before_mb']:.0f} MB); "
                      f"cpu {r['cpu_s']:.1f} s")
                print(f"  memory bound (two-gather chain on the same {bound['timers']} start days and limits, "
                      f"min of 5): {bound['seconds'] * 1000:.1f} ms")
                if loaded["cases"] < 1_000_000:
                    per_case = r["seconds"] / loaded["cases"]
                    print(f"  linear extrapolation to 1 000 000 cases: {per_case * 1e6:.0f} s (a larger database "
                          "reads more pages from disk: run --large 1000000 for the figure itself)")
            print(f"\nload average at end {os.getloadavg()[0]:.1f}")
        finally:
            _drop(args.pg_url if args.db == "postgres" else None, [s for _, s in dbs])


if __name__ == "__main__":
    main()
