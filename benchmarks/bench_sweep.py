"""Benchmark of the scheduler's sweep over many open timers, on SQLite and PostgreSQL.

It bulk-loads N open timers (executemany on SQLite, COPY on PostgreSQL — not the ORM), then times

1. a sweep that finds nothing (target < 50 ms: one probe of ``ix_caseflow_timers_next_alert``),
2. a sweep raising 10 000 alerts with their queued notifications (target < 2 s): a third of the due
   timers reach their warning point (``warn_at``), a third their due instant, a third were overdue
   since before the weekend and escalate to the leader — every level is exercised,
3. the delivery that ``scheduler run --once`` does next: every queued notification POSTed to a local
   webhook receiver running in a separate process (its CPU share printed; HTTP/1.1 with a listen
   backlog of 128, as a production receiver has — socketserver's default of 5 drops concurrent
   connects into one-second SYN retries), claimed, sent and recorded in batches with the channel's
   default concurrency. Its baseline, from the same run: the same number of POSTs of the same size
   sent straight to the same receiver by the same client (WebhookNotifier) with as many threads as
   the channel's concurrency and no database ("channel time"). Three interleaved repetitions
   (baseline, delivery, baseline, delivery …; before each repeated delivery the outbox rows are set
   back to pending), min and median of each,

and reports the process's peak RSS (``VmHWM``, target < 150 MB). Each database runs in its own process
so each gets its own peak.

    python benchmarks/bench_sweep.py                      # SQLite, and PostgreSQL if a URL is set
    python benchmarks/bench_sweep.py --timers 200000 --db sqlite
    CASEFLOW_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        python benchmarks/bench_sweep.py --db postgres

PostgreSQL runs in a fresh schema of the database named by ``--pg-url`` / ``CASEFLOW_TEST_PG_URL``,
dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from caseflow.alerts import ALERTS, OUTBOX
from caseflow.config import NotifyConfig
from caseflow.scheduler import Scheduler
from caseflow.store import Store, normalize_url

BASE = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)  # 09:00 Beijing, a Wednesday
CHUNK = 50_000
PEOPLE = 1000
UNITS = 20
TIMERS_PER_CASE = 2


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size in MB."""
    current = peak = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:  # not Linux: ru_maxrss only
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return current, peak


