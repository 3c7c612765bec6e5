"""The prompt commands load only what they use; the lazily built calendar answers as the eager one.

Timings are shown by ``benchmarks/bench_cli.py``; these tests pin down the causes of slowness instead:
which libraries a command imports, and that the deferred parts give the very same answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from caseflow.calendar import WorkCalendar
from caseflow.store import shipped_head_revision

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "numpy", "holidays", "alembic", "fastapi", "apscheduler")


def modules_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running ``code``."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def run_cli(*args: str) -> str:
    return ("from click.testing import CliRunner\nfrom caseflow.cli import cli\n"
            f"result = CliRunner().invoke(cli, {list(args)!r})\n"
            "assert result.exit_code == 0, result.output\n")


def test_help_deadline_and_calendar_show_import_no_database_or_projection_library() -> None:
    for args in (["--help"], ["deadline", "2026-10-03T14:00", "20 working_days"], ["calendar", "show", "2026-10"]):
        loaded = modules_after(run_cli(*args))
        assert not loaded & set(HEAVY), (args, sorted(loaded & set(HEAVY)))


def test_the_shipped_holiday_files_are_answered_without_yaml() -> None:
    # Their parsed form (caseflow/holidays_parsed.json) is used while their bytes match it.
    for args in (["deadline", "2026-10-03T14:00", "20 working_days"], ["calendar", "show", "2026-10"]):
        assert "yaml" not in modules_after(run_cli(*args)), args


def test_database_commands_read_the_shipped_workflows_without_yaml(tmp_path: Path) -> None:
    # Their parsed form (caseflow/workflows_parsed.json) answers the shipped texts, on disk and stored.
    from caseflow.engine import Engine
    from caseflow.store import Store

    db = str(tmp_path / "cases.db")
    engine = Engine(Store(db))
    engine.add_person("p1", name="张户籍", unit="城关派出所", roles=["household_police"])
    engine.open("hukou_transfer", actor="p1")
    engine.store.dispose()
    for args in (["case", "show", "1", "--db", db], ["queue", "--person", "p1", "--db", db]):
        assert "yaml" not in modules_after(run_cli(*args)), args


def test_help_loads_no_command_body() -> None:
    # --help lists the commands from their registered summaries: no command module is imported.
    loaded = modules_after(run_cli("--help"))
    assert not loaded & {"yaml", "chinese_calendar", "pendulum", *HEAVY}, sorted(loaded)
    probe = run_cli("--help") + "import sys\nprint(sorted(m for m in sys.modules if m.startswith('caseflow.cli.')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_command_imports_only_its_own_module() -> None:
    probe = (run_cli("deadline", "2026-10-03T14:00", "20 working_days")
             + "import sys\nprint(sorted(m for m in sys.modules if m.startswith('caseflow.cli.')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "['caseflow.cli.common', 'caseflow.cli.deadline']"


def test_the_registered_summaries_are_the_commands_own() -> None:
    import click

    from caseflow.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name, (_module, _attr, summary) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
        assert command.get_short_help_str(limit=500) == summary, (name, "update caseflow.cli.COMMANDS")


def test_import_caseflow_is_light_and_its_names_load_on_use() -> None:
    assert not modules_after("import caseflow") & set(HEAVY)
    assert "sqlalchemy" in modules_after("import caseflow\ncaseflow.Engine")


def test_a_projected_year_is_answered_from_the_shipped_statutory_days_without_the_projection_library() -> None:
    # caseflow/statutory_days.json holds python-holidays' statutory days of every year (checked against the
    # library in tests/test_calendar.py); importing the library and setting up its years cost 0.17 s.
    code = ("from datetime import date\nfrom caseflow.calendar import default_calendar\n"
            "cal = default_calendar()\nassert cal.add_working_days(date(2026, 12, 1), 40) == date(2027, 1, 27)\n"
            "assert cal.describe(date(2027, 10, 1)).reason == '国庆节'\n")
    assert "holidays" not in modules_after(code)


def test_lazy_calendar_answers_as_the_fully_built_one() -> None:
    eager = WorkCalendar.load()
    eager.years  # noqa: B018 - builds every year now
    day = date(2004, 1, 20)
    lazy = WorkCalendar.load()
    samples = []
    while day <= date(2099, 11, 30):
        samples.append(day)
        day += timedelta(days=53)
    # Touch the announced years first, then cross into the projected ones from inside them.
    assert [lazy.add_working_days(date(2026, 12, 20), n) for n in (1, 5, 30, 400)] == \
        [eager.add_working_days(date(2026, 12, 20), n) for n in (1, 5, 30, 400)]
    for d in samples:
        assert lazy.describe(d) == eager.describe(d)
        assert lazy.add_working_days(d, 7) == eager.add_working_days(d, 7)
        assert lazy.add_working_days(d, -3) == eager.add_working_days(d, -3)
    assert lazy.official_until == eager.official_until


def test_shipped_head_revision_is_alembics_head() -> None:
    from pathlib import Path

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import caseflow.store

    config = Config()
    config.set_main_option("script_location", str(Path(caseflow.store.__file__).parent / "migrations"))
    assert shipped_head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_the_cli_copy_of_the_calendar_range_is_the_calendars() -> None:
    from caseflow.calendar import FIRST_YEAR, LAST_YEAR
    from caseflow.cli import calendar as calendar_commands

    assert (calendar_commands._FIRST_YEAR, calendar_commands._LAST_YEAR) == (FIRST_YEAR, LAST_YEAR)
