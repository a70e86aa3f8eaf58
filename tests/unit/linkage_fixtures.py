"""Small token fixtures for linkage tests, built without the tokeniser.

Tokens follow ``wmw_link.token_schema`` (the same column names, kinds and comparability) but are
made here with stdlib HMAC under a fixed test key, from a tiny synthetic population with
households (same surname and postcode), typos, swapped dates and duplicates within a source.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
from dataclasses import dataclass
from pathlib import Path

import jellyfish
import pyarrow as pa
import pyarrow.parquet as pq

from wmw_link.agreement import Agreement
from wmw_link.files import sha256_file
from wmw_link.token_schema import BLOOM_BITS, BY_NAME, arrow_schema, columns_for, manifest_entry

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


def _tok(domain: str, enc: str, value: str | None) -> int | None:
    if value is None:
        return None
    msg = enc.encode() + b"\x1f" + value.encode()
    digest = hmac.new(KEY + domain.encode(), msg, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _bloom(value: str | None) -> tuple[list[int | None], int | None]:
    if value is None:
        return [None] * (BLOOM_BITS // 64), None
    padded = f"_{value}_"
    bits = 0
    for i in range(len(padded) - 1):
        d = hmac.new(KEY + b"bloom", padded[i : i + 2].encode(), hashlib.sha256).digest()
        h1, h2 = int.from_bytes(d[:8], "big"), int.from_bytes(d[8:16], "big")
        for k in range(2):
            bits |= 1 << ((h1 + k * h2) % BLOOM_BITS)
    words = []
    for w in range(BLOOM_BITS // 64):
        u = (bits >> (64 * w)) & ((1 << 64) - 1)
        words.append(u - (1 << 64) if u >= 1 << 63 else u)
    return words, bin(bits).count("1")


def _name_tokens(part: str, value: str | None) -> dict[str, object]:
    out: dict[str, object] = {}
    key = (
        None
        if value is None
        else (value.split()[0] if part == "forename" else value.replace(" ", ""))
    )
    words = None if value is None else value.split()
    t = lambda enc, v: _tok("name", enc, v)  # noqa: E731
    out[f"{part}_exact"] = t("name", value)
    if part == "forename":
        out["forename_first"] = t("name", words[0] if words else None)
    out[f"{part}_words"] = None if words is None else sorted({t("name", w) for w in words})
    out[f"{part}_dm"] = None if key is None else [t("dmetaphone", jellyfish.metaphone(key))]
    out[f"{part}_nysiis"] = t("nysiis", None if key is None else jellyfish.nysiis(key))
    out[f"{part}_initial"] = t("initial", None if key is None else key[:1])
    if part == "forename":
        out["forename_nick"] = None if key is None else [t("name", key)]
    words_bf, pop = _bloom(value)
    for i, w in enumerate(words_bf):
        out[f"{part}_bf{i}"] = w
    out[f"{part}_bf_pop"] = pop
    return out


def _dob_tokens(d: dt.date | None) -> dict[str, object]:
    t = lambda enc, v: _tok("date_of_birth", enc, v)  # noqa: E731
    if d is None:
        return {
            c: None
            for c in (
                "dob_exact",
                "dob_swap",
                "dob_prev",
                "dob_next",
                "dob_ym",
                "dob_yd",
                "dob_md",
                "dob_year",
            )
        }
    swap = None
    if d.day <= 12 and d.day != d.month:
        swap = dt.date(d.year, d.day, d.month).isoformat()
    return {
        "dob_exact": t("date", d.isoformat()),
        "dob_swap": t("date", swap),
        "dob_prev": t("date", (d - dt.timedelta(days=1)).isoformat()),
        "dob_next": t("date", (d + dt.timedelta(days=1)).isoformat()),
        "dob_ym": t("ym", d.strftime("%Y-%m")),
        "dob_yd": t("yd", d.strftime("%Y-%d")),
        "dob_md": t("md", d.strftime("%m-%d")),
        "dob_year": t("year", d.strftime("%Y")),
    }


def _pc_tokens(pc: str | None) -> dict[str, object]:
    t = lambda enc, v: _tok("postcode", enc, v)  # noqa: E731
    if pc is None:
        return {"pc_unit": None, "pc_sector": None, "pc_district": None}
    out_code, in_code = pc.split()
    return {
        "pc_unit": t("unit", pc),
        "pc_sector": t("sector", f"{out_code} {in_code[0]}"),
        "pc_district": t("district", out_code),
    }


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
    row: dict[str, object] = {}
    row.update(_name_tokens("forename", forename))
    row.update(_name_tokens("surname", surname))
    row.update(_dob_tokens(dob))
    row.update(_pc_tokens(pc if rng.random() > 0.05 else None))
    row["nino"] = _tok("nino", "nino", p.nino) if "nino" in has and rng.random() > 0.1 else None
    row["nhs"] = _tok("nhs_number", "nhs", p.nhs) if "nhs_number" in has else None
    row["sex"] = _tok("sex", "sex", p.sex)
    return row


#: dataset -> (token sources, share of people present, share duplicated within the source)
DATASETS = {
    "hmrc_rti": ({"forename", "surname", "date_of_birth", "postcode", "nino", "sex"}, 0.7, 0.2),
    "nhs_referrals": (
        {"forename", "surname", "date_of_birth", "postcode", "nhs_number", "sex"},
        0.4,
        0.1,
    ),
    "hub_birmingham": (
        {"forename", "surname", "date_of_birth", "postcode", "nino", "sex"},
        0.5,
        0.1,
    ),
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
        rows = []
        for p in people:
            if rng.random() > share:
                continue
            for _ in range(2 if rng.random() < dup else 1):
                row = {c.name: v for c, v in zip(cols, [None] * len(cols), strict=True)}
                row.update(
                    {k: v for k, v in _record(rng, p, sources).items() if k in BY_NAME and k in row}
                )
                ref = hashlib.sha256(f"{ds}:{len(rows)}".encode()).hexdigest()[:32]
                row["row_ref"] = ref
                truth[(ds, ref)] = p.pid
                rows.append(row)
        table = pa.Table.from_pylist(rows, schema=arrow_schema(cols))
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
