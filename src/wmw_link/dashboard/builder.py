"""Self-contained HTML dashboard from disclosure-controlled outcome tables.

Charts are Plotly figures; plotly.js is embedded once, inline, so the file opens offline and a
Content-Security-Policy forbids every network fetch. The builder only ever sees protected
frames (suppressed values are NaN with a ``"c"`` flag): a suppressed value shows as a gap in a
chart and as ``c`` in a table, never as zero.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from wmw_link.outcomes.measures import DIM_LABELS

_COLOURS = ["#6a1b9a", "#00897b", "#f4511e", "#3949ab", "#c0ca33", "#8d6e63", "#d81b60"]
_FONT = dict(
    family="system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif", size=13, color="#1d2733"
)

_TIER_LABEL = {"internal": "internal: official use", "public": "public summary"}


def _template() -> Template:
    text = (resources.files("wmw_link.dashboard") / "template.html").read_text(encoding="utf-8")
    return Template(text)


def _fig_html(fig: go.Figure, div_id: str) -> str:
    title = fig.layout.title.text or ""
    fig.update_layout(
        title=None,
        font=_FONT,
        margin=dict(l=60, r=20, t=40, b=60),
        plot_bgcolor="#fff",
        paper_bgcolor="#fff",
        colorway=_COLOURS,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
    )
    fig.update_xaxes(gridcolor="#eef0f3", zerolinecolor="#c9d0d8")
    fig.update_yaxes(gridcolor="#eef0f3", zerolinecolor="#c9d0d8")
    return f'<div class="chart"><h3>{html.escape(title)}</h3>' + pio.to_html(
        fig, include_plotlyjs=False, full_html=False, div_id=div_id,
        config={"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["toImage"]},
    ) + "</div>"  # fmt: skip


def _rows(frame: pd.DataFrame, measure: str, breakdown: str) -> pd.DataFrame:
    return frame[(frame["measure"] == measure) & (frame["breakdown"] == breakdown)]


def _total(frame: pd.DataFrame, measure: str) -> pd.Series | None:
    r = _rows(frame, measure, "all")
    return None if r.empty else r.iloc[0]


def _fmt_rate(v: Any, d: int = 1) -> str:
    # d: the tier's published decimals (no more digits than the tables carry).
    return "c" if v is None or pd.isna(v) else f"{v:.{d}f}%"


def _fmt_count(v: Any) -> str:
    return "c" if v is None or pd.isna(v) else f"{int(v):,}"


def _fmt_money(v: Any) -> str:
    return "c" if v is None or pd.isna(v) else f"£{v:,.0f}"


def _bars(values: Any, fmt: Any) -> tuple[list[float], list[str]]:
    """Bar lengths and labels: a suppressed value is a zero-length bar labelled "c"."""
    ys = [0.0 if pd.isna(v) else float(v) for v in values]
    return ys, ["c" if pd.isna(v) else fmt(v) for v in values]


def _kpi(value: str, label: str, sub: str = "") -> str:
    return (
        f'<div class="kpi"><div class="v">{html.escape(value)}</div><div class="l">{html.escape(label)}</div>'
        + (f'<div class="s">{html.escape(sub)}</div>' if sub else "")
        + "</div>"
    )


def _headlines(frame: pd.DataFrame, gaps: pd.DataFrame, rule: str, d: int = 1) -> str:
    def _fmt(v: Any) -> str:
        return _fmt_rate(v, d)

    def rate(m: str) -> Any:
        t = _total(frame, m)
        return None if t is None else t["rate"]

    def val(m: str, col: str) -> Any:
        t = _total(frame, m)
        return None if t is None else t[col]

    dis_gap = gaps[
        (gaps["measure"] == "employment_rate")
        & (gaps["dim"] == "disability")
        & (gaps["la"] == "All")
        & (gaps["group"] == "Yes")
    ]
    gap_v = None if dis_gap.empty else dis_gap.iloc[0]["gap_pp"]
    cards = [
        _kpi(_fmt_count(val("hub_supported", "n")), "residents supported through hubs"),
        _kpi(
            _fmt(rate(f"sustained_{rule}_6m")),
            "in sustained work 6 months after starting support",
            rule,
        ),
        _kpi(
            _fmt(rate(f"sustained_{rule}_12m")),
            "in sustained work 12 months after starting support",
            rule,
        ),
        _kpi(
            f"{_fmt(rate('employed_at_start_12m'))} → {_fmt(rate('employed_at_12m'))}",
            "in work at the start → 12 months later",
            "same people, followed for 12 months",
        ),
        _kpi(
            _fmt(rate("off_benefits_6m")),
            "off out-of-work benefits 6 months on",
            "of those claiming at the start",
        ),
        _kpi(
            _fmt(rate("employment_rate")),
            "employment rate proxy (16-64)",
            "in PAYE work per linked resident",
        ),
        _kpi(
            "c" if gap_v is None or pd.isna(gap_v) else f"{gap_v:+.{d}f} pts",
            "disability employment gap",
            "disabled minus non-disabled residents",
        ),
        _kpi(_fmt(rate("youth_claimants")), "of residents aged 18-24 claim out-of-work benefits"),
        _kpi(
            _fmt_money(val("bottom_half_earnings", "value")),
            "median monthly pay, bottom half of earners",
        ),
    ]
    return (
        '<section id="headlines"><h2>Headline measures</h2><p class="lead">Whole West Midlands '
        "Combined Authority area; <b>c</b> marks a figure withheld by disclosure control.</p>"
        f'<div class="kpis">{"".join(cards)}</div></section>'
    )


def _la_chart(frame: pd.DataFrame, rule: str) -> str:
    series = [
        ("employment_rate", "Employment rate proxy (16-64)"),
        (f"sustained_{rule}_6m", "Sustained work at 6 months"),
        (f"sustained_{rule}_12m", "Sustained work at 12 months"),
    ]
    fig = go.Figure()
    las: list[str] = []
    for m, label in series:
        r = _rows(frame, m, "la")
        r = r[~r["group1"].isin(["Unknown", "Outside WMCA"])]
        if r.empty:
            continue
        las = las or list(r.sort_values("group1")["group1"])
        r = r.set_index("group1").reindex(las)
        ys, texts = _bars(r["rate"], lambda v: f"{v:.0f}")
        fig.add_bar(name=label, x=las, y=ys, text=texts, textposition="outside", cliponaxis=False,
                    textfont=dict(size=10), hovertemplate="%{x}: %{text}<extra>" + label + "</extra>")  # fmt: skip
    fig.update_layout(
        barmode="group",
        title="Local authorities compared",
        yaxis_title="% of people",
        yaxis_range=[0, 100],
        height=420,
    )
    hub = _rows(frame, "hub_supported", "la")
    hub = hub[~hub["group1"].isin(["Unknown", "Outside WMCA"])].sort_values("group1")
    fig2 = go.Figure(go.Bar(x=list(hub["group1"]), y=list(hub["n"]), marker_color=_COLOURS[3],
                            text=[_fmt_count(v) for v in hub["n"]], textposition="outside", cliponaxis=False))  # fmt: skip
    fig2.update_layout(
        title="Residents supported through hubs", yaxis_title="people (rounded)", height=420
    )
    return (
        '<section id="la"><h2>Local authority comparison</h2><p class="lead">Rates by the local '
        "authority a person lives in (latest postcode district); <b>c</b>: withheld by disclosure control.</p>"
        f'<div class="grid2">{_fig_html(fig, "chart-la")}{_fig_html(fig2, "chart-hubs")}</div></section>'
    )


def _gap_charts(gaps: pd.DataFrame, rule: str, d: int = 1) -> str:
    if gaps.empty:
        return ""
    region = gaps[(gaps["la"] == "All") & (gaps["measure"] == "employment_rate")]
    region = region[~region["group"].isin(["Unknown", "Prefer not to say", "65+", "under 16"])]
    labels = [
        f"{DIM_LABELS.get(d, d)}: {g} vs {r}"
        for d, g, r in zip(region["dim"], region["group"], region["reference"], strict=True)
    ]
    xs, texts = _bars(region["gap_pp"], lambda v: f"{v:+.{d}f}")
    fig = go.Figure(go.Bar(
        x=xs, y=labels, orientation="h", text=texts, textposition="outside", cliponaxis=False,
        marker_color=[_COLOURS[2] if v < 0 else _COLOURS[1] for v in xs],
    ))  # fmt: skip
    shown = [v for v in region["gap_pp"] if not pd.isna(v)] or [0.0]
    pad = max(2.0, 0.25 * (max(shown) - min(shown)))
    fig.update_layout(title="Employment rate gaps, whole area (percentage points)", xaxis_title="points vs reference group",
                      xaxis_range=[min(0.0, min(shown)) - pad, max(0.0, max(shown)) + pad],
                      height=max(360, 26 * len(labels) + 120), yaxis_autorange="reversed")  # fmt: skip
    by_la = gaps[(gaps["la"] != "All") & (gaps["dim"] == "disability") & (gaps["group"] == "Yes")]
    by_la = by_la[~by_la["la"].isin(["Unknown", "Outside WMCA"])]
    fig2 = go.Figure()
    for i, m in enumerate(["employment_rate", f"sustained_{rule}_12m"]):
        part = by_la[by_la["measure"] == m].sort_values("la")
        ys, texts = _bars(part["gap_pp"], lambda v: f"{v:+.{d}f}")
        fig2.add_bar(name="Employment rate proxy" if i == 0 else "Sustained work at 12 months",
                     x=list(part["la"]), y=ys, text=texts, textposition="outside", cliponaxis=False,
                     textfont=dict(size=10))  # fmt: skip
    fig2.update_layout(title="Disability gap by local authority (points)", barmode="group", height=420,
                       yaxis_title="disabled minus non-disabled")  # fmt: skip
    if by_la.empty:  # the public tier has no LA x characteristic tables: show outcome gaps instead
        out = gaps[(gaps["la"] == "All") & (gaps["measure"] == f"sustained_{rule}_12m")]
        out = out[~out["group"].isin(["Unknown", "Prefer not to say", "65+", "under 16"])]
        labels2 = [
            f"{DIM_LABELS.get(d, d)}: {g} vs {r}"
            for d, g, r in zip(out["dim"], out["group"], out["reference"], strict=True)
        ]
        xs2, texts2 = _bars(out["gap_pp"], lambda v: f"{v:+.{d}f}")
        fig2 = go.Figure(
            go.Bar(
                x=xs2,
                y=labels2,
                orientation="h",
                text=texts2,
                textposition="outside",
                cliponaxis=False,
                marker_color=[_COLOURS[2] if v < 0 else _COLOURS[1] for v in xs2],
            )
        )
        lo2, hi2 = min([0.0, *xs2]), max([0.0, *xs2])
        pad2 = max(2.0, 0.25 * (hi2 - lo2))
        fig2.update_layout(title="Sustained work at 12 months: gaps (points)", xaxis_title="points vs reference group",
                           xaxis_range=[lo2 - pad2, hi2 + pad2],
                           height=max(360, 26 * len(labels2) + 120), yaxis_autorange="reversed")  # fmt: skip
    return (
        '<section id="gaps"><h2>Gaps by disability, ethnicity, gender and age</h2><p class="lead">Each '
        "group's rate minus its reference group's (disability: No; ethnicity: White; gender: Male; "
        "age: 35-49). Negative bars: the group is less often in work.</p>"
        f'<div class="grid2">{_fig_html(fig, "chart-gaps")}{_fig_html(fig2, "chart-gaps-la")}</div></section>'
    )


def _trend_chart(frame: pd.DataFrame, rule: str, tier: str) -> str:
    # Public rates need more people than a month's intake has: the public version uses quarters.
    by = "start_month" if tier == "internal" else "start_quarter"
    period = "month" if tier == "internal" else "quarter"
    fig = go.Figure()
    for m, label in [(f"sustained_{rule}_6m", "Sustained work at 6 months"), (f"sustained_{rule}_12m", "Sustained work at 12 months"),
                     ("employed_at_start_12m", "In work at the start")]:  # fmt: skip
        r = _rows(frame, m, by).sort_values("group1")
        # Intakes too recent to follow up have no rate: end the axis at the last followed one.
        shown = r.loc[r["rate"].notna(), "group1"]
        r = r[r["group1"] <= shown.max()] if not shown.empty else r.iloc[0:0]
        if r.empty:
            continue
        fig.add_scatter(
            name=label,
            x=list(r["group1"]),
            y=list(r["rate"]),
            mode="lines+markers",
            connectgaps=False,
        )
    fig.update_layout(
        title=f"Outcomes by {period} of start",
        yaxis_title=f"% of the {period}'s starters",
        xaxis_type="category",
        yaxis_range=[0, 100],
        height=400,
    )
    starts = _rows(frame, "hub_supported", "start_month").sort_values("group1")
    fig2 = go.Figure(
        go.Bar(x=list(starts["group1"]), y=list(starts["n"]), marker_color=_COLOURS[3])
    )
    fig2.update_layout(
        title="Hub starts by month (first start)", yaxis_title="people (rounded)", height=400
    )
    return (
        f'<section id="trends"><h2>Trends by {period} of start</h2><p class="lead">Each point is the '
        f"intake of one {period}; a missing point is an intake too recent to be followed up for 6 or 12 "
        "months, or a rate withheld by disclosure control.</p>"
        f'<div class="grid2">{_fig_html(fig, "chart-trend")}{_fig_html(fig2, "chart-starts")}</div></section>'
    )


def _bias_section(frame: pd.DataFrame, warnings: list[str], d: int = 1) -> str:
    r = frame[(frame["measure"] == "linked_to_other_source") & (frame["breakdown"] != "all")]
    rows = []
    for _, x in r.sort_values(["dim1", "group1"]).iterrows():
        rows.append(
            f"<tr><td>{html.escape(DIM_LABELS.get(x['dim1'], x['dim1']))}</td><td>{html.escape(str(x['group1']))}</td>"
            f'<td class="num">{_fmt_count(x["n"])}</td><td class="num">{_fmt_rate(x["rate"], d)}</td></tr>'
        )
    tot = _total(frame, "linked_to_other_source")
    warn = "".join(f'<div class="warn">{html.escape(w)}</div>' for w in warnings) or (
        '<div class="ok">No two groups differ by more than the warning threshold.</div>'
    )
    return (
        '<section id="bias"><h2>Linkage bias</h2><p class="lead">Share of records whose person is '
        "linked to at least one other source. Groups that link less are measured on thinner "
        f"journeys. Overall: {_fmt_rate(None if tot is None else tot['rate'], d)}.</p>{warn}"
        '<div style="max-height:420px;overflow:auto"><table><thead><tr><th>Characteristic</th>'
        '<th>Group</th><th class="num">Records</th><th class="num">Linked</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _notes(meta: dict[str, Any], tier: str) -> str:
    pol = meta["disclosure"][tier]
    rules = "".join(
        f"<li><b>{html.escape(n)}</b>: {html.escape(r['description'])} "
        f"(parameters: {html.escape(', '.join(f'{k}={v}' for k, v in r.items() if k not in ('description', 'nlw_rates')))})</li>"
        for n, r in meta["rules"].items()
    )
    return f"""
