"""Propensity scores, matching within exact cells, kernel weights and covariate balance.

Matching is exact on the start month and local authority (the *cell*) and, within a cell, on
the logit of the propensity score. Both estimators work on one sorted array: the key
``cell * 1000 + logit`` keeps cells apart (logits are clipped to +-40), so a nearest neighbour
or a kernel window never crosses a cell. Everything is vectorised; no per-person loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from wmw_link.impact import draws

_CELL_GAP = 1000.0
_LOGIT_CLIP = 40.0


def design_matrix(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> tuple[np.ndarray, list[str]]:
    """Numeric covariates and one column per category (all levels: a balance row each)."""
    parts = [frame[numeric].astype(float)]
    for c in categorical:
        parts.append(pd.get_dummies(frame[c].astype(str), prefix=c, prefix_sep="=").astype(float))
    x = pd.concat(parts, axis=1)
    return x.to_numpy(), list(x.columns)


def propensity_logit(
    x: np.ndarray, treated: np.ndarray, draw: np.ndarray, max_controls_per_treated: int = 20
) -> np.ndarray:
    """Logit of P(treated | x) from a scikit-learn logistic regression.

    Controls beyond ``max_controls_per_treated`` per treated person are sampled for the fit:
    sampling controls shifts every logit by the same constant, which changes nothing within a
    cell, and keeps the fit fast at a million people. The sample is the controls with the
    smallest ``draw`` (each unit's keyed uniform, :mod:`wmw_link.impact.draws`), so a person
    is in it or not whatever the linkage called them.
    """
    t_idx = np.flatnonzero(treated)
    c_idx = np.flatnonzero(~treated)
    cap = max_controls_per_treated * max(len(t_idx), 1)
    if len(c_idx) > cap:
        c_idx = c_idx[draws.smallest(draw[c_idx], cap)]
    fit_idx = np.concatenate([t_idx, c_idx])
    scaler = StandardScaler().fit(x[fit_idx])
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(scaler.transform(x[fit_idx]), treated[fit_idx])
    logit = model.decision_function(scaler.transform(x))
    return np.clip(logit, -_LOGIT_CLIP, _LOGIT_CLIP)


@dataclass
class Matches:
    """Nearest-neighbour matches: for treated ``i``, controls ``idx[i, :]`` where ``ok``."""

    treated: np.ndarray  # positions (in the unit frame) of the treated
    control: np.ndarray  # positions of the controls, sorted by key
    idx: np.ndarray  # [n_treated, k] index into ``control``
    ok: np.ndarray  # [n_treated, k] a match within the caliper
    on_support: np.ndarray  # [n_treated] at least one match

    def control_weights(self, n_units: int, within: np.ndarray | None = None) -> np.ndarray:
        """Each control's total weight (each on-support treated person gives 1 in all).

        ``within``: weights of the controls inside a matched set (censoring weights).
        """
        w_in = self.ok * (1.0 if within is None else within[self.control[self.idx]])
        share = w_in / np.maximum(w_in.sum(axis=1), 1e-12)[:, None]
        w = np.zeros(n_units)
        np.add.at(w, self.control[self.idx[self.ok]], share[self.ok])
        return w


def _keys(cell: np.ndarray, logit: np.ndarray) -> np.ndarray:
    return cell.astype(float) * _CELL_GAP + logit


def nearest(
    cell: np.ndarray,
    logit: np.ndarray,
    treated: np.ndarray,
    k: int,
    caliper: float,
    control_weight: np.ndarray | None = None,
    tie_break: np.ndarray | None = None,
) -> Matches:
    """The ``k`` nearest controls (with replacement) in the same cell within ``caliper``.

    ``control_weight``: controls with weight 0 are skipped (bootstrap replicates).
    ``tie_break``: a uniform per unit (:mod:`wmw_link.impact.draws`). Controls with the same
    key as a treated person (the same covariates: common with banded histories) are equally
    near; each treated person then takes the ones nearest to their own uniform, so tied
    matches spread over the tied controls at random instead of every such treated person
    sharing the same first ``k`` (which made the estimate rest on a handful of people).
    Without it, ties go to the controls first in input order.
    """
    key = _keys(cell, logit)
    t = np.flatnonzero(treated)
    c = np.flatnonzero(~treated)
    if control_weight is not None:
        c = c[control_weight[c] > 0]
    u = np.zeros(len(key)) if tie_break is None else np.asarray(tie_break, dtype=float)
    c = c[np.lexsort((u[c], key[c]))]  # by key, ties by uniform (stable: input order)
    ck = key[c]
    tk = key[t]
    pos = np.searchsorted(ck, tk)
    if tie_break is not None and len(ck):
        # Within an exact tie, start where the treated person's uniform falls among the tied
        # controls' (sorted): ``first + u`` is increasing along the array, run after run.
        first = np.searchsorted(ck, ck)
        at = np.searchsorted(first + u[c], pos + u[t])
        tied = (pos < len(ck)) & (ck[np.minimum(pos, len(ck) - 1)] == tk)
        pos = np.where(tied, at, pos)
    # Candidates: a window either side wide enough to hold k valid controls, nearest in
    # position first ([0, -1, 1, -2, 2, ...]): among equal distances the stable sort below
    # keeps the ones next to ``pos``.
    width = k + 2 if control_weight is None else 3 * k + 6
    offs = np.stack([np.arange(0, width), -np.arange(1, width + 1)], axis=1).ravel()
    cand = pos[:, None] + offs[None, :]
    valid = (cand >= 0) & (cand < len(ck))
    cand = np.clip(cand, 0, max(len(ck) - 1, 0))
    dist = np.where(valid, np.abs(ck[cand] - tk[:, None]) if len(ck) else np.inf, np.inf)
    kk = min(k, dist.shape[1])
    part = np.argsort(dist, axis=1, kind="stable")[:, :kk]
    rows = np.arange(len(t))[:, None]
    idx = cand[rows, part]
    ok = dist[rows, part] <= caliper
    return Matches(t, c, idx, ok, ok.any(axis=1))


def kernel_control_means(
    cell: np.ndarray,
    logit: np.ndarray,
    treated: np.ndarray,
    y: np.ndarray,
    bandwidth: float,
    control_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Epanechnikov-kernel mean of each outcome over same-cell controls, per treated person.

    Uses prefix sums of ``w``, ``w x``, ``w x^2`` (times ``y``) over controls sorted by key: the
    kernel ``1 - ((x_j - x_i) / h)^2`` is a polynomial, so each window sum is three
    differences. Returns (means [n_treated, n_outcomes], on_support [n_treated]).
    """
    key = _keys(cell, logit)
    t = np.flatnonzero(treated)
    c = np.flatnonzero(~treated)
    wc = np.ones(len(c)) if control_weight is None else control_weight[c].astype(float)
    order = np.argsort(key[c], kind="stable")
    c, wc = c[order], wc[order]
    xk = key[c]
    yc = y[c].astype(float)
    tk = key[t]
    lo = np.searchsorted(xk, tk - bandwidth, side="left")
    hi = np.searchsorted(xk, tk + bandwidth, side="right")

    def window(v: np.ndarray) -> np.ndarray:
        cs = np.concatenate([np.zeros((1, *v.shape[1:])), np.cumsum(v, axis=0)])
        return cs[hi] - cs[lo]

    # The polynomial uses the logit itself, not the key: same differences within a cell,
    # and prefix sums of small numbers keep their precision.
    x = logit[c]
    s0, s1, s2 = window(wc), window(wc * x), window(wc * x * x)
    wy = wc[:, None] * yc
    t0, t1, t2 = window(wy), window(wy * x[:, None]), window(wy * (x * x)[:, None])
    h2 = bandwidth * bandwidth
    xi = logit[t]
    den = s0 - (s2 - 2 * xi * s1 + xi * xi * s0) / h2
    num = t0 - (t2 - 2 * xi[:, None] * t1 + (xi * xi)[:, None] * t0) / h2
    on = den > 1e-9
    means = np.where(on[:, None], num / np.where(on, den, 1.0)[:, None], np.nan)
    return means, on


def kernel_support(
    cell: np.ndarray, logit: np.ndarray, treated: np.ndarray, bandwidth: float
) -> np.ndarray:
    """Positions of the treated and of every control inside some treated person's kernel
    window: the only rows a kernel estimate (or a replicate of it) can use."""
    key = _keys(cell, logit)
    t = np.flatnonzero(treated)
    c = np.flatnonzero(~treated)
    c = c[np.argsort(key[c], kind="stable")]
    lo = np.searchsorted(key[c], key[t] - bandwidth, side="left")
    hi = np.searchsorted(key[c], key[t] + bandwidth, side="right")
    cover = np.zeros(len(c) + 1, dtype=np.int64)
    np.add.at(cover, lo, 1)
    np.add.at(cover, hi, -1)
    used = np.cumsum(cover[:-1]) > 0
    return np.sort(np.concatenate([t, c[used]]))


def smd(
    x: np.ndarray, treated: np.ndarray, w_treated: np.ndarray, w_control: np.ndarray,
    sd_pool: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Standardised mean differences of weighted treated vs weighted controls, per column."""
    mt = np.average(x[treated], axis=0, weights=w_treated[treated])
    mc = np.average(x[~treated], axis=0, weights=w_control[~treated])
    return np.where(sd_pool > 0, (mt - mc) / np.where(sd_pool > 0, sd_pool, 1.0), 0.0)


def pooled_sd(x: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """sqrt((var_treated + var_controls) / 2), before matching (the usual SMD scale)."""
    return np.sqrt((x[treated].var(axis=0) + x[~treated].var(axis=0)) / 2)
