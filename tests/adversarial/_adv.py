"""Shared set-up of the adversarial suite (issue 12): a small DWP extract, keys for every party,
and one controller run that tokenises and seals its outputs to the TTP and the analysts."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.keys import new_key
from wmw_link.party_keys import new_keyring
from wmw_link.seal import seal_outputs
from wmw_link.tokenise import tokenise

AGREEMENT = Path(__file__).resolve().parents[2] / "agreements" / "wmw-outcomes.yaml"
PARTIES = ["dwp", "hmrc", "linkage-unit", "insight-team"]
TTP, ANALYST = "linkage-unit", "insight-team"
TODAY = dt.date(2026, 6, 1)
DWP_HEADER = [
    "claim_ref", "nino", "first_name", "surname", "dob", "postcode", "gender", "benefit",
    "regime", "start_date", "end_date",
]  # fmt: skip
NAMES = [("Ann", "Lee"), ("Bob", "Khan"), ("Cat", "Ng"), ("Dan", "Roe"), ("Eve", "Hill")]


def dwp_rows(n: int = 20) -> list[list[str]]:
    """``n`` valid DWP claims (distinct record ids)."""
    return [
        [
            f"D{i}", "AB123456C", NAMES[i % 5][0], NAMES[i % 5][1], f"{1 + i % 27:02d}/03/1985",
            "B15 2TT", "F", "UC", "light_touch", "01/02/2026", "",
        ]
        for i in range(n)
    ]  # fmt: skip


def write_dwp(path: Path, rows: list[list[str]] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(DWP_HEADER)
        w.writerows(dwp_rows() if rows is None else rows)
    return path


@dataclass
class Parties:
    root: Path
    agreement: Agreement
    secrets: dict[str, Path]
    ring: Path
    link_key: Path
    ref_key: Path

    def tokenise(self, rows: list[list[str]] | None = None, out: str = "dwp-out", **kw):
        src = write_dwp(self.root / f"extract-{len(list(self.root.glob('extract-*')))}.csv", rows)
        kw.setdefault("today", TODAY)
        kw.setdefault("workers", 1)
        return tokenise(
            self.agreement, "dwp_claims", src, self.link_key, self.ref_key, self.root / out, **kw
        )

    def deliver(self, name: str, rows: list[list[str]] | None = None) -> Path:
        """Tokenise and seal to the TTP and the analysts; return the outbox (a copy per run)."""
        res = self.tokenise(rows, out=f"run-{name}")
        outbox = self.root / f"outbox-{name}"
        seal_outputs(
            res.shared_outputs, agreement=self.agreement, secret=self.secrets["dwp"],
            recipients=[TTP, ANALYST], keyring=self.ring, out_dir=outbox,
        )  # fmt: skip
        return outbox


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture()
def parties(tmp_path: Path, agreement: Agreement) -> Parties:
    secrets = new_keyring(PARTIES, tmp_path / "secrets", tmp_path / "ring")
    return Parties(
        root=tmp_path,
        agreement=agreement,
        secrets=secrets,
        ring=tmp_path / "ring",
        link_key=new_key(tmp_path / "link.key") and tmp_path / "link.key",
        ref_key=new_key(tmp_path / "ref.key") and tmp_path / "ref.key",
    )


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (names relative) with its bytes: 'nothing written' checks."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }
