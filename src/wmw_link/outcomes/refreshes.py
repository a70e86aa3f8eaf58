"""Headline measures across refreshes: this run's beside earlier outcomes outputs'.

A quarterly review asks how the headline figures moved since the last refreshes. The analyst
gives the earlier ``outcomes`` output folders (``outcomes --previous DIR``, repeatable); each
one's figures are read from the tables it *published* (``tables/`` for the internal tier,
``public/`` for the public tier), checked against its ``outcomes-manifest.json`` by SHA-256,
never recomputed. So every figure in the across-refreshes table is one disclosure control
already passed under the same rules (an earlier output made under other disclosure parameters,
another headline rule or another agreement is refused), and the table shows nothing that was
not published at its own refresh.

Each row is one refresh: the link run's delivery and ``as_at`` (from the journeys manifest) and
the date the data run to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wmw_link.agreement import Agreement
from wmw_link.disclosure import Precision, to_csv_frame
from wmw_link.errors import InputDataError, PolicyError, VerificationError
from wmw_link.files import sha256_file

ACROSS_TABLE = "across_refreshes"
REFRESH_COLUMNS = ("delivery", "as_at", "data_to")
VALUE_COLUMNS = ("n", "count", "rate_pct", "value")
TIER_DIRS = {"internal": "tables", "public": "public"}


def headline_measures(rule: str) -> list[str]:
    """The measures a review follows across refreshes, in the dashboard's order."""
    return [
        "hub_supported",
        f"sustained_{rule}_6m",
        f"sustained_{rule}_12m",
        "employed_at_12m",
        "employment_rate",
        "linked_to_other_source",
    ]


def refresh_label(refresh: dict[str, Any]) -> str:
    """``delivery 3 (2026-09-02)`` or ``data to 2026-09-30`` for a folder without a refresh."""
    d, at = refresh.get("delivery"), refresh.get("as_at")
    if d is not None:
        return f"delivery {d}" + (f" ({str(at)[:10]})" if at else "")
    return f"data to {refresh.get('data_to')}"


def _rows_now(
    frame: pd.DataFrame, precision: Precision, rule: str, refresh: dict[str, Any]
) -> pd.DataFrame:
    """This run's headline rows, rendered exactly as its tables write them."""
    wanted = headline_measures(rule)
    part = frame[(frame["breakdown"] == "all") & frame["measure"].isin(wanted)]
    out = to_csv_frame(part, precision)[["measure", "kind", *VALUE_COLUMNS]]
    order = {m: i for i, m in enumerate(wanted)}
    out = out.sort_values("measure", key=lambda s: s.map(order))
    for c in reversed(REFRESH_COLUMNS):
        out.insert(0, c, "" if refresh.get(c) is None else str(refresh.get(c)))
    return out