<section id="notes"><h2>Definitions and disclosure control</h2>
<ul class="notes">
<li><b>Cohort</b>: people starting hub support or an NHS employment programme (WorkWell, IPS), by
their first start. A measure at 6 or 12 months counts only people whose start is at least that long
before the data date ({html.escape(meta["as_of"])}).</li>
<li><b>Sustained employment</b> (headline rule: {html.escape(meta["rule"])}): <ul>{rules}</ul>
The Work and Health Programme threshold uses the National Living Wage in force on the start date.</li>
<li><b>Off out-of-work benefits</b>: of those on ESA or Universal Credit with work-search or no work
requirements at the start, the share not on one 6 / 12 months later.</li>
<li><b>Employment rate proxy</b>: residents aged 16-64 in a PAYE employment on the data date, per linked
resident (people the partners' data place in a WMCA authority), not the ONS rate.
<b>Health-related inactivity proxy</b>: on ESA or UC with limited capability for work.</li>
<li><b>Youth claimants</b>: 18-24s on out-of-work benefits; <b>long-term claimants</b>: claim of 12
months or more; <b>16-17 NEET</b>: latest skills record; <b>bottom-half earnings</b>: median monthly
pay of the lower half of earners.</li>
<li><b>Characteristics</b> come from the hubs' self-report first (gender, ethnicity, disability),
PIP claims for disability when no self-report (anyone else counts as not known to be disabled), and
the latest postcode district for local authority.
Only hub clients report gender and ethnicity, so gaps by these describe hub clients.</li>
<li><b>Disclosure control</b> ({html.escape(_TIER_LABEL[tier])} tier): counts below {pol["min_cell"]}
(zero included) are suppressed and marked <b>c</b>; other cells that would let a suppressed one be worked
out from totals, here or in any other table of this run, are suppressed too; counts are rounded to the
nearest {pol["rounding_base"]}; rates, means and medians need at least {pol["min_denominator"]} people.
Rates are computed from the rounded counts and shown to {_precision_text(pol)}; gaps are differences
of the shown rates.</li>
</ul></section>"""


_ACROSS_LABELS = {
    "hub_supported": "residents supported",
    "employed_at_12m": "in work 12 months on",
    "employment_rate": "employment rate proxy",
    "linked_to_other_source": "linked to another source",
}


def _across_label(measure: str, rule: str) -> str:
    if measure.startswith(f"sustained_{rule}_"):
        return f"sustained work at {measure.rsplit('_', 1)[-1].removesuffix('m')} months"
    return _ACROSS_LABELS.get(measure, measure)


def _refresh_text(row: Any) -> str:
    from wmw_link.outcomes.refreshes import refresh_label

    return refresh_label({k: (row[k] or None) for k in ("delivery", "as_at", "data_to")})


def _across_section(across: pd.DataFrame, rule: str) -> str:
    """Headline figures of every refresh: a table and a chart of the rates (published values)."""
    keys = ["delivery", "as_at", "data_to"]
    refreshes = across[keys].drop_duplicates()
    measures = list(dict.fromkeys(across["measure"]))
    head = "".join(f"<th>{html.escape(_across_label(m, rule))}</th>" for m in measures)
    body = []
    fig = go.Figure()
    for _, r in refreshes.iterrows():
        rows = across[(across[keys] == r[keys]).all(axis=1)].set_index("measure")
        cells = []
        for m in measures:
            if m not in rows.index:
                cells.append("<td class='num'>-</td>")
                continue
            x = rows.loc[m]
            v = x["n"] if x["kind"] == "count" else x["rate_pct"]
            shown = v if x["kind"] == "count" or v in ("c", "") else f"{v}%"
            cells.append(f"<td class='num'>{html.escape(shown or 'c')}</td>")
        label = _refresh_text(r) if r["delivery"] else "-"  # no index: the date says it
        body.append(
            f"<tr><td>{html.escape(label)}</td>"
            f"<td>{html.escape(str(r['data_to']))}</td>{''.join(cells)}</tr>"
        )
    labels = [_refresh_text(r) for _, r in refreshes.iterrows()]
    for m in measures:
        part = across[(across["measure"] == m) & (across["kind"] == "rate")]
        if part.empty:
            continue
        y = [float(v) if v not in ("c", "") else None for v in part["rate_pct"]]
        fig.add_scatter(name=_across_label(m, rule), x=labels, y=y, mode="lines+markers")
    fig.update_layout(
        title="Headline rates at each refresh",
        yaxis_title="%",
        xaxis_type="category",
        yaxis_range=[0, 100],
        height=380,
    )
    return (
        '<section id="across-refreshes"><h2>Across refreshes</h2><p class="lead">The headline '
        "figures as each refresh published them (read from that refresh's own tables, after the "
        "same disclosure control; <b>c</b> marks a withheld figure). Later refreshes add "
        "deliveries, follow people for longer and may re-link records, so figures move between "
        "refreshes for those reasons too.</p>"
        f"<table><tr><th>refresh</th><th>data to</th>{head}</tr>{''.join(body)}</table>"
        f"{_fig_html(fig, 'chart-across')}</section>"
    )


def _precision_text(pol: dict[str, Any]) -> str:
    d = int(pol.get("rate_decimals", 1))
    rates = "whole percent" if d == 0 else f"{10**-d:g}%"
    money = pol.get("value_rounding")
    return rates + (f", money to the nearest £{money:g}" if money else "")


def _as_at_text(meta: dict[str, Any]) -> str:
    """``As at delivery 3 (2026-09-02) · `` when the journeys came from a person index."""
    refresh = meta.get("refresh") or {}
    if refresh.get("delivery") is None:
        return ""
    at = refresh.get("as_at")
    return f"As at delivery {refresh['delivery']}" + (f" ({str(at)[:10]})" if at else "") + " · "


def build_dashboard(
    frame: pd.DataFrame,
    gaps: pd.DataFrame,
    meta: dict[str, Any],
    tier: str = "internal",
    across: pd.DataFrame | None = None,
) -> str:
    """Render the dashboard HTML from *protected* tables of one tier.

    Args:
        frame: the output of :func:`wmw_link.disclosure.protect` for this tier.
        gaps: the gap table computed from that frame.
        meta: run metadata (agreement, as_of, rule, rules, disclosure tiers, warnings). Its
            ``warnings`` must be computed from ``frame`` (this tier's tables), never from
            another tier's.
        tier: ``"internal"`` or ``"public"``.
        across: this tier's headline figures of every refresh (``across_refreshes.csv``), for
            an "Across refreshes" section; none when None.
    """
    rule = meta["rule"]
    d = int(meta["disclosure"][tier].get("rate_decimals", 1))
    body = [
        _headlines(frame, gaps, rule, d),
        _la_chart(frame, rule),
        _gap_charts(gaps, rule, d),
        _trend_chart(frame, rule, tier),
        *([_across_section(across, rule)] if across is not None and not across.empty else []),
        _bias_section(frame, meta.get("warnings", []), d),
        _notes(meta, tier),
    ]
    ag = meta["agreement"]
    return _template().substitute(
        title="West Midlands Works: outcomes of linked support journeys",
        tier_label=_TIER_LABEL[tier],
        subtitle=html.escape(
            f"{_as_at_text(meta)}Data to {meta['as_of']} · agreement {ag['id']} "
            f"v{ag['version']} · sustained employment rule {rule}"
        ),
        plotlyjs=plotly.offline.get_plotlyjs(),
        body="\n".join(body),
        footer=html.escape(
            f"wmw-link {meta['tool_version']} · generated {meta['created_at']} · agreement hash "
            f"{ag['hash'][:16]} · figures after statistical disclosure control"
        ),
    )
