"""Pattern mining and graph matching on Bloom-filter name encodings."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from benchmarks.attacks.common import AttackResult, int_tokens

#: A bigram's bit is taken when it is set this much more often with the bigram than without.
MIN_SCORE = 0.3


@dataclass
class _Reference:
    """One name part of the reference: distinct names, counts, bigram incidence."""

    names: np.ndarray  # object, distinct normalised names
    counts: np.ndarray  # int64
    grams: sp.csr_matrix  # names x vocabulary (0/1)
    n_grams: np.ndarray  # distinct bigrams per name


def _reference(names: pa.Array, grams: pa.Array, vocab: dict[str, int]) -> _Reference:
    ok = pc.is_valid(names)
    names, grams = names.filter(ok), grams.filter(ok)
    enc = pc.dictionary_encode(names)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(idx, minlength=len(enc.dictionary))
    first = np.full(len(enc.dictionary), -1)
    first[idx[::-1]] = np.arange(len(idx))[::-1]  # first row of each distinct name
    g = grams.take(pa.array(first))
    rows, cols = [], []
    for i, gl in enumerate(g.to_pylist()):
        for x in sorted(set(gl or ())):
            rows.append(i)
            cols.append(vocab.setdefault(x, len(vocab)))
    return _Reference(
        np.array(enc.dictionary.to_pylist(), dtype=object),
        counts.astype(np.int64),
        sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols))),
        np.bincount(rows, minlength=len(first)),
    )


def _bits(tokens: pa.Table, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Filters as (n, bits) booleans and the row validity mask."""
    cols = [int_tokens(tokens[w]) for w in words]
    valid = np.all([ok for _, ok in cols], axis=0)
    u = np.stack([v for v, _ in cols], axis=1).view(np.uint64)
    shifts = np.arange(64, dtype=np.uint64)
    bits = ((u[:, :, None] >> shifts) & np.uint64(1)).astype(bool).reshape(len(u), -1)
    return bits, valid


