"""How long the ``caseflow`` command takes at the prompt, next to ``python -c "import chinese_calendar"``.

Run it as ``python benchmarks/bench_cli.py [--repeat N] [--db DEMO.db]`` (figures only, no assertions).

Method: every command is a fresh process (``python -m caseflow.cli …``, what the ``caseflow`` console
script runs), timed by wall clock from spawn to exit, output discarded, byte-code cached as after
``pip install`` (one untimed warm-up run of each command writes the caches). The commands are run in
interleaved rounds (round 1: every command once, round 2: every command once, …) so that a burst of
load on the machine hits all of them alike, and each is reported by its minimum (the machine's best)
and median. The references run in the same rounds: ``python -c pass`` (the interpreter alone) and
``python -c "import chinese_calendar"`` (the library caseflow's calendar starts from), and the floors
of the two kinds of command: click (every command) and SQLModel with SQLAlchemy's ORM (every database
command), and the floor of a database command: those with the SQLite dialect and caseflow's table classes
declared and mapped, which each database command's figure is also given above. Targets (issue
10): the prompt commands under 0.15 s, the database commands under 0.5 s, on a quiet machine; the
ratio to ``import chinese_calendar`` is the figure that carries over between machines.

The database commands read the demo database (``caseflow demo``, built once into a temporary directory
unless ``--db`` names one). ``--src DIR`` (repeatable) puts a source tree first on ``PYTHONPATH`` for the
caseflow commands; with two or more, each tree's commands run in the same interleaved rounds (e.g. an older
commit exported with ``git archive`` beside this one), so their figures compare like for like.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT_TARGET = 0.15
DB_TARGET = 0.5
#: What every database command pays before any of its own work: click, SQLModel with SQLAlchemy's ORM and
#: the SQLite dialect, and caseflow's table classes declared and mapped (SQLModel builds a pydantic model
#: and an ORM mapping for each; the first ORM query configures the mappers).
FLOOR_LABEL = "floor: click, SQLModel, the SQLite dialect, the tables mapped"
FLOOR_CODE = ("import click, sqlalchemy.dialects.sqlite, sqlalchemy.orm, caseflow.store; "
              "sqlalchemy.orm.configure_mappers()")


def run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--db", default=None, help="a demo database (default: build one in a temp directory)")
    parser.add_argument("--src", action="append", default=None, metavar="DIR",
                        help="a source tree put first on PYTHONPATH for the caseflow commands (repeatable: the "
                             "trees' commands run in the same interleaved rounds, e.g. an older commit's "
                             "`git archive` beside this one)")
    args = parser.parse_args()

    py = sys.executable
    cf = [py, "-m", "caseflow.cli"]
    env = dict(os.environ)
    env["CASEFLOW_NOW"] = "2026-11-04T08:30"  # the demo's last morning: its queues and digests are full
    # As installed: byte-code cached (pip compiles on install). The warm-up round writes the caches.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if db is None:
            db = str(Path(tmp) / "demo.db")
            print(f"building the demo database {db} (once, not timed) …", flush=True)
            subprocess.run([*cf, "demo", "--db", db, "--json"], env=env, stdout=subprocess.DEVNULL, check=True)
        refs: list[tuple[str, str, list[str]]] = [
            ("ref", 'python -c "pass"', [py, "-c", "pass"]),
            ("ref", 'python -c "import chinese_calendar"', [py, "-c", "import chinese_calendar"]),
            ("ref", 'python -c "import click"', [py, "-c", "import click"]),
            ("ref", 'python -c "import sqlmodel, sqlalchemy.orm"', [py, "-c", "import sqlmodel, sqlalchemy.orm"]),
            ("floor", FLOOR_LABEL, [py, "-c", FLOOR_CODE]),
        ]
        commands: list[tuple[str, str, list[str]]] = [
            ("prompt", "caseflow --help", [*cf, "--help"]),
            ("prompt", 'caseflow deadline 2026-10-03T14:00 "20 working_days"',
             [*cf, "deadline", "2026-10-03T14:00", "20 working_days"]),
            ("prompt", "caseflow calendar show 2026-10", [*cf, "calendar", "show", "2026-10"]),
            ("db", "caseflow queue --person liu", [*cf, "queue", "--person", "liu", "--db", db]),
            ("db", "caseflow case show 1", [*cf, "case", "show", "1", "--db", db]),
            ("db", "caseflow alerts list", [*cf, "alerts", "list", "--db", db]),
            ("db", "caseflow stats", [*cf, "stats", "--db", db]),
            ("db", "caseflow digest --leader wang", [*cf, "digest", "--leader", "wang", "--db", db]),
        ]
        cases: list[tuple[str, str, list[str], dict[str, str]]] = [(k, label, argv, env) for k, label, argv in refs]
        if args.src:  # the floor declares the tables of the first tree given
            first = str(Path(args.src[0]).resolve())
            cases[-1] = (*cases[-1][:3], dict(env, PYTHONPATH=first + (
                os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")))
        for src in args.src or [None]:
            side_env = dict(env)
            if src is not None:
                side_env["PYTHONPATH"] = str(Path(src).resolve()) + (
                    os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            suffix = f" [{src}]" if args.src and len(args.src) > 1 else ""
            cases += [(k, label + suffix, argv, side_env) for k, label, argv in commands]
        for _kind, _label, argv, case_env in cases:  # warm the file cache and .pyc files; not counted
            run(argv, case_env)
        times: dict[str, list[float]] = {label: [] for _kind, label, _argv, _env in cases}
        for _ in range(args.repeat):
            for _kind, label, argv, case_env in cases:
                times[label].append(run(argv, case_env))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load:.2f} at the end; {args.repeat} interleaved rounds, a fresh process each run")
    cc = min(times['python -c "import chinese_calendar"'])
    floor = min(times[FLOOR_LABEL])
    width = max(len(label) for label in times)
    print(f"{'command':<{width}}  {'min s':>7}  {'median s':>8}  {'× cc':>6}  target")
    for kind, label, _argv, _env in cases:
        values = times[label]
        target = {"prompt": f"< {PROMPT_TARGET} s", "db": f"< {DB_TARGET} s", "ref": "reference"}.get(kind, kind)
        above = f"  (floor + {min(values) - floor:.3f})" if kind == "db" else ""
        print(f"{label:<{width}}  {min(values):>7.3f}  {statistics.median(values):>8.3f}  "
              f"{min(values) / cc:>6.2f}  {target}{above}")
    print("× cc: the minimum over the minimum of `python -c \"import chinese_calendar\"` in the same rounds.")
    print("floor + s: a database command's minimum above the floor's minimum (its own work: the command's "
          "modules, opening the store, the workflows, the query and the output).")


if __name__ == "__main__":
    main()
