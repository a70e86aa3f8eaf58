"""`wmw-link evaluate --maps DIR --truth FILE --crosswalks DIR`: score maps on synthetic truth."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.files import write_json_atomic


@click.command("evaluate")
@click.option(
    "--maps",
    "maps_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory of <dataset>.map.parquet files from `wmw-link link`.",
)
@click.option(
    "--truth",
    required=True,
    type=click.Path(path_type=Path),
    help="The synthetic truth (truth/truth.parquet).",
)
@click.option(
    "--crosswalks",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory of the controllers' <dataset>.crosswalk.parquet files.",
)
@click.option(
    "--people",
    type=click.Path(path_type=Path),
    default=None,
    help="people.parquet with household_id (household false-merge rate) and ethnicity, sex "
    "and age (figures by group) "
    "(default: people.parquet beside the truth, when present).",
)
@click.option(
    "--min-join",
    type=click.FloatRange(0.0, 1.0),
    default=0.95,
    show_default=True,
    help="Least share of each dataset's map rows that must be found in the crosswalks, and "
    "of those in the truth; fewer means the inputs do not belong together (refused).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the figures as JSON to this file.",
)
def evaluate(
    maps_dir: Path,
    truth: Path,
    crosswalks: Path,
    people: Path | None,
    min_join: float,
    json_out: Path | None,
) -> None:
    """Pairwise precision, recall and F1 (within and across sources) and cluster figures."""
    from wmw_link.evaluate import evaluate as run_evaluation

    if people is None and (truth.parent / "people.parquet").exists():
        people = truth.parent / "people.parquet"
    rec = runrecord.current()
    for p in sorted(maps_dir.glob("*.map.parquet")):
        rec.add_input(p)
    ev = run_evaluation(maps_dir, truth, crosswalks, people=people, min_join=min_join)
    rec.rows["records_scored"] = ev.records
    click.echo(ev.summary())
    if json_out is not None:
        write_json_atomic(json_out, ev.to_dict())
        rec.add_output(json_out)
