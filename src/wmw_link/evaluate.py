"""Score linkage maps against a synthetic ground truth: pairwise and cluster-level figures.

Pairwise figures count unordered pairs of records: a pair is *predicted* when both records got
the same person id, *true* when the truth gives them the same person. Counting is done from
cluster sizes (the number of pairs in a group of n is n(n-1)/2) in DuckDB
(:mod:`wmw_link.pair_sql`), so no pair is ever listed and a million-record evaluation stays
cheap. Pairs are split into those within one source (duplicates
inside an extract) and those across two sources.

Evaluation is a synthetic-data tool: it needs the truth and the controllers' local crosswalks
(row_ref -> record_id), which never reach the trusted third party in real use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wmw_link import equity
from wmw_link.errors import InputDataError
from wmw_link.pair_sql import INTEGER_TYPES, Cells, column_names, quote, relation_columns
from wmw_link.resources import close_duckdb, open_duckdb

_MAP_SUFFIX = ".map.parquet"
_CROSSWALK_SUFFIX = ".crosswalk.parquet"


@dataclass(frozen=True)
class PairCounts:
    """Pair counts and the precision, recall and F1 they give."""

    true_positive: int
    predicted: int
    actual: int

    @property
    def false_positive(self) -> int:
        return self.predicted - self.true_positive

    @property
    def false_negative(self) -> int:
        return self.actual - self.true_positive

    @property
    def precision(self) -> float:
        # No predicted pairs means no wrong ones: precision 1 by convention.
        return self.true_positive / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.actual if self.actual else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if (p + r) else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "true_positive": self.true_positive,
            "false_positive": self.false_positive,
            "false_negative": self.false_negative,
            "predicted_pairs": self.predicted,
            "true_pairs": self.actual,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True)
class Evaluation:
    """Everything :func:`evaluate` measures."""

    records: int
    pairwise: PairCounts
    within_source: PairCounts
    across_source: PairCounts
    clusters: dict[str, float | int]
    household_false_merge: dict[str, float | int] | None = None
    coverage: dict[str, int] = field(default_factory=dict)
    #: attribute -> one entry per group (see :mod:`wmw_link.equity`); empty without people.
    by_group: dict[str, list[dict[str, float | int | str]]] = field(default_factory=dict)
    #: groups more than :data:`~wmw_link.equity.GAP` below the overall precision or recall.
    equity_flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pairwise"] = self.pairwise.to_dict()
        out["within_source"] = self.within_source.to_dict()
        out["across_source"] = self.across_source.to_dict()
        return out

    def summary(self) -> str:
        """A few readable lines (counts and rates only)."""
        lines = [f"records scored: {self.records:,}"]
        for label, pc in (
            ("all pairs", self.pairwise),
            ("within source", self.within_source),
            ("across sources", self.across_source),
        ):
            lines.append(
                f"{label:>15}: precision {pc.precision:.4f}  recall {pc.recall:.4f}  "
                f"F1 {pc.f1:.4f}  (TP {pc.true_positive:,}, FP {pc.false_positive:,}, "
                f"FN {pc.false_negative:,})"
            )
        c = self.clusters
        lines.append(
            f"       clusters: {c['predicted_clusters']:,} predicted for {c['true_persons']:,} "
            f"true persons; exactly recovered {c['exact_person_rate']:.4f}; "
            f"persons split {c['persons_split']:,}; clusters merging persons "
            f"{c['clusters_merging_persons']:,}"
        )
        if self.household_false_merge is not None:
            h = self.household_false_merge
            lines.append(
                f"     households: {h['false_pairs_same_household']:,} of "
                f"{h['false_pairs']:,} false pairs join members of one household "
                f"(household false-merge rate {h['household_false_merge_rate']:.5f} of "
                f"{h['household_pairs']:,} household pairs)"
            )
        for attribute, groups in self.by_group.items():
            lines.append(f"  by {attribute}:")
            lines.extend(
                f"    {g['group']:<24} precision {g['precision']:.4f}  recall {g['recall']:.4f}  "
                f"F1 {g['f1']:.4f}  ({g['records']:,} records, {g['true_pairs']:,} true pairs)"
                for g in groups
            )
        if self.by_group:
            gap = 100 * equity.GAP
            if self.equity_flags:
                lines.append(f"  groups more than {gap:.0f} points below the overall figures:")
                lines.extend(f"    {f}" for f in self.equity_flags)
            else:
                lines.append(f"  no group more than {gap:.0f} points below the overall figures")
        return "\n".join(lines)


def pair_counts(
    frame: pd.DataFrame | pa.Table, pred: str = "pred", true: str = "true", con: Any = None
) -> PairCounts:
    """Count true-positive, predicted and actual pairs from two labellings of the same rows.

    Args:
        frame: one row per record with a predicted and a true cluster label.
        pred: column of predicted cluster labels.
        true: column of true cluster labels.
        con: a DuckDB connection to count in (default: a new one).

    Returns:
        The pair counts (precision, recall and F1 are properties).
    """
    names = column_names(frame)
    for col in (pred, true):
        if col not in names:
            raise InputDataError(f"pair_counts(): missing column {col}")
    if isinstance(frame, pa.Table):
        labels = pa.table({"pred": frame[pred], "true": frame[true]})
    else:
        labels = pd.DataFrame({"pred": frame[pred].to_numpy(), "true": frame[true].to_numpy()})
    with _connection(con) as c:
        cells = Cells(c, _with_dataset(labels), [])
        try:
            return _pair_counts(cells)
        finally:
            cells.drop()


def _with_dataset(frame: pd.DataFrame | pa.Table) -> pd.DataFrame | pa.Table:
    if isinstance(frame, pa.Table):
        return frame.append_column("dataset", pa.array([""] * frame.num_rows, pa.string()))
    return frame.assign(dataset="")


@contextlib.contextmanager
def _connection(con: Any) -> Iterator[Any]:
    """``con``, or a new DuckDB connection (memory limit, private spill folder) closed after."""
    if con is not None:
        yield con
        return
    own, spill = open_duckdb()
    try:
        yield own
    finally:
        close_duckdb(own, spill)


def _pair_counts(cells: Cells, where: str = "TRUE") -> PairCounts:
    return PairCounts(cells.pairs("p, t", where), cells.pairs("p", where), cells.pairs("t", where))


def _within(cells: Cells) -> PairCounts:
    return PairCounts(cells.pairs("ds, p, t"), cells.pairs("ds, p"), cells.pairs("ds, t"))


def _cluster_figures(cells: Cells) -> dict[str, float | int]:
    # A person is exactly recovered when their records form one predicted cluster holding
    # nothing else: one predicted label for the person, one person for that label.
    # Rows alone in their cluster (prow 1) or person (trow 1) have one person or one
    # cluster; only the others are grouped.
    persons = cells.persons()
    n_true, n_pred, exact, split, merging, singletons = cells.con.execute(
        f"""
        WITH pk AS (SELECT p, count(DISTINCT t) AS k FROM {persons} WHERE prow > 1
                    GROUP BY p),
        tk AS (SELECT t, count(DISTINCT p) AS k FROM {persons} WHERE trow > 1 GROUP BY t),
        r AS (SELECT t, prow, trow, size, coalesce(pk.k, 1) AS pk, coalesce(tk.k, 1) AS tk
              FROM {persons} LEFT JOIN pk USING (p) LEFT JOIN tk USING (t))
        SELECT
            (SELECT count(*) FROM r WHERE trow = 1) + (SELECT count(*) FROM tk),
            (SELECT count(*) FROM r WHERE prow = 1) + (SELECT count(*) FROM pk),
            (SELECT count(*) FROM r WHERE pk = 1 AND tk = 1 AND trow = 1)
                + (SELECT count(DISTINCT t) FROM r WHERE pk = 1 AND tk = 1 AND trow > 1),
            (SELECT count(*) FROM tk WHERE k > 1), (SELECT count(*) FROM pk WHERE k > 1),
            (SELECT count(*) FROM r WHERE prow = 1 AND size = 1)
        """
    ).fetchall()[0]
    return {
        "true_persons": int(n_true),
        "predicted_clusters": int(n_pred),
        "exactly_recovered_persons": int(exact),
        "exact_person_rate": exact / n_true if n_true else 1.0,
        "persons_split": int(split),
        "clusters_merging_persons": int(merging),
        "singleton_clusters": int(singletons),
    }


def _household_figures(cells: Cells, all_false: int) -> dict[str, float | int]:
    """False pairs that join two different members of one household."""
    fam = "household IS NOT NULL"
    # Pairs of different people in the same household.
    same_house = cells.pairs("household", fam) - cells.pairs("t", fam)
    # Predicted pairs inside a household, minus the true ones among them.
    false_same_house = cells.pairs("p, household", fam) - cells.pairs("p, t", fam)
    return {
        "household_pairs": int(same_house),
        "false_pairs": int(all_false),
        "false_pairs_same_household": int(false_same_house),
        "household_false_merge_rate": false_same_house / same_house if same_house else 0.0,
        "share_of_false_pairs": false_same_house / all_false if all_false else 0.0,
    }


#: Person-level attributes the equity report breaks figures down by, when the frame has them.
GROUP_COLUMNS = ("ethnic_group", "ethnicity_detailed", "sex", "age_band")


def _names(frame: pd.DataFrame | pa.Table | str, con: Any) -> list[str]:
    if not isinstance(frame, str):
        return column_names(frame)
    if con is None:
        raise TypeError("a table or view to score needs the DuckDB connection that holds it")
    return relation_columns(con, frame)


def score(frame: pd.DataFrame | pa.Table | str, con: Any = None) -> Evaluation:
    """Score one table of records with predicted and true labels.

    The pairs are counted in DuckDB (:mod:`wmw_link.pair_sql`), under a memory limit with a
    spill folder, so millions of records score in seconds.

    Args:
        frame: columns ``dataset``, ``pred`` (predicted person), ``true`` (true person) and,
            optionally, ``household`` (true household id, null when unknown) and the
            :data:`GROUP_COLUMNS` for the equity report. Labels may be text or integers.
            Or the name of a table or view in ``con`` with those columns (the records then
            stay in the database).
        con: a DuckDB connection to count in (default: a new one, see
            :func:`wmw_link.resources.open_duckdb`); needed with a table name.

    Returns:
        The evaluation.

    Raises:
        InputDataError: a column is missing, or a predicted or true label is empty.
    """
    names = _names(frame, con)
    has_household = "household" in names
    group_cols = [c for c in GROUP_COLUMNS if c in names]
    with _connection(con) as c:
        cells = Cells(c, frame, (["household"] if has_household else []) + group_cols)
        try:
            total = _pair_counts(cells)
            within = _within(cells)
            household = _household_figures(cells, total.false_positive) if has_household else None
            groups = {col: equity.group_figures(cells, col) for col in group_cols}
            clusters = _cluster_figures(cells)
            records = int(cells.scalar_row("SELECT coalesce(sum(n), 0) FROM {cells}")[0])
        finally:
            cells.drop()
    across = PairCounts(
        total.true_positive - within.true_positive,
        total.predicted - within.predicted,
        total.actual - within.actual,
    )
    return Evaluation(
        records=records,
        pairwise=total,
        within_source=within,
        across_source=across,
        clusters=clusters,
        household_false_merge=household,
        by_group={c: [g.to_dict() for g in gs] for c, gs in groups.items()},
        equity_flags=[
            f"{c} {f}"
            for c, gs in groups.items()
            for f in equity.flags(gs, total.precision, total.recall)
        ],
    )


def score_pairs(
    frame: pd.DataFrame | pa.Table | str, con: Any = None
) -> tuple[PairCounts, dict[str, float | int] | None]:
    """Only the pairwise counts and, with a ``household`` column, the household figures of
    :func:`score`, in five queries instead of twenty.

    Args:
        frame: as for :func:`score` (group columns are ignored).
        con: a DuckDB connection to count in (default: a new one).
    """
    has_household = "household" in _names(frame, con)
    with _connection(con) as c:
        cells = Cells(c, frame, ["household"] if has_household else [])
        try:
            total = _pair_counts(cells)
            household = _household_figures(cells, total.false_positive) if has_household else None
        finally:
            cells.drop()
    return total, household


@dataclass(frozen=True)
class SweepPoint:
    """The pairwise figures of one threshold of :func:`threshold_sweep`."""

    threshold: float
    pairwise: PairCounts
    #: False pairs joining two members of one household (None without a household column).
    household_false_pairs: int | None


def threshold_sweep(con: Any, records: str, edges: str, thresholds: Any) -> list[SweepPoint]:
    """Pairwise figures of the connected components of the edges at or above each threshold.

    The same figures as clustering the edges with weight >= t and calling :func:`score_pairs`
    for each threshold t, in one pass: thresholds are taken from high to low, each adding its
    band of edges to the components of the last (a union of components is again a
    component), so every edge is joined once. Pairs only ever join as the threshold falls, so
    the true pairs and same-household pairs to watch are those joined at the lowest
    threshold; each threshold checks only those not yet joined. Predicted pairs follow from
    component sizes, updated where components merge. The records and edges are read from
    DuckDB as integer arrays; nothing is listed per record in Python.

    Args:
        con: the DuckDB connection holding ``records`` and ``edges``.
        records: table or view, one row per record: ``node`` (integers 0 to n-1), ``true``
            (true person, never null) and optionally ``household`` (null when unknown).
        edges: table or view of ``a``, ``b`` (nodes) and ``weight``.
        thresholds: the weights to score at, in the order wanted.

    Returns:
        One point per threshold, in the order given.

    Raises:
        InputDataError: a column is missing, the nodes are not 0 to n-1 each once, a true
            person is empty, or an edge names no record.
    """
    from wmw_link.linkage.components import components

    ts = np.asarray(thresholds, dtype=float)
    if ts.size == 0:
        return []
    types = dict((r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {records}").fetchall())
    lacking = [c for c in ("node", "true") if c not in types]
    if lacking:
        raise InputDataError(
            f"threshold_sweep(): {records}: missing column(s) {', '.join(lacking)}"
        )
    house = "household" in types
    t_sql, t_from = _integer_codes(records, "true", types["true"])
    h_sql, h_from = _integer_codes(records, "household", types["household"]) if house else ("0", "")
    got = con.execute(
        f'SELECT node, {t_sql} AS t, {h_sql} AS h, "true" IS NULL AS no_t'
        f"{', household IS NOT NULL' if house else ', FALSE'} AS hk "
        f"FROM {records} r{t_from}{h_from}"
    ).fetchnumpy()
    node = np.asarray(got["node"], dtype=np.int64)
    n = len(node)
    seen = np.zeros(n, dtype=bool)
    if n and (node.min() < 0 or node.max() >= n):
        raise InputDataError(f"threshold_sweep(): {records}: node must number the records 0 to n-1")
    seen[node] = True
    if not seen.all():
        raise InputDataError(f"threshold_sweep(): {records}: node must number the records 0 to n-1")
    no_t = int(np.asarray(got["no_t"]).sum())
    if no_t:
        raise InputDataError(
            f"threshold_sweep(): {records}: column true is empty in {no_t:,} row(s)"
        )
    # Per node, in node order.
    true = np.empty(n, dtype=np.int64)
    true[node] = np.asarray(got["t"], dtype=np.int64)
    hh = np.empty(n, dtype=np.int64)
    hh[node] = np.asarray(np.ma.filled(got["h"], 0), dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    known[node] = np.asarray(got["hk"], dtype=bool)
    del got, node, seen

    e = con.execute(f"SELECT a, b, weight FROM {edges} WHERE weight >= ?", [float(ts.min())])
    e = e.fetchnumpy()
    by_weight = np.argsort(-np.asarray(e["weight"], dtype=float), kind="stable")
    a = np.asarray(e["a"], dtype=np.int64)[by_weight]
    b = np.asarray(e["b"], dtype=np.int64)[by_weight]
    neg_w = -np.asarray(e["weight"], dtype=float)[by_weight]  # ascending, for searchsorted
    del e, by_weight
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n):
        raise InputDataError(f"threshold_sweep(): {edges}: an edge names a node not in {records}")
    _, per_person = np.unique(true, return_counts=True)
    actual = int((per_person * (per_person - 1) // 2).sum())

    # Pairs joined at the lowest threshold: true pairs, and pairs of two people of one
    # household (the only ones that can become household false pairs).
    lowest = components(n, a, b)
    comp_size = np.bincount(lowest, minlength=n)
    linked = np.flatnonzero(comp_size[lowest] > 1)
    true_a, true_b = _pairs_agreeing(linked, [lowest[linked], true[linked]])
    # A component holds two people unless all its pairs are true pairs; only those can
    # join two people of one household.
    true_in = np.bincount(lowest[true_a], minlength=n)
    mixed = true_in != comp_size * (comp_size - 1) // 2
    in_house = linked[known[linked] & mixed[lowest[linked]]]
    house_a, house_b = _pairs_agreeing(in_house, [lowest[in_house], hh[in_house]])
    other = true[house_a] != true[house_b]
    house_a, house_b = house_a[other], house_b[other]
    del lowest, linked, in_house, other, comp_size, true_in, mixed

    label = np.arange(n, dtype=np.int64)  # each node's component, named by one of its nodes
    size = np.ones(n, dtype=np.int64)  # a component's size, at its name
    slot = np.zeros(n, dtype=np.int64)  # scratch: a touched component's place among them
    predicted = tp = house_false = 0
    done = 0  # edges (sorted by weight, highest first) already joined
    out: dict[int, SweepPoint] = {}
    for i in np.argsort(-ts, kind="stable"):
        end = int(np.searchsorted(neg_w, -ts[i], side="right"))
        la, lb = label[a[done:end]], label[b[done:end]]
        done = end
        join = la != lb
        if join.any():
            la, lb = la[join], lb[join]
            # The components these edges touch, numbered 0..k-1, and joined among themselves.
            mark = np.zeros(n, dtype=bool)
            mark[la] = True
            mark[lb] = True
            touched = np.flatnonzero(mark)
            slot[touched] = np.arange(len(touched))
            merged = components(len(touched), slot[la], slot[lb])
            # Each merged component is named by one of its parts.
            name = np.empty(int(merged.max()) + 1, dtype=np.int64)
            name[merged] = touched
            old = size[touched]
            new = np.bincount(merged, weights=old).astype(np.int64)
            predicted += int((new * (new - 1) // 2).sum() - (old * (old - 1) // 2).sum())
            size[name] = new
            moved = mark[label]
            label[moved] = name[merged[slot[label[moved]]]]
        joined = label[true_a] == label[true_b]
        tp += int(joined.sum())
        true_a, true_b = true_a[~joined], true_b[~joined]
        joined = label[house_a] == label[house_b]
        house_false += int(joined.sum())
        house_a, house_b = house_a[~joined], house_b[~joined]
        out[int(i)] = SweepPoint(
            float(ts[i]), PairCounts(tp, predicted, actual), house_false if house else None
        )
    return [out[i] for i in range(len(ts))]


def _integer_codes(relation: str, column: str, sql_type: str) -> tuple[str, str]:
    """SQL giving a column of ``relation`` (aliased r) as integers, equal where the values
    are equal (null stays null): the column itself if it is an integer type, else a number
    for each distinct value, by a join (returned second, to append to ``FROM relation r``)."""
    col = quote(column)
    if sql_type.upper() in INTEGER_TYPES:
        return f"CAST(r.{col} AS BIGINT)", ""
    alias = f"codes_{column}"
    return (
        f"{alias}.code",
        f" LEFT JOIN (SELECT v, row_number() OVER () AS code FROM (SELECT DISTINCT {col} AS v "
        f"FROM {relation} WHERE {col} IS NOT NULL)) {alias} ON {alias}.v = r.{col}",
    )


def _pairs_agreeing(ids: np.ndarray, keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair of ``ids`` whose ``keys`` (arrays beside ids) all agree."""
    if len(ids) == 0:
        return ids[:0], ids[:0]
    # One int64 key when the ranges allow (a sort of one array is several times faster than
    # lexsort of two), else lexsort.
    spans = [int(k.max()) - int(k.min()) + 1 for k in keys]
    if np.prod([float(x) for x in spans]) < 2.0**62:
        key = np.zeros(len(ids), dtype=np.int64)
        for k, span in zip(keys, spans, strict=True):
            key = key * span + (k - k.min())
        order = np.argsort(key)
        ks = key[order]
        first = np.ones(len(ids), dtype=bool)
        first[1:] = ks[1:] != ks[:-1]
    else:
        order = np.lexsort(keys[::-1])
        first = np.zeros(len(ids), dtype=bool)
        first[0] = True
        for k in keys:
            ks = k[order]
            first[1:] |= ks[1:] != ks[:-1]
    starts = np.flatnonzero(first)
    start = starts[np.cumsum(first) - 1]  # each sorted position's run start
    behind = np.arange(len(ids)) - start  # earlier members of its run: its partners
    right = np.repeat(np.arange(len(ids)), behind)
    left = np.repeat(start, behind) + (
        np.arange(len(right)) - np.repeat(np.cumsum(behind) - behind, behind)
    )
    return ids[order[left]], ids[order[right]]


