"""Population measures of the plan's dashboard, on the date the data describe (``as_of``).

"Residents" are linked persons whose local authority (journeys' rule) is one of the WMCA
authorities in the district table. These are *proxies*: the denominator is the linked
population the partners' payloads reach, not the ONS resident population.

* ``employment_rate``: residents aged 16-64 in a PAYE spell on ``as_of``.
* ``health_inactivity``: residents aged 16-64 on a health-related benefit (ESA, or UC with
  limited capability for work) on ``as_of``.
* ``youth_claimants``: residents aged 18-24 on an out-of-work benefit (ESA, or UC with work
  search or no work requirements) on ``as_of``.
* ``long_term_claimants``: of residents on an out-of-work benefit on ``as_of``, those whose
  current claim started 12 months or more before.
* ``neet_16_17``: of residents with a known 16-17 participation status (NEET or EET; the
  latest skills record that has one: the skills partner records it for 16-17 year olds only,
  in status rows without course dates), those NEET. Not filtered by age on ``as_of``: the
  status rows may be older than the person's 18th birthday.
* ``bottom_half_earnings``: median monthly pay of the bottom half of employed residents aged
  16-64 (the median of pay at or below the group's median); its ``n`` is the size of that
  bottom half, so the value needs ``min_denominator`` people *in the bottom half*.
* ``hub_supported``: residents with a hub support start (any time), with ``start_month`` of the
  first hub start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import pandas as pd

from wmw_link.outcomes.measures import (
    ONE_WAY,
    PAIRS,
    aggregate,
    bottom_half_median,
    bottom_half_size,
    domains_of,
)


def resident_frame(
    con: duckdb.DuckDBPyConnection, as_of: dt.date, las: Sequence[str]
) -> pd.DataFrame:
    """One row per resident with the population features on ``as_of``."""
    d = f"DATE '{as_of.isoformat()}'"
    la_list = ", ".join("'" + la.replace("'", "''") + "'" for la in sorted(set(las))) or "''"
    return con.sql(
        f"""
        WITH emp_now AS (
          SELECT person_id, sum(pay) AS pay FROM emp WHERE start <= {d} AND stop >= {d} GROUP BY person_id
        ), claim_now AS (
          SELECT person_id, bool_or(oow) AS oow, bool_or(health) AS health,
                 bool_or(oow AND start <= CAST({d} - INTERVAL 12 MONTH AS DATE)) AS long_term
          FROM claims WHERE start <= {d} AND stop >= {d} GROUP BY person_id
        ), neet AS (
          SELECT person_id, arg_max(neet_status, coalesce(start, DATE '1900-01-01')) AS neet_status FROM events
          WHERE event_type = 'training' AND neet_status IS NOT NULL GROUP BY person_id
        ), hub AS (
          SELECT person_id, strftime(min(start), '%Y-%m') AS start_month FROM events
          WHERE event_type = 'hub_support' GROUP BY person_id
        )
        SELECT p.person_id, p.local_authority AS la, p.age_band, p.gender, p.ethnicity,
               p.disability, p.health_condition,
               e.person_id IS NOT NULL AS employed, coalesce(e.pay, 0) AS pay,
               coalesce(c.oow, FALSE) AS oow, coalesce(c.health, FALSE) AS health,
               coalesce(c.long_term, FALSE) AS long_term,
               coalesce(n.neet_status, 'Unknown') AS neet_status,
               h.person_id IS NOT NULL AS hub_client, coalesce(h.start_month, '') AS start_month
        FROM persons p
        LEFT JOIN emp_now e USING (person_id)
        LEFT JOIN claim_now c USING (person_id)
        LEFT JOIN neet n USING (person_id)
        LEFT JOIN hub h USING (person_id)
        WHERE p.local_authority IN ({la_list})
        ORDER BY p.person_id
        """
    ).df()


_WORKING_AGE = ("16-17", "18-24", "25-34", "35-49", "50-64")


def population_measures(residents: pd.DataFrame) -> pd.DataFrame:
    """All population measures in long format (before disclosure control)."""
    res = residents.copy()
    for d in (*ONE_WAY, "start_month"):
        res[d] = res[d].fillna("Unknown").astype(str)
    domains = domains_of(res, (*ONE_WAY, "start_month"))
    no_age = tuple(d for d in ONE_WAY if d != "age_band")
    no_age_pairs = tuple(p for p in PAIRS if "age_band" not in p)
    parts = []
    wa = res[res["age_band"].isin(_WORKING_AGE)]
    parts.append(aggregate(wa, table="employment_rate", measure="employment_rate", kind="rate",
                           population="residents_16_64", domains=domains, flag="employed"))  # fmt: skip
    parts.append(aggregate(wa, table="health_inactivity", measure="health_inactivity", kind="rate",
                           population="residents_16_64", domains=domains, flag="health"))  # fmt: skip
    youth = res[res["age_band"] == "18-24"]
    parts.append(aggregate(youth, table="youth_claimants", measure="youth_claimants", kind="rate",
                           population="residents_18_24", domains=domains, dims=no_age,
                           pairs=no_age_pairs, flag="oow"))  # fmt: skip
    claimants = res[res["oow"]]
    parts.append(aggregate(claimants, table="long_term_claimants", measure="long_term_claimants",
                           kind="rate", population="claimants", domains=domains, flag="long_term"))  # fmt: skip
    # The status is recorded for 16-17 year olds only (status rows carry no course dates), so the
    # population is everyone with a known status, whatever their age on as_of.
    teen = res[res["neet_status"].isin(["NEET", "EET"])].copy()
    teen["_neet"] = teen["neet_status"] == "NEET"
    parts.append(aggregate(teen, table="neet_16_17", measure="neet_16_17", kind="rate",
                           population="residents_16_17_known", domains=domains, dims=no_age,
                           pairs=no_age_pairs, flag="_neet"))  # fmt: skip
    paid = wa[wa["employed"] & (wa["pay"] > 0)]
    parts.append(aggregate(paid, table="bottom_half_earnings", measure="bottom_half_earnings",
                           kind="median", population="residents_paid", domains=domains,
                           value="pay", stat=bottom_half_median, show_n=False,
                           n_of=lambda part: bottom_half_size(part["pay"])))  # fmt: skip
    hub = res[res["hub_client"]]
    hub_domains = {**domains, "start_month": sorted(set(hub["start_month"]))}
    parts.append(aggregate(hub, table="hub_supported", measure="hub_supported", kind="count",
                           population="hub_clients", domains=hub_domains,
                           dims=(*ONE_WAY, "start_month")))  # fmt: skip
    return pd.concat(parts, ignore_index=True)
