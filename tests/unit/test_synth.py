"""The synthetic generator: files, formats per the agreement, ground truth, households, seeds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from wmw_link.agreement import IdentifierType, PayloadType, load_agreement
from wmw_link.synth import DATASETS, generate
from wmw_link.synth.ids import is_valid_nhs_number, is_valid_nino

ROOT = Path(__file__).resolve().parents[2]
AGREEMENT = ROOT / "agreements" / "wmw-outcomes.yaml"
N = 3000


def read_extract(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synth")
    result = generate(people=N, seed=7, out=out)
    frames = {name: read_extract(p) for name, p in result.extracts.items()}
    return result, frames


def test_writes_every_file_in_the_contract(run) -> None:
    result, frames = run
    out = result.out
    assert (out / "extracts" / "hmrc_rti.parquet").is_file()
    for name in DATASETS:
        if name != "hmrc_rti":
            assert (out / "extracts" / f"{name}.csv").is_file(), name
    assert (out / "truth" / "truth.parquet").is_file()
    assert (out / "truth" / "people.parquet").is_file()
    summary = json.loads((out / "synth.json").read_text())
    assert summary["people"] == N and summary["seed"] == 7
    assert summary["extracts"]["dwp_claims"]["rows"] == len(frames["dwp_claims"])
    assert all(len(frames[name]) > 0 for name in DATASETS)


def test_hmrc_parquet_has_only_string_columns(run) -> None:
    result, _ = run
    schema = pq.read_schema(result.extracts["hmrc_rti"])
    assert {str(t) for t in schema.types} == {"string"}


def _parse_all(values: pd.Series, fmt: str, where: str) -> None:
    for v in values.dropna():
        try:
            dt.datetime.strptime(v, fmt)
        except ValueError:
            pytest.fail(f"{where}: a value does not match {fmt}")


def test_every_agreement_column_is_present_in_its_format(run) -> None:
    agreement = load_agreement(AGREEMENT)
    _, frames = run
    assert {d.id for d in agreement.datasets} == set(DATASETS)
    for ds in agreement.datasets:
        df = frames[ds.id]
        assert ds.record_id in df.columns, ds.id
        assert df[ds.record_id].is_unique, ds.id
        assert df[ds.record_id].notna().all(), ds.id
        for f in ds.identifiers:
            assert f.column in df.columns, f"{ds.id}.{f.column}"
            if f.type == IdentifierType.DATE_OF_BIRTH:
                assert f.format is not None
                _parse_all(df[f.column], f.format, f"{ds.id}.{f.column}")
            if f.required and f.type == IdentifierType.DATE_OF_BIRTH:
                assert df[f.column].notna().all()
        for f in ds.payload:
            assert f.column in df.columns, f"{ds.id}.{f.column}"
            col = df[f.column]
            if f.type in (PayloadType.DATE, PayloadType.YEAR):
                assert f.format is not None
                _parse_all(col, f.format, f"{ds.id}.{f.column}")
            elif f.type == PayloadType.CATEGORY:
                assert set(col.dropna()) <= set(f.categories or []), f"{ds.id}.{f.column}"
            elif f.type == PayloadType.NUMBER:
                assert pd.to_numeric(col.dropna()).ge(0).all()
            elif f.type == PayloadType.BOOLEAN:
                assert set(col.dropna()) <= {"Y", "N"}
        named = {ds.record_id} | {f.column for f in ds.identifiers} | {f.column for f in ds.payload}
        extra = set(df.columns) - named
        assert extra, f"{ds.id} should carry a column the agreement does not name"


def test_withheld_columns_are_present_and_filled(run) -> None:
    _, frames = run
    assert frames["nhs_referrals"]["GP_PRACTICE"].notna().all()
    assert frames["hub_birmingham"]["adviser_notes"].notna().all()


def test_identifier_formats_per_partner(run) -> None:
    _, frames = run
    hmrc = frames["hmrc_rti"]
    assert hmrc["FORENAMES"].str.upper().eq(hmrc["FORENAMES"]).all()
    assert hmrc["NINO"].dropna().map(is_valid_nino).all()
    assert hmrc["NINO"].dropna().str.fullmatch(r"[A-Z]{2}\d{6}[A-D]").all()
    dwp = frames["dwp_claims"]
    assert dwp["nino"].dropna().str.fullmatch(r"[A-Z]{2} \d\d \d\d \d\d [A-D]").all()
    assert not dwp["postcode"].str.contains(" ").any()
    nhs = frames["nhs_referrals"]
    assert nhs["NHS_NUMBER"].dropna().str.fullmatch(r"\d{3} \d{3} \d{4}").all()
    assert nhs["NHS_NUMBER"].dropna().map(is_valid_nhs_number).all()
    assert set(nhs["SEX"]) <= {"1", "2"}
    assert pd.to_numeric(hmrc["MONTHLY_PAY"]).gt(0).all()
    hubs = pd.concat([frames[d] for d in DATASETS if d.startswith("hub_")])
    assert hubs["ni_number"].dropna().map(is_valid_nino).all()
    assert set(hubs["gender"]) <= {"Female", "Male", "Other", "Prefer not to say"}
    # Hub files hold only their own hub's clients.
    for d in DATASETS:
        if d.startswith("hub_"):
            assert frames[d]["hub_la"].str.lower().eq(d.removeprefix("hub_")).all()


def test_postcodes_are_in_wmca_districts(run) -> None:
    _, frames = run
    districts = set(pd.read_csv(ROOT / "configs" / "postcode_districts.csv")["district"])
    outward = frames["nhs_referrals"]["POSTCODE"].str.split(" ").str[0]
    assert outward.isin(districts).all()


def test_ground_truth_is_complete(run) -> None:
    result, frames = run
    truth = pq.read_table(result.truth).to_pandas()
    people = pq.read_table(result.people).to_pandas()
    assert list(truth.columns) == ["dataset", "record_id", "person_id"]
    assert str(truth["person_id"].dtype) == "int64"
    assert not truth.duplicated(["dataset", "record_id"]).any()
    for name, df in frames.items():
        ids = df.iloc[:, 0]
        t = truth[truth["dataset"] == name]
        assert len(t) == len(df), name
        assert set(t["record_id"]) == set(ids), name
    assert truth["person_id"].isin(people["person_id"]).all()
    assert len(people) == N and people["person_id"].is_unique


def test_truth_matches_the_people_it_names(run) -> None:
    """Most records carry their person's true NHS number (a few are blanked as errors)."""
    result, frames = run
    truth = pq.read_table(result.truth).to_pandas()
    people = pq.read_table(result.people).to_pandas().set_index("person_id")
    nhs = frames["nhs_referrals"].merge(
        truth[truth.dataset == "nhs_referrals"], left_on="REFERRAL_ID", right_on="record_id"
    )
    shown = nhs["NHS_NUMBER"].str.replace(" ", "")
    true = people.loc[nhs["person_id"], "nhs_number"].to_numpy()
    known = shown.notna()
    assert (shown[known].to_numpy() == true[known.to_numpy()]).all()


