"""`wmw-link audit verify LOG` and `wmw-link audit show LOG`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.audit import read_entries, summarise_entry, verify
from wmw_link.errors import VerificationError
from wmw_link.party_keys import Keyring, load_secret


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
@click.option(
    "--keyring",
    type=click.Path(path_type=Path),
    envvar="WMW_LINK_KEYRING",
    help="Directory of every party's public key: check the signed checkpoints too, so a "
    "re-chained, spliced or cut log fails without a kept head.",
)
def verify_cmd(log: Path, expect_head: str | None, allow_empty: bool, keyring: Path | None) -> None:
    """Check every line's hash and chain; name any edited, removed, inserted or moved line.

    The chain alone has no key: anyone who can write the log can edit a line and recompute
    every hash after it. With --keyring every checkpoint (a line signed by a party's key) is
    verified, there must be one, and no line recording a data flow may follow the last one.
    Without --keyring or --head, a re-chained log or lines cut from the end go unseen: keep the
    head hash printed here and pass it with --head next time.
    """
    report = verify(log, expect_head=expect_head, keyring=Keyring(keyring) if keyring else None)
    if report.lines == 0 and not allow_empty:
        # An emptied log would otherwise verify: every line was cut.
        raise VerificationError(
            f"{report.path}: the log is empty: nothing to verify (every line may have been cut; "
            "--allow-empty accepts it)"
        )
    click.echo(f"OK: {report.lines} line(s) verified in {report.path}")
    click.echo(f"head {report.head}")
    if keyring is not None:
        click.echo(
            f"{report.checkpoints} signed checkpoint(s) verified; the last is line "
            f"{report.last_checkpoint}"
        )
    elif expect_head is None:
        click.echo(
            "note: lines cut from the end are only detected with --head (or --keyring), and a "
            "re-chained log (lines edited, deleted or inserted, every hash recomputed) only "
            "with --keyring; keep this head hash elsewhere and pass it next time"
        )


@audit.command("checkpoint")
@click.option(
    "--party-secret",
    "--secret",
    "secret_path",
    required=True,
    type=click.Path(path_type=Path),
    envvar="WMW_LINK_PARTY_SECRET",
    help="Your <party>.secret file: its signing key signs the checkpoint.",
)
@click.pass_context
def checkpoint_cmd(ctx: click.Context, secret_path: Path) -> None:
    """Sign the audit log (given by --audit-log) as it stands, with your party key.

    The chain is verified first (a broken log is not signed); this command's own line is the
    checkpoint: an Ed25519 signature over it, which holds the hash of the line before and so
    commits to the whole log. Commands run with a party secret add one automatically.
    """
    from wmw_link.audit import default_log_path

    log = Path(ctx.find_root().params.get("audit_log") or default_log_path())
    secret = load_secret(secret_path)
    rec = runrecord.current()
    rec.party = secret.party
    report = verify(log)
    rec.signer = secret  # the CLI signs this command's line when it appends it
    click.echo(
        f"checkpoint by {secret.party} after line {report.lines} of {log} (head {report.head})"
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
