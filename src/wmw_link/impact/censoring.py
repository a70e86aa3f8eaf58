"""Weights that undo the comparison pool's selection on the future.

The pool holds people with no hub start in the window. Someone matched at a pseudo-start in
March who stays out of work keeps being referred, and if referred by September they leave the
pool; someone who found work in April rarely is. So the pool keeps the ones who found work:
its outcomes are too good and the effect comes out too small. The fix is inverse probability
of censoring weighting: a discrete-time model of the monthly chance of a first start, given the
record at the start of the month (in work, months since work, age band, area, sex as on record
by then), fitted by scikit-learn logistic regression on person-months; each matched comparison
person then counts ``1 / P(no start from the month after the pseudo-start to the end of the window)``,
standing in for the similar people the window took out of the pool.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from wmw_link.impact import draws
from wmw_link.impact.cohort import Window
from wmw_link.outcomes.cohort import age_band_sql

MAX_WEIGHT = 20.0  # a weight this large means the model found almost no one like them left
_SINCE_BANDS = (0, 1, 2, 3, 4, 6, 12, 24)


def _months(window: Window) -> list[dt.date]:
    lo, hi = window.bounds()
    out, d = [], lo
    while d < hi:
        out.append(d)
        d = dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out


def _person_months(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """Record at the start of each month for rows of ``table`` (person_id, month)."""
    return con.sql(
        f"""
        SELECT pm.person_id, pm.month, pm.event,
          bool_or(s.kind = 'work' AND s.start <= pm.month - 1 AND s.stop >= pm.month - 1) AS in_work,
          max(CASE WHEN s.kind = 'work' THEN least(s.stop, pm.month - 1) END) AS last_work,
          coalesce(max(CASE WHEN s.kind = 'benefit' AND s.stop >= pm.month - 1 AND s.benefit <> 'PIP'
                            THEN s.benefit || ':' || coalesce(s.regime, '') END), 'none') AS claim,
          any_value({age_band_sql("year(pm.month) - p.birth_year")}) AS age_band,
          any_value(coalesce(p.local_authority, 'Unknown')) AS la,
          any_value(CASE WHEN sr.first_sex_record < pm.month THEN coalesce(p.gender, 'Unknown')
                         ELSE 'Unknown' END) AS gender
        FROM {table} pm JOIN persons p USING (person_id)
        LEFT JOIN sex_record sr ON sr.person_id = pm.person_id
        LEFT JOIN spells s ON s.person_id = pm.person_id
          AND s.start < pm.month AND s.stop >= CAST(pm.month - INTERVAL 24 MONTH AS DATE)
        GROUP BY pm.person_id, pm.month, pm.event
        """
    ).df()


def _design(pm: pd.DataFrame, columns: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    month = pd.to_datetime(pm["month"])
    since = ((month - pd.to_datetime(pm["last_work"])).dt.days / 30.4375).fillna(99.0)
    band = np.searchsorted(np.array(_SINCE_BANDS, float), since.to_numpy(), side="left")
    in_work = pm["in_work"].fillna(False).astype(bool).to_numpy()
    frame = pd.DataFrame(
        {
            "since": np.where(in_work, "work", pd.Series(band).astype(str).radd("s")),
            "age_band": pm["age_band"].astype(str),
            "la": pm["la"].astype(str),
            "gender": pm["gender"].astype(str),
            "claim": pm["claim"].astype(str),
            "calendar": month.dt.year * 100 + month.dt.month,
        }
    )
    x = pd.get_dummies(frame.astype("category"), prefix_sep="=", dtype=float)
    if columns is not None:
        x = x.reindex(columns=columns, fill_value=0.0)
    return x.to_numpy(), list(x.columns)


def censoring_weights(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    controls: pd.DataFrame,
    *,
    seed: int,
    sample_people: int = 25_000,
) -> np.ndarray:
    """``1 / P(no hub start after the pseudo-start month to the window's end)`` per control.

    Args:
        con: connection with the journeys views and the ``spells`` and ``sex_record``
            tables registered (:func:`wmw_link.impact.covariates.features`).
        window: the treated's window (the pool excludes starts in it).
        controls: the matched comparison people (``person_id``, ``start``); the connection
            has ``unit_key`` (:func:`wmw_link.impact.draws.register_keys`).
        seed: seed of the keyed sample of people for the hazard model's person-months.
        sample_people: people sampled (besides every starter) to fit the hazard model.
    """
    months = _months(window)
    lo, hi = window.bounds()
    # At-risk person-months: before (and in) the month of a first start in the window.
    # In key order, sampled by keyed uniforms (draws.py): the same people, in the same order,
    # however the linkage labelled them.
    people = con.execute(
        "SELECT p.person_id, h.first_start, k.draw_key FROM persons p "
        "LEFT JOIN hub_first h USING (person_id) JOIN unit_key k USING (person_id) "
        "ORDER BY k.draw_key, p.person_id"
    ).df()
    starters = (
        people["first_start"].notna()
        & (pd.to_datetime(people["first_start"]) >= pd.Timestamp(lo))
        & (pd.to_datetime(people["first_start"]) < pd.Timestamp(hi))
    )
    others = np.flatnonzero(~starters.to_numpy())
    u = draws.uniform(people["draw_key"].to_numpy(np.uint64)[others], seed, "censoring_sample")
    take = others[draws.smallest(u, min(sample_people, len(others)))]
    frac = len(take) / max(len(others), 1)
    chosen = pd.concat([people[starters], people.iloc[take]])
    first = pd.to_datetime(chosen["first_start"])
    rows = []
    for mo in months:
        ts = pd.Timestamp(mo)
        nxt = ts + pd.offsets.MonthBegin(1)
        before = first.notna() & (first < ts)
        at_risk = chosen[~before.to_numpy()]
        ev = first[~before.to_numpy()]
        rows.append(pd.DataFrame({"person_id": at_risk["person_id"].to_numpy(), "month": mo,
                                  "event": ((ev >= ts) & (ev < nxt)).to_numpy()}))  # fmt: skip
    pm_fit = pd.concat(rows, ignore_index=True)
    con.register("pm_fit_in", pm_fit)
    feats = _person_months(con, "pm_fit_in")
    # DuckDB's GROUP BY returns rows in no set order; the fit should not depend on it.
    key = feats["person_id"].map(people.set_index("person_id")["draw_key"]).to_numpy(np.uint64)
    feats = feats.assign(_key=key).sort_values(["_key", "month"], kind="stable", ignore_index=True)
    x, cols = _design(feats)
    y = feats["event"].to_numpy(bool)
    is_starter = feats["person_id"].isin(set(people.loc[starters, "person_id"]))
    # Sampled non-starters stand for all of them.
    w = np.where(is_starter.to_numpy(), 1.0, 1.0 / max(frac, 1e-9))
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y, sample_weight=w)

    # The matched controls' months after their pseudo-start month, to the window's end.
    start_month = pd.to_datetime(controls["start"]).dt.to_period("M").dt.to_timestamp()
    rows = []
    for mo in months:
        ts = pd.Timestamp(mo)
        sel = start_month < ts
        if sel.any():
            rows.append(pd.DataFrame({"person_id": controls.loc[sel, "person_id"].to_numpy(),
                                      "month": mo, "event": False}))  # fmt: skip
    weights = np.ones(len(controls))
    if not rows:
        return weights
    pm = pd.concat(rows, ignore_index=True)
    con.register("pm_ctrl_in", pm)
    feats = _person_months(con, "pm_ctrl_in")
    xc, _ = _design(feats, cols)
    h = model.predict_proba(xc)[:, 1]
    log_surv = (
        pd.Series(np.log1p(-np.clip(h, 0, 0.999))).groupby(feats["person_id"].to_numpy()).sum()
    )
    surv = np.exp(controls["person_id"].map(log_surv).fillna(0.0).to_numpy())
    return np.minimum(1.0 / surv, MAX_WEIGHT)
