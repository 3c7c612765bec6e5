"""``caseflow stats``: on-time figures by unit, person, workflow or month."""

from __future__ import annotations

import click

from caseflow.cli.common import emit, handle_errors, json_option, open_store, parse_at, store_db_option


@click.command("stats")
@click.option("--month", default=None, metavar="YYYY-MM", help="The month (Beijing time); all months if omitted.")
@click.option("--by", "by", type=click.Choice(["unit", "person", "workflow", "month"]), default="unit",
              show_default=True)
@click.option("--unit", "units", multiple=True, help="Only these units (repeatable).")
@click.option("--at", "at", default=None, metavar="INSTANT",
              help="Answer as things stood at this instant (e.g. 2026-11-04T08:30), rebuilt from the record.")
@click.option("--score", is_flag=True, help="The month's 考评 scorecard per unit and person (needs --month).")
@click.option("--rules", default=None, metavar="FILE", help="The scoring rule sheet (default: the shipped one).")
@click.option("--window", "window", is_flag=True,
              help="The window's figures: 一次办结率, 最多跑一次率, 即办, 第三趟, 好评率, 差评数, 回访率, 整改率.")
@store_db_option
@json_option
@handle_errors
def stats_cmd(month: str | None, by: str, units: tuple[str, ...], at: str | None, score: bool,  # noqa: PLR0917
              rules: str | None, window: bool, db: str | None, as_json: bool) -> None:
    """Cases and steps, statutory and promised limits apart, by unit, person, workflow or month.

    Every table is followed by the definitions of its figures (口径). --json gives the steps' figures.
    Time paused for the applicant or by law (charged_to applicant/law) is not charged to the unit.

    \b
    Example:
        caseflow stats --month 2026-10 --by unit
        caseflow stats --month 2026-10 --by person --json
        caseflow stats --by month --unit 城关派出所
        caseflow stats --month 2026-11 --score
        caseflow stats --month 2026-11 --window
    """
    if score or window:
        _window_stats(month, units, score=score, rules=rules, db=db, as_json=as_json)
        return
    from caseflow.stats import compute_stats, render_stats_text, stats_tables

    store = open_store(db)
    when = parse_at(at)
    if as_json:
        groups = compute_stats(store, month=month, by=by, units=list(units) or None, until=when, now=when)
        emit(as_json, [g.to_dict() for g in groups], "")
        return
    tables = stats_tables(store, month=month, by=by, units=list(units) or None, now=when)
    scope = f"{month} " if month else ""
    from caseflow.calendar import ZONE

    moment = f"截至 {when.astimezone(ZONE):%Y-%m-%d %H:%M}" if when else "截至目前"
    emit(as_json, None, render_stats_text(tables, heading=f"办理时限统计 {scope}{moment}（北京时间）"))


def _window_stats(month: str | None, units: tuple[str, ...], *, score: bool, rules: str | None, db: str | None,
                  as_json: bool) -> None:
    from caseflow.errors import CommandError

    if not month:
        raise CommandError("--score and --window need --month YYYY-MM")
    store = open_store(db)
    unit = units[0] if len(units) == 1 else None
    if score:
        from caseflow.scoring import ScoringRules, scorecard

        card = scorecard(store, month=month, rules=ScoringRules.load(rules), unit=unit)
        emit(as_json, card.to_dict(), card.to_text().rstrip())
        return
    from caseflow.windowstats import window_stats

    rows = window_stats(store, month=month, unit=unit)

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value * 100:.1f}%"

    lines = ["单位 unit\t来访\t告知单\t即办\t受理\t第三趟\t一次办结率\t最多跑一次率\t评价\t好评率\t差评\t回访率"
             "\t整改率"]
    for r in rows:
        d = r.to_dict()
        lines.append("\t".join([r.key, str(r.visits), str(r.notices), str(r.on_the_spot), str(r.accepted),
                                str(r.over_limit_visits), pct(d["first_visit_rate"]), pct(d["at_most_one_trip_rate"]),
                                str(r.ratings), pct(d["good_rate"]), str(r.bad), pct(d["followed_up_rate"]),
                                pct(d["rectified_rate"])]))
    emit(as_json, [r.to_dict() for r in rows], "\n".join(lines))
