"""Diagnostic: how the link's candidate pairs grow with the population, rule by rule.

For each token column the link blocks on (``wmw_link.linkage.settings.predict_blocks``), the
pairs its rule makes on its own: the sum over token values of ``n(n-1)/2`` (list tokens
exploded). Splink scores a pair once however many rules find it, so the rules' sum is an upper
bound of the pairs predict scores; how it grows between two sizes is what the 3M / 1M time
ratio stands on. Counted in DuckDB from the tokens files alone (what the TTP holds).

    python benchmarks/diag_block_counts.py W1M/inbox W3M/inbox   # -> block-counts.md/json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from wmw_link.linkage.settings import BY_NAME, predict_blocks

RESULTS = Path(__file__).resolve().parent / "results"


def rule_pairs(inbox: Path) -> dict[str, int]:
    """Pairs each blocking rule makes on its own, from ``inbox``'s tokens files."""
    files = sorted(inbox.glob("*.tokens.parquet"))
    names = {f: set(pq.ParquetFile(f).schema_arrow.names) for f in files}
    present = set().union(*names.values())
    con = duckdb.connect()
    con.execute("SET memory_limit = '6GB'; SET preserve_insertion_order = false")
    out = {}
    for col in predict_blocks(present):
        parts = [f"SELECT {col} AS v FROM read_parquet('{f}')" for f in files if col in names[f]]
        src = " UNION ALL ".join(parts)
        if BY_NAME[col].kind == "hmac_list":
            src = f"SELECT unnest(v) AS v FROM ({src})"
        (n,) = con.execute(
            f"SELECT coalesce(sum(n * (n - 1) / 2), 0)::BIGINT FROM "
            f"(SELECT count(*) AS n FROM ({src}) WHERE v IS NOT NULL GROUP BY v)"
        ).fetchone()
        out[col] = int(n)
    con.close()
    return out


def main(small: Path, large: Path) -> None:
    a, b = rule_pairs(small), rule_pairs(large)
    rows = [(c, a[c], b[c], b[c] / a[c] if a[c] else None) for c in a]
    total = (sum(a.values()), sum(b.values()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "block-counts.json").write_text(
        json.dumps({"small": str(small), "large": str(large), "pairs_small": a, "pairs_large": b})
    )
    lines = [
        "# Candidate pairs per blocking rule, two population sizes",
        "",
        f"Tokens: `{small}` and `{large}` (`benchmarks/diag_block_counts.py`). Each rule's pairs",
        "on its own (sum over token values of n(n-1)/2); Splink scores a pair once, so the sum is",
        "an upper bound of the pairs predict scores.",
        "",
        "| rule (token column) | small | large | growth |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{c}` | {x:,} | {y:,} | {g:.2f} |" if g else f"| `{c}` | {x:,} | {y:,} | - |"
              for c, x, y, g in rows]  # fmt: skip
    lines.append(f"| **all rules** | {total[0]:,} | {total[1]:,} | {total[1] / total[0]:.2f} |")
    (RESULTS / "block-counts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
