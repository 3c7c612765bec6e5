"""Commands per second over PostgreSQL from several processes, over HTTP and through the Python API.

Run it as ``python benchmarks/bench_api.py`` (figures only, no assertions). It needs a PostgreSQL server:
``$CASEFLOW_BENCH_PG_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; everything happens in a
fresh schema, dropped at the end.

The load is mixed, as at a counter: each client opens a hukou_transfer case and fires it along its route
hand_over_verification → return_verification → submit_for_approval → approve_at_station → complete, then
opens the next (six commands a case, one transaction each). Two paths, each for ``--seconds``:

1. **HTTP**: ``caseflow serve --workers 4`` (``caseflow.cli.server.run_server``) on 127.0.0.1. The client
   load comes from a **separate process** (``--clients`` threads, one httpx connection each), so the
   figures are not the client's; its CPU time is measured and printed beside them (share of one core and
   of the machine), as is the server's (all its worker processes).
2. **Engine**: ``--workers`` processes each running the same loop on an ``Engine`` of their own (no HTTP);
   the figure issue 11 asks for (4 processes on PostgreSQL, commands per second in all).

Beside each figure: the machine's CPU busy share over the phase (``/proc/stat``, every process of every
user: the machine is shared) and its load average; the CPU time of the server or Engine processes and of
the PostgreSQL backends serving them (found by ``application_name``), per command; and cores ÷ that CPU
per command — the rate the machine could sustain if nothing else ran on it, an estimate from measured CPU
time (client, other users and PostgreSQL's background work left out), not a measured rate. Latencies are
per command (p50/p95/p99).
Only loopback traffic; every loop is bounded in time and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROUTE = [("hand_over_verification", {"slip_no": "JB-1"}), ("return_verification", {}),
         ("submit_for_approval", {}), ("approve_at_station", {}), ("complete", {})]
ACTOR = "bench"
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------ measuring


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system) of every live process in session ``sid`` (a server and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parts = text[text.rindex(")") + 2:].split()
        if int(parts[3]) == sid:  # field 6, session id
            total += int(parts[11]) + int(parts[12])  # utime, stime
    return total / TICK


@dataclass
class Phase:
    """What one phase measured."""

    path: str
    processes: int
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    client_cpu: float | None = None  # CPU seconds of the client process
    server_cpu: float | None = None  # CPU seconds of the server's processes
    db_cpu: float | None = None  # CPU seconds of the PostgreSQL backends serving them
    machine_busy: float = 0.0  # share of all cores busy, whoever used them
    load: float = 0.0

    def row(self) -> str:
        n = len(self.latencies)
        rate = n / self.seconds if self.seconds else 0.0
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p95 = lat[min(n - 1, int(n * 0.95))] * 1000 if lat else float("nan")
        p99 = lat[min(n - 1, int(n * 0.99))] * 1000 if lat else float("nan")
        cores = os.cpu_count() or 1

        def share(cpu: float | None) -> str:
            if cpu is None or not self.seconds:
                return "—"
            core = cpu / self.seconds
            return f"{core * 100:.0f}% of a core ({core / cores * 100:.0f}% of machine)"

        per_command = ((self.server_cpu or 0.0) + (self.db_cpu or 0.0)) / n if n else float("nan")
        return (f"| {self.path:<28} | {self.processes:>9} | {self.clients:>7} | {n:>8} | {rate:>7.1f} | {p50:>6.1f} | "
                f"{p95:>6.1f} | {p99:>6.1f} | {self.errors:>6} | {share(self.client_cpu):<30} | "
                f"{share(self.server_cpu):<30} | {share(self.db_cpu):<30} | {per_command * 1000:>6.2f} | "
                f"{cores / per_command:>7.0f} | {self.machine_busy * 100:>5.0f}% | {self.load:>4.1f} |")


HEADER = "\n".join([
    "| path                         | processes | clients | commands |   cmd/s | p50 ms | p95 ms | p99 ms | errors "
    "| client CPU                     | server / worker CPU            | their PostgreSQL backends' CPU "
    "| CPU ms/cmd | cores ÷ CPU/cmd | machine busy | load |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|",
])


# -------------------------------------------------------------------------------------------- the loop


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mixed_loop(command: Callable[[str, int | None, str | None, dict[str, Any]], int | None], clients: int,
               start_at: float, seconds: float) -> dict[str, Any]:
    """``clients`` threads, each: open a case, fire its route, again, from the instant ``start_at``
    (``time.time()``, the same for every process of a phase) until ``seconds`` later.

    ``command(kind, case_id, trigger, data)`` runs one command and returns the case id (None: it failed).
    The CPU time reported is this process's over that span only.
    """
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = cpu_seconds()
    stop_at = time.perf_counter() + seconds

    def loop() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            case_id = command("open", None, None, {"applicant": "压测"})
            with lock:
                if case_id is None:
                    errors[0] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
            for trigger, data in ROUTE:
                if time.perf_counter() >= stop_at:
                    return
                t0 = time.perf_counter()
                ok = command("fire", case_id, trigger, data) is not None
                with lock:
                    if ok:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors[0] += 1
                if not ok:
                    break

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - started, "latencies": latencies, "errors": errors[0],
            "cpu": cpu_seconds() - cpu0}


def http_client(base: str, token: str, clients: int, start_at: float, seconds: float) -> dict[str, Any]:
    """The client process of the HTTP path."""
    import httpx

    local = threading.local()

    def command(kind: str, case_id: int | None, trigger: str | None, data: dict[str, Any]) -> int | None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                                 timeout=60)
        if kind == "open":
            r = client.post("/api/v1/cases", json={"workflow": "hukou_transfer", "data": data})
            return int(r.json()["id"]) if r.status_code == 201 else None
        r = client.post(f"/api/v1/cases/{case_id}/fire", json={"trigger": trigger, "data": data})
        return case_id if r.status_code == 200 else None

    command("open", None, None, {"applicant": "预热"})  # connect before the start
    return mixed_loop(command, clients, start_at, seconds)


def engine_worker(url: str, start_at: float, seconds: float) -> dict[str, Any]:
    """One process of the Engine path: the loop on an Engine of its own, one command at a time."""
    from caseflow.engine import Engine
    from caseflow.store import Store

    engine = Engine(Store(url, upgrade=False))
    engine.open("hukou_transfer", actor=ACTOR)  # warm: definition stored, calendar, connection

    def command(kind: str, case_id: int | None, trigger: str | None, data: dict[str, Any]) -> int | None:
        try:
            if kind == "open":
                return engine.open("hukou_transfer", actor=ACTOR, data=data).id
            assert case_id is not None and trigger is not None
            engine.fire(case_id, trigger, actor=ACTOR, data=data)
            return case_id
        except Exception:  # counted as an error, the run goes on
            return None

    return mixed_loop(command, 1, start_at, seconds)


# ------------------------------------------------------------------------------------------ processes


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)


def collect(procs: list[subprocess.Popen[str]], timeout: float) -> list[dict[str, Any]]:
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise SystemExit(f"a benchmark process exited with {proc.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def pid_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of one process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    parts = text[text.rindex(")") + 2:].split()
    return (int(parts[11]) + int(parts[12])) / TICK


def backends(admin: sa.Engine, name: str) -> dict[int, float]:
    """The PostgreSQL backends serving this run's connections (by ``application_name``) and their CPU so far."""
    with admin.connect() as conn:
        pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                            {"n": name}).scalars().all()
    found = {int(pid): pid_cpu(int(pid)) for pid in pids}
    return {pid: cpu for pid, cpu in found.items() if cpu is not None}


