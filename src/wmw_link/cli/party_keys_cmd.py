"""`wmw-link keys new-party --party ID --out DIR`: a party's signing and encryption keypair."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.agreement import load_agreement
from wmw_link.party_keys import new_party as _new_party
from wmw_link.party_keys import public_path, secret_path


@click.command("new-party")
@click.option("--party", required=True, help="The party id, as the agreement names it.")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Directory for both files."
)
@click.option(
    "--agreement",
    "agreement_path",
    type=click.Path(path_type=Path),
    help="Refuse a party id this agreement does not name.",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing secret (old sealed files become unreadable)."
)
def new_party(party: str, out: Path, agreement_path: Path | None, force: bool) -> None:
    """Write <party>.secret (0600, keep it) and <party>.public.json (share it: the keyring)."""
    rec = runrecord.current()
    rec.party = party
    if agreement_path is not None:
        agreement = load_agreement(agreement_path)
        rec.set_agreement(agreement)
        rec.role = agreement.party(party).role.value
    else:
        # Keys for a mistyped or unknown party are harmless but useless; say it was not checked.
        click.echo(
            f"warning: party '{party}' was not checked against any agreement (no --agreement); "
            "give --agreement to refuse a party id the agreement does not name",
            err=True,
        )
    public = _new_party(party, out, force=force)
    rec.add_output(public_path(out, party))
    click.echo(f"secret: {secret_path(out, party)} (mode 0600; never share it)")
    click.echo(f"public: {public_path(out, party)} (copy it into every party's keyring)")
    click.echo(f"fingerprint: {public.fingerprint}")
