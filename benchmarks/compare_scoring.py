"""Check that two bench_linkage results files hold the same scoring figures.

    python benchmarks/compare_scoring.py results/a.json results/b.json

Compares every run's scores, equity, candidates and sweep (exactly: the same counts give the
same floats), ignoring times, memory, load and dates. Exit status 1 on any difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: Per-run keys that are measurements of this run (not figures of the linkage).
IGNORE = {"scoring_s", "wall_seconds", "peak_mib", "load_average_end", "timings", "when"}


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths at which two JSON documents differ, outside :data:`IGNORE`."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k in IGNORE:
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'second' if k not in a else 'first'}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def main(argv: list[str]) -> int:
    first, second = (json.loads(Path(p).read_text()) for p in argv[:2])
    diffs = differences(
        {"summary": first["summary"], "runs": first["runs"]},
        {"summary": second["summary"], "runs": second["runs"]},
    )
    for d in diffs[:50]:
        print(d)
    n = sum(len(r.get("link", {}).get("sweep", [])) for r in first["runs"])
    print(f"{len(diffs)} differences ({n} sweep rows compared)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
