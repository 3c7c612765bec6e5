"""``caseflow report``: the monthly 台账 (ledger) as an .xlsx file."""

from __future__ import annotations

from pathlib import Path

import click

from caseflow.cli.common import emit, handle_errors, json_option, open_store, store_db_option


@click.group("report")
def report_group() -> None:
    """Reports: the monthly ledger (台账) of a unit.

    \b
    Example:
        caseflow report ledger --unit 城关派出所 --month 2026-10 --xlsx ledger-2026-10.xlsx
    """

@report_group.command("ledger")
@click.option("--unit", required=True, help="The unit.")
@click.option("--month", required=True, metavar="YYYY-MM", help="The month (Beijing time).")
@click.option("--xlsx", "xlsx", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Where to write the workbook.")
@store_db_option
@json_option
@handle_errors
def report_ledger(unit: str, month: str, xlsx: Path, db: str | None, as_json: bool) -> None:
    """Write a unit's ledger (台账) for a month: one row per case with dates, limits, status, people.

    \b
    Example:
        caseflow report ledger --unit 城关派出所 --month 2026-10 --xlsx ledger-2026-10.xlsx
    """
    from caseflow.scoring import scorecard
    from caseflow.stats import ledger_rows, write_ledger

    store = open_store(db)
    rows = ledger_rows(store, unit, month)
    path = write_ledger(rows, xlsx, unit=unit, month=month, score=scorecard(store, month=month, unit=unit).to_dict())
    emit(as_json, {"file": str(path), "unit": unit, "month": month, "cases": len(rows)},
          f"{path}: {len(rows)} case(s) of {unit} in {month}")

