"""Whole-extract refusals (rule 'format', rule 'usable_rows'), payload years, nulled entries."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
from _tokenise_data import AGREEMENT, HUB_ROWS, write_hub_csv
from click.testing import CliRunner

from wmw_link.cli import main
from wmw_link.errors import ConfigError, InputDataError
from wmw_link.files import sha256_file
from wmw_link.keys import new_key
from wmw_link.tokenise import tokenise

TODAY = dt.date(2026, 6, 1)
DWP_HEADER = ["claim_ref", "nino", "first_name", "surname", "dob", "postcode", "gender",
              "benefit", "regime", "start_date", "end_date"]  # fmt: skip
SHAREABLE = ("tokens.parquet", "payload.parquet", "manifest.json", "crosswalk.parquet")


@pytest.fixture
def keys(tmp_path):
    new_key(tmp_path / "link.key")
    new_key(tmp_path / "ref.key")
    return tmp_path / "link.key", tmp_path / "ref.key"


def _run(tmp_path, keys, src, dataset="hub_birmingham", out="out", **kw):
    kw.setdefault("today", TODAY)
    return tokenise(AGREEMENT, dataset, src, keys[0], keys[1], tmp_path / out, **kw)


def _dwp(path, dobs, names=None):
    """A DWP extract: one claim per date of birth, valid everything else."""
    n = len(dobs)
    names = names or [("Ann", "Lee"), ("Bob", "Khan"), ("Cat", "Ng"), ("Dan", "Roe")]
    cols = {
        "claim_ref": [f"D{i}" for i in range(n)],
        "nino": ["AB123456C"] * n,
        "first_name": [names[i % len(names)][0] for i in range(n)],
        "surname": [names[i % len(names)][1] for i in range(n)],
        "dob": dobs,
        "postcode": ["B15 2TT"] * n,
        "gender": ["F"] * n,
        "benefit": ["UC"] * n,
        "regime": ["light_touch"] * n,
        "start_date": ["01/02/2026"] * n,
        "end_date": [""] * n,
    }
    pv.write_csv(pa.table({h: cols[h] for h in DWP_HEADER}), path)
    return path


def _shareable(out, dataset):
    return [f"{dataset}.{s}" for s in SHAREABLE if (out / f"{dataset}.{s}").exists()]


def test_no_dates_of_birth_refused_keeps_rejects(tmp_path, keys):
    rows = [[*r[:3], "", *r[4:]] for r in HUB_ROWS]  # a hub extract without dates of birth
    src = write_hub_csv(tmp_path / "nodob.csv", rows)
    with pytest.raises(InputDataError) as info:
        _run(tmp_path, keys, src)
    msg = str(info.value)
    assert "nodob.csv" in msg and "rule 'usable_rows'" in msg
    assert "none of the 9 rows could be tokenised" in msg
    assert "date_of_birth:missing: 8" in msg  # the blank record id is rejected first
    rejects_path = tmp_path / "out" / "hub_birmingham.rejects.parquet"
    assert str(rejects_path) in msg and info.value.rejects == rejects_path
    assert _shareable(tmp_path / "out", "hub_birmingham") == []
    assert not [p for p in os.listdir(tmp_path / "out") if p.endswith(".tmp")]
    rejected = [r for r in pq.read_table(rejects_path).to_pylist() if r["action"] == "rejected"]
    assert len(rejected) == 9 and [r["row_number"] for r in rejected] == list(range(1, 10))


def test_iso_dates_under_a_dmy_agreement_refused(tmp_path, keys):
    iso = ["1985-04-03", "1990-11-12", "1977-07-07", "1960-01-01", "2001-12-31"]
    src = _dwp(tmp_path / "dwp.csv", iso)
    with pytest.raises(InputDataError) as info:
        _run(tmp_path, keys, src, dataset="dwp_claims")
    msg = str(info.value)
    assert (
        "rule 'format': 100% of the 5 non-empty values of column 'dob' fail format %d/%m/%Y "
        "(invalid_date: 5); check the agreement's format or the extract" in msg
    )
    # The payload year read from the same column is not reported twice.
    assert "birth_year" not in msg and "usable_rows" not in msg  # the rows had names
    assert _shareable(tmp_path / "out", "dwp_claims") == []
    for value in iso:
        assert value not in msg
    entries = pq.read_table(tmp_path / "out" / "dwp_claims.rejects.parquet").to_pylist()
    dob = [(e["row_number"], e["reason"]) for e in entries if e["column"] == "dob"]
    assert dob == [(i, "invalid_date") for i in range(1, 6)]
    # Allowed explicitly, the run goes through with every dob nulled.
    res = _run(tmp_path, keys, src, dataset="dwp_claims", out="ok", max_invalid_share=1.0)
    assert res.rows_tokens == 5 and res.nulled_by_reason["dob:invalid_date"] == 5
    assert pq.read_table(res.tokens).column("sn_dob").null_count == 5


def test_share_threshold_counts_only_non_empty_values(tmp_path, keys):
    def hub(postcodes):
        rows = [
            [f"C{i}", *HUB_ROWS[0][1:4], pc, *HUB_ROWS[0][5:]] for i, pc in enumerate(postcodes)
        ]
        return write_hub_csv(tmp_path / "h.csv", rows)

    # Half of the non-empty postcodes invalid (the empty ones do not count): accepted.
    res = _run(tmp_path, keys, hub(["", "", "", "XX1", "B15 2TT"]))
    assert res.nulled_by_reason["postcode:invalid_format"] == 1
    # Two of three: refused, naming the column, the rule and the count of non-empty values.
    with pytest.raises(
        InputDataError, match="66.7% of the 3 non-empty values of column 'postcode'"
    ):
        _run(tmp_path, keys, hub(["", "", "XX1", "XX2", "B15 2TT"]))
    # ... unless the share allowed is raised.
    res = _run(tmp_path, keys, hub(["", "", "XX1", "XX2", "B15 2TT"]), max_invalid_share=0.7)
    assert res.nulled_by_reason["postcode:invalid_format"] == 2
    with pytest.raises(ConfigError, match="between 0 and 1"):
        _run(tmp_path, keys, hub(["B15 2TT"]), max_invalid_share=1.5)


def test_not_known_sex_is_not_invalid(tmp_path, keys):
    rows = [[*r[:6], "Prefer not to say", *r[7:]] for r in HUB_ROWS]
    res = _run(tmp_path, keys, write_hub_csv(tmp_path / "h.csv", rows))
    assert res.nulled_by_reason["gender:not_known"] == 9
    assert res.rows_tokens == 5


def test_refused_run_leaves_earlier_shareable_outputs_alone(tmp_path, keys):
    good = _run(tmp_path, keys, write_hub_csv(tmp_path / "hub.csv"))
    before = {p: sha256_file(p) for p in (good.tokens, good.payload, good.manifest)}
    rows = [[*r[:3], "", *r[4:]] for r in HUB_ROWS]
    with pytest.raises(InputDataError, match="usable_rows"):
        _run(tmp_path, keys, write_hub_csv(tmp_path / "nodob.csv", rows))
    assert {p: sha256_file(p) for p in before} == before
    # The rejects file is this run's.
    rejected = pq.read_table(good.rejects).filter(
        pa.compute.equal(pq.read_table(good.rejects).column("action"), "rejected")
    )
    assert rejected.num_rows == 9


def test_cli_refusal_exits_non_zero_and_says_where_the_rejects_are(tmp_path, keys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _dwp(tmp_path / "dwp.csv", ["1985-04-03", "1990-11-12", "1977-07-07"])
    args = ["tokenise", "--agreement", str(AGREEMENT), "--dataset", "dwp_claims", "--input",
            "dwp.csv", "--key", str(keys[0]), "--ref-key", str(keys[1]), "--out", "o"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "rule 'format'" in result.output and "column 'dob'" in result.output
    assert "o/dwp_claims.rejects.parquet" in result.output
    assert "1985" not in result.output
    assert _shareable(tmp_path / "o", "dwp_claims") == []
    result = CliRunner().invoke(main, [*args, "--max-invalid-share", "1"])
    assert result.exit_code == 0, result.output
    assert "invalid -> null dob:invalid_date: 3" in result.output


def test_payload_birth_year_follows_the_date_of_birth_rule(tmp_path, keys):
    dobs = ["03/04/1985", "01/01/2099", "01/01/1800", "12/11/1990", "07/07/1977", "nonsense", ""]
    res = _run(tmp_path, keys, _dwp(tmp_path / "dwp.csv", dobs), dataset="dwp_claims")
    assert res.rows_tokens == 7  # dob is not required for DWP: the rows are kept
    years = pq.read_table(res.payload).column("birth_year").to_pylist()
    assert years == [1985, None, None, 1990, 1977, None, None]
    tokens = pq.read_table(res.tokens).column("sn_dob").to_pylist()
    assert [t is None for t in tokens] == [y is None for y in years]
    assert res.nulled_by_reason["payload.birth_year:future_date"] == 1
    assert res.nulled_by_reason["payload.birth_year:age_out_of_range"] == 1
    assert res.nulled_by_reason["payload.birth_year:invalid_date"] == 1
    assert "payload.birth_year:missing" not in res.nulled_by_reason  # as for other payload
    m = json.loads(res.manifest.read_text())
    assert m["rows"]["nulled_by_reason"]["payload.birth_year:future_date"] == 1


def test_nulled_values_are_listed_locally_by_row_column_and_reason(tmp_path, keys):
    res = _run(tmp_path, keys, write_hub_csv(tmp_path / "hub.csv"))
    entries = pq.read_table(res.rejects).to_pylist()
    assert set(entries[0]) == {"row_number", "column", "reason", "action"}
    assert {e["action"] for e in entries} == {"rejected", "nulled"}
    nulled = Counter(f"{e['column']}:{e['reason']}" for e in entries if e["action"] == "nulled")
    # Every invalid (not missing) value counted in the manifest has its row in the file.
    expected = {k: v for k, v in res.nulled_by_reason.items() if not k.endswith(":missing")}
    assert nulled == expected
    # C003 (data row 3): invalid postcode and temporary NINo, kept as nulls in a rejected row.
    row3 = [(e["column"], e["reason"], e["action"]) for e in entries if e["row_number"] == 3]
    assert ("postcode", "invalid_format", "nulled") in row3
    assert ("ni_number", "temporary_number", "nulled") in row3
    assert row3[-1] == ("date_of_birth", "invalid_date", "rejected")  # the rejection last
    assert [e["row_number"] for e in entries] == sorted(e["row_number"] for e in entries)


def test_nulled_entries_do_not_depend_on_batches_or_workers(tmp_path, keys):
    many = [[f"R{i:04d}", *r[1:]] for i, r in enumerate(HUB_ROWS * 12)]
    src = write_hub_csv(tmp_path / "many.csv", many)
    a = _run(tmp_path, keys, src, out="a")
    b = _run(tmp_path, keys, src, out="b", workers=2, batch_rows=10)
    assert b.workers_used == 2
    assert pq.read_table(a.rejects).equals(pq.read_table(b.rejects))
