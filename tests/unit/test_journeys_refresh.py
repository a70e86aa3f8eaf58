"""Journeys over refreshes: several deliveries and index link runs, id changes, re-sent rows,
withdrawals (wmw_link.journeys.refresh)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from journey_fixtures import _TYPES, AGREEMENT_PATH, D, agreement, write_inputs

from wmw_link.cli import main
from wmw_link.errors import InputDataError, VerificationError
from wmw_link.journeys import build_journeys


def ref(name: str) -> str:
    """A row ref as tokenise makes them: 32 lower-case hex characters."""
    return hashlib.md5(name.encode()).hexdigest()  # noqa: S324 - a test label, not security


def jobs(rows: list[tuple[str, dt.date, dt.date | None]]) -> pa.Table:
    return pa.table(
        {
            "row_ref": pa.array([ref(r) for r, _, _ in rows], pa.string()),
            "employer_ref": pa.array(["E1"] * len(rows), pa.string()),
            "start_date": pa.array([s for _, s, _ in rows], pa.date32()),
            "end_date": pa.array([e for _, _, e in rows], pa.date32()),
            "monthly_pay": pa.array([2000.0] * len(rows), pa.float64()),
        }
    )


def claims(rows: list[tuple[str, dt.date, dt.date | None]]) -> pa.Table:
    cols = {"row_ref": pa.array([ref(r) for r, _, _ in rows], pa.string())}
    for name, typ in _TYPES["dwp_claims"].items():
        values = {
            "benefit": "UC",
            "regime": "intensive_work_search",
            "birth_year": 1990,
            "postcode_district": None,
        }
        if name == "start_date":
            cols[name] = pa.array([s for _, s, _ in rows], typ)
        elif name == "end_date":
            cols[name] = pa.array([e for _, _, e in rows], typ)
        else:
            cols[name] = pa.array([values[name]] * len(rows), typ)
    return pa.table(cols)


def idmap(pairs: list[tuple[str, str]], delivery: int) -> pa.Table:
    return pa.table(
        {
            "row_ref": pa.array([ref(r) for r, _ in pairs], pa.string()),
            "person_id": pa.array([p for _, p in pairs], pa.string()),
            "delivery": pa.array([delivery] * len(pairs), pa.int32()),
        }
    )


def changes(rows: list[tuple[str, str | None, str]], delivery: int) -> pa.Table:
    return pa.table(
        {
            "old_person_id": pa.array([o for o, _, _ in rows], pa.string()),
            "new_person_id": pa.array([n for _, n, _ in rows], pa.string()),
            "reason": pa.array([r for _, _, r in rows], pa.string()),
            "delivery": pa.array([delivery] * len(rows), pa.int32()),
        }
    )


def index(delivery: int, mode: str = "incremental") -> dict:
    return {
        "delivery": delivery,
        "mode": mode,
        "as_at": f"2026-0{6 + delivery}-02T09:00:00+00:00",
        "deliveries": list(range(1, delivery + 1)),
    }


@pytest.fixture
def three(tmp_path: Path) -> list[tuple[Path, Path]]:
    """Three deliveries and their index link runs.

    1: jobs a (P1), b (P2); claims c, d (both P3).
    2: job e new (P1); claim c re-sent with its end; P2 merges into P1 (b moves); P3 splits:
       d goes to P5 (its map row says so), c stays with P3 (no map row).
    3: nothing new for jobs; P5's records all withdrawn at the TTP: id change P5 -> null.
    """
    d1 = write_inputs(
        tmp_path / "d1",
        {"hmrc_rti": jobs([("a", D(2024, 1, 5), None), ("b", D(2024, 2, 1), None)]),
         "dwp_claims": claims([("c", D(2024, 3, 1), None), ("d", D(2024, 4, 1), None)])},
        {"hmrc_rti": idmap([("a", "P1"), ("b", "P2")], 1),
         "dwp_claims": idmap([("c", "P3"), ("d", "P3")], 1)},
        run="d1", index=index(1, "full"), id_changes=changes([], 1), delivery=1,
    )  # fmt: skip
    d2 = write_inputs(
        tmp_path / "d2",
        {"hmrc_rti": jobs([("e", D(2026, 7, 3), None)]),
         "dwp_claims": claims([("c", D(2024, 3, 1), D(2026, 7, 20))])},
        {"hmrc_rti": idmap([("e", "P1"), ("b", "P1")], 2),
         "dwp_claims": idmap([("c", "P3"), ("d", "P5")], 2)},
        run="d2", index=index(2), delivery=2,
        id_changes=changes([("P2", "P1", "merge"), ("P3", "P5", "split")], 2),
    )  # fmt: skip
    d3 = write_inputs(
        tmp_path / "d3",
        {"hmrc_rti": jobs([("f", D(2026, 8, 3), None)])},
        {"hmrc_rti": idmap([("f", "P6")], 3)},
        run="d3", index=index(3), delivery=3,
        id_changes=changes([("P5", None, "withdrawal")], 3),
    )  # fmt: skip
    return [d1, d2, d3]


def _persons_of(result) -> dict[tuple[str, object], str]:
    ev = result.events.to_pylist()
    return {(e["source"], e["start"]): e["person_id"] for e in ev}


def test_refreshes_apply_in_delivery_order(three, tmp_path: Path) -> None:
    pays = [p for p, _ in three]
    maps = [m for _, m in reversed(three)]  # any order on the command line
    r = build_journeys(agreement(), pays, maps, tmp_path / "out")
    got = _persons_of(r)
    assert got[("hmrc_rti", D(2024, 1, 5))] == "P1"
    assert got[("hmrc_rti", D(2024, 2, 1))] == "P1"  # merged: P2 -> P1
    assert got[("hmrc_rti", D(2026, 7, 3))] == "P1"
    assert got[("hmrc_rti", D(2026, 8, 3))] == "P6"
    # The split moved only d (its map row); c stays with P3; P5 then withdrawn entirely.
    assert got[("dwp_claims", D(2024, 3, 1))] == "P3"
    assert ("dwp_claims", D(2024, 4, 1)) not in got
    assert sorted(r.persons.column("person_id").to_pylist()) == ["P1", "P3", "P6"]
    # The re-sent claim replaced the first send: one row, with its end.
    claim = [e for e in r.events.to_pylist() if e["source"] == "dwp_claims"]
    assert len(claim) == 1 and claim[0]["end"] == D(2026, 7, 20)
    assert r.counts["payload_rows_replaced_by_later_deliveries"] == 1
    assert r.counts["rows_moved_by_id_changes"] == 1
    assert r.counts["id_changes_partial"] == 1
    assert r.counts["rows_dropped_by_id_changes"] == 1
    man = json.loads((tmp_path / "out" / "journeys-manifest.json").read_text())
    assert [x["delivery"] for x in man["refreshes"]] == [1, 2, 3]
    assert man["as_at"]["delivery"] == 3
    assert man["as_at"]["as_at"] == "2026-09-02T09:00:00+00:00"
    assert any(k.endswith("id-changes.parquet") for k in man["inputs"])


def test_single_folder_states_its_refresh(three, tmp_path: Path) -> None:
    pay, maps = three[0]
    r = build_journeys(agreement(), pay, maps, tmp_path / "out")
    assert r.as_at["delivery"] == 1
    man = json.loads((tmp_path / "out" / "journeys-manifest.json").read_text())
    assert man["refreshes"][0]["mode"] == "full" and man["withdrawals"] == []


def test_payload_no_run_linked_is_refused(three) -> None:
    pays = [p for p, _ in three]
    with pytest.raises(VerificationError, match="no --maps folder linked these hmrc_rti tokens"):
        build_journeys(agreement(), pays, [three[0][1], three[1][1]])


def test_two_runs_for_one_delivery_and_plain_with_index_are_refused(three, tmp_path) -> None:
    pays = [p for p, _ in three]
    maps = [m for _, m in three]
    with pytest.raises(InputDataError, match="two maps folders for delivery 1"):
        build_journeys(agreement(), pays, [*maps, maps[0]])
    plain = write_inputs(
        tmp_path / "plain", {"hmrc_rti": jobs([("a", D(2024, 1, 5), None)])},
        {"hmrc_rti": idmap([("a", "X")], 1)}, run="plain",
    )  # fmt: skip
    with pytest.raises(InputDataError, match="without a person index is a full re-link"):
        build_journeys(agreement(), [*pays, plain[0]], [*maps, plain[1]])


def test_one_full_relink_over_every_delivery(tmp_path: Path) -> None:
    """A plain link run over several deliveries (link --inputs d1 --inputs d2): one refresh."""
    d1 = write_inputs(
        tmp_path / "d1", {"hmrc_rti": jobs([("a", D(2024, 1, 5), None)])}, {}, run="d1",
        delivery=1,
    )  # fmt: skip
    d2 = write_inputs(
        tmp_path / "d2", {"hmrc_rti": jobs([("a", D(2024, 1, 5), D(2026, 8, 1))])},
        {"hmrc_rti": idmap([("a", "Q")], 1)}, run="d2", delivery=2,
        linked={"hmrc_rti": ["d1", "d2"]},
    )  # fmt: skip
    r = build_journeys(agreement(), [d2[0], d1[0]], [d2[1]])
    ev = r.events.to_pylist()
    assert len(ev) == 1 and ev[0]["end"] == D(2026, 8, 1) and ev[0]["person_id"] == "Q"
    assert r.refreshes[0]["delivery"] is None and r.refreshes[0]["mode"] == "full"


def test_id_changes_must_be_the_ones_the_link_manifest_lists(three) -> None:
    pays = [p for p, _ in three]
    maps = [m for _, m in three]
    path = maps[1] / "id-changes.parquet"
    pq.write_table(changes([("P2", "P9", "merge")], 2), path)
    with pytest.raises(VerificationError, match="SHA-256 differs from link-manifest.json"):
        build_journeys(agreement(), pays, maps)
    path.unlink()
    with pytest.raises(VerificationError, match="not found; link-manifest.json lists it"):
        build_journeys(agreement(), pays, maps)
    pq.write_table(changes([], 1), maps[0] / "id-changes.parquet")  # left from another run
    man = json.loads((maps[0] / "link-manifest.json").read_text())
    del man["id_changes"]
    (maps[0] / "link-manifest.json").write_text(json.dumps(man))
    with pytest.raises(VerificationError, match="not listed in link-manifest.json"):
        build_journeys(agreement(), pays[:1], maps[:1] + maps[:0], withdrawals=[])


def test_every_single_folder_refusal_still_applies(three) -> None:
    pays = [p for p, _ in three]
    maps = [m for _, m in three]
    (pays[1] / "hmrc_rti.payload.parquet").write_bytes(b"x" * 10)
    with pytest.raises((VerificationError, InputDataError)):
        build_journeys(agreement(), pays, maps)


def write_withdrawals(folder: Path, dataset: str, refs: list[str]) -> Path:
    """An unsigned withdrawal list, written by the controller's own writer (docs/withdrawals.md)."""
    from wmw_link.withdrawals import write_withdrawals as write

    write(agreement(), dataset, [ref(r) for r in refs], folder, key_check="0" * 32)
    return folder / f"{dataset}.withdrawals.parquet"


