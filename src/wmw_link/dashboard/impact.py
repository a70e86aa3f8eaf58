"""The impact section of the dashboard, built from a (protected) ``impact.json`` document."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
import plotly.offline

from wmw_link.dashboard.builder import _TIER_LABEL, _fig_html, _template

_LABELS = {
    "employed_6m": "In work 6 months on",
    "employed_12m": "In work 12 months on",
    "sustained_dfe_5_of_6_months_6m": "Sustained (5 of 6 months), 6 months",
    "sustained_dfe_5_of_6_months_12m": "Sustained (5 of 6 months), 12 months",
    "sustained_whp_16h_nlw_26_weeks_6m": "Sustained (WHP earnings), 6 months",
    "sustained_whp_16h_nlw_26_weeks_12m": "Sustained (WHP earnings), 12 months",
    "on_benefit_6m": "On an out-of-work benefit, 6 months",
    "on_benefit_12m": "On an out-of-work benefit, 12 months",
}


def _fmt(v: Any, unit: str) -> str:
    if v is None:
        return "c"
    return f"£{v:+,.0f}" if unit == "pounds" else f"{v:+g} pts"


def _effect_chart(doc: dict[str, Any]) -> str:
    rows = [(k, e) for k, e in doc["outcomes"].items() if e["unit"] == "points"]
    names = [_LABELS.get(k, k) for k, _ in rows]
    est = [e["estimate"] for _, e in rows]
    fig = go.Figure()
    fig.add_bar(
        y=names, x=[0 if v is None else v for v in est], orientation="h", name="matched estimate",
        error_x=dict(type="data", symmetric=False,
                     array=[0 if e["ci_high"] is None else e["ci_high"] - e["estimate"] for _, e in rows],
                     arrayminus=[0 if e["ci_low"] is None else e["estimate"] - e["ci_low"] for _, e in rows]),
        text=[_fmt(v, "points") for v in est], textposition="outside",
    )  # fmt: skip
    fig.add_scatter(
        y=names, x=[e["naive"] for _, e in rows], mode="markers", name="naive: participants vs the rest",
        marker=dict(symbol="diamond", size=10, color="#9e9e9e"),
    )  # fmt: skip
    fig.update_layout(title="Effect of support (percentage points, 95% interval)", height=420,
                      xaxis_title="percentage points", yaxis=dict(autorange="reversed"))  # fmt: skip
    return _fig_html(fig, "impact-effects")


def _balance_chart(doc: dict[str, Any]) -> str:
    bal = sorted(doc["balance"], key=lambda b: abs(b["smd_before"]))
    fig = go.Figure()
    fig.add_scatter(y=[b["covariate"] for b in bal], x=[abs(b["smd_before"]) for b in bal],
                    mode="markers", name="before matching", marker=dict(color="#9e9e9e"))  # fmt: skip
    fig.add_scatter(y=[b["covariate"] for b in bal], x=[abs(b["smd_after"]) for b in bal],
                    mode="markers", name="after matching", marker=dict(color="#6a1b9a"))  # fmt: skip
    fig.add_vline(x=doc["method"]["smd_target"], line_dash="dash", line_color="#e08a00")
    fig.update_layout(title="Balance: |standardised mean difference| per covariate",
                      height=max(420, 16 * len(bal)), xaxis_title="|SMD| (target below 0.05)")  # fmt: skip
    return _fig_html(fig, "impact-balance")


def _table(doc: dict[str, Any]) -> str:
    head = "<tr><th>outcome</th><th>effect</th><th>95% interval</th><th>kernel</th><th>naive</th><th>treated</th></tr>"
    rows = []
    for k, e in doc["outcomes"].items():
        u = e["unit"]
        ci = "c" if e["ci_low"] is None else f"{_fmt(e['ci_low'], u)} to {_fmt(e['ci_high'], u)}"
        n = "c" if e["n_treated"] is None else f"{e['n_treated']:,}"
        rows.append(
            f"<tr><td>{html.escape(_LABELS.get(k, k))}</td><td class=num>{_fmt(e['estimate'], u)}</td>"
            f"<td class=num>{ci}</td><td class=num>{_fmt(e['kernel_estimate'], u)}</td>"
            f"<td class=num>{_fmt(e['naive'], u)}</td><td class=num>{n}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def impact_section(doc: dict[str, Any]) -> str:
    """HTML of the impact section: effects beside the naive difference, balance, caveat."""
    warn = "".join(f'<div class="warn">{html.escape(w)}</div>' for w in doc.get("warnings", []))
    c = doc["counts"]
    n = "c" if c.get("treated_matched") is None else f"{c['treated_matched']:,}"
    return (
        "<section><h2>What works: impact of hub support</h2>"
        f'<p class="lead">{n} people who started hub support in {doc["window"]["first_month"]}'
        f" to {doc['window']['last_month']}, each compared with similar people who did not "
        "(propensity score matching on their records before the start). The naive figure "
        "compares participants with everyone else and is not an effect.</p>"
        f"{_effect_chart(doc)}{_table(doc)}{warn}"
        f'<div class="warn"><b>What matching cannot rule out.</b> {html.escape(doc["caveat"])}</div>'
        f"</section><section>{_balance_chart(doc)}</section>"
    )


def build_impact_dashboard(doc: dict[str, Any], tier: str = "internal") -> str:
    """A self-contained offline HTML page from one tier's impact document."""
    ag = doc["agreement"]
    return _template().substitute(
        title="West Midlands Works: what works",
        tier_label=_TIER_LABEL[tier],
        subtitle=html.escape(f"Data to {doc['as_of']} · agreement {ag['id']} v{ag['version']}"),
        plotlyjs=plotly.offline.get_plotlyjs(),
        body=impact_section(doc),
        footer=html.escape(
            f"wmw-link {doc['tool_version']} · generated {doc['created_at']} · figures after "
            "statistical disclosure control"
        ),
    )
