"""``estimate_impact``: journeys in, disclosure-controlled impact estimates and dashboard out.

Output directory:

```
impact.json            internal tier: counts, outcomes (estimate, ci_low, ci_high, naive, ...),
                       breakdowns, balance table, method, warnings
impact-public.json     the same, public tier
tables/*.csv           internal tier: impact.csv, breakdowns.csv, balance.csv
public/*.csv           public tier
dashboard.html         built from impact.json; dashboard-public.html from impact-public.json
```
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from wmw_link._version import __version__
from wmw_link.agreement import Agreement, Role
from wmw_link.disclosure import INTERNAL_PRECISION, PUBLIC_PRECISION
from wmw_link.errors import InputDataError
from wmw_link.files import sha256_file, write_bytes_atomic
from wmw_link.impact import covariates, draws
from wmw_link.impact.censoring import censoring_weights
from wmw_link.impact.cohort import Window, build_units, default_window
from wmw_link.impact.estimate import SMD_TARGET, Estimates, Settings, estimate
from wmw_link.impact.publish import protect_estimates
from wmw_link.outcomes import cohort as outcomes_cohort
from wmw_link.outcomes.run import journey_tables  # same checks as `outcomes`
from wmw_link.outdir import check_out_dir, staged_dir

IMPACT_JSON = "impact.json"
IMPACT_FILES = ("impact.json", "impact-public.json", "tables", "public", "dashboard.html",
                "dashboard-public.html")  # fmt: skip

CAVEAT = (
    "Matching compares participants with non-participants who looked the same in the records "
    "before the start: age, sex, area, months in work and on each benefit, health referrals, "
    "pay. It cannot rule out differences the records do not show - motivation, health not "
    "seen by the NHS services in the data, caring duties, a job offer already in hand - and "
    "these can push the estimate either way. Read it as the effect under that assumption, "
    "not as proof."
)


@dataclass
class ImpactResult:
    """What :func:`estimate_impact` produced."""

    raw: Estimates  # before disclosure control: never write it
    internal: dict[str, Any]
    public: dict[str, Any]
    as_of: dt.date
    window: Window
    out_dir: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """Balance and support warnings of the run."""
        return list(self.internal.get("warnings", []))


def estimate_impact(
    agreement: Agreement,
    journeys: str | Path | tuple[pa.Table, pa.Table],
    out_dir: str | Path | None,
    party: str | None = None,
    *,
    window: Window | tuple[str, str] | None = None,
    lookback_months: int = 12,
    settings: Settings | None = None,
    as_of: dt.date | None = None,
    dashboards: bool = True,
) -> ImpactResult:
    """Estimate the effect of hub support against a matched comparison group.

    Args:
        agreement: the agreement (in force; ``party`` must be an analyst); its disclosure
            policy protects every published figure.
        journeys: a directory written by ``build_journeys`` (manifest checked) or an
            (events, persons) pair.
        out_dir: output directory (nothing written when None); written whole.
        party: the analyst party; the agreement's only analyst when None.
        window: first and last start month (``YYYY-MM``) of the treated; by default from the
            first hub start to the last month whose starts are followed for 12 months.
        lookback_months: a comparison person has no hub start in the window nor this many
            months before it.
        settings: matching and bootstrap parameters (:class:`Settings`).
        as_of: the date the data describe; the journeys manifest's date when None.
        dashboards: also write dashboard.html and dashboard-public.html.

    Returns:
        An :class:`ImpactResult` (raw estimates in memory, protected tiers, files).

    Raises:
        PolicyError: agreement not in force, party not an analyst, tokens present.
        InputDataError: journeys missing or without hub starts or comparison people.
        VerificationError: journeys files differ from their manifest.
        ConfigError: bad window; ``out_dir`` holds other files.
    """
    agreement.require_in_force()
    party = party or agreement.default_party(Role.ANALYST)
    agreement.require_role(party, Role.ANALYST, "estimate impact")
    if out_dir is not None:
        check_out_dir(out_dir, IMPACT_FILES, "impact")
    settings = settings or Settings()
    events, persons, as_of, inputs = journey_tables(agreement, journeys, as_of)
    if events.num_rows == 0 or persons.num_rows == 0:
        raise InputDataError("journeys: no events or no persons; nothing to evaluate")
    if isinstance(window, tuple):
        window = Window(*window)
    con = duckdb.connect()
    try:
        outcomes_cohort.register(con, events, persons)
        if as_of is None:
            as_of = con.execute("SELECT max(start) FROM events").fetchall()[0][0]
        assert as_of is not None
        window = window or default_window(con, as_of, max(covariates.HORIZONS))
        units = build_units(con, window, lookback_months, settings.seed)
        key_source = draws.key_source(con)
        excluded = dict(units.attrs)
        frame = covariates.features(con, units, as_of, covariates.sex_sources(agreement))
        followed = frame[f"followed_{max(covariates.HORIZONS)}m"]
        frame = frame[followed].reset_index(drop=True)
        if not frame["treated"].any() or frame["treated"].all():
            raise InputDataError(
                "journeys: no treated or no comparison person is followed for 12 months after "
                f"the (pseudo-)start in window {window.first_month}..{window.last_month}"
            )
        win = window

        def weighter(controls: pd.DataFrame) -> np.ndarray:
            return censoring_weights(con, win, controls, seed=settings.seed)

        raw = estimate(frame, settings, weighter if settings.censoring_weights else None)
    finally:
        con.close()
    raw.counts.update(excluded)
    meta = _meta(agreement, party, as_of, window, lookback_months, settings, raw, key_source)
    internal = {
        **meta,
        **protect_estimates(raw, agreement.disclosure.internal, INTERNAL_PRECISION, means=True),
    }
    public = {
        **meta,
        **protect_estimates(raw, agreement.disclosure.public, PUBLIC_PRECISION, means=False),
    }
    for doc, prec in ((internal, INTERNAL_PRECISION), (public, PUBLIC_PRECISION)):
        doc["disclosure"] = {"rate_decimals": prec.rate_decimals, "value_rounding": prec.value_base}
        doc["warnings"] = _warnings(doc)
    result = ImpactResult(raw, internal, public, as_of, window)
    if out_dir is None:
        return result

    result.files = _write(Path(out_dir), internal, public, dashboards)
    result.out_dir = Path(out_dir)
    return result


def _write(
    out: Path, internal: dict[str, Any], public: dict[str, Any], dashboards: bool
) -> dict[str, str]:
    files: dict[str, bytes] = {"impact.json": _json(internal), "impact-public.json": _json(public)}
    for folder, doc in (("tables", internal), ("public", public)):
        for name, frame_ in tables(doc).items():
            files[f"{folder}/{name}.csv"] = frame_.to_csv(index=False, lineterminator="\n").encode()
    if dashboards:
        from wmw_link.dashboard.impact import build_impact_dashboard

        files["dashboard.html"] = build_impact_dashboard(internal, tier="internal").encode()
        files["dashboard-public.html"] = build_impact_dashboard(public, tier="public").encode()
    # Staged whole: a failure leaves the previous output as it was.
    with staged_dir(out, IMPACT_FILES, "impact") as stage:
        for rel, data in files.items():
            write_bytes_atomic(stage / rel, data)
        return {rel: sha256_file(stage / rel) for rel in files}


def _json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=False, default=str) + "\n").encode()


def _c(v: Any) -> Any:
    return "c" if v is None else v


def tables(doc: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """CSV tables of one tier's impact document (``c`` where suppressed)."""
    out_rows = [
        {"outcome": k, **{c: _c(v) for c, v in e.items()}} for k, e in doc["outcomes"].items()
    ]
    bd = (
        # Built from dicts (not a frame of floats): counts stay whole numbers in the CSV.
        pd.DataFrame([{k: _c(v) for k, v in r.items()} for r in doc["breakdowns"]], dtype=object)
        if doc["breakdowns"]
        else pd.DataFrame()
    )
    return {
        "impact": pd.DataFrame(out_rows),
        "breakdowns": bd,
        "balance": pd.DataFrame(doc["balance"]),
        "counts": pd.DataFrame([{"count": k, "people": _c(v)} for k, v in doc["counts"].items()]),
    }


