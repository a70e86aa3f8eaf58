"""How far a synthetic run's DWP extract differs from the truth (the table in docs/synthetic-data.md).

    .venv/bin/python benchmarks/synth_realised.py world/ [world-hard/ ...]

Names are compared case-insensitively and nothing else is normalised, so a folded middle name
or a postcode written without its space counts as it would to a naive exact match.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def realised(out: Path) -> dict[str, object]:
    """Shares of DWP records whose identifiers differ from the true person's."""
    truth = pd.read_parquet(out / "truth" / "truth.parquet")
    people = pd.read_parquet(out / "truth" / "people.parquet").set_index("person_id")
    dwp = pd.read_csv(out / "extracts" / "dwp_claims.csv", dtype=str, keep_default_na=False)
    dwp = dwp.merge(truth[truth.dataset == "dwp_claims"], left_on="claim_ref", right_on="record_id")
    p = people.loc[dwp["person_id"]]

    def low(s: pd.Series) -> np.ndarray:
        return s.fillna("").str.lower().to_numpy()

    first_word = low(dwp["first_name"].str.split().str[0]) != low(p["forename"])
    surname = low(dwp["surname"]) != low(p["surname"])
    dob = pd.to_datetime(p["birth_date"]).dt.strftime("%d/%m/%Y").to_numpy()
    by_group = pd.Series(first_word | surname).groupby(p["ethnicity"].to_numpy()).mean()
    return {
        "records": len(dwp),
        "forename (whole field)": (low(dwp["first_name"]) != low(p["forename"])).mean(),
        "first word of the forename": first_word.mean(),
        "surname": surname.mean(),
        "date of birth": (dwp["dob"].to_numpy() != dob).mean(),
        "postcode": (dwp["postcode"].to_numpy() != p["postcode"].str.replace(" ", "")).mean(),
        "NINo blank": (dwp["nino"] == "").mean(),
        "NINo present but not theirs": (
            (dwp["nino"] != "") & (dwp["nino"].str.replace(" ", "") != p["nino"].to_numpy())
        ).mean(),
        "first forename word or surname, by group": by_group.round(3).to_dict(),
        "twins among people": people["twin"].mean(),
        "juniors among people": people["junior"].mean(),
    }


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"== {arg}")
        for k, v in realised(Path(arg)).items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