def _read_manifest(directory: Path) -> tuple[dict[str, Any], Path]:
    if directory.is_file() or not directory.is_dir():
        what = "is a file" if directory.is_file() else "not found"
        raise InputDataError(
            f"{directory}: {what}; --previous takes an earlier `wmw-link outcomes` output folder"
        )
    path = directory / "outcomes-manifest.json"
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputDataError(
            f"{path}: not found; --previous takes an earlier `wmw-link outcomes` output folder"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VerificationError(f"{path}: unreadable manifest ({type(e).__name__})") from None
    if not isinstance(man, dict) or man.get("kind") != "wmw-link/outcomes-manifest":
        raise VerificationError(f"{path}: not an outcomes manifest")
    return man, path


def _check_previous(
    agreement: Agreement, man: dict[str, Any], path: Path, meta: dict[str, Any], tier: str
) -> None:
    ag = man.get("agreement") if isinstance(man.get("agreement"), dict) else {}
    version = ag.get("version")
    if (
        ag.get("id") != agreement.id
        or not isinstance(version, int)
        or not agreement.accepts_version(version)
    ):
        raise PolicyError(
            f"rule 'version': {path} was made under {ag.get('id')} v{version}, which "
            f"{agreement.id} v{agreement.version} does not accept"
        )
    if man.get("rule") != meta["rule"]:
        raise VerificationError(
            f"{path}: made with headline rule {man.get('rule')!r}, this run with "
            f"{meta['rule']!r}; headline figures compare only under one rule (--rule)"
        )
    theirs = (man.get("disclosure") or {}).get(tier)
    if theirs != meta["disclosure"][tier]:
        raise VerificationError(
            f"{path}: its {tier} tables were published under other disclosure parameters "
            f"({theirs}) than this run's ({meta['disclosure'][tier]}); figures across refreshes "
            "must pass the same disclosure control"
        )


def _rows_then(
    directory: Path, man: dict[str, Any], path: Path, tier: str, tables: dict[str, str], rule: str
) -> tuple[pd.DataFrame, list[Path]]:
    """An earlier output's published headline rows (its tier's CSVs, checked by SHA-256)."""
    outputs = man.get("outputs") or {}
    rows, read = [], []
    for table in sorted(set(tables.values())):
        rel = f"{TIER_DIRS[tier]}/{table}.csv"
        csv = directory / rel
        want = outputs.get(rel)
        if not want:
            raise VerificationError(f"{path}: lists no {rel}")
        if not csv.is_file():
            raise InputDataError(f"{csv}: not found ({path.name} lists it)")
        if sha256_file(csv) != want:
            raise VerificationError(
                f"{csv}: SHA-256 differs from {path.name} (altered after it was published)"
            )
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        need = {"measure", "kind", "breakdown", *VALUE_COLUMNS}
        if not need <= set(df.columns):
            raise VerificationError(f"{csv}: lacks column(s) {', '.join(sorted(need - set(df)))}")
        rows.append(df[(df["breakdown"] == "all") & df["measure"].isin(list(tables))])
        read.append(csv)
    out = pd.concat(rows, ignore_index=True)[["measure", "kind", *VALUE_COLUMNS]]
    refresh = man.get("refresh") or {}
    values = {
        "delivery": refresh.get("delivery"),
        "as_at": refresh.get("as_at"),
        "data_to": refresh.get("data_to") or man.get("as_of"),
    }
    for c in reversed(REFRESH_COLUMNS):
        out.insert(0, c, "" if values[c] is None else str(values[c]))
    order = {m: i for i, m in enumerate(headline_measures(rule))}
    return out.sort_values("measure", key=lambda s: s.map(order)), [*read, path]


def across_refreshes(
    agreement: Agreement,
    previous: Sequence[str | Path],
    frames: dict[str, tuple[pd.DataFrame, Precision]],
    meta: dict[str, Any],
) -> tuple[dict[str, pd.DataFrame], list[Path]]:
    """Per tier, the headline rows of every refresh (earliest first), and the files read.

    Args:
        previous: earlier outcomes output folders.
        frames: tier -> (this run's protected frame, its precision).
        meta: this run's metadata (rule, disclosure, refresh).

    Raises:
        InputDataError: a folder that is not an outcomes output, or two that are one refresh.
        PolicyError: an output made under another agreement or an unaccepted version.
        VerificationError: another headline rule or disclosure parameters, or a published table
            that differs from its manifest.
    """
    rule, refresh = meta["rule"], meta["refresh"]
    internal = frames["internal"][0]
    tables = dict(
        internal.loc[internal["measure"].isin(headline_measures(rule)), ["measure", "table"]]
        .drop_duplicates()
        .itertuples(index=False, name=None)
    )
    out: dict[str, pd.DataFrame] = {}
    read: list[Path] = []
    seen = {tuple(str(refresh.get(c)) for c in REFRESH_COLUMNS): "this run"}
    manifests = []
    for d in previous:
        directory = Path(d)
        man, path = _read_manifest(directory)
        r = man.get("refresh") or {}
        key = tuple(str(r.get(c) if c != "data_to" else (r.get(c) or man.get("as_of")))
                    for c in REFRESH_COLUMNS)  # fmt: skip
        if key in seen:
            raise InputDataError(
                f"{directory}: the same refresh ({refresh_label(dict(zip(REFRESH_COLUMNS, key, strict=True)))}) "
                f"as {seen[key]}; give each earlier refresh once"
            )
        seen[key] = str(directory)
        manifests.append((directory, man, path))
    for tier, (frame, precision) in frames.items():
        parts = []
        for directory, man, path in manifests:
            _check_previous(agreement, man, path, meta, tier)
            rows, files = _rows_then(directory, man, path, tier, tables, rule)
            parts.append(rows)
            read += files
        parts.append(_rows_now(frame, precision, rule, refresh))
        table = pd.concat(parts, ignore_index=True)
        # Earliest first: by the data date, then the delivery (stable for equal keys).
        key = table["data_to"] + "|" + table["delivery"].str.zfill(6)
        out[tier] = table.iloc[key.argsort(kind="stable")].reset_index(drop=True)
    return out, sorted(set(read))