def _read_dir(
    directory: Path, suffix: str, columns: list[str], what: str, recursive: bool = False
) -> pd.DataFrame:
    pattern = f"*{suffix}"
    if not directory.is_dir():
        files: list[Path] = []
    else:
        files = sorted(directory.rglob(pattern) if recursive else directory.glob(pattern))
    if not files:
        raise InputDataError(f"{directory}: no *{suffix} files ({what})")
    parts = []
    for f in files:
        try:
            tbl = pq.read_table(f)
        except Exception as e:  # pyarrow raises several types for a broken file
            raise InputDataError(f"{f}: not a readable Parquet file ({type(e).__name__})") from None
        lacking = [c for c in columns if c not in tbl.column_names]
        if lacking:
            raise InputDataError(f"{f}: missing column(s) {', '.join(lacking)} ({what})")
        df = tbl.select(columns).to_pandas()
        df["dataset"] = f.name[: -len(suffix)]
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


#: Default least share of map rows that must join to the crosswalks, and of those that must
#: join to the truth: below it the inputs do not belong together and any score would mislead.
MIN_JOIN = 0.95


def _merge(left: pd.DataFrame, right: pd.DataFrame, on: list[str], what: str) -> pd.DataFrame:
    try:
        return left.merge(right, on=on, how="left", validate="one_to_one")
    except pd.errors.MergeError:
        raise InputDataError(
            f"{what}: a key ({', '.join(on)}) appears more than once; each record must appear once"
        ) from None


