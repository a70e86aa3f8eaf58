"""Journeys: the partners' payloads joined to the trusted third party's person ids.

The analysis environment receives, per dataset, ``<dataset>.payload.parquet`` (``row_ref`` and
the agreement's analyst payload fields) with its manifest, and the TTP's
``<dataset>.map.parquet`` (``row_ref`` -> ``person_id``). It never sees an identifier, plain or
hashed: token files, and any file with a token column, are refused.

:func:`build_journeys` writes

* ``events.parquet``: one row per payload record that has a person id: ``person_id``,
  ``source`` (dataset id), ``event_type``, ``start``, ``end`` and the event's attributes
  (employer_ref, monthly_pay, benefit, regime, service, condition_category, course_level,
  achieved, neet_status, support_type, hub_la, ... as the agreement names them);
* ``persons.parquet``: one row per person with the characteristics the payloads carry;
* ``journeys-manifest.json``: agreement, inputs by hash, counts, the data's ``as_of`` date.

The three files are written into a temporary sibling folder and swapped into place together
(:mod:`wmw_link.outdir`), so they appear together or not at all.

Maps must come from the linkage run that linked these payloads' tokens. A maps directory must
hold the TTP's ``link-manifest.json``: every ``<dataset>.map.parquet`` must be listed there
with its SHA-256 (a map left from an earlier run is refused), and the tokens SHA-256 the link
run took as input for a dataset must equal the ``files.tokens.sha256`` the dataset's payload
manifest records (else the maps come from another run). Every payload row must have a person
id in its map.

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
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from wmw_link import __version__
from wmw_link.agreement import Agreement, Dataset, Role
from wmw_link.errors import InputDataError, PolicyError, VerificationError
from wmw_link.files import sha256_file, write_json_atomic, write_parquet_atomic
from wmw_link.outdir import check_out_dir, staged_dir
from wmw_link.token_schema import BY_NAME as TOKEN_COLUMNS

PAYLOAD_SUFFIX = ".payload.parquet"
MAP_SUFFIX = ".map.parquet"
MANIFEST_SUFFIX = ".manifest.json"
TOKENS_SUFFIX = ".tokens.parquet"
#: The TTP's manifest of a linkage run; it must sit beside the maps.
LINK_MANIFEST = "link-manifest.json"
LINK_MANIFEST_KIND = "wmw-link/link-manifest"
JOURNEYS_MANIFEST = "journeys-manifest.json"
#: Everything build_journeys writes (the output folder is replaced as a whole).
JOURNEYS_FILES = ("events.parquet", "persons.parquet", JOURNEYS_MANIFEST)
_EXPECTS = {
    "payload": f"<dataset>{PAYLOAD_SUFFIX} files and their <dataset>{MANIFEST_SUFFIX}",
    "map": f"<dataset>{MAP_SUFFIX} files and the TTP's {LINK_MANIFEST}",
}
#: Controller-local files (record id crosswalks, rejects) that must never reach analysts.
LOCAL_SUFFIXES = (".crosswalk.parquet", ".rejects.parquet")

#: Payload fields that describe the person rather than the event; they feed persons.parquet.
PERSON_FIELDS = (
    "gender",
    "ethnicity",
    "disability",
    "birth_year",
    "postcode_district",
    "recorded_sex",
)
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
)


@dataclass
class JourneysResult:
    """What :func:`build_journeys` produced."""

    events: pa.Table
    persons: pa.Table
    as_of: dt.date
    counts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    @property
    def events_path(self) -> Path | None:
        return self.out_dir / "events.parquet" if self.out_dir else None

    @property
    def persons_path(self) -> Path | None:
        return self.out_dir / "persons.parquet" if self.out_dir else None


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


def load_districts(path: str | Path | None = None) -> dict[str, str]:
    """Postcode district -> local authority, from ``path`` or the packaged table.

    The table is a CSV with ``district`` and ``local_authority`` columns.
    """
    if path is None:
        ref = resources.files("wmw_link") / "data" / "postcode_districts.csv"
        text = ref.read_text(encoding="utf-8")
        source = "wmw_link/data/postcode_districts.csv"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise InputDataError(
                f"{path}: cannot read the district table ({type(e).__name__})"
            ) from None
        source = str(path)
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"district", "local_authority"} <= set(rows[0]):
        raise InputDataError(f"{source}: needs columns 'district' and 'local_authority'")
    return {r["district"].strip().upper(): r["local_authority"].strip() for r in rows}


# -- input checks ---------------------------------------------------------------------------


def _refuse_tokens(dataset: str, where: str, columns: list[str]) -> None:
    tokens = sorted(c for c in columns if c in TOKEN_COLUMNS)
    if tokens:
        raise PolicyError(
            f"rule 'separation': {where} ({dataset}) holds token column(s) "
            f"{', '.join(tokens[:5])}; an analyst never opens tokens"
        )


def _check_payload_columns(ds: Dataset, where: str, columns: list[str]) -> None:
    _refuse_tokens(ds.id, where, columns)
    if "row_ref" not in columns:
        raise InputDataError(f"{where}: payload of {ds.id} lacks column 'row_ref'")
    allowed = {f.name for f in ds.analyst_payload()} | {"row_ref"}
    withheld = sorted({f.name for f in ds.payload if not f.to_analyst} & set(columns))
    if withheld:
        raise PolicyError(
            f"rule 'payload': {where} holds field(s) {', '.join(withheld)} that dataset {ds.id} "
            "withholds from analysts (to_analyst: false)"
        )
    extra = sorted(set(columns) - allowed)
    if extra:
        raise PolicyError(
            f"rule 'payload': {where} holds column(s) {', '.join(extra)} that the agreement does "
            f"not name as analyst payload of {ds.id}"
        )


def _check_agreement(agreement: Agreement, path: Path, man: dict[str, Any]) -> None:
    """Refuse a manifest made under another agreement, an unaccepted version or text."""
    ag = man.get("agreement") or {}
    if not isinstance(ag, dict) or ag.get("id") != agreement.id:
        got = ag.get("id") if isinstance(ag, dict) else None
        raise PolicyError(
            f"rule 'agreement': {path.name} was made under agreement {got!r}, not {agreement.id!r}"
        )
    if not isinstance(ag.get("version"), int) or not agreement.accepts_version(ag["version"]):
        raise PolicyError(
            f"rule 'version': {path.name} was made under {agreement.id} v{ag.get('version')}, "
            f"which v{agreement.version} does not accept"
        )
    stated_hash = ag.get("hash")
    if ag["version"] == agreement.version and stated_hash and stated_hash != agreement.hash:
        raise PolicyError(
            f"rule 'agreement hash': {path.name} was made under another text of "
            f"{agreement.id} v{agreement.version} (the agreement hash differs)"
        )


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VerificationError(f"{path}: unreadable {what} ({type(e).__name__})") from None
    if not isinstance(man, dict):
        raise VerificationError(f"{path}: unreadable {what} (not a JSON object)")
    return man


def _check_manifest(agreement: Agreement, ds_id: str, payload_path: Path) -> dict[str, Any]:
    path = payload_path.with_name(ds_id + MANIFEST_SUFFIX)
    if not path.exists():
        raise VerificationError(f"{payload_path}: no manifest {path.name} beside it")
    man = _read_json(path, "manifest")
    _check_agreement(agreement, path, man)
    if man.get("dataset") not in (None, ds_id):
        raise VerificationError(f"{path.name}: manifest is for dataset {man.get('dataset')!r}")
    want = ((man.get("files") or {}).get("payload") or {}).get("sha256")
    if want and want != sha256_file(payload_path):
        raise VerificationError(
            f"{payload_path.name}: SHA-256 differs from its manifest {path.name}"
        )
    return man


def require_dir(directory: Path, what: str, expects: str) -> None:
    """Refuse a missing input directory, or a file given where a directory is expected.

    Raises:
        InputDataError: naming the path, whether it is missing or a file, and what is expected.
    """
    if directory.is_file():
        raise InputDataError(
            f"{directory}: is a file, not a directory; expected the {what} directory holding "
            f"{expects} (give the folder, not one file in it)"
        )
    if not directory.is_dir():
        raise InputDataError(f"{directory}: {what} directory not found (expected {expects})")


def _load_link_manifest(agreement: Agreement, directory: Path) -> tuple[dict[str, Any], Path]:
    """The TTP's link manifest beside the maps, checked against the agreement."""
    path = directory / LINK_MANIFEST
    if not path.is_file():
        raise VerificationError(
            f"{path}: not found; the TTP's {LINK_MANIFEST} must be beside the maps (it lists "
            "each map's SHA-256 and the tokens the linkage run read, so that stale maps and maps "
            "from another linkage run are refused)"
        )
    man = _read_json(path, "link manifest")
    if man.get("kind") != LINK_MANIFEST_KIND:
        raise VerificationError(f"{path}: not a link manifest (kind {man.get('kind')!r})")
    _check_agreement(agreement, path, man)
    for key in ("inputs", "outputs"):
        if not isinstance(man.get(key), dict):
            raise VerificationError(f"{path}: the link manifest lists no {key}")
    return man, path


