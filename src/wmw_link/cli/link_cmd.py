"""`wmw-link link`: the trusted third party links all partners' tokens into persons."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from wmw_link import freshness, runrecord
from wmw_link.agreement import Role, load_agreement
from wmw_link.cli._options import agreement_option
from wmw_link.cli.seal_cmd import prepare_seal_to, seal_to_options, seal_to_outputs
from wmw_link.files import restrict_tree
from wmw_link.resources import parse_size


@click.command("link")
@agreement_option()
@click.option(
    "--inputs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A directory of *.tokens.parquet + *.manifest.json, or those files "
    "(repeatable: one folder per delivery; a record re-sent in a later folder replaces the "
    "earlier one). Anything else, payloads above all, is refused.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output directory: <dataset>.map.parquet, link-manifest.json, report/.",
)
@click.option(
    "--backend",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Database engine (spark: local mode or a configured cluster).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=None,
    help="Match probability to cluster at (default: chosen without "
    "labels by maximising the model's expected F1).",
)
@click.option(
    "--as", "party", default=None, help="The TTP party id (default: the agreement's TTP)."
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Seed for random sampling of u (reproducible models).",
)
@click.option(
    "--exact-only",
    is_flag=True,
    default=False,
    help="Naive contrast model: exact-token comparisons only.",
)
@click.option("--no-report", is_flag=True, default=False, help="Skip the quality report.")
@click.option("--threads", type=int, default=None, help="Cores to use (default: all).")
@click.option(
    "--memory-limit",
    default=None,
    metavar="SIZE",
    help="DuckDB's memory limit, e.g. 8GB or 16GiB; beyond it DuckDB spills to --temp-dir "
    "(default: $WMW_DUCKDB_MEMORY_LIMIT, else 25% of the machine's memory). Spark: the "
    "driver memory.",
)
@click.option(
    "--temp-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to spill to (a private folder is made inside it and removed afterwards; "
    "default: a temporary folder inside --out).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=freshness.ENV_VAR,
    default=freshness.DEFAULT_STATE,
    show_default=True,
    help="The TTP's delivery state (as for unseal): inputs older than the latest accepted "
    "delivery are refused; it also numbers the link runs, and with --index remembers the "
    "last delivery committed to each index, so an index rolled back to an older copy is "
    "refused.",
)
@click.option(
    "--delivery",
    type=click.IntRange(min=1),
    default=None,
    help="This link run's delivery number (series 'link') for the sealed maps; default one "
    "more than the last in --state. With --index also the index delivery the maps carry "
    "(default there: one more than the index's last).",
)
@click.option(
    "--index",
    "index_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The persistent person index (docs/person-index.md). Absent or empty: a full run "
    "that creates it; otherwise link only this delivery against it with the stored model, "
    "keep every existing person id, write id-changes.parquet and update the index.",
)
@click.option(
    "--retrain",
    is_flag=True,
    default=False,
    help="With --index: train a new model on every record of the index and this delivery; "
    "ids are carried over by maximum overlap (changes recorded with reason 'retrain').",
)
@click.option(
    "--rekey",
    is_flag=True,
    default=False,
    help="With --index, after a linkage-key rotation: --inputs hold every controller's whole "
    "history re-tokenised under the new key (row refs unchanged); a new model is trained and "
    "ids carried over by maximum overlap (changes recorded with reason 'rekey').",
)
@click.option(
    "--withdrawals",
    multiple=True,
    type=click.Path(path_type=Path),
    help="With --index: a controller's withdrawal list (<dataset>.withdrawals.parquet beside "
    "its manifest; repeatable). The rows leave the index and get no map row.",
)
@click.option(
    "--withdrawals-keyring",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="WMW_LINK_KEYRING",
    help="Folder of the parties' <party>.public.json: check each withdrawal list's signature.",
)
@seal_to_options
def link(
    agreement_path: Path,
    inputs: tuple[Path, ...],
    out_dir: Path,
    backend: str,
    threshold: float | None,
    party: str | None,
    seed: int,
    exact_only: bool,
    no_report: bool,
    threads: int | None,
    memory_limit: str | None,
    temp_dir: Path | None,
    state: Path,
    delivery: int | None,
    index_dir: Path | None,
    retrain: bool,
    rekey: bool,
    withdrawals: tuple[Path, ...],
    withdrawals_keyring: Path | None,
    seal_to: tuple[str, ...],
    seal_secret: Path | None,
    seal_keyring: Path | None,
) -> None:
    """Verify every input, link and dedupe all datasets in one Splink model, write maps.

    With --index, link one delivery against the persistent person index instead: existing
    persons keep their ids, new people get new ones, and id-changes.parquet lists every merge,
    split, correction, withdrawal or re-train change (docs/person-index.md).
    """
    from wmw_link.linkage.verify import collect_inputs

    if memory_limit is not None:
        parse_size(memory_limit)  # a malformed size is refused before anything is read
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("splink").setLevel(logging.ERROR)
    agreement = load_agreement(agreement_path)
    party = party or agreement.default_party(Role.TTP)
    rec = runrecord.current()
    rec.set_agreement(agreement)
    rec.party, rec.role = party, Role.TTP.value
    if index_dir is None and (retrain or rekey or withdrawals):
        raise click.UsageError("--retrain, --rekey and --withdrawals need --index")
    if rekey and (retrain or not inputs):
        raise click.UsageError("--rekey needs --inputs (the re-tokenised history) and re-trains "
                               "anyway: drop --retrain")  # fmt: skip
    if not inputs and not (index_dir is not None and (withdrawals or retrain)):
        raise click.UsageError(
            "give --inputs (with --index, --withdrawals or --retrain may run without them)"
        )
    sealer = prepare_seal_to(seal_to, seal_secret, seal_keyring, party)
    if inputs:
        freshness.check_inputs(state, collect_inputs(list(inputs)))
    number = freshness.next_delivery(state, freshness.LINK_SERIES, delivery, freshness.STATE_KIND)
    if index_dir is not None:
        outputs = _link_index(
            agreement, inputs, index_dir, out_dir, delivery=delivery, retrain=retrain, rekey=rekey,
            withdrawals=withdrawals, keyring=withdrawals_keyring, backend=backend,
            threshold=threshold, party=party, seed=seed, exact_only=exact_only, threads=threads,
            report=not no_report, memory_limit=memory_limit, temp_dir=temp_dir, state=state,
        )  # fmt: skip
    else:
        outputs = _link_full(
            agreement, inputs, out_dir, backend=backend, threshold=threshold, party=party,
            seed=seed, exact_only=exact_only, threads=threads, report=not no_report,
            memory_limit=memory_limit, temp_dir=temp_dir,
        )  # fmt: skip
    freshness.record_issued(state, freshness.LINK_SERIES, number, freshness.STATE_KIND)
    restrict_tree(out_dir)  # everything the TTP writes is owner-only
    click.echo(f"delivery {number} of the link outputs")
    seal_to_outputs(
        outputs, agreement=agreement, secret=sealer,
        seal_to=seal_to, keyring=seal_keyring, out_dir=out_dir / "sealed", delivery=number,
    )  # fmt: skip
    restrict_tree(out_dir / "sealed")


def _link_full(agreement: Any, inputs: tuple[Path, ...], out_dir: Path, **kw: Any) -> list[Path]:
    from wmw_link.linkage import link as run_link
    from wmw_link.linkage.verify import collect_inputs

    rec = runrecord.current()
    result = run_link(
        agreement,
        list(inputs),
        out_dir,
        **kw,
    )
    for p in collect_inputs(list(inputs)):
        rec.add_input(p)
    for p in [*result.maps.values(), result.manifest]:
        rec.add_output(p)
    rec.rows["records"] = result.records
    rec.rows["persons"] = result.persons
    rec.rows["comparisons"] = result.comparisons
    click.echo(
        f"linked {result.records:,} records into {result.persons:,} persons "
        f"({result.comparisons:,} pairs scored); threshold p={result.threshold_probability:.4f} "
        f"({result.threshold_method}); maps in {result.out_dir}"
    )
    return [*result.maps.values(), result.manifest]


def _link_index(
    agreement: Any, inputs: tuple[Path, ...], index_dir: Path, out_dir: Path, **kw: Any
) -> list[Path]:
    from wmw_link.linkage.index import link_index
    from wmw_link.linkage.index.store import MANIFEST_NAME
    from wmw_link.linkage.verify import collect_inputs

    rec = runrecord.current()
    if (index_dir / MANIFEST_NAME).is_file():
        rec.add_input(index_dir / MANIFEST_NAME)
    for p in kw["withdrawals"]:  # a list, its manifest beside it, or a folder holding them
        for f in sorted(p.iterdir()) if p.is_dir() else [p, *p.parent.glob(p.stem + ".*.json")]:
            if f.is_file():
                rec.add_input(f)
    r = link_index(agreement, list(inputs), index_dir, out_dir, **kw)
    if inputs:
        for p in collect_inputs(list(inputs)):
            rec.add_input(p)
    outputs = [*r.maps.values(), r.id_changes, r.manifest]
    for p in [*outputs, r.index_manifest]:
        rec.add_output(p)
    rec.rows.update(records=r.records, persons=r.persons, comparisons=r.comparisons,
                    new_records=r.new_records, corrected=r.corrected, withdrawn=r.withdrawn,
                    map_rows=r.map_rows, id_changes=r.changes)  # fmt: skip
    click.echo(
        f"delivery {r.delivery} ({r.mode}): {r.records:,} records in the index, "
        f"{r.new_records:,} new ({r.corrected:,} corrected), {r.withdrawn:,} withdrawn; "
        f"{r.persons:,} persons; {r.map_rows:,} map rows, {r.changes:,} id changes "
        f"({r.comparisons:,} pairs scored); outputs in {r.out_dir}, index {index_dir}"
    )
    return outputs
