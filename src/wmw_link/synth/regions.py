"""The seven WMCA local authorities: populations, ethnic mix, plan targets, postcode districts.

Figures are rounded from the 2021 Census (population, ethnic group) and the West Midlands
Works plan's Get Britain Working scorecard (see ``/work/shared/PLAN-FIGURES.md``). They drive
the generator; the realised rates are recorded in ``synth.json`` for comparison.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from wmw_link.data_tables import read_rows

LAS: tuple[str, ...] = (
    "Birmingham",
    "Coventry",
    "Dudley",
    "Sandwell",
    "Solihull",
    "Walsall",
    "Wolverhampton",
)

# 2021 Census usual residents (thousands); the working-age share is similar enough across LAs.
POPULATION_K = np.array([1144.9, 345.3, 323.5, 341.8, 216.2, 284.1, 263.7])

# Plan scorecard, in LAS order.
EMPLOYMENT_RATE = np.array([66.9, 74.7, 71.8, 67.3, 78.5, 73.0, 63.0]) / 100
FEMALE_EMPLOYMENT_RATE = np.array([62.2, 71.3, 68.5, 65.7, 76.0, 71.4, 56.9]) / 100
DISABILITY_GAP = np.array([23.7, 31.1, 28.7, 39.0, 25.6, 34.1, 34.9]) / 100
HEALTH_INACTIVITY = np.array([6.6, 5.8, 7.4, 12.8, 5.9, 4.3, 11.3]) / 100
NEET_16_17 = np.array([2.9, 3.0, 2.5, 2.1, 4.1, 2.0, 2.6]) / 100

# Detailed ethnic groups; name pools exist for all but "mixed" (drawn from two pools).
ETHNIC_GROUPS: tuple[str, ...] = (
    "white_british",
    "eastern_european",
    "indian",
    "pakistani",
    "bangladeshi",
    "black_african",
    "black_caribbean",
    "mixed",
    "arab",
)
# The five-group classification the hubs collect (and the analysts see).
ETHNIC_GROUP5: dict[str, str] = {
    "white_british": "White",
    "eastern_european": "White",
    "indian": "Asian",
    "pakistani": "Asian",
    "bangladeshi": "Asian",
    "black_african": "Black",
    "black_caribbean": "Black",
    "mixed": "Mixed",
    "arab": "Other",
}
# Census 2021 ethnic mix (percent) per LA, in ETHNIC_GROUPS order; rows are renormalised.
ETHNIC_MIX = np.array(
    [
        [42.9, 5.7, 5.8, 17.0, 3.8, 6.6, 4.4, 4.8, 2.0],  # Birmingham
        [56.2, 8.7, 8.8, 3.1, 1.1, 7.1, 1.0, 3.5, 1.5],  # Coventry
        [81.5, 2.6, 3.6, 4.1, 0.8, 1.0, 1.4, 2.6, 0.4],  # Dudley
        [53.5, 3.7, 12.4, 6.6, 3.3, 5.0, 3.2, 4.1, 1.0],  # Sandwell
        [82.0, 2.9, 5.2, 1.8, 0.5, 0.9, 1.0, 3.0, 0.4],  # Solihull
        [69.7, 2.6, 7.0, 7.1, 3.3, 2.5, 1.5, 3.3, 0.5],  # Walsall
        [53.0, 6.0, 14.4, 2.1, 0.5, 5.4, 4.0, 5.2, 1.2],  # Wolverhampton
    ]
)
ETHNIC_MIX = ETHNIC_MIX / ETHNIC_MIX.sum(axis=1, keepdims=True)

HUB_SLUG = {la: la.lower() for la in LAS}


@lru_cache(maxsize=1)
def postcode_districts() -> dict[str, tuple[str, ...]]:
    """Postcode districts of each LA, from the packaged table (a copy of configs/)."""
    out: dict[str, list[str]] = {la: [] for la in LAS}
    for row in read_rows("postcode_districts.csv"):
        out[row["local_authority"]].append(row["district"])
    return {la: tuple(v) for la, v in out.items()}