def _check_map_file(link_man: dict[str, Any], link_path: Path, ds_id: str, path: Path) -> None:
    """A map file must be one the link manifest lists, with the SHA-256 it lists."""
    entry = link_man["outputs"].get(ds_id)
    if not isinstance(entry, dict) or entry.get("name", path.name) != path.name:
        raise VerificationError(
            f"{path}: not listed in {link_path.name}; a map left from an earlier linkage run? "
            f"Every map must come from the run {link_path.name} describes: remove this file"
        )
    if entry.get("sha256") != sha256_file(path):
        raise VerificationError(
            f"{path}: SHA-256 differs from {link_path.name}; the map comes from another linkage "
            f"run than {link_path.name} describes (a stale map?), or was altered"
        )


def _check_same_run(
    ds_id: str, pay_man: dict[str, Any], pay_path: Path, link_man: dict[str, Any], link_path: Path
) -> None:
    """The link run's input tokens for ``ds_id`` must be the tokens the payload came with."""
    man_name = ds_id + MANIFEST_SUFFIX
    want = ((pay_man.get("files") or {}).get("tokens") or {}).get("sha256")
    if not want:
        raise VerificationError(
            f"{pay_path.with_name(man_name)}: records no files.tokens.sha256, so the payload of "
            f"{ds_id} cannot be matched to the linkage run that made its map"
        )
    got = (((link_man["inputs"].get(ds_id) or {}).get("tokens")) or {}).get("sha256")
    if got != want:
        why = (
            f"{link_path} lists no {ds_id} input"
            if got is None
            else f"{link_path} says that run linked other {ds_id} tokens than the payload's "
            f"{man_name} records (tokens SHA-256 differs)"
        )
        raise VerificationError(
            f"dataset {ds_id}: the maps come from another linkage run: {why}; use the maps and "
            f"{LINK_MANIFEST} of the run that linked these payloads' tokens"
        )


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise InputDataError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None


