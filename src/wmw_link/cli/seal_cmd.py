"""`wmw-link seal` and `wmw-link unseal`: sealed transfers between the parties of an agreement."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wmw_link import freshness, runrecord
from wmw_link.agreement import Agreement, load_agreement
from wmw_link.errors import ConfigError
from wmw_link.party_keys import PartySecret, load_secret
from wmw_link.seal import seal_file, seal_outputs, unseal_all, unseal_file

_agreement_opt = click.option(
    "--agreement",
    "agreement_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The data-sharing agreement the transfer happens under.",
)
_keyring_opt = click.option(
    "--keyring",
    required=True,
    type=click.Path(path_type=Path),
    envvar="WMW_LINK_KEYRING",
    help="Directory of every party's <party>.public.json.",
)
_secret_opt = click.option(
    "--secret",
    "--party-secret",
    "secret_path",
    required=True,
    type=click.Path(path_type=Path),
    envvar="WMW_LINK_PARTY_SECRET",
    help="Your <party>.secret file (mode 0600).",
)
_state_opt = click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=freshness.ENV_VAR,
    default=freshness.DEFAULT_STATE,
    show_default=True,
    help="Your delivery state: the latest delivery accepted per dataset (env WMW_LINK_STATE).",
)


def _own_secret(secret_path: Path, party: str | None, flag: str) -> PartySecret:
    secret = load_secret(secret_path)
    if party is not None and party != secret.party:
        raise ConfigError(
            f"{secret_path}: this secret belongs to '{secret.party}', not to {flag} '{party}'"
        )
    return secret


@click.command("seal")
@click.argument("file", type=click.Path(path_type=Path))
@_agreement_opt
@click.option("--from", "sender", help="Your party id (default: the secret's party).")
@_secret_opt
@click.option("--to", "recipient", required=True, help="The recipient party id.")
@_keyring_opt
@click.option("--out", type=click.Path(path_type=Path), help="Sealed file (default FILE.sealed).")
@click.option(
    "--delivery",
    type=click.IntRange(min=1),
    help="Delivery number of a file no manifest numbers (maps, link manifest). Tokens and "
    "payload take theirs from the manifest beside them.",
)
def seal(
    file: Path,
    agreement_path: Path,
    sender: str | None,
    secret_path: Path,
    recipient: str,
    keyring: Path,
    out: Path | None,
    delivery: int | None,
) -> None:
    """Encrypt FILE to a party and sign it, if the agreement allows the transfer.

    FILE's name says what it is (<dataset>.tokens.parquet to the TTP, <dataset>.payload.parquet
    to the analysts, <dataset>.map.parquet from the TTP to the analysts, manifests).
    """
    agreement = load_agreement(agreement_path)
    rec = runrecord.current()
    rec.set_agreement(agreement)
    secret = _own_secret(secret_path, sender, "--from")
    rec.party, rec.role = secret.party, agreement.party(secret.party).role.value
    rec.signer = secret  # this command's audit line is a signed checkpoint
    result = seal_file(
        file, agreement=agreement, secret=secret, recipient=recipient, keyring=keyring, out=out,
        delivery=delivery, require_delivery=True,
    )  # fmt: skip
    env = result.envelope
    click.echo(
        f"sealed {file.name} ({env['file']['kind']}, {env['file']['size']} bytes) from "
        f"{env['sender']} to {env['recipient']} under {agreement.id} v{agreement.version}: {result.path}"
    )


@click.command("unseal")
@click.argument("sealed", type=click.Path(path_type=Path))  # a file, or an inbox directory
@_agreement_opt
@click.option("--as", "party", help="Your party id (default: the secret's party).")
@_secret_opt
@_keyring_opt
@click.option(
    "--out",
    required=True,
    # A str, not a Path: a trailing slash ("inbox/") must survive to mean a directory.
    type=click.Path(),
    help="Directory (made if missing), or a path with the file's original name. A path that "
    "ends with '/', or does not exist and has no suffix (inbox), is a directory.",
)
@click.option("--from", "sender", help="Refuse the file unless this party sent it.")
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    help="A manifest that must list the file with the same SHA-256.",
)
@_state_opt
@click.option(
    "--accept-older",
    is_flag=True,
    help="Accept a delivery older than (or conflicting with) the latest accepted one; the "
    "audit log records that you did.",
)
def unseal(
    sealed: Path,
    agreement_path: Path,
    party: str | None,
    secret_path: Path,
    keyring: Path,
    out: str,
    sender: str | None,
    manifest: Path | None,
    state: Path,
    accept_older: bool,
) -> None:
    """Verify SEALED (signature, recipient, agreement, flow, hashes) and decrypt it.

    SEALED may be a directory (an inbox): every *.sealed file in it is unsealed into the --out
    directory, manifests first, and each data file is checked against its manifest there. For
    one file, --out inbox/ (or a new path without a suffix) is a directory too, made if missing.
    Nothing is written for a file unless every check passes, and for an inbox unless every
    file passes; a refusal names the failed check. A delivery older than the latest one
    accepted for its dataset (--state) is refused unless --accept-older is given.
    """
    agreement = load_agreement(agreement_path)
    rec = runrecord.current()
    rec.set_agreement(agreement)
    secret = _own_secret(secret_path, party, "--as")
    rec.party, rec.role = secret.party, agreement.party(secret.party).role.value
    rec.signer = secret  # this command's audit line is a signed checkpoint
    fresh = {"state": state, "accept_older": accept_older}
    if sealed.is_dir():
        if manifest is not None:
            raise ConfigError("--manifest is for one file; an inbox uses the manifests it holds")
        results = unseal_all(
            sealed, agreement=agreement, secret=secret, keyring=keyring, out_dir=out,
            expect_sender=sender, **fresh,
        )  # fmt: skip
        if not results:
            raise ConfigError(f"{sealed}: no *.sealed files in this directory")
    else:
        results = [
            unseal_file(
                sealed,
                agreement=agreement,
                secret=secret,
                keyring=keyring,
                out=out,
                expect_sender=sender,
                manifest=manifest,
                **fresh,
            )  # fmt: skip
        ]
    for result in results:
        click.echo(
            f"unsealed {result.path.name} from {result.envelope['sender']}: {result.path} "
            f"(checks passed: {', '.join(result.checks)})"
        )


# -- --seal-to for other commands (tokenise, link) ---------------------------------------------


def seal_to_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--seal-to PARTY`` (repeatable), ``--party-secret`` and ``--keyring`` to a command."""
    f = click.option(
        "--keyring", "seal_keyring", type=click.Path(path_type=Path), envvar="WMW_LINK_KEYRING",
        help="With --seal-to: directory of every party's <party>.public.json.",
    )(f)  # fmt: skip
    f = click.option(
        "--party-secret", "seal_secret", type=click.Path(path_type=Path),
        envvar="WMW_LINK_PARTY_SECRET", help="With --seal-to: your <party>.secret file.",
    )(f)  # fmt: skip
    return click.option(
        "--seal-to", "seal_to", multiple=True, metavar="PARTY",
        help="Also seal the outputs this party may receive into OUT/sealed/PARTY/ (repeatable).",
    )(f)  # fmt: skip


def prepare_seal_to(
    seal_to: tuple[str, ...], secret_path: Path | None, keyring: Path | None, party: str
) -> PartySecret | None:
    """Check the --seal-to options before the command does its work; load the secret."""
    if not seal_to:
        return None
    if secret_path is None or keyring is None:
        raise ConfigError("--seal-to needs --party-secret and --keyring")
    secret = _own_secret(secret_path, party, "party")
    runrecord.current().signer = secret  # the command's audit line is a signed checkpoint
    return secret


def seal_to_outputs(
    outputs: list[Path], *, agreement: Agreement, secret: PartySecret | None,
    seal_to: tuple[str, ...], keyring: Path | None, out_dir: Path, delivery: int | None = None,
) -> None:  # fmt: skip
    """Seal a command's outputs to each --seal-to party the agreement allows, and say so."""
    if secret is None or keyring is None:
        return
    results = seal_outputs(
        outputs, agreement=agreement, secret=secret, recipients=list(seal_to), keyring=keyring,
        out_dir=out_dir, delivery=delivery,
    )  # fmt: skip
    for r in results:
        click.echo(f"sealed for {r.envelope['recipient']}: {r.path}")
