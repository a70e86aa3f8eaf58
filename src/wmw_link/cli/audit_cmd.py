"""`wmw-link audit verify LOG` and `wmw-link audit show LOG`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wmw_link.audit import read_entries, summarise_entry, verify


@click.group("audit")
def audit() -> None:
    """Inspect and verify the hash-chained audit log."""


@audit.command("verify")
@click.argument("log", type=click.Path(path_type=Path))
@click.option(
    "--head",
    "expect_head",
    help="A head hash kept from an earlier verify: lines cut from the end are caught.",
)
def verify_cmd(log: Path, expect_head: str | None) -> None:
    """Check every line's hash and chain; name any edited, removed, inserted or moved line."""
    report = verify(log, expect_head=expect_head)
    click.echo(f"OK: {report.lines} line(s) verified in {report.path}")
    click.echo(f"head {report.head}")


@audit.command("show")
@click.argument("log", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON lines.")
@click.option("--last", type=int, help="Only the last N lines.")
def show(log: Path, as_json: bool, last: int | None) -> None:
    """Print the log, one line per command (not verified: use 'audit verify')."""
    entries = read_entries(log)
    if last is not None:
        entries = entries[-last:] if last > 0 else []
    for entry in entries:
        click.echo(json.dumps(entry, sort_keys=True) if as_json else summarise_entry(entry))