def test_withdrawn_records_leave_events_and_persons(three, tmp_path: Path) -> None:
    pytest.importorskip("wmw_link.withdrawals")
    pays = [p for p, _ in three]
    maps = [m for _, m in three]
    w = write_withdrawals(tmp_path / "w", "hmrc_rti", ["f"])
    r = build_journeys(agreement(), pays, maps, tmp_path / "out", withdrawals=[w])
    assert "P6" not in r.persons.column("person_id").to_pylist()
    assert D(2026, 8, 3) not in [e["start"] for e in r.events.to_pylist()]
    assert r.counts["payload_rows_withdrawn"] == 1
    man = json.loads((tmp_path / "out" / "journeys-manifest.json").read_text())
    assert man["withdrawals"][0]["dataset"] == "hmrc_rti" and man["withdrawals"][0]["rows"] == 1
    # A single folder with a withdrawal list: the same rule.
    r1 = build_journeys(agreement(), pays[0], maps[0], withdrawals=[
        write_withdrawals(tmp_path / "w2", "hmrc_rti", ["a"])])  # fmt: skip
    assert D(2024, 1, 5) not in [e["start"] for e in r1.events.to_pylist()]
    # An altered list is refused by the shared reader.
    pq.write_table(pa.table({"row_ref": pa.array([ref("b")], pa.string())}), w)
    with pytest.raises(VerificationError, match="withdrawal list refused"):
        build_journeys(agreement(), pays, maps, withdrawals=[w])


