"""Input verification at the trusted third party: every failure refused with the right rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from linkage_fixtures import write_fixture

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.errors import VerificationError
from wmw_link.files import sha256_file
from wmw_link.linkage.verify import collect_inputs, verify_inputs

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture(scope="module")
def pristine(agreement: Agreement, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tokens")
    write_fixture(agreement, d, n_households=8)
    return d


@pytest.fixture
def inputs(pristine: Path, tmp_path: Path) -> Path:
    d = tmp_path / "in"
    shutil.copytree(pristine, d)
    return d


def _edit_manifest(path: Path, **changes: object) -> None:
    m = json.loads(path.read_text())
    for dotted, value in changes.items():
        node = m
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    path.write_text(json.dumps(m))


def test_good_inputs_verify(agreement: Agreement, inputs: Path) -> None:
    got = verify_inputs(agreement, inputs)
    assert [v.dataset for v in got] == ["hmrc_rti", "hub_birmingham", "nhs_referrals"]
    assert all(v.rows > 0 for v in got)
    assert "fnbf_dob0" in got[0].token_columns


def test_wrong_key_check_names_the_odd_partner(agreement: Agreement, inputs: Path) -> None:
    _edit_manifest(inputs / "nhs_referrals.manifest.json", key_check="another-key")
    with pytest.raises(VerificationError, match=r"rule 'key check'.*nhs-icb \(nhs_referrals\)"):
        verify_inputs(agreement, inputs)


def test_altered_tokens_file_refused(agreement: Agreement, inputs: Path) -> None:
    path = inputs / "hmrc_rti.tokens.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(1), path)  # one row dropped
    with pytest.raises(VerificationError, match=r"hmrc_rti.tokens.parquet: rule 'file hash'"):
        verify_inputs(agreement, inputs)


def test_row_count_mismatch_refused(agreement: Agreement, inputs: Path) -> None:
    path = inputs / "hmrc_rti.tokens.parquet"
    pq.write_table(pq.read_table(path).slice(1), path)
    _edit_manifest(inputs / "hmrc_rti.manifest.json", files__tokens__sha256=sha256_file(path))
    with pytest.raises(VerificationError, match="rule 'row count'"):
        verify_inputs(agreement, inputs)


def test_unknown_dataset_refused(agreement: Agreement, inputs: Path) -> None:
    for suffix in (".tokens.parquet", ".manifest.json"):
        (inputs / f"hub_birmingham{suffix}").rename(inputs / f"hub_leicester{suffix}")
    _edit_manifest(inputs / "hub_leicester.manifest.json", dataset="hub_leicester")
    with pytest.raises(VerificationError, match="rule 'datasets': dataset 'hub_leicester'"):
        verify_inputs(agreement, inputs)


def test_wrong_party_for_dataset_refused(agreement: Agreement, inputs: Path) -> None:
    _edit_manifest(inputs / "hmrc_rti.manifest.json", party="dwp")
    with pytest.raises(VerificationError, match="rule 'controller'"):
        verify_inputs(agreement, inputs)


def test_other_agreement_refused(agreement: Agreement, inputs: Path) -> None:
    _edit_manifest(inputs / "hmrc_rti.manifest.json", agreement__id="another-agreement")
    with pytest.raises(VerificationError, match="rule 'agreement'"):
        verify_inputs(agreement, inputs)


def test_changed_agreement_hash_refused(agreement: Agreement, inputs: Path) -> None:
    _edit_manifest(inputs / "hmrc_rti.manifest.json", agreement__hash="0" * 64)
    with pytest.raises(VerificationError, match="rule 'agreement hash'"):
        verify_inputs(agreement, inputs)


def _v2(agreement: Agreement, compatible: list[int]) -> Agreement:
    data = agreement.model_dump()
    data.update(version=2, compatible_with=compatible)
    return Agreement.model_validate(data)


def test_mixed_versions_refused_unless_compatible(agreement: Agreement, inputs: Path) -> None:
    v2 = _v2(agreement, [])
    # hmrc tokenised under v2, the others under v1
    _edit_manifest(inputs / "hmrc_rti.manifest.json", agreement__version=2, agreement__hash=v2.hash)
    with pytest.raises(VerificationError, match=r"rule 'version': made under wmw-outcomes v1"):
        verify_inputs(v2, inputs)
    compatible = _v2(agreement, [1])
    _edit_manifest(inputs / "hmrc_rti.manifest.json", agreement__hash=compatible.hash)
    assert len(verify_inputs(compatible, inputs)) == 3


def test_payload_file_refused(inputs: Path) -> None:
    (inputs / "hmrc_rti.payload.parquet").write_bytes(b"PAR1")
    with pytest.raises(VerificationError, match="a payload file; .* never a payload"):
        collect_inputs(inputs)


def test_other_files_refused(inputs: Path) -> None:
    (inputs / "notes.csv").write_text("a,b\n")
    with pytest.raises(VerificationError, match="notes.csv: refused"):
        collect_inputs(inputs)


def test_extra_column_in_tokens_refused(agreement: Agreement, inputs: Path) -> None:
    import pyarrow as pa

    path = inputs / "hmrc_rti.tokens.parquet"
    table = pq.read_table(path)
    table = table.append_column("monthly_pay", pa.array([1.0] * table.num_rows))
    pq.write_table(table, path)
    _edit_manifest(inputs / "hmrc_rti.manifest.json", files__tokens__sha256=sha256_file(path))
    with pytest.raises(VerificationError, match="rule 'tokens only': column\\(s\\) monthly_pay"):
        verify_inputs(agreement, inputs)


def test_tokens_without_manifest_refused(agreement: Agreement, inputs: Path) -> None:
    (inputs / "hmrc_rti.manifest.json").unlink()
    with pytest.raises(VerificationError, match="no manifest hmrc_rti.manifest.json"):
        verify_inputs(agreement, inputs)


def test_plaintext_column_listed_in_manifest_refused(agreement: Agreement, inputs: Path) -> None:
    """The allowed columns come from the agreement, not from the controller's manifest."""
    import pyarrow as pa

    path = inputs / "hmrc_rti.tokens.parquet"
    table = pq.read_table(path)
    table = table.append_column("surname_plain", pa.array(["smith"] * table.num_rows))
    pq.write_table(table, path)
    mpath = inputs / "hmrc_rti.manifest.json"
    m = json.loads(mpath.read_text())
    m["token_schema"]["columns"]["surname_plain"] = dict(
        m["token_schema"]["columns"]["sn_dob"], name="surname_plain"
    )
    m["files"]["tokens"]["sha256"] = sha256_file(path)
    mpath.write_text(json.dumps(m))
    with pytest.raises(VerificationError) as e:
        verify_inputs(agreement, inputs)
    msg = str(e.value)
    assert "hmrc_rti.manifest.json" in msg and "surname_plain" in msg
    assert "rule 'tokens only'" in msg and "hmrc_rti" in msg
    assert "smith" not in msg


