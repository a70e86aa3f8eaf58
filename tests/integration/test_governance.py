"""The agreement is enforced at every stage, by the real commands, and every transfer is sealed.

One synthetic world (extracts with extra sensitive columns, keys for all 13 parties) runs the
whole sealed pipeline once; each test then proves one refusal or one guarantee against it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _governance_pipeline import (
    ANALYST,
    EXTRA_COLUMNS,
    TTP,
    World,
    build_world,
    cli,
    run_pipeline,
    seal,
    tokenise,
    unseal,
)

pytestmark = pytest.mark.integration

pytest.importorskip("wmw_link.tokenise")
pytest.importorskip("wmw_link.linkage.run")
pytest.importorskip("wmw_link.journeys")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = build_world(tmp_path_factory.mktemp("governance"))
    run_pipeline(w)
    return w


def _agreement_variant(world: World, tmp: Path, name: str, **changes: str) -> Path:
    """A copy of the agreement with top-level scalar lines replaced (e.g. version: 2)."""
    text = world.agreement.read_text()
    for key, value in changes.items():
        text, n = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", text, count=1)
        assert n == 1, key
    path = tmp / name
    path.write_text(text)
    return path


def _audit(world: World) -> list[dict]:
    return [json.loads(line) for line in world.audit_log.read_text().splitlines()]


# -- the pipeline itself ---------------------------------------------------------------------


def test_every_transfer_is_sealed_and_the_audit_log_verifies(world: World) -> None:
    from wmw_link.audit import verify

    entries = _audit(world)
    n_datasets = len(world.datasets)
    seals = [e for e in entries if e["command"] == "seal" and e["outcome"] == "ok"]
    unseals = [e for e in entries if e["command"] == "unseal" and e["outcome"] == "ok"]
    # 4 per dataset (tokens + manifest to the TTP, payload + manifest to the analysts),
    # then one per map and the link manifest.
    assert len(seals) == len(unseals) == 4 * n_datasets + n_datasets + 1
    # What the recipient wrote is exactly what the sender sealed.
    sent = {Path(p["path"]).name: p["sha256"] for e in seals for p in e["inputs"]}
    got = {Path(p["path"]).name: p["sha256"] for e in unseals for p in e["outputs"]}
    assert got == sent
    assert {e["party"] for e in seals} == set(world.datasets.values()) | {TTP}
    assert {e["role"] for e in unseals} == {"ttp", "analyst"}
    assert verify(world.audit_log).lines == len(entries)
    assert (world.party_dir(ANALYST) / "journeys" / "persons.parquet").exists()


# -- parties, datasets and roles -------------------------------------------------------------


def test_tokenise_refuses_a_party_not_in_the_agreement(world: World) -> None:
    r = tokenise(world, "dwp_claims", "--as", "acme-data-broker", ok=False)
    assert "party 'acme-data-broker' is not in agreement" in r.output


def test_tokenise_refuses_a_dataset_not_in_the_agreement(world: World) -> None:
    party = world.datasets["dwp_claims"]
    r = cli(
        world, "tokenise", "--agreement", world.agreement, "--dataset", "prison_records",
        "--input", world.extracts["dwp_claims"], "--key", world.linkage_key(party),
        "--ref-key", world.ref_key(party), "--out", world.root / "x", ok=False,
    )  # fmt: skip
    assert "dataset 'prison_records' is not in agreement" in r.output


def test_tokenise_refuses_another_controllers_dataset(world: World) -> None:
    r = tokenise(world, "dwp_claims", "--as", "hmrc", ok=False)
    assert "rule 'controller'" in r.output


def test_the_ttp_and_analysts_cannot_tokenise(world: World) -> None:
    for party in (TTP, ANALYST):
        r = tokenise(world, "dwp_claims", "--as", party, ok=False)
        assert "rule 'roles'" in r.output


def test_a_controller_cannot_run_linkage(world: World) -> None:
    for party in ("dwp", ANALYST):
        r = cli(
            world, "link", "--agreement", world.agreement, "--inputs",
            world.party_dir(TTP) / "inbox", "--out", world.root / "rogue-link", "--as", party,
            ok=False,
        )  # fmt: skip
        assert "rule 'roles'" in r.output
    assert not (world.root / "rogue-link").exists()


def test_the_ttp_cannot_open_payloads(world: World, tmp_path: Path) -> None:
    payload = world.tok_out("dwp_claims") / "dwp_claims.payload.parquet"
    # 1. The controller cannot seal payload to the TTP.
    r = cli(
        world, "seal", payload, "--agreement", world.agreement, "--from", "dwp",
        "--secret", world.secrets["dwp"], "--to", TTP, "--keyring", world.ring,
        "--out", tmp_path / "p.sealed", ok=False,
    )  # fmt: skip
    assert "rule 'flows'" in r.output
    # 2. A payload sealed for the analysts does not open for the TTP.
    sealed = world.party_dir("dwp") / "outbox" / ANALYST / "dwp_claims.payload.parquet.sealed"
    r = unseal(world, sealed, TTP, tmp_path / "ttp", ok=False)
    assert "check 'recipient' failed" in r.output
    # 3. Linkage refuses payload files among its inputs.
    r = cli(
        world, "link", "--agreement", world.agreement, "--inputs", payload,
        "--out", tmp_path / "link", ok=False,
    )  # fmt: skip
    assert "never a payload" in r.output
    # 4. The TTP cannot build journeys from payloads, nor measure outcomes.
    r = cli(
        world, "journeys", "--agreement", world.agreement, "--payloads",
        world.party_dir(ANALYST) / "inbox" / "payloads", "--maps",
        world.party_dir(ANALYST) / "inbox" / "maps", "--out", tmp_path / "j", "--as", TTP, ok=False,
    )  # fmt: skip
    assert "rule 'roles'" in r.output
    r = cli(
        world, "outcomes", "--agreement", world.agreement, "--journeys",
        world.party_dir(ANALYST) / "journeys", "--out", tmp_path / "o", "--as", TTP, ok=False,
    )  # fmt: skip
    assert "rule 'roles'" in r.output


def test_analysts_cannot_open_tokens(world: World, tmp_path: Path) -> None:
    tokens = world.tok_out("dwp_claims") / "dwp_claims.tokens.parquet"
    # 1. Tokens cannot be sealed to the analysts.
    r = cli(
        world, "seal", tokens, "--agreement", world.agreement, "--from", "dwp",
        "--secret", world.secrets["dwp"], "--to", ANALYST, "--keyring", world.ring,
        "--out", tmp_path / "t.sealed", ok=False,
    )  # fmt: skip
    assert "rule 'flows'" in r.output
    # 2. Tokens sealed for the TTP do not open for the analysts.
    sealed = world.party_dir("dwp") / "outbox" / TTP / "dwp_claims.tokens.parquet.sealed"
    r = unseal(world, sealed, ANALYST, tmp_path / "an", ok=False)
    assert "check 'recipient' failed" in r.output
    # 3. Journeys refuses a tokens file among the payloads.
    pay = tmp_path / "payloads"
    pay.mkdir()
    for f in (world.party_dir(ANALYST) / "inbox" / "payloads").iterdir():
        (pay / f.name).write_bytes(f.read_bytes())
    (pay / "dwp_claims.tokens.parquet").write_bytes(tokens.read_bytes())
    r = cli(
        world, "journeys", "--agreement", world.agreement, "--payloads", pay,
        "--maps", world.party_dir(ANALYST) / "inbox" / "maps", "--out", tmp_path / "j", ok=False,
    )  # fmt: skip
    assert "token" in r.output.lower()
    assert not (tmp_path / "j" / "events.parquet").exists()


# -- fields ----------------------------------------------------------------------------------


def _shared_files(world: World) -> list[Path]:
    """Every file outside the controllers' folders (what the TTP and the analysts hold)."""
    return [
        p
        for p in world.root.rglob("*")
        if p.is_file() and "controllers" not in p.relative_to(world.root).parts
    ]


