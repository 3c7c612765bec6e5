"""How long ``caseflow demo`` (README line 1) takes, end to end, in a fresh process.

Run it as ``python benchmarks/bench_demo.py [--repeat N] [--src DIR ...]`` (figures only, no assertions).

Method: each run is a fresh process (``python -m caseflow.cli demo --db <fresh file>``, what the
``caseflow`` console script runs) in its own temporary directory, timed by wall clock from spawn to exit,
its CPU time (user + system) and peak RSS are the child's own (``os.wait4``, the per-process form of
``resource.getrusage``; the peak reported is the largest of a side's runs). Byte-code is cached
as after ``pip install`` (one untimed warm-up run per side writes the caches). The demo is seeded and its
clock simulated, so every run does the same work: the script checks that every run prints the same
story (all but the line ``用时 N 秒``) and says so.

Several source trees can be timed side by side (``--src A --src B``: each is put first on
``PYTHONPATH``, e.g. an export of an older commit made with ``git archive``); their runs are interleaved
(round 1: A then B, round 2: B then A, …) so that a burst of load on the machine hits them alike, and each
is reported by its minimum (the machine's best) and median, wall and CPU. The load average is printed
before and after: on a shared machine the CPU time is the steadier figure. Target (issue 11): the demo
in under 5 s on a quiet machine.

``--statements`` also runs one untimed demo per side with a SQLAlchemy ``before_cursor_execute`` listener
and reports how many statements it sent to the database (SQLite's ``BEGIN``/``BEGIN IMMEDIATE`` included:
caseflow sends them itself), a count that does not depend on the machine's load.
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

TARGET = 5.0


def _with_src(src: str | None, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the source tree ``src`` first on PYTHONPATH (as installed when None)."""
    env = dict(env)
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve()) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                                        else "")
    return env


def run(src: str | None, env: dict[str, str]) -> tuple[float, float, float, list[str]]:
    """One demo in a fresh directory: wall s, CPU s, peak RSS MB, and the story's lines but the timing one."""
    env = _with_src(src, env)
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path = Path(tmp) / "stdout.txt", Path(tmp) / "stderr.txt"
        with out_path.open("w") as out, err_path.open("w") as err:
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "caseflow.cli", "demo", "--db", str(Path(tmp) / "demo.db")],
                                    cwd=tmp, env=env, stdout=out, stderr=err)
            # wait4: this child's own CPU time and peak RSS (getrusage(RUSAGE_CHILDREN) would mix the runs).
            _pid, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"caseflow demo failed ({proc.returncode}): {err_path.read_text()}")
        story = [line.replace(tmp, "TMP") for line in out_path.read_text().splitlines() if not line.startswith("用时 ")]
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, story


_COUNTING = """
import atexit, os, sys
import sqlalchemy as sa
from sqlalchemy.engine import Engine
sent = [0]
sa.event.listen(Engine, "before_cursor_execute", lambda *_args: sent.__setitem__(0, sent[0] + 1))
atexit.register(lambda: os.write(2, f"statements {sent[0]}\\n".encode()))
sys.argv = ["caseflow", "demo", "--db", sys.argv[1]]
from caseflow.cli import main
main()
"""


def count_statements(src: str | None, env: dict[str, str]) -> int:
    """The statements one demo sends (a fresh process and database, a listener on every engine; not timed)."""
    env = _with_src(src, env)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", _COUNTING, str(Path(tmp) / "demo.db")], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.startswith("statements ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"counting the demo's statements failed ({done.returncode}): {done.stderr.decode()}")
    return int(lines[-1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--src", action="append", default=None, metavar="DIR",
                        help="a source tree to put first on PYTHONPATH (repeatable; default: as installed)")
    parser.add_argument("--statements", action="store_true",
                        help="also count the statements one demo sends to the database, per side (untimed)")
    args = parser.parse_args()

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte-code cached (the warm-up writes it)
    sides: list[str | None] = list(args.src) if args.src else [None]
    names = [s if s is not None else "installed" for s in sides]
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    stories = {}
    for side in sides:  # warm-up, not counted: byte-code caches, file cache
        stories[side] = run(side, env)[3]
    walls: dict[str | None, list[float]] = {s: [] for s in sides}
    cpus: dict[str | None, list[float]] = {s: [] for s in sides}
    peaks: dict[str | None, list[float]] = {s: [] for s in sides}
    same = True
    for i in range(args.repeat):
        for side in sides if i % 2 == 0 else list(reversed(sides)):
            wall, cpu, peak, story = run(side, env)
            walls[side].append(wall)
            cpus[side].append(cpu)
            peaks[side].append(peak)
            same = same and story == stories[side]
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} before, "
          f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} after")
    print(f"{args.repeat} interleaved rounds of `caseflow demo` per side, a fresh process and database each run")
    width = max(len(n) for n in names)
    print(f"{'side':<{width}}  {'wall min s':>10}  {'wall median s':>13}  {'cpu min s':>9}  {'cpu median s':>12}  "
          f"{'peak RSS MB':>11}  target")
    for side, name in zip(sides, names, strict=True):
        print(f"{name:<{width}}  {min(walls[side]):>10.2f}  {statistics.median(walls[side]):>13.2f}  "
              f"{min(cpus[side]):>9.2f}  {statistics.median(cpus[side]):>12.2f}  {max(peaks[side]):>11.0f}  "
              f"< {TARGET:g} s wall")
    if args.statements:
        for side, name in zip(sides, names, strict=True):
            print(f"{name:<{width}}  {count_statements(side, env):>6} statements sent by one demo "
                  "(before_cursor_execute, BEGIN included)")
    if len(sides) > 1:
        stories_equal = all(stories[s] == stories[sides[0]] for s in sides)
        print("the sides print the same story" if stories_equal else "the sides print DIFFERENT stories")
    print("every run of a side printed the same story" if same else "runs of one side printed DIFFERENT stories")


if __name__ == "__main__":
    main()
