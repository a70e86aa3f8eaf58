"""Plaintext yardsticks for the token linkage (benchmarks only; never part of the TTP path).

* :func:`plaintext_arrow` (:func:`plaintext_table` as pandas) reads a synthetic extract, keeps
  the rows that were tokenised (by the controller's crosswalk), and normalises identifiers with
  the same normalisers the tokeniser uses, so both sides link the same records. Like the
  tokeniser it works on distinct values with Arrow kernels; :func:`plaintext_tables` runs it
  in 2 processes, as the token side gets ``workers=2``, so that the yardstick is not slowed
  by its data preparation.
* :func:`run_splink_plaintext`: Splink on plaintext with the usual fuzzy comparisons
  (Jaro-Winkler names, Levenshtein dates and NINo, date parts, postcode hierarchy, term
  frequencies), trained and clustered by the same code as the token model
  (:func:`wmw_link.linkage.run.fit_and_cluster`): same prior, u, EM, household rule and
  label-free threshold. Its blocking is the token model's by default: one rule per token
  blocking rule, on the plaintext that token hashes (``blk_<column>``: the tokeniser's own
  ``composite_inputs``, e.g. "forename | date of birth", or each Double Metaphone code of a
  name word with the date, exploded), so both score the same candidate pairs;
  ``blocking="own"`` keeps the plaintext rules it had before.
* :func:`run_ecm`: recordlinkage's ECM (unsupervised Fellegi-Sunter on binary features) on the
  same candidate pairs, clustered by connected components.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jellyfish
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from wmw_link import token_schema as ts
from wmw_link.agreement import Agreement, IdentifierType
from wmw_link.linkage.backends import open_backend
from wmw_link.linkage.id_u import placeholder_values
from wmw_link.linkage.run import fit_and_cluster
from wmw_link.linkage.settings import (
    ModelPlan,
    predict_blocks,
    predict_rule,
    settings_creator,  # noqa: F401
)
from wmw_link.normalise import (
    Normalised,
    normalise_dates,
    normalise_names,
    normalise_nhs_numbers,
    normalise_ninos,
    normalise_postcodes,
    normalise_sex,
    split_full_names,
)
from wmw_link.tokenise.composites import composite_inputs

PLAIN_COLUMNS = [
    "forename",
    "surname",
    "forename_nysiis",
    "surname_nysiis",
    "forename_initial",
    "dob",
    "dob_swap",
    "dob_ym",
    "dob_year",
    "pc_unit",
    "pc_sector",
    "pc_district",
    "nino",
    "nhs",
    "sex",
]


#: The token model's prediction blocks (UK identifier types), in its order: the plaintext
#: baseline blocks on the plaintext of each, ``blk_<column>``.
TOKEN_BLOCKS: tuple[str, ...] = tuple(predict_blocks(set(ts.BY_NAME)))
BLOCK_PREFIX = "blk_"


def _block_composites(cols: dict[str, pa.Array], n: int) -> dict[str, pa.Array]:
    """The plaintext each token blocking column hashes (the tokeniser's ``composite_inputs``
    on the same normalised fields), as ``blk_<column>``; null where a part is missing."""
    fields = {
        src: cols[c]
        for src, c in ((ts.FORENAME, "forename"), (ts.SURNAME, "surname"),
                       (ts.POSTCODE, "pc_unit"), (ts.NINO, "nino"), (ts.NHS, "nhs"))
        if c in cols
    }  # fmt: skip
    if "dob" in cols:
        fields[ts.DOB] = pc.cast(cols["dob"], pa.date32())
    wanted = [ts.BY_NAME[c] for c in TOKEN_BLOCKS if set(ts.BY_NAME[c].sources) <= set(fields)]
    got = composite_inputs(fields, wanted)
    out = {}
    for c in TOKEN_BLOCKS:
        typ = pa.list_(pa.string()) if ts.BY_NAME[c].kind == "hmac_list" else pa.string()
        out[f"{BLOCK_PREFIX}{c}"] = got[c] if c in got else pa.nulls(n, typ)
    return out


@dataclass(frozen=True)
class _Part:
    """Rows ``[offset, offset + rows)`` of an extract holding ``total`` data rows."""

    table: pa.Table
    offset: int
    total: int


def _read_extract(path: Path, columns: list[str], part: tuple[int, int] = (0, 1)) -> _Part:
    """Read ``columns`` of an extract; ``part=(i, k)``: the i-th of k runs of row groups."""
    if path.suffix == ".parquet":
        f = pq.ParquetFile(path)
        groups = [
            int(g) for g in np.array_split(np.arange(f.metadata.num_row_groups), part[1])[part[0]]
        ]
        first = groups[0] if groups else f.metadata.num_row_groups
        offset = sum(f.metadata.row_group(g).num_rows for g in range(first))
        tbl = f.read_row_groups(groups, columns=columns)
        return _Part(tbl, offset, f.metadata.num_rows)
    # Every column as text (record ids keep their leading zeros); empty cells stay "", as
    # pandas' read_csv(dtype=str, keep_default_na=False) gave. Arrow's reader is multi-threaded
    # and builds Arrow strings directly (no Python objects per cell).
    tbl = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(encoding="utf-8"),
        # Quoted cells may hold line breaks (free-text columns), as pandas allowed.
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            include_columns=columns,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return _Part(tbl, 0, tbl.num_rows)


def _tokenised(rid: pa.ChunkedArray, crosswalk: Path, part: _Part) -> pa.Array | None:
    """Mask of the rows the controller tokenised (in its crosswalk); None when all were."""
    keep = pq.read_table(crosswalk, columns=["record_id"])["record_id"]
    keep = pc.cast(keep, pa.string()).combine_chunks()
    rid_a = rid.combine_chunks()
    if len(keep) == part.total and rid_a.null_count == 0:
        # When the controller rejected no row its crosswalk is, row for row, the record-id
        # column of the extract; checking that is cheaper than the hash lookup below.
        mine = keep.slice(part.offset, len(rid_a))
        if mine.null_count == 0 and pc.all(pc.equal(mine, rid_a)).as_py():
            return None
    # A null record id is kept only if the crosswalk has one (Python set semantics).
    return pc.fill_null(pc.is_in(rid_a, value_set=keep, skip_nulls=False), False)


def _distinct(
    raw: pa.Array | pa.ChunkedArray,
    fn: Callable[[pa.Array], list[pa.Array]],
    repeats: bool = True,
) -> list[pa.Array]:
    """Apply ``fn`` to the distinct values of ``raw`` and spread each result back to rows.

    Identifier columns repeat a lot (names, dates, postcodes); each distinct value is then
    normalised once, as the tokeniser does (``on_distinct``). A null cell has a null index and
    so gives null in every output, as the normalisers do for a missing value. With
    ``repeats=False`` (near-unique identifiers: NINo, NHS number) ``fn`` runs on the rows,
    which saves the hashing and the spreading.
    """
    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks()
    if not repeats:
        return fn(raw)
    enc = pc.dictionary_encode(raw)
    return [pc.take(out, enc.indices) for out in fn(enc.dictionary)]


def _values(fn: Callable[[pa.Array], Normalised]) -> Callable[[pa.Array], list[pa.Array]]:
    return lambda d: [fn(d).values]


def _date_columns(fmt: str, today: dt.date) -> Callable[[pa.Array], list[pa.Array]]:
    def derive(d: pa.Array) -> list[pa.Array]:
        iso = pc.cast(normalise_dates(d, fmt, today).values, pa.string())  # YYYY-MM-DD
        year, month, day = (
            pc.utf8_slice_codeunits(iso, a, b) for a, b in ((0, 4), (5, 7), (8, 10))
        )
        # Day and month swapped, where that is another valid date (day 1-12, day != month).
        day_n = pc.cast(day, pa.int8())
        can_swap = pc.and_(pc.less_equal(day_n, 12), pc.not_equal(day, month))
        swapped = pc.binary_join_element_wise(year, day, month, "-")
        swap = pc.if_else(can_swap, swapped, pa.scalar(None, pa.string()))
        return [iso, swap, pc.utf8_slice_codeunits(iso, 0, 7), year]

    return derive


def _postcode_columns(d: pa.Array) -> list[pa.Array]:
    p = normalise_postcodes(d)
    return [p.unit.values, p.sector, p.district]


def _nysiis(keys: pa.Array) -> pa.Array:
    # jellyfish has no vectorised form; ``keys`` are distinct values, so this is one call per
    # distinct name. Empty keys (never produced by the normaliser) are null, as before.
    return pa.array([jellyfish.nysiis(k) if k else None for k in keys.to_pylist()], pa.string())


def _forename_keys(d: pa.Array) -> list[pa.Array]:
    # Normalised names are lower-case words joined by single spaces: the first word is
    # everything before the first space.
    key = pc.replace_substring_regex(d, r" .*$", "")
    return [_nysiis(key), pc.utf8_slice_codeunits(key, 0, 1)]


def _surname_keys(d: pa.Array) -> list[pa.Array]:
    return [_nysiis(pc.replace_substring(d, " ", ""))]


def plaintext_arrow(
    agreement: Agreement, dataset: str, extract: Path, crosswalk: Path, today: dt.date
) -> pa.Table:
    """Normalised plaintext identifiers of the tokenised rows of one extract, as Arrow.

    Columns ``unique_id`` (the record id) then :data:`PLAIN_COLUMNS`, all strings; null
    where the source has no such identifier or the value is missing or invalid.
    """
    return _plaintext_part(agreement, dataset, extract, crosswalk, today, (0, 1))


def _plaintext_part(
    agreement: Agreement,
    dataset: str,
    extract: Path,
    crosswalk: Path,
    today: dt.date,
    part: tuple[int, int],
) -> pa.Table:
    ds = agreement.dataset(dataset)
    columns = [ds.record_id, *dict.fromkeys(f.column for f in ds.identifiers)]
    got = _read_extract(extract, columns, part)
    tbl = got.table
    rid = pc.cast(tbl[ds.record_id], pa.string())
    mask = _tokenised(rid, crosswalk, got)
    if mask is not None:
        tbl, rid = tbl.filter(mask), rid.filter(mask)
    n = tbl.num_rows
    cols: dict[str, pa.Array] = {}
    for f in ds.identifiers:
        arr = tbl[f.column]
        if f.type == IdentifierType.FULL_NAME:
            fore, sur = split_full_names(arr)  # already works on distinct full names
            cols["forename"], cols["surname"] = fore.values, sur.values
        elif f.type in (IdentifierType.FORENAME, IdentifierType.SURNAME):
            (cols[f.type.value],) = _distinct(arr, _values(normalise_names))
        elif f.type == IdentifierType.DATE_OF_BIRTH:
            derive = _date_columns(f.format or "%Y-%m-%d", today)
            cols["dob"], cols["dob_swap"], cols["dob_ym"], cols["dob_year"] = _distinct(arr, derive)
        elif f.type == IdentifierType.POSTCODE:
            cols["pc_unit"], cols["pc_sector"], cols["pc_district"] = _distinct(
                arr, _postcode_columns
            )
        elif f.type == IdentifierType.NINO:
            (cols["nino"],) = _distinct(arr, _values(normalise_ninos), repeats=False)
        elif f.type == IdentifierType.NHS_NUMBER:
            (cols["nhs"],) = _distinct(arr, _values(normalise_nhs_numbers), repeats=False)
        elif f.type == IdentifierType.SEX:
            (cols["sex"],) = _distinct(arr, _values(normalise_sex))
    if "forename" in cols:
        cols["forename_nysiis"], cols["forename_initial"] = _distinct(
            cols["forename"], _forename_keys
        )
    if "surname" in cols:
        (cols["surname_nysiis"],) = _distinct(cols["surname"], _surname_keys)
    arrays = [rid] + [cols.get(c, pa.nulls(n, pa.string())) for c in PLAIN_COLUMNS]
    blocks = _block_composites(cols, n)
    return pa.Table.from_arrays(
        [pc.cast(a, pa.string()) for a in arrays] + list(blocks.values()),
        names=["unique_id", *PLAIN_COLUMNS, *blocks],
    )


def plaintext_table(
    agreement: Agreement, dataset: str, extract: Path, crosswalk: Path, today: dt.date
) -> pd.DataFrame:
    """:func:`plaintext_arrow` as a pandas frame (object columns; null is ``None``)."""
    return plaintext_arrow(agreement, dataset, extract, crosswalk, today).to_pandas()


def _plaintext_job(args: tuple[Path, str, Path, Path, dt.date, tuple[int, int]]) -> pa.Table:
    agreement_path, dataset, extract, crosswalk, today, part = args
    from wmw_link.agreement import load_agreement

    agreement = load_agreement(agreement_path)
    return _plaintext_part(agreement, dataset, extract, crosswalk, today, part)


#: Parquet extracts with more rows than this are split by row groups over the processes.
SPLIT_ROWS = 200_000


def plaintext_tables(
    agreement_path: Path,
    jobs: dict[str, tuple[Path, Path]],
    today: dt.date,
    workers: int = 2,
    split_rows: int = SPLIT_ROWS,
) -> dict[str, pa.Table]:
    """:func:`plaintext_arrow` for several datasets in ``workers`` processes.

    A large Parquet extract is split into ``workers`` runs of row groups (the tokeniser too
    shares one extract's batches between its processes); pieces are handed out largest
    first so that the big ones start at once and the small ones fill in. Each dataset's
    table has its rows in file order, as :func:`plaintext_arrow` gives.

    Args:
        agreement_path: the agreement YAML (each process loads it).
        jobs: dataset id -> (extract, crosswalk).
        today: the day dates of birth are checked against.
        workers: processes.
        split_rows: Parquet extracts with more rows are split.

    Returns:
        dataset id -> table, in the order of ``jobs``.
    """
    pieces: list[tuple[int, tuple[Path, str, Path, Path, dt.date, tuple[int, int]]]] = []
    for ds, (extract, crosswalk) in jobs.items():
        k = 1
        if workers > 1 and extract.suffix == ".parquet":
            meta = pq.read_metadata(extract)
            if meta.num_rows > split_rows:
                k = min(workers, meta.num_row_groups)
        size = extract.stat().st_size // k
        pieces += [
            (size, (agreement_path, ds, extract, crosswalk, today, (i, k))) for i in range(k)
        ]
    pieces.sort(key=lambda p: -p[0])
    if workers <= 1:
        done = [_plaintext_job(args) for _, args in pieces]
    else:
        # fork where available, as the tokeniser starts its workers (fast: no re-import;
        # Arrow registers at-fork handlers for its thread pools).
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            done = list(pool.map(_plaintext_job, [args for _, args in pieces]))
    parts: dict[str, list[tuple[int, pa.Table]]] = {ds: [] for ds in jobs}
    for (_, args), tbl in zip(pieces, done, strict=True):
        parts[args[1]].append((args[5][0], tbl))
    return {
        ds: pa.concat_tables(t for _, t in sorted(p, key=lambda x: x[0])) for ds, p in parts.items()
    }


def _min_gamma(
    comp: Any, exclude: frozenset[str] = frozenset({"same initial", "same year"}),
    stop: str | None = None,
) -> int | None:
    """Lowest gamma of the comparison's levels that count as agreement.

    Levels labelled in ``exclude`` never count; with ``stop``, levels below the one labelled
    ``stop`` do not count either.
    """
    found: list[int] = []
    for lvl in comp.comparison_levels:
        if lvl.is_null_level or lvl.comparison_vector_value <= 0:
            continue
        label = lvl.label_for_charts or ""
        if label in exclude:
            continue
        found.append(lvl.comparison_vector_value)
        if stop is not None and label == stop:
            break
    return min(found) if found else None


def fieldevidence_condition(linker: Any) -> str:
    """SQL: the household rule for a model with separate name, date and postcode comparisons
    (the plaintext baselines; the token model's rule is ``household.evidence_condition``).

    A NINo or NHS-number agreement always passes. Otherwise a pair needs forename or
    date-of-birth evidence; and a pair that looks like one household (surname agrees, postcode
    unit or sector agrees) needs both, unless one of them is missing: twins share a date of
    birth, fathers and sons can share a forename, neither shares both.
    """
    comps = {c.output_column_name: c for c in linker._settings_obj.comparisons}

    def ev(name: str, **kw: Any) -> str | None:
        if name not in comps:
            return None
        g = _min_gamma(comps[name], **kw)
        return None if g is None else f"gamma_{name} >= {g}"

    unique = [e for e in (ev("nino"), ev("nhs")) if e]
    fore, dob = ev("forename"), ev("dob")
    identity = [e for e in (fore, dob) if e]
    if not identity:
        return " OR ".join(unique) if unique else "TRUE"
    some = "(" + " OR ".join(identity) + ")"
    sur = ev("surname")
    place = ev("postcode", stop="same sector")
    if fore and dob and sur and place:
        house = f"({sur} AND {place})"
        both = f"(({fore} OR gamma_forename = -1) AND ({dob} OR gamma_dob = -1))"
        rule = f"((NOT {house} AND {some}) OR ({house} AND {some} AND {both}))"
    else:
        rule = some
    return " OR ".join([*unique, rule])


def token_block_rules(present: set[str] | None = None) -> list[str]:
    """Names of the plaintext blocking rules equivalent to the token model's, in its order
    (``blk_<column>`` for each of its prediction blocks whose columns are present)."""
    cols = predict_blocks(set(TOKEN_BLOCKS) if present is None else present)
    return [f"{BLOCK_PREFIX}{c}" for c in cols]


def _own_rules() -> list[Any]:
    """The plaintext baseline's own blocking rules (before it was given the tokens' blocks)."""
    from splink import block_on

    return [
        block_on("nino"),
        block_on("nhs"),
        block_on("dob", "surname_nysiis"),
        block_on("dob", "forename_nysiis"),
        block_on("forename_nysiis", "surname_nysiis", "dob_year"),
        block_on("forename_initial", "surname_nysiis", "pc_unit"),
        "l.dob_swap = r.dob AND l.surname_nysiis = r.surname_nysiis",
        "l.forename = r.surname AND l.surname = r.forename",
    ]


def _plain_plan(u_fixed: dict[str, float], blocking: str = "tokens") -> ModelPlan:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import block_on

    def null(c: str) -> Any:
        return cll.CustomLevel(f"{c}_l IS NULL OR {c}_r IS NULL", "null").configure(
            is_null_level=True
        )

    def name(part: str, other: str) -> Any:
        return cl.CustomComparison(
            output_column_name=part,
            comparison_levels=[
                null(part),
                cll.ExactMatchLevel(part, term_frequency_adjustments=True),
                cll.CustomLevel(f"{part}_l = {other}_r AND {other}_l = {part}_r", "swapped"),
                cll.JaroWinklerLevel(part, 0.92),
                cll.JaroWinklerLevel(part, 0.80),
                cll.CustomLevel(f"substr({part}_l, 1, 1) = substr({part}_r, 1, 1)", "same initial"),
                cll.ElseLevel(),
            ],
        )

    def exact(c: str, fuzzy: bool = False) -> Any:
        ex = cll.ExactMatchLevel(c).configure(label_for_charts="exact")
        levels = [null(c), ex]
        if c in u_fixed:
            ex.configure(u_probability=u_fixed[c], fix_u_probability=True)
        if fuzzy:
            levels.append(cll.LevenshteinLevel(c, 1))
        levels.append(cll.ElseLevel())
        return cl.CustomComparison(output_column_name=c, comparison_levels=levels)

    comparisons = [
        name("forename", "surname"),
        name("surname", "forename"),
        cl.CustomComparison(
            output_column_name="dob",
            comparison_levels=[
                null("dob"),
                cll.ExactMatchLevel("dob"),
                cll.CustomLevel(
                    "dob_swap_l = dob_r OR dob_l = dob_swap_r", "day and month swapped"
                ),
                cll.LevenshteinLevel("dob", 1),
                cll.CustomLevel("dob_ym_l = dob_ym_r", "same year and month"),
                cll.LevenshteinLevel("dob", 2),
                cll.CustomLevel("dob_year_l = dob_year_r", "same year"),
                cll.ElseLevel(),
            ],
        ),
        cl.CustomComparison(
            output_column_name="postcode",
            comparison_levels=[
                null("pc_unit"),
                cll.ExactMatchLevel("pc_unit", term_frequency_adjustments=True),
                cll.CustomLevel("pc_sector_l = pc_sector_r", "same sector"),
                cll.CustomLevel("pc_district_l = pc_district_r", "same district"),
                cll.ElseLevel(),
            ],
        ),
        exact("nino", fuzzy=True),
        exact("nhs"),
        exact("sex"),
    ]
    if blocking == "tokens":
        # One rule per token blocking rule, on the plaintext the token hashes; list columns
        # (a code per name word) exploded, as the token rule is.
        # A weak rule keeps records with different NINos or NHS numbers apart, as the token
        # rule does (settings.WEAK_BLOCKS): the token rule's own builder, on the plaintext.
        rules: list[Any] = [
            predict_rule(r[len(BLOCK_PREFIX):], {"nino", "nhs"}, column=r)
            for r in token_block_rules()
        ]
    elif blocking == "own":
        rules = _own_rules()
    else:
        raise ValueError(f"blocking must be 'tokens' or 'own', got {blocking!r}")
    return ModelPlan(
        comparisons=comparisons,
        blocking_rules=rules,
        em_blocks=[block_on("nino"), block_on("dob", "forename_nysiis", "surname_nysiis")],
        deterministic_rules=[
            "l.nino = r.nino",
            "l.forename = r.forename AND l.surname = r.surname AND l.dob = r.dob",
        ],
        near_unique={"nino": "nino", "nhs": "nhs"},
    )


def register_plain_tables(be: Any, tables: dict[str, Any]) -> list[Any]:
    """Copy each dataset's plaintext table (Arrow or pandas) into DuckDB as ``plain_<dataset>``
    and register it with Splink; returns the registered frames, sorted by dataset."""
    inputs = []
    for ds, df in sorted(tables.items()):
        be.con.register(f"plain_df_{ds}", df)
        be.con.execute(f"CREATE TABLE plain_{ds} AS SELECT * FROM plain_df_{ds}")
        be.con.unregister(f"plain_df_{ds}")
        inputs.append(be.db_api.register(f"plain_{ds}", dataset_display_name=ds))
    return inputs


def null_placeholders(be: Any, names: list[str]) -> dict[str, int]:
    """Null placeholder NINos and NHS numbers (``AB123456``) in the plaintext tables, and their
    blocking column, as the token link nulls their tokens before blocking
    (:func:`wmw_link.linkage.id_u.placeholder_values`, judged on the plaintext composites the
    tokens hash): a placeholder would otherwise pair strangers on the id rule and keep one
    person's records apart in the weak rules. Returns how many values were nulled per id."""
    cols = {c for n in names for (c,) in be.con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [n]).fetchall()}  # fmt: skip
    others = [f"{BLOCK_PREFIX}{b}" for b in TOKEN_BLOCKS if b not in ("nino", "nhs")
              and ts.BY_NAME[b].kind != "hmac_list" and f"{BLOCK_PREFIX}{b}" in cols]  # fmt: skip
    out = {}
    for c in ("nino", "nhs"):
        if c not in cols:
            continue
        values = placeholder_values(be, names, c, others)
        sets = ", ".join(f"{col} = NULL" for col in (c, f"{BLOCK_PREFIX}{c}") if col in cols)
        for n in names:
            if values:
                be.con.execute(f"UPDATE {n} SET {sets} WHERE list_contains(?, {c})", [values])
        out[c] = len(values)
    return out


