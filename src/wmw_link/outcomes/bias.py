"""The linkage-bias table: who gets linked, by group.

If some groups link less well (e.g. names that tokenise less consistently, people who move),
their outcomes are measured on a thinner, possibly different slice of their journeys. Every run
therefore reports, for each group, the share of *records* whose person is linked to at least
one other source (dataset), and warns when two groups of one characteristic differ by more
than ``threshold_pp`` percentage points.

The warning uses only rates that survive disclosure control (so it discloses nothing the table
does not), and ignores the ``Unknown`` group: a person known to one source only often lacks
the characteristic precisely because nothing else was linked to them. The table also lists
link rates by source; those differ by design (most PAYE employees never meet another
service) and raise no warning.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from wmw_link.outcomes.measures import DIM_LABELS, aggregate, domains_of

BIAS_DIMS: tuple[str, ...] = ("la", "ethnicity", "gender", "age_band", "disability", "source")
MEASURE = "linked_to_other_source"


def record_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per event record: its source, its person's characteristics, whether linked."""
    return con.sql(
        """
        SELECT e.source, p.local_authority AS la, p.ethnicity, p.gender, p.age_band, p.disability,
               p.n_sources >= 2 AS linked
        FROM events e JOIN persons p USING (person_id)
        """
    ).df()


def bias_measures(records: pd.DataFrame) -> pd.DataFrame:
    """The bias table in long format (one-way breakdowns; before disclosure control)."""
    rec = records.copy()
    for d in BIAS_DIMS:
        rec[d] = rec[d].fillna("Unknown").astype(str)
    return aggregate(
        rec,
        table="linkage_bias",
        measure=MEASURE,
        kind="rate",
        population="records",
        domains=domains_of(rec, BIAS_DIMS),
        dims=BIAS_DIMS,
        pairs=(),
        flag="linked",
    )


def bias_warnings(protected: pd.DataFrame, threshold_pp: float, decimals: int = 1) -> list[str]:
    """Warnings for characteristics whose groups' link rates differ by more than the threshold.

    Args:
        protected: the disclosure-controlled frame of *one tier* (rows of other measures are
            ignored); the warnings quote its published rates and nothing else, so give each
            tier's dashboard the warnings of its own tables.
        threshold_pp: the largest acceptable gap between two groups, in percentage points.
        decimals: decimals of that tier's published rates (the gap is quoted alike).
    """
    rows = protected[
        (protected["measure"] == MEASURE) & ~protected["breakdown"].isin(["all", "source"])
    ]
    out: list[str] = []
    for dim, part in rows.groupby("dim1", sort=True):
        shown = part[part["rate"].notna() & (part["group1"] != "Unknown")]
        if len(shown) < 2:
            continue
        hi = shown.loc[shown["rate"].idxmax()]
        lo = shown.loc[shown["rate"].idxmin()]
        gap = round(float(hi["rate"] - lo["rate"]), decimals)  # of published rates only
        if gap > threshold_pp:
            d = decimals
            out.append(
                f"linkage bias: by {DIM_LABELS.get(str(dim), dim).lower()}, {hi['group1']} records "
                f"link to another source {gap:.{d}f} points more often than {lo['group1']} "
                f"({hi['rate']:.{d}f}% vs {lo['rate']:.{d}f}%; threshold {threshold_pp:g} points)"
            )
    return out
