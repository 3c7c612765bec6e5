"""Every script in ``benchmarks/`` runs to the end at a small size and prints its figures.

The figures themselves are never asserted (they depend on the machine); what is pinned is that a script a
closing note quotes still works against the code as it is: a refactor once left ``bench_recompute.py``
calling a helper that no longer took its plain rows, and nothing noticed until the figures were needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
PG_URL = os.environ.get("CASEFLOW_TEST_PG_URL")

#: (script, small arguments, a line its report must contain, needs PostgreSQL)
RUNS = [
    ("bench_calendar.py", ["--scalar", "200", "--vector", "2000", "--repeats", "1"], "caseflow add_working_days_many",
     False),
    ("bench_engine.py", ["--commands", "200", "--rate-cases", "20", "--repeats", "1", "--skip-pg"], "| sqlite", False),
    ("bench_recompute.py", ["--small", "60", "--large", "0"], "same timers, moves and events: True", False),
    ("bench_sweep.py", ["--timers", "3000", "--alerts", "60", "--db", "sqlite"], "sweep finding nothing", False),
    ("bench_generation.py", ["--n", "5"], "first open after a notice was loaded elsewhere", False),
    ("bench_store.py", ["--repeat", "1"], "installed", False),
    ("bench_demo.py", ["--repeat", "1"], "every run of a side printed the same story", False),
    ("bench_cli.py", ["--repeat", "1"], "caseflow deadline", False),
    ("bench_recompute.py", ["--small", "60", "--large", "0", "--db", "postgres"],
     "same timers, moves and events: True", True),
    ("bench_engine.py", ["--commands", "200", "--rate-cases", "20", "--repeats", "1"], "| postgresql", True),
    ("bench_api.py", ["--skip-http", "--seconds", "1", "--workers", "2"], "Engine, one per process", True),
]


@pytest.mark.parametrize(("script", "args", "expected", "needs_pg"), RUNS,
                         ids=[f"{s}{' (PostgreSQL)' if pg else ''}" for s, _, _, pg in RUNS])
def test_the_benchmark_runs_at_a_small_size(script: str, args: list[str], expected: str, needs_pg: bool,
                                            tmp_path: Path) -> None:
    if needs_pg and not PG_URL:
        pytest.skip("PostgreSQL tests skipped: set CASEFLOW_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/"
                    "test (a server you may create schemas in) to run them")
    env = dict(os.environ)
    if PG_URL:
        env.setdefault("CASEFLOW_BENCH_PG_URL", PG_URL)
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stderr
    assert expected in done.stdout, done.stdout[-2000:]
