"""Choosing a match threshold without labels, from the model's own probabilities.

Treat each scored pair's match probability ``p`` as the model's belief that it is a match.
At threshold ``t`` the model expects ``TP(t) = sum(p for p >= t)`` true links,
``FP(t) = sum(1 - p for p >= t)`` false links and ``FN(t) = sum(p for p < t)`` missed ones,
hence an expected F1 of ``2 TP / (2 TP + FP + FN)``. The default threshold maximises it. This
uses no labels; it is only as good as the model's calibration, which is why the benchmark
checks it against the best threshold on the synthetic truth.

Probabilities are summarised as a histogram over match weight (``log2`` Bayes factor), so the
sums are computed in the database and only a few hundred numbers reach Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SweepPoint:
    """Expected pair counts at one threshold."""

    threshold_match_weight: float
    threshold_probability: float
    expected_tp: float
    expected_fp: float
    expected_fn: float
    pairs_above: int

    @property
    def expected_precision(self) -> float:
        d = self.expected_tp + self.expected_fp
        return self.expected_tp / d if d else 1.0

    @property
    def expected_recall(self) -> float:
        d = self.expected_tp + self.expected_fn
        return self.expected_tp / d if d else 1.0

    @property
    def expected_f1(self) -> float:
        d = 2 * self.expected_tp + self.expected_fp + self.expected_fn
        return 2 * self.expected_tp / d if d else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "threshold_match_weight": self.threshold_match_weight,
            "threshold_probability": self.threshold_probability,
            "expected_tp": self.expected_tp,
            "expected_fp": self.expected_fp,
            "expected_fn": self.expected_fn,
            "pairs_above": self.pairs_above,
            "expected_precision": self.expected_precision,
            "expected_recall": self.expected_recall,
            "expected_f1": self.expected_f1,
        }


def weight_to_probability(weight: float) -> float:
    """Match probability for a match weight (log2 Bayes factor)."""
    return 1.0 / (1.0 + 2.0 ** (-weight))


def probability_to_weight(p: float) -> float:
    """Match weight for a match probability in (0, 1)."""
    return math.log2(p / (1.0 - p))


def histogram_sql(table: str, bin_width: float = 0.25) -> str:
    """SQL that bins scored pairs by match weight, with counts and summed probabilities.

    Args:
        table: the physical name of Splink's predictions table.
        bin_width: width of a bin in match-weight units.

    Returns:
        SQL yielding ``bin`` (lower edge = bin * width), ``n``, ``sum_p``.
    """
    return (
        f"SELECT CAST(FLOOR(match_weight / {bin_width}) AS BIGINT) AS bin, COUNT(*) AS n, "
        f"SUM(match_probability) AS sum_p FROM {table} GROUP BY 1"
    )


def sweep(bins: Iterable[tuple[int, int, float]], bin_width: float = 0.25) -> list[SweepPoint]:
    """Expected TP/FP/FN at each bin edge, from ``(bin, n, sum_p)`` rows.

    The threshold at bin ``b`` keeps every pair whose weight is at least ``b * bin_width``.
    """
    rows = sorted(bins)
    total_p = sum(r[2] for r in rows)
    points: list[SweepPoint] = []
    tp = fp = 0.0
    n_above = 0
    # Walk from the highest bin down, accumulating what lies above each edge.
    for b, n, sum_p in reversed(rows):
        tp += sum_p
        fp += n - sum_p
        n_above += n
        w = b * bin_width
        points.append(
            SweepPoint(
                threshold_match_weight=w,
                threshold_probability=weight_to_probability(w),
                expected_tp=tp,
                expected_fp=fp,
                expected_fn=max(total_p - tp, 0.0),
                pairs_above=n_above,
            )
        )
    points.reverse()
    return points


def choose_threshold(points: list[SweepPoint]) -> SweepPoint:
    """The sweep point with the highest expected F1 (the highest weight among ties).

    Below the lowest scored pair every threshold keeps the same pairs. When the maximum is
    there (every pair is confidently one person: a small register whose duplicates share a
    NINo), the data do not place the cut, and the lowest pair's weight would be an accident
    that a model reused on later deliveries (the person index) carries as its threshold. The
    threshold is then weight 0, a match probability of one half, if that lies below.
    """
    if not points:
        raise ValueError("no scored pairs to choose a threshold from")
    best = max(points, key=lambda p: (round(p.expected_f1, 12), p.threshold_match_weight))
    lowest = min(points, key=lambda p: p.threshold_match_weight)
    if best is lowest and best.threshold_match_weight > 0:
        return replace(best, threshold_match_weight=0.0, threshold_probability=0.5)
    return best


__all__ = [
    "SweepPoint",
    "choose_threshold",
    "histogram_sql",
    "probability_to_weight",
    "sweep",
    "weight_to_probability",
]
