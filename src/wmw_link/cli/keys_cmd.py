"""`wmw-link keys ...`: linkage and row-reference keys (``new``), and party keypairs.

``keys`` is a plain click group so that other modules can add subcommands with
``keys.add_command(...)``; ``new-party`` (party keypairs for sealed transfers) lives in
:mod:`wmw_link.cli.party_keys_cmd` and is attached here.
"""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.agreement import load_agreement
from wmw_link.keys import KEY_BYTES, MIN_KEY_BYTES, new_key


@click.group()
def keys() -> None:
    """Create linkage keys, row-reference keys and party keypairs."""


@keys.command("new")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Key file to create.")
@click.option(
    "--bytes",
    "nbytes",
    type=click.IntRange(min=MIN_KEY_BYTES),
    default=KEY_BYTES,
    show_default=True,
    help="Random bytes in the key.",
)
@click.option(
    "--agreement",
    "agreement_path",
    type=click.Path(path_type=Path),
    help="Also print the key check value this key gives under the agreement (as in manifests).",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing key file (old tokens stop linking)."
)
def new(out: Path, nbytes: int, agreement_path: Path | None, force: bool) -> None:
    """Write a new random key to OUT (mode 0600) and print its key check value.

    Use one key per agreement, shared by every partner, as the linkage key (--key of
    tokenise), and one per controller, kept to itself, as the row-reference key (--ref-key).
    The key itself is never printed.
    """
    rec = runrecord.current()
    agreement = load_agreement(agreement_path) if agreement_path is not None else None
    if agreement is not None:
        rec.set_agreement(agreement)
    key = new_key(out, force=force, nbytes=nbytes)
    click.echo(
        f"key: {out} ({nbytes} bytes, mode 0600; never share it by e-mail or in a repository)"
    )
    click.echo(f"key check value: {key.check_value()}")
    if agreement is not None:
        click.echo(f"key check value for agreement {agreement.id}: {key.check_value(agreement.id)}")


def _attach_optional() -> None:
    # Party keypairs belong to the governance module; attach them when it is present.
    try:
        from wmw_link.cli.party_keys_cmd import new_party
    except ImportError:
        return
    keys.add_command(new_party)


_attach_optional()
