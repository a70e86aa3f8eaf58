"""Record-graph attacks: equal tokens across columns, and components of records sharing tokens."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from benchmarks.attacks.common import AttackResult, ranked, strings
from benchmarks.attacks.world import SCORED, Column
from scipy.sparse.csgraph import connected_components

#: Transforms that keep a field's identity (its whole value, or the key the field is matched
#: on): every record a token joins then has the same value of the field.
IDENTITY = {
    "forename": ("exact", "first_word", "key"),
    "surname": ("exact", "key"),
    "date_of_birth": ("exact",),
    "postcode": ("unit",),
}


def _token_values(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, token) pairs of a hmac or hmac_list column (list elements exploded)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_list(arr.type):
        rows = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
        vals = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
        return rows.astype(np.int64), vals.astype(np.int64)
    ok = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    vals = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
    return np.flatnonzero(ok), vals[ok].astype(np.int64)


def cross_column_equalities(tokens: pa.Table, columns: list[Column]) -> dict[str, int]:
    """Distinct token values shared by two different columns (any pair, any kind).

    Source: the graph view of Vidanage et al. (CIKM 2020) and issue 10: any equality between
    tokens of different columns is an edge an attacker can follow (v2's ``dob_prev = dob_exact``
    rebuilt the calendar; ``forename_exact = surname_exact`` joins the two name spaces). Returns
    ``"a = b" -> shared distinct values`` for pairs that share any.
    """
    vals = {}
    for c in columns:
        if c.name in tokens.column_names and c.kind in ("hmac", "hmac_list"):
            vals[c.name] = np.unique(_token_values(tokens[c.name])[1])
    names = list(vals)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            k = len(np.intersect1d(vals[a], vals[b], assume_unique=True))
            if k:
                out[f"{a} = {b}"] = k
    return out


def component_attack(
    tokens: pa.Table,
    columns: list[Column],
    reference_fields: Mapping[str, pa.Array],
    transform_values: Mapping[str, Mapping[str, pa.Array]],
) -> AttackResult:
    """Connect records that share a token in any column holding a field, label components by size.

    Source: issue 10; the chaining of hashed match-keys is the known weakness of composite
    keys (Randall et al., "Privacy-preserving record linkage on large real world datasets",
    J. Biomed. Inform. 2014, and ONS's match-key linkage of Census to PDS), and labelling
    groups by their size is the frequency attack of Kuzu et al. (2011) on groups instead of
    single values.

    For each scored field: every column whose pre-hash value includes the field under an
    identity-keeping transform (:data:`IDENTITY`; v3's composites with a date-of-birth or
    postcode context included) links the records sharing one of its values; connected
    components are then (subsets of) the records with one value of the field. Components are
    ranked by size and given the reference's values of that field (under the weakest
    identity transform the columns use) by frequency rank; the whole-field guess is the
    reference's most common whole value with that key.
    """
    t0 = time.perf_counter()
    res = AttackResult("record-graph components")
    n = tokens.num_rows
    for fld in SCORED:
        used = [
            c for c in columns
            if c.name in tokens.column_names and c.kind in ("hmac", "hmac_list")
            and any(f == fld and t in IDENTITY[fld] for f, t in c.parts)
        ]  # fmt: skip
        if not used:
            continue
        transforms = {t for c in used for f, t in c.parts if f == fld}
        weakest = next(t for t in reversed(IDENTITY[fld]) if t in transforms)
        rows_l, nodes_l = [], []
        offset = n
        for c in used:
            r, v = _token_values(tokens[c.name])
            _, inv = np.unique(v, return_inverse=True)
            rows_l.append(r)
            nodes_l.append(offset + inv)
            offset += int(inv.max()) + 1 if len(inv) else 0
        rows, nodes = np.concatenate(rows_l), np.concatenate(nodes_l)
        g = sp.coo_matrix((np.ones(len(rows), np.int8), (rows, nodes)), shape=(offset, offset))
        _, label = connected_components(g, directed=False)
        comp = label[:n]
        linked = np.zeros(n, bool)
        linked[rows] = True
        # rank components (of linked records) by size; give them the reference's values by rank
        keys = transform_values[fld][weakest]
        ref_keys = strings(keys)
        ok = ref_keys != None  # noqa: E711
        ref_distinct, _, _ = ranked(ref_keys[ok].astype(str))
        whole = _most_common_whole(ref_keys[ok], strings(reference_fields[fld])[ok])
        guess = np.full(n, None, dtype=object)
        if linked.any():
            _, _, rank = ranked(comp[linked])
            hit = rank < len(ref_distinct)
            g_key = np.full(len(rank), None, dtype=object)
            g_key[hit] = ref_distinct[rank[hit]]
            guess[linked] = np.array([whole.get(k) for k in g_key], dtype=object)
        res.fields[fld] = guess
        sizes = np.bincount(comp[linked]) if linked.any() else np.zeros(1, int)
        sizes = sizes[sizes > 0]
        res.notes[fld] = {
            "columns": len(used),
            "components": int(len(sizes)),
            "largest_component_share": float(sizes.max() / max(linked.sum(), 1)),
            "mean_records_per_component": float(sizes.mean()),
        }
    res.seconds = time.perf_counter() - t0
    return res


def _most_common_whole(keys: np.ndarray, whole: np.ndarray) -> dict[object, object]:
    """key -> the most common whole value with that key in the reference."""
    from collections import Counter

    c = Counter(zip(keys.tolist(), whole.tolist(), strict=True))
    best: dict[object, tuple[int, object]] = {}
    for (k, w), m in c.items():
        if k not in best or m > best[k][0]:
            best[k] = (m, w)
    return {k: w for k, (_, w) in best.items()}
