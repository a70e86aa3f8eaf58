"""``measure_outcomes``: journeys in, disclosure-controlled tables and dashboards out.

Output directory:

```
tables/<table>.csv          internal tier (all breakdowns, two-way intersections), SDC applied
public/<table>.csv          public tier (total and one-way breakdowns), stricter SDC
dashboard.html              built from the internal tables
dashboard-public.html       built only from the public tables
outcomes-manifest.json      agreement, inputs by hash, rule and parameters, tiers, outputs by hash,
                            linkage-bias warnings
```

Nothing is written before disclosure control: the raw measures exist only in memory
(:func:`compute_measures`, which the ground-truth benchmark also uses). The output is written
into a temporary sibling folder and swapped into place only when complete
(:mod:`wmw_link.outdir`), so a failure never leaves tables without their dashboards or manifest.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wmw_link._version import __version__
from wmw_link.agreement import Agreement, DisclosureTier, Role
from wmw_link.disclosure import (
    INTERNAL_PRECISION,
    PUBLIC_PRECISION,
    Precision,
    neutralise_formulas,
    protect,
    recoverable_cells,
    to_csv_frame,
)
from wmw_link.errors import InputDataError, PolicyError, VerificationError
from wmw_link.files import sha256_file, write_bytes_atomic, write_json_atomic
from wmw_link.journeys import JOURNEYS_MANIFEST, TOKENS_SUFFIX, load_districts, require_dir
from wmw_link.outcomes import bias, cohort, measures, population
from wmw_link.outcomes.presets import PRESETS, SustainedRule, get_rule
from wmw_link.outcomes.refreshes import ACROSS_TABLE, across_refreshes
from wmw_link.outdir import check_out_dir, staged_dir
from wmw_link.token_schema import is_token_column

#: Reference groups for the gap tables: gap = rate(group) - rate(reference), in points.
GAP_REFERENCE = {"disability": "No", "ethnicity": "White", "gender": "Male", "age_band": "35-49"}
PUBLIC_BREAKDOWNS = ("all", *measures.ONE_WAY, *measures.COHORT_EXTRA, "source")
OUTCOMES_MANIFEST = "outcomes-manifest.json"
#: Top-level names measure_outcomes writes (the output folder is replaced as a whole).
OUTCOMES_FILES = ("tables", "public", "dashboard.html", "dashboard-public.html", OUTCOMES_MANIFEST)


@dataclass
class OutcomesResult:
    """What :func:`measure_outcomes` produced."""

    internal: pd.DataFrame  # protected (internal tier)
    public: pd.DataFrame  # protected (public tier)
    gaps: pd.DataFrame
    gaps_public: pd.DataFrame
    warnings: list[str]  # from the internal tables
    rule: str
    as_of: dt.date
    out_dir: Path | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    warnings_public: list[str] = field(default_factory=list)  # from the public tables only
    #: The refresh the figures are "as at": delivery, as_at (link run), data_to.
    refresh: dict[str, Any] = field(default_factory=dict)
    #: Tier -> headline measures of every refresh (with ``previous`` outputs), earliest first.
    across: dict[str, pd.DataFrame] = field(default_factory=dict)

    def headline(self, tier: str = "internal") -> dict[str, float | None]:
        """Headline rates (percent) from the protected totals; None when suppressed."""
        frame = self.internal if tier == "internal" else self.public
        tot = frame[frame["breakdown"] == "all"].set_index("measure")
        out: dict[str, float | None] = {}
        for m, r in tot.iterrows():
            v = (
                r["rate"]
                if r["kind"] == "rate"
                else (r["value"] if r["kind"] in ("mean", "median") else r["n"])
            )
            out[str(m)] = None if pd.isna(v) else float(v)
        return out


def journey_tables(
    agreement: Agreement,
    journeys: str | Path | tuple[pa.Table, pa.Table],
    as_of: dt.date | None,
) -> tuple[pa.Table, pa.Table, dt.date | None, list[Path]]:
    """Events and persons from a journeys folder (checked) or given tables, the "as at" date
    (the manifest's unless given) and the files read; refuses any token column (separation)."""
    inputs: list[Path] = []
    if isinstance(journeys, tuple):
        events, persons = journeys
    else:
        events, persons, man_as_of, inputs = _load_journeys(agreement, Path(journeys))
        as_of = as_of or man_as_of
    for t in (events, persons):
        toks = sorted(c for c in t.column_names if is_token_column(c))
        if toks:
            raise PolicyError(
                f"rule 'separation': journeys table holds token column(s) {', '.join(toks[:5])}"
            )
    return events, persons, as_of, inputs


def _load_journeys(
    agreement: Agreement, journeys_dir: Path
) -> tuple[pa.Table, pa.Table, dt.date | None, list[Path]]:
    require_dir(
        journeys_dir, "journeys", "events.parquet, persons.parquet and " + JOURNEYS_MANIFEST
    )
    tokens = sorted(journeys_dir.glob("*" + TOKENS_SUFFIX))
    if tokens:
        raise PolicyError(
            f"rule 'separation': {journeys_dir} holds token file {tokens[0].name}; an analyst never opens tokens"
        )
    paths = [journeys_dir / "events.parquet", journeys_dir / "persons.parquet"]
    for p in paths:
        if not p.exists():
            raise InputDataError(f"{p}: not found (run `wmw-link journeys` first)")
        names = _read_schema(p).names
        toks = sorted(c for c in names if is_token_column(c))
        if toks:
            raise PolicyError(f"rule 'separation': {p} holds token column(s) {', '.join(toks[:5])}")
    man_path = journeys_dir / JOURNEYS_MANIFEST
    as_of = _check_journeys_manifest(agreement, man_path, paths)
    paths.append(man_path)
    return _read_table(paths[0]), _read_table(paths[1]), as_of, paths


def _check_journeys_manifest(
    agreement: Agreement, man_path: Path, tables: list[Path]
) -> dt.date | None:
    """Require the journeys manifest; check its agreement and the tables' hashes; its as_of."""
    if not man_path.is_file():
        # Without it nothing vouches for the tables' agreement version or their hashes.
        raise InputDataError(
            f"{man_path}: not found; outcomes needs the {JOURNEYS_MANIFEST} that `wmw-link "
            "journeys` writes beside events.parquet and persons.parquet (it records their "
            "agreement and SHA-256); run `wmw-link journeys` again"
        )
    try:
        man = json.loads(man_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VerificationError(f"{man_path}: unreadable manifest ({type(e).__name__})") from None
    if not isinstance(man, dict) or man.get("kind") != "wmw-link/journeys-manifest":
        raise VerificationError(f"{man_path}: not a journeys manifest")
    ag = man.get("agreement") if isinstance(man.get("agreement"), dict) else {}
    version = ag.get("version")
    if (
        not isinstance(version, int)
        or ag.get("id") != agreement.id
        or not agreement.accepts_version(version)
    ):
        raise PolicyError(
            f"rule 'version': {man_path.name} was made under {ag.get('id')} v{version}, "
            f"which {agreement.id} v{agreement.version} does not accept"
        )
    if version == agreement.version and ag.get("hash") not in (None, agreement.hash):
        raise PolicyError(
            f"rule 'agreement hash': {man_path.name} was made under another text of "
            f"{agreement.id} v{agreement.version} (the agreement hash differs)"
        )
    files = man.get("files") or {}
    for p in tables:
        want = (files.get(p.name) or {}).get("sha256")
        if not want:
            raise VerificationError(f"{man_path}: lists no SHA-256 for {p.name}")
        if sha256_file(p) != want:
            raise VerificationError(
                f"{p}: SHA-256 differs from {man_path.name} (altered, or from another journeys run)"
            )
    as_of = None
    if man.get("as_of"):
        try:
            as_of = dt.date.fromisoformat(str(man["as_of"]))
        except ValueError:
            raise VerificationError(f"{man_path}: as_of is not an ISO date") from None
    return as_of


def journeys_refresh(
    journeys: str | Path | tuple[pa.Table, pa.Table], as_of: dt.date
) -> dict[str, Any]:
    """The refresh journeys are "as at" (their manifest's ``as_at``), and the data date."""
    at: dict[str, Any] = {}
    if not isinstance(journeys, tuple):
        try:  # already read and checked by journey_tables
            man = json.loads((Path(journeys) / JOURNEYS_MANIFEST).read_text(encoding="utf-8"))
            at = man.get("as_at") if isinstance(man.get("as_at"), dict) else {}
        except (OSError, ValueError):
            at = {}
    return {
        "delivery": at.get("delivery"),
        "as_at": at.get("as_at"),
        "data_to": as_of.isoformat(),
    }


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise InputDataError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None


def _read_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise InputDataError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None


def compute_measures(
    events: pa.Table,
    persons: pa.Table,
    as_of: dt.date | None = None,
    *,
    rules: Sequence[SustainedRule] | None = None,
    las: Sequence[str] | None = None,
    progression_min_increase: float = 0.10,
) -> tuple[pd.DataFrame, dt.date]:
    """Every measure in long format, *before* disclosure control (never write this frame).

    Returns:
        (frame, as_of): the raw measures and the date they describe.
    """
    rules = list(rules) if rules is not None else list(PRESETS.values())
    las = list(las) if las is not None else sorted(set(load_districts().values()))
    con = duckdb.connect()
    try:
        cohort.register(con, events, persons)
        if as_of is None:
            as_of = con.execute("SELECT max(start) FROM events").fetchall()[0][0] or dt.date.today()
        members = cohort.build_cohort(con, as_of)
        parts = [
            measures.cohort_measures(
                members, rules, progression_min_increase=progression_min_increase
            ),
            population.population_measures(population.resident_frame(con, as_of, las)),
            bias.bias_measures(bias.record_frame(con)),
        ]
    finally:
        con.close()
    return pd.concat(parts, ignore_index=True), as_of


def gap_table(protected: pd.DataFrame, measures_: Sequence[str], decimals: int = 1) -> pd.DataFrame:
    """Gaps in points between each group and its reference group, from protected rates only.

    One-way rows give the regional gap; ``la x <dim>`` rows give the gap within each LA. A gap
    is shown only when both rates are shown. The rates are the *published* ones (already
    rounded, computed from rounded counts), so a gap adds nothing to the tables; ``decimals``
    (the tier's rate decimals) only clears float noise from the subtraction.
    """
    rows = []
    for m in measures_:
        part = protected[(protected["measure"] == m) & (protected["kind"] == "rate")]
        for dim, ref in GAP_REFERENCE.items():
            one = part[part["breakdown"] == dim].set_index("group1")["rate"]
            if ref in one.index:
                for g, r in one.items():
                    if g != ref:
                        rows.append((m, dim, "All", g, ref, r, one[ref]))
            two = part[part["breakdown"] == f"la x {dim}"]
            for la, sub in two.groupby("group1", sort=True):
                s = sub.set_index("group2")["rate"]
                if ref in s.index:
                    for g, r in s.items():
                        if g != ref:
                            rows.append((m, dim, la, g, ref, r, s[ref]))
    df = pd.DataFrame(
        rows, columns=["measure", "dim", "la", "group", "reference", "rate", "reference_rate"]
    )
    df["gap_pp"] = (df["rate"] - df["reference_rate"]).round(decimals)
    return df


def _gap_csv(gaps: pd.DataFrame, decimals: int) -> pd.DataFrame:
    out = gaps[["measure", "dim", "la", "group", "reference"]].copy()
    for c in ("rate", "reference_rate", "gap_pp"):
        out[c] = ["c" if pd.isna(v) else f"{v:.{decimals}f}" for v in gaps[c]]
    return out


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    # Labels come from controllers' extracts: none may run as a spreadsheet formula.
    safe = neutralise_formulas(frame)
    return safe.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _resolve_rule(rule: str | SustainedRule) -> SustainedRule:
    return get_rule(rule) if isinstance(rule, str) else rule


def measure_outcomes(
    agreement: Agreement,
    journeys: str | Path | tuple[pa.Table, pa.Table],
    out_dir: str | Path | None,
    rule: str | SustainedRule = "dfe_5_of_6_months",
    party: str | None = None,
    *,
    as_of: dt.date | None = None,
    bias_threshold_pp: float = 10.0,
    progression_min_increase: float = 0.10,
    dashboards: bool = True,
    previous: Sequence[str | Path] = (),
) -> OutcomesResult:
    """Measure outcomes from journeys, apply disclosure control, write tables and dashboards.

    Args:
        agreement: the agreement (checked: in force, ``party`` is an analyst, journeys made
            under an accepted version); its ``disclosure`` policy sets both tiers.
        journeys: a directory written by ``build_journeys`` (its ``journeys-manifest.json`` is
            required and checked) or an (events, persons) pair.
        out_dir: output directory (nothing is written when None). Written whole: staged in a
            sibling folder and swapped into place once complete; it may hold only a previous
            outcomes output.
        rule: the headline sustained-employment rule: a preset name or a rule object. Every
            preset is measured as well, so tables compare them.
        party: the analyst party; the agreement's only analyst when None.
        as_of: the date the data describe; the journeys manifest's date when None.
        bias_threshold_pp: linkage-bias warning threshold (percentage points).
        progression_min_increase: pay rise that counts as progression (0.10 = 10%).
        dashboards: also write dashboard.html and dashboard-public.html.
        previous: earlier outcomes output folders: their published headline figures, beside
            this run's, make ``across_refreshes.csv`` in each tier and the dashboards' "Across
            refreshes" section (:mod:`wmw_link.outcomes.refreshes`).

    Returns:
        An :class:`OutcomesResult` with the protected frames, gaps and warnings.

    Raises:
        PolicyError: not in force, not an analyst, tokens present, journeys from another
            agreement version.
        InputDataError: journeys or their manifest missing, or a file given for the folder.
        VerificationError: the journeys files differ from their manifest.
        ConfigError: unknown rule; ``out_dir`` holds other files or cannot be written (the
            previous output is then left as it was).
    """
    agreement.require_in_force()
    party = party or agreement.default_party(Role.ANALYST)
    agreement.require_role(party, Role.ANALYST, "measure outcomes")
    if out_dir is not None:
        check_out_dir(out_dir, OUTCOMES_FILES, "outcomes")  # before the work, not after
    headline_rule = _resolve_rule(rule)
    rules = [headline_rule, *(r for n, r in PRESETS.items() if n != headline_rule.name)]
    events, persons, as_of, inputs = journey_tables(agreement, journeys, as_of)
    if events.num_rows == 0 or persons.num_rows == 0:
        # Every cell would read "c": a dashboard of nothing is a failed run, not a result.
        where = journeys if isinstance(journeys, (str, Path)) else "journeys tables"
        raise InputDataError(
            f"{where}: the journeys hold no events or no persons; nothing to measure"
        )

    raw, as_of = compute_measures(
        events, persons, as_of, rules=rules, progression_min_increase=progression_min_increase
    )
    internal = protect(raw, agreement.disclosure.internal, INTERNAL_PRECISION)
    public_raw = raw[raw["breakdown"].isin(PUBLIC_BREAKDOWNS)]
    public = protect(public_raw, agreement.disclosure.public, PUBLIC_PRECISION)
    for name, frame in (("internal", internal), ("public", public)):
        leaks = recoverable_cells(frame)
        if leaks:  # a bug in disclosure control must stop the run, not reach a table
            raise AssertionError(
                f"disclosure control left {len(leaks)} recoverable cell(s) in the {name} tier"
            )
    gap_measures = [
        "employment_rate",
        f"sustained_{headline_rule.name}_6m",
        f"sustained_{headline_rule.name}_12m",
    ]
    gaps = gap_table(internal, gap_measures, INTERNAL_PRECISION.rate_decimals)
    gaps_public = gap_table(public, gap_measures, PUBLIC_PRECISION.rate_decimals)
    # Each tier's warnings come from that tier's own tables: the public dashboard must not
    # quote internal rates (finer, and over groups the public tables may suppress).
    warnings = bias.bias_warnings(internal, bias_threshold_pp, INTERNAL_PRECISION.rate_decimals)
    warnings_public = bias.bias_warnings(public, bias_threshold_pp, PUBLIC_PRECISION.rate_decimals)
    result = OutcomesResult(
        internal,
        public,
        gaps,
        gaps_public,
        warnings,
        headline_rule.name,
        as_of,
        warnings_public=warnings_public,
        refresh=journeys_refresh(journeys, as_of),
    )
    meta = _meta(
        agreement,
        party,
        headline_rule,
        rules,
        as_of,
        bias_threshold_pp,
        progression_min_increase,
        warnings,
        warnings_public,
    )
    meta["refresh"] = result.refresh
    if previous:
        result.across, read = across_refreshes(
            agreement,
            previous,
            {"internal": (internal, INTERNAL_PRECISION), "public": (public, PUBLIC_PRECISION)},
            meta,
        )
        inputs = [*inputs, *read]
        meta["previous"] = [str(p) for p in previous]
    if out_dir is None:
        return result

    out = Path(out_dir)
    files: dict[str, bytes] = {}
    tiers: tuple[tuple[str, pd.DataFrame, pd.DataFrame, Precision], ...] = (
        ("tables", internal, gaps, INTERNAL_PRECISION),
        ("public", public, gaps_public, PUBLIC_PRECISION),
    )
    for tier_dir, frame, gap, prec in tiers:
        for table, part in frame.groupby("table", sort=True):
            files[f"{tier_dir}/{table}.csv"] = _csv_bytes(to_csv_frame(part, prec))
        files[f"{tier_dir}/gaps.csv"] = _csv_bytes(_gap_csv(gap, prec.rate_decimals))
    for tier, tier_dir in (("internal", "tables"), ("public", "public")):
        if tier in result.across:
            files[f"{tier_dir}/{ACROSS_TABLE}.csv"] = _csv_bytes(result.across[tier])
    if dashboards:
        from wmw_link.dashboard import build_dashboard

        files["dashboard.html"] = build_dashboard(
            internal, gaps, meta, tier="internal", across=result.across.get("internal")
        ).encode()
        # The public dashboard sees public figures only: its warnings are the public ones.
        meta_public = {**meta, "warnings": warnings_public}
        files["dashboard-public.html"] = build_dashboard(
            public, gaps_public, meta_public, tier="public", across=result.across.get("public")
        ).encode()
    inputs_meta = {str(p): sha256_file(p) for p in inputs}
    # Everything goes into a staged folder that replaces ``out`` only once complete: a failure
    # leaves the previous output whole, never tables without their dashboards or manifest.
    with staged_dir(out, OUTCOMES_FILES, "outcomes") as stage:
        for rel, data in files.items():
            write_bytes_atomic(stage / rel, data)
        result.files = {rel: sha256_file(stage / rel) for rel in files}
        write_json_atomic(
            stage / OUTCOMES_MANIFEST,
            {
                **meta,
                "kind": "wmw-link/outcomes-manifest",
                "inputs": inputs_meta,
                "outputs": result.files,
            },
        )
    result.out_dir = out
    return result


def _tier_dict(t: DisclosureTier, p: Precision) -> dict[str, Any]:
    return {
        "min_cell": t.min_cell,
        "rounding_base": t.rounding_base,
        "min_denominator": t.min_denominator,
        "rate_decimals": p.rate_decimals,
        "value_rounding": p.value_base,
        "rates_from": "rounded counts",
    }


def _meta(
    agreement: Agreement,
    party: str,
    rule: SustainedRule,
    rules: Sequence[SustainedRule],
    as_of: dt.date,
    bias_threshold_pp: float,
    progression_min_increase: float,
    warnings: list[str],
    warnings_public: list[str],
) -> dict[str, Any]:
    return {
        "agreement": {
            "id": agreement.id,
            "version": agreement.version,
            "hash": agreement.hash,
            "title": agreement.title,
        },
        "party": party,
        "tool_version": __version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "as_of": as_of.isoformat(),
        "rule": rule.name,
        "rules": {r.name: {"description": r.description, **r.params()} for r in rules},
        "progression_min_increase": progression_min_increase,
        "bias_threshold_pp": bias_threshold_pp,
        "disclosure": {
            "internal": _tier_dict(agreement.disclosure.internal, INTERNAL_PRECISION),
            "public": _tier_dict(agreement.disclosure.public, PUBLIC_PRECISION),
        },
        "warnings": warnings,
        "warnings_public": warnings_public,
    }
