"""`wmw-link demo` runs monthly deliveries end to end: the index links each one, the analysts'
journeys accumulate every refresh and outcomes show the headline measures across them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from wmw_link.demo import run_demo
from wmw_link.errors import ConfigError

pytestmark = pytest.mark.integration


def test_demo_runs_monthly_deliveries(tmp_path) -> None:
    lines: list[str] = []
    res = run_demo(tmp_path / "demo", people=1500, seed=5, deliveries=2, echo=lines.append)
    out = res.out
    assert res.deliveries == 2
    for nn in ("01", "02"):
        assert (out / "ttp" / "link" / nn / "id-changes.parquet").is_file()
        assert (out / "analysis" / "inbox" / nn / "maps" / "id-changes.parquet").is_file()
    man = json.loads((out / "analysis" / "journeys" / "journeys-manifest.json").read_text())
    assert [r["delivery"] for r in man["refreshes"]] == [1, 2]
    assert man["counts"]["payload_rows_replaced_by_later_deliveries"] > 0
    # The last month's opt-out: listed, signed, checked, and gone from the index's records.
    assert man["withdrawals"][0]["dataset"] == "hub_birmingham"
    assert man["withdrawals"][0]["signature_checked"] is True
    link = json.loads((out / "ttp" / "link" / "02" / "link-manifest.json").read_text())
    assert link["counts"]["withdrawn"] == 1
    across = pd.read_csv(out / "analysis" / "outcomes" / "public" / "across_refreshes.csv",
                         dtype=str, keep_default_na=False)  # fmt: skip
    assert list(dict.fromkeys(across["delivery"])) == ["1", "2"]
    assert "As at delivery 2" in res.dashboard.read_text()
    pairwise = res.evaluation.get("pairwise", res.evaluation)
    assert pairwise["f1"] > 0.95
    assert any("link --agreement" in ln and "--index" in ln for ln in lines)
    with pytest.raises(ConfigError, match="--deliveries"):
        run_demo(tmp_path / "bad", people=100, deliveries=0, echo=lines.append)
