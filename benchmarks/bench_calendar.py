"""How fast caseflow adds working days, and how often the obvious alternatives get the answer wrong.

Run it as ``python benchmarks/bench_calendar.py`` (figures only, no assertions). Every method gets the
same seeded random inputs: start dates uniform in 2025-01-01..2026-06-30 and n uniform in 1..30.

1. Scalar: ``WorkCalendar.add_working_days`` against ``chinese_calendar.find_workday(n, d)``, which
   loops day by day and first rolls a non-working start forward to a working day that it counts as
   day 0 (DESIGN.md, "The start day does not count": one working day late for such starts).
2. Vectorised: ``WorkCalendar.add_working_days_many`` against ``numpy.busday_offset`` given
   chinese-calendar's rest weekdays as holidays. numpy cannot express make-up working days (调休上班
   Saturdays and Sundays). With ``roll='forward'`` it also repeats find_workday's start-day mistake;
   ``roll='backward'`` (a non-working start rolls back to the previous working day, then +n) is the
   fairest reading of the legal rule, so both are timed and both are checked.

"Legal" answers are caseflow's; the script also re-derives them from chinese-calendar on the scalar
sample (``find_workday(n - 1, d)`` when ``d`` does not work) to show they agree.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from importlib.metadata import version
from typing import Any

import chinese_calendar
import numpy as np

from caseflow.calendar import default_calendar

SEED = 20261009
FIRST, LAST = np.datetime64("2025-01-01"), np.datetime64("2026-06-30")
N_OURS_SCALAR = 1_000_000
N_CC_SCALAR = 3_000
N_VECTOR = 1_000_000
REPEATS_SCALAR = 3
REPEATS_VECTOR = 5

SCALAR_TARGET = 1000.0  # × chinese-calendar's calls/s
VECTOR_TARGET = 1.5  # × numpy's rate
VECTOR_SECONDS = 0.2  # for 1 M inputs


def inputs(count: int, seed: int = SEED) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    span = int((LAST - FIRST).astype(int)) + 1
    days = FIRST + rng.integers(0, span, count)
    ns = rng.integers(1, 31, count)
    return days.astype("datetime64[D]"), ns.astype(np.int64)


def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def rate(count: int, seconds: float) -> str:
    per_second = count / seconds
    if per_second >= 1e6:
        return f"{per_second / 1e6:,.2f} M/s"
    return f"{per_second:,.0f} /s"


def share(wrong: int, total: int) -> str:
    return f"{wrong:,} ({100 * wrong / total:.1f}%)"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = [False] + [True] * (len(headers) - 1)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right,
                                                                                       strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right, strict=True)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def rest_weekdays(first: date, last: date) -> np.ndarray[Any, Any]:
    """Weekdays chinese-calendar says do not work: numpy's ``holidays`` (it has no make-up days)."""
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return np.array([d for d in days if d.weekday() < 5 and not chinese_calendar.is_workday(d)],
                    dtype="datetime64[D]")


