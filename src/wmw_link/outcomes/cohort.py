"""The support cohort and each member's month-by-month record after their start (DuckDB).

Cohort: every person with a hub support start (``hub_support`` events) or an NHS employment
programme referral (``health_referral`` events: WorkWell, IPS). A person's cohort start is their
*first* such start; ``programme`` says which kind it was (``hub`` or the NHS service), and
``start_month`` (``YYYY-MM``) and ``start_quarter`` (``YYYY-Qn``) place them in an intake.

For each member, month ``m`` after the start is ``[start + (m-1) months, start + m months)``.
Features (one row per member):

* ``emp_1 .. emp_H``: any PAYE employment spell overlaps month m (several employers count once);
* ``earn_1 .. earn_H``: earnings in month m: each spell's monthly pay pro-rated by the days of
  month m it covers, summed;
* ``employed_at_0``, ``employed_at_6``, ``employed_at_12``: a spell covers the start date, or
  the date 6 / 12 months after it;
* ``pay_before``: monthly pay of the spells covering the day before the start; ``pay_at_6``,
  ``pay_at_12``: monthly pay of the spells covering the horizon date;
* ``oow_at_0``, ``oow_at_6``, ``oow_at_12``: on an out-of-work benefit (see
  :data:`OUT_OF_WORK_SQL`) on that date;
* ``followed_6``, ``followed_12``: the horizon date is on or before the data's ``as_of`` date
  (only these members count towards the horizon's measures).

A spell without an end date is open (still running at ``as_of``).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pyarrow as pa

from wmw_link.journeys import AGE_BANDS

HORIZONS = (6, 12)
MONTHS = max(HORIZONS)

#: Out-of-work benefits: ESA, and Universal Credit in a regime with work-search or no work
#: requirements (light-touch UC is claimed in work; PIP is not an out-of-work benefit).
OUT_OF_WORK_SQL = (
    "(benefit = 'ESA' OR (benefit = 'UC' AND regime IN "
    "('intensive_work_search', 'health_lcwra', 'no_work_requirements')))"
)
#: Health-related benefit regimes: ESA, or UC with limited capability for work (LCWRA).
HEALTH_RELATED_SQL = "(benefit = 'ESA' OR (benefit = 'UC' AND regime = 'health_lcwra'))"

_OPEN_END = "DATE '9999-12-31'"


def age_band_sql(age_expr: str) -> str:
    """SQL CASE giving the age band label of an age expression."""
    cases = " ".join(
        f"WHEN {age_expr} BETWEEN {lo} AND {hi} THEN '{label}'" for lo, hi, label in AGE_BANDS
    )
    return f"CASE {cases} ELSE 'Unknown' END"


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    con.execute(sql).fetchall()


def register(con: duckdb.DuckDBPyConnection, events: pa.Table, persons: pa.Table) -> None:
    """Register the journeys tables and the helper views the measures use."""
    con.register("events_raw", events)
    con.register("persons", persons)
    cols = set(events.column_names)

    def col(name: str, typ: str) -> str:
        return (
            f"CAST({name} AS {typ}) AS {name}" if name in cols else f"CAST(NULL AS {typ}) AS {name}"
        )

    _run(
        con,
        "CREATE OR REPLACE TEMP VIEW events AS SELECT person_id, source, event_type, start, "
        '"end", '
        + ", ".join(
            [
                col("monthly_pay", "DOUBLE"),
                col("benefit", "VARCHAR"),
                col("regime", "VARCHAR"),
                col("service", "VARCHAR"),
                col("neet_status", "VARCHAR"),
                col("hub_la", "VARCHAR"),
            ]
        )
        + " FROM events_raw",
    )
    _run(
        con,
        "CREATE OR REPLACE TEMP VIEW emp AS SELECT person_id, start, "
        f'coalesce("end", {_OPEN_END}) AS stop, coalesce(monthly_pay, 0) AS pay '
        "FROM events WHERE event_type = 'employment' AND start IS NOT NULL",
    )
    _run(
        con,
        "CREATE OR REPLACE TEMP VIEW claims AS SELECT person_id, start, "
        f'coalesce("end", {_OPEN_END}) AS stop, benefit, regime, '
        f"{OUT_OF_WORK_SQL} AS oow, {HEALTH_RELATED_SQL} AS health "
        "FROM events WHERE event_type = 'benefit' AND start IS NOT NULL",
    )


def build_cohort(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    """One row per cohort member: start, programme, characteristics and features."""
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE cohort AS
        WITH starts AS (
          SELECT person_id, start,
                 CASE WHEN event_type = 'hub_support' THEN 'hub' ELSE coalesce(service, 'nhs') END AS programme,
                 row_number() OVER (PARTITION BY person_id ORDER BY start, event_type, source) AS k
          FROM events
          WHERE start IS NOT NULL AND event_type IN ('hub_support', 'health_referral')
        )
        SELECT s.person_id, s.start, s.programme, strftime(s.start, '%Y-%m') AS start_month,
               strftime(s.start, '%Y') || '-Q' || CAST(quarter(s.start) AS VARCHAR) AS start_quarter,
               p.local_authority AS la, p.gender, p.ethnicity, p.disability, p.health_condition,
               {age_band_sql("year(s.start) - p.birth_year")} AS age_band
        FROM starts s JOIN persons p USING (person_id) WHERE k = 1
        """,
    )
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE months AS
        SELECT c.person_id, r.m,
               CAST(c.start + to_months(CAST(r.m - 1 AS INTEGER)) AS DATE) AS ms,
               CAST(c.start + to_months(CAST(r.m AS INTEGER)) AS DATE) AS me
        FROM cohort c, range(1, {MONTHS + 1}) r(m)
        """,
    )
    monthly = con.sql(
        """
        SELECT mo.person_id, mo.m,
               count(e.person_id) > 0 AS employed,
               coalesce(sum(e.pay * (least(e.stop + 1, mo.me) - greatest(e.start, mo.ms)) * 12 / 365.25), 0)
                 AS earnings
        FROM months mo LEFT JOIN emp e
          ON e.person_id = mo.person_id AND e.start < mo.me AND e.stop >= mo.ms
        GROUP BY mo.person_id, mo.m
        """
    ).df()
    points = []
    for h in (0, *HORIZONS):
        at = "c.start" if h == 0 else f"CAST(c.start + to_months({h}) AS DATE)"
        points.append(
            f"""
            (SELECT count(*) > 0 FROM emp e WHERE e.person_id = c.person_id AND e.start <= {at} AND e.stop >= {at})
              AS employed_at_{h},
            (SELECT count(*) > 0 FROM claims b WHERE b.person_id = c.person_id AND b.oow
               AND b.start <= {at} AND b.stop >= {at}) AS oow_at_{h}"""
        )
        if h:
            points.append(
                f"""
            (SELECT coalesce(sum(pay), 0) FROM emp e WHERE e.person_id = c.person_id
               AND e.start <= {at} AND e.stop >= {at}) AS pay_at_{h},
            {at} <= DATE '{as_of.isoformat()}' AS followed_{h}"""
            )
    base = con.sql(
        f"""
        SELECT c.*,
          (SELECT coalesce(sum(pay), 0) FROM emp e WHERE e.person_id = c.person_id
             AND e.start <= c.start - 1 AND e.stop >= c.start - 1) AS pay_before,
          {",".join(points)}
        FROM cohort c ORDER BY c.person_id
        """
    ).df()
    if base.empty:
        for m in range(1, MONTHS + 1):
            base[f"emp_{m}"] = pd.Series(dtype=bool)
            base[f"earn_{m}"] = pd.Series(dtype=float)
        return base
    emp = monthly.pivot(index="person_id", columns="m", values="employed").reindex(
        columns=range(1, MONTHS + 1)
    )
    earn = monthly.pivot(index="person_id", columns="m", values="earnings").reindex(
        columns=range(1, MONTHS + 1)
    )
    emp.columns = [f"emp_{m}" for m in emp.columns]
    earn.columns = [f"earn_{m}" for m in earn.columns]
    out = (
        base.set_index("person_id")
        .join(emp.fillna(False).astype(bool))
        .join(earn.fillna(0.0).astype(float))
    )
    out = out.reset_index()
    out["start"] = pd.to_datetime(out["start"]).dt.date
    return out
