"""How long ``Store(url)`` takes on a new SQLite file: creating the schema of an empty database.

Run it as ``python benchmarks/bench_store.py [--repeat N] [--src DIR ...]`` (figures only, no assertions).

Method: each run is a fresh process that imports ``caseflow.store`` (and, for the "demo" column, the table
modules the demo imports anyway: ``store.TABLE_MODULES``), then times ``Store(<new file>).dispose()`` alone:
wall clock (``time.perf_counter``) and the process's CPU time (``time.process_time``). What ``Store``
imports on the way (Alembic and the migrations, or the table modules) is counted: it is the cost. Byte-code
is cached (one untimed warm-up run per side). Sides given with ``--src`` (each put first on PYTHONPATH,
e.g. a ``git archive`` of main) are interleaved round by round (A B, then B A, …) and reported by their
minimum and median; the peak RSS is the largest of the side's runs (``os.wait4``, the child's own
``getrusage``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_demo import _with_src

_PROBE = """
import importlib, json, sys, time
from caseflow import store
if sys.argv[2] == "demo":  # spelled out: an older tree has no store.TABLE_MODULES
    for name in ("caseflow.alerts", "caseflow.appointments", "caseflow.desk", "caseflow.ratelimit",
                 "caseflow.ratings"):
        importlib.import_module(name)
wall, cpu = time.perf_counter(), time.process_time()
store.Store(sys.argv[1]).dispose()
print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu, "alembic" in sys.modules]))
"""


def run(src: str | None, env: dict[str, str], imported: str) -> tuple[float, float, float, bool]:
    """One ``Store(new file)`` in a fresh process: wall s, CPU s, peak RSS MB, whether Alembic was imported."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-c", _PROBE, str(Path(tmp) / "new.db"), imported],
                                cwd=tmp, env=_with_src(src, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(proc.pid, 0)
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"Store(new file) failed: {err.decode(errors='replace')}")
    wall, cpu, alembic = json.loads(out.decode().strip().splitlines()[-1])
    return wall, cpu, usage.ru_maxrss / 1024, alembic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--src", action="append", default=None, metavar="DIR",
                        help="a source tree to put first on PYTHONPATH (repeatable; default: as installed)")
    args = parser.parse_args()

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    sides: list[str | None] = list(args.src) if args.src else [None]
    names = [s if s is not None else "installed" for s in sides]
    cases = [(side, imported) for side in sides for imported in ("store", "demo")]
    for side, imported in cases:  # warm-up, not counted: byte-code caches
        run(side, env, imported)
    figures: dict[tuple[str | None, str], list[tuple[float, float, float, bool]]] = {case: [] for case in cases}
    load_before = os.getloadavg()
    for i in range(args.repeat):
        for case in cases if i % 2 == 0 else list(reversed(cases)):
            figures[case].append(run(case[0], env, case[1]))
    load_after = os.getloadavg()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {args.repeat} interleaved rounds, "
          "a fresh process and a new SQLite file each run")
    print("imported first: store = caseflow.store only; demo = also the table modules (the demo has them)")
    width = max(len(n) for n in names)
    print(f"{'side':<{width}}  imported  {'wall min ms':>11}  {'wall median ms':>14}  {'cpu min ms':>10}  "
          f"{'cpu median ms':>13}  {'peak RSS MB':>11}  alembic imported")
    for (side, imported), runs in figures.items():
        walls, cpus = [r[0] * 1000 for r in runs], [r[1] * 1000 for r in runs]
        print(f"{names[sides.index(side)]:<{width}}  {imported:<8}  {min(walls):>11.1f}  "
              f"{statistics.median(walls):>14.1f}  {min(cpus):>10.1f}  {statistics.median(cpus):>13.1f}  "
              f"{max(r[2] for r in runs):>11.0f}  {'yes' if any(r[3] for r in runs) else 'no'}")


if __name__ == "__main__":
    main()
