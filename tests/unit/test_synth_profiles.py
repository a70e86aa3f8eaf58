"""Synthetic profiles: hard has higher error rates than standard, and both are reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from wmw_link.cli import main
from wmw_link.errors import ConfigError
from wmw_link.synth import DATASETS, ErrorRates, generate
from wmw_link.synth.corruption import (
    Identifiers,
    ascii_fold,
    corrupt_names,
    corrupt_other,
    nino_typo,
)
from wmw_link.synth.names import load_pools
from wmw_link.synth.profiles import PROFILES, Profile, get_profile


def _applied(summary: dict) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for kinds in summary["errors_applied"].values():
        for kind, c in kinds.items():
            e, a = out.get(kind, (0, 0))
            out[kind] = (e + c["eligible"], a + c["applied"])
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    runs = {}
    for name in PROFILES:
        res = generate(people=2000, seed=5, out=tmp_path_factory.mktemp(name), profile=name)
        runs[name] = json.loads(res.summary.read_text())
    return runs


def test_synth_json_records_the_profile(both: dict[str, dict]) -> None:
    for name, summary in both.items():
        assert summary["profile"]["name"] == name
        assert summary["profile"]["rates_overridden"] is False
        assert summary["error_rates"] == PROFILES[name].errors.model_dump()
        assert summary["profile"]["population"] == PROFILES[name].population.model_dump()


def test_hard_profile_applies_more_of_every_error(both: dict[str, dict]) -> None:
    std, hard = _applied(both["standard"]), _applied(both["hard"])
    for kind in ErrorRates.model_fields:
        std_rate = std[kind][1] / max(std[kind][0], 1)
        hard_rate = hard[kind][1] / max(hard[kind][0], 1)
        if kind == "missing_nhs" or hard[kind][0] < 200:  # too few eligible records here
            continue
        assert hard_rate > std_rate, kind
    # Errors the standard profile does not have never happen there.
    for kind in ("middle_name_as_forename", "surname_change", "dob_day_typo", "sex_flip"):
        assert std[kind][1] == 0 and hard[kind][1] > 0, kind


def test_hard_profile_has_more_twins_and_juniors(tmp_path: Path) -> None:
    counts = {}
    for name in PROFILES:
        res = generate(people=6000, seed=2, out=tmp_path / name, profile=name)
        people = pq.read_table(res.people, columns=["twin", "junior"]).to_pandas()
        counts[name] = (int(people.twin.sum()), int(people.junior.sum()))
    assert counts["hard"][0] > 1.4 * counts["standard"][0]
    assert counts["hard"][1] > 1.8 * counts["standard"][1]


def _ids(n: int, forename: str, surname: str, group: str, age: int = 30) -> Identifiers:
    def obj(v: object) -> np.ndarray:
        return np.array([v] * n, dtype=object)

    return Identifiers(
        person_id=np.arange(1, n + 1, dtype=np.int64),
        ethnicity=obj(group),
        age=np.full(n, age),
        forename=obj(forename),
        middle_name=obj(None),
        surname=obj(surname),
        birth_surname=obj(None),
        birth_day=np.full(n, 5000, dtype=np.int64),
        postcode=obj("B1 1AA"),
        sex=obj("F"),
        nino=obj(None),
        nhs_number=obj(None),
        la=np.zeros(n, dtype=np.int8),
    )


def test_transliteration_hits_only_the_groups_it_belongs_to() -> None:
    """'Mia' is a White British forename and also a spelling of the surname Miah."""
    hard = PROFILES["hard"]
    rates = ErrorRates().scaled(0).model_copy(update={"transliteration": 1.0})
    for group, changes in (("white_british", False), ("bangladeshi", True)):
        ids = _ids(200, "Mia", "Miah", group)
        counts: dict = {}
        rng = np.random.default_rng(0)
        corrupt_names(ids, rates, rng, load_pools(), counts, fold_middle=True, profile=hard)
        assert (ids.surname != "Miah").all() == changes, group
        assert counts["transliteration"]["eligible"] == (200 if changes else 0)


def test_surname_change_and_convention_are_stable_per_person() -> None:
    """Every record of a person who changed name carries the same new name."""
    rates = ErrorRates().scaled(0).model_copy(update={"surname_convention": 1.0})
    ids = _ids(50, "Rahima", "Begum", "bangladeshi")
    ids.person_id[:] = 7  # fifty records of one person
    corrupt_names(ids, rates, np.random.default_rng(1), load_pools(), {}, fold_middle=False)
    assert len(set(ids.surname)) == 1 and ids.surname[0] != "Begum"


def test_age_factors_move_the_young_more_often() -> None:
    """House moves: the hard profile's rate times 1.6 at 16-24 and 0.6 at 50-64."""
    hard = PROFILES["hard"]
    moved = {}
    for age in (20, 60):
        ids = _ids(20_000, "Anna", "Smith", "white_british", age=age)
        counts: dict = {}
        rng = np.random.default_rng(3)
        corrupt_other(ids, hard.errors, rng, counts, has_nino=False, has_nhs=False, profile=hard)
        moved[age] = counts["house_move"]["applied"] / 20_000
    assert abs(moved[20] - 0.20 * 1.6) < 0.015
    assert abs(moved[60] - 0.20 * 0.6) < 0.015