def test_plaintext_column_in_tokens_file_refused_by_agreement(
    agreement: Agreement, inputs: Path
) -> None:
    """Even if the manifest check were passed, the file's own columns are held to the agreement."""
    import pyarrow as pa

    from wmw_link.linkage.verify import _check_tokens, _load_manifest

    path = inputs / "hmrc_rti.tokens.parquet"
    table = pq.read_table(path)
    pq.write_table(table.append_column("surname_plain", pa.array(["x"] * table.num_rows)), path)
    mpath = inputs / "hmrc_rti.manifest.json"
    _edit_manifest(mpath, files__tokens__sha256=sha256_file(path))
    m = _load_manifest(mpath)
    m["token_schema"]["columns"]["surname_plain"] = {}
    with pytest.raises(
        VerificationError,
        match=r"hmrc_rti.tokens.parquet: rule 'tokens only': column\(s\) surname_plain are not "
        r"token columns agreement wmw-outcomes v1 permits for dataset 'hmrc_rti'",
    ):
        _check_tokens(path, mpath, m, agreement.dataset("hmrc_rti"), agreement)


def test_token_column_of_another_identifier_type_refused(
    agreement: Agreement, inputs: Path
) -> None:
    """hmrc_rti has no NHS number in the agreement: an 'nhs' column is refused."""
    import pyarrow as pa

    from wmw_link.token_schema import BY_NAME

    path = inputs / "hmrc_rti.tokens.parquet"
    table = pq.read_table(path)
    pq.write_table(table.append_column("nhs", pa.array(["0" * 32] * table.num_rows)), path)
    mpath = inputs / "hmrc_rti.manifest.json"
    m = json.loads(mpath.read_text())
    m["token_schema"]["columns"]["nhs"] = BY_NAME["nhs"].to_manifest()
    m["files"]["tokens"]["sha256"] = sha256_file(path)
    mpath.write_text(json.dumps(m))
    with pytest.raises(VerificationError, match=r"rule 'tokens only': token schema column 'nhs'"):
        verify_inputs(agreement, inputs)


