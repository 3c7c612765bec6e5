"""Requests per second and latency of opening and advancing cases over HTTP, against the Python API.

Run it as ``python benchmarks/bench_api.py`` (figures only, no assertions). It needs a PostgreSQL server:
``$CASEFLOW_BENCH_PG_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; everything happens in a
fresh schema, dropped at the end.

1. HTTP: ``caseflow serve --workers 4`` (``caseflow.cli.server.run_server``) on 127.0.0.1, a subprocess, driven by
   httpx from ``--clients`` threads for ``--seconds`` per phase. Each request authenticates its bearer token,
   checks the unit's visibility and runs one engine command in one transaction.
   - *open*: ``POST /api/v1/cases`` (hukou_transfer);
   - *advance*: ``POST /api/v1/cases/{id}/fire`` through the route hand_over_verification →
     return_verification → submit_for_approval → approve_at_station → complete (five commands a case).
2. Python: the same commands on an ``Engine`` in this process, from the same number of threads.

Only loopback traffic; every loop is bounded in time and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import sqlalchemy as sa

from caseflow.engine import Engine
from caseflow.store import Store
from caseflow.tokens import create_token

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROUTE = [("hand_over_verification", {"slip_no": "JB-1"}), ("return_verification", {}),
         ("submit_for_approval", {}), ("approve_at_station", {}), ("complete", {})]


@dataclass
class Result:
    """Latencies (seconds) and errors of one phase."""

    path: str
    operation: str
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def row(self) -> str:
        n = len(self.latencies)
        rate = n / self.seconds if self.seconds else 0.0
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p95 = lat[min(n - 1, int(n * 0.95))] * 1000 if lat else float("nan")
        p99 = lat[min(n - 1, int(n * 0.99))] * 1000 if lat else float("nan")
        return (f"| {self.path:<23} | {self.operation:<8} | {self.clients:>7} | {n:>8} | {rate:>7.1f} | "
                f"{p50:>7.1f} | {p95:>7.1f} | {p99:>7.1f} | {self.errors:>6} |")


HEADER = "\n".join([
    f"| {'path':<23} | {'command':<8} | clients | commands |   cmd/s |  p50 ms |  p95 ms |  p99 ms | errors |",
    f"|{'-' * 25}|{'-' * 10}|--------:|---------:|--------:|--------:|--------:|--------:|-------:|",
])


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_threads(clients: int, seconds: float, work: Callable[[int, Callable[[float, bool], None]], bool],
                result: Result) -> Result:
    """Run ``work(thread_index, record)`` in a loop on each thread until the time is up (or it returns False)."""
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def record(latency: float, ok: bool) -> None:
        with lock:
            if ok:
                result.latencies.append(latency)
            else:
                result.errors += 1

    def loop(index: int) -> None:
        while time.perf_counter() < stop_at:
            if not work(index, record):
                return

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    return result


def advance_plan(cases: list[list[int]]) -> list[list[tuple[int, int]]]:
    """Per thread, the (case, step) pairs to fire in an order that keeps each case's steps sequential."""
    plans = []
    for own in cases:
        plans.append([(cid, step) for step in range(len(ROUTE)) for cid in own])
    return plans


# ------------------------------------------------------------------------------------------------ HTTP


def http_phase(base: str, token: str, clients: int, seconds: float) -> tuple[Result, Result]:
    headers = {"Authorization": f"Bearer {token}"}
    sessions = [httpx.Client(base_url=base, headers=headers, timeout=30) for _ in range(clients)]
    opened: list[list[int]] = [[] for _ in range(clients)]

    def open_one(i: int, record: Callable[[float, bool], None]) -> bool:
        t0 = time.perf_counter()
        r = sessions[i].post("/api/v1/cases", json={"workflow": "hukou_transfer", "data": {"applicant": "压测"}})
        ok = r.status_code == 201
        record(time.perf_counter() - t0, ok)
        if ok:
            opened[i].append(r.json()["id"])
        return True

    opening = run_threads(clients, seconds, open_one, Result("HTTP, 4 uvicorn workers", "open", clients))
    plans = advance_plan(opened)
    cursor = [0] * clients

    def fire_one(i: int, record: Callable[[float, bool], None]) -> bool:
        if cursor[i] >= len(plans[i]):
            return False
        cid, step = plans[i][cursor[i]]
        cursor[i] += 1
        trigger, data = ROUTE[step]
        t0 = time.perf_counter()
        r = sessions[i].post(f"/api/v1/cases/{cid}/fire", json={"trigger": trigger, "data": data})
        record(time.perf_counter() - t0, r.status_code == 200)
        return True

    advancing = run_threads(clients, seconds, fire_one, Result("HTTP, 4 uvicorn workers", "advance", clients))
    for s in sessions:
        s.close()
    return opening, advancing


