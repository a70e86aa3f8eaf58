"""Finding 4: a refused tokenise into a folder holding an earlier run must not leave that run's
shareable files (nor their sealed copies) beside the new rejects file."""

from __future__ import annotations

import pytest
from _adv import AGREEMENT, ANALYST, TTP, dwp_rows, write_dwp
from click.testing import CliRunner

from wmw_link.cli import main
from wmw_link.errors import InputDataError
from wmw_link.seal import seal_outputs


def _unusable() -> list[list[str]]:
    rows = dwp_rows(5)
    for r in rows:
        r[1:6] = ["", "", "", "", ""]  # no identifier at all: rule 'usable_rows'
    return rows


def test_refused_run_removes_the_earlier_runs_shareables_and_sealed_copies(parties) -> None:
    good = parties.tokenise()
    out = good.tokens.parent
    seal_outputs(
        good.shared_outputs, agreement=parties.agreement, secret=parties.secrets["dwp"],
        recipients=[TTP, ANALYST], keyring=parties.ring, out_dir=out / "sealed",
    )  # fmt: skip
    with pytest.raises(InputDataError, match="usable_rows") as exc:
        parties.tokenise(_unusable())
    assert "were removed" in str(exc.value)
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == ["dwp_claims.rejects.parquet"]


def test_cli_refusal_says_what_it_removed(parties, tmp_path) -> None:
    good = parties.tokenise()
    src = write_dwp(tmp_path / "bad.csv", _unusable())
    r = CliRunner().invoke(main, [
        "--audit-log", str(tmp_path / "a.jsonl"), "tokenise", "--agreement", str(AGREEMENT),
        "--dataset", "dwp_claims", "--input", str(src), "--key", str(parties.link_key),
        "--ref-key", str(parties.ref_key), "--out", str(good.tokens.parent),
    ])  # fmt: skip
    assert r.exit_code == 1 and "Nothing shareable was written" in r.output
    assert "dwp_claims.tokens.parquet" in r.output and "were removed" in r.output
    assert not good.tokens.exists() and not good.manifest.exists()