def _warnings(doc: dict[str, Any]) -> list[str]:
    out = []
    bad = [b["covariate"] for b in doc["balance"] if abs(b["smd_after"]) >= SMD_TARGET]
    if bad:
        out.append(
            f"balance: standardised mean difference after matching is {SMD_TARGET} or more for "
            + ", ".join(bad)
        )
    c = doc["counts"]
    if c.get("treated_off_support"):
        out.append(
            f"common support: {c['treated_off_support']} treated people had no comparison "
            "person within the caliper and are left out of the estimates"
        )
    return out


def _meta(
    agreement: Agreement,
    party: str,
    as_of: dt.date,
    window: Window,
    lookback_months: int,
    settings: Settings,
    raw: Estimates,
    key_source: str,
) -> dict[str, Any]:
    return {
        "kind": "wmw-link/impact",
        "agreement": {"id": agreement.id, "version": agreement.version, "hash": agreement.hash},
        "party": party,
        "tool_version": __version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "as_of": as_of.isoformat(),
        "window": {"first_month": window.first_month, "last_month": window.last_month},
        "lookback_months": lookback_months,
        "method": {
            "propensity": "scikit-learn logistic regression on pre-start covariates",
            "exact": ["start_month", "la", "in_work_at_start", "any_work_24m"],
            "estimator": f"{settings.neighbours} nearest neighbours with replacement, caliper "
            f"{settings.caliper_sd} SD of the propensity logit",
            "second_estimator": "Epanechnikov kernel, bandwidth = caliper",
            "interval": f"normal bootstrap 95% (estimate +- 1.96 SD), {settings.bootstrap} "
            "replicates (Poisson weights; propensity model, censoring weights and matches held "
            "fixed)",
            "random_draws": "keyed per person by their records (journeys record_key): "
            "pseudo-starts, fit samples and bootstrap weights do not depend on person ids"
            if key_source == "records"
            else "keyed per person by person id (journeys without record_key)",
            "smd_target": SMD_TARGET,
            **asdict(settings),
        },
        "covariates_not_used": raw.excluded_covariates,
        "caveat": CAVEAT,
    }