def test_manifest_column_spec_must_match_token_schema(agreement: Agreement, inputs: Path) -> None:
    mpath = inputs / "hmrc_rti.manifest.json"
    m = json.loads(mpath.read_text())
    m["token_schema"]["columns"]["sn_dob"]["kind"] = "bloom_word"
    mpath.write_text(json.dumps(m))
    with pytest.raises(
        VerificationError, match=r"rule 'token schema': column 'sn_dob' has kind"
    ):
        verify_inputs(agreement, inputs)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("files__tokens", "hmrc_rti.tokens.parquet", "'files.tokens' must be an object"),
        ("files", ["tokens"], "'files' must be an object"),
        ("files__tokens__rows", "12", "'files.tokens.rows' must be an integer"),
        ("files__tokens__sha256", 7, "'files.tokens.sha256' must be a string"),
        ("token_schema__columns", ["nino"], "'token_schema.columns' must be an object"),
        ("token_schema", "v1", "'token_schema' must be an object"),
        ("agreement", "wmw-outcomes", "'agreement' must be an object"),
        ("agreement__version", "1", "'agreement.version' must be an integer"),
        ("key_check", 5, "'key_check' must be a string"),
        ("party", None, "'party' must be a string"),
    ],
)
def test_manifest_structure_refused_with_field_named(
    agreement: Agreement, inputs: Path, field: str, value: object, message: str
) -> None:
    _edit_manifest(inputs / "hmrc_rti.manifest.json", **{field: value})
    with pytest.raises(VerificationError) as e:
        verify_inputs(agreement, inputs)
    assert "hmrc_rti.manifest.json: manifest field " + message in str(e.value)
    assert "rule 'manifest structure'" in str(e.value)


def test_manifest_missing_field_named(agreement: Agreement, inputs: Path) -> None:
    mpath = inputs / "hmrc_rti.manifest.json"
    m = json.loads(mpath.read_text())
    del m["files"]["tokens"]["rows"]
    mpath.write_text(json.dumps(m))
    with pytest.raises(VerificationError, match=r"manifest lacks 'files.tokens.rows'"):
        verify_inputs(agreement, inputs)


def test_tokens_of_an_older_token_schema_refused(agreement: Agreement, inputs: Path) -> None:
    _edit_manifest(inputs / "hmrc_rti.manifest.json", token_schema__version=1)
    with pytest.raises(VerificationError, match=r"token schema version 1; this wmw-link links"):
        verify_inputs(agreement, inputs)


def test_schema_v2_tokens_refused_naming_the_version(agreement: Agreement, inputs: Path) -> None:
    """A version 2 manifest describes its columns differently: the version is named first."""
    mpath = inputs / "hmrc_rti.manifest.json"
    m = json.loads(mpath.read_text())
    m["token_schema"]["version"] = 2
    m["token_schema"]["columns"] = {
        "forename_exact": {
            "name": "forename_exact",
            "identifier": "forename",
            "kind": "hmac",
            "domain": "name",
            "encoding": "name",
            "low_entropy": False,
        }
    }
    mpath.write_text(json.dumps(m))
    with pytest.raises(
        VerificationError, match=r"rule 'token schema': tokens made under token schema version 2"
    ):
        verify_inputs(agreement, inputs)


def test_token_column_of_the_wrong_type_refused(agreement: Agreement, inputs: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    path = inputs / "hmrc_rti.tokens.parquet"
    table = pq.read_table(path)
    i = table.schema.get_field_index("nino")
    table = table.set_column(i, "nino", pc.cast(table.column("nino"), pa.string()))
    pq.write_table(table, path)
    _edit_manifest(inputs / "hmrc_rti.manifest.json", files__tokens__sha256=sha256_file(path))
    with pytest.raises(VerificationError, match=r"column 'nino' is string, the token schema says"):
        verify_inputs(agreement, inputs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda refs: [refs[0]] + refs[:-1], r"rule 'row refs': 1 row_ref value\(s\) repeat"),
        (lambda refs: [None] + refs[1:], r"rule 'row refs': 1 row\(s\) have no row_ref"),
    ],
)
def test_repeated_or_missing_row_refs_refused(
    agreement: Agreement, inputs: Path, change, message: str
) -> None:
    import pyarrow as pa

    path = inputs / "hmrc_rti.tokens.parquet"
    table = pq.read_table(path)
    refs = change(table.column("row_ref").to_pylist())
    field = pa.field("row_ref", pa.string())  # nullable, so that a null can be written at all
    table = table.set_column(0, field, pa.array(refs, pa.string()))
    pq.write_table(table, path)
    _edit_manifest(inputs / "hmrc_rti.manifest.json", files__tokens__sha256=sha256_file(path))
    with pytest.raises(VerificationError, match=message):
        verify_inputs(agreement, inputs)
