"""Finding 2: the hash chain has no key. Edit, delete or insert a line and re-chain: the chain
verifies, the signed checkpoints do not (check 'checkpoint'), without a stored head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _adv import AGREEMENT, TTP
from click.testing import CliRunner

from wmw_link import audit
from wmw_link.cli import main
from wmw_link.errors import VerificationError
from wmw_link.party_keys import Keyring, load_secret
from wmw_link.runrecord import RunRecord


def _log(tmp_path: Path, parties) -> Path:
    """dwp seals twice (checkpoints), an unsigned command between, the TTP signs last."""
    log = tmp_path / "audit.jsonl"
    dwp, ttp = load_secret(parties.secrets["dwp"]), load_secret(parties.secrets[TTP])
    audit.append(log, RunRecord("seal", party="dwp"), "ok", signer=dwp)
    audit.append(log, RunRecord("journeys", party="insight-team"), "ok")
    audit.append(log, RunRecord("seal", party="dwp", rows={"x": 3}), "ok", signer=dwp)
    audit.append(log, RunRecord("outcomes", party="insight-team"), "ok")
    audit.append(log, RunRecord("unseal", party=TTP), "ok", signer=ttp)
    return log


def _rechain(entries: list[dict]) -> list[dict]:
    """What an attacker without a key does: renumber, recompute every hash and link."""
    prev = audit.GENESIS
    for seq, e in enumerate(entries, start=1):
        e["seq"], e["prev_hash"] = seq, prev
        e["hash"] = audit.line_hash(e)
        prev = e["hash"]
    return entries


def _write(log: Path, entries: list[dict]) -> None:
    log.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def _edit(e: list[dict]) -> list[dict]:
    e[2]["rows"] = {"x": 999}
    return e


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_edit, id="edit"),
        pytest.param(lambda e: e[:1] + e[2:], id="delete"),
        pytest.param(lambda e: e[:2] + [dict(e[1], command="link")] + e[2:], id="insert"),
        pytest.param(lambda e: [e[0], e[2], e[1], e[3], e[4]], id="reorder"),
    ],
)
def test_a_rechained_log_fails_with_the_keyring(tmp_path, parties, tamper) -> None:
    log = _log(tmp_path, parties)
    _write(log, _rechain(tamper(audit.read_entries(log))))
    audit.verify(log)  # the chain alone: fooled
    with pytest.raises(VerificationError, match="check 'checkpoint'"):
        audit.verify(log, keyring=Keyring(parties.ring))


def test_truncation_into_unsigned_lines_fails_without_a_head(tmp_path, parties) -> None:
    log = _log(tmp_path, parties)
    _write(log, audit.read_entries(log)[:4])  # the TTP's checkpoint cut off
    audit.verify(log)
    with pytest.raises(VerificationError, match="line 4 comes after the last signed checkpoint"):
        audit.verify(log, keyring=Keyring(parties.ring))


def test_what_a_key_holder_or_an_exact_cut_still_gets_past(tmp_path, parties) -> None:
    # Documented limits (docs/security.md): a cut exactly after a checkpoint is a valid log,
    # and the holder of a party key can rewrite its own lines and sign again. The sender's
    # head inside every sealed envelope (recorded in the recipient's log) stops both.
    log = _log(tmp_path, parties)
    entries = audit.read_entries(log)
    _write(log, entries[:3])
    assert audit.verify(log, keyring=Keyring(parties.ring)).last_checkpoint == 3
    with pytest.raises(VerificationError, match="is not in the log"):
        audit.verify(log, expect_head=entries[4]["hash"])


def test_the_recipient_logs_the_senders_head_and_heads_compare_in_any_case(
    tmp_path, parties
) -> None:
    res = parties.tokenise()
    sender_log, ttp_log = tmp_path / "dwp.jsonl", tmp_path / "ttp.jsonl"
    common = ["--agreement", str(AGREEMENT), "--keyring", str(parties.ring)]
    runner = CliRunner()
    r = runner.invoke(main, ["--audit-log", str(sender_log), "audit", "checkpoint",
                             "--party-secret", str(parties.secrets["dwp"])])  # fmt: skip
    assert r.exit_code == 0, r.output
    sealed = tmp_path / "m.sealed" / "dwp_claims.manifest.json.sealed"
    r = runner.invoke(main, ["--audit-log", str(sender_log), "seal", str(res.manifest), *common,
                             "--secret", str(parties.secrets["dwp"]), "--to", TTP,
                             "--out", str(sealed)])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["--audit-log", str(ttp_log), "unseal", str(sealed), *common,
                             "--secret", str(parties.secrets[TTP]), "--out",
                             str(tmp_path / "in") + "/", "--state", str(tmp_path / "s.json")])  # fmt: skip
    assert r.exit_code == 0, r.output
    received = json.loads(ttp_log.read_text().splitlines()[-1])["received_heads"]
    assert received[0]["party"] == "dwp" and received[0]["seq"] == 1
    # The sender's log must still hold the head it sealed with; hex compares in any case.
    r = runner.invoke(main, ["--audit-log", str(tmp_path / "x.jsonl"), "audit", "verify",
                             str(sender_log), "--head", received[0]["hash"].upper(),
                             "--keyring", str(parties.ring)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "2 signed checkpoint(s) verified" in r.output
    # Rewritten and re-signed by dwp itself: the TTP's record of its head exposes it.
    entries = audit.read_entries(sender_log)
    entries[0]["time"] = "2020-01-01T00:00:00.000+00:00"
    dwp = load_secret(parties.secrets["dwp"])
    sender_log.unlink()
    for e in entries:
        rec = RunRecord(e["command"], party=e["party"], role=e["role"])
        audit.append(sender_log, rec, e["outcome"], signer=dwp)
    audit.verify(sender_log, keyring=Keyring(parties.ring))  # re-signed: passes on its own
    with pytest.raises(VerificationError, match="is not in the log"):
        audit.verify(sender_log, expect_head=received[0]["hash"])


def test_audit_verify_keyring_on_the_command_line(tmp_path, parties) -> None:
    log = _log(tmp_path, parties)
    _write(log, _rechain(_edit(audit.read_entries(log))))
    r = CliRunner().invoke(main, ["--audit-log", str(tmp_path / "v.jsonl"), "audit", "verify",
                                  str(log), "--keyring", str(parties.ring)])  # fmt: skip
    assert r.exit_code == 1 and "check 'checkpoint'" in r.output and "Traceback" not in r.output
