"""End-to-end tokenise on small hand-made extracts: outputs, counts, privacy, errors, CLI."""

from __future__ import annotations

import datetime as dt
import json
import os

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
from _tokenise_data import AGREEMENT, HUB_HEADER, HUB_ROWS, plaintext_values, write_hub_csv
from click.testing import CliRunner

from wmw_link import token_schema as ts
from wmw_link.agreement import load_agreement
from wmw_link.cli import main
from wmw_link.errors import ConfigError, InputDataError, PolicyError
from wmw_link.files import sha256_file
from wmw_link.keys import new_key
from wmw_link.tokenise import tokenise

TODAY = dt.date(2026, 6, 1)


@pytest.fixture
def keys(tmp_path):
    new_key(tmp_path / "link.key")
    new_key(tmp_path / "ref.key")
    return tmp_path / "link.key", tmp_path / "ref.key"


def _run(tmp_path, keys, src=None, out="out", dataset="hub_birmingham", **kw):
    src = src if src is not None else write_hub_csv(tmp_path / "hub.csv")
    kw.setdefault("today", TODAY)
    return tokenise(AGREEMENT, dataset, src, keys[0], keys[1], tmp_path / out, **kw)


def test_outputs_counts_and_manifest(tmp_path, keys):
    res = _run(tmp_path, keys)
    assert (res.rows_input, res.rows_tokens, res.rows_rejected) == (9, 5, 4)
    assert res.rejected_by_reason == {
        "client_id:duplicate_record_id": 1,
        "client_id:missing_record_id": 1,
        "date_of_birth:future_date": 1,
        "date_of_birth:invalid_date": 1,
    }
    assert res.nulled_by_reason["ni_number:temporary_number"] == 1
    assert res.nulled_by_reason["ni_number:invalid_prefix"] == 1
    assert res.nulled_by_reason["postcode:invalid_format"] == 1
    tokens = pq.read_table(res.tokens)
    ds = load_agreement(AGREEMENT).dataset("hub_birmingham")
    expected_cols = [
        c.name for c in ts.columns_for_identifiers([f.type.value for f in ds.identifiers])
    ]
    assert tokens.column_names == ["row_ref", *expected_cols]
    assert tokens.schema == ts.arrow_schema(
        ts.columns_for_identifiers([f.type.value for f in ds.identifiers])
    )
    payload = pq.read_table(res.payload)
    assert payload.column_names == ["row_ref", *[f.name for f in ds.analyst_payload()]]
    assert (
        "adviser_notes" not in payload.column_names and "phone_number" not in payload.column_names
    )
    assert payload.schema.field("support_start").type == pa.date32()
    assert payload.schema.field("birth_year").type == pa.int16()
    assert payload.column("row_ref").to_pylist() == tokens.column("row_ref").to_pylist()
    entries = pq.read_table(res.rejects).to_pylist()
    rejects = [r for r in entries if r["action"] == "rejected"]
    assert [r["row_number"] for r in rejects] == [3, 5, 6, 7]
    assert rejects[3] == {
        "row_number": 7,
        "column": "client_id",
        "reason": "duplicate_record_id",
        "action": "rejected",
    }
    cross = pq.read_table(res.crosswalk)
    assert cross.column("record_id").to_pylist() == ["C001", "C002", "C004", "C008", "C009"]
    m = json.loads(res.manifest.read_text())
    assert m["kind"] == "wmw-link/tokens-manifest"
    assert m["agreement"]["id"] == "wmw-outcomes" and m["party"] == "hub-birmingham"
    assert m["rows"]["input"] == m["rows"]["tokens"] + m["rows"]["rejected"]
    assert m["files"]["tokens"]["sha256"] == sha256_file(res.tokens)
    assert m["files"]["payload"]["sha256"] == sha256_file(res.payload)
    assert set(m["token_schema"]["columns"]) == set(expected_cols)
    assert m["key_check"] == res.key_check and len(res.key_check) == 32


def test_tokens_link_across_variants(tmp_path, keys):
    res = _run(tmp_path, keys)
    rows = pq.read_table(res.tokens).to_pylist()
    c001, c004, c009 = rows[0], rows[2], rows[4]
    # C004 has forename and surname swapped, day and month swapped and another postcode,
    # relative to C001: only the NINo (suffix dropped) still meets. Every other token is a
    # composite of two fields, and each of them differs in one of the two.
    assert c001["nino"] == c004["nino"]
    shared = {c for c in c001 if c != "row_ref" and c001[c] is not None and c001[c] == c004[c]}
    assert shared == {"nino"}
    # Another person shares nothing with C001.
    c002 = rows[1]
    assert not {c for c in c001 if c != "row_ref" and c001[c] is not None and c001[c] == c002[c]}
    # Null stays null: C008 has no names, NINo or postcode, so no composite can be made.
    c008 = rows[3]
    assert all(v is None for c, v in c008.items() if c != "row_ref")
    assert c009["sn_dob"] is not None and c009["dobsw_nph"] is not None


