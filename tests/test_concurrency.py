"""Commands queue, they don't race (issue 9): many clients on one case, no expected version.

Each command takes its instant when it holds the case, so clients working on one case at once succeed
one after another: none is refused as "back-dated", every command is applied exactly once and the
case's chain stays contiguous. The clocks here run (from a fixed start, at the real pace), as in an
office, which is what made the old engine refuse commands whose instant was taken before they waited.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from caseflow.calendar import ZONE
from caseflow.clock import FixedClock
from caseflow.engine import Engine
from caseflow.errors import BackdatingError, ConflictError
from caseflow.store import Store
from caseflow.tokens import create_token
from storefixtures import db_url  # noqa: F401 - fixture

T0 = datetime(2026, 9, 30, 9, 0, tzinfo=ZONE)


class RunningClock:
    """T0 plus the real time elapsed since ``base`` (a ``time.time()`` value shared by processes)."""

    def __init__(self, base: float) -> None:
        self.base = base

    def now(self) -> datetime:
        return T0 + timedelta(seconds=time.time() - self.base)


def setup_case(url: str, clock: RunningClock) -> int:
    engine = Engine(Store(url), clock=clock)
    engine.add_person("admin", name="管理员", unit="城关派出所", admin=True)
    engine.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"])
    case_id = engine.open("hukou_transfer", actor="p1").id
    engine.store.dispose()
    return case_id


def assert_each_applied_once(url: str, case_id: int, slips: list[str]) -> None:
    engine = Engine(Store(url), clock=FixedClock(T0 + timedelta(days=1)))
    history = engine.history(case_id)
    assert [e.seq for e in history] == list(range(1, len(history) + 1)), "the chain has a gap"
    recorded = Counter(e.data["slip"] for e in history if e.kind == "hand_over")
    assert recorded == Counter(slips), "a command was lost or applied twice"
    instants = [e.at for e in history]
    assert instants == sorted(instants), "events are out of order"
    assert engine.get(case_id).version == len(history) == 1 + len(slips)
    assert engine.verify_audit() == []
    engine.store.dispose()


def test_sixteen_threads_on_one_case_all_succeed(db_url: str) -> None:  # noqa: F811
    clock = RunningClock(time.time())
    case_id = setup_case(db_url, clock)
    refused: list[Exception] = []
    sent: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        engine = Engine(Store(db_url), clock=clock)
        for i in range(8):
            slip = f"{n}-{i}"
            try:
                engine.hand_over(case_id, to="p1" if (n + i) % 2 else "admin", actor="admin", slip=slip)
            except (BackdatingError, ConflictError) as exc:
                with lock:
                    refused.append(exc)
            else:
                with lock:
                    sent.append(slip)
        engine.store.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused == []
    assert len(sent) == 128
    assert_each_applied_once(db_url, case_id, sent)


def test_an_explicit_expected_version_is_still_refused_when_stale(db_url: str) -> None:  # noqa: F811
    clock = RunningClock(time.time())
    case_id = setup_case(db_url, clock)
    engine = Engine(Store(db_url), clock=clock)
    engine.hand_over(case_id, to="admin", actor="admin", expected_version=1)
    with pytest.raises(ConflictError, match="version 2, not 1"):
        engine.hand_over(case_id, to="p1", actor="admin", expected_version=1)
    engine.store.dispose()


def test_an_explicit_instant_before_the_last_event_is_refused(db_url: str) -> None:  # noqa: F811
    clock = FixedClock(T0)
    engine = Engine(Store(db_url), clock=clock)
    engine.add_person("admin", name="管理员", unit="城关派出所", admin=True)
    engine.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"])
    case = engine.open("hukou_transfer", actor="p1")
    clock.set(T0 + timedelta(hours=2))
    engine.hand_over(case.id, to="admin", actor="admin", at=T0 + timedelta(hours=1))
    with pytest.raises(BackdatingError, match="before the case's last event"):
        engine.hand_over(case.id, to="p1", actor="admin", at=T0 + timedelta(minutes=30))
    # the same instant as the last event is in order, and so is a command without an instant
    engine.hand_over(case.id, to="p1", actor="admin", at=T0 + timedelta(hours=1))
    assert engine.hand_over(case.id, to="admin", actor="admin").version == 4
    engine.store.dispose()


def test_a_lagging_clock_records_its_command_at_the_last_event(tmp_path: Path) -> None:
    """A process whose clock is behind the one that wrote the last event queues its command after it."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    ahead = Engine(Store(url), clock=FixedClock(T0 + timedelta(seconds=5)))
    ahead.add_person("admin", name="管理员", unit="u", admin=True)
    case = ahead.open("hukou_transfer", actor="admin")
    behind = Engine(Store(url), clock=FixedClock(T0))
    after = behind.hand_over(case.id, to="admin", actor="admin")
    assert after.version == 2
    assert behind.history(case.id)[-1].at == T0 + timedelta(seconds=5)
    ahead.store.dispose()
    behind.store.dispose()


def test_eight_processes_on_one_case_all_succeed(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    if not db_url.startswith("postgresql"):
        pytest.skip("several processes share PostgreSQL; threads above cover SQLite's BEGIN IMMEDIATE queue")
    base = time.time()
    case_id = setup_case(db_url, RunningClock(base))
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys, time
        from datetime import datetime, timedelta
        from caseflow.calendar import ZONE
        from caseflow.engine import Engine
        from caseflow.errors import CaseflowError
        from caseflow.store import Store

        class Clock:
            def now(self):
                return datetime(2026, 9, 30, 9, tzinfo=ZONE) + timedelta(seconds=time.time() - {base!r})

        n = int(sys.argv[1])
        engine = Engine(Store({db_url!r}), clock=Clock())
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        done, refused = [], []
        for i in range(10):
            slip = f"{{n}}-{{i}}"
            try:
                engine.hand_over({case_id}, to="p1" if (n + i) % 2 else "admin", actor="admin", slip=slip)
            except CaseflowError as exc:
                refused.append(str(exc))
            else:
                done.append(slip)
        print(json.dumps({{"done": done, "refused": refused}}), flush=True)
    """), encoding="utf-8")
    procs = [subprocess.Popen([sys.executable, str(script), str(n)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for n in range(8)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    refused = [r for res in results for r in res["refused"]]
    assert refused == []
    sent = [s for res in results for s in res["done"]]
    assert len(sent) == 80
    assert_each_applied_once(db_url, case_id, sent)


# ----------------------------------------------------------------------------------------- HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(db_url: str) -> Iterator[tuple[str, dict[str, str], int]]:  # noqa: F811
    import uvicorn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from caseflow.web import create_app

    clock = RunningClock(time.time())
    case_id = setup_case(db_url, clock)
    engine = Engine(Store(db_url), clock=clock)
    token = create_token(engine.store, "admin")
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(engine=engine), host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}, case_id
    srv.should_exit = True
    thread.join(timeout=10)
    engine.store.dispose()


def test_sixteen_http_clients_on_one_case_all_succeed(server: tuple[str, dict[str, str], int],
                                                      db_url: str) -> None:  # noqa: F811
    import httpx

    base, headers, case_id = server
    statuses: list[int] = []
    sent: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            for i in range(8):
                slip = f"{n}-{i}"
                r = http.post(f"/api/v1/cases/{case_id}/hand-over",
                              json={"to": "p1" if (n + i) % 2 else "admin", "slip": slip})
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        sent.append(slip)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(statuses) == Counter({200: 128})
    assert_each_applied_once(db_url, case_id, sent)
