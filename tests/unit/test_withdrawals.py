"""Withdrawal lists: row refs as tokenise makes them, and every refusal of the shared reader."""

from __future__ import annotations

import base64
import datetime as dt
import json
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _tokenise_data import AGREEMENT, HUB_HEADER, HUB_ROWS, write_hub_csv

from wmw_link.agreement import Agreement, load_agreement, parse_agreement
from wmw_link.errors import InputDataError, KeyFileError, PolicyError, VerificationError
from wmw_link.keys import load_key, new_key
from wmw_link.party_keys import new_keyring
from wmw_link.tokenise import tokenise
from wmw_link.withdrawals import (
    Withdrawals,
    canonical,
    derive_row_refs,
    read_withdrawals,
    withdraw,
    write_withdrawals,
)

TODAY = dt.date(2026, 6, 1)
DS = "hub_birmingham"
PARTIES = ["hub-birmingham", "hub-coventry", "linkage-unit", "insight-team"]
# Record ids of HUB_ROWS that tokenise keeps (C003, C005 are rejected, one C001 is a repeat).
KEPT = ["C001", "C002", "C004", "C008", "C009"]


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    new_key(tmp_path / "link.key")
    new_key(tmp_path / "ref.key")
    secrets = new_keyring(PARTIES, tmp_path / "secrets", tmp_path / "ring")
    return {
        "link": tmp_path / "link.key",
        "ref": tmp_path / "ref.key",
        "ring": tmp_path / "ring",
        **secrets,
    }


@pytest.fixture()
def tokenised(tmp_path: Path, keys: dict[str, Path]):
    src = write_hub_csv(tmp_path / "hub.csv")
    return tokenise(AGREEMENT, DS, src, keys["link"], keys["ref"], tmp_path / "tok", today=TODAY)


def _records(path: Path, ids: list[str], column: str = "client_id") -> Path:
    # Quoted: an empty line in a one-column CSV is no row at all, a quoted "" is a blank id.
    path.write_text(column + "\n" + "".join(f'"{i}"\n' for i in ids), encoding="utf-8")
    return path


def _signed(tmp_path: Path, keys: dict[str, Path], ids: list[str] | None = None, **kw):
    rec = _records(tmp_path / "withdraw.csv", ids if ids is not None else ["C002", "C009"])
    kw.setdefault("secret", keys["hub-birmingham"])
    return withdraw(AGREEMENT, DS, rec, keys["ref"], tmp_path / "wd", **kw)


def _crosswalk(tokenised) -> dict[str, str]:
    t = pq.read_table(tokenised.crosswalk).to_pylist()
    return {r["record_id"]: r["row_ref"] for r in t}


def test_round_trip_row_refs_equal_tokenise(tmp_path, keys, tokenised, agreement):
    # Ids with surrounding spaces, a repeat and a blank: derived as tokenise does, listed once.
    res = _signed(tmp_path, keys, [" C002 ", "C009", "C009", "", "C001"])
    assert (res.records_input, res.records_blank, res.records_repeated) == (5, 1, 1)
    assert res.rows == 3 and res.signed
    got = read_withdrawals(agreement, res.parquet, keyring=keys["ring"])
    assert isinstance(got, Withdrawals) and got.dataset == DS
    assert got.row_refs.type == pa.string()
    cross = _crosswalk(tokenised)
    want = sorted(cross[i] for i in ("C001", "C002", "C009"))
    assert got.row_refs.to_pylist() == want
    # ...and they are the row refs of the tokens file the TTP holds.
    tokens = set(pq.read_table(tokenised.tokens, columns=["row_ref"]).column(0).to_pylist())
    assert set(want) <= tokens
    assert got.manifest["rows"] == 3 and got.manifest["records"]["blank"] == 1
    # The manifest may be given instead of the list, or the folder holding one list.
    assert read_withdrawals(agreement, res.manifest).row_refs.equals(got.row_refs)
    assert read_withdrawals(AGREEMENT, res.parquet.parent).row_refs.equals(got.row_refs)