def test_determinism_across_runs_batches_and_workers(tmp_path, keys):
    many = [[f"R{i:04d}", *r[1:]] for i, r in enumerate(HUB_ROWS * 40)]
    src = write_hub_csv(tmp_path / "many.csv", many)
    a = _run(tmp_path, keys, src, out="a", workers=1)
    b = _run(tmp_path, keys, src, out="b", workers=1)
    c = _run(tmp_path, keys, src, out="c", workers=2, batch_rows=37)
    assert a.rows_input == len(many) == c.rows_input
    assert (a.workers_used, c.workers_used) == (1, 2) and c.batches == -(-len(many) // 37)
    assert a.rows_input == a.rows_tokens + a.rows_rejected
    assert c.rejected_by_reason == a.rejected_by_reason
    assert c.nulled_by_reason == a.nulled_by_reason
    assert sha256_file(a.tokens) == sha256_file(b.tokens)
    assert sha256_file(a.payload) == sha256_file(b.payload)
    assert pq.read_table(c.tokens).equals(pq.read_table(a.tokens))
    assert pq.read_table(c.rejects).equals(pq.read_table(a.rejects))


def test_row_refs_stable_across_extracts_and_private_to_ref_key(tmp_path, keys):
    a = _run(tmp_path, keys, out="a")
    # Next month's extract: other rows, same record ids keep their row refs.
    src2 = write_hub_csv(tmp_path / "next.csv", HUB_ROWS[::-1])
    b = _run(tmp_path, keys, src2, out="b")
    ref_a = dict(
        pq.read_table(a.crosswalk).to_pydict()
        and zip(*pq.read_table(a.crosswalk).to_pydict().values(), strict=True)
    )
    ref_b = dict(zip(*pq.read_table(b.crosswalk).to_pydict().values(), strict=True))
    for rid in set(ref_a) & set(ref_b):
        assert ref_a[rid] == ref_b[rid]
    new_key(tmp_path / "ref2.key")
    c = tokenise(
        AGREEMENT,
        "hub_birmingham",
        tmp_path / "hub.csv",
        keys[0],
        tmp_path / "ref2.key",
        tmp_path / "c",
        today=TODAY,
    )
    ref_c = dict(zip(*pq.read_table(c.crosswalk).to_pydict().values(), strict=True))
    assert not set(ref_a.values()) & set(ref_c.values())
    # ... while the identifier tokens do not depend on the ref key.
    assert (
        pq.read_table(a.tokens).drop(["row_ref"]).equals(pq.read_table(c.tokens).drop(["row_ref"]))
    )


def _decoded_text(path):
    """Every cell, column name and metadata value of a Parquet file, as text."""
    t = pq.read_table(path)
    parts = list(t.column_names) + [str(v) for v in (t.schema.metadata or {}).values()]
    for col in t.columns:
        parts += [json.dumps(v, default=str) for v in col.to_pylist()]
    return "\n".join(parts)


def _assert_no_plaintext(blob: str | bytes, where: str):
    for value in plaintext_values():
        # Raw (compressed, keyed-random) bytes spell a short name now and then by chance:
        # there, only values of 6+ characters are looked for; decoded text gets every value.
        if isinstance(blob, bytes) and len(value) < 6:
            continue
        for form in {value, value.lower(), value.upper()}:
            needle = form.encode() if isinstance(blob, bytes) else form
            assert needle not in blob, f"a plaintext identifier appears in {where}"


def test_byte_scan_no_identifier_in_outputs_or_cli(tmp_path, keys, monkeypatch):
    res = _run(tmp_path, keys)
    for p in (res.tokens, res.payload, res.rejects):
        _assert_no_plaintext(p.read_bytes(), p.name)
    _assert_no_plaintext(res.manifest.read_text(), res.manifest.name)
    for p in (res.tokens, res.payload, res.rejects):
        _assert_no_plaintext(_decoded_text(p), f"decoded {p.name}")
    # The CLI's output, and its error messages on bad input, do not repeat values either.
    monkeypatch.chdir(tmp_path)
    args = ["tokenise", "--agreement", str(AGREEMENT), "--dataset", "hub_walsall", "--input",
            "hub.csv", "--key", str(keys[0]), "--ref-key", str(keys[1]), "--out", "cli"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "9 rows in, 5 tokenised, 4 rejected" in result.output
    _assert_no_plaintext(result.output, "CLI output")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        (tmp_path / "hub.csv").read_bytes()
        + "C010,Łukasz,Smith,03/04/1985,B15 2TT,,,,,,,,,\n".encode("cp1250")
    )
    result = CliRunner().invoke(main, [*args[:6], "bad.csv", *args[7:]])
    assert result.exit_code == 1
    assert "UTF-8" in result.output and "line 11" in result.output
    _assert_no_plaintext(result.output, "CLI error")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text((tmp_path / "hub.csv").read_text() + "C011,John,Smith,03/04/1985,AB123456C\n")
    result = CliRunner().invoke(main, [*args[:6], "ragged.csv", *args[7:]])
    assert result.exit_code == 1 and "line 11" in result.output
    _assert_no_plaintext(result.output, "CLI error")


def test_only_agreement_columns_are_read(tmp_path, keys):
    res = _run(tmp_path, keys)
    text = _decoded_text(res.payload) + _decoded_text(res.tokens) + res.manifest.read_text()
    assert "07700900001" not in text and "secret note" not in text


def test_parquet_and_arrow_inputs_give_the_same_tokens(tmp_path, keys):
    csv_res = _run(tmp_path, keys, out="csv")
    table = pv.read_csv(tmp_path / "hub.csv", convert_options=pv.ConvertOptions(
        column_types={c: pa.string() for c in HUB_HEADER}, strings_can_be_null=False))  # fmt: skip
    pq.write_table(table, tmp_path / "hub.parquet")
    pq_res = _run(tmp_path, keys, tmp_path / "hub.parquet", out="pq")
    arrow_res = _run(tmp_path, keys, table, out="arrow")
    base = pq.read_table(csv_res.tokens)
    assert pq.read_table(pq_res.tokens).equals(base)
    assert pq.read_table(arrow_res.tokens).equals(base)


def test_full_name_dataset_shares_name_columns(tmp_path, keys):
    header = ["LearnRefNumber", "NINumber", "FullName", "DateOfBirth", "Postcode", "Sex",
              "CourseLevel", "LearnStartDate", "LearnEndDate", "Achieved", "NEETStatus"]  # fmt: skip
    rows = [
        ["L1", "AB123456C", "Mr John Smith", "03-Apr-1985", "B15 2TT", "M", "Level 2",
         "01-Jan-2026", "", "true", "EET"],
        ["L2", "", "Smith, John", "03-Apr-1985", "", "M", "Entry", "", "", "no", "NEET"],
        ["L3", "", "Cher", "01-Jan-1970", "", "F", "Entry", "", "", "", ""],
    ]  # fmt: skip
    src = tmp_path / "skills.csv"
    pv.write_csv(pa.table({h: [r[i] for r in rows] for i, h in enumerate(header)}), src)
    res = _run(tmp_path, keys, src, dataset="skills_enrolments")
    hub = pq.read_table(_run(tmp_path, keys, out="hub").tokens).to_pylist()[0]  # John Smith
    got = pq.read_table(res.tokens).to_pylist()
    assert got[0]["fn_dob"] == got[1]["fn_dob"] == hub["fn_dob"]
    assert got[0]["sn_dob"] == hub["sn_dob"] and got[0]["names_dob"] == hub["names_dob"]
    assert got[2]["fn_dob"] is None and got[2]["sn_dob"] is not None
    payload = pq.read_table(res.payload)
    assert payload.column("achieved").to_pylist() == [True, False, None]


def test_required_identifier_and_unusable_rows_are_rejected(tmp_path, keys):
    rows = [
        ["H1", "", "", "03/04/1985", "", "", "Male", *[""] * 7],  # only dob: usable
        ["H2", "", "", "", "B15 2TT", "", "Male", *[""] * 7],  # required dob missing
        ["H3", "Ann", "", "nonsense", "", "", "", *[""] * 7],  # required dob invalid
    ]
    res = _run(tmp_path, keys, write_hub_csv(tmp_path / "r.csv", rows))
    assert res.rejected_by_reason == {"date_of_birth:missing": 1, "date_of_birth:invalid_date": 1}
    # A DWP row with nothing but a sex cannot be linked: rejected as unusable.
    header = ["claim_ref", "nino", "first_name", "surname", "dob", "postcode", "gender",
              "benefit", "regime", "start_date", "end_date"]  # fmt: skip
    dwp = tmp_path / "dwp.csv"
    pv.write_csv(pa.table({h: v for h, v in zip(header, [
        ["D1", "D2"], ["", ""], ["a", ""], ["x", ""], ["", ""], ["", ""], ["M", "F"],
        ["UC", "UC"], ["", ""], ["", ""], ["", ""]], strict=True)}), dwp)  # fmt: skip
    r2 = _run(tmp_path, keys, dwp, dataset="dwp_claims", out="dwp")
    assert r2.rejected_by_reason == {"no_usable_identifiers": 1} and r2.rows_tokens == 1
    assert pq.read_table(r2.rejects).to_pylist() == [
        {"row_number": 2, "column": None, "reason": "no_usable_identifiers", "action": "rejected"}
    ]


def test_input_errors_are_clear(tmp_path, keys):
    with pytest.raises(InputDataError, match="not found"):
        _run(tmp_path, keys, tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InputDataError, match="empty"):
        _run(tmp_path, keys, tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(",".join(HUB_HEADER) + "\n")
    with pytest.raises(InputDataError, match="no data rows"):
        _run(tmp_path, keys, tmp_path / "header.csv")
    (tmp_path / "latin1.csv").write_bytes(",".join(HUB_HEADER).encode() + b"\nC1,Zo\xeb,Smith\n")
    with pytest.raises(InputDataError, match="not valid UTF-8.*line 2"):
        _run(tmp_path, keys, tmp_path / "latin1.csv")
    short = [h for h in HUB_HEADER if h not in ("postcode", "gender")]
    (tmp_path / "short.csv").write_text(",".join(short) + "\n" + ",".join("x" * len(short)) + "\n")
    with pytest.raises(InputDataError, match="missing column\\(s\\) 'postcode', 'gender'"):
        _run(tmp_path, keys, tmp_path / "short.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputDataError, match="not a readable Parquet"):
        _run(tmp_path, keys, tmp_path / "bad.parquet")


def test_policy_and_key_checks(tmp_path, keys):
    with pytest.raises(PolicyError, match="rule 'controller'"):
        _run(tmp_path, keys, party="hub-coventry")
    with pytest.raises(PolicyError, match="rule 'roles'"):
        _run(tmp_path, keys, party="linkage-unit")
    with pytest.raises(PolicyError, match="rule 'validity'"):
        _run(tmp_path, keys, today=dt.date(2030, 1, 1))
    with pytest.raises(ConfigError, match="same key"):
        tokenise(
            AGREEMENT,
            "hub_birmingham",
            write_hub_csv(tmp_path / "h.csv"),
            keys[0],
            keys[0],
            tmp_path / "o",
            today=TODAY,
        )


def test_failed_run_leaves_previous_outputs_intact(tmp_path, keys):
    good = _run(tmp_path, keys)
    before = {p: sha256_file(p) for p in good.outputs.values()}
    bad = tmp_path / "bad.csv"
    bad.write_bytes((tmp_path / "hub.csv").read_bytes() + b"C099,\xff\n")
    with pytest.raises(InputDataError):
        _run(tmp_path, keys, bad)
    assert {p: sha256_file(p) for p in good.outputs.values()} == before
    assert not [p for p in os.listdir(tmp_path / "out") if p.endswith(".tmp")]


def test_duplicate_record_ids_across_batches_keep_the_first(tmp_path, keys):
    rows = [[f"R{i % 7}", *HUB_ROWS[0][1:]] for i in range(20)]
    res = _run(tmp_path, keys, write_hub_csv(tmp_path / "d.csv", rows), batch_rows=3, workers=1)
    assert res.batches == 7
    assert (res.rows_tokens, res.rejected_by_reason) == (7, {"client_id:duplicate_record_id": 13})
    assert pq.read_table(res.crosswalk).column("record_id").to_pylist() == [
        f"R{i}" for i in range(7)
    ]
    rejected = pq.read_table(res.rejects).column("row_number").to_pylist()
    assert rejected == list(range(8, 21))


def test_cli_refuses_unsafe_key_and_wrong_party(tmp_path, keys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_hub_csv(tmp_path / "hub.csv")
    base = ["tokenise", "--agreement", str(AGREEMENT), "--dataset", "hub_dudley", "--input",
            "hub.csv", "--ref-key", str(keys[1]), "--out", "o"]  # fmt: skip
    os.chmod(keys[0], 0o644)
    result = CliRunner().invoke(main, [*base, "--key", str(keys[0])])
    assert result.exit_code == 1 and "chmod 600" in result.output
    assert not (tmp_path / "o").exists()
    os.chmod(keys[0], 0o600)
    result = CliRunner().invoke(main, [*base, "--key", str(keys[0]), "--as", "dwp"])
    assert result.exit_code == 1 and "rule 'controller'" in result.output
    result = CliRunner().invoke(main, [*base, "--key", str(keys[0]), "--batch-rows", "2"])
    assert result.exit_code == 0, result.output
    assert "9 rows in, 5 tokenised, 4 rejected" in result.output


def test_workers_fork_only_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    from wmw_link.tokenise import run as tok_run

    monkeypatch.delenv("WMW_LINK_MP_START", raising=False)
    monkeypatch.setattr(tok_run.sys, "platform", "darwin")
    assert tok_run._start_method() == "spawn"
    monkeypatch.setattr(tok_run.sys, "platform", "linux")
    assert tok_run._start_method() == "fork"
    monkeypatch.setenv("WMW_LINK_MP_START", "spawn")
    assert tok_run._start_method() == "spawn"