@dataclass
class _Inputs:
    """Tables read from a directory (or given as a mapping), with what vouches for them."""

    tables: dict[str, pa.Table]
    paths: dict[str, Path] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # payload manifests
    link_manifest: dict[str, Any] | None = None  # maps directory only
    link_path: Path | None = None


def _load_dir(
    agreement: Agreement, directory: Path, suffix: str, what: str, manifests: bool
) -> _Inputs:
    require_dir(directory, what, _EXPECTS[what])
    tokens = sorted(directory.glob("*" + TOKENS_SUFFIX))
    if tokens:
        raise PolicyError(
            f"rule 'separation': {directory} holds token file {tokens[0].name}; an analyst "
            "never opens tokens (remove token files from the analysis environment)"
        )
    local = sorted(p for suffix in LOCAL_SUFFIXES for p in directory.glob("*" + suffix))
    if local:
        raise PolicyError(
            f"rule 'separation': {directory} holds {local[0].name}, which stays with its "
            "controller (record ids, rejected rows); remove it from the analysis environment"
        )
    got = _Inputs({})
    if suffix == MAP_SUFFIX:
        got.link_manifest, got.link_path = _load_link_manifest(agreement, directory)
    for path in sorted(directory.glob("*" + suffix)):
        ds_id = path.name[: -len(suffix)]
        agreement.dataset(ds_id)  # PolicyError if the agreement does not name it
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid) as e:
            raise InputDataError(
                f"{path}: not a readable Parquet file ({type(e).__name__})"
            ) from None
        _refuse_tokens(ds_id, str(path), schema.names)  # before reading any data
        if got.link_manifest is not None and got.link_path is not None:
            _check_map_file(got.link_manifest, got.link_path, ds_id, path)
        elif manifests:
            got.manifests[ds_id] = _check_manifest(agreement, ds_id, path)
        got.tables[ds_id] = _read_parquet(path)
        got.paths[ds_id] = path
    return got