def test_fields_the_agreement_does_not_name_never_reach_any_output(world: World) -> None:
    from wmw_link.agreement import load_agreement

    agreement = load_agreement(world.agreement)
    withheld = {f.column for d in agreement.datasets for f in d.payload if not f.to_analyst}
    assert withheld == {"adviser_notes", "GP_PRACTICE"}
    # Their values, as written in the extracts.
    forbidden_values: set[str] = set()
    for path in world.extracts.values():
        table = pq.read_table(path) if path.suffix == ".parquet" else _read_csv(path)
        for col in [*EXTRA_COLUMNS, "phone", *withheld]:
            if col in table.column_names:
                forbidden_values |= {v for v in table.column(col).to_pylist() if v and len(v) >= 6}
    assert any(v.startswith("XSENSITIVE") for v in forbidden_values)
    forbidden_names = {c.lower() for c in (*EXTRA_COLUMNS, "phone", *withheld)} | {"gp_practice"}
    checked = 0
    for path in _shared_files(world):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            assert not {c.lower() for c in table.column_names} & forbidden_names, path
            for col in table.column_names:
                values = {str(v) for v in table.column(col).to_pylist() if v is not None}
                assert not values & forbidden_values, f"{path}:{col}"
            checked += 1
        data = path.read_bytes()
        for value in forbidden_values:
            assert value.encode() not in data, f"{path} holds a withheld value"
    assert checked >= 3 * len(world.datasets)  # tokens, payloads and maps at least


