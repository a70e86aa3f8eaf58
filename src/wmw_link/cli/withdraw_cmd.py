"""`wmw-link withdraw`: a controller turns withdrawn record ids into a signed list of row refs."""

from __future__ import annotations

import os
from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.agreement import Role, load_agreement
from wmw_link.cli._options import agreement_option
from wmw_link.cli.seal_cmd import seal_to_outputs
from wmw_link.errors import ConfigError
from wmw_link.party_keys import load_secret
from wmw_link.withdrawals import key_has_tokenised, records_digest, series
from wmw_link.withdrawals import withdraw as _withdraw


@click.command("withdraw")
@agreement_option()
@click.option("--dataset", required=True, help="Dataset id in the agreement, e.g. nhs_referrals.")
@click.option(
    "--records",
    "records_path",
    required=True,
    type=click.Path(path_type=Path),
    help="CSV (UTF-8, header) or Parquet holding the withdrawn records' ids, in the column "
    "the agreement names as the dataset's record_id; no other column is read.",
)
@click.option(
    "--key",
    "--ref-key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Your own row-reference key: the one tokenise used as --ref-key (row refs depend "
    "on it alone; the shared linkage key is not needed).",
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory."
)
@click.option(
    "--as", "party", default=None, help="Your party id (default: the dataset's controller)."
)
@click.option(
    "--sign-with",
    "secret_path",
    type=click.Path(path_type=Path),
    envvar="WMW_LINK_PARTY_SECRET",
    help="Your <party>.secret: sign the list (Ed25519). The TTP and analysts verify lists "
    "with their keyring and refuse unsigned ones.",
)
@click.option(
    "--delivery",
    type=click.IntRange(min=1),
    default=None,
    help="This list's number among the dataset's withdrawal lists; recipients refuse one "
    "older than they accepted. Default: one more than the counter beside --key.",
)
@click.option(
    "--seal-to",
    "seal_to",
    multiple=True,
    metavar="PARTY",
    help="Also seal the list and its manifest to this party (the TTP, the analysts) into "
    "OUT/sealed/PARTY/, signed with --sign-with (repeatable).",
)
@click.option(
    "--keyring",
    "seal_keyring",
    type=click.Path(path_type=Path),
    envvar="WMW_LINK_KEYRING",
    help="With --seal-to: directory of every party's <party>.public.json.",
)
def withdraw(
    agreement_path: Path,
    dataset: str,
    records_path: Path,
    key_path: Path,
    out_dir: Path,
    party: str | None,
    secret_path: Path | None,
    delivery: int | None,
    seal_to: tuple[str, ...],
    seal_keyring: Path | None,
) -> None:
    """Write <dataset>.withdrawals.parquet (row refs only) and its manifest, for the TTP and
    the analysts, who remove these records from the person index, maps and journeys.

    Row refs are derived exactly as tokenise derives them. Blank ids are counted and skipped,
    repeated ids listed once; an earlier list of the dataset in --out is replaced. Each list
    is a numbered delivery of the series <dataset>.withdrawals. No record id is printed,
    logged or written: the audit log gets a keyed digest of --records.
    """  # noqa: D205
    rec = runrecord.current()
    agreement = load_agreement(agreement_path)
    rec.set_agreement(agreement)
    ds = agreement.dataset(dataset)
    rec.party = party or ds.controller
    rec.role = Role.CONTROLLER.value
    rec.add_input(agreement_path)
    secret = None
    if secret_path is not None:
        secret = load_secret(secret_path)
        if secret.party != rec.party:
            raise ConfigError(
                f"{secret_path}: this secret belongs to '{secret.party}', not to '{rec.party}'"
            )
        rec.signer = secret  # the audit line of a withdrawal is a signed checkpoint
    if seal_to and (secret is None or seal_keyring is None):
        raise ConfigError("--seal-to needs --sign-with and --keyring")
    for recipient in seal_to:  # before any work: a wrong party is refused with nothing written
        agreement.party(recipient)
    result = _withdraw(agreement, dataset, records_path, key_path, out_dir, party=party,
                       secret=secret, delivery=delivery)  # fmt: skip
    if records_path.is_file():
        # Never a plain hash of a file of record ids: short id lists can be guessed.
        rec.inputs[os.fspath(records_path)] = records_digest(records_path, key_path, agreement.id)
    for p in result.outputs:
        rec.add_output(p)
    rec.rows.update(
        {
            "records": result.records_input,
            "blank": result.records_blank,
            "repeated": result.records_repeated,
            "withdrawn": result.rows,
        }
    )
    click.echo(
        f"{result.dataset}: {result.records_input} record id(s) read, {result.records_blank} "
        f"blank (skipped), {result.records_repeated} repeated; {result.rows} row ref(s) listed"
    )
    if result.replaced:
        click.echo(f"  replaced the earlier list of {result.dataset} in {out_dir}")
    if key_has_tokenised(key_path, result.dataset) is False:
        click.echo(
            f"warning: {key_path} has no record of tokenising {result.dataset} (no entry in "
            f"{key_path.name}.deliveries.json): is it your row-reference key (tokenise "
            "--ref-key)? Row refs made with another key match no record.",
            err=True,
        )
    click.echo(f"key check value (row-reference key): {result.key_check}")
    if result.signed:
        click.echo(f"signed by:       {result.party}")
    else:
        click.echo(
            "not signed:      readers with a keyring refuse an unsigned list (use --sign-with)"
        )
    click.echo(f"delivery:        {result.delivery} of {series(result.dataset)}")
    click.echo(f"to the TTP and the analysts: {result.parquet}, {result.manifest}")
    seal_to_outputs(
        result.outputs, agreement=agreement, secret=secret, seal_to=seal_to,
        keyring=seal_keyring, out_dir=out_dir / "sealed",
    )  # fmt: skip
