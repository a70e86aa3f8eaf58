"""`wmw-link agreement check FILE`."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link.agreement import load_agreement, summarise


@click.group()
def agreement() -> None:
    """Validate and summarise data-sharing agreements."""


@agreement.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def check(file: Path) -> None:
    """Validate FILE and print who sends what to whom."""
    click.echo(summarise(load_agreement(file)))
    click.echo("\nOK: the agreement is valid.")