def test_payload_and_token_columns_are_exactly_what_the_agreement_allows(world: World) -> None:
    from wmw_link import token_schema
    from wmw_link.agreement import load_agreement

    agreement = load_agreement(world.agreement)
    for d in agreement.datasets:
        pay = world.party_dir(ANALYST) / "inbox" / "payloads" / f"{d.id}.payload.parquet"
        allowed = {"row_ref"} | {f.name for f in d.analyst_payload()}
        assert set(pq.read_schema(pay).names) <= allowed
        tok = world.party_dir(TTP) / "inbox" / f"{d.id}.tokens.parquet"
        types = [f.type.value for f in d.identifiers]
        names = {c.name for c in token_schema.columns_for_identifiers(types)}
        assert set(pq.read_schema(tok).names) <= {"row_ref"} | names


def _read_csv(path: Path):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    cols = pcsv.read_csv(path).column_names
    return pcsv.read_csv(
        path, convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(cols, pa.string()))
    )


# -- validity, versions and hashes ---------------------------------------------------------------


def test_an_expired_agreement_is_refused_by_every_stage(world: World, tmp_path: Path) -> None:
    expired = _agreement_variant(
        world, tmp_path, "expired.yaml", valid_from="2020-01-01", valid_until="2021-12-31"
    )
    ds, party = "dwp_claims", "dwp"
    out = world.tok_out(ds)
    runs = {
        "tokenise": cli(
            world, "tokenise", "--agreement", expired, "--dataset", ds, "--input",
            world.extracts[ds], "--key", world.linkage_key(party), "--ref-key",
            world.ref_key(party), "--out", tmp_path / "tok", ok=False,
        ),
        "seal": cli(
            world, "seal", out / f"{ds}.tokens.parquet", "--agreement", expired, "--from", party,
            "--secret", world.secrets[party], "--to", TTP, "--keyring", world.ring, "--out",
            tmp_path / "x.sealed", ok=False,
        ),
        "unseal": cli(
            world, "unseal", world.party_dir(party) / "outbox" / TTP / f"{ds}.tokens.parquet.sealed",
            "--agreement", expired, "--as", TTP, "--secret", world.secrets[TTP], "--keyring",
            world.ring, "--out", tmp_path, ok=False,
        ),
        "link": cli(
            world, "link", "--agreement", expired, "--inputs", world.party_dir(TTP) / "inbox",
            "--out", tmp_path / "link", ok=False,
        ),
        "journeys": cli(
            world, "journeys", "--agreement", expired, "--payloads",
            world.party_dir(ANALYST) / "inbox" / "payloads", "--maps",
            world.party_dir(ANALYST) / "inbox" / "maps", "--out", tmp_path / "j", ok=False,
        ),
        "outcomes": cli(
            world, "outcomes", "--agreement", expired, "--journeys",
            world.party_dir(ANALYST) / "journeys", "--out", tmp_path / "o", ok=False,
        ),
    }  # fmt: skip
    for stage, r in runs.items():
        # Changing the dates changes the agreement's hash, which unseal checks first; the
        # dates alone are proved at unseal in tests/unit/test_seal.py.
        expected = "check 'agreement'" if stage == "unseal" else "rule 'validity'"
        assert expected in r.output, (stage, r.output)
    refusals = [e for e in _audit(world)[-len(runs) :]]
    assert all(e["outcome"].startswith("refused: ") for e in refusals)


