"""`wmw-link journeys`: the analyst joins payloads to person ids."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link import freshness, runrecord
from wmw_link.agreement import Role, load_agreement
from wmw_link.cli._options import agreement_option
from wmw_link.journeys import build_journeys, input_paths


@click.command("journeys")
@agreement_option()
@click.option("--payloads", "payloads_dir", required=True, type=click.Path(path_type=Path),
              help="Directory of <dataset>.payload.parquet files and their manifests.")  # fmt: skip
@click.option("--maps", "maps_dir", required=True, type=click.Path(path_type=Path),
              help="Directory of the TTP's <dataset>.map.parquet files and its link-manifest.json "
                   "(required: maps it does not list, or from another linkage run, are refused).")  # fmt: skip
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output directory (replaced as a whole once every file is written; it may "
                   "hold only an earlier journeys output).")  # fmt: skip
@click.option(
    "--as", "party", default=None, help="Your party id (default: the agreement's analyst)."
)
@click.option("--districts", type=click.Path(path_type=Path), default=None,
              help="Postcode district -> local authority CSV (default: the packaged table).")  # fmt: skip
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
              envvar=freshness.ENV_VAR, default=freshness.DEFAULT_STATE, show_default=True,
              help="Your delivery state (as for unseal): a payload manifest older than the "
                   "latest delivery accepted for its dataset is refused.")  # fmt: skip
def journeys(
    agreement_path: Path,
    payloads_dir: Path,
    maps_dir: Path,
    out_dir: Path,
    party: str | None,
    districts: Path | None,
    state: Path,
) -> None:
    """Write events.parquet and persons.parquet (one row per person, conflict rules in
    docs/outcomes.md) and journeys-manifest.json. Token files are refused."""  # noqa: D205
    rec = runrecord.current()
    agreement = load_agreement(agreement_path)
    rec.set_agreement(agreement)
    rec.party = party or agreement.default_party(Role.ANALYST)
    rec.role = Role.ANALYST.value
    rec.add_input(agreement_path)
    if payloads_dir.is_dir():  # an older payload put in the folder around unseal
        freshness.check_inputs(state, sorted(payloads_dir.glob("*.manifest.json")))
    result = build_journeys(
        agreement, payloads_dir, maps_dir, out_dir, party=rec.party, districts=districts
    )
    for p in input_paths(payloads_dir, maps_dir):
        rec.add_input(p)
    for name in ("events.parquet", "persons.parquet", "journeys-manifest.json"):
        rec.add_output(out_dir / name)
    rec.rows.update({"events": result.counts["events"], "persons": result.counts["persons"]})
    click.echo(
        f"{result.counts['events']} events of {result.counts['persons']} persons from "
        f"{len(result.counts['datasets'])} datasets (data to {result.as_of.isoformat()})"
    )
    for w in result.warnings:
        click.echo(f"  warning: {w}")
    click.echo(f"wrote {out_dir / 'events.parquet'}, {out_dir / 'persons.parquet'}")
