"""The true effect of hub support on every outcome the impact stage estimates.

The generator runs each supported person's month-by-month path twice: as it happened and had
they not been supported (same random draws). The outcome measures, though, look at days: month
``m`` after a start is ``[start + (m-1) months, start + m months)``, sustained employment counts
months a PAYE spell overlaps, and the earnings rule pro-rates pay by days. So both paths are
turned into day-level spells the way the HMRC extract is (a spell starts and ends on a random
day of its first and last month, an open spell runs on), with the *same* day draws for both, and
the outcome presets of :mod:`wmw_link.outcomes.presets` are applied to each. The difference is
the true effect on the treated, in the measures' own definitions. (Job changes, second jobs and
per-spell pay noise of the extract are left out: they touch both paths alike.)
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from wmw_link.outcomes.presets import PRESETS
from wmw_link.synth.labour import N_MONTHS, WINDOW_START, Labour

HORIZONS = (6, 12)
_OPEN = np.int64(2**40)  # a spell still running at the end of the window
_EPOCH = dt.date(1970, 1, 1)


def _add_months(day: np.ndarray, k: int) -> np.ndarray:
    """``day + k months`` (same day of the month, clamped to its last day), as DuckDB does."""
    d = day.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    offset = (d - month.astype("datetime64[D]")).astype(np.int64)
    target = month + k
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(
        np.int64
    )
    return target.astype("datetime64[D]").astype(np.int64) + np.minimum(offset, length - 1)


def _coverage(path: np.ndarray, u_start: np.ndarray, u_end: np.ndarray) -> tuple[np.ndarray, ...]:
    """First and last covered day of each calendar month of a monthly path (per person)."""
    first = (WINDOW_START + np.arange(N_MONTHS + 1)).astype("datetime64[D]").astype(np.int64)
    ms, days = first[:-1], np.diff(first)
    prev = np.zeros_like(path)
    prev[:, 1:] = path[:, :-1]
    prev[:, 0] = True  # employed in the first month: the spell began before the window
    nxt = np.ones_like(path)  # employed in the last month: the spell is still open
    nxt[:, :-1] = path[:, 1:]
    cs = np.where(prev, ms, ms + (u_start * days).astype(np.int64))
    ce = np.where(nxt, ms + days - 1, ms + (u_end * days).astype(np.int64))
    ce[:, -1] = np.where(nxt[:, -1], _OPEN, ce[:, -1])
    return cs, np.maximum(ce, cs)


def _month_of(day: np.ndarray) -> np.ndarray:
    m = day.astype("datetime64[D]").astype("datetime64[M]") - WINDOW_START
    return np.clip(m.astype(np.int64), 0, N_MONTHS - 1)


def _features(
    path: np.ndarray, cs: np.ndarray, ce: np.ndarray, start: np.ndarray, pay: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Employed and earnings in months 1..12 after the start, and employed at each horizon."""
    rows = np.arange(len(start))
    months = max(HORIZONS)
    employed = np.zeros((len(start), months), dtype=bool)
    earnings = np.zeros((len(start), months))
    for m in range(1, months + 1):
        a, b = _add_months(start, m - 1), _add_months(start, m) - 1
        c1, c2 = _month_of(a), _month_of(b)
        overlap = np.zeros(len(start), dtype=np.int64)
        for c in (c1, np.where(c2 != c1, c2, -1)):
            ok = c >= 0
            cc = np.where(ok, c, 0)
            lo = np.maximum(cs[rows, cc], a)
            hi = np.minimum(ce[rows, cc], b)
            overlap += np.where(ok & path[rows, cc], np.maximum(hi - lo + 1, 0), 0)
        employed[:, m - 1] = overlap > 0
        earnings[:, m - 1] = pay * overlap * 12 / 365.25
    at = {}
    for h in HORIZONS:
        d = _add_months(start, h)
        c = _month_of(d)
        at[h] = path[rows, c] & (cs[rows, c] <= d) & (ce[rows, c] >= d)
    return employed, earnings, at


#: Prefix of the tally keys for all participants, and for those on record before their start.
ALL, ON_RECORD = "eff", "eff_on_record"


