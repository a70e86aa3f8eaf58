"""Finding 3: a controller-signed manifest whose counts contradict each other (or the files) is
refused at seal, unseal and link, naming rule 'manifest counts'."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _adv import TTP, dwp_rows

from wmw_link import seal
from wmw_link.errors import PolicyError, VerificationError
from wmw_link.linkage.verify import verify_inputs
from wmw_link.seal import seal_file, unseal_file

LIES = {
    "input and tokens +100": lambda m: m["rows"].update(
        input=m["rows"]["input"] + 100, tokens=m["rows"]["tokens"] + 100
    ),
    "rejected +50": lambda m: m["rows"].update(rejected=m["rows"]["rejected"] + 50),
    "rejected_by_reason": lambda m: m["rows"]["rejected_by_reason"].update(
        {"claim_ref:missing_record_id": 7}
    ),
    "files.payload.rows": lambda m: m["files"]["payload"].update(rows=1),
}


def _lie(manifest: Path, change) -> None:
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_manifest_is_refused_at_seal_unseal_and_link(parties, tmp_path, lie) -> None:
    res = parties.tokenise()
    _lie(res.manifest, LIES[lie])
    kw = {"agreement": parties.agreement, "keyring": parties.ring}
    with pytest.raises(PolicyError, match="rule 'manifest counts'"):
        seal_file(res.manifest, secret=parties.secrets["dwp"], recipient=TTP, **kw)
    # Signed all the same (a controller's own tool skipping the check): unseal refuses it.
    alone = tmp_path / "alone" / res.manifest.name  # away from the files it lies about
    alone.parent.mkdir()
    shutil.copy(res.manifest, alone)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(seal, "check_fields", lambda *a, **k: None)
        sealed = seal_file(alone, secret=parties.secrets["dwp"], recipient=TTP, **kw)
    inbox = tmp_path / "inbox"
    with pytest.raises(PolicyError, match="rule 'manifest counts'"):
        unseal_file(sealed.path, secret=parties.secrets[TTP], out=inbox / "", **kw)
    assert not inbox.exists()  # not even the folder
    # Put in the TTP's inbox by hand: link refuses it.
    inbox.mkdir()
    shutil.copy(res.manifest, inbox)
    shutil.copy(res.tokens, inbox)
    with pytest.raises(VerificationError, match="rule 'manifest counts'"):
        verify_inputs(parties.agreement, inbox)


def test_a_data_file_must_hold_the_rows_its_manifest_says(parties, tmp_path) -> None:
    res = parties.tokenise()
    short = parties.tokenise(rows=dwp_rows(12), out="other")  # another run: other hashes
    shutil.copy(short.tokens, res.tokens)  # the pair no longer matches
    with pytest.raises(VerificationError, match="check 'manifest'"):
        seal_file(
            res.tokens, agreement=parties.agreement, secret=parties.secrets["dwp"],
            recipient=TTP, keyring=parties.ring,
        )  # fmt: skip