def test_parquet_input_and_derive_match_tokenise(tmp_path, keys, tokenised, agreement):
    rec = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"client_id": ["C004", "C008"], "other": ["x", "y"]}), rec)
    res = withdraw(agreement, DS, rec, keys["ref"], tmp_path / "wd")
    cross = _crosswalk(tokenised)
    assert read_withdrawals(agreement, res.parquet).row_refs.to_pylist() == sorted(
        [cross["C004"], cross["C008"]]
    )
    refs = derive_row_refs(agreement, DS, pa.array(KEPT + ["  "]), load_key(keys["ref"]))
    assert refs.to_pylist() == [cross[i] for i in KEPT] + [None]
    # Another dataset of the same ids gives other row refs.
    other = derive_row_refs(agreement, "hub_coventry", pa.array(KEPT), load_key(keys["ref"]))
    assert not set(other.to_pylist()) & set(cross.values())


def test_outputs_owner_only_and_hold_no_record_id(tmp_path, keys, tokenised):
    ids = ["C001", "C002", "C004", "C008", "C009"]
    res = _signed(tmp_path, keys, ids)
    for p in res.outputs:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        data = p.read_bytes()
        for rid in ids:
            assert rid.encode() not in data
    assert stat.S_IMODE(res.parquet.parent.stat().st_mode) == 0o700
    # The whole hub row of each withdrawn id is absent too (only client_id was read).
    text = b"".join(p.read_bytes() for p in res.outputs)
    for row in HUB_ROWS:
        for v in row[1:6]:
            if len(v.strip()) >= 4:
                assert v.encode() not in text


def test_tampered_parquet_refused(tmp_path, keys, agreement):
    res = _signed(tmp_path, keys)
    refs = pq.read_table(res.parquet).column(0).to_pylist()
    pq.write_table(pa.table({"row_ref": refs[:1]}), res.parquet)  # one withdrawal dropped
    with pytest.raises(VerificationError, match=r"withdrawals.parquet.*rule 'file hash'"):
        read_withdrawals(agreement, res.parquet, keyring=keys["ring"])
    with pytest.raises(VerificationError, match="rule 'file hash'"):
        read_withdrawals(agreement, res.parquet)


def test_tampered_manifest_refused(tmp_path, keys, agreement):
    res = _signed(tmp_path, keys)
    refs = pq.read_table(res.parquet).column(0).to_pylist()
    # Drop a row and update the manifest's hash and count to match: only the signature tells.
    pq.write_table(pa.table({"row_ref": refs[:1]}), res.parquet)
    from wmw_link.files import sha256_file

    m = json.loads(res.manifest.read_text())
    m["rows"] = 1
    m["files"]["withdrawals"].update(rows=1, sha256=sha256_file(res.parquet))
    res.manifest.write_text(json.dumps(m))
    with pytest.raises(VerificationError, match=r"manifest.json.*rule 'signature'.*altered"):
        read_withdrawals(agreement, res.parquet, keyring=keys["ring"])
    # A manifest edited without care is refused by the hash even without a keyring.
    m["files"]["withdrawals"]["sha256"] = "0" * 64
    res.manifest.write_text(json.dumps(m))
    with pytest.raises(VerificationError, match="rule 'file hash'"):
        read_withdrawals(agreement, res.parquet)


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (lambda m: m["files"]["withdrawals"].pop("sha256"), r"'files.withdrawals.sha256' is miss"),
        (lambda m: m.update(delivery=0), r"field 'delivery' must be a number at or above"),
        (lambda m: m.update(rows="2"), r"field 'rows' must be an integer"),
        (lambda m: m.update(kind="wmw-link/tokens-manifest"), r"not a withdrawals manifest"),
        (lambda m: m.update(format_version=2), r"rule 'format version'"),
        (lambda m: m.update(party="hub-coventry"), r"rule 'controller'"),
        (lambda m: m.update(dataset="hub_coventry"), r"rule 'file name'"),
    ],
)
def test_malformed_manifest_refused(tmp_path, keys, agreement, edit, rule):
    res = _signed(tmp_path, keys)
    m = json.loads(res.manifest.read_text())
    edit(m)
    res.manifest.write_text(json.dumps(m))
    with pytest.raises(VerificationError, match=rule):
        read_withdrawals(agreement, res.parquet)


