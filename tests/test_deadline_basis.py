"""``caseflow deadline --timer WORKFLOW.TIMER``: a timer's own limit, counting options and basis.

Issue 8: the explanation cited 刑事诉讼法 第一百零五条 for licensing and hukou limits; each limit cites its own.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from caseflow.cli import cli


def test_a_timer_brings_its_own_limit_options_and_basis() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["deadline", "2026-09-29T10:00", "--timer", "admin_license.decision", "--explain"])
    assert out.exit_code == 0, out.output
    assert "依据 basis     行政许可法 第四十二条第一款" in out.output
    assert "刑事诉讼法" not in out.output
    assert "2026-11-02" in out.output  # 20 working days across National Day
    # The custody timer keeps its no-roll option: 3 days from 09-30 end on the holiday 10-03.
    custody = json.loads(runner.invoke(cli, ["deadline", "2026-09-30T20:00", "--timer",
                                             "criminal_detention.arrest_request", "--json"]).output)
    assert custody["last_day"] == "2026-10-03" and custody["basis"].startswith("刑事诉讼法 第九十一条")


def test_limit_and_timer_are_alternatives() -> None:
    runner = CliRunner()
    both = runner.invoke(cli, ["deadline", "2026-09-29T10:00", "3 days", "--timer", "petition.intake"])
    assert both.exit_code == 2 and "not both" in both.output
    neither = runner.invoke(cli, ["deadline", "2026-09-29T10:00"])
    assert neither.exit_code == 2 and "--timer" in neither.output
    unknown = runner.invoke(cli, ["deadline", "2026-09-29T10:00", "--timer", "petition.nope"])
    assert unknown.exit_code != 0 and "intake" in unknown.output and "Traceback" not in unknown.output
