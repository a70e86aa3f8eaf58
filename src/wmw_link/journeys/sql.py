"""The SQL that builds journeys: events from payloads and maps, and a person table.

Person characteristics when sources disagree (the rules, in order; see docs/outcomes.md):

* ``local_authority``: the LA of the person's most recent ``postcode_district`` (by event
  start, any source) that the district table maps to a WMCA authority; if the most recent
  district is outside the table, ``Outside WMCA``; with no district at all, the ``hub_la`` of
  the most recent hub start; else ``Unknown``.
* ``gender``: the hub's self-report, the most recent stated answer; without one, the sex an
  administrative source records (``recorded_sex``: HMRC, DWP; the most recent); then the hub's
  ``Prefer not to say``; else ``Unknown``.
* ``ethnicity``: the hub's self-report (only hubs collect it), the most recent stated answer;
  ``Prefer not to say`` only if no hub record states one; else ``Unknown``.
* ``disability``: the hub's most recent ``Yes``/``No`` self-report; without one (``Prefer not
  to say`` included), ``Yes`` if the person has a PIP claim (a disability benefit); else
  ``No``, meaning "not known to be disabled" (``disability_source`` says which rule gave the
  value: ``hub self-report``, ``PIP claim`` or ``no indicator``). Only hubs ask, so leaving
  everyone else ``Unknown`` would compare PIP claimants with hub clients, two low-employment
  groups, and hide most of the population's disability gap; and a tiny ``Prefer not to say``
  group would force secondary suppression of the ``Yes`` cells the gap needs.
* ``birth_year``: the hub's self-report first (most recent hub record), then the most recent
  record of any other source. ``age_band`` is the age reached in the ``as_of`` year.
* ``health_condition``: the most recent NHS referral's ``condition_category``; else
  ``none_recorded``.

Ties on date are broken by source name, then row order, so the result is deterministic.

``record_key`` (unsigned 64-bit) depends on the person's records, not on their person id: the
first 64 bits of the smallest md5 of (dataset id, row_ref) over their records. A person whose
records are the same under two linkages (or a person-index refresh) keeps it, so the impact
stage's random draws follow the person (docs/impact.md). Row refs are already keyed tokens.
"""

from __future__ import annotations

from wmw_link.agreement import Dataset

#: Payload fields that describe the person rather than the event; they feed persons.parquet.
PERSON_FIELDS = (
    "gender",
    "ethnicity",
    "disability",
    "birth_year",
    "postcode_district",
    "recorded_sex",
)
#: Payload fields a person's gender is taken from: the hub's self-report, a source's record.
GENDER_FIELDS = ("gender", "recorded_sex")
#: Payload fields that give an event's start date, in order of preference, and its end.
START_FIELDS = ("start_date", "support_start", "referral_date")
END_FIELDS = ("end_date",)

EVENT_TYPES = {
    "hmrc_rti": "employment",
    "dwp_claims": "benefit",
    "nhs_referrals": "health_referral",
    "skills_enrolments": "training",
}
HUB_PREFIX = "hub_"

AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 15, "under 16"),
    (16, 17, "16-17"),
    (18, 24, "18-24"),
    (25, 34, "25-34"),
    (35, 49, "35-49"),
    (50, 64, "50-64"),
    (65, 200, "65+"),
)

PERSON_COLUMNS = (
    "person_id",
    "local_authority",
    "age_band",
    "birth_year",
    "gender",
    "ethnicity",
    "disability",
    "disability_source",
    "health_condition",
    "n_sources",
    "sources",
    "record_key",
)


def event_type_of(dataset_id: str) -> str:
    """The event type of a dataset's records (hub datasets: ``hub_support``)."""
    if dataset_id.startswith(HUB_PREFIX):
        return "hub_support"
    return EVENT_TYPES.get(dataset_id, dataset_id)


def age_band(age: int | None) -> str:
    """The age band of an age in whole years (``Unknown`` for None)."""
    if age is None:
        return "Unknown"
    for lo, hi, label in AGE_BANDS:
        if lo <= age <= hi:
            return label
    return "Unknown"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _event_sql(ds: Dataset, payload_name: str, map_name: str, columns: list[str]) -> str:
    start = next((c for c in START_FIELDS if c in columns), None)
    end = next((c for c in END_FIELDS if c in columns), None)
    attrs = [c for c in columns if c not in {"row_ref", start, end, *PERSON_FIELDS}]
    sel = [
        "m.person_id AS person_id",
        f"'{ds.id}' AS source",
        f"'{event_type_of(ds.id)}' AS event_type",
        "p.row_ref AS row_ref",
        f"CAST(p.{_q(start)} AS DATE) AS start" if start else "CAST(NULL AS DATE) AS start",
        f'CAST(p.{_q(end)} AS DATE) AS "end"' if end else 'CAST(NULL AS DATE) AS "end"',
        *(f"p.{_q(c)} AS {_q(c)}" for c in attrs),
    ]
    return (
        f"SELECT {', '.join(sel)} FROM {payload_name} p JOIN {map_name} m ON p.row_ref = m.row_ref"
    )