def test_households_twins_and_juniors_exist(run) -> None:
    result, _ = run
    people = pq.read_table(result.people).to_pandas()
    sizes = people.groupby("household_id").size()
    assert (sizes >= 3).any()
    multi = people[people["household_id"].isin(sizes[sizes >= 2].index)]
    shared = multi.groupby("household_id").agg(
        pc=("postcode", "nunique"), sn=("surname", "nunique")
    )
    assert (shared["pc"] == 1).all()  # a household shares an address
    assert (shared["sn"] == 1).mean() > 0.5  # and usually a surname
    twins = people[people["twin"]]
    assert len(twins) >= 2
    assert twins.groupby(["household_id", "birth_date"]).size().ge(2).all()
    juniors = people[people["junior"]]
    assert len(juniors) >= 1
    for _, j in juniors.iterrows():
        hh = people[(people.household_id == j.household_id) & (people.person_id != j.person_id)]
        assert (hh["forename"] == j.forename).any()
    assert people["birth_surname"].notna().any()  # some surnames changed on marriage
    assert people["surname"].str.contains("-").any() or N < 2000


def test_identifiers_are_valid_and_unique(run) -> None:
    result, _ = run
    people = pq.read_table(result.people).to_pandas()
    assert people["nino"].map(is_valid_nino).all() and people["nino"].is_unique
    assert people["nhs_number"].map(is_valid_nhs_number).all() and people["nhs_number"].is_unique
    ages = people["age_at_2024_01_01"]
    assert ages.between(16, 64).all()