def _as_tables(
    agreement: Agreement,
    source: str | Path | Mapping[str, pa.Table],
    suffix: str,
    what: str,
    manifests: bool,
) -> _Inputs:
    if isinstance(source, Mapping):
        for ds_id in source:
            agreement.dataset(ds_id)
        return _Inputs({k: _to_arrow(v) for k, v in source.items()})
    return _load_dir(agreement, Path(source), suffix, what, manifests)


def _to_arrow(table: Any) -> pa.Table:
    """An Arrow table from an Arrow table, a DuckDB relation or a pandas DataFrame."""
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "to_arrow_table"):  # DuckDB relation
        return table.to_arrow_table()
    return pa.Table.from_pandas(table, preserve_index=False)


# -- building -------------------------------------------------------------------------------


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run a statement to completion (DuckDB 2 keeps a pending result open until fetched)."""
    con.execute(sql).fetchall()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The single value a query returns."""
    return con.execute(sql).fetchall()[0][0]


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
         string_agg(DISTINCT source, ',' ORDER BY source) AS sources
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
  ppl.n_sources, ppl.sources
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


def build_journeys(
    agreement: Agreement,
    payloads: str | Path | Mapping[str, pa.Table],
    maps: str | Path | Mapping[str, pa.Table],
    out_dir: str | Path | None = None,
    party: str | None = None,
    *,
    districts: str | Path | Mapping[str, str] | None = None,
    as_of: dt.date | None = None,
    require_manifests: bool = True,
) -> JourneysResult:
    """Join payloads to person ids: an event table and a person table.

    Args:
        agreement: the data-sharing agreement (checked: in force, ``party`` is an analyst,
            manifests made under an accepted version, only analyst payload fields present).
        payloads: a directory of ``<dataset>.payload.parquet`` (+ ``.manifest.json``) files, or
            a mapping dataset id -> table (Arrow, DuckDB relation or pandas; row_ref +
            payload fields).
        maps: a directory of ``<dataset>.map.parquet`` files and the TTP's
            ``link-manifest.json`` (required: it must list every map with its SHA-256, and its
            input tokens must be those the payload manifests record), or a mapping dataset id ->
            Arrow table (row_ref, person_id), which the caller vouches for.
        out_dir: where to write events.parquet, persons.parquet and journeys-manifest.json
            (nothing is written when None). The folder is replaced as a whole, and only once
            all three files are written; it may hold only a previous journeys output.
        party: the analyst party; the agreement's only analyst when None.
        districts: postcode district -> LA table (CSV path or mapping); packaged table if None.
        as_of: the date the data describe (for age bands and follow-up windows); the latest
            event start when None.
        require_manifests: refuse payload files without a matching manifest (directory input).

    Returns:
        A :class:`JourneysResult` with both tables, ``as_of``, row counts and warnings.

    Raises:
        PolicyError: the agreement is not in force, the party is not an analyst, a file holds
            tokens or fields the agreement withholds, or was made under another agreement.
        InputDataError: a directory or column is missing, a path is a file where a directory
            is expected, or a payload row has no person id in its map.
        VerificationError: a manifest or the link manifest is missing or does not match its
            files, a map is not listed in the link manifest, or the maps come from another
            linkage run than the payloads.
        ConfigError: ``out_dir`` holds other files, or cannot be written (nothing is changed).
    """
    agreement.require_in_force()
    party = party or agreement.default_party(Role.ANALYST)
    agreement.require_role(party, Role.ANALYST, "build journeys")
    if out_dir is not None:
        check_out_dir(out_dir, JOURNEYS_FILES, "journeys")  # before the work, not after
    pay_in = _as_tables(agreement, payloads, PAYLOAD_SUFFIX, "payload", require_manifests)
    map_in = _as_tables(agreement, maps, MAP_SUFFIX, "map", False)
    if not pay_in.tables:
        raise InputDataError(f"{payloads}: no *{PAYLOAD_SUFFIX} files")
    district_map = dict(districts) if isinstance(districts, Mapping) else load_districts(districts)

    con = duckdb.connect()
    try:
        events, persons, as_of, counts, warnings = _build(
            con, agreement, pay_in, map_in, district_map, as_of
        )
    finally:
        con.close()
    result = JourneysResult(events, persons, as_of, counts, warnings)
    if out_dir is not None:
        out = Path(out_dir)
        inputs = [*pay_in.paths.values()]
        inputs += [p.with_name(ds + MANIFEST_SUFFIX) for ds, p in pay_in.paths.items()
                   if ds in pay_in.manifests]  # fmt: skip
        inputs += [*map_in.paths.values(), *([map_in.link_path] if map_in.link_path else [])]
        input_hashes = {str(p): sha256_file(p) for p in inputs}
        with staged_dir(out, JOURNEYS_FILES, "journeys") as stage:
            write_parquet_atomic(stage / "events.parquet", events)
            write_parquet_atomic(stage / "persons.parquet", persons)
            write_json_atomic(
                stage / JOURNEYS_MANIFEST,
                {
                    "kind": "wmw-link/journeys-manifest",
                    "agreement": {
                        "id": agreement.id,
                        "version": agreement.version,
                        "hash": agreement.hash,
                    },
                    "party": party,
                    "tool_version": __version__,
                    "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "as_of": as_of.isoformat(),
                    "inputs": input_hashes,
                    "counts": counts,
                    "warnings": warnings,
                    "files": {
                        name: {"sha256": sha256_file(stage / name)}
                        for name in ("events.parquet", "persons.parquet")
                    },
                },
            )
        result.out_dir = out
    return result


