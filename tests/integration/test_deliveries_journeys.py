"""Monthly synthetic deliveries, tokenised as controllers do, accumulated by `journeys`.

Each delivery is tokenised with the same keys (a re-sent record keeps its row ref); the maps of
each "link run" come from the truth (crosswalk -> record -> person), with an index section, so
the test isolates the analysts' side: the journeys of three accumulated deliveries must hold
the same events as the journeys of the whole history in one go.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wmw_link.agreement import load_agreement
from wmw_link.files import sha256_file
from wmw_link.journeys import build_journeys
from wmw_link.keys import new_key
from wmw_link.outcomes import measure_outcomes
from wmw_link.synth import extract_path, generate
from wmw_link.tokenise import tokenise

pytestmark = pytest.mark.integration

AGREEMENT = "agreements/wmw-outcomes.yaml"
K = 3


def _analyst_folders(
    tok: Path, dest: Path, truth: dict[tuple[str, str], int], index: dict | None
) -> tuple[Path, Path]:
    """Payloads and truth maps (with a link manifest) of one tokenise output folder."""
    pay, maps = dest / "payloads", dest / "maps"
    pay.mkdir(parents=True)
    maps.mkdir(parents=True)
    link: dict = {
        "kind": "wmw-link/link-manifest",
        "agreement": {},
        "inputs": {},
        "outputs": {},
    }
    for man_path in sorted(tok.glob("*.manifest.json")):
        man = json.loads(man_path.read_text())
        ds = man["dataset"]
        link["agreement"] = man["agreement"]
        shutil.copy2(tok / f"{ds}.payload.parquet", pay)
        shutil.copy2(man_path, pay)
        link["inputs"][ds] = {"tokens": man["files"]["tokens"]}
        cw = pq.read_table(tok / f"{ds}.crosswalk.parquet").to_pylist()
        path = maps / f"{ds}.map.parquet"
        pq.write_table(
            pa.table(
                {
                    "row_ref": [str(r["row_ref"]) for r in cw],
                    "person_id": [f"T{truth[(ds, r['record_id'])]}" for r in cw],
                }
            ),
            path,
        )
        link["outputs"][ds] = {"name": path.name, "sha256": sha256_file(path), "rows": len(cw)}
    if index is not None:
        link["index"] = index
        changes = maps / "id-changes.parquet"
        pq.write_table(
            pa.table({"old_person_id": pa.array([], pa.string()),
                      "new_person_id": pa.array([], pa.string())}),
            changes,
        )  # fmt: skip
        link["id_changes"] = {"name": changes.name, "sha256": sha256_file(changes), "rows": 0}
    (maps / "link-manifest.json").write_text(json.dumps(link))
    return pay, maps


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("deliv")
    res = generate(people=1500, seed=5, out=work / "world", deliveries=K)
    a = load_agreement(AGREEMENT)
    key = new_key(work / "link.key")
    refs = {ds.id: new_key(work / f"{ds.id}.ref.key") for ds in a.datasets}
    t = pq.read_table(res.truth).to_pylist()
    truth = {(r["dataset"], r["record_id"]): r["person_id"] for r in t}
    folders = []
    for d in range(1, K + 1):
        src = work / "world" / "deliveries" / f"{d:02d}" / "extracts"
        tok = work / f"tok{d}"
        for ds in a.datasets:
            path = src / extract_path(work, ds.id).name
            if path.exists():
                tokenise(a, ds.id, path, key, refs[ds.id], tok, delivery=d, workers=1)
        index = {"delivery": d, "mode": "incremental" if d > 1 else "full",
                 "as_at": f"2026-0{6 + d}-03T07:00:00+00:00", "deliveries": list(range(1, d + 1))}  # fmt: skip
        folders.append(_analyst_folders(tok, work / f"an{d}", truth, index))
    whole = work / "tok-whole"
    for ds in a.datasets:
        tokenise(a, ds.id, extract_path(work / "world", ds.id), key, refs[ds.id], whole, workers=1)
    full = _analyst_folders(whole, work / "an-whole", truth, None)
    return work, a, folders, full


def _sorted_events(t: pa.Table) -> list[dict]:
    rows = t.to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_accumulated_deliveries_give_the_whole_history_events(world) -> None:
    work, a, folders, full = world
    acc = build_journeys(
        a, [p for p, _ in folders], [m for _, m in reversed(folders)], work / "j-acc",
        as_of=None,
    )  # fmt: skip
    one = build_journeys(a, full[0], full[1], work / "j-whole")
    assert acc.counts["payload_rows_replaced_by_later_deliveries"] > 0
    assert acc.events.num_rows == one.events.num_rows
    assert _sorted_events(acc.events) == _sorted_events(one.events)
    assert set(acc.persons.column("person_id").to_pylist()) == set(
        one.persons.column("person_id").to_pylist()
    )
    assert acc.as_at["delivery"] == K
    out = measure_outcomes(a, work / "j-acc", work / "o-acc")
    assert out.refresh["delivery"] == K and out.refresh["as_at"].startswith("2026-09-03")


def test_first_delivery_alone_knows_no_later_end(world) -> None:
    work, a, folders, _ = world
    first = build_journeys(a, folders[0][0], folders[0][1])
    months = json.loads((work / "world" / "deliveries" / "deliveries.json").read_text())["months"]
    ends = [e["end"] for e in first.events.to_pylist() if e["end"] is not None]
    assert ends and max(ends).strftime("%Y-%m") <= months[0]