def measured(phase: Phase, procs: list[subprocess.Popen[str]], start_at: float, seconds: float,  # noqa: PLR0917
             admin: sa.Engine, app_name: str, server_sid: int | None = None) -> Phase:
    """Sample the machine, the server and the run's database backends over the phase's span, then collect what
    each process measured."""
    time.sleep(max(0.0, start_at - time.time()))
    busy0, total0 = machine_ticks()
    server0 = session_cpu(server_sid) if server_sid is not None else 0.0
    db0 = backends(admin, app_name)
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    db1 = backends(admin, app_name)
    phase.db_cpu = sum(db1[pid] - db0[pid] for pid in db1.keys() & db0.keys())
    if server_sid is not None:
        phase.server_cpu = session_cpu(server_sid) - server0
    phase.machine_busy = (busy1 - busy0) / max(1, total1 - total0)
    phase.load = os.getloadavg()[0]
    results = collect(procs, timeout=seconds + 120)
    phase.seconds = max(r["seconds"] for r in results)
    for r in results:
        phase.latencies += r["latencies"]
        phase.errors += r["errors"]
    own = sum(r["cpu"] for r in results)  # what the measured processes report of their own CPU time
    if server_sid is not None:
        phase.client_cpu = own
    else:
        phase.server_cpu = own
    return phase


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CASEFLOW_DB": url}
    env.pop("CASEFLOW_NOW", None)
    # What `caseflow serve` runs (caseflow.cli.server.run_server), less the access log.
    code = ("import sys; from caseflow.cli.server import run_server; "
            "run_server(sys.argv[1], port=int(sys.argv[2]), workers=int(sys.argv[3]), log_level='warning', "
            "access_log=False)")
    return subprocess.Popen([sys.executable, "-c", code, url, str(port), str(workers)], env=env,
                            start_new_session=True)  # its own session: measured and stopped as a whole