def _attr_sql(ds: Dataset, payload_name: str, map_name: str, columns: list[str]) -> list[str]:
    """Long rows (person_id, source, is_hub, at, attribute, value) for person characteristics."""
    start = next((c for c in START_FIELDS if c in columns), None)
    at = f"CAST(p.{_q(start)} AS DATE)" if start else "CAST(NULL AS DATE)"
    is_hub = "TRUE" if ds.id.startswith(HUB_PREFIX) else "FALSE"
    out = []
    wanted = [*PERSON_FIELDS, "hub_la", "condition_category", "benefit"]
    for c in wanted:
        if c in columns:
            out.append(
                f"SELECT m.person_id, '{ds.id}' AS source, {is_hub} AS is_hub, {at} AS at_date, "
                f"p._rn AS rn, '{c}' AS attribute, CAST(p.{_q(c)} AS VARCHAR) AS value "
                f"FROM {payload_name} p JOIN {map_name} m ON p.row_ref = m.row_ref "
                f"WHERE p.{_q(c)} IS NOT NULL"
            )
    return out


_PERSONS_SQL = """
WITH a AS (SELECT * FROM attrs),
ranked AS (
  SELECT *, row_number() OVER (
      PARTITION BY person_id, attribute, pref
      ORDER BY at_date DESC NULLS LAST, source DESC, rn DESC) AS k
  FROM (
    SELECT a.*,
      CASE
        WHEN attribute IN ('gender', 'ethnicity') AND value = 'Prefer not to say' THEN 1
        WHEN attribute = 'disability' AND value = 'Prefer not to say' THEN 1
        WHEN attribute = 'birth_year' AND NOT is_hub THEN 1
        ELSE 0 END AS pref
    FROM a)
),
best AS (
  SELECT person_id, attribute,
         arg_min(value, pref) AS value
  FROM ranked WHERE k = 1 GROUP BY person_id, attribute
),
district AS (
  SELECT person_id, value AS district FROM ranked
  WHERE attribute = 'postcode_district' AND k = 1 AND pref = 0
),
hub_la AS (SELECT person_id, value AS hub_la FROM best WHERE attribute = 'hub_la'),
pip AS (SELECT DISTINCT person_id FROM attrs WHERE attribute = 'benefit' AND value = 'PIP'),
ppl AS (
  SELECT person_id, count(DISTINCT source) AS n_sources,
         string_agg(DISTINCT source, ',' ORDER BY source) AS sources,
         -- A key that follows the person's records, not the id the linkage gave them
         -- (docs/impact.md: common random numbers): the first 64 bits of the smallest
         -- md5 of (dataset, row_ref) over their records. Row refs are keyed tokens.
         CAST('0x' || substr(min(md5(source || chr(31) || row_ref)), 1, 16) AS UBIGINT)
           AS record_key
  FROM events GROUP BY person_id
)
SELECT
  ppl.person_id,
  CASE
    WHEN d.district IS NOT NULL AND dm.local_authority IS NOT NULL THEN dm.local_authority
    WHEN d.district IS NOT NULL THEN 'Outside WMCA'
    WHEN h.hub_la IS NOT NULL THEN h.hub_la
    ELSE 'Unknown' END AS local_authority,
  TRY_CAST(byr.value AS INTEGER) AS birth_year,
  CASE
    WHEN g.value IS NOT NULL AND g.value <> 'Prefer not to say' THEN g.value
    WHEN sx.value = 'F' THEN 'Female'
    WHEN sx.value = 'M' THEN 'Male'
    ELSE coalesce(g.value, 'Unknown') END AS gender,
  coalesce(e.value, 'Unknown') AS ethnicity,
  CASE
    WHEN dis.value IN ('Yes', 'No') THEN dis.value
    WHEN pip.person_id IS NOT NULL THEN 'Yes'
    ELSE 'No' END AS disability,
  CASE
    WHEN dis.value IN ('Yes', 'No') THEN 'hub self-report'
    WHEN pip.person_id IS NOT NULL THEN 'PIP claim'
    ELSE 'no indicator' END AS disability_source,
  coalesce(hc.value, 'none_recorded') AS health_condition,
  ppl.n_sources, ppl.sources, ppl.record_key
FROM ppl
LEFT JOIN district d USING (person_id)
LEFT JOIN districts dm ON upper(d.district) = dm.district
LEFT JOIN hub_la h USING (person_id)
LEFT JOIN best byr ON byr.person_id = ppl.person_id AND byr.attribute = 'birth_year'
LEFT JOIN best g ON g.person_id = ppl.person_id AND g.attribute = 'gender'
LEFT JOIN best sx ON sx.person_id = ppl.person_id AND sx.attribute = 'recorded_sex'
LEFT JOIN best e ON e.person_id = ppl.person_id AND e.attribute = 'ethnicity'
LEFT JOIN best dis ON dis.person_id = ppl.person_id AND dis.attribute = 'disability'
LEFT JOIN best hc ON hc.person_id = ppl.person_id AND hc.attribute = 'condition_category'
LEFT JOIN pip ON pip.person_id = ppl.person_id
ORDER BY ppl.person_id
"""


def _age_band_sql(as_of_year: int) -> str:
    cases = " ".join(
        f"WHEN {as_of_year} - birth_year BETWEEN {lo} AND {hi} THEN '{label}'"
        for lo, hi, label in AGE_BANDS
    )
    return f"CASE {cases} ELSE 'Unknown' END"