def test_hard_profile_is_deterministic_per_seed(tmp_path: Path) -> None:
    a = generate(people=500, seed=3, out=tmp_path / "a", profile="hard")
    b = generate(people=500, seed=3, out=tmp_path / "b", profile="hard")
    c = generate(people=500, seed=4, out=tmp_path / "c", profile="hard")
    for name in DATASETS:
        assert a.extracts[name].read_bytes() == b.extracts[name].read_bytes(), name
    assert a.summary.read_bytes() == b.summary.read_bytes()
    assert a.extracts["hmrc_rti"].read_bytes() != c.extracts["hmrc_rti"].read_bytes()


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ConfigError, match="choose one of standard, hard"):
        get_profile("harder")
    with pytest.raises(ValueError, match="unknown group"):
        Profile(name="x", group_factors={"nickname": {"martian": 2.0}})
    with pytest.raises(ValueError, match="unknown group or band '16-20'"):
        Profile(name="x", age_factors={"house_move": {"16-20": 2.0}})
    with pytest.raises(ValueError, match="unknown error"):
        Profile(name="x", group_factors={"no_such_error": {"arab": 2.0}})


def test_cli_accepts_and_refuses_profile_names(tmp_path: Path) -> None:
    out = tmp_path / "hard"
    ok = CliRunner().invoke(
        main, ["synth", "--people", "200", "--profile", "hard", "--out", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    assert "hard profile" in ok.output
    assert json.loads((out / "synth.json").read_text())["profile"]["name"] == "hard"
    bad = CliRunner().invoke(
        main, ["synth", "--people", "10", "--profile", "harder", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2
    assert "unknown profile 'harder': choose one of standard, hard" in bad.output
    assert "Traceback" not in bad.output


def test_rates_file_overrides_the_profile_and_is_recorded(tmp_path: Path) -> None:
    rates = tmp_path / "r.yaml"
    rates.write_text("typo_surname: 0.2\n")
    out = tmp_path / "o"
    args = ["synth", "--people", "200", "--profile", "hard", "--rates", str(rates)]
    res = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "synth.json").read_text())
    assert summary["error_rates"]["typo_surname"] == 0.2
    # The rest stay the hard profile's.
    assert summary["error_rates"]["house_move"] == PROFILES["hard"].errors.house_move
    assert summary["profile"] == {**summary["profile"], "name": "hard", "rates_overridden": True}


def test_spelling_variants_and_diacritics() -> None:
    """Table spellings (Thompson -> Thomson) and names without diacritics (Michał -> Michal)."""
    assert ascii_fold("Michał") == "Michal" and ascii_fold("Ștefan") == "Stefan"
    rates = ErrorRates().scaled(0).model_copy(update={"spelling_variant": 1.0})
    ids = _ids(100, "Michał", "Thompson", "eastern_european")
    counts: dict = {}
    corrupt_names(ids, rates, np.random.default_rng(2), load_pools(), counts, fold_middle=False)
    assert set(ids.forename) == {"Michal"}
    assert set(ids.surname) == {"Thomson", "Tomson"}
    assert counts["spelling_variant"] == {"eligible": 100, "applied": 100}
    # Compound Arabic names are also written split.
    assert "Abdul Rahman" in load_pools().spellings["Abdulrahman"]


def test_nino_typos_and_placeholders() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        t = nino_typo("AB123456C", rng)
        assert t != "AB123456C" and t[:2] == "AB" and t[-1] == "C" and t[2:8].isdigit()
    rates = ErrorRates().scaled(0).model_copy(update={"nino_placeholder": 1.0})
    ids = _ids(300, "Anna", "Smith", "white_british")
    ids.nino[:] = "JK102030B"
    counts: dict = {}
    corrupt_other(ids, rates, rng, counts, has_nino=True, has_nhs=False)
    assert set(ids.nino) == {"AB123456C", "AA111111A", "TN100983F"}  # born 1983-09-10, female