# ---------------------------------------------------------------------------------------------- Python


def python_phase(engine: Engine, actor: str, clients: int, seconds: float) -> tuple[Result, Result]:
    opened: list[list[int]] = [[] for _ in range(clients)]

    def open_one(i: int, record: Callable[[float, bool], None]) -> bool:
        t0 = time.perf_counter()
        try:
            view = engine.open("hukou_transfer", actor=actor, data={"applicant": "压测"})
        except Exception:  # counted as an error, the run goes on
            record(time.perf_counter() - t0, False)
            return True
        record(time.perf_counter() - t0, True)
        opened[i].append(view.id)
        return True

    opening = run_threads(clients, seconds, open_one, Result("Python API (Engine)", "open", clients))
    plans = advance_plan(opened)
    cursor = [0] * clients

    def fire_one(i: int, record: Callable[[float, bool], None]) -> bool:
        if cursor[i] >= len(plans[i]):
            return False
        cid, step = plans[i][cursor[i]]
        cursor[i] += 1
        trigger, data = ROUTE[step]
        t0 = time.perf_counter()
        try:
            engine.fire(cid, trigger, actor=actor, data=data)
            ok = True
        except Exception:  # counted as an error
            ok = False
        record(time.perf_counter() - t0, ok)
        return True

    advancing = run_threads(clients, seconds, fire_one, Result("Python API (Engine)", "advance", clients))
    return opening, advancing


# ------------------------------------------------------------------------------------------------ main


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CASEFLOW_DB": url}
    env.pop("CASEFLOW_NOW", None)
    # What `caseflow serve` runs (caseflow.cli.server.run_server), less the access log.
    code = ("import sys; from caseflow.cli.server import run_server; "
            "run_server(sys.argv[1], port=int(sys.argv[2]), workers=int(sys.argv[3]), log_level='warning', "
            "access_log=False)")
    return subprocess.Popen(
        [sys.executable, "-c", code, url, str(port), str(workers)],
        env=env, start_new_session=True,  # its own process group: stopped as a whole, by its id
    )


def wait_ready(base: str, token: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            me = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=2)
            if me.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the server did not become ready")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="Duration of each phase.")
    parser.add_argument("--clients", type=int, default=8, help="Client threads.")
    parser.add_argument("--workers", type=int, default=4, help="uvicorn worker processes.")
    args = parser.parse_args(argv)

    base_url = os.environ.get("CASEFLOW_BENCH_PG_URL", DEFAULT_PG)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = schema_url(base_url, schema)
    proc = None
    try:
        store = Store(url)  # creates the schema once, before the workers start
        engine = Engine(store)
        roles = ["household_police", "community_police", "station_leader"]
        engine.add_person("bench", name="压测民警", unit="压测所", roles=roles)
        token = create_token(store, "bench")
        port = free_port()
        http_base = f"http://127.0.0.1:{port}"
        proc = start_server(url, port, args.workers)
        wait_ready(http_base, token, proc)
        # Warm every worker (imports, calendar, first connections) outside the measured phases.
        run_threads(args.clients, 2.0, lambda i, rec: bool(
            httpx.get(f"{http_base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code), Result(
            "warm-up", "", args.clients))
        results = [*http_phase(http_base, token, args.clients, args.seconds)]
        stop_server(proc)
        proc = None
        engine.open("hukou_transfer", actor="bench")  # warm the in-process engine
        results += [*python_phase(engine, "bench", args.clients, args.seconds)]
        store.dispose()
    finally:
        if proc is not None:
            stop_server(proc)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    print(f"caseflow API benchmark — Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"PostgreSQL at {sa.engine.make_url(base_url).render_as_string(hide_password=True)}")
    print(f"{args.seconds:.0f} s per phase; {args.clients} client threads; HTTP server: {args.workers} uvicorn "
          "workers on 127.0.0.1 (client and server share the machine's cores)")
    print(f"advance = one fire of the route {' → '.join(t for t, _ in ROUTE)}\n")
    print(HEADER)
    for r in results:
        print(r.row())


if __name__ == "__main__":
    main()