def test_behaviour_follows_the_plan(run) -> None:
    result, _ = run
    realised = json.loads(result.summary.read_text())["truth"]["realised"]["wmca"]
    assert 0.64 < realised["employment_rate"] < 0.75
    assert 0.20 < realised["disability_gap"] < 0.40
    assert realised["youth_unemployment_rate_16_24"] > realised["unemployment_rate"]
    effect = result.true_effect
    assert effect["att_12m_points"] > 3  # support really helps


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate(people=400, seed=11, out=tmp_path / "a")
    b = generate(people=400, seed=11, out=tmp_path / "b")
    c = generate(people=400, seed=12, out=tmp_path / "c")
    for name in DATASETS:
        assert a.extracts[name].read_bytes() == b.extracts[name].read_bytes(), name
    assert a.truth.read_bytes() == b.truth.read_bytes()
    assert (tmp_path / "a" / "synth.json").read_bytes() == (
        tmp_path / "b" / "synth.json"
    ).read_bytes()
    assert a.extracts["dwp_claims"].read_bytes() != c.extracts["dwp_claims"].read_bytes()


def test_extract_events_agree_with_the_true_paths(tmp_path: Path) -> None:
    """Clean data: HMRC spells cover the months people are in work; hub starts match the truth."""
    from wmw_link.synth import ErrorRates

    res = generate(people=800, seed=5, out=tmp_path, rates=ErrorRates().scaled(0))
    truth = pq.read_table(res.truth).to_pandas()
    people = pq.read_table(res.people).to_pandas().set_index("person_id")
    hmrc = pq.read_table(res.extracts["hmrc_rti"]).to_pandas()
    hmrc = hmrc.merge(truth, left_on="EMPLOYMENT_ID", right_on="record_id")
    start = pd.to_datetime(hmrc["EMPLOYMENT_START"]).dt.to_period("M")
    end = pd.to_datetime(hmrc["EMPLOYMENT_END"]).dt.to_period("M").fillna(pd.Period("2026-09", "M"))
    months = pd.period_range("2024-01", "2026-09", freq="M")
    checked = 0
    for pid, row in people.sample(200, random_state=1).iterrows():
        spells = [(s, e) for s, e, p in zip(start, end, hmrc["person_id"], strict=True) if p == pid]
        for m, bit in zip(months, row["employed_by_month"], strict=True):
            covered = any(s <= m <= e for s, e in spells)
            if bit == "1":
                assert covered, f"person {pid} in work in {m} without an HMRC spell"
                checked += 1
    assert checked > 100
    hubs = pd.concat([read_extract(p) for d, p in res.extracts.items() if d.startswith("hub_")])
    hubs = hubs.merge(truth, left_on="client_id", right_on="record_id")
    first = hubs.assign(day=pd.to_datetime(hubs["support_start"], format="%d/%m/%Y"))
    first = first.groupby("person_id")["day"].min()
    expected = pd.to_datetime(people.loc[first.index, "hub_start_date"])
    assert (first.to_numpy() == expected.to_numpy()).all()
    assert people["hub_start_date"].notna().sum() == first.index.nunique()


def test_packaged_district_table_matches_configs() -> None:
    from importlib import resources

    packaged = (
        resources.files("wmw_link").joinpath("data", "postcode_districts.csv").read_text("utf-8")
    )
    table = pd.read_csv(ROOT / "configs" / "postcode_districts.csv")
    assert packaged == (ROOT / "configs" / "postcode_districts.csv").read_text("utf-8")
    assert table.groupby("local_authority").size().to_dict().keys() == {
        "Birmingham",
        "Coventry",
        "Dudley",
        "Sandwell",
        "Solihull",
        "Walsall",
        "Wolverhampton",
    }
    assert table["district"].is_unique


def test_no_birth_date_piles_up(tmp_path) -> None:
    # Partners' ages were once clipped at 64.9, putting 0.45% of people on one birth date.
    import pandas as pd

    from wmw_link.synth import generate

    generate(people=20_000, seed=5, out=tmp_path / "s")
    days = pd.read_parquet(tmp_path / "s" / "truth" / "people.parquet", columns=["birth_date"])
    assert days["birth_date"].value_counts().iloc[0] <= 20  # 0.1%; about 1.2 expected
