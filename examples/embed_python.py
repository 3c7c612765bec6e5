"""A back-office system embedding caseflow through its Python API.

The window's own system records an application; caseflow keeps its time limits. The system opens a
case (with an idempotency key, so a retried request never opens two), advances it as its own workflow
moves, and shows each clerk their queue, most urgent first.

Run it: ``python examples/embed_python.py --db backoffice.db`` (a SQLite file; PostgreSQL URLs work too).
"""

from __future__ import annotations

import argparse
from datetime import datetime

from caseflow import ZONE, Engine, FixedClock, Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="backoffice.db", help="database URL or SQLite file")
    args = parser.parse_args()

    # A fixed clock keeps the example's answers the same every day; a real system omits it (system clock).
    engine = Engine(Store(args.db), clock=FixedClock(datetime(2026, 9, 30, 9, 0, tzinfo=ZONE)))

    # People are set up once (an administrator does this; replace=True keeps the example re-runnable).
    engine.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader"], replace=True)
    engine.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1", replace=True)
    engine.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], leader="l1",
                      substitute="p2", replace=True)

    # 1. Open: the application number of the back-office system is the idempotency key.
    # The clerk states the route at acceptance: this file needs the community police's verification.
    case = engine.open("hukou_transfer", actor="p1", data={"applicant": "李四", "needs_verification": True},
                       key="backoffice:HJ-2026-0001")
    print(f"opened case {case.id} ({case.state_label}), version {case.version}")
    for timer in case.timers:
        print(f"  {timer.label}: 期满 {timer.last_day}")

    # 2. Advance: hand the file to the community police; expected_version refuses a stale screen.
    case = engine.fire(case.id, "hand_over_verification", actor="p1", data={"slip_no": "JB-2026-0001"},
                       expected_version=case.version, key="backoffice:HJ-2026-0001:handover")
    print(f"case {case.id} is now {case.state_label} (version {case.version})")

    # 3. Read a person's queue: the clocks they must act on, most urgent first. The verification step is
    #    the community police's (its timer's assignee), so it sits in p2's queue, not in the clerk's.
    for person in ("p2", "p1"):
        items = engine.queue(person)
        for item in items:
            print(f"  {person} queue: case {item.case_id} {item.label} {item.time_left}")
        if not items:
            print(f"  {person} queue: empty")


if __name__ == "__main__":
    main()
