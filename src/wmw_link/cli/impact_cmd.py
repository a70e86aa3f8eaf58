"""`wmw-link impact`: the analyst estimates the effect of hub support (matched comparison)."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.agreement import Role, load_agreement
from wmw_link.cli._options import agreement_option


@click.command("impact")
@agreement_option("The data-sharing agreement (YAML); its disclosure policy is applied.")
@click.option("--journeys", "journeys_dir", required=True, type=click.Path(path_type=Path),
              help="Directory written by `wmw-link journeys` (journeys-manifest.json required).")  # fmt: skip
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output directory (replaced as a whole; it may hold only an earlier impact output).")  # fmt: skip
@click.option("--from", "first_month", default=None, metavar="YYYY-MM",
              help="First start month of the treated [default: the first hub start].")  # fmt: skip
@click.option("--to", "last_month", default=None, metavar="YYYY-MM",
              help="Last start month [default: the last one followed for 12 months].")  # fmt: skip
@click.option("--lookback", "lookback_months", type=click.IntRange(min=0), default=12, show_default=True,
              help="Comparison people have no hub start in the window nor this many months before it.")  # fmt: skip
@click.option("--bootstrap", type=click.IntRange(min=20), default=200, show_default=True,
              help="Bootstrap replicates for the 95% intervals.")  # fmt: skip
@click.option("--seed", type=click.IntRange(min=0), default=2025, show_default=True,
              help="Seed for pseudo-starts and the bootstrap (same seed, same figures).")  # fmt: skip
@click.option(
    "--as", "party", default=None, help="Your party id (default: the agreement's analyst)."
)
def impact(
    agreement_path: Path,
    journeys_dir: Path,
    out_dir: Path,
    first_month: str | None,
    last_month: str | None,
    lookback_months: int,
    bootstrap: int,
    seed: int,
    party: str | None,
) -> None:
    """Write impact.json, impact-public.json, tables/*.csv, public/*.csv, dashboard.html and
    dashboard-public.html. Suppressed cells read "c"."""  # noqa: D205
    from wmw_link.impact import Settings, Window, estimate_impact

    rec = runrecord.current()
    agreement = load_agreement(agreement_path)
    rec.set_agreement(agreement)
    rec.party = party or agreement.default_party(Role.ANALYST)
    rec.role = Role.ANALYST.value
    rec.add_input(agreement_path)
    for name in ("events.parquet", "persons.parquet", "journeys-manifest.json"):
        if (journeys_dir / name).is_file():
            rec.add_input(journeys_dir / name)
    window = None
    if first_month or last_month:
        window = Window(first_month or "2000-01", last_month or "2999-12")
    result = estimate_impact(
        agreement,
        journeys_dir,
        out_dir,
        party=rec.party,
        window=window,
        lookback_months=lookback_months,
        settings=Settings(bootstrap=bootstrap, seed=seed),
    )
    for rel in result.files:
        rec.add_output(out_dir / rel)
    doc = result.internal
    click.echo(
        f"impact of hub support, starts {result.window.first_month}..{result.window.last_month} "
        f"(data to {result.as_of.isoformat()}):"
    )
    for name, e in doc["outcomes"].items():
        if e["unit"] != "points":
            continue
        if e["estimate"] is None:
            click.echo(f"  {name}: c")
            continue
        click.echo(
            f"  {name}: {e['estimate']:+.1f} points (95% {e['ci_low']:+.1f} to "
            f"{e['ci_high']:+.1f}); naive {e['naive']:+.1f}"
        )
    for w in result.warnings:
        click.echo(f"  warning: {w}")
    click.echo(
        f"wrote {len(result.files)} files to {out_dir} (dashboard: {out_dir / 'dashboard.html'})"
    )
