"""`wmw-link audit verify LOG` and `wmw-link audit show LOG`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wmw_link.audit import read_entries, summarise_entry, verify
from wmw_link.errors import VerificationError


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
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Accept a log with no lines (by default an empty log fails: it proves nothing).",
)
def verify_cmd(log: Path, expect_head: str | None, allow_empty: bool) -> None:
    """Check every line's hash and chain; name any edited, removed, inserted or moved line.

    Without --head, lines cut from the end of the log cannot be detected (a shorter chain is
    still a chain): keep the head hash printed here and pass it with --head next time.
    """
    report = verify(log, expect_head=expect_head)
    if report.lines == 0 and not allow_empty:
        # An emptied log would otherwise verify: every line was cut.
        raise VerificationError(
            f"{report.path}: the log is empty: nothing to verify (every line may have been cut; "
            "--allow-empty accepts it)"
        )
    click.echo(f"OK: {report.lines} line(s) verified in {report.path}")
    click.echo(f"head {report.head}")
    if expect_head is None:
        click.echo(
            "note: lines cut from the end are only detected with --head; keep this head hash "
            "elsewhere and pass it next time"
        )


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
