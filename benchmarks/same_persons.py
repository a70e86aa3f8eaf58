"""Do two link runs give the same persons? (DuckDB against Spark, or any two outputs.)

Each output is a folder of ``<dataset>.map.parquet`` (``row_ref`` -> ``person_id``). Person ids
are compared by the records they gather, not by their text: pairs of records put together by
one run and not the other are counted (:func:`wmw_link.evaluate.score` with the first run as
"truth"), and a record's person is *identical* when the two runs give it exactly the same
set of records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def read_maps(folder: Path) -> pa.Table:
    """Every map in ``folder`` as one table: dataset, row_ref, person_id."""
    parts = []
    for f in sorted(folder.glob("*.map.parquet")):
        t = pq.read_table(f, columns=["row_ref", "person_id"])
        ds = f.name.removesuffix(".map.parquet")
        parts.append(t.append_column("dataset", pa.array([ds] * t.num_rows, pa.string())))
    if not parts:
        raise SystemExit(f"{folder}: no *.map.parquet")
    return pa.concat_tables(parts)


def compare_links(first: Path, second: Path) -> dict[str, Any]:
    """How far ``second``'s persons are from ``first``'s (the same records in both)."""
    from wmw_link.evaluate import score

    a, b = read_maps(first), read_maps(second)
    joined = a.join(b, ["dataset", "row_ref"], join_type="inner", left_suffix="_a", right_suffix="_b")
    n_a, n_b, both = a.num_rows, b.num_rows, joined.num_rows
    ev = score(
        pa.table(
            {
                "dataset": joined["dataset"],
                "true": joined["person_id_a"],
                "pred": joined["person_id_b"],
            }
        )
    )
    # A record's person is identical when its cell (first person, second person) holds every
    # record of its first-run person and of its second-run person.
    cells = joined.group_by(["person_id_a", "person_id_b"]).aggregate([("row_ref", "count")])
    size_a = joined.group_by("person_id_a").aggregate([("row_ref", "count")])
    size_b = joined.group_by("person_id_b").aggregate([("row_ref", "count")])
    cells = cells.join(size_a.rename_columns({"row_ref_count": "n_a"}), "person_id_a")
    cells = cells.join(size_b.rename_columns({"row_ref_count": "n_b"}), "person_id_b")
    n = cells["row_ref_count"]
    same = pc.and_(pc.equal(n, cells["n_a"]), pc.equal(n, cells["n_b"]))
    identical_records = pc.sum(pc.if_else(same, n, 0)).as_py() or 0
    return {
        "records_first": n_a,
        "records_second": n_b,
        "records_in_both": both,
        "persons_first": pc.count_distinct(a["person_id"]).as_py(),
        "persons_second": pc.count_distinct(b["person_id"]).as_py(),
        "identical_persons": int(pc.sum(same.cast(pa.int64())).as_py() or 0),
        "records_with_identical_person": identical_records,
        "identical_record_share": identical_records / both if both else None,
        "pairs_first": ev.pairwise.actual,
        "pairs_second": ev.pairwise.predicted,
        "pairs_in_both": ev.pairwise.true_positive,
        "pair_f1": ev.pairwise.f1,
    }
