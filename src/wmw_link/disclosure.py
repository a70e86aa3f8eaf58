"""Statistical disclosure control (SDC) for every table the outcomes stage writes.

One function, :func:`protect`, is applied to the whole set of a run's tables at once, with one
tier of the agreement's disclosure policy (``internal`` or ``public``):

1. **Primary suppression.** A count of people below ``min_cell`` is suppressed, zero included.
   A numerator is also suppressed when its complement (denominator minus numerator) is below
   ``min_cell`` (otherwise "all but 3 of the group" is disclosed), and whenever its denominator
   is suppressed.
2. **Secondary suppression.** Counts add up: the cells of a breakdown add up to the total, and
   the cells of a two-way breakdown (A x B) add up to the one-way cells of A and of B. In every
   such family of cells, a single suppressed cell could be recovered by differencing, so the
   smallest other cell of the family is suppressed too, repeated until no family has exactly
   one hidden cell (uninformative groups such as ``Unknown`` or ``Other`` are chosen first,
   so comparisons between real groups survive). Families are formed per *population* (the set
   of people a denominator counts), across all tables of the run, so two tables that share a
   margin are suppressed consistently and one cannot be used to undo the other. Nested groups
   form families too: the months of a quarter add up to the quarter (:data:`NESTED_DIMS`).
3. **Rounding.** Shown counts are rounded to the nearest ``rounding_base``.
4. **Rates, means and medians** are shown only from at least ``min_denominator`` people and
   only when their numerator and denominator are shown. A rate is computed from the *rounded*
   numerator and denominator (ONS practice for rounded tables) and published to
   :attr:`Precision.rate_decimals` places: a rate from the exact counts, shown to 0.1% beside
   rounded ones, would let a reader solve for the exact pair (60 of 130 at 44.7% can only be
   59 of 132). Means and medians are rounded to :attr:`Precision.value_base` (pay to the
   nearest pound internally, the nearest GBP 10 in public).

Suppressed values are marked ``"c"`` in written tables, never left blank or zero.

Input frame (long format, one row per measure and group) columns:

``table, measure, kind, population, breakdown, dim1, group1, dim2, group2, n, count, value``

``kind`` is ``"rate"`` (count of n, shown as a percentage), ``"count"`` (n is the quantity),
``"mean"`` or ``"median"`` (value over n people). ``breakdown`` is ``"all"``, a dimension name,
or ``"<dim1> x <dim2>"``; ``group1``/``group2`` are the group values ("" when unused).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wmw_link.agreement import DisclosureTier
from wmw_link.errors import ConfigError

SUPPRESSED = "c"

KEY_COLUMNS = ["breakdown", "dim1", "group1", "dim2", "group2"]
REQUIRED_COLUMNS = [
    "table",
    "measure",
    "kind",
    "population",
    *KEY_COLUMNS,
    "n",
    "count",
    "value",
]
KINDS = {"rate", "count", "mean", "median"}

CellKey = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class Precision:
    """How finely a tier publishes rates and means/medians (the counts follow the tier's
    ``rounding_base``)."""

    rate_decimals: int = 1  # decimal places of a published percentage
    value_base: float = 1.0  # means and medians rounded to the nearest multiple of this


#: Internal tables: rates to 0.1% (from rounded counts), pay to the nearest pound.
INTERNAL_PRECISION = Precision(rate_decimals=1, value_base=1.0)
#: Public tables: rates to whole percent (from rounded counts), pay to the nearest GBP 10.
PUBLIC_PRECISION = Precision(rate_decimals=0, value_base=10.0)


def published_rate(count: float, n: float, decimals: int) -> float:
    """The percentage published for a *rounded* numerator and denominator.

    It is a function of the published figures only, so it tells a reader nothing they could
    not compute themselves. Rounded half up like the counts (so 12.5% -> 13% whole percent).
    """
    if not n > 0:
        return float("nan")
    scale = 10**decimals
    # Exact in integers: rounded counts are whole numbers, so no float round-off decides a tie.
    num, den = int(round(count)) * 100 * scale, int(round(n))
    return float((2 * num + den) // (2 * den)) / scale


def month_to_quarter(month: str) -> str | None:
    """``"2024-05"`` -> ``"2024-Q2"`` (None when not a ``YYYY-MM`` month)."""
    year, _, mm = month.partition("-")
    if not (year.isdigit() and mm.isdigit() and 1 <= int(mm) <= 12):
        return None
    return f"{year}-Q{(int(mm) - 1) // 3 + 1}"


#: Dimensions whose groups nest inside another dimension's groups: the months of a quarter
#: add up to the quarter, so a month hidden alone could be worked out from its quarter.
NESTED_DIMS: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "start_month": ("start_quarter", month_to_quarter),
}


def _families(
    keys: Iterable[CellKey],
    nested: Mapping[str, tuple[str, Callable[[str], str | None]]] = NESTED_DIMS,
) -> list[list[CellKey]]:
    """Groups of cells that add up to a parent cell, each listed parent first.

    Only cells present in ``keys`` are used; a family needs its parent to be present.
    """
    present = set(keys)
    total: CellKey = ("all", "", "", "", "")
    fam: dict[CellKey, list[CellKey]] = defaultdict(list)
    for key in present:
        breakdown, d1, g1, d2, g2 = key
        if breakdown == "all":
            continue
        if not d2:  # one-way cell: child of the total (and of its group's parent group)
            fam[total].append(key)
            if d1 in nested:
                parent_dim, parent_of = nested[d1]
                parent_group = parent_of(g1)
                if parent_group is not None:
                    fam[(parent_dim, parent_dim, parent_group, "", "")].append(key)
        else:  # two-way cell: child of both one-way cells
            fam[(d1, d1, g1, "", "")].append(key)
            fam[(d2, d2, g2, "", "")].append(key)
    out: list[list[CellKey]] = []
    for parent, children in fam.items():
        if parent not in present:
            continue
        # A two-way cell belongs to the family of its one-way parent *within the same
        # pair of dimensions*: split by the breakdown so families do not mix tables.
        by_bd: dict[str, list[CellKey]] = defaultdict(list)
        for c in children:
            by_bd[c[0]].append(c)
        for bd in sorted(by_bd):
            out.append([parent, *sorted(by_bd[bd])])
    return out


#: Groups whose cells are hidden first when a second cell must go (they inform no comparison).
LOW_VALUE_GROUPS = frozenset(
    {"Unknown", "Prefer not to say", "Other", "Outside WMCA", "none_recorded", "other"}
)


def _low_value(key: CellKey) -> bool:
    _bd, _d1, g1, d2, g2 = key
    return (g2 if d2 else g1) in LOW_VALUE_GROUPS or g1 in LOW_VALUE_GROUPS


def _secondary(values: dict[CellKey, float], hidden: set[CellKey]) -> set[CellKey]:
    """Grow ``hidden`` until no family has exactly one hidden cell; return the new set."""
    hidden = set(hidden)
    families = _families(values)
    changed = True
    while changed:
        changed = False
        for family in families:
            unknown = [c for c in family if c in hidden]
            if len(unknown) != 1:
                continue
            parent, children = family[0], family[1:]
            # Prefer hiding an uninformative group ("Unknown", "Other", ...), then the
            # smallest other child (least information lost); hide the parent only when no
            # other child is left.
            candidates = sorted(
                (c for c in children if c not in hidden),
                key=lambda c: (not _low_value(c), values[c], c),
            )
            pick = candidates[0] if candidates else parent
            hidden.add(pick)
            changed = True
    return hidden


def _round(x: float, base: int) -> float:
    # Round half up (12.5 -> 15 with base 5): deterministic and documented, unlike banker's.
    return float(base * math.floor(x / base + 0.5))


def _check(frame: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"disclosure control: table frame lacks column(s) {', '.join(missing)}")
    bad = sorted(set(frame["kind"]) - KINDS)
    if bad:
        raise ConfigError(f"disclosure control: unknown kind(s) {', '.join(map(str, bad))}")


def protect(
    frame: pd.DataFrame, tier: DisclosureTier, precision: Precision = INTERNAL_PRECISION
) -> pd.DataFrame:
    """Apply disclosure control to all of a run's tables (long format) with one policy tier.

    Args:
        frame: the raw measures, columns as in the module docstring. ``n`` and ``count`` are
            exact person counts; ``value`` holds means/medians.
        tier: the agreement's tier (``agreement.disclosure.internal`` or ``.public``).
        precision: how finely rates and means/medians are published
            (:data:`INTERNAL_PRECISION` or :data:`PUBLIC_PRECISION`).

    Returns:
        A copy with ``n``, ``count`` rounded (NaN where suppressed), ``rate`` (percent from the
        rounded count and n, to ``precision.rate_decimals`` places; NaN where not shown),
        ``value`` (rounded to ``precision.value_base``; NaN where not shown) and the flags
        ``n_flag``,
        ``count_flag``, ``rate_flag``, ``value_flag`` (``"c"`` when suppressed, else "").
        Use :func:`to_csv_frame` to render it with ``"c"`` markers.
    """
    _check(frame)
    df = frame.reset_index(drop=True).copy()
    for c in ("dim1", "group1", "dim2", "group2"):
        df[c] = df[c].fillna("").astype(str)
    df["n"] = df["n"].astype(float)
    df["count"] = df["count"].astype(float)
    df["value"] = df["value"].astype(float)
    keys = list(zip(*(df[c] for c in KEY_COLUMNS), strict=True))
    df["_key"] = keys

    # 1-2: denominators, per population (shared by every measure on that population).
    n_hidden: dict[str, set[CellKey]] = {}
    for pop, part in df.groupby("population", sort=True):
        vals = dict(zip(part["_key"], part["n"], strict=True))
        primary = {k for k, v in vals.items() if v < tier.min_cell}
        n_hidden[pop] = _secondary(vals, primary)
    df["_n_hidden"] = [k in n_hidden[p] for k, p in zip(df["_key"], df["population"], strict=True)]

    # Numerators, per measure and population (only rate measures have them).
    df["_c_hidden"] = False
    is_rate = df["kind"] == "rate"
    for (_m, _pop), part in df[is_rate].groupby(["measure", "population"], sort=True):
        vals = dict(zip(part["_key"], part["count"], strict=True))
        primary = {
            k
            for k, c, n, nh in zip(
                part["_key"], part["count"], part["n"], part["_n_hidden"], strict=True
            )
            if c < tier.min_cell or (n - c) < tier.min_cell or nh
        }
        hidden = _secondary(vals, primary)
        df.loc[part.index, "_c_hidden"] = [k in hidden for k in part["_key"]]

    out = df.drop(columns=["_key"])
    base = tier.rounding_base
    rate_ok = is_rate & ~out["_n_hidden"] & ~out["_c_hidden"] & (out["n"] >= tier.min_denominator)
    value_ok = (
        out["kind"].isin(["mean", "median"])
        & ~out["_n_hidden"]
        & (out["n"] >= tier.min_denominator)
    )
    out["value"] = [
        _round(v, precision.value_base) if ok and not math.isnan(v) else np.nan
        for v, ok in zip(out["value"], value_ok, strict=True)
    ]
    out["n"] = [
        np.nan if h else _round(v, base) for v, h in zip(out["n"], out["_n_hidden"], strict=True)
    ]
    out["count"] = [
        np.nan if (h or not r) else _round(v, base)
        for v, h, r in zip(out["count"], out["_c_hidden"], is_rate, strict=True)
    ]
    # Rates only now, from the rounded figures: never from the exact count and n (see above).
    out["rate"] = [
        published_rate(c, n, precision.rate_decimals) if ok else np.nan
        for c, n, ok in zip(out["count"], out["n"], rate_ok, strict=True)
    ]
    out["n_flag"] = np.where(out["_n_hidden"], SUPPRESSED, "")
    out["count_flag"] = np.where(is_rate & out["_c_hidden"], SUPPRESSED, "")
    out["rate_flag"] = np.where(is_rate & ~rate_ok, SUPPRESSED, "")
    out["value_flag"] = np.where(out["kind"].isin(["mean", "median"]) & ~value_ok, SUPPRESSED, "")
    return out.drop(columns=["_n_hidden", "_c_hidden"])


def to_csv_frame(
    protected: pd.DataFrame, precision: Precision = INTERNAL_PRECISION
) -> pd.DataFrame:
    """Render a protected frame for writing: suppressed cells become ``"c"``, blanks where a
    column does not apply to the measure's kind (e.g. ``rate`` of a plain count).

    ``precision`` must be the one :func:`protect` used: rates are written with exactly its
    decimals (no spurious ``.0``), means and medians as whole numbers when rounded to >= 1.
    """
    out = pd.DataFrame({c: protected[c] for c in ["measure", "kind", *KEY_COLUMNS]})
    kind = protected["kind"]

    def fmt(col: str, flag: str, applies: pd.Series, digits: int | None) -> list[str]:
        cells = []
        for v, f, a in zip(protected[col], protected[flag], applies, strict=True):
            if not a:
                cells.append("")
            elif f == SUPPRESSED:
                cells.append(SUPPRESSED)
            elif digits is None:
                cells.append(str(int(v)))
            else:
                cells.append(f"{v:.{digits}f}")
        return cells

    # show_n False: the group size equals a numerator published elsewhere (e.g. employed
    # people behind a median pay): left out rather than shown under a second suppression.
    show_n = (
        protected["show_n"].astype(bool)
        if "show_n" in protected
        else pd.Series(True, index=protected.index)
    )
    out["n"] = fmt("n", "n_flag", show_n, None)
    out["count"] = fmt("count", "count_flag", kind == "rate", None)
    out["rate_pct"] = fmt("rate", "rate_flag", kind == "rate", precision.rate_decimals)
    value_digits = 0 if precision.value_base >= 1 else 2
    out["value"] = fmt("value", "value_flag", kind.isin(["mean", "median"]), value_digits)
    return out


def recoverable_cells(protected: pd.DataFrame) -> list[tuple[str, str, CellKey]]:
    """Cells whose suppressed count could be recovered exactly by differencing a family.

    Used by tests (and as a last check before writing): a family with exactly one hidden
    member gives that member away as parent minus the other children.
    Returns (population or measure, "n" or "count", cell key) triples.
    """
    found: list[tuple[str, str, CellKey]] = []
    df = protected.copy()
    df["_key"] = list(zip(*(df[c].astype(str) for c in KEY_COLUMNS), strict=True))
    for pop, part in df.groupby("population"):
        hidden = {k for k, f in zip(part["_key"], part["n_flag"], strict=True) if f == SUPPRESSED}
        for fam in _families(set(part["_key"])):
            unk = [c for c in fam if c in hidden]
            if len(unk) == 1:
                found.append((str(pop), "n", unk[0]))
    rates = df[df["kind"] == "rate"]
    for (m, _pop), part in rates.groupby(["measure", "population"]):
        hidden = {
            k for k, f in zip(part["_key"], part["count_flag"], strict=True) if f == SUPPRESSED
        }
        for fam in _families(set(part["_key"])):
            unk = [c for c in fam if c in hidden]
            if len(unk) == 1:
                found.append((str(m), "count", unk[0]))
    return found


# A cell a spreadsheet would run as a formula (=, +, -, @, or a tab or carriage return before
# one): CSV injection. Plain numbers ("-2.5", a gap) are data, not formulas, and are kept.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix with ``'`` every text cell a spreadsheet would evaluate (OWASP CSV injection).

    Every CSV an analyst or the public opens goes through this: a category label or group
    name from a controller's extract (``=cmd|' /C calc'!A0``, ``+SUM(A1)``, ``@HYPERLINK``)
    must arrive as text. A cell that is a plain number is left as it is.
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype != object:
            continue
        out[col] = [
            "'" + v
            if isinstance(v, str)
            and v.startswith(_FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(v)
            else v
            for v in out[col]
        ]
    return out
