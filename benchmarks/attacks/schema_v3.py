"""Token schema v3: the product's own tokeniser and its attacker-facing ``composites`` interface."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from benchmarks.attacks.world import COMPOSITE_FIELDS, Column

from wmw_link.agreement import Agreement
from wmw_link.keys import SecretKey


def available() -> bool:
    """Whether the product writes token schema v3 with the ``composites`` interface."""
    try:
        from wmw_link import token_schema as ts
        from wmw_link.tokenise import composites  # noqa: F401
    except ImportError:
        return False
    return ts.TOKEN_SCHEMA_VERSION >= 3 and all(hasattr(c, "parts") for c in ts.TOKEN_COLUMNS)


class SchemaV3:
    """The product's schema (``wmw_link.token_schema``) behind the benchmark's Schema protocol."""

    version = 3

    def __init__(self) -> None:
        from wmw_link import token_schema as ts

        self._ts = ts
        self.columns = [
            Column(c.name, c.kind, c.domain, c.name, tuple(tuple(p) for p in c.parts))  # type: ignore[misc]
            for c in ts.TOKEN_COLUMNS
        ]

    @staticmethod
    def _fields(fields: Mapping[str, pa.Array]) -> dict[str, pa.Array]:
        return {f: fields[f] for f in COMPOSITE_FIELDS if f in fields}

    def composite_inputs(self, fields: Mapping[str, pa.Array]) -> dict[str, pa.Array]:
        from wmw_link.tokenise.composites import composite_inputs

        return composite_inputs(self._fields(fields))

    def bloom_inputs(self, fields: Mapping[str, pa.Array]) -> dict[str, tuple[pa.Array, pa.Array]]:
        from wmw_link.tokenise.composites import bloom_inputs

        return bloom_inputs(self._fields(fields))

    def bloom_names(self, fields: Mapping[str, pa.Array]) -> dict[str, pa.Array]:
        """The value each part's filter encodes (the forename's first word, the surname)."""
        from wmw_link.tokenise.composites import bloom_names

        return {p: names for p, (names, _) in bloom_names(self._fields(fields)).items()}

    def bloom_columns(self) -> dict[str, tuple[list[str], str | None]]:
        return {p: (list(words), None) for p, (_, words) in self._ts.BLOOM_FILTERS.items()}

    def tokenise_world(
        self,
        agreement: Agreement,
        synth_dir: Path,
        work: Path,
        key: SecretKey,
        truth: pa.Table,
        workers: int = 2,
    ) -> tuple[pa.Table, pa.Table]:
        """``wmw_link.tokenise.tokenise()`` on every extract, as ``bench_linkage`` does; returns
        (tokens of every dataset with a ``dataset`` column, the truth rows in the same order).
        ``truth``: :func:`~benchmarks.attacks.world.world_fields` of every row (kept or not)."""
        from wmw_link.keys import new_key
        from wmw_link.synth.generate import extract_path
        from wmw_link.tokenise import tokenise

        names = [c.name for c in self.columns]
        tok_parts, truth_parts = [], []
        for d in agreement.datasets:
            out = work / "ctl" / d.id
            ref = new_key(work / "keys" / f"{d.id}.ref.key", force=True)
            tokenise(agreement, d.id, extract_path(synth_dir, d.id), key, ref, out, workers=workers)
            tok = pq.read_table(out / f"{d.id}.tokens.parquet")
            xw = pq.read_table(out / f"{d.id}.crosswalk.parquet")
            # The crosswalk (record id <-> row_ref) is the scorer's, never the attacker's.
            by_ref = dict(
                zip(xw["row_ref"].to_pylist(), map(str, xw["record_id"].to_pylist()), strict=True)
            )
            t = truth.filter(pc.equal(truth["dataset"], d.id))
            pos = {r: i for i, r in enumerate(t["record_id"].to_pylist())}
            idx = np.array([pos[by_ref[r]] for r in tok["row_ref"].to_pylist()], dtype=np.int64)
            truth_parts.append(t.take(pa.array(idx)))
            cols = {
                "dataset": pa.array([d.id] * tok.num_rows, pa.string()),
                "row_ref": tok["row_ref"],
            }
            for c in self.columns:
                typ = pa.list_(pa.int64()) if c.kind == "hmac_list" else pa.int64()
                cols[c.name] = (
                    tok[c.name] if c.name in tok.column_names else pa.nulls(tok.num_rows, typ)
                )
            tok_parts.append(pa.table(cols).select(["dataset", "row_ref", *names]))
            shutil.rmtree(out, ignore_errors=True)
        return pa.concat_tables(tok_parts), pa.concat_tables(truth_parts)
