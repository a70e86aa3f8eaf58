"""Average effect of support on the treated (ATT): nearest-neighbour and kernel matching,
bootstrap intervals, breakdowns and the balance table, *before* disclosure control."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from wmw_link.errors import InputDataError
from wmw_link.impact import covariates as cov
from wmw_link.impact import draws, matching
from wmw_link.outcomes.presets import PRESETS, SustainedRule

#: Rate outcomes (percentage points) and money outcomes (pounds a month).
MONEY_OUTCOMES = tuple(f"earnings_{h}m" for h in cov.HORIZONS)
BREAKDOWNS = ("la", "support_type", "gender", "age_band", "disability", "ethnicity")
SMD_TARGET = 0.05


@dataclass(frozen=True)
class Settings:
    """Method parameters (recorded in ``impact.json``)."""

    neighbours: int = 5
    caliper_sd: float = 0.1  # caliper and kernel bandwidth, in SDs of the propensity logit
    bootstrap: int = 200
    seed: int = 2025
    max_controls_per_treated: int = 20  # controls sampled for the propensity fit
    censoring_weights: bool = True  # undo the pool's selection on later starts


@dataclass
class Estimates:
    """Raw estimates (never written as they are: :mod:`wmw_link.impact.publish` protects)."""

    outcomes: pd.DataFrame  # outcome, unit, estimate, ci_low, ci_high, kernel*, naive, n_*
    breakdowns: pd.DataFrame  # breakdown, group, outcome, estimate, ci_low, ci_high, n_treated
    balance: pd.DataFrame  # covariate, smd_before, smd_after, mean_treated, mean_control_*
    counts: dict[str, int] = field(default_factory=dict)
    excluded_covariates: dict[str, str] = field(default_factory=dict)
    #: Largest censoring weight of a matched comparison person (a diagnostic, not a count).
    max_censoring_weight: float = 1.0
    #: Person ids of the treated the estimates cover (evaluation against a synthetic truth).
    treated_ids: list[str] = field(default_factory=list)


def outcome_columns(frame: pd.DataFrame, rules: Sequence[SustainedRule]) -> pd.DataFrame:
    """Outcome matrix: employed, sustained (each rule), on benefit and earnings at 6 and 12."""
    emp = frame[[f"emp_{m}" for m in range(1, cov.MONTHS + 1)]].to_numpy(bool)
    earn = frame[[f"earn_{m}" for m in range(1, cov.MONTHS + 1)]].to_numpy(float)
    starts = list(frame["start"])
    out = {}
    for h in cov.HORIZONS:
        out[f"employed_{h}m"] = frame[f"employed_{h}m"].to_numpy(float)
    for rule in rules:
        for h in cov.HORIZONS:
            out[f"sustained_{rule.name}_{h}m"] = rule.evaluate(emp, earn, starts, h).astype(float)
    for h in cov.HORIZONS:
        out[f"on_benefit_{h}m"] = frame[f"on_benefit_{h}m"].to_numpy(float)
    for h in cov.HORIZONS:
        out[f"earnings_{h}m"] = frame[f"earnings_{h}m"].to_numpy(float)
    return pd.DataFrame(out)


def _nn_diffs(
    m: matching.Matches,
    y: np.ndarray,
    wc: np.ndarray | None = None,
    fallback: np.ndarray | None = None,
) -> np.ndarray:
    """y_treated - (weighted) mean of matched controls' y, per treated person (NaN off support).

    ``fallback``: control weights for a treated person whose matched controls all have weight
    0 in ``wc`` (a bootstrap replicate that drew none of them), so no one drops out of a
    replicate for that reason: dropping them would shift every replicate the same way.
    """
    ctrl = m.control[m.idx]
    w = m.ok.astype(float) * (1.0 if wc is None else wc[ctrl])
    tot = w.sum(axis=1)
    if fallback is not None:
        empty = (tot <= 0) & m.on_support
        w[empty] = m.ok[empty] * fallback[ctrl[empty]]
        tot = w.sum(axis=1)
    y0 = np.einsum("ik,iko->io", w, y[ctrl]) / np.where(tot > 0, tot, 1.0)[:, None]
    d = y[m.treated] - y0
    d[tot <= 0] = np.nan
    return d


def _control_regression(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Every unit's predicted outcomes from a weighted least-squares fit on the matched
    controls (weights ``w``). The dummies of each categorical covariate are collinear with the
    intercept; least squares (lstsq) then picks one of the equivalent solutions, and every
    row obeys the same constraint, so the predictions do not depend on which."""
    used = w > 0
    if used.sum() < 2:
        return np.zeros_like(y)
    model = LinearRegression().fit(x[used], y[used], sample_weight=w[used])
    return np.asarray(model.predict(x)).reshape(y.shape)