def _check_join(
    joined: pd.Series, datasets: pd.Series, min_join: float, what: str, hint: str
) -> None:
    """Refuse when, in any dataset, fewer than ``min_join`` of the rows joined."""
    share = joined.groupby(datasets.to_numpy()).agg(["sum", "count"])
    bad = share[share["sum"] < min_join * share["count"]]
    if bad.empty:
        return
    parts = [
        f"{ds} {int(r['sum']):,} of {int(r['count']):,} ({r['sum'] / r['count']:.1%})"
        for ds, r in bad.iterrows()
    ]
    raise InputDataError(
        f"{what} (at least {min_join:.0%} needed in each dataset): {'; '.join(parts)}. "
        f"{hint}; no scores were computed"
    )


_TRUTH_NEEDS = (
    "the truth needs columns dataset (text: the extract's dataset name), record_id (the "
    "extract's record id, text or integer) and person_id (any id, one value per true person)"
)


def _column_names(path: Path, what: str) -> list[str]:
    """The column names of a Parquet file, or an error saying it is missing or unreadable."""
    if not path.is_file():
        raise InputDataError(f"{path}: {what} file not found")
    try:
        return pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types for a broken file
        raise InputDataError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None


def _read_truth(truth: Path) -> pd.DataFrame:
    """The truth's (dataset, record_id, person_id), or an error naming what is wrong."""
    names = _column_names(truth, "truth")
    lacking = [c for c in ("dataset", "record_id", "person_id") if c not in names]
    if lacking:
        raise InputDataError(
            f"{truth}: missing column(s) {', '.join(lacking)}; {_TRUTH_NEEDS} "
            f"(columns found: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})"
        )
    df = pq.read_table(truth, columns=["dataset", "record_id", "person_id"]).to_pandas()
    for col in df.columns:
        empty = df[col].isna().to_numpy()
        if empty.any():
            rows = ", ".join(str(int(i) + 1) for i in empty.nonzero()[0][:5])
            raise InputDataError(
                f"{truth}: column {col} is empty in {int(empty.sum()):,} row(s) (first: "
                f"row {rows}); every truth row needs a dataset, record_id and person_id"
            )
    df["dataset"] = df["dataset"].astype(str)
    df["record_id"] = df["record_id"].astype(str)
    if not pd.api.types.is_integer_dtype(df["person_id"]):
        df["person_id"] = df["person_id"].astype(str)
    return df


