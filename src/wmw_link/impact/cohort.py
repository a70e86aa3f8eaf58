"""Who is compared with whom: the treated, the eligible comparison pool and pseudo-starts.

* **Treated**: people whose *first* hub support start falls in the window (first month to last
  month, inclusive). Their start is that first start.
* **Comparison pool**: linked people with no hub start in the window nor in the
  ``lookback_months`` before it. Each gets a **pseudo-start**: the start date of a treated
  person drawn at random, so pseudo-starts fall in the same months, in the same proportions,
  as real ones (matching is then exact on the month).
* Pseudo-starts, and every other random draw of the stage, come from the unit's key
  (:mod:`wmw_link.impact.draws`), and units are ordered by that key, not by person id: the
  same records give the same draws however the linkage labelled them.
* Both must be **on record before the start**: some event other than a hub start (a PAYE
  spell, a claim, a referral, an enrolment) beginning before the (pseudo-)start. Eligibility
  may use nothing from after the start: a person whom the data hold only because they later
  found work (a PAYE record) would otherwise join the pool *because of* their outcome, while
  a participant is in the data through the hub whatever happens next. Participants with no
  earlier record are left out and counted (``treated_no_prior_record``).
* A person whose start (or pseudo-start) plus ``h`` months is after ``as_of`` does not count
  towards the ``h``-month outcomes.

Someone who starts support after the window stays in the pool; someone who starts inside it
never does, so the pool is selected a little on the future (docs/impact.md says how much).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from wmw_link.errors import ConfigError, InputDataError
from wmw_link.impact import draws


@dataclass(frozen=True)
class Window:
    """Start months (``YYYY-MM``, inclusive) whose first hub starts are the treated."""

    first_month: str
    last_month: str

    def bounds(self) -> tuple[dt.date, dt.date]:
        """First day of the first month, first day after the last month."""
        a = _month(self.first_month, "window first month")
        b = _month(self.last_month, "window last month")
        if b < a:
            raise ConfigError(f"window: last month {self.last_month} is before {self.first_month}")
        after = dt.date(b.year + (b.month == 12), b.month % 12 + 1, 1)
        return a, after


def _month(text: str, what: str) -> dt.date:
    try:
        y, m = text.split("-")
        return dt.date(int(y), int(m), 1)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a YYYY-MM month") from None


def default_window(con: duckdb.DuckDBPyConnection, as_of: dt.date, follow_months: int) -> Window:
    """From the first month with a hub start to the last whose starts have ``follow_months``."""
    first = con.execute(
        "SELECT min(start) FROM events WHERE event_type = 'hub_support'"
    ).fetchall()[0][0]
    if first is None:
        raise InputDataError("journeys: no hub support starts; nothing to evaluate")
    # The last month m such that a start on its last day is still followed to as_of.
    last = dt.date(as_of.year, as_of.month, 1)
    for _ in range(follow_months):
        last = dt.date(last.year - (last.month == 1), (last.month - 2) % 12 + 1, 1)
    if as_of.day < 28:  # a start late in the month would not yet have its full follow-up
        last = dt.date(last.year - (last.month == 1), (last.month - 2) % 12 + 1, 1)
    return Window(first.strftime("%Y-%m"), max(last, first.replace(day=1)).strftime("%Y-%m"))


def build_units(
    con: duckdb.DuckDBPyConnection, window: Window, lookback_months: int, seed: int
) -> pd.DataFrame:
    """One row per treated person and per eligible comparison person, with their (pseudo-)start.

    Columns: ``person_id``, ``treated`` (bool), ``start`` (date), ``support_type`` (the first
    start's, treated only), ``draw_key`` (uint64, :mod:`wmw_link.impact.draws`); ordered by
    ``draw_key``. A comparison person's pseudo-start is the treated start dates' quantile at
    their keyed uniform, so it moves only if the treated's dates do.

    Raises:
        InputDataError: no treated person in the window, or an empty comparison pool.
    """
    if lookback_months < 0:
        raise ConfigError("lookback_months must be 0 or more")
    lo, hi = window.bounds()
    draws.register_keys(con)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE hub_first AS
        SELECT person_id, min(start) AS first_start,
               arg_min(CAST(support_type AS VARCHAR), start) AS support_type
        FROM events_raw WHERE event_type = 'hub_support' AND start IS NOT NULL GROUP BY person_id
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE first_record AS SELECT person_id, min(start) AS first_record "
        "FROM events WHERE event_type <> 'hub_support' AND start IS NOT NULL GROUP BY person_id"
    )
    treated = con.execute(
        "SELECT h.person_id, h.first_start AS start, h.support_type, r.first_record, k.draw_key "
        "FROM hub_first h LEFT JOIN first_record r USING (person_id) "
        "JOIN unit_key k USING (person_id) "
        "WHERE h.first_start >= ? AND h.first_start < ? ORDER BY k.draw_key, h.person_id",
        [lo, hi],
    ).df()
    if treated.empty:
        raise InputDataError(
            f"journeys: no first hub start in the window {window.first_month}..{window.last_month}"
        )
    pool = con.execute(
        f"""
        SELECT p.person_id, r.first_record, k.draw_key FROM persons p
        LEFT JOIN first_record r USING (person_id) JOIN unit_key k USING (person_id)
        WHERE NOT EXISTS (
          SELECT 1 FROM events e WHERE e.person_id = p.person_id AND e.event_type = 'hub_support'
            AND e.start >= CAST(? AS DATE) - INTERVAL {int(lookback_months)} MONTH AND e.start < ?)
        ORDER BY k.draw_key, p.person_id
        """,
        [lo, hi],
    ).df()
    if pool.empty:
        raise InputDataError("journeys: no one without a hub start to compare with")
    # Pseudo-starts drawn from the treated's own start dates: same months, same mix of days.
    # Sorted dates and a keyed uniform: a quantile, not an index into an id-ordered list.
    starts = np.sort(pd.to_datetime(treated["start"]).to_numpy())
    u = draws.uniform(pool["draw_key"].to_numpy(np.uint64), seed, "pseudo_start")
    pool["start"] = starts[np.minimum((u * len(starts)).astype(np.int64), len(starts) - 1)]
    pool["treated"] = False
    pool["support_type"] = None
    treated["treated"] = True
    out = pd.concat([treated, pool], ignore_index=True)
    out = out.sort_values(["draw_key", "person_id"], kind="stable", ignore_index=True)
    out["start"] = pd.to_datetime(out["start"])
    on_record = pd.to_datetime(out["first_record"]) < out["start"]
    out.attrs["treated_no_prior_record"] = int((out["treated"] & ~on_record).sum())
    out.attrs["pool_no_prior_record"] = int((~out["treated"] & ~on_record).sum())
    out = out[on_record].reset_index(drop=True)
    out["start"] = out["start"].dt.date
    out["draw_key"] = out["draw_key"].astype(np.uint64)
    return out[["person_id", "treated", "start", "support_type", "draw_key"]]
