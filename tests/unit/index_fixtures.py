"""Deliveries for person-index tests: a linkage fixture split into monthly token deliveries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wmw_link.files import sha256_file


def write_tokens(folder: Path, manifest: dict[str, Any], table: pa.Table) -> None:
    """Write a tokens file and its manifest (a copy of ``manifest`` with this file's hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = manifest["dataset"]
    path = folder / f"{ds}.tokens.parquet"
    pq.write_table(table, path)
    m = json.loads(json.dumps(manifest))
    n = table.num_rows
    m["rows"] = {"input": n, "tokens": n, "rejected": 0}
    m["files"]["tokens"] = {"name": path.name, "sha256": sha256_file(path), "rows": n}
    (folder / f"{ds}.manifest.json").write_text(json.dumps(m, indent=2))


def delivery_of(row_ref: str, k: int) -> int:
    """A record's delivery (1..k): half the records in the first, the rest spread evenly."""
    h = int(hashlib.sha256(row_ref.encode()).hexdigest()[:8], 16) % (2 * (k - 1))
    return 1 if h < k - 1 else 2 + h - (k - 1)


def split(src: Path, dst: Path, k: int) -> list[Path]:
    """Split a fixture folder's records into ``k`` delivery folders ``dst/01 .. k``."""
    folders = [dst / f"{i:02d}" for i in range(1, k + 1)]
    for mpath in sorted(src.glob("*.manifest.json")):
        manifest = json.loads(mpath.read_text())
        table = pq.read_table(src / manifest["files"]["tokens"]["name"])
        which = pa.array([delivery_of(r, k) for r in table["row_ref"].to_pylist()])
        for i, folder in enumerate(folders, start=1):
            write_tokens(folder, manifest, table.filter(pc.equal(which, i)))
    return folders


def resend(src: Path, dst: Path, dataset: str, row_refs: list[str], donor_refs: list[str]) -> None:
    """A delivery re-sending ``row_refs`` of ``dataset`` with the tokens of ``donor_refs``
    (a corrected record: same row ref, changed identifiers)."""
    manifest = json.loads((src / f"{dataset}.manifest.json").read_text())
    table = pq.read_table(src / f"{dataset}.tokens.parquet")
    refs = table["row_ref"].to_pylist()
    rows = table.take(pa.array([refs.index(d) for d in donor_refs]))
    rows = rows.set_column(0, "row_ref", pa.array(row_refs, pa.string()))
    write_tokens(dst, manifest, rows)


@dataclass
class StandInWithdrawals:
    """The shape of ``wmw_link.withdrawals.Withdrawals`` (dataset, row refs, manifest)."""

    dataset: str
    row_refs: pa.Array
    manifest: dict[str, Any]


def withdrawal(dataset: str, row_refs: list[str], key_check: str = "kc-test") -> Any:
    """A verified withdrawal list, as ``read_withdrawals`` returns it."""
    return StandInWithdrawals(
        dataset, pa.array(row_refs, pa.string()), {"dataset": dataset, "key_check": key_check}
    )


def rekeyed(src: Path, dst: Path, key_check: str, salt: int = 0x5A5A5A5A5A5A5A5) -> None:
    """``src``'s tokens as if re-tokenised under a new linkage key: every hashed token mapped
    one-to-one to another value (equal stays equal, different stays different), Bloom words
    kept; row refs unchanged (they come from the controllers' own row-reference keys)."""
    for mpath in sorted(src.glob("*.manifest.json")):
        manifest = json.loads(mpath.read_text())
        manifest["key_check"] = key_check
        table = pq.read_table(src / manifest["files"]["tokens"]["name"])
        kinds = {c: s["kind"] for c, s in manifest["token_schema"]["columns"].items()}
        for i, name in enumerate(table.column_names):
            kind = kinds.get(name)
            if kind == "hmac":
                col = pc.bit_wise_xor(table[name], pa.scalar(salt, pa.int64()))
            elif kind == "hmac_list":
                flat = pc.list_flatten(table[name].combine_chunks())
                arr = table[name].combine_chunks()
                col = pa.ListArray.from_arrays(
                    arr.offsets, pc.bit_wise_xor(flat, pa.scalar(salt, pa.int64())),
                    mask=arr.is_null(),
                )  # fmt: skip
            else:
                continue
            table = table.set_column(
                i, table.schema.field(name), col.cast(table.schema.field(name).type)
            )
        write_tokens(dst, manifest, table)


def only_listed_files(idx: Path) -> bool:
    """Whether a person index folder holds exactly the files its manifest lists (and the lock):
    earlier generations leave only the record segments the manifest still lists."""
    listed = set(json.loads((idx / "index-manifest.json").read_text())["files"])
    on_disk = {f.relative_to(idx).as_posix() for f in idx.rglob("*") if f.is_file()}
    return on_disk - {"index-manifest.json", "index.lock"} == listed
