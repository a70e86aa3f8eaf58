"""Frequency (rank) alignment of token columns against a reference population."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from benchmarks.attacks.common import AttackResult, int_tokens, ranked, strings
from benchmarks.attacks.world import Column


def frequency_alignment(
    tokens: pa.Table, columns: list[Column], reference_inputs: Mapping[str, pa.Array]
) -> AttackResult:
    """Label every hmac and hmac_list token column by frequency rank against the reference.

    Source: Kuzu, Kantarcioglu, Durham and Malin, "A constraint satisfaction cryptanalysis of
    Bloom filters in private record linkage" (PETS 2011), whose first step aligns encoded and
    plaintext values by frequency; Christen, Schnell, Vatsalan and Ranbaduge, "Efficient
    cryptanalysis of Bloom filters for privacy-preserving record linkage" (PAKDD 2017), and
    Vidanage, Christen, Ranbaduge and Schnell (CIKM 2020) on frequency attacks in general.

    The attacker computes the pre-hash value of each column for the reference population as the
    published schema defines it (``reference_inputs``: the schema's ``composite_inputs`` of the
    reference's normalised fields), ranks distinct values by count on both sides and maps the
    token of rank *i* to the reference value of rank *i*. List columns are aligned element by
    element (a record's guess is the set of its elements' guesses). A column whose pre-hash
    value is a whole field, or a composite with a whole field among its parts, also gives that
    field's guess (each such column is one guess; a field counts as recovered when any is right).
    """
    t0 = time.perf_counter()
    res = AttackResult("frequency alignment")
    sorted_pairs = _sorted_pairs()
    n = tokens.num_rows
    for col in columns:
        if col.name not in tokens.column_names or col.name not in reference_inputs:
            continue
        ref = reference_inputs[col.name]
        if col.kind == "hmac":
            ref_vals = strings(ref)
            ref_vals = ref_vals[ref_vals != None]  # noqa: E711 (object array)
            ref_distinct, _, _ = ranked(ref_vals.astype(str))
            vals, valid = int_tokens(tokens[col.name])
            guess = np.full(n, None, dtype=object)
            if valid.any() and len(ref_distinct):
                _, _, rank = ranked(vals[valid])
                hit = rank < len(ref_distinct)
                g = np.full(len(rank), None, dtype=object)
                g[hit] = ref_distinct[rank[hit]]
                guess[valid] = g
        elif col.kind == "hmac_list":
            guess = _align_lists(tokens[col.name].combine_chunks(), ref)
        else:
            continue
        res.columns[col.name] = guess
        for fld, g in _field_guesses(col, guess, sorted_pairs).items():
            res.fields.setdefault(fld, []).append(g)
    res.seconds = time.perf_counter() - t0
    return res


def _align_lists(target: pa.Array, ref: pa.Array) -> np.ndarray:
    n = len(target)
    out = np.full(n, None, dtype=object)
    ref_flat = pc.list_flatten(ref).to_numpy(zero_copy_only=False).astype(str)
    if len(ref_flat) == 0:
        return out
    ref_distinct, _, _ = ranked(ref_flat)
    flat = pc.list_flatten(target)
    if len(flat) == 0:
        return out
    vals = pc.cast(flat, pa.int64()).to_numpy(zero_copy_only=False)
    _, _, rank = ranked(vals)
    labels = np.where(
        rank < len(ref_distinct), ref_distinct[np.minimum(rank, len(ref_distinct) - 1)], None
    )
    parents = pc.list_parent_indices(target).to_numpy(zero_copy_only=False)
    offsets = np.r_[0, np.flatnonzero(np.diff(parents)) + 1, len(parents)]
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        group = labels[a:b]
        if all(x is not None for x in group):
            out[parents[a]] = "|".join(sorted(set(group)))
    return out


#: Composite parts are joined with this separator (``wmw_link.tokenise.composites.SEP``).
SEP = "\x1f"


def _sorted_pairs() -> frozenset[str]:
    """Columns whose two name parts the published code hashes in sorted order (their order
    does not say which is the forename)."""
    try:
        from wmw_link.tokenise import composites
    except ImportError:
        return frozenset()
    return frozenset(getattr(composites, "_SORTED_PAIRS", frozenset()))


def _field_guesses(
    col: Column, guess: np.ndarray, sorted_pairs: frozenset[str]
) -> dict[str, np.ndarray]:
    """Whole-field guesses carried by a column's guessed pre-hash value."""
    from benchmarks.attacks.world import WHOLE

    if col.kind != "hmac":
        return {}
    if len(col.parts) == 1:
        whole = col.whole_field
        return {whole: guess} if whole else {}
    out = {}
    for i, (fld, transform) in enumerate(col.parts):
        if WHOLE.get(fld) != transform or (col.name in sorted_pairs and i < 2):
            continue
        split = [g.split(SEP) if g is not None else None for g in guess]
        out[fld] = np.array(
            [s[i] if s is not None and len(s) == len(col.parts) else None for s in split],
            dtype=object,
        )
    return out
