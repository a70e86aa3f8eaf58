"""Finding 5: huge cells. Over 64 KiB (identifiers) or 1 MiB (payload) a row is rejected with
reason cell_too_large; a 50 MB cell is refused with a clear message; memory stays bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _adv import AGREEMENT, dwp_rows, write_dwp
from click.testing import CliRunner

from wmw_link.cli import main
from wmw_link.errors import InputDataError
from wmw_link.tokenise.cells import IDENTIFIER_CELL_LIMIT, PAYLOAD_CELL_LIMIT

SRC = Path(__file__).resolve().parents[2] / "src"


def test_oversized_cells_are_rejected_row_by_row(parties) -> None:
    rows = dwp_rows(10)
    rows[2][2] = "A" * (IDENTIFIER_CELL_LIMIT + 1)  # a forename
    rows[5][7] = "U" * (PAYLOAD_CELL_LIMIT + 1)  # the benefit payload field
    rows[7][3] = "B" * IDENTIFIER_CELL_LIMIT  # at the limit: kept
    res = parties.tokenise(rows)
    assert res.rows_tokens == 8
    assert res.rejected_by_reason == {
        "first_name:cell_too_large": 1,
        "benefit:cell_too_large": 1,
    }
    manifest = json.loads(res.manifest.read_text())
    assert manifest["rows"]["rejected_by_reason"]["benefit:cell_too_large"] == 1


def test_a_50_mb_cell_gets_a_clear_message(parties, tmp_path) -> None:
    rows = dwp_rows(3)
    rows[1][2] = "A" * (50 << 20)
    src = write_dwp(tmp_path / "huge.csv", rows)
    with pytest.raises(InputDataError, match="rule 'cell_size': data row 2") as exc:
        _tokenise_file(parties, src)
    assert "AAAA" not in str(exc.value)
    r = CliRunner().invoke(main, [
        "--audit-log", str(tmp_path / "a.jsonl"), "tokenise", "--agreement", str(AGREEMENT),
        "--dataset", "dwp_claims", "--input", str(src), "--key", str(parties.link_key),
        "--ref-key", str(parties.ref_key), "--out", str(tmp_path / "o"),
    ])  # fmt: skip
    assert r.exit_code == 1 and "rule 'cell_size'" in r.output
    assert "internal error" not in r.output


def _tokenise_file(parties, src: Path):
    from wmw_link.tokenise import tokenise

    return tokenise(parties.agreement, "dwp_claims", src, parties.link_key, parties.ref_key,
                    parties.root / "o", workers=1)  # fmt: skip


_PEAK = """
import re, sys, datetime as dt
from wmw_link.tokenise import tokenise
tokenise(sys.argv[1], "dwp_claims", sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5],
         workers=1, today=dt.date(2026, 6, 1))
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec.
print(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
"""


def _peak_kib(parties, src: Path, out: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(AGREEMENT), str(src), str(parties.link_key),
         str(parties.ref_key), str(out)],
        capture_output=True, text=True, timeout=120, check=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return int(done.stdout.strip().splitlines()[-1])


def test_an_8_mb_cell_costs_less_than_twice_the_memory(parties, tmp_path) -> None:
    rows = dwp_rows(2000)
    plain = write_dwp(tmp_path / "plain.csv", rows)
    rows[1000][3] = "Z" * (8 << 20)  # an 8 MB surname
    huge = write_dwp(tmp_path / "huge8.csv", rows)
    base = _peak_kib(parties, plain, tmp_path / "o1")
    with_cell = _peak_kib(parties, huge, tmp_path / "o2")
    assert with_cell < 2 * base, (base, with_cell)
