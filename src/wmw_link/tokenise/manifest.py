"""The tokens manifest (docs/contracts.md): what was made, under which agreement and key."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from wmw_link import token_schema as ts
from wmw_link._version import __version__
from wmw_link.agreement import Agreement, Dataset

MANIFEST_KIND = "wmw-link/tokens-manifest"


def build_manifest(
    *,
    agreement: Agreement,
    dataset: Dataset,
    party: str,
    key_check: str,
    token_columns: list[ts.TokenColumn],
    payload_types: dict[str, str],
    rows_input: int,
    rows_tokens: int,
    rejected_by_reason: Counter[str],
    nulled_by_reason: Counter[str],
    files: dict[str, tuple[Path, str, int]],
    delivery: int = 1,
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict. Counts and hashes only: no values.

    ``delivery`` numbers this run among the controller's deliveries of the dataset
    (:mod:`wmw_link.freshness`): recipients refuse a delivery older than one they accepted.
    """
    return {
        "kind": MANIFEST_KIND,
        "agreement": {"id": agreement.id, "version": agreement.version, "hash": agreement.hash},
        "dataset": dataset.id,
        "party": party,
        "tool_version": __version__,
        "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "delivery": delivery,
        "key_check": key_check,
        "token_schema": ts.manifest_entry(token_columns),
        "payload_schema": payload_types,
        "rows": {
            "input": rows_input,
            "tokens": rows_tokens,
            "rejected": sum(rejected_by_reason.values()),
            "rejected_by_reason": dict(sorted(rejected_by_reason.items())),
            "nulled_by_reason": dict(sorted(nulled_by_reason.items())),
        },
        "files": {
            kind: {"name": path.name, "sha256": digest, "rows": rows}
            for kind, (path, digest, rows) in files.items()
        },
    }
