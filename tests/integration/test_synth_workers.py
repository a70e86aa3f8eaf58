"""Synthetic generator with worker processes: same bytes whatever the worker count."""

from __future__ import annotations

import importlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from wmw_link.synth import DATASETS, generate


@pytest.mark.integration
def test_output_does_not_depend_on_worker_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen_module = importlib.import_module("wmw_link.synth.generate")
    monkeypatch.setattr(gen_module, "CHUNK_PEOPLE", 400)  # three chunks from 1,000 people
    one = generate(people=1000, seed=9, out=tmp_path / "one", workers=1)
    two = generate(people=1000, seed=9, out=tmp_path / "two", workers=2)
    for name in DATASETS:
        assert one.extracts[name].read_bytes() == two.extracts[name].read_bytes(), name
    assert one.people.read_bytes() == two.people.read_bytes()
    assert one.summary.read_bytes() == two.summary.read_bytes()
    people = pq.read_table(one.people).to_pandas()
    assert people["person_id"].tolist() == list(range(1, 1001))
    assert people["nino"].is_unique and people["nhs_number"].is_unique