def test_inputs_made_under_a_changed_agreement_text_are_refused(
    world: World, tmp_path: Path
) -> None:
    # Same id and version, different text (hash): someone edited the agreement in place.
    edited = _agreement_variant(
        world, tmp_path, "edited.yaml", title="West Midlands Works (edited)"
    )
    r = cli(
        world, "link", "--agreement", edited, "--inputs", world.party_dir(TTP) / "inbox",
        "--out", tmp_path / "link", ok=False,
    )  # fmt: skip
    assert "hash" in r.output
    sealed = world.party_dir("dwp") / "outbox" / TTP / "dwp_claims.tokens.parquet.sealed"
    r = cli(
        world, "unseal", sealed, "--agreement", edited, "--as", TTP, "--secret", world.secrets[TTP],
        "--keyring", world.ring, "--out", tmp_path, ok=False,
    )  # fmt: skip
    assert "check 'agreement' failed" in r.output and "hash differs" in r.output
    r = cli(
        world, "journeys", "--agreement", edited, "--payloads",
        world.party_dir(ANALYST) / "inbox" / "payloads", "--maps",
        world.party_dir(ANALYST) / "inbox" / "maps", "--out", tmp_path / "j", ok=False,
    )  # fmt: skip
    assert "rule 'agreement hash'" in r.output
    r = cli(
        world, "outcomes", "--agreement", edited, "--journeys",
        world.party_dir(ANALYST) / "journeys", "--out", tmp_path / "o", ok=False,
    )  # fmt: skip
    assert "rule 'agreement hash'" in r.output


def test_mixed_versions_are_refused_unless_the_newer_declares_compatibility(
    world: World, tmp_path: Path
) -> None:
    v2_strict = _agreement_variant(world, tmp_path, "v2.yaml", version="2", compatible_with="[]")
    v2_compat = _agreement_variant(world, tmp_path, "v2c.yaml", version="2", compatible_with="[1]")
    # hmrc re-tokenises under v2 (strict); dwp's tokens at the TTP were made under v1.
    party, ds = "hmrc", "hmrc_rti"
    cli(
        world, "tokenise", "--agreement", v2_strict, "--dataset", ds, "--input",
        world.extracts[ds], "--key", world.linkage_key(party), "--ref-key", world.ref_key(party),
        "--out", tmp_path / "v2tok", "--workers", "1",
    )  # fmt: skip
    v1_inbox = world.party_dir(TTP) / "inbox"
    mixed = [
        v1_inbox / "dwp_claims.tokens.parquet",
        v1_inbox / "dwp_claims.manifest.json",
        tmp_path / "v2tok" / f"{ds}.tokens.parquet",
        tmp_path / "v2tok" / f"{ds}.manifest.json",
    ]
    inputs = [a for p in mixed for a in ("--inputs", p)]
    r = cli(world, "link", "--agreement", v2_strict, *inputs, "--out", tmp_path / "l1", ok=False)
    assert "rule 'version'" in r.output
    # The v1 agreement does not accept the v2 file either.
    r = cli(
        world, "link", "--agreement", world.agreement, *inputs, "--out", tmp_path / "l2", ok=False
    )
    assert "rule 'version'" in r.output or "hash" in r.output
    # A v2 that declares compatible_with: [1] accepts v1 inputs (its own v2 files are re-made).
    cli(
        world, "tokenise", "--agreement", v2_compat, "--dataset", ds, "--input",
        world.extracts[ds], "--key", world.linkage_key(party), "--ref-key", world.ref_key(party),
        "--out", tmp_path / "v2ctok", "--workers", "1",
    )  # fmt: skip
    mixed[2:] = [
        tmp_path / "v2ctok" / f"{ds}.tokens.parquet",
        tmp_path / "v2ctok" / f"{ds}.manifest.json",
    ]
    inputs = [a for p in mixed for a in ("--inputs", p)]
    r = cli(
        world, "link", "--agreement", v2_compat, *inputs, "--out", tmp_path / "l3", "--no-report"
    )
    assert (tmp_path / "l3" / "dwp_claims.map.parquet").exists()
    assert (tmp_path / "l3" / f"{ds}.map.parquet").exists()
    r = cli(
        world, "outcomes", "--agreement", v2_strict, "--journeys",
        world.party_dir(ANALYST) / "journeys", "--out", tmp_path / "o", ok=False,
    )  # fmt: skip
    assert "rule 'version'" in r.output
    # And sealed v1 files open under the compatible v2, not under the strict one.
    sealed = world.party_dir("dwp") / "outbox" / TTP / "dwp_claims.tokens.parquet.sealed"
    unseal(world, sealed, TTP, tmp_path / "ok")  # under world.agreement (v1)
    r = cli(
        world, "unseal", sealed, "--agreement", v2_strict, "--as", TTP, "--secret",
        world.secrets[TTP], "--keyring", world.ring, "--out", tmp_path / "strict", ok=False,
    )  # fmt: skip
    assert "compatible_with" in r.output
    (tmp_path / "compat").mkdir()
    cli(
        world, "unseal", sealed, "--agreement", v2_compat, "--as", TTP, "--secret",
        world.secrets[TTP], "--keyring", world.ring, "--out", tmp_path / "compat",
    )  # fmt: skip


