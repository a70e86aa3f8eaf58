"""Outcomes "as at" a refresh, and headline measures across refreshes (outcomes --previous)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from journey_fixtures import AGREEMENT_PATH, D, agreement, write_inputs
from test_outcomes_run import _region

from wmw_link.cli import main
from wmw_link.errors import InputDataError, VerificationError
from wmw_link.journeys import build_journeys
from wmw_link.outcomes import measure_outcomes
from wmw_link.outcomes.refreshes import headline_measures


def _journeys(root: Path, people: int, delivery: int, as_of) -> Path:
    pay, maps = _region(people=people).tables()
    index = {"delivery": delivery, "mode": "incremental", "as_at": f"2025-0{delivery}-02T08:00:00",
             "deliveries": list(range(1, delivery + 1))}  # fmt: skip
    p, m = write_inputs(root / f"in{delivery}", pay, maps, run=f"r{delivery}", index=index)
    out = root / f"j{delivery}"
    build_journeys(agreement(), p, m, out, as_of=as_of)
    return out


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("refreshes")
    j1 = _journeys(root, 200, 1, D(2025, 3, 1))
    j2 = _journeys(root, 260, 2, D(2025, 6, 1))
    o1 = root / "o1"
    measure_outcomes(agreement(), j1, o1)
    return j2, o1, root


def _all_rows(csv: Path, measures: list[str]) -> pd.DataFrame:
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    return df[(df["breakdown"] == "all") & df["measure"].isin(measures)]


def test_across_refreshes_repeats_each_refresh_as_published(two, tmp_path: Path) -> None:
    j2, o1, _ = two
    res = measure_outcomes(agreement(), j2, tmp_path / "o2", previous=[o1])
    measures = headline_measures(res.rule)
    for tier_dir, base in (("tables", 5), ("public", 10)):
        across = pd.read_csv(
            tmp_path / "o2" / tier_dir / "across_refreshes.csv", dtype=str, keep_default_na=False
        )
        assert list(dict.fromkeys(across["delivery"])) == ["1", "2"]
        assert list(dict.fromkeys(across["data_to"])) == ["2025-03-01", "2025-06-01"]
        # Delivery 1's figures are exactly what o1 published in that tier.
        then = across[across["delivery"] == "1"].set_index("measure")
        for table in ("sustained_employment", "employment_rate", "hub_supported"):
            published = _all_rows(o1 / tier_dir / f"{table}.csv", measures).set_index("measure")
            for m, row in published.iterrows():
                assert then.loc[m, "n"] == row["n"] and then.loc[m, "rate_pct"] == row["rate_pct"]
        # And delivery 2's are this run's own published figures.
        now = across[across["delivery"] == "2"].set_index("measure")
        mine = _all_rows(tmp_path / "o2" / tier_dir / "sustained_employment.csv", measures)
        for _, row in mine.iterrows():
            assert now.loc[row["measure"], "rate_pct"] == row["rate_pct"]
        shown = across.loc[~across["n"].isin(["c", ""]), "n"].astype(int)
        assert (shown % base == 0).all()
    man = json.loads((tmp_path / "o2" / "outcomes-manifest.json").read_text())
    assert man["refresh"]["delivery"] == 2 and man["previous"] == [str(o1)]
    assert any(k.endswith("o1/outcomes-manifest.json") for k in man["inputs"])
    html = (tmp_path / "o2" / "dashboard.html").read_text()
    assert "Across refreshes" in html and "As at delivery 2 (2025-02-02)" in html
    assert "Across refreshes" in (tmp_path / "o2" / "dashboard-public.html").read_text()


def test_without_previous_outcomes_state_their_refresh(two) -> None:
    _, o1, _ = two
    man = json.loads((o1 / "outcomes-manifest.json").read_text())
    assert man["refresh"] == {
        "delivery": 1,
        "as_at": "2025-01-02T08:00:00",
        "data_to": "2025-03-01",
    }
    assert not (o1 / "tables" / "across_refreshes.csv").exists()
    assert "As at delivery 1 (2025-01-02)" in (o1 / "dashboard.html").read_text()


def test_previous_outputs_are_checked(two, tmp_path: Path) -> None:
    j2, o1, root = two
    with pytest.raises(InputDataError, match="same refresh"):
        measure_outcomes(agreement(), j2, None, previous=[o1, o1])
    with pytest.raises(VerificationError, match="headline rule"):
        measure_outcomes(agreement(), j2, None, rule="whp_16h_nlw_26_weeks", previous=[o1])
    with pytest.raises(InputDataError, match="earlier `wmw-link outcomes` output folder"):
        measure_outcomes(agreement(), j2, None, previous=[root / "nothing"])
    bad = shutil.copytree(o1, tmp_path / "bad")
    csv = bad / "public" / "employment_rate.csv"
    csv.write_text(csv.read_text().replace(",all,", ",all,", 1) + "\n")
    with pytest.raises(VerificationError, match="altered after it was published"):
        measure_outcomes(agreement(), j2, None, previous=[bad])
    other = shutil.copytree(o1, tmp_path / "other")
    man = json.loads((other / "outcomes-manifest.json").read_text())
    man["disclosure"]["public"]["min_cell"] = 5
    (other / "outcomes-manifest.json").write_text(json.dumps(man))
    with pytest.raises(VerificationError, match="other disclosure parameters"):
        measure_outcomes(agreement(), j2, None, previous=[other])


def test_cli_previous(two, tmp_path: Path) -> None:
    j2, o1, _ = two
    res = CliRunner().invoke(
        main,
        ["--audit-log", str(tmp_path / "a.jsonl"), "outcomes", "--agreement", str(AGREEMENT_PATH),
         "--journeys", str(j2), "--out", str(tmp_path / "o"), "--previous", str(o1)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "as at delivery 2 (2025-02-02), data to 2025-06-01" in res.output
    assert "headline measures across 2 refreshes" in res.output