def test_missing_or_unreadable_manifest(tmp_path, keys, agreement):
    res = _signed(tmp_path, keys)
    res.manifest.write_text("{not json")
    with pytest.raises(VerificationError, match="not readable JSON"):
        read_withdrawals(agreement, res.parquet)
    res.manifest.unlink()
    with pytest.raises(VerificationError, match=r"rule 'manifest': no manifest .* beside it"):
        read_withdrawals(agreement, res.parquet)
    with pytest.raises(InputDataError, match="not a withdrawal list"):
        read_withdrawals(agreement, tmp_path / "withdraw.csv")


def test_wrong_signer_refused(tmp_path, keys, agreement):
    # Signed by another party's key while naming the controller: the signature fails.
    res = _signed(tmp_path, keys)
    m = json.loads(res.manifest.read_text())
    from wmw_link.party_keys import load_secret

    other = load_secret(keys["hub-coventry"])
    m["signature"]["value"] = base64.b64encode(
        other.signing_key.sign(canonical(m)).signature
    ).decode()
    res.manifest.write_text(json.dumps(m))
    with pytest.raises(VerificationError, match=r"rule 'signature'.*'hub-birmingham'"):
        read_withdrawals(agreement, res.parquet, keyring=keys["ring"])
    # Naming itself as the signer: refused, it does not control the dataset.
    m["signature"]["party"] = "hub-coventry"
    res.manifest.write_text(json.dumps(m))
    with pytest.raises(VerificationError, match=r"signed by 'hub-coventry'; only 'hub-birm"):
        read_withdrawals(agreement, res.parquet, keyring=keys["ring"])
    # Another party's secret cannot sign the controller's list in the first place.
    with pytest.raises(KeyFileError, match="belongs to 'hub-coventry'"):
        _signed(tmp_path, keys, secret=keys["hub-coventry"])


def test_unsigned_refused_with_keyring(tmp_path, keys, agreement):
    res = _signed(tmp_path, keys, secret=None)
    assert not res.signed
    assert len(read_withdrawals(agreement, res.parquet).row_refs) == 2  # no keyring: no check
    with pytest.raises(VerificationError, match=r"rule 'signature': the list is not signed"):
        read_withdrawals(agreement, res.parquet, keyring=keys["ring"])


def test_other_agreement_refused(tmp_path, keys, agreement):
    res = _signed(tmp_path, keys)
    data = agreement.model_dump(mode="json")
    other = parse_agreement({**data, "id": "another-programme"})
    with pytest.raises(VerificationError, match=r"rule 'agreement'.*'wmw-outcomes', not 'anoth"):
        read_withdrawals(other, res.parquet, keyring=keys["ring"])
    changed = parse_agreement({**data, "purpose": data["purpose"] + " Amended."})
    with pytest.raises(VerificationError, match="rule 'agreement hash'"):
        read_withdrawals(changed, res.parquet)
    newer = parse_agreement({**data, "version": data["version"] + 1})
    with pytest.raises(VerificationError, match=r"rule 'version'"):
        read_withdrawals(newer, res.parquet)
    compatible = parse_agreement(
        {**data, "version": data["version"] + 1, "compatible_with": [data["version"]]}
    )
    assert len(read_withdrawals(compatible, res.parquet, keyring=keys["ring"]).row_refs) == 2
    # A later compatible version that no longer names the dataset.
    fewer = parse_agreement(
        {
            **data,
            "version": data["version"] + 1,
            "compatible_with": [data["version"]],
            "datasets": [d for d in data["datasets"] if d["id"] != DS],
        }
    )
    with pytest.raises(VerificationError, match=r"rule 'datasets'"):
        read_withdrawals(fewer, res.parquet)


