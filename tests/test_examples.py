"""Each program in examples/ runs as written against a temporary database."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the `caseflow` script
    return env


def test_embedding_through_the_python_api_opens_advances_and_reads_a_queue(tmp_path: Path) -> None:
    db = str(tmp_path / "backoffice.db")
    argv = [sys.executable, str(EXAMPLES / "embed_python.py"), "--db", db]
    first = subprocess.run(argv, capture_output=True, text=True, check=True, env=environment())
    assert "opened case 1" in first.stdout and "社区民警调查核实" in first.stdout
    # The verification step sits with its assignee, the community police (issue 8), not the clerk.
    assert "p2 queue: case 1 社区民警调查核实" in first.stdout and "p1 queue: empty" in first.stdout
    # Run again, as a retrying back-office would: the keys replay, nothing is opened twice.
    again = subprocess.run(argv, capture_output=True, text=True, check=True, env=environment())
    assert "opened case 1" in again.stdout and "case 2" not in again.stdout


def test_the_http_client_uses_token_etag_if_match_and_idempotency_key(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from caseflow import Engine, Store
    from caseflow.tokens import create_token
    from caseflow.web import create_app

    engine = Engine(Store(str(tmp_path / "http.db")))
    engine.add_person("l1", name="王所长", unit="城关派出所", roles=["station_leader"])
    engine.add_person("p2", name="李社区", unit="城关派出所", roles=["community_police"], leader="l1")
    engine.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"], leader="l1")
    token = create_token(engine.store, "p1")
    spec = importlib.util.spec_from_file_location("http_client_example", EXAMPLES / "http_client.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with TestClient(create_app(engine=engine)) as client:  # an httpx.Client, as the example expects
        example.run(client, token)
    out = capsys.readouterr().out
    assert "opened case 1 (201)" in out
    assert "retry answered 200, Idempotent-Replayed: true, same case True" in out
    assert "a command with the old ETag answers 412" in out
    assert "p2 queue: case 1 社区民警调查核实" in out


def test_the_cron_sweep_runs_once_and_reports(tmp_path: Path) -> None:
    db = str(tmp_path / "cron.db")
    subprocess.run([sys.executable, str(EXAMPLES / "embed_python.py"), "--db", db], check=True,
                   capture_output=True, env=environment())
    done = subprocess.run(["bash", str(EXAMPLES / "cron_sweep.sh")], capture_output=True, text=True,
                          env={**environment(), "CASEFLOW_DB": db}, check=False)
    assert done.returncode == 0, done.stderr
    assert "sweep" in json.loads(done.stdout)
    missing = subprocess.run(["bash", str(EXAMPLES / "cron_sweep.sh")], capture_output=True, text=True,
                             env=environment(), check=False)
    assert missing.returncode != 0 and "CASEFLOW_DB" in missing.stderr
