"""README.md keeps its promises: two opening commands, and samples that parse."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from caseflow.notify import NotifyConfig

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