def test_foreign_columns_and_values_refused(tmp_path, keys, agreement):
    # A list rewritten with a record id column, signed by the controller all the same.
    from wmw_link.files import sha256_file
    from wmw_link.party_keys import load_secret

    res = _signed(tmp_path, keys)
    me = load_secret(keys["hub-birmingham"])

    def resign(table: pa.Table) -> None:
        pq.write_table(table, res.parquet)
        m = json.loads(res.manifest.read_text())
        m["rows"] = table.num_rows
        m["files"]["withdrawals"].update(rows=table.num_rows, sha256=sha256_file(res.parquet))
        m["signature"]["value"] = base64.b64encode(me.signing_key.sign(canonical(m)).signature)
        m["signature"]["value"] = m["signature"]["value"].decode()
        res.manifest.write_text(json.dumps(m))

    refs = pq.read_table(res.parquet).column(0).to_pylist()
    resign(pa.table({"row_ref": refs, "client_id": ["C002", "C009"]}))
    with pytest.raises(VerificationError, match=r"rule 'row refs only': columns row_ref, client"):
        read_withdrawals(agreement, res.parquet, keyring=keys["ring"])
    resign(pa.table({"row_ref": ["C002", refs[0]]}))
    with pytest.raises(VerificationError, match=r"1 value\(s\) are not row refs") as e:
        read_withdrawals(agreement, res.parquet, keyring=keys["ring"])
    assert "C002" not in str(e.value)
    resign(pa.table({"row_ref": [refs[0], refs[0]]}))
    with pytest.raises(VerificationError, match=r"rule 'row refs': 1 row ref"):
        read_withdrawals(agreement, res.parquet, keyring=keys["ring"])


def test_writer_refuses_record_ids_and_non_controllers(tmp_path, keys, agreement):
    with pytest.raises(InputDataError, match="never record ids") as e:
        write_withdrawals(agreement, DS, ["C001"], tmp_path / "wd", key_check="x")
    assert "C001" not in str(e.value)
    with pytest.raises(PolicyError, match=r"rule 'controller'.*only its controller"):
        write_withdrawals(
            agreement, DS, ["a" * 32], tmp_path / "wd", key_check="x", party="hub-coventry"
        )
    with pytest.raises(PolicyError, match=r"rule 'roles'.*'linkage-unit'"):
        _signed(tmp_path, keys, party="linkage-unit", secret=None)
    assert not (tmp_path / "wd").exists()