def _read_people(people: Path) -> pd.DataFrame:
    """Person-level attributes by person id: household and the equity report's groups."""
    names = _column_names(people, "people")
    if "person_id" not in names:
        raise InputDataError(f"{people}: missing column person_id (the people's true ids)")
    age_col = next((c for c in names if c.startswith("age")), None)
    wanted = ["household_id", "ethnicity", "ethnicity_detailed", "sex", age_col]
    cols = [c for c in wanted if c in names]
    ppl = pq.read_table(people, columns=["person_id", *cols]).to_pandas()
    ppl["person_id"] = ppl["person_id"].astype(str)
    ppl = ppl.drop_duplicates("person_id").set_index("person_id")
    out = pd.DataFrame(index=ppl.index)
    if "household_id" in ppl:
        out["household"] = ppl["household_id"]
    if "ethnicity" in ppl:
        out["ethnic_group"] = ppl["ethnicity"]
    for c in ("ethnicity_detailed", "sex"):
        if c in ppl:
            out[c] = ppl[c]
    if age_col is not None and pd.api.types.is_numeric_dtype(ppl[age_col]):
        out["age_band"] = equity.age_band(ppl[age_col])
    return out


def load_scoring_frame(
    maps: str | Path,
    truth: str | Path,
    crosswalks: str | Path,
    people: str | Path | None = None,
    min_join: float = MIN_JOIN,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Join maps, crosswalks and truth into one (dataset, pred, true[, household]) table.

    Raises:
        InputDataError: a file is missing or unreadable, or the inputs do not belong together:
            in some dataset fewer than ``min_join`` of the map rows have their row_ref in the
            crosswalks, or fewer than ``min_join`` of those have their record id in the truth.
    """
    maps_df = _read_dir(Path(maps), _MAP_SUFFIX, ["row_ref", "person_id"], "linkage maps")
    # Crosswalks may sit in one directory or in each controller's own output directory below it.
    xw = _read_dir(
        Path(crosswalks), _CROSSWALK_SUFFIX, ["record_id", "row_ref"], "crosswalks", recursive=True
    )
    truth_df = _read_truth(Path(truth))
    xw["record_id"] = xw["record_id"].astype(str)
    truth_df["record_id"] = truth_df["record_id"].astype(str)
    m = _merge(maps_df, xw, ["dataset", "row_ref"], f"{crosswalks} (crosswalks)")
    has_xw = m["record_id"].notna()
    _check_join(
        has_xw,
        m["dataset"],
        min_join,
        f"join maps -> crosswalks ({maps} -> {crosswalks}): too few map row_refs are in the "
        "crosswalks",
        "The crosswalks are not those of the tokenise run these maps were linked from",
    )
    no_crosswalk = int((~has_xw).sum())
    m = m[has_xw]
    m = _merge(m, truth_df, ["dataset", "record_id"], f"{truth} (truth)")
    has_truth = m["person_id_y"].notna()
    _check_join(
        has_truth,
        m["dataset"],
        min_join,
        f"join crosswalks -> truth ({crosswalks} -> {truth}): too few crosswalk record ids are "
        "in the truth",
        "The truth is not that of the synthetic data these extracts came from",
    )
    no_truth = int((~has_truth).sum())
    m = m[has_truth]
    frame = pd.DataFrame(
        {
            "dataset": m["dataset"].to_numpy(),
            "pred": m["person_id_x"].astype(str).to_numpy(),
            "true": m["person_id_y"].to_numpy(),
        }
    )
    if people is not None:
        attrs = _read_people(Path(people))
        # Ids as text on both sides: a truth and a people file may store them differently.
        key = frame["true"].astype(str)
        for col in attrs.columns:
            frame[col] = key.map(attrs[col]).to_numpy()
    in_maps = set(zip(maps_df["dataset"], maps_df["row_ref"], strict=True))
    xw_keys = xw[["dataset", "row_ref"]].itertuples(index=False, name=None)
    coverage = {
        "map_rows": len(maps_df),
        "map_rows_without_crosswalk": no_crosswalk,
        "map_rows_without_truth": no_truth,
        "crosswalk_rows_missing_from_maps": sum(1 for k in xw_keys if k not in in_maps),
        "truth_rows": len(truth_df),
    }
    return frame, coverage


def evaluate(
    maps: str | Path,
    truth: str | Path,
    crosswalks: str | Path,
    people: str | Path | None = None,
    min_join: float = MIN_JOIN,
) -> Evaluation:
    """Score linkage maps against the synthetic truth.

    Args:
        maps: directory of ``<dataset>.map.parquet`` (row_ref, person_id).
        truth: ``truth.parquet`` (dataset, record_id, person_id).
        crosswalks: directory holding ``<dataset>.crosswalk.parquet`` (record_id, row_ref),
            directly or in subdirectories (e.g. one per controller).
        people: optional ``people.parquet``; when it has ``household_id``, the household
            false-merge rate is reported; ``ethnicity``, ``ethnicity_detailed``, ``sex`` and
            an ``age...`` column give the equity report (figures by group, with flags).
        min_join: least share of each dataset's map rows that must be found in the
            crosswalks, and of those that must be found in the truth (inputs that do not
            belong together would otherwise give misleading scores).

    Returns:
        Pairwise precision/recall/F1 (all, within and across sources), cluster figures and
        coverage counts (map rows that could not be scored, truth rows not in any map).

    Raises:
        InputDataError: a directory holds no maps or crosswalks, a file lacks a column, or
            too few rows join (maps -> crosswalks, crosswalks -> truth).
    """
    frame, coverage = load_scoring_frame(maps, truth, crosswalks, people, min_join)
    ev = score(frame)
    return Evaluation(**{**ev.__dict__, "coverage": coverage})


__all__ = [
    "MIN_JOIN",
    "Evaluation",
    "PairCounts",
    "SweepPoint",
    "evaluate",
    "load_scoring_frame",
    "pair_counts",
    "score",
    "score_pairs",
    "threshold_sweep",
]
