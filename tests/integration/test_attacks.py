"""The attack benchmark's attacks work: on token schema v2 they recover what issue 10 says a
curious TTP recovers (so a weakness of a later schema would show the same way), and on the
product's schema no token column meets another and the calendar attack finds nothing to use.

The full-size figures are ``benchmarks/bench_attacks.py`` (results/attacks.md)."""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.attacks import schema_v3  # noqa: E402
from benchmarks.attacks.bloom import pattern_mining  # noqa: E402
from benchmarks.attacks.calendar import calendar_attack  # noqa: E402
from benchmarks.attacks.common import strings  # noqa: E402
from benchmarks.attacks.components import cross_column_equalities  # noqa: E402
from benchmarks.attacks.frequency import frequency_alignment  # noqa: E402
from benchmarks.attacks.schema_v2 import SchemaV2  # noqa: E402
from benchmarks.attacks.world import field_arrays, world_fields  # noqa: E402

from wmw_link.agreement import load_agreement  # noqa: E402
from wmw_link.keys import SecretKey  # noqa: E402
from wmw_link.synth import generate  # noqa: E402

pytestmark = pytest.mark.integration

AGREEMENT = ROOT / "agreements" / "wmw-outcomes.yaml"
#: Pattern mining and the calendar need a few tens of thousands of records to have statistics.
PEOPLE = 15_000


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("attacks")
    generate(people=PEOPLE, seed=11, out=tmp / "target", workers=1)
    generate(people=PEOPLE, seed=12, out=tmp / "reference", workers=1)
    a = load_agreement(AGREEMENT)
    today = dt.date.today()
    return {
        "agreement": a,
        "dir": tmp,
        "target": world_fields(a, tmp / "target", today),
        "reference": world_fields(a, tmp / "reference", today),
    }


def test_v2_attacks_recover_dates_and_names(worlds: dict[str, object]) -> None:
    a, target, ref = worlds["agreement"], worlds["target"], worlds["reference"]
    schema = SchemaV2()
    # A fixed key (the attacks never use it): with a fresh key each run, where the calendar
    # places the ambiguous years, and so the exact-date share, moved around the floor below.
    key = SecretKey(b"attack-test-key-0123456789abcdef")
    tokens = schema.tokens(field_arrays(target), key, a.id)  # type: ignore[attr-defined]
    ref_fields = field_arrays(ref)  # type: ignore[arg-type]

    years = Counter(d.year for d in ref["date_of_birth"].to_pylist() if d)  # type: ignore[index]
    cal = calendar_attack(tokens, schema.columns, years)
    assert cal.notes["month_days_labelled"] == 366 and cal.notes["leap_day_found"]
    dob = strings(target["date_of_birth"])  # type: ignore[index]
    guess = cal.fields["date_of_birth"]
    assert np.mean(guess == dob) > 0.3  # years are ambiguous at this size; ~all at 50,000 people
    month_day = np.mean([g is not None and g[5:] == d[5:] for g, d in zip(guess, dob, strict=True)])
    assert month_day > 0.9

    names, grams = schema.bloom_names(ref_fields), schema.bloom_inputs(ref_fields)
    bloom = pattern_mining(
        tokens, schema.bloom_columns(), {p: (names[p], grams[p][0]) for p in grams}
    )
    for part, floor in (("forename", 0.5), ("surname", 0.8)):
        truth = strings(target[part])  # type: ignore[index]
        assert np.mean(bloom.fields[part] == truth) > floor, part

    freq = frequency_alignment(tokens, schema.columns, schema.composite_inputs(ref_fields))
    sex = strings(schema.composite_inputs(field_arrays(target))["sex"])  # type: ignore[arg-type]
    assert np.mean(freq.columns["sex"] == sex) > 0.9  # three values: labelled by frequency
    assert "dob_exact = dob_prev" in cross_column_equalities(tokens, schema.columns)


@pytest.mark.skipif(not schema_v3.available(), reason="the product does not write schema v3")
def test_v3_has_no_comparable_columns(worlds: dict[str, object], tmp_path: Path) -> None:
    from wmw_link.keys import new_key

    a, target = worlds["agreement"], worlds["target"]
    schema = schema_v3.SchemaV3()
    dataset = "hub_birmingham"  # one small extract is enough for the structure
    every = world_fields(a, worlds["dir"] / "target", dt.date.today(), kept_only=False)  # type: ignore[arg-type, operator]
    key = new_key(tmp_path / "keys" / "link.key", force=True)
    a_one = a.model_copy(update={"datasets": [a.dataset(dataset)]})  # type: ignore[attr-defined]
    tokens, truth = schema.tokenise_world(
        a_one, worlds["dir"] / "target", tmp_path, key, every, workers=1
    )  # type: ignore[operator]
    assert tokens.num_rows == truth.num_rows > 0
    assert cross_column_equalities(tokens, schema.columns) == {}
    assert calendar_attack(tokens, schema.columns, {1980: 1}).notes["applicable"] is False
    del target
