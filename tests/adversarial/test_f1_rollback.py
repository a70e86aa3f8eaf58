"""Finding 1: an older, validly signed delivery replayed into the TTP's inbox must not replace
the newer one (check 'freshness'), unless --accept-older, which the audit log records."""

from __future__ import annotations

import json
import shutil

import pytest
from _adv import AGREEMENT, ANALYST, TTP, tree
from click.testing import CliRunner

from wmw_link import freshness, runrecord
from wmw_link.cli import main
from wmw_link.errors import VerificationError
from wmw_link.seal import unseal_all, unseal_file


def _open(parties, outbox, inbox, state, **kw):
    return unseal_all(
        outbox / TTP, agreement=parties.agreement, secret=parties.secrets[TTP],
        keyring=parties.ring, out_dir=inbox, state=state, **kw,
    )  # fmt: skip


def test_deliveries_are_numbered_by_a_counter_beside_the_ref_key(parties) -> None:
    first, second = parties.tokenise(), parties.tokenise()
    assert (first.delivery, second.delivery) == (1, 2)
    assert json.loads(second.manifest.read_text())["delivery"] == 2
    with pytest.raises(Exception, match="rule 'freshness'.*not above the last"):
        parties.tokenise(delivery=2)


def test_replayed_older_pair_is_refused_and_nothing_changes(parties, tmp_path) -> None:
    old, new = parties.deliver("old"), parties.deliver("new")
    inbox, state = tmp_path / "inbox", tmp_path / "ttp-state.json"
    _open(parties, new, inbox, state)
    before = tree(inbox)
    with pytest.raises(VerificationError, match="check 'freshness'") as exc:
        _open(parties, old, inbox, state)
    msg = str(exc.value)
    assert "delivery 1 of 'dwp_claims'" in msg and "delivery 2 of 'dwp_claims'" in msg
    assert tree(inbox) == before
    # Single-file unseal of the old tokens file: refused too, before decryption.
    with pytest.raises(VerificationError, match="check 'freshness'"):
        unseal_file(
            old / TTP / "dwp_claims.tokens.parquet.sealed", agreement=parties.agreement,
            secret=parties.secrets[TTP], keyring=parties.ring, out=inbox, state=state,
        )  # fmt: skip
    assert tree(inbox) == before


def test_the_same_delivery_again_and_its_other_files_pass(parties, tmp_path) -> None:
    new = parties.deliver("new")
    inbox, state = tmp_path / "inbox", tmp_path / "s.json"
    manifest = new / TTP / "dwp_claims.manifest.json.sealed"
    unseal_file(
        manifest, agreement=parties.agreement, secret=parties.secrets[TTP],
        keyring=parties.ring, out=inbox, state=state,
    )  # fmt: skip
    _open(parties, new, inbox, state)  # the tokens of the accepted delivery, and it again
    assert freshness.latest(state, "dwp_claims") == 1


def test_accept_older_is_explicit_and_audited(parties, tmp_path) -> None:
    old, new = parties.deliver("old"), parties.deliver("new")
    inbox, state, log = tmp_path / "inbox", tmp_path / "s.json", tmp_path / "a.jsonl"
    _open(parties, new, inbox, state)
    args = [
        "--audit-log", str(log), "unseal", str(old / TTP), "--agreement", str(AGREEMENT),
        "--secret", str(parties.secrets[TTP]), "--keyring", str(parties.ring),
        "--out", str(inbox), "--state", str(state),
    ]  # fmt: skip
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "check 'freshness'" in refused.output
    accepted = CliRunner().invoke(main, [*args, "--accept-older"])
    assert accepted.exit_code == 0, accepted.output
    entries = [json.loads(x) for x in log.read_text().splitlines()]
    assert "overrides" not in entries[0]
    assert any("accept-older" in o for o in entries[1]["overrides"])
    assert freshness.latest(state, "dwp_claims") == 1  # the inbox now holds delivery 1


def test_link_refuses_an_old_pair_copied_into_the_inbox(parties, tmp_path) -> None:
    parties.deliver("old")
    new = parties.deliver("new")
    inbox, state = tmp_path / "inbox", tmp_path / "s.json"
    _open(parties, new, inbox, state)
    for name in ("dwp_claims.manifest.json", "dwp_claims.tokens.parquet"):
        shutil.copy(tmp_path / "run-old" / name, inbox / name)  # by hand, around unseal
    with pytest.raises(VerificationError, match="rule 'freshness'.*delivery 1.*delivery 2"):
        freshness.check_inputs(state, sorted(inbox.iterdir()))


def test_envelope_and_manifest_must_state_the_same_delivery(parties, tmp_path, monkeypatch) -> None:
    from wmw_link import seal

    new = parties.deliver("new")
    # A sender signing an envelope that claims a later delivery than its manifest holds.
    real = seal._delivery_for
    monkeypatch.setattr(
        seal, "_delivery_for",
        lambda *a: freshness.Delivery("dwp_claims", 9, None) if real(*a) else None,
    )  # fmt: skip
    res = seal.seal_file(
        tmp_path / "run-new" / "dwp_claims.manifest.json", agreement=parties.agreement,
        secret=parties.secrets["dwp"], recipient=TTP, keyring=parties.ring,
        out=tmp_path / "forged" / "dwp_claims.manifest.json.sealed",
    )  # fmt: skip
    monkeypatch.undo()
    token = runrecord.start("unseal")
    try:
        with pytest.raises(VerificationError, match="check .freshness.*says delivery 9"):
            unseal_file(
                res.path, agreement=parties.agreement, secret=parties.secrets[TTP],
                keyring=parties.ring, out=tmp_path / "in2", state=tmp_path / "s2.json",
            )  # fmt: skip
    finally:
        runrecord.finish(token)
    assert tree(tmp_path / "in2") == {}
    assert new.exists()


def test_seal_command_refuses_a_file_it_cannot_number(parties, tmp_path) -> None:
    res = parties.tokenise()
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(res.tokens, bare)  # without its manifest
    r = CliRunner().invoke(main, [
        "--audit-log", str(tmp_path / "a.jsonl"), "seal", str(bare / res.tokens.name),
        "--agreement", str(AGREEMENT), "--secret", str(parties.secrets["dwp"]), "--to", TTP,
        "--keyring", str(parties.ring),
    ])  # fmt: skip
    assert r.exit_code == 1 and "rule 'freshness'" in r.output
    assert list(bare.iterdir()) == [bare / res.tokens.name]


def test_journeys_refuses_an_older_payload_manifest(parties, tmp_path) -> None:
    parties.deliver("old")
    new = parties.deliver("new")
    state = tmp_path / "an-state.json"
    unseal_all(
        new / ANALYST, agreement=parties.agreement, secret=parties.secrets[ANALYST],
        keyring=parties.ring, out_dir=tmp_path / "payloads", state=state,
    )  # fmt: skip
    for name in ("dwp_claims.manifest.json", "dwp_claims.payload.parquet"):
        shutil.copy(tmp_path / "run-old" / name, tmp_path / "payloads" / name)
    (tmp_path / "maps").mkdir()
    r = CliRunner().invoke(main, [
        "--audit-log", str(tmp_path / "a.jsonl"), "journeys", "--agreement", str(AGREEMENT),
        "--payloads", str(tmp_path / "payloads"), "--maps", str(tmp_path / "maps"),
        "--out", str(tmp_path / "j"), "--state", str(state),
    ])  # fmt: skip
    assert r.exit_code == 1 and "rule 'freshness'" in r.output
    assert not (tmp_path / "j").exists()
