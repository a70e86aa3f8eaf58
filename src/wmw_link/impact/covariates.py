"""Pre-start covariates and post-start outcomes of every unit, from journeys only (DuckDB).

Covariates describe the person on the day before their (pseudo-)start:

* ``age_band`` (age reached in the start year), ``la`` (local authority);
* ``gender_on_record``: the person's gender if a record from a source that records sex (the
  agreement's datasets with a ``gender`` or ``recorded_sex`` payload field) began before the
  start, else ``Unknown``. The journeys' ``gender`` comes from *all* records, later ones too,
  so whether it is known says something about the future: a non-participant whose only sexed
  record is a PAYE spell that begins after the pseudo-start has a known gender *because* they
  later found work, while a participant's is known through the hub whatever happens next.
  Matching on it picked comparison people who went on to find work (on the synthetic region,
  1.3-2.3 points of the 12-month effects); ``gender`` itself is kept for the breakdowns;
* ``pip_before``: a PIP claim began before the start (the disability indicator every person can
  have; the hubs' self-reported disability exists for participants only, so matching on it
  would compare unlike records);
* ``work_12m``, ``work_24m``: months in PAYE work in the 12 / 24 months before (days / 30.44);
* ``<benefit>_12m``, ``<benefit>_24m`` for UC by regime (``uc_iws`` intensive work search,
  ``uc_lcwra``, ``uc_nwr`` no work requirements, ``uc_light`` in-work) and ``esa``;
* ``in_work_at_start``, ``oow_benefit_at_start``; ``months_since_work`` (capped at 24);
  ``any_work_24m`` (some PAYE work in the 24 months before: an exact-matching variable);
* ``work_month_1`` .. ``work_month_3``: in PAYE work on some day of the 1st / 2nd / 3rd
  calendar month before the start month; ``months_out`` (banded): calendar months from the
  last month with work to the start month (0 if in work the day before). Records are kept by
  month and referrals follow them: a job that ended on the 2nd of last month and one that
  ended on the 30th of the month before are a day apart in days, but not in the monthly
  record a work coach (or a referral rule) reads; matching on days alone left participants
  compared with people who were still in work last month;
* ``nhs_referral_24m``, ``nhs_referral_ever``: an NHS WorkWell/IPS referral before the start;
* ``last_pay_band``: monthly pay of the latest employment that began before the start.

Ethnicity is not a covariate: only the hubs record it, so it is known for participants and
unknown for nearly everyone else (docs/impact.md).

Outcomes: ``employed_<h>m`` (in a PAYE spell h months on), month-by-month employment and
earnings for the sustained-employment presets, ``on_benefit_<h>m`` (an out-of-work benefit h
months on), ``earnings_<h>m`` (earnings in month h), and ``followed_<h>m``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import duckdb
import numpy as np
import pandas as pd

from wmw_link.agreement import Agreement
from wmw_link.journeys.sql import GENDER_FIELDS
from wmw_link.outcomes.cohort import OUT_OF_WORK_SQL, age_band_sql

HORIZONS = (6, 12)
CALENDAR_MONTHS = (1, 2, 3)  # work in each of these calendar months before the start month
MONTHS = max(HORIZONS)
_OPEN = "DATE '9999-12-31'"
_DAYS_PER_MONTH = 30.4375

#: (name, SQL condition on benefit claims) for time-on-benefit covariates.
BENEFITS = (
    ("uc_iws", "benefit = 'UC' AND regime = 'intensive_work_search'"),
    ("uc_lcwra", "benefit = 'UC' AND regime = 'health_lcwra'"),
    ("uc_nwr", "benefit = 'UC' AND regime = 'no_work_requirements'"),
    ("uc_light", "benefit = 'UC' AND regime = 'light_touch'"),
    ("esa", "benefit = 'ESA'"),
)
PAY_BANDS = ((0, "none"), (1, "under 1000"), (1000, "1000-1499"), (1500, "1500-1999"),
             (2000, "2000-2999"), (3000, "3000+"))  # fmt: skip
#: Bands of the history measures: the propensity model is linear in its inputs, and the chance
#: of starting support is far from linear in months out of work.
BANDS = {
    "months_since_work": (0, 1, 3, 6, 12, 24),
    "months_out": (0, 1, 2, 3, 4, 5, 6, 12),
    "work_12m": (0, 1, 3, 6, 9, 11.5),
    "work_24m": (0, 1, 6, 12, 18, 23.5),
    "uc_iws_12m": (0, 1, 3, 6, 9, 11.5),
    "uc_lcwra_12m": (0, 1, 6, 11.5),
}
CATEGORICAL = ("age_band", "gender_on_record", "last_pay_band", *(f"{c}_band" for c in BANDS))
NUMERIC = (
    "pip_before",
    "work_12m",
    "work_24m",
    *(f"{b}_{w}m" for b, _ in BENEFITS for w in (12, 24)),
    "in_work_at_start",
    "oow_benefit_at_start",
    "months_since_work",
    *(f"work_month_{k}" for k in CALENDAR_MONTHS),
    "months_out",
    "nhs_referral_24m",
    "nhs_referral_ever",
)


def _months_in(cond: str, months: int) -> str:
    """SQL: months (days / 30.44) of ``source`` spells meeting ``cond`` in the window before."""
    lo = f"CAST(u.start - INTERVAL {months} MONTH AS DATE)"
    return (
        f"coalesce(sum(CASE WHEN {cond} THEN greatest(0, "
        f"least(s.stop + 1, u.start) - greatest(s.start, {lo})) END), 0) / {_DAYS_PER_MONTH}"
    )


#: Payload fields from which journeys take a person's gender (docs/outcomes.md).
SEX_FIELDS = GENDER_FIELDS


def sex_sources(agreement: Agreement) -> list[str]:
    """Datasets whose analyst payload records sex (a field named in :data:`SEX_FIELDS`)."""
    return [d.id for d in agreement.datasets
            if any(f.name in SEX_FIELDS for f in d.analyst_payload())]  # fmt: skip


def register_sex_records(con: duckdb.DuckDBPyConnection, sources: Collection[str] | None) -> None:
    """Table ``sex_record(person_id, first_sex_record)``: the first day a record from a source
    that records sex began (``None``: every source counts). Gender is a covariate only from
    that day on, for the censoring model too."""
    where = "start IS NOT NULL"
    if sources is not None:
        con.register("sex_sources_in", pd.DataFrame({"source": sorted(sources)}, dtype=object))
        where += " AND source IN (SELECT source FROM sex_sources_in)"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sex_record AS SELECT person_id, min(start) AS "
        f"first_sex_record FROM events WHERE {where} GROUP BY person_id"
    )


def features(
    con: duckdb.DuckDBPyConnection,
    units: pd.DataFrame,
    as_of: dt.date,
    sex_sources: Collection[str] | None = None,
) -> pd.DataFrame:
    """Covariates and outcomes of each unit (one row per unit, in ``units`` order).

    ``sex_sources``: datasets that record sex (:func:`sex_sources`); None: every source.
    """
    register_sex_records(con, sex_sources)
    con.register("units_in", units[["person_id", "start"]])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE units AS SELECT person_id, CAST(start AS DATE) AS start "
        "FROM units_in"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE spells AS "
        f'SELECT person_id, start, coalesce("end", {_OPEN}) AS stop, coalesce(monthly_pay, 0) AS pay, '
        "'work' AS kind, NULL AS benefit, NULL AS regime FROM events "
        "WHERE event_type = 'employment' AND start IS NOT NULL "
        "UNION ALL "
        f"SELECT person_id, start, coalesce(\"end\", {_OPEN}), 0, 'benefit', benefit, regime "
        "FROM events WHERE event_type = 'benefit' AND start IS NOT NULL"
    )
    work = "kind = 'work'"
    before = [f"{_months_in(work, w)} AS work_{w}m" for w in (12, 24)]
    month0 = "date_trunc('month', u.start)"
    before += [
        f"bool_or({work} AND s.start < {month0} - INTERVAL {k - 1} MONTH "
        f"AND s.stop >= {month0} - INTERVAL {k} MONTH) AS work_month_{k}"
        for k in CALENDAR_MONTHS
    ]
    for name, cond in BENEFITS:
        claim = f"kind = 'benefit' AND {cond}"
        before += [f"{_months_in(claim, w)} AS {name}_{w}m" for w in (12, 24)]
    hist = con.sql(
        f"""
        SELECT u.person_id, {", ".join(before)},
          bool_or(kind = 'work' AND s.start <= u.start - 1 AND s.stop >= u.start - 1) AS in_work_at_start,
          bool_or(kind = 'benefit' AND {OUT_OF_WORK_SQL} AND s.start <= u.start - 1
                  AND s.stop >= u.start - 1) AS oow_benefit_at_start,
          bool_or(kind = 'benefit' AND benefit = 'PIP' AND s.start < u.start) AS pip_before,
          max(CASE WHEN kind = 'work' AND s.start < u.start THEN least(s.stop, u.start - 1) END)
            AS last_work_day,
          arg_max(CASE WHEN kind = 'work' THEN s.pay END,
                  CASE WHEN kind = 'work' AND s.start < u.start THEN s.start END) AS last_pay
        FROM units u LEFT JOIN spells s ON s.person_id = u.person_id
          AND s.start < u.start AND s.stop >= CAST(u.start - INTERVAL 24 MONTH AS DATE) - 1
        GROUP BY u.person_id
        """
    ).df()
    person = con.sql(
        f"""
        SELECT u.person_id, {age_band_sql("year(u.start) - p.birth_year")} AS age_band,
          coalesce(p.gender, 'Unknown') AS gender,
          CASE WHEN sr.first_sex_record < u.start THEN coalesce(p.gender, 'Unknown')
               ELSE 'Unknown' END AS gender_on_record,
          coalesce(p.local_authority, 'Unknown') AS la,
          coalesce(p.ethnicity, 'Unknown') AS ethnicity, coalesce(p.disability, 'Unknown') AS disability,
          (SELECT count(*) > 0 FROM events r WHERE r.person_id = u.person_id
             AND r.event_type = 'health_referral' AND r.start < u.start
             AND r.start >= CAST(u.start - INTERVAL 24 MONTH AS DATE)) AS nhs_referral_24m,
          (SELECT count(*) > 0 FROM events r WHERE r.person_id = u.person_id
             AND r.event_type = 'health_referral' AND r.start < u.start) AS nhs_referral_ever
        FROM units u JOIN persons p USING (person_id)
        LEFT JOIN sex_record sr ON sr.person_id = u.person_id
        """
    ).df()
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE months AS
        SELECT u.person_id, r.m,
               CAST(u.start + to_months(CAST(r.m - 1 AS INTEGER)) AS DATE) AS ms,
               CAST(u.start + to_months(CAST(r.m AS INTEGER)) AS DATE) AS me
        FROM units u, range(1, {MONTHS + 1}) r(m)
        """
    )
    monthly = con.sql(
        """
        SELECT mo.person_id, mo.m, count(s.person_id) > 0 AS employed,
          coalesce(sum(s.pay * (least(s.stop + 1, mo.me) - greatest(s.start, mo.ms)) * 12 / 365.25), 0)
            AS earnings
        FROM months mo LEFT JOIN spells s
          ON s.person_id = mo.person_id AND s.kind = 'work' AND s.start < mo.me AND s.stop >= mo.ms
        GROUP BY mo.person_id, mo.m
        """
    ).df()
    points = []
    for h in HORIZONS:
        at = f"CAST(u.start + to_months({h}) AS DATE)"
        points.append(
            f"bool_or(s.kind = 'work' AND s.start <= {at} AND s.stop >= {at}) AS employed_{h}m, "
            f"bool_or(s.kind = 'benefit' AND {OUT_OF_WORK_SQL} AND s.start <= {at} "
            f"AND s.stop >= {at}) AS on_benefit_{h}m, "
            f"{at} <= DATE '{as_of.isoformat()}' AS followed_{h}m"
        )
    after = con.sql(
        f"SELECT u.person_id, {', '.join(points)} FROM units u LEFT JOIN spells s "
        "ON s.person_id = u.person_id AND s.stop >= u.start GROUP BY u.person_id, u.start"
    ).df()

    out = units.set_index("person_id")
    out = out.join(person.set_index("person_id")).join(hist.set_index("person_id"))
    out = out.join(after.set_index("person_id"))
    emp = monthly.pivot(index="person_id", columns="m", values="employed")
    earn = monthly.pivot(index="person_id", columns="m", values="earnings")
    emp = emp.reindex(index=out.index, columns=range(1, MONTHS + 1)).fillna(False).astype(bool)
    earn = earn.reindex(index=out.index, columns=range(1, MONTHS + 1)).fillna(0.0).astype(float)
    out = out.reset_index()
    for m in range(1, MONTHS + 1):
        out[f"emp_{m}"] = emp[m].to_numpy()
        out[f"earn_{m}"] = earn[m].to_numpy()
    for c in ("in_work_at_start", "oow_benefit_at_start", "pip_before", "nhs_referral_24m",
              *(f"work_month_{k}" for k in CALENDAR_MONTHS),
              "nhs_referral_ever", *(f"employed_{h}m" for h in HORIZONS),
              *(f"on_benefit_{h}m" for h in HORIZONS)):  # fmt: skip
        out[c] = out[c].fillna(False).astype(bool)
    start = pd.to_datetime(out["start"])
    last = pd.to_datetime(out["last_work_day"])
    since = ((start - last).dt.days / _DAYS_PER_MONTH).fillna(24.0)
    out["months_since_work"] = since.clip(0, 24).where(~out["in_work_at_start"], 0.0)
    months_out = (start.dt.year - last.dt.year) * 12 + start.dt.month - last.dt.month
    out["any_work_24m"] = out["work_24m"].to_numpy(float) > 0
    out["months_out"] = months_out.fillna(25.0).clip(0, 25).where(~out["in_work_at_start"], 0.0)
    pay = out["last_pay"].astype(float).fillna(0.0)
    bands = np.array([lo for lo, _ in PAY_BANDS], dtype=float)
    labels = np.array([lab for _, lab in PAY_BANDS], dtype=object)
    idx = np.searchsorted(bands, pay.to_numpy(), side="right") - 1
    out["last_pay_band"] = np.where(pay.to_numpy() > 0, labels[np.maximum(idx, 1)], "none")
    for h in HORIZONS:
        out[f"earnings_{h}m"] = out[f"earn_{h}"]
    for c, edges in BANDS.items():
        i = np.searchsorted(np.array(edges, dtype=float), out[c].to_numpy(float), side="left")
        out[f"{c}_band"] = np.array([f"b{j}" for j in range(len(edges) + 1)], dtype=object)[i]
    return out.drop(columns=["last_work_day", "last_pay"])