def main() -> None:
    t0 = time.perf_counter()
    cal = default_calendar()
    build = time.perf_counter() - t0

    print("caseflow working-day arithmetic benchmark")
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}; "
          f"numpy {np.__version__}; chinese-calendar {version('chinese-calendar')}")
    print(f"inputs: seed {SEED}, start dates uniform in {FIRST}..{LAST}, n uniform in 1..30")
    print(f"calendar build (default_calendar, 2004-2099): {build:.3f} s")
    print()

    # ------------------------------------------------------------------ (1) scalar
    days, ns = inputs(N_OURS_SCALAR)
    day_list: list[date] = days.tolist()
    n_list: list[int] = ns.tolist()
    add = cal.add_working_days

    def ours_loop() -> None:
        for d, n in zip(day_list, n_list, strict=True):
            add(d, n)

    ours_s, _ = best_of(REPEATS_SCALAR, ours_loop)
    ours_answers = [add(d, n) for d, n in zip(day_list, n_list, strict=True)]

    cc_days, cc_ns = day_list[:N_CC_SCALAR], n_list[:N_CC_SCALAR]
    find = chinese_calendar.find_workday
    t0 = time.perf_counter()
    cc_answers = [find(n, d) for d, n in zip(cc_days, cc_ns, strict=True)]
    cc_s = time.perf_counter() - t0

    cc_wrong = sum(a != b for a, b in zip(cc_answers, ours_answers, strict=False))
    non_working = sum(not chinese_calendar.is_workday(d) for d in cc_days)
    late_by_one = sum(
        not chinese_calendar.is_workday(d) and a == cal.next_workday(b)
        for d, a, b in zip(cc_days, cc_answers, ours_answers, strict=False)
    )
    # The legal count re-derived with chinese-calendar: a non-working start is itself not day 0.
    legal_cc = [find(n if chinese_calendar.is_workday(d) else n - 1, d) for d, n in zip(cc_days, cc_ns, strict=True)]
    ours_vs_legal_cc = sum(a != b for a, b in zip(legal_cc, ours_answers, strict=False))

    ours_rate, cc_rate = N_OURS_SCALAR / ours_s, N_CC_SCALAR / cc_s
    speedup = ours_rate / cc_rate
    print("(1) scalar: one (start, n) at a time")
    print(table(
        ["method", "calls", "seconds", "rate", "answers differing from caseflow"],
        [
            [f"caseflow add_working_days (best of {REPEATS_SCALAR})", f"{N_OURS_SCALAR:,}", f"{ours_s:.3f}",
             rate(N_OURS_SCALAR, ours_s), "-"],
            ["chinese_calendar.find_workday(n, d)", f"{N_CC_SCALAR:,}", f"{cc_s:.3f}", rate(N_CC_SCALAR, cc_s),
             share(cc_wrong, N_CC_SCALAR)],
        ],
    ))
    print(f"speed-up: {speedup:,.0f}x chinese-calendar's calls/s "
          f"(target >= {SCALAR_TARGET:,.0f}x: {'met' if speedup >= SCALAR_TARGET else 'MISSED'})")
    print(f"find_workday: {non_working:,} of {N_CC_SCALAR:,} starts ({100 * non_working / N_CC_SCALAR:.1f}%) are "
          f"non-working days; {late_by_one:,} of its {cc_wrong:,} wrong answers are exactly one working day "
          "late from such a start (it counts the rolled-forward start as day 0)")
    print(f"caseflow vs the legal count re-derived from chinese-calendar on the same {N_CC_SCALAR:,} inputs: "
          f"{ours_vs_legal_cc} disagreements")
    print()

    # ------------------------------------------------------------------ (2) vectorised
    vdays, vns = days[:N_VECTOR], ns[:N_VECTOR]  # the same inputs as the scalar run
    holidays = rest_weekdays(date(2024, 1, 1), date(2026, 12, 31))
    busdaycal = np.busdaycalendar(weekmask="1111100", holidays=holidays)

    runs: list[tuple[str, Callable[[], Any]]] = [
        ("caseflow add_working_days_many", lambda: cal.add_working_days_many(vdays, vns)),
        ("numpy busday_offset roll='forward', holidays=", lambda: np.busday_offset(vdays, vns, roll="forward",
                                                                                   holidays=holidays)),
        ("numpy busday_offset roll='backward', holidays=", lambda: np.busday_offset(vdays, vns, roll="backward",
                                                                                    holidays=holidays)),
        ("numpy busday_offset roll='backward', busdaycal=", lambda: np.busday_offset(vdays, vns, roll="backward",
                                                                                     busdaycal=busdaycal)),
    ]
    timings: dict[str, float] = {}
    results: dict[str, np.ndarray[Any, Any]] = {}
    for name, fn in runs:
        seconds, out = best_of(REPEATS_VECTOR, fn)
        timings[name], results[name] = seconds, np.asarray(out)

    ours_name = runs[0][0]
    ours_v = results[ours_name]
    scalar_check = ours_v != np.array(ours_answers[:N_VECTOR], dtype="datetime64[D]")
    rows = []
    for name, _ in runs:
        wrong = int(np.count_nonzero(results[name] != ours_v))
        rows.append([f"{name}", f"{N_VECTOR:,}", f"{timings[name]:.4f}", rate(N_VECTOR, timings[name]),
                     "-" if name == ours_name else share(wrong, N_VECTOR)])
    print(f"(2) vectorised: {N_VECTOR:,} inputs at once (best of {REPEATS_VECTOR})")
    print(table(["method", "inputs", "seconds", "rate", "answers differing from caseflow"], rows))
    fastest_numpy = min(t for name, t in timings.items() if name != ours_name)
    ratio = fastest_numpy / timings[ours_name]
    ours_v_s = timings[ours_name]
    print(f"caseflow vs the fastest numpy variant: {ratio:.2f}x its rate (target >= {VECTOR_TARGET}x: "
          f"{'met' if ratio >= VECTOR_TARGET else 'MISSED'}); 1 M inputs in {ours_v_s:.4f} s "
          f"(target < {VECTOR_SECONDS} s: {'met' if ours_v_s < VECTOR_SECONDS else 'MISSED'})")
    print(f"caseflow vectorised vs caseflow scalar on the same inputs: {int(np.count_nonzero(scalar_check))} "
          "disagreements")
    fair = results["numpy busday_offset roll='backward', holidays="]
    wrong_fair = fair != ours_v
    crosses_makeup = _spans_make_up_day(cal, vdays[wrong_fair], ours_v[wrong_fair])
    print(f"numpy roll='backward' errors spanning a make-up working day (调休上班): "
          f"{crosses_makeup:,} of {int(np.count_nonzero(wrong_fair)):,}")


def _spans_make_up_day(cal: Any, starts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any]) -> int:
    """How many (start, end] spans contain a weekend day that works."""
    make_up = np.array(sorted(d for y in (2025, 2026) for d in cal.years[y].workdays), dtype="datetime64[D]")
    lo = np.searchsorted(make_up, starts, side="right")
    hi = np.searchsorted(make_up, ends, side="right")
    return int(np.count_nonzero(hi > lo))


if __name__ == "__main__":
    sys.exit(main())