def _sqlite_ts(value: datetime) -> str:
    # The text SQLAlchemy's SQLite DateTime writes (naive UTC): comparisons are on these strings.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _plan(timers: int, alerts: int) -> Iterator[tuple[int, int, datetime, datetime, datetime | None, str | None]]:
    """(timer id, case id, due_at, next_alert_at, warn_at, alert_level) for every timer.

    The last ``alerts`` timers need an alert at BASE: by thirds a warning, an overdue, an escalation.
    """
    future = timers - alerts
    for i in range(timers):
        tid, cid = i + 1, i // TIMERS_PER_CASE + 1
        if i < future:
            # Spread over the next 60 days: none is due at BASE.
            next_at = BASE + timedelta(seconds=3600 + (i * 5_184_000) // max(1, future))
            yield tid, cid, next_at, next_at, None, None
            continue
        # Became due during the hour before BASE.
        passed = BASE - timedelta(seconds=1 + ((i - future) * 3599) // max(1, alerts))
        kind = (i - future) % 3
        if kind == 0:  # warning point passed, due tomorrow
            yield tid, cid, passed + timedelta(days=1), passed, passed, None
        elif kind == 1:  # due instant passed
            yield tid, cid, passed, passed, None, None
        else:  # overdue since Sunday, warned and alerted already: one working day later it escalates
            yield tid, cid, passed - timedelta(days=3), passed, None, "overdue"


def _people_rows() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for u in range(UNITS):
        rows.append((f"leader{u}", f"所长{u}", f"unit{u}", "leader", None, None, False, None))
    for p in range(PEOPLE):
        u = p % UNITS
        rows.append((f"p{p}", f"民警{p}", f"unit{u}", "clerk", f"leader{u}", f"p{(p + UNITS) % PEOPLE}", False, None))
    return rows


def load(store: Store, timers: int, alerts: int) -> float:
    """Bulk-load people, cases and timers; return the seconds it took."""
    started = time.perf_counter()
    cases = (timers + TIMERS_PER_CASE - 1) // TIMERS_PER_CASE
    opened = BASE - timedelta(days=10)
    limit = json.dumps({"amount": 20, "unit": "working_days"})
    if store.dialect == "sqlite":
        raw = store.engine.raw_connection()
        try:
            conn: Any = raw.driver_connection
            cur = conn.cursor()
            cur.execute("BEGIN")
            cur.execute("INSERT INTO caseflow_workflow_versions VALUES ('bench-v1','bench','bench','{}',?)",
                        (_sqlite_ts(opened),))
            cur.executemany("INSERT INTO caseflow_people (id,name,unit,roles,leader_id,substitute_id,admin,channel) "
                            "VALUES (?,?,?,?,?,?,?,?)", _people_rows())
            cur.execute("COMMIT")
            ts = _sqlite_ts(opened)
            for start in range(0, cases, CHUNK):
                cur.execute("BEGIN")
                cur.executemany(
                    "INSERT INTO caseflow_cases (id,workflow_key,workflow_version,state,version,responsible_id,unit,"
                    "opened_by,opened_at,updated_at,closed_at,close_reason,data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    ((c, "bench", "bench-v1", "办理", 1, f"p{c % PEOPLE}", f"unit{c % PEOPLE % UNITS}",
                      f"p{c % PEOPLE}", ts, ts, None, None, "{}")
                     for c in range(start + 1, min(cases, start + CHUNK) + 1)))
                cur.execute("COMMIT")
            plan = _plan(timers, alerts)
            while True:
                chunk = [next(plan, None) for _ in range(CHUNK)]
                rows = [r for r in chunk if r is not None]
                if not rows:
                    break
                cur.execute("BEGIN")
                cur.executemany(
                    "INSERT INTO caseflow_timers (id,case_id,name,round,status,kind,limit_spec,started_at,pauses,"
                    "extensions,due_at,last_day,warn_at,original_due_at,provisional,stopped_at,next_alert_at,"
                    "alert_level) VALUES (?,?,?,1,'running','statutory',?,?,'[]','[]',?,NULL,?,?,0,NULL,?,?)",
                    ((tid, cid, f"step{tid % TIMERS_PER_CASE}", limit, ts, _sqlite_ts(due),
                      _sqlite_ts(warn) if warn else None, _sqlite_ts(due), _sqlite_ts(nxt), level)
                     for tid, cid, due, nxt, warn, level in rows))
                cur.execute("COMMIT")
            cur.execute("ANALYZE")
        finally:
            raw.close()
    else:
        raw = store.engine.raw_connection()
        try:
            pg: Any = raw.driver_connection
            with pg.cursor() as cur:
                cur.execute("INSERT INTO caseflow_workflow_versions VALUES ('bench-v1','bench','bench','{}',%s)",
                            (opened,))
                cur.executemany("INSERT INTO caseflow_people (id,name,unit,roles,leader_id,substitute_id,admin,"
                                "channel) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", _people_rows())
                with cur.copy("COPY caseflow_cases (id,workflow_key,workflow_version,state,version,responsible_id,"
                              "unit,opened_by,opened_at,updated_at,data) FROM STDIN") as copy:
                    for c in range(1, cases + 1):
                        copy.write_row((c, "bench", "bench-v1", "办理", 1, f"p{c % PEOPLE}",
                                        f"unit{c % PEOPLE % UNITS}", f"p{c % PEOPLE}", opened, opened, "{}"))
                with cur.copy("COPY caseflow_timers (id,case_id,name,round,status,kind,limit_spec,started_at,pauses,"
                              "extensions,due_at,warn_at,original_due_at,provisional,next_alert_at,alert_level) "
                              "FROM STDIN") as copy:
                    for tid, cid, due, nxt, warn, level in _plan(timers, alerts):
                        copy.write_row((tid, cid, f"step{tid % TIMERS_PER_CASE}", 1, "running", "statutory", limit,
                                        opened, "[]", "[]", due, warn, due, False, nxt, level))
                # Ids were given explicitly: move the sequences past them for later inserts.
                cur.execute("SELECT setval(pg_get_serial_sequence('caseflow_cases','id'), %s)", (cases,))
                cur.execute("SELECT setval(pg_get_serial_sequence('caseflow_timers','id'), %s)", (timers,))
            pg.commit()
            with pg.cursor() as cur:
                cur.execute("ANALYZE")
            pg.commit()
        finally:
            raw.close()
    return time.perf_counter() - started


def explain(store: Store, scheduler: Scheduler, now: datetime) -> str:
    """The claim query's plan (to show it is an index probe)."""
    query = scheduler._claim_query(now)
    with store.engine.connect() as conn:
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": False})
        prefix = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
        params = compiled.construct_params()
        rows = conn.exec_driver_sql(prefix + str(compiled), tuple(
            _bind(store, params[k]) for k in compiled.positiontup) if compiled.positional else {
            k: _bind(store, v) for k, v in params.items()}).all()
    return "\n".join("    " + " ".join(str(c) for c in row if c is not None) for row in rows)


