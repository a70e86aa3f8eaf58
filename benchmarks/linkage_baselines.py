"""Plaintext yardsticks for the token linkage (benchmarks only; never part of the TTP path).

* :func:`plaintext_table` reads the synthetic extracts, keeps the rows that were tokenised (by
  the controllers' crosswalks), and normalises identifiers with the same normalisers the
  tokeniser uses, so both sides link the same records.
* :func:`run_splink_plaintext`: Splink on plaintext with the usual fuzzy comparisons
  (Jaro-Winkler names, Levenshtein dates and NINo, date parts, postcode hierarchy, term
  frequencies), trained and clustered by the same code as the token model
  (:func:`wmw_link.linkage.run.fit_and_cluster`): same blocks, prior, u, EM, household rule and
  label-free threshold.
* :func:`run_ecm`: recordlinkage's ECM (unsupervised Fellegi-Sunter on binary features) on the
  same candidate pairs, clustered by connected components.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import jellyfish
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wmw_link.agreement import Agreement, IdentifierType
from wmw_link.linkage.backends import open_backend
from wmw_link.linkage.run import fit_and_cluster
from wmw_link.linkage.settings import ModelPlan, settings_creator  # noqa: F401
from wmw_link.normalise import (
    normalise_dates,
    normalise_names,
    normalise_nhs_numbers,
    normalise_ninos,
    normalise_postcodes,
    normalise_sex,
    split_full_names,
)

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


def _read_extract(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    # Every column as text (record ids keep their leading zeros); empty cells stay "".
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    return pa.Table.from_pandas(df, preserve_index=False)


def _key(name: str | None, first_word: bool) -> str | None:
    if name is None:
        return None
    return name.split()[0] if first_word else name.replace(" ", "")


def _swap(d: dt.date | None) -> str | None:
    if d is None or d.day > 12 or d.day == d.month:
        return None
    return dt.date(d.year, d.day, d.month).isoformat()


def plaintext_table(
    agreement: Agreement, dataset: str, extract: Path, crosswalk: Path, today: dt.date
) -> pd.DataFrame:
    """Normalised plaintext identifiers of the tokenised rows of one extract."""
    ds = agreement.dataset(dataset)
    tbl = _read_extract(extract)
    keep = set(pq.read_table(crosswalk, columns=["record_id"])["record_id"].to_pylist())
    rid = tbl[ds.record_id].cast(pa.string())
    mask = pa.array([r in keep for r in rid.to_pylist()])
    tbl = tbl.filter(mask)
    out: dict[str, Any] = {"unique_id": tbl[ds.record_id].cast(pa.string()).to_pylist()}
    n = tbl.num_rows
    cols: dict[str, list[Any]] = {c: [None] * n for c in PLAIN_COLUMNS}
    for f in ds.identifiers:
        arr = tbl[f.column]
        if f.type == IdentifierType.FULL_NAME:
            fore, sur = split_full_names(arr)
            cols["forename"], cols["surname"] = fore.values.to_pylist(), sur.values.to_pylist()
        elif f.type in (IdentifierType.FORENAME, IdentifierType.SURNAME):
            cols[f.type.value] = normalise_names(arr).values.to_pylist()
        elif f.type == IdentifierType.DATE_OF_BIRTH:
            dates = normalise_dates(arr, f.format or "%Y-%m-%d", today).values.to_pylist()
            cols["dob"] = [d.isoformat() if d else None for d in dates]
            cols["dob_swap"] = [_swap(d) for d in dates]
            cols["dob_ym"] = [d.strftime("%Y-%m") if d else None for d in dates]
            cols["dob_year"] = [str(d.year) if d else None for d in dates]
        elif f.type == IdentifierType.POSTCODE:
            p = normalise_postcodes(arr)
            cols["pc_unit"] = p.unit.values.to_pylist()
            cols["pc_sector"] = p.sector.to_pylist()
            cols["pc_district"] = p.district.to_pylist()
        elif f.type == IdentifierType.NINO:
            cols["nino"] = normalise_ninos(arr).values.to_pylist()
        elif f.type == IdentifierType.NHS_NUMBER:
            cols["nhs"] = normalise_nhs_numbers(arr).values.to_pylist()
        elif f.type == IdentifierType.SEX:
            cols["sex"] = normalise_sex(arr).values.to_pylist()
    for part, first in (("forename", True), ("surname", False)):
        keys = [_key(v, first) for v in cols[part]]
        cols[f"{part}_nysiis"] = [jellyfish.nysiis(k) if k else None for k in keys]
        if part == "forename":
            cols["forename_initial"] = [k[0] if k else None for k in keys]
    out.update(cols)
    return pd.DataFrame(out)


def _plain_plan(u_fixed: dict[str, float]) -> ModelPlan:
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
    rules = [
        block_on("nino"),
        block_on("nhs"),
        block_on("dob", "surname_nysiis"),
        block_on("dob", "forename_nysiis"),
        block_on("forename_nysiis", "surname_nysiis", "dob_year"),
        block_on("forename_initial", "surname_nysiis", "pc_unit"),
        "l.dob_swap = r.dob AND l.surname_nysiis = r.surname_nysiis",
        "l.forename = r.surname AND l.surname = r.forename",
    ]
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


def run_splink_plaintext(
    tables: dict[str, pd.DataFrame], tmp: Path, seed: int, threshold: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Plaintext Splink; returns (clusters frame, scored pairs, timings)."""
    t0 = time.perf_counter()
    be = open_backend("duckdb", tmp)
    try:
        inputs = []
        for ds, df in sorted(tables.items()):
            be.con.register(f"plain_df_{ds}", df)
            be.con.execute(f"CREATE TABLE plain_{ds} AS SELECT * FROM plain_df_{ds}")
            be.con.unregister(f"plain_df_{ds}")
            inputs.append(be.db_api.register(f"plain_{ds}", dataset_display_name=ds))
        union = " UNION ALL ".join(f"SELECT nino, nhs FROM plain_{ds}" for ds in tables)
        u_fixed = {}
        for c in ("nino", "nhs"):
            d = be.scalar(f"SELECT COUNT(DISTINCT {c}) FROM ({union})")
            if d and d > 1:
                u_fixed[c] = 1.0 / d
        plan = _plain_plan(u_fixed)
        n = sum(len(df) for df in tables.values())
        load = time.perf_counter() - t0
        clus = fit_and_cluster(inputs, plan, seed=seed, n_records=n, threshold=threshold)
        pairs = clus.linker.misc.query_sql(
            "SELECT p.source_dataset_l, p.unique_id_l, p.source_dataset_r, p.unique_id_r, "
            f"p.match_weight, ({clus.evidence_sql.replace('gamma_', 'p.gamma_')}) AS linkable "
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


__all__ = ["components", "plaintext_table", "run_ecm", "run_splink_plaintext"]