def test_a_tampered_transfer_is_refused_and_logged(world: World, tmp_path: Path) -> None:
    sealed = world.party_dir("dwp") / "outbox" / TTP / "dwp_claims.tokens.parquet.sealed"
    bad = tmp_path / sealed.name
    data = bytearray(sealed.read_bytes())
    data[len(data) // 3] ^= 0x40
    bad.write_bytes(bytes(data))
    r = unseal(world, bad, TTP, tmp_path / "in", ok=False)
    assert "check 'ciphertext' failed" in r.output
    last = _audit(world)[-1]
    assert last["command"] == "unseal" and last["party"] == TTP
    assert last["outcome"].startswith("refused: unseal refused: check 'ciphertext'")
    assert not list((tmp_path / "in").iterdir())


def test_seal_helper_sends_maps_only_to_analysts(world: World, tmp_path: Path) -> None:
    m = world.party_dir(TTP) / "link" / "dwp_claims.map.parquet"
    with pytest.raises(AssertionError):
        seal(world, m, TTP, "dwp")  # a controller may not receive maps
    last = _audit(world)[-1]
    assert last["command"] == "seal" and "rule 'flows'" in last["outcome"]


def _copy_dir(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _rehash(manifest: Path, key: str, data_file: Path) -> None:
    """Make a manifest vouch for an altered file, as a careless or hostile sender would."""
    from wmw_link.files import sha256_file

    m = json.loads(manifest.read_text())
    m["files"][key]["sha256"] = sha256_file(data_file)
    manifest.write_text(json.dumps(m))


def test_linkage_refuses_a_dataset_not_in_the_agreement(world: World, tmp_path: Path) -> None:
    inbox = _copy_dir(world.party_dir(TTP) / "inbox", tmp_path / "inbox")
    m = json.loads((inbox / "dwp_claims.manifest.json").read_text())
    m["dataset"] = "prison_records"
    (inbox / "prison_records.manifest.json").write_text(json.dumps(m))
    (inbox / "prison_records.tokens.parquet").write_bytes(
        (inbox / "dwp_claims.tokens.parquet").read_bytes()
    )
    r = cli(
        world,
        "link",
        "--agreement",
        world.agreement,
        "--inputs",
        inbox,
        "--out",
        tmp_path / "l",
        ok=False,
    )
    assert "dataset 'prison_records' is not in agreement" in r.output


def test_fields_smuggled_past_the_sender_are_refused_downstream(
    world: World, tmp_path: Path
) -> None:
    import pyarrow as pa

    # A tokens file with a plaintext column, its manifest re-hashed: linkage refuses it.
    inbox = _copy_dir(world.party_dir(TTP) / "inbox", tmp_path / "inbox")
    tok = inbox / "dwp_claims.tokens.parquet"
    t = pq.read_table(tok)
    pq.write_table(t.append_column("surname", pa.array(["x"] * len(t))), tok)
    _rehash(inbox / "dwp_claims.manifest.json", "tokens", tok)
    r = cli(
        world,
        "link",
        "--agreement",
        world.agreement,
        "--inputs",
        inbox,
        "--out",
        tmp_path / "l",
        ok=False,
    )
    assert "rule 'tokens only'" in r.output and "surname" in r.output
    # A payload file with a withheld field, its manifest re-hashed: journeys refuses it.
    pay = _copy_dir(world.party_dir(ANALYST) / "inbox" / "payloads", tmp_path / "pay")
    p = pay / "hub_dudley.payload.parquet"
    t = pq.read_table(p)
    pq.write_table(t.append_column("adviser_notes", pa.array(["x"] * len(t))), p)
    _rehash(pay / "hub_dudley.manifest.json", "payload", p)
    r = cli(
        world, "journeys", "--agreement", world.agreement, "--payloads", pay,
        "--maps", world.party_dir(ANALYST) / "inbox" / "maps", "--out", tmp_path / "j", ok=False,
    )  # fmt: skip
    assert "adviser_notes" in r.output and "rule '" in r.output
    assert not (tmp_path / "j" / "events.parquet").exists()


def test_tokenise_and_link_seal_their_outputs_with_seal_to(world: World, tmp_path: Path) -> None:
    party, ds = "dwp", "dwp_claims"
    seal_opts = ["--party-secret", world.secrets[party], "--keyring", world.ring]
    # The options are checked before any work is done.
    r = tokenise(world, ds, "--seal-to", TTP, ok=False)
    assert "--seal-to needs --party-secret and --keyring" in r.output
    r = cli(
        world, "tokenise", "--agreement", world.agreement, "--dataset", ds, "--input",
        world.extracts[ds], "--key", world.linkage_key(party), "--ref-key", world.ref_key(party),
        "--out", tmp_path / "tok", "--workers", "1", "--seal-to", TTP, "--seal-to", ANALYST,
        *seal_opts,
    )  # fmt: skip
    sealed = tmp_path / "tok" / "sealed"
    assert sorted(p.name for p in (sealed / TTP).iterdir()) == [
        f"{ds}.manifest.json.sealed",
        f"{ds}.tokens.parquet.sealed",
    ]
    assert sorted(p.name for p in (sealed / ANALYST).iterdir()) == [
        f"{ds}.manifest.json.sealed",
        f"{ds}.payload.parquet.sealed",
    ]
    entry = _audit(world)[-1]
    assert entry["command"] == "tokenise" and entry["outcome"] == "ok"
    assert sum(o["path"].endswith(".sealed") for o in entry["outputs"]) == 4
    # Nothing may go to another controller.
    r = cli(
        world, "tokenise", "--agreement", world.agreement, "--dataset", ds, "--input",
        world.extracts[ds], "--key", world.linkage_key(party), "--ref-key", world.ref_key(party),
        "--out", tmp_path / "tok2", "--workers", "1", "--seal-to", "hmrc", *seal_opts, ok=False,
    )  # fmt: skip
    assert "none of the files may go to 'hmrc'" in r.output
    # The TTP opens its inbox (tokens checked against the manifest) and links, sealing the maps.
    r = unseal(world, sealed / TTP, TTP, tmp_path / "ttp-in", sender=party)
    assert "manifest" in r.output.splitlines()[-1].split("checks passed:")[1]
    ttp_opts = ["--party-secret", world.secrets[TTP], "--keyring", world.ring]
    # A later link run than the pipeline's (whose run the analysts accepted): a higher number.
    cli(
        world, "link", "--agreement", world.agreement, "--inputs", world.party_dir(TTP) / "inbox",
        "--out", tmp_path / "link", "--no-report", "--seal-to", ANALYST, *ttp_opts,
        "--state", tmp_path / "ttp-state.json", "--delivery", "100",
    )  # fmt: skip
    outbox = tmp_path / "link" / "sealed" / ANALYST
    names = sorted(p.name for p in outbox.iterdir())
    assert "link-manifest.json.sealed" in names and f"{ds}.map.parquet.sealed" in names
    assert len(names) == len(world.datasets) + 1
    r = unseal(world, outbox, ANALYST, tmp_path / "maps", sender=TTP)
    map_lines = [x for x in r.output.splitlines() if ".map.parquet" in x]
    assert len(map_lines) == len(world.datasets)
    assert all("manifest" in x.split("checks passed:")[1] for x in map_lines)
