"""A run's scratch files (tokens, pairs) do not outlive it: on SIGTERM, on a failing close,
and a bad setting is refused before anything is read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wmw_link.errors import ConfigError
from wmw_link.linkage.backends import open_backend


def test_sigterm_runs_the_finally_blocks(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    code = (
        "import os, signal\n"
        "from wmw_link.cli import exit_on_sigterm\n"
        "exit_on_sigterm()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    signal.pause()\n"
        "finally:\n"
        f"    open({str(marker)!r}, 'w').close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == 128 + 15
    assert marker.exists()  # Python's default would have ended the process before this


def test_the_scratch_folder_goes_even_if_closing_fails(tmp_path: Path) -> None:
    be = open_backend("duckdb", tmp_path / "run", memory_limit="300MB", temp_dir=tmp_path / "sp")
    be.con.execute("CREATE TABLE t AS SELECT range AS i FROM range(10)")
    real = be.con

    class Failing:
        def close(self) -> None:
            real.close()
            raise RuntimeError("disk full")

    be.con = Failing()
    with pytest.raises(RuntimeError):
        be.close()
    assert list((tmp_path / "sp").iterdir()) == []


def test_a_bad_block_count_is_refused_before_any_input_is_read(
    tmp_path: Path, monkeypatch
) -> None:
    from wmw_link.agreement import load_agreement
    from wmw_link.linkage import link

    monkeypatch.setenv("WMW_PREDICT_BLOCKS", "lots")
    agreement = load_agreement(Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml")
    with pytest.raises(ConfigError, match="WMW_PREDICT_BLOCKS='lots'"):
        link(agreement, tmp_path / "no-such-inbox", tmp_path / "out")