def test_missing_column_named(tmp_path, keys):
    rec = _records(tmp_path / "ids.csv", ["C001"], column="record")
    with pytest.raises(InputDataError, match=r"ids.csv: rule 'columns': missing column\(s\) 'cli"):
        withdraw(AGREEMENT, DS, rec, keys["ref"], tmp_path / "wd")
    blank = _records(tmp_path / "blank.csv", ["", " "])
    with pytest.raises(InputDataError, match=r"blank.csv: rule 'records'.*2 blank"):
        withdraw(AGREEMENT, DS, blank, keys["ref"], tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


def test_rewrite_replaces_whole_list(tmp_path, keys, tokenised, agreement):
    first = _signed(tmp_path, keys, ["C001"])
    assert not first.replaced
    second = _signed(tmp_path, keys, ["C004"])
    assert second.replaced
    got = read_withdrawals(agreement, second.parquet, keyring=keys["ring"])
    assert got.row_refs.to_pylist() == [_crosswalk(tokenised)["C004"]]
    assert HUB_HEADER[0] == "client_id"  # the record id column the agreement names


# -- the command ---------------------------------------------------------------------------------


def _cli(tmp_path: Path, keys: dict[str, Path], records: Path, *extra: str):
    from click.testing import CliRunner

    from wmw_link.cli import main

    args = [
        "withdraw", "--agreement", str(AGREEMENT), "--dataset", DS, "--records", str(records),
        "--key", str(keys["ref"]), "--out", str(tmp_path / "wd"), *extra,
    ]  # fmt: skip
    return CliRunner().invoke(main, args)


def test_cli_withdraw_signed_audited_and_silent(tmp_path, keys, agreement, monkeypatch):
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("WMW_LINK_AUDIT_LOG", str(log))
    ids = ["WD-REC-000123", "WD-REC-000456", "WD-REC-000456", ""]
    src = write_hub_csv(
        tmp_path / "hub.csv", [[i or "WD-REC-000789", *HUB_ROWS[0][1:]] for i in ids[:2]]
    )
    tok = tokenise(AGREEMENT, DS, src, keys["link"], keys["ref"], tmp_path / "tok", today=TODAY)
    rec = tmp_path / "optouts.csv"
    # Extra columns are not read (and so cannot leak): a name beside each id.
    rec.write_text("name,client_id\n" + "".join(f'Jane Doe,"{i}"\n' for i in ids), encoding="utf-8")
    res = _cli(tmp_path, keys, rec, "--sign-with", str(keys["hub-birmingham"]))
    assert res.exit_code == 0, res.output
    assert "4 record id(s) read, 1 blank (skipped), 1 repeated; 2 row ref(s) listed" in res.output
    assert "signed by:       hub-birmingham" in res.output and "warning" not in res.output
    got = read_withdrawals(agreement, tmp_path / "wd" / f"{DS}.withdrawals.parquet", keys["ring"])
    assert got.row_refs.to_pylist() == sorted(
        pq.read_table(tok.tokens, columns=["row_ref"]).column(0).to_pylist()
    )
    # No record id (nor the other column) in any output, the audit log or the terminal.
    scanned = [*(tmp_path / "wd").iterdir(), log]
    blob = b"".join(p.read_bytes() for p in scanned) + res.output.encode()
    for secret in [b"WD-REC-000123", b"WD-REC-000456", b"Jane Doe"]:
        assert secret not in blob
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["command"] == "withdraw" and entry["outcome"] == "ok"
    assert entry["party"] == "hub-birmingham" and entry["rows"]["withdrawn"] == 2
    digests = {i["path"]: i["sha256"] for i in entry["inputs"]}
    from wmw_link.files import sha256_file

    # A keyed digest of the id file, never its plain (guessable) SHA-256.
    assert digests[str(rec)].startswith("hmac-sha256:")
    assert sha256_file(rec) not in log.read_text()
    assert {o["path"] for o in entry["outputs"]} == {str(p) for p in (tmp_path / "wd").iterdir()}
    assert "checkpoint" in entry  # signed with the controller's key


def test_cli_refusals_are_messages(tmp_path, keys):
    bad = _records(tmp_path / "ids.csv", ["WD-REC-000123"], column="ClientID")
    res = _cli(tmp_path, keys, bad)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "ids.csv: rule 'columns': missing column(s) 'client_id'" in res.output
    assert "WD-REC-000123" not in res.output
    ok = _records(tmp_path / "ok.csv", ["WD-REC-000123"])
    res = _cli(tmp_path, keys, ok, "--as", "dwp")
    assert res.exit_code == 1 and "rule 'controller'" in res.output
    res = _cli(tmp_path, keys, ok, "--sign-with", str(keys["hub-coventry"]))
    assert res.exit_code == 1 and "belongs to 'hub-coventry'" in res.output
    assert not (tmp_path / "wd").exists()
    # Unsigned and made with a key that never tokenised the dataset: said, not hidden.
    res = _cli(tmp_path, keys, ok)
    assert res.exit_code == 0, res.output
    assert "not signed" in res.output and "warning" in res.output and "--ref-key" in res.output


# -- sealed transfer -----------------------------------------------------------------------------


def test_cli_seal_to_ttp_and_analysts_then_unseal_and_read(tmp_path, keys, agreement):
    from wmw_link.seal import unseal_all

    ok = _records(tmp_path / "ok.csv", ["WD-REC-000123", "WD-REC-000456"])
    sign = ("--sign-with", str(keys["hub-birmingham"]), "--keyring", str(keys["ring"]))
    res = _cli(tmp_path, keys, ok, *sign, "--seal-to", "linkage-unit", "--seal-to", "insight-team")
    assert res.exit_code == 0, res.output
    assert "delivery:        1 of hub_birmingham.withdrawals" in res.output
    state = tmp_path / "state.json"
    for party in ("linkage-unit", "insight-team"):
        sealed = tmp_path / "wd" / "sealed" / party
        assert sorted(p.name for p in sealed.iterdir()) == [
            f"{DS}.withdrawals.manifest.json.sealed",
            f"{DS}.withdrawals.parquet.sealed",
        ]
        got = unseal_all(
            sealed, agreement=agreement, secret=keys[party], keyring=keys["ring"],
            out_dir=tmp_path / party, state=state if party == "linkage-unit" else None,
        )  # fmt: skip
        assert len(got) == 2
        assert len(read_withdrawals(agreement, tmp_path / party, keys["ring"]).row_refs) == 2
    first = (tmp_path / "wd" / "sealed" / "linkage-unit").iterdir()
    old = {p.name: p.read_bytes() for p in first}
    # A second list is delivery 2; its sealed copies replace the first's. Replaying the first
    # (older) list to the TTP afterwards is refused by its delivery state.
    res = _cli(tmp_path, keys, ok, *sign, "--seal-to", "linkage-unit")
    assert res.exit_code == 0 and "delivery:        2 of" in res.output
    sealed = tmp_path / "wd" / "sealed" / "linkage-unit"
    unseal_all(sealed, agreement=agreement, secret=keys["linkage-unit"], keyring=keys["ring"],
               out_dir=tmp_path / "ttp2", state=state)  # fmt: skip
    # The analysts' copies of the first list went with it (not sealed again this time).
    assert not any((tmp_path / "wd" / "sealed" / "insight-team").iterdir())
    replay = tmp_path / "replay"
    replay.mkdir()
    for name, data in old.items():
        (replay / name).write_bytes(data)
    with pytest.raises(VerificationError, match="check 'freshness' failed"):
        unseal_all(replay, agreement=agreement, secret=keys["linkage-unit"],
                   keyring=keys["ring"], out_dir=tmp_path / "ttp3", state=state)  # fmt: skip
    assert not (tmp_path / "ttp3").exists()


def test_seal_refuses_a_list_that_is_not_the_writers(tmp_path, keys, agreement):
    from wmw_link.seal import classify, seal_file

    assert classify(f"{DS}.withdrawals.manifest.json")[0].value == "withdrawals-manifest"
    res = _signed(tmp_path, keys)
    kw = {"agreement": agreement, "secret": keys["hub-birmingham"], "keyring": keys["ring"]}
    # A withdrawal list never goes from its controller to another controller.
    with pytest.raises(PolicyError, match="rule 'flows'"):
        seal_file(res.parquet, recipient="hub-coventry", **kw)
    # Only the controller of the dataset may send it.
    with pytest.raises(PolicyError, match="rule 'flows'|rule 'controller'"):
        seal_file(res.parquet, **{**kw, "secret": keys["linkage-unit"]}, recipient="insight-team")
    # A manifest with something riding along is not a manifest wmw-link writes.
    m = json.loads(res.manifest.read_text())
    m["note"] = "WD-REC-000123"
    res.manifest.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    with pytest.raises(PolicyError, match=r"rule 'fields'.*withdrawals manifest") as e:
        seal_file(res.manifest, recipient="linkage-unit", **kw)
    assert "WD-REC-000123" not in str(e.value)
    # A list with a record id column does not pass the field check.
    pq.write_table(pa.table({"row_ref": ["a" * 32], "client_id": ["WD-REC-000123"]}), res.parquet)
    with pytest.raises(PolicyError, match=r"rule 'fields'.*client_id"):
        seal_file(res.parquet, recipient="linkage-unit", **kw)
