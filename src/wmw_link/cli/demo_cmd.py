"""`wmw-link demo`: the whole pipeline on synthetic data."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link.demo import run_demo


@click.command()
@click.option("--people", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="Synthetic residents to generate.")  # fmt: skip
@click.option("--seed", type=click.IntRange(min=0), default=42, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True,
              help="Output folder (an earlier demo there is replaced).")  # fmt: skip
@click.option(
    "--backend", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True
)
@click.option("--agreement", type=click.Path(path_type=Path), default=None,
              help="Agreement file (default: agreements/wmw-outcomes.yaml).")  # fmt: skip
@click.option("--deliveries", type=click.IntRange(min=1, max=33), default=3, show_default=True,
              help="Monthly deliveries: the initial load, then one a month, each linked "
                   "against the person index and refreshing journeys and outcomes.")  # fmt: skip
def demo(
    people: int, seed: int, out: Path, backend: str, agreement: Path | None, deliveries: int
) -> None:
    """Run every party's commands on a synthetic West Midlands, end to end.

    Generates the region in monthly deliveries and makes keys; for each delivery the
    controllers tokenise and seal their extracts, the trusted third party links it against its
    person index, and the analysts refresh journeys and outcomes (with disclosure control and
    the headline measures across refreshes); then scores the linkage against the synthetic
    truth and verifies the audit log.
    """
    run_demo(
        out, people=people, seed=seed, backend=backend, agreement=agreement, deliveries=deliveries
    )
