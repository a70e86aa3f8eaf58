"""Build journeys: check the inputs, run the SQL, write events, persons and a manifest.

:func:`build_journeys` writes

* ``events.parquet``: one row per payload record that has a person id: ``person_id``,
  ``source`` (dataset id), ``event_type``, ``start``, ``end`` and the event's attributes
  (employer_ref, monthly_pay, benefit, regime, service, condition_category, course_level,
  achieved, neet_status, support_type, hub_la, ... as the agreement names them);
* ``persons.parquet``: one row per person with the characteristics the payloads carry;
* ``journeys-manifest.json``: agreement, inputs by hash, counts, the data's ``as_of`` date.

The three files are written into a temporary sibling folder and swapped into place together
(:mod:`wmw_link.outdir`), so they appear together or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from wmw_link._version import __version__
from wmw_link.agreement import Agreement, Role
from wmw_link.errors import InputDataError
from wmw_link.files import sha256_file, write_json_atomic, write_parquet_atomic
from wmw_link.journeys.inputs import (
    MANIFEST_SUFFIX,
    MAP_SUFFIX,
    PAYLOAD_SUFFIX,
    _as_tables,
    _check_payload_columns,
    _check_same_run,
    _Inputs,
    _refuse_tokens,
    load_districts,
)
from wmw_link.journeys.refresh import accumulate, refresh_of
from wmw_link.journeys.sql import (
    _PERSONS_SQL,
    PERSON_COLUMNS,
    _age_band_sql,
    _attr_sql,
    _event_sql,
)
from wmw_link.outdir import check_out_dir, staged_dir

JOURNEYS_MANIFEST = "journeys-manifest.json"
#: Everything build_journeys writes (the output folder is replaced as a whole).
JOURNEYS_FILES = ("events.parquet", "persons.parquet", JOURNEYS_MANIFEST)


@dataclass
class JourneysResult:
    """What :func:`build_journeys` produced."""

    events: pa.Table
    persons: pa.Table
    as_of: dt.date
    counts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    #: The link runs applied, in order (delivery, as_at, mode, maps folder, id changes).
    refreshes: list[dict[str, Any]] = field(default_factory=list)
    #: The withdrawal lists applied (dataset, file, rows, SHA-256, signature checked).
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    #: Every file read (payloads, manifests, maps, link manifests, id changes, withdrawals).
    inputs: list[Path] = field(default_factory=list)

    @property
    def as_at(self) -> dict[str, Any]:
        """The refresh the journeys are "as at": the last link run applied."""
        last = self.refreshes[-1] if self.refreshes else {}
        return {
            "delivery": last.get("delivery"),
            "as_at": last.get("as_at"),
            "data_to": self.as_of.isoformat(),
        }

    @property
    def events_path(self) -> Path | None:
        return self.out_dir / "events.parquet" if self.out_dir else None

    @property
    def persons_path(self) -> Path | None:
        return self.out_dir / "persons.parquet" if self.out_dir else None


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run a statement to completion (DuckDB 2 keeps a pending result open until fetched)."""
    con.execute(sql).fetchall()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The single value a query returns."""
    return con.execute(sql).fetchall()[0][0]


def _folders(source: Any) -> list[Path] | None:
    """A list of folders when ``source`` is a list or tuple of paths, else None."""
    if isinstance(source, list | tuple):
        return [Path(p) for p in source]
    return None


def build_journeys(
    agreement: Agreement,
    payloads: str | Path | Mapping[str, pa.Table] | Sequence[str | Path],
    maps: str | Path | Mapping[str, pa.Table] | Sequence[str | Path],
    out_dir: str | Path | None = None,
    party: str | None = None,
    *,
    districts: str | Path | Mapping[str, str] | None = None,
    as_of: dt.date | None = None,
    require_manifests: bool = True,
    withdrawals: Sequence[str | Path] = (),
    keyring: Any = None,
) -> JourneysResult:
    """Join payloads to person ids: an event table and a person table.

    Args:
        agreement: the data-sharing agreement (checked: in force, ``party`` is an analyst,
            manifests made under an accepted version, only analyst payload fields present).
        payloads: a directory of ``<dataset>.payload.parquet`` (+ ``.manifest.json``) files, or
            a mapping dataset id -> table (Arrow, DuckDB relation or pandas; row_ref +
            payload fields).
            A list of directories: one per delivery (see ``maps``).
        maps: a directory of ``<dataset>.map.parquet`` files and the TTP's
            ``link-manifest.json`` (required: it must list every map with its SHA-256, and its
            input tokens must be those the payload manifests record), or a mapping dataset id ->
            Arrow table (row_ref, person_id), which the caller vouches for. A list of
            directories: one per link run, applied in delivery order with their id changes
            (:mod:`wmw_link.journeys.refresh`); each payload is matched to the run that linked
            its tokens.
        out_dir: where to write events.parquet, persons.parquet and journeys-manifest.json
            (nothing is written when None). The folder is replaced as a whole, and only once
            all three files are written; it may hold only a previous journeys output.
        party: the analyst party; the agreement's only analyst when None.
        districts: postcode district -> LA table (CSV path or mapping); packaged table if None.
        as_of: the date the data describe (for age bands and follow-up windows); the latest
            event start when None.
        require_manifests: refuse payload files without a matching manifest (directory input).
        withdrawals: withdrawal lists (``wmw-link withdraw``): their row refs are dropped from
            payloads and maps, so the records leave events and persons.
        keyring: the parties' public keys, to check each withdrawal list's signature.

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
    pay_dirs, map_dirs = _folders(payloads), _folders(maps)
    refreshes: list[dict[str, Any]] = []
    applied: list[dict[str, Any]] = []
    extra_counts: dict[str, int] = {}
    read: list[Path] = []
    if pay_dirs is not None or map_dirs is not None or withdrawals:
        # Several deliveries or link runs, or withdrawals: applied in order (refresh.py).
        if isinstance(payloads, Mapping) or isinstance(maps, Mapping):
            raise InputDataError(
                "several deliveries, link runs or withdrawals need payload and maps folders "
                "(their manifests say which link run linked which payload), not tables"
            )
        got = accumulate(
            agreement,
            pay_dirs if pay_dirs is not None else [Path(payloads)],  # type: ignore[arg-type]
            map_dirs if map_dirs is not None else [Path(maps)],  # type: ignore[arg-type]
            withdrawals=withdrawals,
            keyring=keyring,
            require_manifests=require_manifests,
        )
        pay_in, map_in = got.payloads, got.maps
        refreshes, applied, extra_counts, read = (
            got.refreshes,
            got.withdrawals,
            got.counts,
            got.inputs,
        )
    else:
        pay_in = _as_tables(agreement, payloads, PAYLOAD_SUFFIX, "payload", require_manifests)
        map_in = _as_tables(agreement, maps, MAP_SUFFIX, "map", False)
        if map_in.link_manifest is not None:
            refreshes = [refresh_of(map_in.link_manifest, Path(maps))]  # type: ignore[arg-type]
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
    counts.update(extra_counts)
    if not read:
        read = [*pay_in.paths.values()]
        read += [p.with_name(ds + MANIFEST_SUFFIX) for ds, p in pay_in.paths.items()
                 if ds in pay_in.manifests]  # fmt: skip
        read += [*map_in.paths.values(), *([map_in.link_path] if map_in.link_path else [])]
    result = JourneysResult(
        events, persons, as_of, counts, warnings, None, refreshes, applied, read
    )
    if out_dir is not None:
        out = Path(out_dir)
        inputs = read
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
                    # The refresh these journeys are "as at", every link run applied in order,
                    # and the withdrawal lists applied (docs/outcomes.md).
                    "as_at": result.as_at,
                    "refreshes": refreshes,
                    "withdrawals": applied,
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
