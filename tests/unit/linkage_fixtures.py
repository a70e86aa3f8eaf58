"""Small token fixtures for linkage tests, built without the tokeniser's file handling.

Tokens are made with the token schema's own composites (``wmw_link.tokenise.composites``) and
hashing under a fixed test key, from a tiny synthetic population with households (same surname
and postcode), typos, swapped dates and duplicates within a source: records skip reading and
normalising extracts, not the token construction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wmw_link.agreement import Agreement
from wmw_link.files import sha256_file
from wmw_link.keys import SecretKey
from wmw_link.token_schema import (
    BY_NAME,
    arrow_schema,
    bloom_columns,
    columns_for,
    manifest_entry,
)
from wmw_link.tokenise.bloom import bloom_for
from wmw_link.tokenise.composites import bloom_names, composite_inputs
from wmw_link.tokenise.tokens import Hasher, composite_tokens

KEY = b"linkage-test-key-0123456789abcdef"
FORENAMES = [
    "john",
    "mary",
    "ahmed",
    "priya",
    "david",
    "sarah",
    "mohammed",
    "emma",
    "james",
    "olivia",
    "ryan",
    "grace",
    "liam",
    "chloe",
    "daniel",
    "fatima",
    "thomas",
    "amelia",
]
SURNAMES = [
    "smith",
    "khan",
    "patel",
    "jones",
    "williams",
    "brown",
    "begum",
    "taylor",
    "evans",
    "wilson",
    "hussain",
    "walker",
    "wright",
    "thompson",
    "roberts",
    "ali",
    "singh",
]
POSTCODES = [
    "B15 2TT",
    "B12 9QR",
    "CV1 5FB",
    "DY1 1HF",
    "WS1 1TP",
    "WV1 1SH",
    "B90 4AA",
    "B70 6LB",
    "B23 5XX",
    "CV4 7AL",
]


_KEY = SecretKey(KEY)


def _token_table(records: list[dict[str, object]], cols: list, refs: list[str]) -> pa.Table:
    """The tokens of normalised records, for the given schema columns."""
    fields = {
        "forename": pa.array([r["forename"] for r in records], pa.string()),
        "surname": pa.array([r["surname"] for r in records], pa.string()),
        "date_of_birth": pa.array([r["dob"] for r in records], pa.date32()),
        "postcode": pa.array([r["postcode"] for r in records], pa.string()),
        "nino": pa.array([r["nino"] for r in records], pa.string()),
        "nhs_number": pa.array([r["nhs"] for r in records], pa.string()),
    }
    names = {c.name for c in cols}
    fields = {k: v for k, v in fields.items() if any(k in c.sources for c in cols)}
    h = Hasher(_KEY, "wmw-outcomes")
    out: dict[str, pa.Array] = {"row_ref": pa.array(refs, pa.string())}
    for name, vals in composite_inputs(fields, [c for c in cols if c.kind != "bloom_word"]).items():
        out[name] = composite_tokens(vals, h.tokenizer(BY_NAME[name].domain))
    for part, (nm, salts) in bloom_names(fields).items():
        words = bloom_for(h.derive, part).encode(nm, salts)
        out.update(zip(bloom_columns(part), words, strict=True))
    schema = arrow_schema(cols)
    return pa.table([out[f.name] for f in schema], schema=schema) if names else pa.table({})


@dataclass
class Person:
    pid: int
    household: int
    forename: str
    surname: str
    dob: dt.date
    postcode: str
    nino: str
    nhs: str
    sex: str


def population(n_households: int, seed: int) -> list[Person]:
    rng = random.Random(seed)
    people: list[Person] = []
    for h in range(n_households):
        surname, pc = rng.choice(SURNAMES), rng.choice(POSTCODES)
        for _ in range(rng.choice([1, 1, 2, 3, 4])):
            pid = len(people)
            people.append(
                Person(
                    pid,
                    h,
                    rng.choice(FORENAMES),
                    surname,
                    dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000)),
                    pc,
                    f"AB{pid:06d}",
                    f"9{pid:09d}",
                    rng.choice("fm"),
                )
            )
    return people


def _typo(rng: random.Random, s: str) -> str:
    i = rng.randrange(1, len(s))
    return s[:i] + rng.choice("aeioursnt") + s[i + 1 :]


def _record(rng: random.Random, p: Person, has: set[str]) -> dict[str, object]:
    forename, surname, dob, pc = p.forename, p.surname, p.dob, p.postcode
    r = rng.random()
    if r < 0.15:
        forename = _typo(rng, forename)
    elif r < 0.25:
        surname = _typo(rng, surname)
    elif r < 0.30 and dob.day <= 12 and dob.day != dob.month:
        dob = dt.date(dob.year, dob.day, dob.month)
    elif r < 0.35:
        pc = rng.choice(POSTCODES)
    return {
        "forename": forename,
        "surname": surname,
        "dob": dob,
        "postcode": pc if rng.random() > 0.05 else None,
        "nino": p.nino if "nino" in has and rng.random() > 0.1 else None,
        "nhs": p.nhs if "nhs_number" in has else None,
    }


#: dataset -> (token sources, share of people present, share duplicated within the source)
DATASETS = {
    "hmrc_rti": ({"forename", "surname", "date_of_birth", "postcode", "nino"}, 0.7, 0.2),
    "nhs_referrals": ({"forename", "surname", "date_of_birth", "postcode", "nhs_number"}, 0.4, 0.1),
    "hub_birmingham": ({"forename", "surname", "date_of_birth", "postcode", "nino"}, 0.5, 0.1),
}


def write_fixture(
    agreement: Agreement,
    out: Path,
    n_households: int = 60,
    seed: int = 7,
    key_check: str = "kc-test",
) -> dict[tuple[str, str], int]:
    """Write tokens + manifests for three datasets; return (dataset, row_ref) -> person id."""
    rng = random.Random(seed)
    people = population(n_households, seed)
    truth: dict[tuple[str, str], int] = {}
    out.mkdir(parents=True, exist_ok=True)
    for ds, (sources, share, dup) in DATASETS.items():
        cols = columns_for(sources)
        records, refs = [], []
        for p in people:
            if rng.random() > share:
                continue
            for _ in range(2 if rng.random() < dup else 1):
                ref = hashlib.sha256(f"{ds}:{len(refs)}".encode()).hexdigest()[:32]
                records.append(_record(rng, p, sources))
                refs.append(ref)
                truth[(ds, ref)] = p.pid
        table = _token_table(records, cols, refs)
        rows = refs
        tpath = out / f"{ds}.tokens.parquet"
        pq.write_table(table, tpath)
        controller = agreement.dataset(ds).controller
        manifest = {
            "kind": "wmw-link/tokens-manifest",
            "agreement": {"id": agreement.id, "version": agreement.version, "hash": agreement.hash},
            "dataset": ds,
            "party": controller,
            "tool_version": "test",
            "created_at": "2026-11-27T00:00:00Z",
            "key_check": key_check,
            "token_schema": manifest_entry(cols),
            "rows": {"input": len(rows), "tokens": len(rows), "rejected": 0},
            "files": {
                "tokens": {"name": tpath.name, "sha256": sha256_file(tpath), "rows": len(rows)}
            },
        }
        (out / f"{ds}.manifest.json").write_text(json.dumps(manifest, indent=2))
    return truth


def households(n_households: int = 60, seed: int = 7) -> dict[int, int]:
    """person id -> household id of the fixture population."""
    return {p.pid: p.household for p in population(n_households, seed)}


class FakeLinker:
    """What the household rule reads of a Splink linker: its settings (the token model over
    every token column) and queries on the scored pairs, registered as ``scored``."""

    def __init__(
        self, pairs: pd.DataFrame | None = None, plan: Any = None, n_inputs: int = 2
    ) -> None:
        """``plan``: another model's plan (default: the token model, every token column)."""
        import duckdb

        from wmw_link.linkage.settings import plan_model, settings_creator
        from wmw_link.token_schema import TOKEN_COLUMNS

        if plan is None:
            plan = plan_model({c.name for c in TOKEN_COLUMNS}, {"nino": 1e-9, "nhs": 1e-9})
        self._settings_obj = settings_creator(plan, n_inputs).get_settings("duckdb")
        self.con = duckdb.connect()
        if pairs is not None:
            self.con.register("scored", pairs)
        self.misc = self

    def query_sql(self, sql: str, output_type: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def gammas(self, name: str) -> dict[str, int]:
        """A comparison's level label -> gamma value."""
        from wmw_link.linkage.household import agreement_gammas

        comps = {c.output_column_name: c for c in self._settings_obj.comparisons}
        return agreement_gammas(comps[name])


class ScoredPairs:
    """Stands for Splink's predictions table: the pairs :class:`FakeLinker` registered."""

    physical_name = "scored"