def wait_ready(base: str, token: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the server did not become ready")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own process group, by its id
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="Duration of each phase.")
    parser.add_argument("--clients", type=int, default=8, help="Client threads of the HTTP client process.")
    parser.add_argument("--workers", type=int, default=4, help="uvicorn workers / Engine processes.")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--role", choices=["http-client", "engine-worker"], help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "http-client":
        print(json.dumps(http_client(args.target, args.token, args.clients, args.start_at, args.seconds)))
        return
    if args.role == "engine-worker":
        print(json.dumps(engine_worker(args.target, args.start_at, args.seconds)))
        return

    from caseflow.engine import Engine
    from caseflow.store import Store
    from caseflow.tokens import create_token

    base_url = os.environ.get("CASEFLOW_BENCH_PG_URL", DEFAULT_PG)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    app_name = f"cf{schema}"  # the run's connections, so their PostgreSQL backends can be told apart
    url = schema_url(base_url, schema) + f"&application_name={app_name}"
    results: list[Phase] = []
    proc = None
    secs = str(args.seconds)
    try:
        store = Store(url)  # creates the schema once, before any worker starts
        engine = Engine(store)
        engine.add_person(ACTOR, name="压测民警", unit="压测所",
                          roles=["household_police", "community_police", "station_leader"])
        engine.open("hukou_transfer", actor=ACTOR)  # store the definition once
        token = create_token(store, ACTOR)
        store.dispose()

        lead = 20.0  # time for every process to start, import and connect before the common start
        start_at = time.time() + lead
        procs = [child("--role", "engine-worker", "--target", url, "--start-at", str(start_at), "--seconds", secs)
                 for _ in range(args.workers)]
        phase = measured(Phase("Engine, one per process", args.workers, args.workers), procs, start_at, args.seconds,
                         admin, app_name)
        results.append(phase)
        if not args.skip_http:
            port = free_port()
            http_base = f"http://127.0.0.1:{port}"
            proc = start_server(url, port, args.workers)
            wait_ready(http_base, token, proc)
            # Warm every worker (imports, calendar, connections) outside the measured phase.
            warm_at = time.time() + lead
            collect([child("--role", "http-client", "--target", http_base, "--token", token, "--start-at",
                           str(warm_at), "--seconds", "3", "--clients", str(args.clients))], timeout=180)
            start_at = time.time() + lead
            client = child("--role", "http-client", "--target", http_base, "--token", token, "--start-at",
                           str(start_at), "--seconds", secs, "--clients", str(args.clients))
            http = measured(Phase("HTTP, uvicorn workers", args.workers, args.clients), [client], start_at,
                            args.seconds, admin, app_name, server_sid=proc.pid)
            results.append(http)
            stop_server(proc)
            proc = None
    finally:
        if proc is not None:
            stop_server(proc)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    print(__doc__.split("\n\nOnly loopback")[0])
    print(f"\ncaseflow API benchmark — Python {platform.python_version()}, {os.cpu_count()} cores (shared), "
          f"PostgreSQL at {sa.engine.make_url(base_url).render_as_string(hide_password=True)}; "
          f"{args.seconds:.0f} s per phase")
    print("client CPU = the HTTP client process's own CPU time over the phase (it runs on the same cores as the "
          "server); server / worker CPU = the uvicorn or Engine processes'; CPU ms/cmd = theirs plus their "
          "PostgreSQL backends'; machine busy = all processes of the machine\n")
    print(HEADER)
    for r in results:
        print(r.row())


if __name__ == "__main__":
    main()