def run_splink_plaintext(
    tables: dict[str, pa.Table] | dict[str, pd.DataFrame],
    tmp: Path,
    seed: int,
    threshold: float | None = None,
    blocking: str = "tokens",
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Plaintext Splink; returns (clusters frame, scored pairs, timings).

    ``blocking``: ``tokens`` (the token model's rules on the plaintext each token hashes,
    :func:`token_block_rules`) or ``own`` (the plaintext rules of earlier runs).

    ``tables`` are Arrow tables (from :func:`plaintext_tables`; DuckDB reads them without
    copying through Python objects) or pandas frames with the same columns.
    """
    t0 = time.perf_counter()
    be = open_backend("duckdb", tmp)
    try:
        inputs = register_plain_tables(be, tables)
        null_placeholders(be, [f"plain_{ds}" for ds in sorted(tables)])
        union = " UNION ALL ".join(f"SELECT nino, nhs FROM plain_{ds}" for ds in tables)
        u_fixed = {}
        for c in ("nino", "nhs"):
            d = be.scalar(f"SELECT COUNT(DISTINCT {c}) FROM ({union})")
            if d and d > 1:
                u_fixed[c] = 1.0 / d
        plan = _plain_plan(u_fixed, blocking)
        n = sum(len(df) for df in tables.values())
        load = time.perf_counter() - t0
        clus = fit_and_cluster(
            inputs, plan, seed=seed, n_records=n, threshold=threshold,
            evidence=fieldevidence_condition,
            # Plaintext Splink as its users run it: Splink's own clustering (connected
            # components, in Splink's time), without wmw-link's split of components that
            # join different NINos or NHS numbers.
            splink_clustering=True,
            split_id_conflicts=False,
        )
        pairs = clus.linker.misc.query_sql(
            "SELECT p.source_dataset_l, p.unique_id_l, p.source_dataset_r, p.unique_id_r, "
            "p.match_weight, p.match_key, "
            f"({clus.evidence_sql.replace('gamma_', 'p.gamma_')}) AS linkable "
            f"FROM {clus.predictions.physical_name} p",
            output_type="pandas",
        )
        timings = {"load": load, **clus.timings, "threshold_weight": clus.weight}
        return clus.frame, pairs, timings
    finally:
        be.close()


def run_ecm(tables: dict[str, pd.DataFrame], pairs: pd.DataFrame) -> pd.DataFrame:
    """recordlinkage ECM on the given candidate pairs; returns (dataset, unique_id, cluster)."""
    import recordlinkage as rl

    allrec = pd.concat(
        [df.assign(source_dataset=ds) for ds, df in sorted(tables.items())], ignore_index=True
    )
    allrec["key"] = allrec["source_dataset"] + "|" + allrec["unique_id"]
    allrec = allrec.set_index("key")
    left = (pairs["source_dataset_l"] + "|" + pairs["unique_id_l"]).to_numpy()
    right = (pairs["source_dataset_r"] + "|" + pairs["unique_id_r"]).to_numpy()
    index = pd.MultiIndex.from_arrays([left, right])
    comp = rl.Compare()
    comp.string("forename", "forename", method="jarowinkler", threshold=0.88, label="forename")
    comp.string("surname", "surname", method="jarowinkler", threshold=0.88, label="surname")
    comp.exact("dob", "dob", label="dob")
    comp.exact("dob_ym", "dob_ym", label="dob_ym")
    comp.exact("pc_unit", "pc_unit", label="postcode")
    comp.exact("pc_sector", "pc_sector", label="sector")
    comp.exact("nino", "nino", label="nino")
    # No NHS-number feature: it is present in one source only, so it almost never agrees and
    # ECM's estimate for it is log(0) (the fit then collapsed to a handful of matches).
    comp.exact("sex", "sex", label="sex")
    return ecm_components(comp.compute(index, allrec), allrec.index.to_numpy())


def ecm_components(features: pd.DataFrame, nodes: np.ndarray) -> pd.DataFrame:
    """Fit recordlinkage's ECM on comparison ``features`` and group its matches into persons."""
    import recordlinkage as rl

    matches = rl.ECMClassifier(binarize=None).fit_predict(features)
    # ECM's two classes are unlabelled: on blocked pairs, where most pairs are matches, it can
    # converge with them swapped. Without labels, the match class is the one whose pairs agree
    # on more fields; take the complement when the fit chose the other.
    chosen = features.index.isin(matches)
    if chosen.any() and (~chosen).any():
        agree = features.sum(axis=1).to_numpy()
        if agree[chosen].mean() < agree[~chosen].mean():
            matches = features.index[~chosen]
    return components(
        nodes,
        matches.get_level_values(0).to_numpy(),
        matches.get_level_values(1).to_numpy(),
    )


def components(nodes: np.ndarray, left: np.ndarray, right: np.ndarray) -> pd.DataFrame:
    """Connected components of the links; returns (node, cluster) for every node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    idx = pd.Index(nodes)
    li, ri = idx.get_indexer(left), idx.get_indexer(right)
    n = len(idx)
    g = coo_matrix((np.ones(len(li)), (li, ri)), shape=(n, n))
    _, labels = connected_components(g, directed=False)
    return pd.DataFrame({"node": nodes, "cluster": labels})


__all__ = [
    "components",
    "plaintext_arrow",
    "plaintext_table",
    "plaintext_tables",
    "register_plain_tables",
    "run_ecm",
    "run_splink_plaintext",
    "token_block_rules",
]