def _build(
    con: duckdb.DuckDBPyConnection,
    agreement: Agreement,
    pay_in: _Inputs,
    map_in: _Inputs,
    district_map: dict[str, str],
    as_of: dt.date | None,
) -> tuple[pa.Table, pa.Table, dt.date, dict[str, Any], list[str]]:
    """Check each payload against its map and build (events, persons, as_of, counts, warnings)."""
    event_parts: list[str] = []
    attr_parts: list[str] = []
    counts: dict[str, Any] = {"datasets": {}}
    warnings: list[str] = []
    for i, (ds_id, table) in enumerate(sorted(pay_in.tables.items())):
        ds = agreement.dataset(ds_id)
        where = str(pay_in.paths.get(ds_id, f"payload table {ds_id}"))
        _check_payload_columns(ds, where, table.column_names)
        if ds_id not in map_in.tables:
            raise InputDataError(f"no map for dataset {ds_id} (expected {ds_id}{MAP_SUFFIX})")
        if map_in.link_manifest is not None and ds_id in pay_in.manifests:
            assert map_in.link_path is not None
            _check_same_run(
                ds_id,
                pay_in.manifests[ds_id],
                pay_in.paths[ds_id],
                map_in.link_manifest,
                map_in.link_path,
            )
        m = map_in.tables[ds_id]
        m_where = str(map_in.paths.get(ds_id, f"map table {ds_id}"))
        _refuse_tokens(ds_id, m_where, m.column_names)
        missing = [c for c in ("row_ref", "person_id") if c not in m.column_names]
        if missing:
            raise InputDataError(f"{m_where}: lacks column(s) {', '.join(missing)}")
        m = m.select(["row_ref", "person_id"]).cast(
            pa.schema([("row_ref", pa.string()), ("person_id", pa.string())])
        )
        pname, mname = f"pay_{i}", f"map_{i}"
        con.register(pname + "_raw", table)
        # _rn gives a deterministic tie-break (file order) for same-day records.
        _run(
            con,
            f"CREATE TEMP TABLE {pname} AS SELECT *, row_number() OVER () AS _rn FROM {pname}_raw",
        )
        # A null person id is no person id: such rows fail the coverage check below.
        con.register(mname + "_raw", m)
        _run(
            con,
            f"CREATE TEMP TABLE {mname} AS SELECT * FROM {mname}_raw WHERE person_id IS NOT NULL",
        )
        dup = _one(con, f"SELECT count(*) - count(DISTINCT row_ref) FROM {mname}")
        if dup:
            raise InputDataError(f"{m_where}: {dup} row_ref(s) appear more than once")
        unmapped = _one(
            con,
            f"SELECT count(*) FROM {pname} p ANTI JOIN {mname} m ON p.row_ref = m.row_ref",
        )
        if unmapped:
            # Every payload row was linked (the TTP's maps cover every input row), so a gap
            # means the map is not from the run that linked this payload's tokens.
            raise InputDataError(
                f"{where}: {unmapped} of {table.num_rows} payload row(s) of {ds_id} have no "
                f"person id in {m_where}; every payload row must have one (a map from another "
                "linkage run, or a payload extracted again after linking?)"
            )
        extra = _one(
            con,
            f"SELECT count(*) FROM {mname} m ANTI JOIN {pname} p ON p.row_ref = m.row_ref",
        )
        if extra:
            warnings.append(
                f"{ds_id}: {extra} map row(s) have no payload row (records the TTP linked that "
                "this payload does not hold)"
            )
        event_parts.append(_event_sql(ds, pname, mname, table.column_names))
        attr_parts.extend(_attr_sql(ds, pname, mname, table.column_names))
        counts["datasets"][ds_id] = {"rows": table.num_rows, "with_person_id": table.num_rows}

    _run(con, "CREATE TEMP TABLE events AS " + " UNION ALL BY NAME ".join(event_parts))
    if attr_parts:
        _run(con, "CREATE TEMP TABLE attrs AS " + " UNION ALL ".join(attr_parts))
    else:
        _run(
            con,
            "CREATE TEMP TABLE attrs (person_id VARCHAR, source VARCHAR, is_hub BOOLEAN, at_date DATE, "
            "rn BIGINT, attribute VARCHAR, value VARCHAR)",
        )
    dist = pa.table(
        {"district": list(district_map), "local_authority": list(district_map.values())}
    )
    con.register("districts", dist)

    if as_of is None:
        got = _one(con, "SELECT max(start) FROM events")
        as_of = got or dt.date.today()
    persons = con.sql(
        f"SELECT * REPLACE ({_age_band_sql(as_of.year)} AS age_band) FROM "
        f"(SELECT *, NULL AS age_band FROM ({_PERSONS_SQL}))"
    ).to_arrow_table()
    persons = persons.select(list(PERSON_COLUMNS))
    events = con.sql(
        "SELECT * FROM events ORDER BY person_id, start NULLS LAST, source, row_ref"
    ).to_arrow_table()
    # row_ref only served the tie-break; the analysts' tables carry person ids, not row refs.
    events = events.drop_columns(["row_ref"])
    counts["events"] = events.num_rows
    counts["persons"] = persons.num_rows
    return events, persons, as_of, counts, warnings


def input_paths(payloads: str | Path, maps: str | Path) -> list[Path]:
    """The files :func:`build_journeys` reads from two directories (for the audit record)."""
    out: list[Path] = []
    for d, suffix in ((Path(payloads), PAYLOAD_SUFFIX), (Path(maps), MAP_SUFFIX)):
        out += sorted(d.glob("*" + suffix))
        if suffix == PAYLOAD_SUFFIX:
            out += sorted(d.glob("*" + MANIFEST_SUFFIX))
        elif (d / LINK_MANIFEST).is_file():
            out.append(d / LINK_MANIFEST)
    return out
