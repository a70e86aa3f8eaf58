"""Name pools by ethnic group and sex, and the nickname / transliteration variant tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from wmw_link.data_tables import read_rows


@dataclass(frozen=True)
class Pool:
    """Names with sampling probabilities."""

    names: np.ndarray  # object array of str
    cum: np.ndarray  # cumulative probabilities

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` names drawn with replacement by weight."""
        idx = np.searchsorted(self.cum, rng.random(size), side="right")
        return self.names[np.minimum(idx, len(self.names) - 1)]


def _pool(names: list[str], weights: list[float]) -> Pool:
    w = np.asarray(weights, dtype=float)
    return Pool(np.array(names, dtype=object), np.cumsum(w / w.sum()))


@dataclass(frozen=True)
class NamePools:
    """Forename pools by (group, sex), surname pools by group, and variant tables."""

    forenames: dict[tuple[str, str], Pool]
    surnames: dict[str, Pool]
    nicknames: dict[str, tuple[str, ...]]
    transliterations: dict[str, tuple[str, ...]]
    # Other spellings (Thomson, Abdul Rahman, Hiteshbhai...): the hard profile only.
    spellings: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def forename(self, group: str, sex: str, rng: np.random.Generator, size: int) -> np.ndarray:
        """Forenames for people of a detailed ethnic group and sex ("M"/"F")."""
        if group == "mixed":  # children of mixed couples: names from both backgrounds
            pick = rng.random(size) < 0.7
            out = self.forenames[("white_british", sex)].sample(rng, size)
            alt = self.forenames[("black_caribbean", sex)].sample(rng, size)
            return np.where(pick, out, alt)
        return self.forenames[(group, sex)].sample(rng, size)

    def surname(self, group: str, rng: np.random.Generator, size: int) -> np.ndarray:
        """Surnames for people of a detailed ethnic group."""
        if group == "mixed":
            pick = rng.random(size) < 0.6
            return np.where(
                pick,
                self.surnames["white_british"].sample(rng, size),
                self.surnames["black_caribbean"].sample(rng, size),
            )
        return self.surnames[group].sample(rng, size)


@lru_cache(maxsize=1)
def load_pools() -> NamePools:
    """Read the packaged pools (``wmw_link/data/*.csv``) once per process."""
    fore: dict[tuple[str, str], tuple[list[str], list[float]]] = {}
    for row in read_rows("forenames.csv"):
        names, weights = fore.setdefault((row["group"], row["sex"]), ([], []))
        names.append(row["name"])
        weights.append(float(row["weight"]))
    sur: dict[str, tuple[list[str], list[float]]] = {}
    for row in read_rows("surnames.csv"):
        names, weights = sur.setdefault(row["group"], ([], []))
        names.append(row["name"])
        weights.append(float(row["weight"]))
    tables: dict[str, dict[str, list[str]]] = {
        "nickname": {},
        "transliteration": {},
        "spelling": {},
    }
    for row in read_rows("name_variants.csv"):
        tables[row["kind"]].setdefault(row["name"], []).append(row["variant"])

    def frozen(kind: str) -> dict[str, tuple[str, ...]]:
        return {k: tuple(v) for k, v in tables[kind].items()}

    return NamePools(
        forenames={k: _pool(*v) for k, v in fore.items()},
        surnames={k: _pool(*v) for k, v in sur.items()},
        nicknames=frozen("nickname"),
        transliterations=frozen("transliteration"),
        spellings=frozen("spelling"),
    )
