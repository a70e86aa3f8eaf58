"""`wmw-link outcomes`: the analyst measures outcomes, with disclosure control and dashboards."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.agreement import Role, load_agreement
from wmw_link.cli._options import agreement_option
from wmw_link.errors import ConfigError
from wmw_link.outcomes import PRESETS, get_rule, measure_outcomes


@click.command("outcomes")
@agreement_option("The data-sharing agreement (YAML); its disclosure policy is applied.")
@click.option("--journeys", "journeys_dir", required=True, type=click.Path(path_type=Path),
              help="Directory written by `wmw-link journeys` (events.parquet, persons.parquet "
                   "and journeys-manifest.json, which is required).")  # fmt: skip
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output directory (replaced as a whole once every file is written; it may "
                   "hold only an earlier outcomes output).")  # fmt: skip
@click.option("--rule", type=click.Choice(sorted(PRESETS)), default="dfe_5_of_6_months", show_default=True,
              help="Headline sustained-employment rule (every preset is measured).")  # fmt: skip
@click.option("--rule-param", "rule_params", multiple=True, metavar="KEY=VALUE",
              help="Change a parameter of the headline rule, e.g. min_months=4 or hours_per_week=20.")  # fmt: skip
@click.option(
    "--as", "party", default=None, help="Your party id (default: the agreement's analyst)."
)
@click.option("--previous", "previous", multiple=True, type=click.Path(path_type=Path),
              help="An earlier outcomes output folder (repeatable): its published headline "
                   "figures go beside this run's in across_refreshes.csv and the dashboards' "
                   "'Across refreshes' section (same rule and disclosure parameters required).")  # fmt: skip
@click.option("--bias-threshold", type=float, default=10.0, show_default=True,
              help="Warn when two groups' link rates differ by more than this many points.")  # fmt: skip
def outcomes(
    agreement_path: Path,
    journeys_dir: Path,
    out_dir: Path,
    rule: str,
    rule_params: tuple[str, ...],
    party: str | None,
    previous: tuple[Path, ...],
    bias_threshold: float,
) -> None:
    """Write tables/*.csv (internal tier), public/*.csv (public tier), dashboard.html,
    dashboard-public.html and outcomes-manifest.json. Suppressed cells read "c"."""  # noqa: D205
    rec = runrecord.current()
    agreement = load_agreement(agreement_path)
    rec.set_agreement(agreement)
    rec.party = party or agreement.default_party(Role.ANALYST)
    rec.role = Role.ANALYST.value
    rec.add_input(agreement_path)
    for name in ("events.parquet", "persons.parquet", "journeys-manifest.json"):
        if (journeys_dir / name).is_file():
            rec.add_input(journeys_dir / name)
    result = measure_outcomes(
        agreement,
        journeys_dir,
        out_dir,
        rule=get_rule(rule, **_parse_params(rule_params)),
        party=rec.party,
        bias_threshold_pp=bias_threshold,
        previous=previous,
    )
    for p in previous:
        rec.add_input(p / "outcomes-manifest.json")
    for rel in result.files:
        rec.add_output(out_dir / rel)
    rec.add_output(out_dir / "outcomes-manifest.json")
    rec.rows["table_cells"] = len(result.internal)
    head = result.headline()

    def pct(m: str) -> str:
        v = head.get(m)
        return "c" if v is None else f"{v:.1f}%"

    at = result.refresh
    as_at = (
        f"as at delivery {at['delivery']} ({str(at.get('as_at') or '')[:10] or 'no date'}), "
        if at.get("delivery") is not None
        else ""
    )
    click.echo(f"outcomes {as_at}data to {result.as_of.isoformat()} (rule {result.rule}):")
    click.echo(
        f"  sustained employment at 6 / 12 months: {pct(f'sustained_{result.rule}_6m')} / {pct(f'sustained_{result.rule}_12m')}"
    )
    click.echo(
        f"  in work at start -> 12 months on: {pct('employed_at_start_12m')} -> {pct('employed_at_12m')}"
    )
    click.echo(
        f"  employment rate proxy: {pct('employment_rate')}; linked to another source: {pct('linked_to_other_source')}"
    )
    if result.across:
        n = result.across["internal"][["delivery", "as_at", "data_to"]].drop_duplicates()
        click.echo(f"  headline measures across {len(n)} refreshes: tables/across_refreshes.csv")
    for w in result.warnings:
        click.echo(f"  warning: {w}")
    click.echo(
        f"wrote {len(result.files)} files to {out_dir} (dashboard: {out_dir / 'dashboard.html'})"
    )


def _parse_params(items: tuple[str, ...]) -> dict[str, int | float]:
    out: dict[str, int | float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--rule-param {item!r}: expected KEY=VALUE")
        try:
            out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            raise ConfigError(f"--rule-param {key}: {value!r} is not a number") from None
    return out
