"""A run's scratch files (tokens, pairs) do not outlive it: on SIGTERM, on a failing close,
and a bad setting is refused before anything is read."""

from __future__ import annotations

import os
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


def test_folders_left_by_a_killed_link_are_swept_by_the_next(tmp_path: Path) -> None:
    """A SIGKILLed link cannot clean up: its scratch database (tokens) stays in --temp-dir
    until the next run there removes it; live, foreign and unlabelled folders stay."""
    import socket

    from wmw_link.resources import OWNER_FILE, private_spill_dir

    temp = tmp_path / "sp"
    code = (
        "import os\n"
        "from pathlib import Path\n"
        "from wmw_link.linkage.backends import open_backend\n"
        f"be = open_backend('duckdb', Path({str(tmp_path / 'run')!r}), memory_limit='300MB', "
        f"temp_dir={str(temp)!r})\n"
        "be.con.execute('CREATE TABLE t AS SELECT range AS i FROM range(1000)')\n"
        "be.con.execute('CHECKPOINT')\n"
        "print(be.own_spill, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9
    killed = Path(proc.stdout.strip())
    assert (killed / "link.duckdb").is_file()  # what a SIGKILL leaves
    host = socket.gethostname()
    live = temp / "wmw-spill-live"
    foreign = temp / "wmw-spill-foreign"
    unlabelled = temp / "wmw-spill-unlabelled"
    for folder, owner in ((live, f"{host} 1"), (foreign, "another-host 999999999"),
                          (unlabelled, None)):  # fmt: skip
        folder.mkdir()
        if owner:
            (folder / OWNER_FILE).write_text(owner)

    be = open_backend("duckdb", tmp_path / "run2", memory_limit="300MB", temp_dir=temp)
    try:
        assert not killed.exists()
        assert live.is_dir() and foreign.is_dir() and unlabelled.is_dir()  # pid 1 lives
        assert (be.own_spill / OWNER_FILE).read_text().split() == [host, str(os.getpid())]
    finally:
        be.close()
    assert not be.own_spill.exists()
    assert private_spill_dir(temp).parent == temp
