"""Monthly deliveries (``synth --deliveries K``): each record new once, re-sends, determinism."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from wmw_link.cli import main
from wmw_link.errors import ConfigError
from wmw_link.synth import DATASETS, generate
from wmw_link.synth.deliveries import CorrectionRates, delivery_months
from wmw_link.synth.extracts import RECORD_ID

N, K = 2500, 4
# Rates high enough that a small region has every kind of correction.
RATES = CorrectionRates(marriage=0.05, move=0.05, dob_fix=0.5)
LAYOUT = {  # dataset -> (surname, postcode, dob, dob format, start, start format)
    "hmrc_rti": ("SURNAME", "POSTCODE", "DATE_OF_BIRTH", "%Y-%m-%d", "EMPLOYMENT_START",
                 "%Y-%m-%d"),
    "dwp_claims": ("surname", "postcode", "dob", "%d/%m/%Y", "start_date", "%d/%m/%Y"),
    "nhs_referrals": ("FAMILY_NAME", "POSTCODE", "BIRTH_DATE", "%Y%m%d", "REFERRAL_DATE",
                      "%Y%m%d"),
    "skills_enrolments": ("FullName", "Postcode", "DateOfBirth", "%d-%b-%Y", "LearnStartDate",
                          "%d-%b-%Y"),
}  # fmt: skip
HUB = ("surname", "postcode", "date_of_birth", "%d/%m/%Y", "support_start", "%d/%m/%Y")


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def _frames(root: Path, k: int) -> dict[int, dict[str, pd.DataFrame]]:
    out: dict[int, dict[str, pd.DataFrame]] = {}
    for d in range(1, k + 1):
        out[d] = {
            p.name.split(".")[0]: _read(p) for p in (root / f"{d:02d}" / "extracts").iterdir()
        }
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("deliveries")
    result = generate(people=N, seed=7, out=out, deliveries=K, correction_rates=RATES)
    extracts = {name: _read(p) for name, p in result.extracts.items()}
    return result, extracts, _frames(out / "deliveries", K)


def test_whole_history_is_unchanged_by_deliveries(world, tmp_path: Path) -> None:
    result, _, _ = world
    plain = generate(people=N, seed=7, out=tmp_path)
    for name in DATASETS:
        assert plain.extracts[name].read_bytes() == result.extracts[name].read_bytes(), name
    assert plain.truth.read_bytes() == result.truth.read_bytes()
    assert plain.summary.read_bytes() == result.summary.read_bytes()
    assert not (tmp_path / "deliveries").exists()


def test_months_end_at_the_last_month_and_are_ordered(world) -> None:
    result, _, _ = world
    months = result.deliveries.months
    assert months == ["2026-06", "2026-07", "2026-08", "2026-09"] == delivery_months(K)
    for d, month in enumerate(months, start=1):
        meta = json.loads((result.out / "deliveries" / f"{d:02d}" / "delivery.json").read_text())
        assert meta["number"] == d and meta["month"] == month


def test_every_record_is_new_exactly_once(world) -> None:
    _, extracts, deliveries = world
    for name in DATASETS:
        rid = RECORD_ID[name][0]
        seen: set[str] = set()
        for d in sorted(deliveries):
            df = deliveries[d].get(name)
            if df is None:
                continue
            ids = df[rid]
            assert ids.is_unique, (name, d)
            new = set(ids) - seen
            resent = set(ids) & seen
            # Counts in delivery.json agree with the files.
            assert len(new) + len(resent) == len(df)
            seen |= new
        assert seen == set(extracts[name][rid]), name


def test_new_records_come_in_the_month_their_event_starts(world) -> None:
    result, _, deliveries = world
    months = result.deliveries.months
    seen: dict[str, set[str]] = {}
    for d in sorted(deliveries):
        for name, df in deliveries[d].items():
            lay = LAYOUT.get(name, HUB)
            rid = RECORD_ID[name][0]
            new = df[~df[rid].isin(seen.setdefault(name, set()))]
            seen[name] |= set(df[rid])
            start = pd.to_datetime(new[lay[4]], format=lay[5]).dt.strftime("%Y-%m")
            if d == 1:
                assert (start.dropna() <= months[0]).all(), name
            else:
                assert (start == months[d - 1]).all(), (name, d)


def test_resends_keep_record_id_and_person_and_change_what_they_say(world) -> None:
    result, extracts, deliveries = world
    root = result.out / "deliveries"
    truth = pq.read_table(result.truth).to_pandas().set_index(["dataset", "record_id"])
    people = pq.read_table(result.people).to_pandas().set_index("person_id")
    reasons: dict[str, int] = {}
    last: dict[tuple[str, str], pd.Series] = {}
    for d in sorted(deliveries):
        resent = pq.read_table(root / f"{d:02d}" / "truth" / "resent.parquet").to_pandas()
        d_truth = pq.read_table(root / f"{d:02d}" / "truth" / "truth.parquet").to_pandas()
        # The delivery's truth names the same person as the whole history's, for every row.
        got = d_truth.set_index(["dataset", "record_id"])["person_id"]
        assert (got == truth.loc[got.index, "person_id"]).all()
        assert len(d_truth) == sum(len(df) for df in deliveries[d].values())
        for row in resent.itertuples():
            key = (row.dataset, row.record_id)
            assert key in last, f"re-sent {key} was never sent before"
            df = deliveries[d][row.dataset]
            now = df[df[RECORD_ID[row.dataset][0]] == row.record_id].iloc[0]
            before = last[key]
            sur, post, dob, dob_fmt, *_ = LAYOUT.get(row.dataset, HUB)
            for reason in row.reason.split(","):
                reasons[reason] = reasons.get(reason, 0) + 1
                if reason == "surname":
                    assert now[sur] != before[sur]
                    assert people.loc[row.person_id, "sex"] == "F"
                elif reason == "postcode":
                    assert (
                        now[post].replace(" ", "").upper() != before[post].replace(" ", "").upper()
                    )
                elif reason == "birth_date":
                    true = people.loc[row.person_id, "birth_date"]
                    assert dt.datetime.strptime(now[dob], dob_fmt).date() == true
                    assert now[dob] != before[dob]
        for name, df in deliveries[d].items():
            for _, r in df.iterrows():
                last[(name, r[RECORD_ID[name][0]])] = r
    assert {"surname", "postcode", "birth_date", "end_date"} <= set(reasons), reasons
    # Apart from corrected identifiers, each record's latest send is its extracts/ row.
    corrected_cols = {c for name in DATASETS for c in LAYOUT.get(name, HUB)[:3]}
    for name in DATASETS:
        rid = RECORD_ID[name][0]
        want = extracts[name].set_index(rid)
        latest = pd.DataFrame([last[(name, r)] for r in want.index]).set_index(rid)
        keep = [c for c in want.columns if c not in corrected_cols]
        pd.testing.assert_frame_equal(latest[keep], want[keep], check_names=False)


def test_open_records_are_sent_without_their_end(world) -> None:
    result, _, deliveries = world
    first = deliveries[1]["hmrc_rti"]
    ends = pd.to_datetime(first["EMPLOYMENT_END"], format="%Y-%m-%d").dt.strftime("%Y-%m")
    assert (ends.dropna() <= result.deliveries.months[0]).all()


def test_same_seed_same_deliveries_other_seed_differs(world, tmp_path: Path) -> None:
    result, _, _ = world
    again = generate(people=N, seed=7, out=tmp_path / "a", deliveries=K, correction_rates=RATES)
    other = generate(people=N, seed=8, out=tmp_path / "b", deliveries=K, correction_rates=RATES)

    def files(root: Path) -> dict[str, dict]:
        return {
            d: json.loads((root / "deliveries" / d / "delivery.json").read_text())["files"]
            for d in ("01", "02", "03", "04")
        }

    assert files(again.out) == files(result.out)
    assert files(other.out) != files(result.out)
    for d in ("02", "04"):
        a = again.out / "deliveries" / d / "truth" / "resent.parquet"
        assert (
            a.read_bytes()
            == (result.out / "deliveries" / d / "truth" / "resent.parquet").read_bytes()
        )


def test_fewer_deliveries_replace_an_earlier_run_and_bad_counts_are_refused(
    tmp_path: Path,
) -> None:
    generate(people=300, seed=1, out=tmp_path, deliveries=3)
    generate(people=300, seed=1, out=tmp_path, deliveries=2)
    assert sorted(p.name for p in (tmp_path / "deliveries").iterdir()) == [
        "01", "02", "deliveries.json"
    ]  # fmt: skip
    for bad in (0, 34, True, 2.5):
        with pytest.raises(ConfigError, match="deliveries must be a whole number"):
            generate(people=300, seed=1, out=tmp_path / "x", deliveries=bad)
    (tmp_path / "y" / "deliveries").mkdir(parents=True)
    (tmp_path / "y" / "deliveries" / "mine.txt").write_text("x")
    with pytest.raises(ConfigError, match="holds something other"):
        generate(people=300, seed=1, out=tmp_path / "y", deliveries=2)


def test_cli_writes_deliveries(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main,
        ["--audit-log", str(tmp_path / "a.jsonl"), "synth", "--people", "300", "--seed", "3",
         "--deliveries", "2", "--out", str(tmp_path / "w")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "delivery 02 (2026-09)" in res.output
    assert (tmp_path / "w" / "deliveries" / "02" / "delivery.json").is_file()
    res = CliRunner().invoke(
        main, ["synth", "--people", "30", "--deliveries", "40", "--out", str(tmp_path / "v")]
    )
    assert res.exit_code == 2 and "--deliveries" in res.output