def test_cli_accumulates_deliveries(three, tmp_path: Path) -> None:
    args = ["--audit-log", str(tmp_path / "audit.jsonl"), "journeys", "--agreement",
            str(AGREEMENT_PATH), "--out", str(tmp_path / "out"),
            "--state", str(tmp_path / "state.json")]  # fmt: skip
    for p, m in three:
        args += ["--payloads", str(p), "--maps", str(m)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "as at delivery 3 (2026-09-02T09:00:00+00:00), 3 link run(s) applied" in res.output
    res = CliRunner().invoke(main, args[:-2])  # no maps folder for delivery 3
    assert res.exit_code != 0 and "no --maps folder linked" in res.output


def test_a_full_run_after_other_refreshes_is_refused(three, tmp_path: Path) -> None:
    """A `full` index run starts new person ids (a new index, e.g. after a key rotation: docs/
    person-index.md); applied after earlier runs it would leave their rows under ids that mean
    nothing any more, beside the new ones (one person counted twice)."""
    d4 = write_inputs(
        tmp_path / "d4",
        {"hmrc_rti": jobs([("g", D(2026, 9, 3), None)])},
        {"hmrc_rti": idmap([("a", "Q1"), ("e", "Q1"), ("g", "Q2")], 4)},
        run="d4", index=index(4, "full"), id_changes=changes([], 4), delivery=4,
    )  # fmt: skip
    pays = [p for p, _ in three] + [d4[0]]
    maps = [m for _, m in three] + [d4[1]]
    with pytest.raises(InputDataError, match="full"):
        build_journeys(agreement(), pays, maps)
    # Alone, the new index's first run is fine.
    build_journeys(agreement(), [d4[0]], [d4[1]])


def test_a_skipped_link_run_is_refused(three, tmp_path: Path) -> None:
    """Leaving out one refresh loses its id changes (P2 merged into P1 in run 2): the persons
    would silently differ from the TTP's. The later run's index.deliveries says which runs
    came before it."""
    pays = [three[0][0], three[2][0]]
    maps = [three[0][1], three[2][1]]
    with pytest.raises(InputDataError, match="delivery 2"):
        build_journeys(agreement(), pays, maps)
