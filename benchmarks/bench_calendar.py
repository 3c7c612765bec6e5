"""How fast caseflow adds working days, against what a user would really write instead.

Run it as ``python benchmarks/bench_calendar.py [--scalar N] [--vector N] [--repeats R]`` (figures only,
no assertions). The question every method answers: the n-th working day after day d, d itself not
counted, n = 0 meaning d (当日). The method, printed with the figures:

- Inputs: one seeded sample, start days uniform over 2004-01-01..2026-06-30 (every year chinese-calendar
  knows) and n uniform over 0..30 (n = 0 included). Every method gets the same inputs.
- Passes: R interleaved repetitions — each repetition runs every method once over the whole sample,
  in a shuffled order — and each method's time per call is reported as the min and the median over
  the R passes. Same inputs, same number of passes, same statistic for every side.
- Scalar baselines: ``chinese_calendar.find_workday`` (made legal: for a rest-day start it counts the
  rolled-forward day as day 0, so ask it for n - 1), a day loop calling ``chinese_calendar.is_workday``,
  and ``bisect`` on a precomputed sorted list of chinese-calendar's working days.
- Vectorised baselines (same 10⁶ inputs): ``numpy.busday_offset`` with chinese-calendar's weekday rest
  days as holidays (``roll='backward'``, the fairest reading; numpy cannot express make-up working
  days on weekends), and ``numpy.searchsorted`` on the precomputed working days, which is the memory
  bound: a two-gather chain on the same indices.
- ``compute_due`` with the shared calendar (a datetime start, a ``TimeLimit``) against
  ``add_working_days`` on the same inputs; then ``compute_due`` for every unit (days, months, hours,
  minutes, working days counted from the next working day), the same starts and amounts, in the same
  interleaved passes, each checked field by field against the full computation (an empty excluded
  ledger) — there is no outside baseline for these, they show what each unit costs.
- Wrong answers are counted against caseflow's; peak RSS is ``resource.getrusage`` (the process's
  peak, all methods together), never current RSS.
"""

from __future__ import annotations

import argparse
import bisect
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as dtime
from importlib.metadata import version
from typing import Any

import chinese_calendar
import numpy as np

from caseflow.calendar import ZONE, default_calendar
from caseflow.timelimits import TimeLimit, compute_due

SEED = 20261009
FIRST, LAST = date(2004, 1, 1), date(2026, 6, 30)
MAX_N = 30