def _unique_rows(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(bits, axis=0) for wide boolean rows, fast: rows packed into one void value."""
    packed = np.ascontiguousarray(np.packbits(bits, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inv, cnt = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    return bits[first], inv.ravel(), cnt


def _vote(
    pairs: list[tuple[np.ndarray, sp.csr_matrix, np.ndarray]], n_vocab: int, n_bits: int
) -> np.ndarray:
    """Bit of each bigram from aligned (filter, name) pairs: the bit most often set with the
    bigram, minus how often it is set without it (Kuzu et al.'s constraints, as votes).
    -1 where no bit stands out."""
    a = np.zeros((n_vocab, n_bits), np.float64)
    with_g = np.zeros(n_vocab)
    bits_total = np.zeros(n_bits)
    w_total = 0.0
    for bits, grams, w in pairs:
        g = grams.tocsr().copy()
        g.resize((g.shape[0], n_vocab))
        wb = bits.astype(np.float64) * w[:, None]
        a += np.asarray(g.T @ wb)
        with_g += np.asarray(g.T @ w).ravel()
        bits_total += wb.sum(axis=0)
        w_total += float(w.sum())
    pos = a / np.maximum(with_g, 1e-9)[:, None]
    neg = (bits_total[None, :] - a) / np.maximum(w_total - with_g, 1e-9)[:, None]
    score = pos - neg
    best = score.argmax(axis=1)
    ok = (with_g > 0) & (score[np.arange(n_vocab), best] >= MIN_SCORE)
    return np.where(ok, best, -1)


def _encode(ref: _Reference, gram_bit: np.ndarray, n_bits: int) -> sp.csr_matrix:
    """Reference names' filters under a learnt bigram -> bit map (unknown bigrams set nothing)."""
    g = ref.grams.tocoo()
    keep = g.col < len(gram_bit)
    rows, cols = g.row[keep], gram_bit[g.col[keep]]
    ok = cols >= 0
    m = sp.csr_matrix(
        (np.ones(int(ok.sum()), np.float32), (rows[ok], cols[ok])), shape=(len(ref.names), n_bits)
    )
    m.data[:] = 1.0  # OR, not a count, where two bigrams share a bit
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


#: Filters with no exact match are compared (Dice) with this many most frequent reference names.
DICE_CANDIDATES = 3000
#: At most about this many (filter, name) Dice products per decode.
DICE_BUDGET = 30_000_000


def _row_keys(bits: np.ndarray) -> np.ndarray:
    packed = np.ascontiguousarray(np.packbits(bits, axis=1))
    return packed.view(np.dtype((np.void, packed.shape[1]))).ravel()


def _decode(
    filters: np.ndarray, counts: np.ndarray, ref: _Reference, enc: sp.csr_matrix, min_count: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Best reference name of each distinct target filter: an identical filter (the most
    frequent such name), else the highest Dice among the most frequent reference names.
    Returns (name index or -1, Dice)."""
    enc_bits = enc.toarray().astype(bool)
    out = np.full(len(filters), -1)
    dice = np.zeros(len(filters))
    # Identical filters: the most frequent reference name with that filter.
    ref_keys = _row_keys(enc_bits)
    order = np.lexsort((-ref.counts, ref_keys))
    keys_sorted = ref_keys[order]
    first = np.r_[True, keys_sorted[1:] != keys_sorted[:-1]]
    uniq_keys, uniq_idx = keys_sorted[first], order[first]
    t_keys = _row_keys(filters)
    at = np.searchsorted(uniq_keys, t_keys)
    at_c = np.minimum(at, len(uniq_keys) - 1)
    found = (at < len(uniq_keys)) & (uniq_keys[at_c] == t_keys)
    out[found], dice[found] = uniq_idx[at_c[found]], 1.0
    rest = np.flatnonzero((out < 0) & (counts >= min_count))
    # A budget of Dice products: salted filters are nearly all distinct, so compare each with
    # fewer (the most frequent) names rather than run for hours.
    k = int(min(DICE_CANDIDATES, max(200, DICE_BUDGET // max(len(rest), 1))))
    cand = np.argsort(-ref.counts, kind="stable")[:k]
    e = enc_bits[cand].astype(np.float32)
    pop_e = e.sum(axis=1)
    prior = np.log1p(ref.counts[cand]) * 1e-6  # ties go to the more frequent name
    for s in range(0, len(rest), 1000):
        rows = rest[s : s + 1000]
        t = filters[rows].astype(np.float32)
        d = 2.0 * (t @ e.T) / np.maximum(t.sum(axis=1)[:, None] + pop_e[None, :], 1) + prior
        best = d.argmax(axis=1)
        out[rows] = cand[best]
        dice[rows] = d[np.arange(len(rows)), best]
    return out, dice


def pattern_mining(
    tokens: pa.Table,
    bloom_columns: Mapping[str, tuple[list[str], str | None]],
    reference: Mapping[str, tuple[pa.Array, pa.Array]],
    groups: np.ndarray | None = None,
    iterations: int = 3,
    name: str = "Bloom pattern mining",
) -> AttackResult:
    """Learn the bit of every bigram without the key, then decode names by best-matching filter.

    Sources: Christen, Ranbaduge, Vatsalan and Schnell, "Precise and fast cryptanalysis for
    Bloom filter based privacy-preserving record linkage" (IEEE TKDE 2018) and Christen,
    Schnell, Vatsalan and Ranbaduge (PAKDD 2017): frequent patterns of bits are frequent
    bigrams; Kuzu, Kantarcioglu, Durham and Malin (PETS 2011): constraint satisfaction between
    aligned filters and names; Vidanage, Ranbaduge, Christen and Schnell, "A graph matching
    attack on privacy-preserving record linkage" (CIKM 2020): match encoded to plaintext values
    by their frequencies and neighbourhoods, then re-identify.

    1. Seed: within each popcount (a filter's bit count is its name's number of distinct
       bigrams, bar collisions), align distinct filters and reference names by frequency rank.
    2. Constraints as votes: a bigram's bit is set in the filters of aligned names that hold the
       bigram and rarely in the others; every bigram takes its best-voted bit. One map serves
       every part whose filters share a Bloom domain.
    3. Decode: encode every reference name with the learnt map and give each target filter the
       name of highest Dice (ties to the more frequent). Filters decoded exactly become the next
       round's aligned pairs; repeat.

    ``reference``: per part, (reference names, their bigram lists as the published schema makes
    them, e.g. ``bloom_inputs``). ``groups``: optional per-record group key (e.g. the salt as the
    attacker estimates it); each group is attacked on its own (per-salt variant).
    """
    t0 = time.perf_counter()
    res = AttackResult(name)
    parts = [p for p in bloom_columns if all(w in tokens.column_names for w in bloom_columns[p][0])]
    if not parts:
        res.notes["applicable"] = False
        return res
    vocab: dict[str, int] = {}
    refs = {p: _reference(reference[p][0], reference[p][1], vocab) for p in parts}
    target = {p: _bits(tokens, bloom_columns[p][0]) for p in parts}
    n = tokens.num_rows
    guesses = {p: np.full(n, None, dtype=object) for p in parts}
    if groups is None:
        groups = np.zeros(n, np.int64)
    gvals, ginv = np.unique(groups, return_inverse=True)
    learnt_bits = []
    for gi in range(len(gvals)):
        rows = np.flatnonzero(ginv == gi)
        if gvals[gi] == -1:  # records the caller leaves out
            continue
        learnt_bits.append(
            _attack_group(
                {p: (target[p][0][rows], target[p][1][rows]) for p in parts},
                refs,
                vocab,
                iterations,
                guesses,
                rows,
            )
        )
    res.fields = {p: guesses[p] for p in parts}
    res.notes["groups"] = int((gvals != -1).sum())
    res.notes["bigrams_mapped_mean"] = float(np.mean(learnt_bits)) if learnt_bits else 0.0
    res.notes["reference_bigrams"] = len(vocab)
    res.notes["applicable"] = True
    res.seconds = time.perf_counter() - t0
    return res


#: Frequency weights against co-occurrence tried in the graph matching (0.2 was best on v2 at
#: 50,000 people; a greedy start can go wrong, so the attacker keeps the map under which most
#: records' filters equal a reference name's filter, which it can see without the truth).
ALPHAS = (0.1, 0.2, 0.4)
#: Bigrams seen fewer times than this in the reference are left to the voting rounds.
MIN_REF_COUNT = 3


def _stats(
    filters: np.ndarray, counts: np.ndarray, grams: sp.csr_matrix, ref_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bit and bigram frequencies and pair co-occurrences (target bits, reference bigrams)."""
    c = counts.astype(np.float32)
    f = filters.astype(np.float32)
    p = (c @ f) / c.sum()
    pj = (f.T * c) @ f / c.sum()
    w = ref_counts.astype(np.float32)
    q = np.asarray(grams.T @ w).ravel() / w.sum()
    qj = np.asarray((grams.T @ (sp.diags(w) @ grams)).todense()) / w.sum()
    return p, pj, q, qj


#: Pairs matched one by one before all the rest are assigned at once (Hungarian) on their
#: co-occurrence with these.
GREEDY_STEPS = 100


def _graph_match(
    p: np.ndarray, pj: np.ndarray, q: np.ndarray, qj: np.ndarray, n_ref: float, alpha: float
) -> np.ndarray:
    """Bigram -> bit by graph matching (Vidanage et al. 2020): greedy, most confident first,
    on frequency and on co-occurrence with the pairs matched so far; then assign every bigram at
    once (Hungarian) on its co-occurrence profile with the matched ones, until stable. -1 where
    unmatched."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    gs = np.flatnonzero(q * n_ref >= MIN_REF_COUNT)
    bs = np.flatnonzero(p > 0)
    gram_bit = np.full(len(q), -1)
    if len(gs) == 0 or len(bs) == 0:
        return gram_bit
    lp, lq = np.log(np.maximum(p, 1e-9)), np.log(np.maximum(q, 1e-9))
    freq = np.abs(lq[gs][:, None] - lp[bs][None, :])
    dist = np.zeros_like(freq)
    used = np.zeros(len(bs), bool)
    done = np.zeros(len(gs), bool)
    for j in range(min(len(gs), len(bs), GREEDY_STEPS)):
        cost = alpha * freq + dist / max(j, 1)
        cost[:, used] = np.inf
        cost[done] = np.inf
        two = np.partition(cost, 1, axis=1) if cost.shape[1] > 1 else np.c_[cost, cost]
        with np.errstate(invalid="ignore"):
            margin = np.where(done, -np.inf, two[:, 1] - two[:, 0])
        gi = int(np.nanargmax(np.where(np.isnan(margin), np.inf, margin)))
        bi = int(np.argmin(cost[gi]))
        g, b = gs[gi], bs[bi]
        gram_bit[g] = b
        used[bi], done[gi] = True, True
        dist += np.abs(
            (qj[gs, g] / max(q[g], 1e-9))[:, None] - (pj[bs, b] / max(p[b], 1e-9))[None, :]
        )
        dist += np.abs(
            (qj[g, gs] / np.maximum(q[gs], 1e-9))[:, None]
            - (pj[b, bs] / np.maximum(p[bs], 1e-9))[None, :]
        )
    for _ in range(10):
        mg = np.flatnonzero(gram_bit >= 0)
        bj = gram_bit[mg]
        pc_, qc_ = pj[:, bj] / np.maximum(p[bj], 1e-9), qj[:, mg] / np.maximum(q[mg], 1e-9)
        pr_ = (pj[bj, :] / np.maximum(p, 1e-9)).T
        qr_ = (qj[mg, :] / np.maximum(q, 1e-9)).T
        d = cdist(qc_[gs], pc_[bs], "cityblock") + cdist(qr_[gs], pr_[bs], "cityblock")
        cost = d / len(mg) + alpha * np.abs(lq[gs][:, None] - lp[bs][None, :])
        r, ci = linear_sum_assignment(cost)
        new = gram_bit.copy()
        new[gs[r]] = bs[ci]
        if (new == gram_bit).all():
            break
        gram_bit = new
    return gram_bit


#: Words tried in each position of a two-word name.
TWO_WORD_CANDIDATES = 2000


def _gram_bits(
    texts: list[str], vocab: dict[str, int], gram_bit: np.ndarray, n_bits: int
) -> np.ndarray:
    """Filters (under the learnt map) of the distinct bigrams of strings taken as they are."""
    out = np.zeros((len(texts), n_bits), bool)
    for i, t in enumerate(texts):
        for g in {t[k : k + 2] for k in range(len(t) - 1)}:
            v = vocab.get(g, -1)
            if 0 <= v < len(gram_bit) and gram_bit[v] >= 0:
                out[i, gram_bit[v]] = True
    return out


def _two_words(
    filters: np.ndarray,
    todo: np.ndarray,
    ref: _Reference,
    vocab: dict[str, int],
    gram_bit: np.ndarray,
) -> dict[int, str]:
    """Decode filters of two-word names from words of the reference (Kuzu et al.'s constraint
    view): the filter of ``a b`` is that of ``_a `` joined with that of `` b_``, so a word
    fits the first place when its ``_a `` bits are all set, the second when its `` b_`` bits
    are; a pair whose union is the filter exactly decodes it (the most frequent pair wins)."""
    rows = np.flatnonzero(todo)
    if len(rows) == 0:
        return {}
    words: dict[str, int] = {}
    for name, c in zip(ref.names.tolist(), ref.counts.tolist(), strict=True):
        for w in str(name).split(" "):
            words[w] = words.get(w, 0) + c
    # A budget of products, as for Dice: fewer candidate words when many filters are left.
    k = int(min(TWO_WORD_CANDIDATES, max(100, DICE_BUDGET // len(rows))))
    top = sorted(words, key=lambda w: -words[w])[:k]
    pad = "_"  # both schemas pad names with "_" (BLOOM_PAD)
    n_bits = filters.shape[1]
    first = _gram_bits([f"{pad}{w} " for w in top], vocab, gram_bit, n_bits)
    last = _gram_bits([f" {w}{pad}" for w in top], vocab, gram_bit, n_bits)
    weight = np.array([words[w] for w in top], float)
    f = filters[rows].astype(np.float32)
    fits_first = (f @ first.T.astype(np.float32)) == first.sum(axis=1)[None, :]
    fits_last = (f @ last.T.astype(np.float32)) == last.sum(axis=1)[None, :]
    out: dict[int, str] = {}
    for j, r in enumerate(rows):
        a, b = np.flatnonzero(fits_first[j]), np.flatnonzero(fits_last[j])
        if len(a) == 0 or len(b) == 0 or len(a) * len(b) > 20_000:
            continue
        union = first[a][:, None, :] | last[b][None, :, :]
        exact = (union == filters[r][None, None, :]).all(axis=2)
        ia, ib = np.nonzero(exact)
        if len(ia):
            k = int(np.argmax(weight[a[ia]] * weight[b[ib]]))
            out[int(r)] = f"{top[a[ia[k]]]} {top[b[ib[k]]]}"
    return out


def _attack_group(
    target: dict[str, tuple[np.ndarray, np.ndarray]],
    refs: dict[str, _Reference],
    vocab: dict[str, int],
    iterations: int,
    guesses: dict[str, np.ndarray],
    rows: np.ndarray,
) -> int:
    n_bits = next(iter(target.values()))[0].shape[1]
    n_vocab = len(vocab)
    distinct: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for p, (bits, valid) in target.items():
        if valid.any():
            filt, inv, _ = _unique_rows(bits[valid])
            distinct[p] = (filt, inv, np.flatnonzero(valid))
    if not distinct:
        return 0
    # One map serves every part (they share the Bloom domain): pool their statistics.
    pooled = np.concatenate([target[p][0][target[p][1]] for p in distinct])
    filt_all, _, cnt_all = _unique_rows(pooled)

    def padded(m: sp.csr_matrix) -> sp.csr_matrix:
        m = m.tocsr().copy()
        m.resize((m.shape[0], n_vocab))
        return m

    grams = sp.vstack([padded(refs[p].grams) for p in distinct]).tocsr()
    ref_counts = np.concatenate([refs[p].counts for p in distinct])
    p_, pj, q, qj = _stats(filt_all, cnt_all, grams, ref_counts)
    best_share = -1.0
    for alpha in ALPHAS:
        candidate = _graph_match(p_, pj, q, qj, float(ref_counts.sum()), alpha)
        hits = 0
        for p, (filt, inv, _) in distinct.items():
            cnt = np.bincount(inv, minlength=len(filt))
            enc = _encode(refs[p], candidate, n_bits)
            found, _ = _decode(filt, cnt, refs[p], enc, min_count=np.iinfo(np.int64).max)
            hits += int(cnt[found >= 0].sum())
        if hits > best_share:
            best_share, gram_bit = hits, candidate
    for it in range(iterations + 1):
        pairs = []
        for p, (filt, inv, valid_rows) in distinct.items():
            ref = refs[p]
            cnt = np.bincount(inv, minlength=len(filt))
            # Learning rounds decode repeated filters only (most of the mass, fewer products).
            best, dice = _decode(
                filt, cnt, ref, _encode(ref, gram_bit, n_bits), 1 if it == iterations else 2
            )
            names = np.where(best >= 0, ref.names[np.maximum(best, 0)], None)
            if it == iterations:
                # Names of two words the reference never holds together ("mary ann").
                for j, name in _two_words(filt, dice < 0.999, ref, vocab, gram_bit).items():
                    names[j] = name
            guesses[p][rows[valid_rows]] = names[inv]
            sure = (best >= 0) & (dice >= 0.8)
            pairs.append((filt[sure], ref.grams[best[sure]], np.sqrt(cnt[sure]).astype(np.float64)))
        if it == iterations:
            break
        # Decoded names vote for every bigram's bit (collisions allowed); keep the matched
        # bit where the votes say nothing.
        voted = _vote(pairs, n_vocab, n_bits)
        gram_bit = np.where(voted >= 0, voted, gram_bit)
    return int((gram_bit >= 0).sum())
