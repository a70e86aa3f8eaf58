"""`wmw-link tokenise`: a controller turns its extract into tokens and payload."""

from __future__ import annotations

from pathlib import Path

import click

from wmw_link import runrecord
from wmw_link.agreement import Role, load_agreement
from wmw_link.cli._options import agreement_option
from wmw_link.cli.seal_cmd import prepare_seal_to, seal_to_options, seal_to_outputs
from wmw_link.errors import InputDataError
from wmw_link.tokenise import DEFAULT_BATCH_ROWS, DEFAULT_MAX_INVALID_SHARE, DEFAULT_WORKERS
from wmw_link.tokenise import tokenise as _tokenise


@click.command("tokenise")
@agreement_option()
@click.option("--dataset", required=True, help="Dataset id in the agreement, e.g. dwp_claims.")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The extract: CSV (UTF-8, header) or Parquet, in your own column names.",
)
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The agreement's linkage key, shared by all partners (keys new).",
)
@click.option(
    "--ref-key",
    "ref_key_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Your own row-reference key, never shared (keys new).",
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory."
)
@click.option(
    "--as", "party", default=None, help="Your party id (default: the dataset's controller)."
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_ROWS,
    show_default=True,
    help="Rows per batch (memory is a few batches).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Processes: 2 splits names and postcodes from the rest (2 where two cores are usable).",
)
@click.option(
    "--max-invalid-share",
    type=click.FloatRange(0, 1),
    default=DEFAULT_MAX_INVALID_SHARE,
    show_default=True,
    help="Refuse the extract (nothing shareable written) when more than this share of a "
    "column's non-empty values are invalid: usually a wrong format or the wrong file.",
)
@click.option(
    "--delivery",
    type=click.IntRange(min=1),
    default=None,
    help="This run's delivery number for the dataset; recipients refuse one older than they "
    "accepted. Default: one more than the counter beside --ref-key (<ref-key>.deliveries.json).",
)
@seal_to_options
def tokenise(
    agreement_path: Path,
    dataset: str,
    input_path: Path,
    key_path: Path,
    ref_key_path: Path,
    out_dir: Path,
    party: str | None,
    batch_rows: int,
    workers: int,
    max_invalid_share: float,
    delivery: int | None,
    seal_to: tuple[str, ...],
    seal_secret: Path | None,
    seal_keyring: Path | None,
) -> None:
    """Write <dataset>.tokens.parquet (to the TTP), .payload.parquet (to the analysts),
    .manifest.json (to both), and the local .rejects.parquet and .crosswalk.parquet.

    Only the columns the agreement names are read. No identifier value is printed. The
    rejects file lists rejected rows and nulled (invalid) values by data row number, column
    and reason. A row with a cell over 64 KiB (identifiers, record id) or 1 MiB (payload), or a
    control character in an identifier or record id, is rejected. An extract where no row can
    be tokenised, or a column is mostly invalid, is refused: nothing shareable is written, an
    earlier run's shareable files of the dataset in --out are removed, the rejects file is kept.
    Each run is a numbered delivery of the dataset (--delivery).
    """  # noqa: D205
    rec = runrecord.current()
    agreement = load_agreement(agreement_path)
    rec.set_agreement(agreement)
    ds = agreement.dataset(dataset)
    rec.party = party or ds.controller
    rec.role = Role.CONTROLLER.value
    rec.add_input(agreement_path)
    if input_path.is_file():
        rec.add_input(input_path)
    sealer = prepare_seal_to(seal_to, seal_secret, seal_keyring, rec.party)
    try:
        result = _tokenise(
            agreement, dataset, input_path, key_path, ref_key_path, out_dir,
            party=party, batch_rows=batch_rows, workers=workers,
            max_invalid_share=max_invalid_share, delivery=delivery,
        )  # fmt: skip
    except InputDataError as err:
        rejects = getattr(err, "rejects", None)
        if rejects is not None:  # a refused run still wrote its local rejects file
            rec.add_output(rejects)
        raise
    for p in [*result.shared_outputs, *result.local_outputs]:
        rec.add_output(p)
    rec.rows.update(
        {"input": result.rows_input, "tokens": result.rows_tokens, "rejected": result.rows_rejected}
    )
    click.echo(
        f"{result.dataset}: {result.rows_input} rows in, {result.rows_tokens} tokenised, "
        f"{result.rows_rejected} rejected ({result.seconds:.1f} s)"
    )
    for reason, n in result.rejected_by_reason.items():
        click.echo(f"  rejected {reason}: {n}")
    nulled = {k: v for k, v in result.nulled_by_reason.items() if not k.endswith(":missing")}
    for reason, n in nulled.items():
        click.echo(f"  invalid -> null {reason}: {n}")
    click.echo(f"key check value: {result.key_check}")
    click.echo(f"delivery:        {result.delivery} of {result.dataset}")
    click.echo(f"to the TTP:      {result.tokens}, {result.manifest}")
    click.echo(f"to the analysts: {result.payload}, {result.manifest}")
    click.echo(f"keep locally:    {result.rejects}, {result.crosswalk}")
    click.echo("  (the rejects file lists rejected rows and nulled values: row, column, reason)")
    seal_to_outputs(
        result.shared_outputs, agreement=agreement, secret=sealer, seal_to=seal_to,
        keyring=seal_keyring, out_dir=out_dir / "sealed",
    )  # fmt: skip