def _wmean(d: np.ndarray, wt: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(d)
    w = wt[:, None] * ok
    return np.where(ok, d, 0.0).T @ wt / np.maximum(w.sum(axis=0), 1e-12)


def _group_means(d: np.ndarray, wt: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Weighted mean of each column of ``d`` per group code -> [k, n_outcomes]."""
    ok = ~np.isnan(d)
    out = np.empty((k, d.shape[1]))
    for j in range(d.shape[1]):
        w = wt * ok[:, j]
        num = np.bincount(codes, weights=np.where(ok[:, j], d[:, j], 0.0) * wt, minlength=k)
        den = np.bincount(codes, weights=w, minlength=k)
        out[:, j] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def estimate(
    frame: pd.DataFrame,
    settings: Settings = Settings(),
    control_weighter: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> Estimates:
    """Propensity-score matching estimates from the unit frame of :func:`covariates.features`.

    Args:
        frame: one row per unit (treated and comparison people) with covariates, outcomes
            and ``draw_key`` (:func:`wmw_link.impact.cohort.build_units`).
        settings: method parameters.
        control_weighter: given the matched comparison people (``person_id``, ``start``,
            ``draw_key``),
            their weights within a matched set (:mod:`wmw_link.impact.censoring`); 1 if None.
    """
    rules = list(PRESETS.values())
    # Key order (draws.py): ties in matching and every draw follow the records, not the ids.
    frame = frame.sort_values(["draw_key", "person_id"], kind="stable", ignore_index=True)
    keys = frame["draw_key"].to_numpy(np.uint64)
    treated = frame["treated"].to_numpy(bool)
    ymat = outcome_columns(frame, rules)
    names = list(ymat.columns)
    y = ymat.to_numpy(float)

    numeric = [c for c in cov.NUMERIC if frame[c].astype(float).std() > 0]
    excluded = {c: "no variation" for c in cov.NUMERIC if c not in numeric}
    excluded["ethnicity"] = "recorded by the hubs only: unknown for almost every non-participant"
    excluded["disability (self-reported)"] = "recorded by the hubs only; pip_before is used"
    cats = list(cov.CATEGORICAL)
    x, cols = matching.design_matrix(frame, numeric, cats)
    # Exact on month and area (the plan reports by both), on being in work the day before
    # (participants are mostly out of work, and nothing predicts next year's work better) and
    # on any work in the 24 months before (no earlier job, no pay band: a fifth of the pool
    # and hard for a linear score to balance).
    exact_cols = ["la", "start_month", "in_work_at_start", "any_work_24m"]
    start = pd.to_datetime(frame["start"])
    frame["start_month"] = start.dt.year * 100 + start.dt.month  # (strftime is slow at 1M)
    cell = frame.groupby(exact_cols, sort=True).ngroup().to_numpy()
    # The propensity model also sees the exact-matching cells (so scores are comparable
    # within a cell) - as dummies of LA and month.
    xe, _ = matching.design_matrix(frame, [], exact_cols[:2])
    logit = matching.propensity_logit(
        np.hstack([x, xe]),
        treated,
        draws.uniform(keys, settings.seed, "propensity_sample"),
        settings.max_controls_per_treated,
    )
    caliper = settings.caliper_sd * float(np.std(logit))
    m = matching.nearest(
        cell, logit, treated, settings.neighbours, caliper,
        tie_break=draws.uniform(keys, settings.seed, "match_ties"),
    )  # fmt: skip
    if not m.on_support.any():
        raise InputDataError(
            "impact: no participant has a comparison person with the same start month, area "
            "and work status within the caliper (no common support)"
        )
    w_ipc = np.ones(len(frame))
    used = np.unique(m.control[m.idx[m.ok]])
    if control_weighter is not None and len(used):
        w_ipc[used] = control_weighter(frame.iloc[used][["person_id", "start", "draw_key"]])
    d_nn = _nn_diffs(m, y, w_ipc)
    # Diagnostic (raw only, not published): Abadie-Imbens bias correction - the matched
    # difference less what a linear model of the controls' outcomes says the covariate gap
    # between a participant and their matches is worth.
    mu0 = _control_regression(x, y, m.control_weights(len(frame), w_ipc))
    d_bc = _nn_diffs(m, y - mu0, w_ipc)
    # Kernel: the same weights for every control in a window (all of them, not only matched
    # ones, could be in one; those never matched count 1, a small approximation).
    # Only rows some kernel window reaches: the bootstrap then never sums over the others.
    ks = matching.kernel_support(cell, logit, treated, caliper)
    k_cell, k_logit, k_treated, k_y = cell[ks], logit[ks], treated[ks], y[ks]
    k_means, k_on = matching.kernel_control_means(
        k_cell, k_logit, k_treated, k_y, caliper, w_ipc[ks]
    )
    d_k = y[m.treated] - k_means
    ones_t = np.ones(len(m.treated))
    att_nn = _wmean(d_nn, ones_t)
    att_k = _wmean(d_k, ones_t)
    naive = y[treated].mean(axis=0) - y[~treated].mean(axis=0)

    # Breakdown groups of the treated.
    tf = frame.iloc[m.treated]
    groups = {}
    for b in BREAKDOWNS:
        vals = tf[b].fillna("Unknown").astype(str).to_numpy()
        levels, codes = np.unique(vals, return_inverse=True)
        groups[b] = (levels, codes)

    boot_nn = np.empty((settings.bootstrap, len(names)))
    boot_k = np.empty((settings.bootstrap, len(names)))
    boot_bc = np.empty((settings.bootstrap, len(names)))
    boot_groups = {b: np.empty((settings.bootstrap, len(lv), len(names)))
                   for b, (lv, _) in groups.items()}  # fmt: skip
    for r in range(settings.bootstrap):
        # Poisson(1) weights: a resample of treated and controls without copying rows. The
        # propensity model and the matched sets stay fixed; a control drawn twice counts
        # twice in its sets, one not drawn drops out of them. Keyed per unit and replicate
        # (draws.py): a person has the same weight in replicate r however they are labelled.
        wr = draws.poisson1(keys, settings.seed, "bootstrap", r)
        wt = wr[m.treated]
        wc = wr * w_ipc
        db = _nn_diffs(m, y, wc, fallback=w_ipc)
        boot_bc[r] = _wmean(_nn_diffs(m, y - mu0, wc, fallback=w_ipc), wt)
        boot_nn[r] = _wmean(db, wt)
        km, _ = matching.kernel_control_means(k_cell, k_logit, k_treated, k_y, caliper, wc[ks])
        boot_k[r] = _wmean(y[m.treated] - km, wt)
        for b, (lv, codes) in groups.items():
            boot_groups[b][r] = _group_means(db, wt, codes, len(lv))

    def ci(point: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Normal bootstrap interval: point +- 1.96 bootstrap SDs. (Percentiles of a
        # matching estimator's replicates sit off-centre: a replicate reuses fewer distinct
        # controls, so its matches are a little worse than the estimate's.)
        with warnings.catch_warnings():  # a group too small for any replicate: NaN, suppressed
            warnings.simplefilter("ignore", RuntimeWarning)
            sd = np.nanstd(a, axis=0, ddof=1)
        return point - 1.96 * sd, point + 1.96 * sd

    lo, hi = ci(att_nn, boot_nn)
    klo, khi = ci(att_k, boot_k)
    att_bc = _wmean(d_bc, ones_t)
    bclo, bchi = ci(att_bc, boot_bc)
    scale = np.array([1.0 if n in MONEY_OUTCOMES else 100.0 for n in names])
    on = m.on_support
    matched_controls = np.unique(m.control[m.idx[m.ok]])
    outcomes = pd.DataFrame(
        {
            "outcome": names,
            "unit": ["pounds" if n in MONEY_OUTCOMES else "points" for n in names],
            "estimate": att_nn * scale,
            "ci_low": lo * scale,
            "ci_high": hi * scale,
            "kernel_estimate": att_k * scale,
            "kernel_ci_low": klo * scale,
            "kernel_ci_high": khi * scale,
            "bc_estimate": att_bc * scale,
            "bc_ci_low": bclo * scale,
            "bc_ci_high": bchi * scale,
            "naive": naive * scale,
            "treated_mean": np.nanmean(y[m.treated][on], axis=0) * scale,
            "n_treated": int(on.sum()),
            "n_controls": len(matched_controls),
        }
    )
    rows = []
    for b, (lv, codes) in groups.items():
        est = _group_means(d_nn, ones_t, codes, len(lv))
        glo, ghi = ci(est, boot_groups[b])
        n_g = np.bincount(codes[on], minlength=len(lv))
        # Distinct matched controls behind each group's estimate.
        nc = [len(np.unique(m.control[m.idx[(codes == g) & on][m.ok[(codes == g) & on]]]))
              for g in range(len(lv))]  # fmt: skip
        for g, level in enumerate(lv):
            for j, name in enumerate(names):
                rows.append((b, level, name, est[g, j] * scale[j], glo[g, j] * scale[j],
                             ghi[g, j] * scale[j], int(n_g[g]), nc[g]))  # fmt: skip
    breakdowns = pd.DataFrame(
        rows,
        columns=["breakdown", "group", "outcome", "estimate", "ci_low", "ci_high",
                 "n_treated", "n_controls"],
    )  # fmt: skip

    sd = matching.pooled_sd(x, treated)
    w_t = np.zeros(len(frame))
    w_t[m.treated[on]] = 1.0
    w_c = m.control_weights(len(frame), w_ipc)
    ones = np.ones(len(frame))
    before = matching.smd(x, treated, ones, ones, sd)
    after = matching.smd(x, treated, w_t, w_c, sd)
    balance = pd.DataFrame(
        {
            "covariate": cols,
            "smd_before": before,
            "smd_after": after,
            "mean_treated": np.average(x[treated], axis=0, weights=w_t[treated]),
            "mean_control_before": x[~treated].mean(axis=0),
            "mean_control_after": np.average(x[~treated], axis=0, weights=w_c[~treated]),
        }
    )
    counts = {
        "treated": int(treated.sum()),
        "comparison_pool": int((~treated).sum()),
        "treated_matched": int(on.sum()),
        "treated_off_support": int((~on).sum()),
        "treated_off_support_kernel": int((~k_on).sum()),
        "controls_matched": len(matched_controls),
    }
    ids = frame["person_id"].to_numpy()[m.treated[on]].astype(str).tolist()
    return Estimates(outcomes, breakdowns, balance, counts, excluded, float(w_ipc.max()), ids)
