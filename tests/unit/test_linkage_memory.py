"""Memory limit and spill folder of the linkage back end (``--memory-limit``, ``--temp-dir``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from linkage_fixtures import write_fixture

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.cli import main
from wmw_link.errors import ConfigError
from wmw_link.linkage import link
from wmw_link.linkage.backends import open_backend
from wmw_link.resources import (
    DEFAULT_MEMORY_SHARE,
    close_duckdb,
    machine_memory,
    open_duckdb,
    parse_size,
    spark_memory,
)

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"
_UNIT = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def _duck_bytes(text: str) -> float:
    """DuckDB's display of a size (``286.1 MiB``) in bytes."""
    m = re.fullmatch(r"([\d.]+) (KiB|MiB|GiB|TiB)", text)
    assert m, text
    return float(m.group(1)) * _UNIT[m.group(2)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8GB", 8 * 1000**3),
        ("16GiB", 16 * 1024**3),
        ("500 mb", 500 * 1000**2),
        ("1.5GB", 1_500_000_000),
        ("200MiB", 200 * 1024**2),
        ("8g", 8 * 1000**3),
    ],
)
def test_sizes_parse(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["8", "lots", "8XB", "-1GB", "1e3MB", "8 G B", "8Gi", "", "50MB"])
def test_malformed_or_tiny_sizes_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--memory-limit"):
        parse_size(text)


def test_settings_reach_the_duckdb_connection(tmp_path: Path) -> None:
    be = open_backend("duckdb", tmp_path / "run", memory_limit="300MB", temp_dir=tmp_path / "sp")
    try:
        limit = be.scalar("SELECT current_setting('memory_limit')")
        assert abs(_duck_bytes(limit) - 300e6) < 0.001 * 300e6
        assert be.memory_limit == 300_000_000
        spill = Path(be.scalar("SELECT current_setting('temp_directory')"))
        # A private folder inside --temp-dir, not the folder itself.
        assert spill.parent.parent == tmp_path / "sp" and spill.is_dir()
        assert be.scalar("SELECT current_setting('preserve_insertion_order')") is False
    finally:
        be.close()
    assert not spill.exists()  # removed with the back end
    assert (tmp_path / "sp").is_dir()  # the user's folder stays


def test_default_limit_is_a_share_of_the_machine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WMW_DUCKDB_MEMORY_LIMIT", raising=False)
    total = machine_memory()
    assert total
    be = open_backend("duckdb", tmp_path / "run")
    try:
        got = _duck_bytes(be.scalar("SELECT current_setting('memory_limit')"))
        spill = Path(be.scalar("SELECT current_setting('temp_directory')"))
    finally:
        be.close()
    assert abs(got - DEFAULT_MEMORY_SHARE * total) < 0.01 * total
    assert spill == tmp_path / "run" / "duckdb" / "spill"  # default: in the run's temp folder


def test_the_working_database_is_a_scratch_file_removed_on_close(tmp_path: Path) -> None:
    """Tokens live in a database file DuckDB can page (not ``:memory:``), in the private
    folder inside ``--temp-dir``, and go with it."""
    be = open_backend("duckdb", tmp_path / "run", memory_limit="300MB", temp_dir=tmp_path / "sp")
    try:
        be.con.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000)")
        path = Path(be.scalar("SELECT path FROM duckdb_databases() WHERE NOT internal"))
        spill = Path(be.scalar("SELECT current_setting('temp_directory')"))
        assert path.is_file() and path.parent == spill.parent
        assert path.parent.parent == tmp_path / "sp"
    finally:
        be.close()
    assert not path.exists() and not path.parent.exists()
    assert list((tmp_path / "sp").iterdir()) == []


def test_environment_limit_is_used_and_checked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WMW_DUCKDB_MEMORY_LIMIT", "400MB")
    be = open_backend("duckdb", tmp_path / "run")
    try:
        assert be.memory_limit == 400_000_000
    finally:
        be.close()
    monkeypatch.setenv("WMW_DUCKDB_MEMORY_LIMIT", "big")
    with pytest.raises(ConfigError, match="WMW_DUCKDB_MEMORY_LIMIT"):
        open_backend("duckdb", tmp_path / "run2")