def sample(count: int, rng: random.Random) -> tuple[list[date], list[int]]:
    span = (LAST - FIRST).days
    days = [FIRST + timedelta(days=rng.randrange(span + 1)) for _ in range(count)]
    return days, [rng.randint(0, MAX_N) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scalar", type=int, default=3_000, help="inputs for the scalar methods")
    parser.add_argument("--vector", type=int, default=1_000_000, help="inputs for the vectorised methods")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    args = parser.parse_args()
    print(__doc__)
    print(f"python {platform.python_version()}, numpy {np.__version__}, chinese-calendar "
          f"{version('chinese-calendar')}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          "at start (shared machine: figures are under that load)")

    cal = default_calendar()
    rng = random.Random(SEED)
    days, ns = sample(args.scalar, rng)
    legal = [cal.add_working_days(d, n) for d, n in zip(days, ns, strict=True)]

    # Precomputed by a user from chinese-calendar's data (2004 to its last year, plus a margin).
    all_days = [FIRST + timedelta(days=i) for i in range((date(2026, 12, 31) - FIRST).days + 1)]
    workdays = [d for d in all_days if chinese_calendar.is_workday(d)]

    def ours() -> list[date]:
        add = cal.add_working_days
        return [add(d, n) for d, n in zip(days, ns, strict=True)]

    def find_workday() -> list[date]:
        out = []
        for d, n in zip(days, ns, strict=True):
            if n == 0:
                out.append(d)
            else:
                out.append(chinese_calendar.find_workday(n if chinese_calendar.is_workday(d) else n - 1, d))
        return out

    def day_loop() -> list[date]:
        out = []
        is_workday = chinese_calendar.is_workday
        for d, n in zip(days, ns, strict=True):
            day, count = d, 0
            while count < n:
                day += timedelta(days=1)
                if is_workday(day):
                    count += 1
            out.append(day)
        return out

    def bisect_list() -> list[date]:
        out = []
        for d, n in zip(days, ns, strict=True):
            out.append(d if n == 0 else workdays[bisect.bisect_right(workdays, d) + n - 1])
        return out

    starts = [datetime.combine(d, dtime(9, 0), tzinfo=ZONE) for d in days]
    limits = [TimeLimit(n, "working_days") for n in ns]

    def due() -> list[date]:
        return [compute_due(s, lim).last_day for s, lim in zip(starts, limits, strict=True)]

    unit_limits = {
        "compute_due N days": [TimeLimit(n, "days") for n in ns],
        "compute_due N days (no roll-forward)": [TimeLimit(n, "days", roll_forward=False) for n in ns],
        "compute_due N months": [TimeLimit(n % 13, "months") for n in ns],
        "compute_due N hours": [TimeLimit(n, "hours") for n in ns],
        "compute_due N minutes (next hour)": [TimeLimit(n, "minutes", hour_start="next_hour") for n in ns],
        "compute_due N working days (next workday)": [TimeLimit(n, "working_days", start_day="next_workday")
                                                      for n in ns],
    }

    def by_unit(lims: list[TimeLimit]) -> Callable[[], list[Any]]:
        return lambda: [compute_due(s, lim) for s, lim in zip(starts, lims, strict=True)]

    units: dict[str, Callable[[], list[Any]]] = {name: by_unit(lims) for name, lims in unit_limits.items()}
    unit_legal = {name: [compute_due(s, lim, excluded=iter(())) for s, lim in zip(starts, lims, strict=True)]
                  for name, lims in unit_limits.items()}

    scalar: dict[str, Callable[[], list[date]]] = {
        "caseflow add_working_days": ours, "caseflow compute_due (shared calendar)": due,
        "chinese_calendar.find_workday": find_workday, "day loop over is_workday": day_loop,
        "bisect on a precomputed list": bisect_list,
    }

    vrng = np.random.default_rng(SEED)
    first64 = np.datetime64(FIRST.isoformat(), "D")
    vdays = first64 + vrng.integers(0, (LAST - FIRST).days + 1, size=args.vector)
    vns = vrng.integers(0, MAX_N + 1, size=args.vector)
    vlegal = cal.add_working_days_many(vdays, vns)
    rest_weekdays = np.array([d for d in all_days if d.weekday() < 5 and not chinese_calendar.is_workday(d)],
                             dtype="datetime64[D]")
    cal_np = np.busdaycalendar(weekmask="1111100", holidays=rest_weekdays)
    wd64 = np.array(workdays, dtype="datetime64[D]")

    def v_ours() -> Any:
        return cal.add_working_days_many(vdays, vns)

    def v_busday() -> Any:
        return np.busday_offset(vdays, vns, roll="backward", busdaycal=cal_np)

    def v_search() -> Any:
        idx = np.searchsorted(wd64, vdays, side="right") + vns - 1
        return np.where(vns == 0, vdays, wd64[np.maximum(idx, 0)])

    vector: dict[str, Callable[[], Any]] = {
        "caseflow add_working_days_many": v_ours, "numpy.busday_offset (roll=backward)": v_busday,
        "numpy.searchsorted on the precomputed days": v_search,
    }

    times: dict[str, list[float]] = {name: [] for name in [*scalar, *vector, *units]}
    wrong: dict[str, int] = {}
    order = list(times)
    shuffle = random.Random(SEED + 1)
    for _ in range(args.repeats):
        shuffle.shuffle(order)
        for name in order:
            fn = scalar.get(name) or vector.get(name) or units[name]
            t0 = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - t0)
            if name in units:
                wrong[name] = sum(a.__dict__ != b.__dict__ for a, b in zip(result, unit_legal[name], strict=True))
            elif name in scalar:
                wrong[name] = sum(a != b for a, b in zip(result, legal, strict=True))
            else:
                wrong[name] = int(np.count_nonzero(np.asarray(result) != vlegal))

    def show(names: list[str], count: int, unit: str, scale: float, base: str) -> None:
        base_min = min(times[base])
        for name in names:
            per = [t / count * scale for t in times[name]]
            ratio = min(times[name]) / base_min
            print(f"  {name:<44} min {min(per):9.3f} {unit}  median {statistics.median(per):9.3f} {unit}  "
                  f"({ratio:5.2f}x caseflow's min)  wrong {wrong[name]} of {count}")

    print(f"\nscalar, {args.scalar} inputs, {args.repeats} interleaved passes, time per call:")
    show(list(scalar), args.scalar, "µs", 1e6, "caseflow add_working_days")
    print(f"\ncompute_due by unit, the same {args.scalar} starts (09:00 Beijing time) and amounts, time per call:")
    show(list(units), args.scalar, "µs", 1e6, "caseflow add_working_days")
    print(f"\nvectorised, {args.vector} inputs, {args.repeats} interleaved passes, time per element:")
    show(list(vector), args.vector, "ns", 1e9, "caseflow add_working_days_many")
    zero = sum(n == 0 for n in ns)
    print(f"\n(n = 0 in {zero} of {args.scalar} scalar inputs; start on a rest day in "
          f"{sum(not cal.is_workday(d) for d in days)})")
    print(f"peak RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
