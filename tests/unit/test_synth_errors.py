"""Error injection: rates land near what was asked; the rate model rejects bad values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from wmw_link.errors import ConfigError
from wmw_link.synth import ErrorRates, generate
from wmw_link.synth.corruption import typo

ASKED = {
    "missing_nino": 0.15,
    "house_move": 0.12,
    "dob_off_by_one": 0.08,
    "swap_names": 0.05,
    "typo_surname": 0.06,
    "nickname": 0.4,
    "duplicate": 0.05,
    "typo_forename": 0.04,
    "marriage_surname": 0.5,
    "double_barrel_partial": 0.5,
    "middle_name_folded": 0.3,
    "missing_nhs": 0.1,
}


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("noisy")
    rates = ErrorRates().scaled(0).model_copy(update=ASKED)
    return generate(people=2500, seed=3, out=out, rates=rates)


def test_applied_rates_are_near_the_asked_rates(noisy) -> None:
    applied = json.loads(noisy.summary.read_text())["errors_applied"]
    for kind, rate in ASKED.items():
        e = sum(d[kind]["eligible"] for d in applied.values() if kind in d)
        a = sum(d[kind]["applied"] for d in applied.values() if kind in d)
        assert e > 25, kind  # double-barrelled names are rare at this size
        sd = (rate * (1 - rate) / e) ** 0.5
        assert abs(a / e - rate) < 4 * sd + 0.01, kind
    # Errors that were switched off never happen.
    for d in applied.values():
        assert d["dob_year_typo"]["applied"] == 0
        assert d["transliteration"]["applied"] == 0


def test_extracts_differ_from_the_truth_at_the_asked_rates(noisy) -> None:
    """Checked against the extract itself, not the generator's own counts."""
    truth = pq.read_table(noisy.truth).to_pandas()
    people = pq.read_table(noisy.people).to_pandas().set_index("person_id")
    dwp = pd.read_csv(
        noisy.extracts["dwp_claims"], dtype=str, keep_default_na=False, na_values=[""]
    )
    dwp = dwp.merge(truth[truth.dataset == "dwp_claims"], left_on="claim_ref", right_on="record_id")
    n = len(dwp)
    assert n > 1000
    missing = dwp["nino"].isna().mean()
    assert abs(missing - ASKED["missing_nino"]) < 0.03
    true_pc = people.loc[dwp["person_id"], "postcode"].str.replace(" ", "").to_numpy()
    moved = (dwp["postcode"].to_numpy() != true_pc).mean()
    assert abs(moved - ASKED["house_move"]) < 0.03
    true_dob = (
        pd.to_datetime(people.loc[dwp["person_id"], "birth_date"])
        .dt.strftime("%d/%m/%Y")
        .to_numpy()
    )
    dob_wrong = (dwp["dob"].to_numpy() != true_dob).mean()
    assert abs(dob_wrong - ASKED["dob_off_by_one"]) < 0.03
    # Duplicates: some person has two records with the same benefit and start date.
    assert dwp.duplicated(["person_id", "benefit", "start_date"]).sum() > 0


def test_clean_data_when_all_rates_are_zero(tmp_path) -> None:
    res = generate(people=600, seed=2, out=tmp_path, rates=ErrorRates().scaled(0))
    truth = pq.read_table(res.truth).to_pandas()
    people = pq.read_table(res.people).to_pandas().set_index("person_id")
    hmrc = pq.read_table(res.extracts["hmrc_rti"]).to_pandas()
    hmrc = hmrc.merge(truth, left_on="EMPLOYMENT_ID", right_on="record_id")
    assert (hmrc["NINO"].to_numpy() == people.loc[hmrc["person_id"], "nino"].to_numpy()).all()
    assert (
        hmrc["SURNAME"].to_numpy()
        == people.loc[hmrc["person_id"], "surname"].str.upper().to_numpy()
    ).all()


@pytest.mark.parametrize(
    "bad", [{"typo_forename": -0.1}, {"house_move": 1.5}, {"no_such_error": 0.1}]
)
def test_bad_rates_are_refused(bad: dict[str, float], tmp_path) -> None:
    with pytest.raises(ValidationError):
        ErrorRates(**bad)
    with pytest.raises(ConfigError, match="error rates"):
        generate(people=10, seed=1, out=tmp_path, rates=bad)


def test_typo_changes_exactly_a_little() -> None:
    rng = np.random.default_rng(0)
    for name in ["Mohammed", "Smith", "Begum", "Jo"]:
        for _ in range(50):
            t = typo(name, rng)
            assert t != name or len(name) < 2
            assert abs(len(t) - len(name)) <= 1


def test_shipped_rates_file_matches_the_defaults() -> None:
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[2] / "configs" / "synth-error-rates.yaml"
    assert ErrorRates.model_validate(yaml.safe_load(path.read_text())) == ErrorRates()