def _bind(store: Store, value: Any) -> Any:
    if isinstance(value, datetime):
        return _sqlite_ts(value) if store.dialect == "sqlite" else value
    return value


_RECEIVER = """
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = 0
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections alive, as a production receiver does
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            count += 1
        self.send_response(204)
        self.end_headers()
    def do_GET(self):
        body = str(count).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class Server(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's default backlog (5) drops concurrent connects (1 s SYN retry)
    daemon_threads = True
server = Server(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _receiver() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", _RECEIVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{proc.stdout.readline().strip()}/hook"


def _received(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(url.replace("/hook", "/count")) as response:
        return int(response.read())


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def channel_time(url: str, count: int, workers: int, body: str) -> float:
    """The baseline: ``count`` POSTs of the same size, same client, same number of threads, no database."""
    from concurrent.futures import ThreadPoolExecutor

    from caseflow.notify import WebhookNotifier

    hook = WebhookNotifier(url)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda i: hook.send(to=f"p{i}", subject="告警", body=body, notification_id=str(i)),
                      range(count)))
    return time.perf_counter() - started


def run(url: str, timers: int, alerts: int) -> dict[str, Any]:
    """Load, sweep, deliver, measure; return the figures."""
    store = Store(url)
    load_s = load(store, timers, alerts)
    _, peak_after_load = rss_mb()
    receiver, hook = _receiver()
    try:
        return _measure(store, receiver, hook, load_s, peak_after_load, timers, alerts)
    finally:
        receiver.terminate()  # never left behind holding our output pipe
        receiver.wait()


def _measure(store: Store, receiver: subprocess.Popen[str], hook: str, load_s: float,  # noqa: PLR0917
             peak_after_load: float, timers: int, alerts: int) -> dict[str, Any]:
    config = NotifyConfig.from_dict({"scheduler": {"batch": 1000, "default_channel": "hook"},
                                     "channels": {"hook": {"url": hook}}})
    scheduler = Scheduler(store, config, owner="bench")
    quiet = BASE - timedelta(hours=2)
    scheduler.sweep(quiet)  # warm-up: imports, statement compilation, pool
    empties = []
    for _ in range(20):
        started = time.perf_counter()
        report = scheduler.sweep(quiet)
        empties.append((time.perf_counter() - started) * 1000)
        assert report.timers == 0, report
    plan = explain(store, scheduler, quiet)
    started = time.perf_counter()
    report = scheduler.sweep(BASE)
    raise_s = time.perf_counter() - started
    with store.session() as session:
        alert_rows = session.execute(sa.select(sa.func.count()).select_from(ALERTS)).scalar_one()
        outbox_rows = session.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar_one()
    assert report.alerts == alerts == alert_rows, (report, alert_rows, outbox_rows)
    with store.session() as session:
        levels = dict(session.execute(sa.select(ALERTS.c.level, sa.func.count()).group_by(ALERTS.c.level)).all())
        body = session.execute(sa.select(OUTBOX.c.body)).scalars().first() or ""
    workers = config.channels["hook"].max_concurrent
    channel_runs, deliver_runs, receiver_cpus = [], [], []
    for repetition in range(3):
        channel_runs.append(channel_time(hook, outbox_rows, workers, body))
        if repetition:
            with store.session(write=True) as session:  # the same notifications, due again
                session.execute(sa.update(OUTBOX).values(status="pending", attempts=0, sent_at=None,
                                                         lease_owner=None, lease_until=None))
        received_before = _received(hook)
        cpu_before = _cpu_of(receiver.pid)
        started = time.perf_counter()
        delivery = scheduler.deliver(BASE)
        deliver_runs.append(time.perf_counter() - started)
        receiver_cpus.append(_cpu_of(receiver.pid) - cpu_before)
        received = _received(hook) - received_before
        assert delivery.sent == received == outbox_rows, (delivery, received, outbox_rows)
    deliver_s, channel_s = min(deliver_runs), min(channel_runs)
    # After the raise, the same instant finds nothing again (next_alert_at moved on).
    started = time.perf_counter()
    again = scheduler.sweep(BASE)
    again_ms = (time.perf_counter() - started) * 1000
    assert again.timers == 0, again
    current, peak = rss_mb()
    store.dispose()
    return {
        "db": store.dialect, "timers": timers, "load_s": round(load_s, 1),
        "empty_sweep_ms_median": round(statistics.median(empties), 2), "empty_sweep_ms_max": round(max(empties), 2),
        "raise_sweep_s": round(raise_s, 3), "alerts": report.alerts, "queued": report.queued, "levels": levels,
        "deliver_s": round(deliver_s, 3), "sent": delivery.sent, "received": received,
        "receiver_cpu_s": round(statistics.median(receiver_cpus), 2), "channel_s": round(channel_s, 3),
        "workers": workers, "channel_median_s": round(statistics.median(channel_runs), 3),
        "deliver_median_s": round(statistics.median(deliver_runs), 3), "first_deliver_s": round(deliver_runs[0], 3),
        "batches": report.batches, "sweep_after_raise_ms": round(again_ms, 2),
        "rss_mb": round(current, 1), "peak_rss_mb_after_load": round(peak_after_load, 1), "peak_rss_mb": round(peak, 1),
        "plan": plan,
    }


def _pg_schema_url(url: str) -> tuple[str, str]:
    schema = f"cf_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}", schema


def _drop_schema(url: str, schema: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one database's benchmark in this process."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.timers, args.alerts)
    url = normalize_url(args.pg_url)
    schema_url, schema = _pg_schema_url(url)
    try:
        return run(schema_url, args.timers, args.alerts)
    finally:
        _drop_schema(url, schema)


def report(result: dict[str, Any]) -> None:
    """Print one database's figures against the targets."""
    ok = {True: "ok", False: "MISSED"}
    print(f"\n== {result['db']}: {result['timers']:,} open timers (bulk load {result['load_s']} s)")
    print(f"  sweep finding nothing   median {result['empty_sweep_ms_median']} ms, "
          f"max {result['empty_sweep_ms_max']} ms   (target < 50 ms: {ok[result['empty_sweep_ms_median'] < 50]})")
    print(f"  sweep raising {result['alerts']:,} alerts + {result['queued']:,} queued notifications: "
          f"{result['raise_sweep_s']} s in {result['batches']} batches   "
          f"(target < 2 s: {ok[result['raise_sweep_s'] < 2]})")
    print(f"  alerts by level         {result['levels']}")
    print(f"  delivery of {result['sent']:,} notifications (received {result['received']:,}), 3 interleaved runs: "
          f"min {result['deliver_s']} s, median {result['deliver_median_s']} s; channel time alone (same POSTs, "
          f"same client, {result['workers']} threads, no database): min {result['channel_s']} s, median "
          f"{result['channel_median_s']} s; overhead (claim, record, lease: min − min) "
          f"{result['deliver_s'] - result['channel_s']:.2f} s "
          f"(target < 2 s: {ok[result['deliver_s'] - result['channel_s'] < 2]}); receiver process CPU "
          f"{result['receiver_cpu_s']} s per delivery (median)")
    total = result["raise_sweep_s"] + result["first_deliver_s"]
    print(f"  sweep + first delivery (what `scheduler run --once` does): {total:.2f} s")
    print(f"  sweep right after       {result['sweep_after_raise_ms']} ms")
    print(f"  peak RSS                {result['peak_rss_mb']} MB (after load {result['peak_rss_mb_after_load']} MB)"
          f"   (target < 150 MB: {ok[result['peak_rss_mb'] < 150]})")
    print("  claim query plan:\n" + result["plan"])


def main() -> None:
    """Parse arguments; run each database in a child process (its own peak RSS) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timers", type=int, default=1_000_000, help="open timers to load (default 1 000 000)")
    parser.add_argument("--alerts", type=int, default=10_000, help="timers due at the raising sweep")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get("CASEFLOW_TEST_PG_URL")
                        or os.environ.get("CASEFLOW_BENCH_PG_URL"),
                        help="PostgreSQL URL (default $CASEFLOW_TEST_PG_URL)")
    parser.add_argument("--child", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if args.alerts > args.timers:
        parser.error("--alerts cannot exceed --timers")
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in kinds and not args.pg_url:
        print("PostgreSQL skipped: set CASEFLOW_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test "
              "(or --pg-url)", file=sys.stderr)
        kinds.remove("postgres")
    results = []
    for kind in kinds:
        cmd = [sys.executable, __file__, "--child", kind, "--timers", str(args.timers), "--alerts", str(args.alerts)]
        if args.pg_url:
            cmd += ["--pg-url", args.pg_url]
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores before {kind} "
              "(shared machine: wall times are under that load)")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        if not args.json:
            report(result)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
