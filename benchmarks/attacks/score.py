"""The scorer: compares the attacker's guesses with the synthetic truth (never seen by attacks).

A field counts as recovered for a record when the guess equals the record's own normalised value
(the product's normalisers on the extract's plaintext); a column's guess when it equals the
record's pre-hash value (the schema's ``composite_inputs`` on the same normalised fields).
Only aggregate shares are reported, never a value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
from benchmarks.attacks.common import strings
from benchmarks.attacks.world import SCORED, TargetRun

NHS = "nhs_referrals"


class Scorer:
    """Truth of one target run, ready to score guesses."""

    def __init__(self, run: TargetRun, truth_inputs: Mapping[str, pa.Array]) -> None:
        self.n = run.truth.num_rows
        self.datasets = run.datasets
        self.fields = {f: strings(run.truth[f]) for f in SCORED}
        self._inputs = truth_inputs
        self._column_truth: dict[str, np.ndarray] = {}

    def column_truth(self, col: str) -> np.ndarray:
        hit = self._column_truth.get(col)
        if hit is None:
            hit = self._column_truth[col] = strings(self._inputs[col])
        return hit

    def hits(self, truth: np.ndarray, guess: np.ndarray) -> np.ndarray:
        ok = (guess != None) & (truth != None)  # noqa: E711 (object arrays)
        out = np.zeros(self.n, bool)
        out[ok] = guess[ok] == truth[ok]
        return out

    def field_hits(self, field: str, guess: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """Records whose field the guess recovers (a list of guesses: any of them)."""
        if isinstance(guess, list):
            out = np.zeros(self.n, bool)
            for g in guess:
                out |= self.hits(self.fields[field], g)
            return out
        return self.hits(self.fields[field], guess)

    def shares(self, hit: np.ndarray) -> dict[str, float]:
        """Recovered share overall, for NHS rows, for the other rows, and per dataset."""
        out = {"all": float(hit.mean()) if self.n else 0.0}
        nhs = self.datasets == NHS
        out["nhs_rows"] = float(hit[nhs].mean()) if nhs.any() else float("nan")
        out["non_nhs_rows"] = float(hit[~nhs].mean()) if (~nhs).any() else float("nan")
        for ds in sorted(set(self.datasets.tolist())):
            out[f"ds:{ds}"] = float(hit[self.datasets == ds].mean())
        return out

    def baseline(self, reference_fields: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
        """Guessing baseline per field: everyone gets the reference's most common value."""
        out = {}
        for f in SCORED:
            ref = [v for v in reference_fields[f] if v is not None]
            top = Counter(ref).most_common(1)[0][0] if ref else None
            out[f] = self.shares(self.field_hits(f, np.full(self.n, top, dtype=object)))
        return out
