"""Hand-built payload and map tables in the tokenise/link contract shapes, for journeys and
outcomes tests. Each helper takes per-person records and returns (payloads, maps) mappings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from wmw_link.agreement import load_agreement

AGREEMENT_PATH = Path(__file__).resolve().parents[2] / "agreements" / "wmw-outcomes.yaml"


def agreement():
    return load_agreement(AGREEMENT_PATH)


D = dt.date


_TYPES = {
    "hmrc_rti": {
        "employer_ref": pa.string(),
        "start_date": pa.date32(),
        "end_date": pa.date32(),
        "monthly_pay": pa.float64(),
    },
    "dwp_claims": {
        "benefit": pa.string(),
        "regime": pa.string(),
        "start_date": pa.date32(),
        "end_date": pa.date32(),
        "birth_year": pa.int16(),
        "postcode_district": pa.string(),
    },
    "nhs_referrals": {
        "service": pa.string(),
        "referral_date": pa.date32(),
        "condition_category": pa.string(),
    },
    "skills_enrolments": {
        "course_level": pa.string(),
        "start_date": pa.date32(),
        "end_date": pa.date32(),
        "achieved": pa.bool_(),
        "neet_status": pa.string(),
        "birth_year": pa.int16(),
        "postcode_district": pa.string(),
    },
    "hub": {
        "support_start": pa.date32(),
        "support_type": pa.string(),
        "hub_la": pa.string(),
        "gender": pa.string(),
        "ethnicity": pa.string(),
        "disability": pa.string(),
        "birth_year": pa.int16(),
        "postcode_district": pa.string(),
    },
}


class Builder:
    """Collects records per dataset: ``b.add("hmrc_rti", "p1", start_date=..., ...)``."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {}
        self.person: dict[str, list[str]] = {}

    def add(self, dataset: str, person: str, **fields) -> Builder:
        self.rows.setdefault(dataset, []).append(fields)
        self.person.setdefault(dataset, []).append(person)
        return self

    def hub(self, person: str, la="Birmingham", start=None, **kw) -> Builder:
        base = {
            "support_start": start or D(2024, 1, 15),
            "support_type": "employment_support",
            "hub_la": la,
            "gender": "Female",
            "ethnicity": "White",
            "disability": "No",
            "birth_year": 1990,
            "postcode_district": None,
        }
        base.update(kw)
        return self.add("hub_" + la.lower(), person, **base)

    def job(self, person: str, start, end=None, pay=2000.0, employer="E1") -> Builder:
        return self.add(
            "hmrc_rti",
            person,
            employer_ref=employer,
            start_date=start,
            end_date=end,
            monthly_pay=pay,
        )

    def claim(
        self, person: str, start, end=None, benefit="UC", regime="intensive_work_search", **kw
    ) -> Builder:
        base = {"benefit": benefit, "regime": regime, "start_date": start, "end_date": end,
                "birth_year": 1990, "postcode_district": None}  # fmt: skip
        base.update(kw)
        return self.add("dwp_claims", person, **base)

    def tables(self) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
        payloads, maps = {}, {}
        for ds, rows in self.rows.items():
            types = _TYPES["hub" if ds.startswith("hub_") else ds]
            refs = [f"{ds}-{i:04d}" for i in range(len(rows))]
            cols = {"row_ref": pa.array(refs, pa.string())}
            for name, typ in types.items():
                cols[name] = pa.array([r.get(name) for r in rows], typ)
            payloads[ds] = pa.table(cols)
            maps[ds] = pa.table(
                {
                    "row_ref": pa.array(refs, pa.string()),
                    "person_id": pa.array(self.person[ds], pa.string()),
                }
            )
        return payloads, maps


def write_inputs(
    root: Path,
    pay: dict[str, pa.Table],
    maps: dict[str, pa.Table],
    *,
    run: str = "run-1",
    version: int = 1,
    agreement_id: str = "wmw-outcomes",
    index: dict | None = None,
    id_changes: pa.Table | None = None,
    delivery: int | None = None,
    linked: dict[str, list[str]] | None = None,
) -> tuple[Path, Path]:
    """Write what the analysts receive, as tokenise and link write it: ``root/payloads`` (payload
    + tokens-manifest per dataset) and ``root/maps`` (maps + link-manifest.json).

    The token files stay with the TTP; only their hashes (made up per ``run``) tie each payload
    manifest to the link run's inputs, as in the real contract. ``index`` (the link manifest's
    index section), ``id_changes`` (written as id-changes.parquet and listed) and ``delivery``
    (the payload manifests' delivery number) make a person-index refresh; ``linked`` names, per
    dataset, the runs whose tokens the link manifest lists (default: ``run``).
    """
    import hashlib
    import json

    import pyarrow.parquet as pq

    from wmw_link.files import sha256_file

    pdir, mdir = root / "payloads", root / "maps"
    pdir.mkdir(parents=True)
    mdir.mkdir(parents=True)
    ag = {"id": agreement_id, "version": version}
    link = {"kind": "wmw-link/link-manifest", "agreement": ag, "inputs": {}, "outputs": {}}
    for ds, t in pay.items():
        tokens = {
            "name": f"{ds}.tokens.parquet",
            "sha256": hashlib.sha256(f"{run}/{ds}".encode()).hexdigest(),
            "rows": t.num_rows,
        }
        path = pdir / f"{ds}.payload.parquet"
        pq.write_table(t, path)
        man = {
            **({"delivery": delivery} if delivery is not None else {}),
            "kind": "wmw-link/tokens-manifest",
            "agreement": ag,
            "dataset": ds,
            "files": {
                "payload": {"name": path.name, "sha256": sha256_file(path), "rows": t.num_rows},
                "tokens": tokens,
            },
        }
        (pdir / f"{ds}.manifest.json").write_text(json.dumps(man))
        link["inputs"][ds] = {"tokens": tokens}
    for ds, runs in (linked or {}).items():
        entries = [
            {"tokens": {"sha256": hashlib.sha256(f"{r}/{ds}".encode()).hexdigest()}} for r in runs
        ]
        link["inputs"][ds] = {**entries[0], "also": entries[1:]}
    for ds, t in maps.items():
        path = mdir / f"{ds}.map.parquet"
        pq.write_table(t, path)
        link["outputs"][ds] = {"name": path.name, "sha256": sha256_file(path), "rows": t.num_rows}
    if index is not None:
        link["index"] = index
    if id_changes is not None:
        path = mdir / "id-changes.parquet"
        pq.write_table(id_changes, path)
        link["id_changes"] = {"name": path.name, "sha256": sha256_file(path),
                              "rows": id_changes.num_rows}  # fmt: skip
    (mdir / "link-manifest.json").write_text(json.dumps(link))
    return pdir, mdir
