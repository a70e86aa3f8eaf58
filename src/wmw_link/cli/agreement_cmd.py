"""`wmw-link agreement check FILE`."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.agreement import load_agreement, summarise
from wmw_link.errors import PolicyError


@click.group()
def agreement() -> None:
    """Validate and summarise data-sharing agreements."""


@agreement.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def check(file: Path) -> None:
    """Validate FILE, print who sends what to whom, and say whether it is in force today.

    Exits 1 when the file is invalid (every problem listed, each naming its field) or when it
    is valid but outside its validity dates, since no command will act under it then.
    """
    a = load_agreement(file)
    rec = runrecord.current()
    rec.set_agreement(a)
    rec.add_input(file)
    click.echo(summarise(a))
    try:
        a.require_in_force()
    except PolicyError as e:
        raise click.ClickException(f"the agreement is valid but not in force: {e}") from None
    click.echo("\nOK: the agreement is valid and in force today.")
