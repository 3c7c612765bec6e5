"""README.md keeps its promises: two opening commands, and samples that parse."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from caseflow.config import NotifyConfig

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def text() -> str:
    if not README.is_file():
        pytest.skip("README.md is not beside the tests (installed package)")
    return README.read_text(encoding="utf-8")


def test_the_first_block_holds_the_demo_and_the_test_commands(text: str) -> None:
    block = re.search(r"```\n(.*?)```", text, re.S)
    assert block is not None
    lines = block.group(1).strip().splitlines()
    assert len(lines) == 2
    assert "caseflow demo" in lines[0] and "pytest" in lines[1]


def test_the_configuration_sample_is_valid(text: str) -> None:
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    config = NotifyConfig.from_dict(tomllib.loads(block.group(1)), path="README.md")
    assert config.people["wang"].channel == "wecom"


# ------------------------------------------------------------------------------ README, line by line


def runnable_blocks(text: str) -> list[tuple[str, str, int]]:
    """The ``console`` and ``python`` blocks of README.md in order: (kind, body, line)."""
    blocks = []
    for match in re.finditer(r"^```(console|python)\n(.*?)^```", text, re.S | re.M):
        blocks.append((match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1))
    return blocks


def console_script(body: str) -> str:
    """The ``$ `` commands of a console block (with their ``\\`` continuations) as one bash script."""
    commands: list[str] = []
    continuing = False
    for line in body.splitlines():
        if continuing:
            commands[-1] += "\n" + line
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue  # output shown in the README
        continuing = line.rstrip().endswith("\\")
    return "\n".join(commands)


def test_every_console_and_python_block_runs_in_order_in_a_fresh_directory(
        text: str, tmp_path: Path) -> None:
    """What a new user types, in README's order, in an empty directory, after line 1 of the first block."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Line 1 of the first block has installed caseflow (this test runs it from the source under test).
    first = re.search(r"```\n(.*?)```", text, re.S)
    assert first is not None
    demo = first.group(1).strip().splitlines()[0].split("&&")[-1].strip()
    assert demo.startswith("caseflow demo")
    subprocess.run(["bash", "-c", demo], cwd=tmp_path, env=env, check=True, stdout=subprocess.DEVNULL)
    blocks = runnable_blocks(text)
    assert blocks, "README.md has no console or python block"
    for kind, body, line in blocks:
        if kind == "console":
            # One shell per block: variables carry from line to line; servers started with & are stopped.
            script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + console_script(body)
            done = subprocess.run(["bash", "-c", script], check=False, cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=600)
        else:
            done = subprocess.run([sys.executable, "-c", body], check=False, cwd=tmp_path, env=env,
                                  capture_output=True,
                                  text=True, timeout=600)
        assert done.returncode == 0, (f"README.md line {line}: the {kind} block failed\n{body}\n"
                                      f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
