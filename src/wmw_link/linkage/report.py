"""The linkage quality report written next to the maps.

``report/`` holds Splink's own charts (match weights, m and u parameters, match-weight
histogram, a waterfall sample) as self-contained HTML, link rates between each pair of sources,
the share of records left unlinked per source, the threshold sweep, the blocking rules with the
number of comparisons they produced, and the model as Splink JSON (reusable with
``Linker(inputs, "report/model.json")``). Only counts, rates, weights and parameters: no token
values.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wmw_link.files import restrict_tree, write_bytes_atomic, write_json_atomic
from wmw_link.linkage import threshold as thr
from wmw_link.linkage.settings import ModelPlan

WATERFALL_SAMPLE = 10


def link_rates(maps: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Link rates between sources and the unlinked share per source.

    Counted from one (person x source) table of record counts, in numpy: comparing every
    record's source name once per pair of sources cost seconds per 100k records.

    Returns:
        ``rates``: for each ordered pair (A, B), the share of A's records whose person also has
        a record in B (A = B: a duplicate within A). ``unlinked``: per source, records, persons
        and the share of records whose person has no other record anywhere.
    """
    datasets = sorted(maps)
    n_ds = len(datasets)
    ids = [np.asarray(maps[d]["person_id"], dtype=object) for d in datasets]
    person, _ = pd.factorize(np.concatenate(ids) if ids else np.array([], dtype=object))
    source = np.repeat(np.arange(n_ds), [len(x) for x in ids])
    n_persons = int(person.max()) + 1 if len(person) else 0
    # counts[p, a]: records of person p in source a.
    counts = np.bincount(person * n_ds + source, minlength=n_persons * n_ds).reshape(
        n_persons, n_ds
    )
    records = counts.sum(axis=0)
    # linked[a, b]: records of a whose person has a record in b (a second one when a = b).
    linked = np.empty((n_ds, n_ds), dtype=np.int64)
    for b in range(n_ds):
        linked[:, b] = counts[counts[:, b] >= 1].sum(axis=0)
        linked[b, b] = counts[counts[:, b] >= 2, b].sum()
    rates = pd.DataFrame(
        [
            {
                "source": a,
                "other": b,
                "link_rate": float(linked[i, j] / records[i]) if records[i] else 0.0,
            }
            for i, a in enumerate(datasets)
            for j, b in enumerate(datasets)
        ],
        columns=["source", "other", "link_rate"],
    )
    alone = counts[counts.sum(axis=1) == 1].sum(axis=0)
    unlinked = pd.DataFrame(
        [
            {
                "source": d,
                "records": int(records[i]),
                "persons": int((counts[:, i] > 0).sum()),
                "unlinked_share": float(alone[i] / records[i]) if records[i] else 0.0,
            }
            for i, d in enumerate(datasets)
        ]
    )
    return rates, unlinked


def _table_html(df: pd.DataFrame, fmt: dict[str, str] | None = None) -> str:
    fmt = fmt or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            text = format(v, fmt[c]) if c in fmt and isinstance(v, (int, float)) else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _save_chart(chart: Any, path: Path) -> str:
    write_bytes_atomic(path, chart.to_html(inline=True).encode("utf-8"))
    return path.name