def effect_counts(
    lab: Labour, rng: np.random.Generator, on_record: np.ndarray | None = None
) -> dict[str, float]:
    """Sums for the true effect per outcome over a chunk's supported people (for the tally).

    Keys ``eff.<outcome>.n``, ``.y1`` (as it happened) and ``.y0`` (had they not been
    supported); outcomes ``employed_<h>m`` and ``sustained_<preset>_<h>m`` for h = 6, 12.
    ``on_record`` (bool per person of the chunk): also the same sums, under
    ``eff_on_record.``, over the supported people it marks (the same day draws: a subset, not
    a new sample).
    """
    sel = np.flatnonzero(lab.hub_month >= 0)
    subsets = {ALL: np.ones(len(sel), dtype=bool)}
    if on_record is not None:
        subsets[ON_RECORD] = np.asarray(on_record, dtype=bool)[sel]
    start = lab.hub_day[sel].astype(np.int64)
    u_start = rng.random((len(sel), N_MONTHS))
    u_end = rng.random((len(sel), N_MONTHS))
    pay = lab.base_pay[sel]
    starts = [_EPOCH + dt.timedelta(days=int(d)) for d in start]
    out: dict[str, float] = {}
    for tag, path in (("y1", lab.employed[sel]), ("y0", lab.employed_cf[sel])):
        cs, ce = _coverage(path, u_start, u_end)
        employed, earnings, at = _features(path, cs, ce, start, pay)
        for h in HORIZONS:
            hits = {f"employed_{h}m": at[h]}
            for name, rule in PRESETS.items():
                hit = rule.evaluate(employed, earnings, starts, h) if len(sel) else np.zeros(0)
                hits[f"sustained_{name}_{h}m"] = np.asarray(hit, dtype=bool)
            for prefix, sub in subsets.items():
                for outcome, hit in hits.items():
                    out[f"{prefix}.{outcome}.{tag}"] = float(np.sum(hit[sub]))
    for prefix, sub in subsets.items():
        for h in HORIZONS:
            out[f"{prefix}.employed_{h}m.n"] = float(sub.sum())
            for name in PRESETS:
                out[f"{prefix}.sustained_{name}_{h}m.n"] = float(sub.sum())
    return out


def effect_summary(counts: dict[str, float], prefix: str = ALL) -> dict[str, dict[str, float]]:
    """Per outcome: supported, counterfactual (shares) and the effect in points, from the
    ``prefix`` sums of :func:`effect_counts` (all participants, or those on record)."""
    out: dict[str, dict[str, float]] = {}
    names = sorted({k.split(".")[1] for k in counts if k.startswith(f"{prefix}.")})
    for name in names:
        n = counts.get(f"{prefix}.{name}.n", 0.0)
        if not n:
            continue
        y1, y0 = counts[f"{prefix}.{name}.y1"] / n, counts[f"{prefix}.{name}.y0"] / n
        out[name] = {
            "supported": round(y1, 4),
            "counterfactual": round(y0, 4),
            "att_points": round(100 * (y1 - y0), 2),
        }
    return out


def effect_of_subset(people: pd.DataFrame, seed: int = 0) -> dict[str, dict[str, float]]:
    """The true effect per outcome for some supported people, from ``truth/people.parquet``
    rows (columns ``employed_by_month``, ``employed_counterfactual_by_month``,
    ``hub_start_date``, ``base_monthly_pay``): e.g. the people an estimate covers."""
    sup = people[people["hub_start_date"].notna()]

    def paths(col: str) -> np.ndarray:
        raw = np.frombuffer("".join(sup[col]).encode(), dtype=np.uint8)
        return (
            (raw.reshape(len(sup), N_MONTHS) == ord("1"))
            if len(sup)
            else np.zeros((0, N_MONTHS), bool)
        )

    day = pd.to_datetime(sup["hub_start_date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
    month = (day.astype("datetime64[D]").astype("datetime64[M]") - WINDOW_START).astype(np.int64)
    lab = Labour(
        p_employed=np.zeros(len(sup)),
        nonwork_type=np.zeros(len(sup), dtype=object),
        employed=paths("employed_by_month"),
        employed_cf=paths("employed_counterfactual_by_month"),
        hub_month=month.astype(np.int16),
        hub_day=day,
        base_pay=sup["base_monthly_pay"].to_numpy(float),
    )
    return effect_summary(effect_counts(lab, np.random.default_rng(seed)))
