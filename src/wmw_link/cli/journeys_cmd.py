"""`wmw-link journeys`: the analyst joins payloads to person ids."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wmw_link import freshness, runrecord
from wmw_link.agreement import Role, load_agreement
from wmw_link.cli._options import agreement_option
from wmw_link.journeys import build_journeys


def latest_manifests(folders: tuple[Path, ...]) -> list[Path]:
    """Each dataset's newest payload manifest over the folders (by its delivery number).

    The delivery state remembers only the latest delivery accepted per dataset, so earlier
    deliveries (kept to accumulate journeys) are not checked against it; the newest one is.
    """
    newest: dict[str, tuple[int, Path]] = {}
    for folder in folders:
        if not folder.is_dir():
            continue  # build_journeys names the missing folder
        for path in sorted(folder.glob("*.manifest.json")):
            try:
                man = json.loads(path.read_text(encoding="utf-8"))
                key, number = str(man["dataset"]), man.get("delivery")
            except (OSError, ValueError, KeyError, TypeError):
                newest.setdefault(path.name, (-1, path))  # the checks refuse it, naming the rule
                continue
            number = number if isinstance(number, int) else -1
            if key not in newest or number >= newest[key][0]:
                newest[key] = (number, path)
    return [p for _, p in newest.values()]


@click.command("journeys")
@agreement_option()
@click.option("--payloads", "payloads_dirs", required=True, multiple=True,
              type=click.Path(path_type=Path),
              help="Directory of <dataset>.payload.parquet files and their manifests; repeat it "
                   "for each delivery (a later delivery's row replaces a re-sent one).")  # fmt: skip
@click.option("--maps", "maps_dirs", required=True, multiple=True,
              type=click.Path(path_type=Path),
              help="Directory of the TTP's <dataset>.map.parquet files and its link-manifest.json "
                   "(required: maps it does not list, or from another linkage run, are refused); "
                   "repeat it for each link run of a person index (applied in delivery order, "
                   "with each run's id-changes.parquet).")  # fmt: skip
@click.option("--withdrawals", "withdrawal_files", multiple=True,
              type=click.Path(path_type=Path),
              help="A controller's withdrawal list (<dataset>.withdrawals.parquet beside its "
                   "manifest; wmw-link withdraw): those records leave events and persons. "
                   "Repeatable.")  # fmt: skip
@click.option("--keyring", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the parties' public keys: check each withdrawal list's "
                   "signature by its dataset's controller.")  # fmt: skip
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
    payloads_dirs: tuple[Path, ...],
    maps_dirs: tuple[Path, ...],
    withdrawal_files: tuple[Path, ...],
    keyring: Path | None,
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
    freshness.check_inputs(state, latest_manifests(payloads_dirs))
    several = len(payloads_dirs) > 1 or len(maps_dirs) > 1
    result = build_journeys(
        agreement,
        list(payloads_dirs) if several else payloads_dirs[0],
        list(maps_dirs) if several else maps_dirs[0],
        out_dir,
        party=rec.party,
        districts=districts,
        withdrawals=withdrawal_files,
        keyring=keyring,
    )
    for p in result.inputs:
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
    if result.refreshes and (several or result.refreshes[-1]["delivery"] is not None):
        at = result.as_at
        click.echo(
            f"  as at delivery {at['delivery']} ({at['as_at'] or 'no date'}), "
            f"{len(result.refreshes)} link run(s) applied"
        )
    for w in result.withdrawals:
        click.echo(f"  withdrawals: {w['rows']} {w['dataset']} record(s) from {w['file']}")
    click.echo(f"wrote {out_dir / 'events.parquet'}, {out_dir / 'persons.parquet'}")
