"""Finding 7: NUL and control characters, spreadsheet formulas, file modes, head case, and a
sender outside the agreement."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pyarrow.parquet as pq
import pytest
from _adv import ANALYST, TTP, dwp_rows, tree

from wmw_link import audit, seal
from wmw_link.disclosure import neutralise_formulas
from wmw_link.errors import VerificationError
from wmw_link.files import restrict_tree
from wmw_link.party_keys import new_party
from wmw_link.runrecord import RunRecord


@pytest.mark.parametrize(
    ("column", "value"),
    [(2, "Ann\x00"), (0, "D\x001"), (3, "Lee\x1b[2J"), (1, "AB12\u008534C")],
    ids=["nul-name", "nul-record-id", "escape-surname", "c1-nino"],
)
def test_control_characters_reject_the_row_naming_the_reason(parties, column, value) -> None:
    rows = dwp_rows(6)
    rows[3][column] = value
    res = parties.tokenise(rows)
    header = ["claim_ref", "nino", "first_name", "surname"][column]
    assert res.rejected_by_reason == {f"{header}:control_character": 1}
    rejects = pq.read_table(res.rejects).to_pylist()
    assert {"row_number": 4, "column": header, "reason": "control_character",
            "action": "rejected"} in rejects  # fmt: skip
    assert value.encode() not in res.crosswalk.read_bytes()


def test_formula_cells_are_neutralised_in_every_csv() -> None:
    from wmw_link.outcomes.run import _csv_bytes

    frame = pd.DataFrame(
        {
            "group": ["=cmd|' /C calc'!A0", "+SUM(A1:A9)", '@HYPERLINK("x")', "-2+3", "\tx", "ok"],
            "gap_pp": ["-2.5", "+1.0", "3", "c", "", "0.1"],
        }
    )
    text = _csv_bytes(frame).decode()
    assert "'=cmd" in text and "'+SUM" in text and "'@HYPERLINK" in text and "'-2+3" in text
    assert "'\tx" in text
    assert ",-2.5\n" in text and ",+1.0\n" in text  # numbers stay numbers
    assert list(neutralise_formulas(frame)["group"])[-1] == "ok"


def test_ttp_outputs_are_owner_only(tmp_path) -> None:
    report = tmp_path / "link" / "report"
    report.mkdir(parents=True)
    (report / "model.json").write_text("{}")
    os.chmod(report / "model.json", 0o644)  # as Splink writes it under a 022 umask
    restrict_tree(tmp_path / "link")
    assert stat.S_IMODE((report / "model.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(report.stat().st_mode) == 0o700


def test_write_report_restricts_the_report_folder() -> None:
    import inspect

    from wmw_link.linkage import report

    assert "restrict_tree(report_dir)" in inspect.getsource(report.write_report)


def test_unsealed_files_and_audit_log_are_owner_only(parties, tmp_path) -> None:
    outbox = parties.deliver("a")
    seal.unseal_all(
        outbox / TTP, agreement=parties.agreement, secret=parties.secrets[TTP],
        keyring=parties.ring, out_dir=tmp_path / "inbox",
    )  # fmt: skip
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "inbox").iterdir()}
    assert set(modes.values()) == {0o600}
    assert stat.S_IMODE((tmp_path / "inbox").stat().st_mode) == 0o700
    log = tmp_path / "a.jsonl"
    audit.append(log, RunRecord("x"), "ok")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_head_is_compared_in_any_case(tmp_path) -> None:
    log = tmp_path / "a.jsonl"
    entry = audit.append(log, RunRecord("x"), "ok")
    assert audit.verify(log, expect_head=entry["hash"].upper()).lines == 1
    assert audit.verify(log, expect_head=f" {entry['hash']}\n").lines == 1


def test_a_sender_outside_the_agreement_is_refused_naming_the_check(
    parties, tmp_path, monkeypatch
) -> None:
    new_party("mallory", tmp_path / "mallory")
    (tmp_path / "mallory" / "mallory.public.json").rename(parties.ring / "mallory.public.json")
    res = parties.tokenise()
    monkeypatch.setattr(seal, "check_flow", lambda *a, **k: None)  # a forger's own tool
    sealed = seal.seal_file(
        res.manifest, agreement=parties.agreement, secret=tmp_path / "mallory" / "mallory.secret",
        recipient=ANALYST, keyring=parties.ring, out=tmp_path / "m" / "x.manifest.json.sealed",
    )  # fmt: skip
    monkeypatch.undo()
    with pytest.raises(VerificationError, match="check 'sender'.*'mallory' is not a party"):
        seal.unseal_file(
            sealed.path, agreement=parties.agreement, secret=parties.secrets[ANALYST],
            keyring=parties.ring, out=tmp_path / "in" / "",
        )  # fmt: skip
    assert tree(tmp_path / "in") == {}