def test_scoring_connection_is_limited_and_cleaned(tmp_path: Path) -> None:
    con, spill = open_duckdb("250MB", tmp_path)
    try:
        assert abs(_duck_bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
                   - 250e6) < 0.001 * 250e6  # fmt: skip
        assert spill.parent == tmp_path
    finally:
        close_duckdb(con, spill)
    assert not spill.exists()


def test_temp_dir_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="--temp-dir"):
        open_backend("duckdb", tmp_path / "run", temp_dir=blocker / "sub")


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


def _partition(out: Path) -> set[frozenset[tuple[str, str]]]:
    """The persons of a link as sets of (dataset, row_ref): ids are random per run."""
    persons: dict[str, set[tuple[str, str]]] = {}
    for f in out.glob("*.map.parquet"):
        ds = f.name.removesuffix(".map.parquet")
        m = pd.read_parquet(f)
        for ref, pid in zip(m["row_ref"], m["person_id"], strict=True):
            persons.setdefault(pid, set()).add((ds, ref))
    return {frozenset(s) for s in persons.values()}


def test_link_under_a_low_limit_gives_the_same_persons(
    agreement: Agreement, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    write_fixture(agreement, inbox, n_households=40)
    free = link(agreement, inbox, tmp_path / "free", seed=3, report=False, memory_limit="8GB")
    low = link(
        agreement,
        inbox,
        tmp_path / "low",
        seed=3,
        report=False,
        memory_limit="200MB",
        temp_dir=tmp_path / "spill",
        threads=1,
    )
    assert low.persons == free.persons
    assert _partition(tmp_path / "low") == _partition(tmp_path / "free")
    manifest = json.loads(low.manifest.read_text())
    assert manifest["memory_limit_bytes"] == 200_000_000
    assert list((tmp_path / "spill").iterdir()) == []  # the private spill folder is gone


def test_cli_refuses_a_malformed_memory_limit(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main,
        [
            "link",
            "--agreement",
            str(AGREEMENT),
            "--inputs",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--memory-limit",
            "eight gigs",
        ],
    )
    assert res.exit_code == 1
    assert "--memory-limit: 'eight gigs' is not a size" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_spark_driver_memory_from_the_limit(tmp_path: Path) -> None:
    assert spark_memory(parse_size("8GiB")) == "8192m"
    assert spark_memory(parse_size("1.5GB")) == "1430m"
    # A malformed limit is refused before any JVM starts.
    with pytest.raises(ConfigError, match="--memory-limit"):
        open_backend("spark", tmp_path / "run", memory_limit="8 gigs")


def test_cli_link_passes_memory_limit_and_temp_dir(agreement: Agreement, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    write_fixture(agreement, inbox, n_households=15)
    res = CliRunner().invoke(
        main,
        [
            "link",
            "--agreement",
            str(AGREEMENT),
            "--inputs",
            str(inbox),
            "--out",
            str(tmp_path / "o"),
            "--no-report",
            "--memory-limit",
            "300MiB",
            "--temp-dir",
            str(tmp_path / "spill"),
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "o" / "link-manifest.json").read_text())
    assert manifest["memory_limit_bytes"] == 300 * 1024**2
    assert (tmp_path / "spill").is_dir() and not list((tmp_path / "spill").iterdir())


def test_a_query_larger_than_the_limit_spills_and_completes(tmp_path: Path) -> None:
    n = 10_000_000
    be = open_backend(
        "duckdb", tmp_path / "run", threads=1, memory_limit="100MB", temp_dir=tmp_path / "sp"
    )
    try:
        be.con.execute("SET enable_progress_bar = false")
        # A 10-million-group hash table and a 160 MB in-memory (temporary) result: more than
        # the limit (the source table itself is in the database file). The result stays
        # spilled, to be measured.
        be.con.execute(f"CREATE TABLE big AS SELECT range AS i, hash(range) AS h FROM range({n})")
        be.con.execute("CREATE TEMP TABLE agg AS SELECT h, max(i) AS i FROM big GROUP BY h")
        got = be.rows("SELECT count(*), sum(i) FROM agg")
        spill = Path(be.scalar("SELECT current_setting('temp_directory')"))
        spilled = sum(f.stat().st_size for f in spill.iterdir())
    finally:
        be.close()
    assert got == [(n, n * (n - 1) // 2)]
    assert spilled > 50e6  # DuckDB wrote to the spill folder instead of failing
