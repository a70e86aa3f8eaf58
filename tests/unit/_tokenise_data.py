"""Small hand-made extracts for the tokenise tests (the agreement's column names and formats).

Values are chosen to exercise normalisation: accents, titles, hyphens, nicknames, swapped
names, swapped day/month, invalid NINo / NHS numbers / dates / postcodes, blanks.
"""

from __future__ import annotations

import csv
from pathlib import Path

AGREEMENT = Path(__file__).resolve().parents[2] / "agreements" / "wmw-outcomes.yaml"

HUB_HEADER = [
    "client_id", "forename", "surname", "date_of_birth", "postcode", "ni_number", "gender",
    "support_start", "support_type", "hub_la", "ethnicity", "disability", "adviser_notes",
    "phone_number",
]  # fmt: skip

# client_id, forename, surname, dob, postcode, nino, gender, start, type, la, eth, dis, notes, phone
HUB_ROWS = [
    ["C001", "Mr. John", "Smith", "03/04/1985", "b15 2tt", "AB 12 34 56 C", "Male",
     "01/02/2026", "employment_support", "Birmingham", "White", "No", "secret note", "07700900001"],
    ["C002", "Zoë", "O'Brien-Kowalski", "12/11/1990", "CV1 5FB", "JK654321A", "F",
     "15/03/2026", "health_and_work", "Coventry", "Mixed", "Yes", "call back", "07700900002"],
    ["C003", "Bill", "Jones", "31/02/1970", "XX1", "TN010170M", "Male",
     "02/01/2026", "skills_referral", "Dudley", "Black", "No", "", "07700900003"],
    ["C004", "Smith", "John", "04/03/1985", "B15 2TU", "AB123456", "male",
     "05/05/2026", "youth_guarantee", "Sandwell", "Asian", "No", "", ""],
    ["C005", "Muhammad", "Khan", "01/01/2099", "WS1 1AA", "QQ123456C", "Other",
     "bad date", "not a category", "Walsall", "Other", "Prefer not to say", "", ""],
    ["", "Nobody", "Here", "01/01/1980", "WV1 1AA", "", "", "", "", "", "", "", "", ""],
    ["C001", "John", "Smith", "03/04/1985", "B15 2TT", "AB123456C", "M",
     "01/02/2026", "employment_support", "Birmingham", "White", "No", "", ""],
    ["C008", "", "", "07/07/1977", "", "", "F",
     "", "", "", "", "", "", ""],
    ["C009", "Mohammed", "Khan", "01/01/1960", "  ws1   1aa ", "CE123456D", "1",
     "01/06/2026", "in_work_progression", "Solihull", "Asian", "No", "", ""],
]  # fmt: skip


def write_hub_csv(path: Path, rows: list[list[str]] | None = None) -> Path:
    """Write a hub extract (UTF-8 CSV with a header) and return its path."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HUB_HEADER)
        w.writerows(HUB_ROWS if rows is None else rows)
    return path


def plaintext_values() -> list[str]:
    """Every raw and normalised identifier value in the fixture (for byte scans)."""
    raw = []
    for r in HUB_ROWS:
        # Names, date of birth, postcode, NINo (sex is also payload under the agreement).
        raw += [v for v in r[1:6] if len(v.strip()) >= 3]
    normalised = [
        "john", "smith", "zoe", "obrien kowalski", "kowalski", "obrien", "jones", "khan",
        "muhammad", "mohammed", "1985-04-03", "1985-03-04", "1990-11-12", "1977-07-07",
        "1960-01-01", "B15 2TT", "B152TT", "B15 2TU", "CV1 5FB", "WS1 1AA", "AB123456",
        "JK654321", "CE123456", "03041985", "19850403", "03/04/1985", "12/11/1990",
        "07/07/1977",
    ]  # fmt: skip
    return sorted(set(raw + normalised))