def write_report(
    report_dir: Path,
    *,
    linker: Any,
    predictions: Any,
    linkable: Any,
    maps: dict[str, pd.DataFrame],
    points: list[thr.SweepPoint],
    chosen_weight: float,
    method: str,
    plan: ModelPlan,
    comparisons: int,
    evidence_sql: str,
) -> Path:
    """Write the report; return the path of its index page.

    Args:
        report_dir: where to write.
        linker: the trained Splink linker.
        predictions: Splink's predictions table (every scored pair).
        linkable: the pairs that pass the household rule (the clustering input).
        maps: dataset -> (row_ref, person_id).
        points: the threshold sweep.
        chosen_weight: the match weight clustered at.
        method: how it was chosen.
        plan: the model plan (for the blocking rules).
        comparisons: number of pairs scored.
        evidence_sql: the household rule as SQL.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    charts: dict[str, str] = {}
    v = linker.visualisations
    charts["match weights"] = _save_chart(
        v.match_weights_chart(), report_dir / "match_weights.html"
    )
    charts["m and u parameters"] = _save_chart(
        v.m_u_parameters_chart(), report_dir / "m_u_parameters.html"
    )
    charts["match-weight histogram"] = _save_chart(
        v.match_weights_histogram(predictions), report_dir / "match_weights_histogram.html"
    )
    model = linker.misc.save_model_to_json()
    if len(maps) > 1:
        # Linked as one union input (linkage/union.py), which Splink calls dedupe_only: the
        # same model for the datasets as separate inputs, which is how a user reloads it.
        model["link_type"] = "link_and_dedupe"
    write_json_atomic(report_dir / "model.json", model)
    # Waterfall of the linkable pairs closest to the threshold: the instructive calls. Token
    # values are removed by Splink's sensitive-data option.
    sample = linker.misc.query_sql(
        f"SELECT * FROM {predictions.physical_name} WHERE {evidence_sql} "
        f"ORDER BY abs(match_weight - {chosen_weight}), unique_id_l, unique_id_r "
        f"LIMIT {WATERFALL_SAMPLE}",
        output_type="pandas",
    )
    records = json.loads(sample.to_json(orient="records")) if len(sample) else []
    if records:
        # With sensitive data removed the chart reads only levels and weights, which the
        # predictions hold; Splink's check asks for the token columns regardless.
        settings = linker._settings_obj
        retained = settings._retain_matching_columns
        settings._retain_matching_columns = True
        try:
            chart = v.waterfall_chart(records, remove_sensitive_data=True)
        finally:
            settings._retain_matching_columns = retained
        charts["waterfall sample (closest to the threshold)"] = _save_chart(
            chart, report_dir / "waterfall.html"
        )

    per_rule = linker.misc.query_sql(
        f"SELECT match_key, COUNT(*) AS n FROM {predictions.physical_name} GROUP BY match_key",
        output_type="pandas",
    )
    counts = {int(k): int(n) for k, n in zip(per_rule["match_key"], per_rule["n"], strict=True)}
    blocking = pd.DataFrame(
        [
            {"rule": _rule_sql(r, linker), "pairs_scored": counts.get(i, 0)}
            for i, r in enumerate(plan.blocking_rules)
        ]
    )
    rates, unlinked = link_rates(maps)
    rates_wide = rates.pivot(index="source", columns="other", values="link_rate").reset_index()
    sweep = [p.to_dict() for p in points]
    write_json_atomic(
        report_dir / "quality.json",
        {
            "threshold": {
                "match_weight": chosen_weight,
                "match_probability": thr.weight_to_probability(chosen_weight),
                "method": method,
                "edge_rule_sql": evidence_sql,
            },
            "comparisons_scored": comparisons,
            "blocking_rules": blocking.to_dict(orient="records"),
            "link_rates": rates.to_dict(orient="records"),
            "unlinked": unlinked.to_dict(orient="records"),
            "sweep": sweep,
        },
    )
    sweep_df = pd.DataFrame(sweep)
    if not sweep_df.empty:
        # Every 4th point keeps the table readable (one per match-weight unit).
        sweep_df = sweep_df.iloc[::4][
            [
                "threshold_match_weight",
                "threshold_probability",
                "pairs_above",
                "expected_precision",
                "expected_recall",
                "expected_f1",
            ]
        ]
    links = "".join(
        f'<li><a href="{html.escape(p)}">{html.escape(n)}</a></li>' for n, p in charts.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Linkage quality report</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}td,th{{padding:2px 8px;
text-align:right;border-bottom:1px solid #ddd}}table{{border-collapse:collapse}}</style></head>
<body><h1>Linkage quality report</h1>
<p>Threshold: match weight {chosen_weight:.2f} (probability
{thr.weight_to_probability(chosen_weight):.4f}), {html.escape(method)}. Pairs need forename,
date-of-birth, NINo or NHS-number evidence to link. {comparisons:,} pairs scored.</p>
<h2>Splink charts</h2><ul>{links}<li><a href="model.json">model (Splink JSON)</a></li></ul>
<h2>Blocking rules</h2><p>Pairs scored by each rule (a pair counts under the first rule that
produced it; pairs below match weight -10 are not kept).</p>{_table_html(blocking)}
<h2>Share of records left unlinked, per source</h2>{_table_html(unlinked, {"unlinked_share": ".3f"})}
<h2>Link rates between sources</h2><p>Share of the row source's records whose person also has a
record in the column source (diagonal: a duplicate within the source).</p>
{_table_html(rates_wide, {c: ".3f" for c in rates_wide.columns if c != "source"})}
<h2>Threshold sweep (model's expected figures, no labels)</h2>
{_table_html(sweep_df, {c: ".4f" for c in sweep_df.columns if c != "pairs_above"})}
</body></html>"""
    index = report_dir / "index.html"
    write_bytes_atomic(index, page.encode("utf-8"))
    restrict_tree(report_dir)  # Splink writes model.json and charts with the umask's mode
    return index


def _rule_sql(rule: Any, linker: Any) -> str:
    if isinstance(rule, str):
        return rule
    return rule.get_blocking_rule(linker._sql_dialect_str).blocking_rule_sql


__all__ = ["link_rates", "write_report"]
