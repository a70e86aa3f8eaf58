"""Finding 6: unsealing a folder is all or nothing: with the last of four bundles tampered,
no file is written (and no temporary file or new folder is left)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _adv import AGREEMENT, ANALYST, TTP, tree
from click.testing import CliRunner

from wmw_link.cli import main
from wmw_link.errors import VerificationError
from wmw_link.seal import seal_outputs, unseal_all


def _link_outputs(parties, run: Path) -> list[Path]:
    """A map and a link manifest for the run's tokens, made by the real writer."""
    from types import SimpleNamespace

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from wmw_link.files import sha256_file, write_json_atomic
    from wmw_link.linkage.run import _link_manifest

    tokens, manifest = run / "dwp_claims.tokens.parquet", run / "dwp_claims.manifest.json"
    rows = pq.read_metadata(tokens).num_rows
    out = run / "link"
    out.mkdir()
    map_path = out / "dwp_claims.map.parquet"
    refs = pq.read_table(tokens, columns=["row_ref"]).column(0).to_pylist()
    pq.write_table(
        pa.table({"row_ref": refs, "person_id": [f"p{i}" for i in range(rows)]}), map_path
    )
    verified = [SimpleNamespace(
        dataset="dwp_claims", party="dwp", tokens_path=tokens, sha256=sha256_file(tokens),
        rows=rows, manifest_path=manifest, manifest={"key_check": "0f" * 16},
    )]  # fmt: skip
    data = _link_manifest(
        parties.agreement, verified, SimpleNamespace(name="duckdb", memory_limit=None), 42, False,
        {"dwp_claims": pd.DataFrame({"person_id": ["p"] * rows})}, {"dwp_claims": map_path},
        SimpleNamespace(weight=4.5, method="maximum expected F1 (label-free)", comparisons=10,
                        predict_blocks=1),
        {"total": 1.0}, rows, rows,
    )  # fmt: skip
    write_json_atomic(out / "link-manifest.json", data)
    return [out / "link-manifest.json", map_path]


def test_a_tampered_last_bundle_leaves_nothing_written(parties, tmp_path) -> None:
    outbox = parties.deliver("a") / ANALYST  # manifest and payload
    seal_outputs(
        _link_outputs(parties, tmp_path / "run-a"), agreement=parties.agreement,
        secret=parties.secrets[TTP], recipients=[ANALYST], keyring=parties.ring,
        out_dir=outbox.parent, delivery=1,
    )  # fmt: skip
    assert len(list(outbox.iterdir())) == 4
    last = outbox / "dwp_claims.payload.parquet.sealed"  # manifests go first: this is 4th
    data = bytearray(last.read_bytes())
    data[100] ^= 1
    last.write_bytes(bytes(data))
    inbox = tmp_path / "inbox"
    with pytest.raises(VerificationError, match="check '.*dwp_claims.payload.parquet.sealed"):
        unseal_all(
            outbox, agreement=parties.agreement, secret=parties.secrets[ANALYST],
            keyring=parties.ring, out_dir=inbox,
        )  # fmt: skip
    assert not inbox.exists()
    # Into an existing inbox: its files untouched, no temporary file left.
    inbox.mkdir()
    (inbox / "keep.txt").write_text("earlier")
    r = CliRunner().invoke(main, [
        "--audit-log", str(tmp_path / "a.jsonl"), "unseal", str(outbox), "--agreement",
        str(AGREEMENT), "--secret", str(parties.secrets[ANALYST]), "--keyring",
        str(parties.ring), "--out", str(inbox), "--state", str(tmp_path / "s.json"),
    ])  # fmt: skip
    assert r.exit_code == 1 and "check '" in r.output
    assert tree(inbox) == {"keep.txt": b"earlier"}
    assert not (tmp_path / "s.json").exists()  # nothing accepted, nothing recorded
