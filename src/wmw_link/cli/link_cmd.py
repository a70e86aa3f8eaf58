"""`wmw-link link`: the trusted third party links all partners' tokens into persons."""

from __future__ import annotations

import logging
from pathlib import Path

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
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="A directory of *.tokens.parquet + *.manifest.json, or those files "
    "(repeatable). Anything else, payloads above all, is refused.",
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
    "(default: $WMW_DUCKDB_MEMORY_LIMIT, else 60% of the machine's memory). Spark: the "
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
    "delivery are refused; it also numbers the link runs.",
)
@click.option(
    "--delivery",
    type=click.IntRange(min=1),
    default=None,
    help="This link run's delivery number (series 'link') for the sealed maps; default one "
    "more than the last in --state.",
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
    seal_to: tuple[str, ...],
    seal_secret: Path | None,
    seal_keyring: Path | None,
) -> None:
    """Verify every input, link and dedupe all datasets in one Splink model, write maps."""
    from wmw_link.linkage import link as run_link
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
    sealer = prepare_seal_to(seal_to, seal_secret, seal_keyring, party)
    freshness.check_inputs(state, collect_inputs(list(inputs)))
    number = freshness.next_delivery(state, freshness.LINK_SERIES, delivery, freshness.STATE_KIND)
    result = run_link(
        agreement,
        list(inputs),
        out_dir,
        backend=backend,
        threshold=threshold,
        party=party,
        seed=seed,
        exact_only=exact_only,
        threads=threads,
        report=not no_report,
        memory_limit=memory_limit,
        temp_dir=temp_dir,
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
    freshness.record_issued(state, freshness.LINK_SERIES, number, freshness.STATE_KIND)
    restrict_tree(result.out_dir)  # everything the TTP writes is owner-only
    click.echo(f"delivery {number} of the link outputs")
    seal_to_outputs(
        [*result.maps.values(), result.manifest], agreement=agreement, secret=sealer,
        seal_to=seal_to, keyring=seal_keyring, out_dir=out_dir / "sealed", delivery=number,
    )  # fmt: skip
    restrict_tree(out_dir / "sealed")
