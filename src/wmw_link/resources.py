"""Memory limits and spill folders for DuckDB (linkage, benchmark scoring).

DuckDB keeps intermediate results in a buffer pool of at most ``memory_limit`` and writes
what does not fit to ``temp_directory``: with both set, a large link slows down instead of
failing. The limit covers DuckDB's buffer manager only; Python-side objects (pandas frames,
Splink's Python work) come on top, which is why the default is a quarter of the machine's
memory rather than DuckDB's own 80%: DuckDB fills whatever it is given (a 1M-person link
peaked at 8.2 GiB with 60% allowed, 5.4 GiB with 5 GB allowed), and the TTP's box
runs other work beside the link.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from wmw_link.errors import ConfigError

log = logging.getLogger("wmw_link.resources")

#: Default memory limit: this share of the machine's (or the container's) memory.
DEFAULT_MEMORY_SHARE = 0.25
#: Below this DuckDB cannot run Splink's queries on even one thread.
MIN_MEMORY_LIMIT = 100 * 1000**2
_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B|[KMGT])\s*$", re.IGNORECASE)


def parse_size(text: str | int, what: str = "--memory-limit") -> int:
    """A size such as ``8GB``, ``8G``, ``500MiB`` or ``1.5GB`` in bytes (GB = G = 1000^3,
    GiB = 1024^3).

    Raises:
        ConfigError: not a number with a unit, or below :data:`MIN_MEMORY_LIMIT`.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        n = text
    else:
        m = _SIZE.match(str(text))
        # A bare K, M, G or T is read as DuckDB and Spark read it (8G = 8GB).
        unit = m.group(2).upper() if m else ""
        unit = unit + "B" if unit in ("K", "M", "G", "T") else unit
        if not m or unit not in _UNITS:
            raise ConfigError(
                f"{what}: '{text}' is not a size; give a number and a unit, e.g. 8GB, 500MB "
                "or 16GiB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            )
        n = int(float(m.group(1)) * _UNITS[unit])
    if n < MIN_MEMORY_LIMIT:
        raise ConfigError(
            f"{what}: {text} is below the least DuckDB can work with "
            f"({MIN_MEMORY_LIMIT // 1000**2}MB)"
        )
    return n


def machine_memory() -> int | None:
    """Bytes of memory this process may use: physical RAM, or a lower cgroup (container) limit."""
    try:
        total: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        total = None
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(f).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and (total is None or int(raw) < total):
            total = int(raw)
    return total


def default_memory_limit() -> int | None:
    """:data:`DEFAULT_MEMORY_SHARE` of :func:`machine_memory` (None: unknown, DuckDB decides)."""
    total = machine_memory()
    if total is None:
        return None
    return max(int(total * DEFAULT_MEMORY_SHARE), MIN_MEMORY_LIMIT)


def resolve_memory_limit(
    value: str | int | None, env: str = "WMW_DUCKDB_MEMORY_LIMIT"
) -> int | None:
    """The limit in bytes: ``value`` if given, else the environment variable ``env``, else
    :func:`default_memory_limit`."""
    if value is None and os.environ.get(env):
        return parse_size(os.environ[env], env)
    if value is None:
        return default_memory_limit()
    return parse_size(value)


#: The file in each spill folder that names the process using it: ``<host> <pid>``.
OWNER_FILE = "owner"


def private_spill_dir(parent: Path | str, prefix: str = "wmw-spill-") -> Path:
    """A new owner-only folder inside ``parent`` (created if missing) for spill files.

    Spill files hold intermediate tables (tokens, pairs), so they get their own folder, removed
    by the caller when done. The folder names its process (:data:`OWNER_FILE`); folders that
    an earlier process on this host left behind when it was killed (SIGKILL, a power cut) are
    removed first (:func:`sweep_stale_spill_dirs`).

    Raises:
        ConfigError: ``parent`` is not a folder that can be written.
    """
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_spill_dirs(parent, prefix)
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        (folder / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        return folder
    except OSError as e:
        raise ConfigError(
            f"--temp-dir {parent}: cannot create a spill folder there ({e.strerror or e})"
        ) from None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_spill_dirs(parent: Path, prefix: str = "wmw-spill-") -> list[Path]:
    """Remove the spill folders in ``parent`` whose process is gone (this host only).

    A folder is removed only when its :data:`OWNER_FILE` names this host and a process id that
    no longer exists: a live process's folder, another host's (a shared disk) and a folder with
    no owner file (an older wmw-link, or not ours) are left alone. A reused process id keeps a
    stale folder, never the reverse. Folders that cannot be removed are skipped.

    Returns:
        The folders removed.
    """
    host = socket.gethostname()
    removed = []
    for folder in parent.glob(f"{prefix}*"):
        try:
            owner_host, pid = (folder / OWNER_FILE).read_text().split()
            if owner_host != host or _process_alive(int(pid)):
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
            log.warning("removed %s, left behind by process %s (no longer running)", folder, pid)
    return removed


def configure_duckdb(
    con: Any, memory_limit: int | None, spill: Path, threads: int | None = None
) -> None:
    """Set the memory limit, the spill folder and (optionally) threads of a DuckDB connection.

    Insertion order is not preserved: no query here depends on it (maps are put in file order
    by row number), and keeping it makes DuckDB buffer more before it can spill.
    """
    con.execute("SET temp_directory = ?", [spill.as_posix()])
    con.execute("SET preserve_insertion_order = false")
    if memory_limit is not None:
        con.execute("SET memory_limit = ?", [f"{int(memory_limit)}B"])
    if threads:
        con.execute(f"SET threads = {int(threads)}")


def open_duckdb(
    memory_limit: str | int | None = None, temp_dir: Path | str | None = None
) -> tuple[Any, Path]:
    """An in-memory DuckDB connection with a memory limit and a private spill folder.

    Returns:
        The connection and the spill folder; close the connection and remove the folder
        (:func:`close_duckdb`) when done.
    """
    import duckdb

    spill = private_spill_dir(temp_dir if temp_dir is not None else tempfile.gettempdir())
    try:
        con = duckdb.connect(":memory:")
        configure_duckdb(con, resolve_memory_limit(memory_limit), spill)
    except BaseException:
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return con, spill


def close_duckdb(con: Any, spill: Path) -> None:
    """Close a connection from :func:`open_duckdb` and remove its spill folder."""
    con.close()
    shutil.rmtree(spill, ignore_errors=True)


def spark_memory(n_bytes: int) -> str:
    """A byte count in Spark's notation (``spark.driver.memory``), whole MiB."""
    return f"{max(n_bytes // 1024**2, 1)}m"


__all__ = [
    "DEFAULT_MEMORY_SHARE",
    "MIN_MEMORY_LIMIT",
    "close_duckdb",
    "configure_duckdb",
    "default_memory_limit",
    "machine_memory",
    "open_duckdb",
    "parse_size",
    "private_spill_dir",
    "resolve_memory_limit",
    "spark_memory",
    "sweep_stale_spill_dirs",
]
