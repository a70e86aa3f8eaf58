"""File helpers shared by every stage: atomic writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, streamed, as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it into place only on success.

    A crash or Ctrl-C leaves the previous file (or none) in place, never half a file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(
    target: str | os.PathLike[str], data: bytes, mode: int | None = None, durable: bool = False
) -> None:
    """Write ``data`` to ``target`` atomically, optionally with a file mode (e.g. 0o600).

    With ``durable`` the bytes are flushed to the disk before the rename, so a power cut
    leaves the old file or the whole new one, never an empty one (a commit record).
    """
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)


def write_json_atomic(target: str | os.PathLike[str], obj: Any, durable: bool = False) -> None:
    """Write ``obj`` as stable, indented JSON atomically (``durable``: see
    :func:`write_bytes_atomic`)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    write_bytes_atomic(target, text.encode("utf-8"), durable=durable)


def write_parquet_atomic(target: str | os.PathLike[str], table: pa.Table) -> None:
    """Write an Arrow table to Parquet atomically (zstd-compressed)."""
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def restrict_tree(root: str | os.PathLike[str]) -> None:
    """Make ``root`` and everything under it owner-only (files 0600, folders 0700).

    For what the TTP writes: token-derived reports and maps are for its own eyes, and a file
    another library wrote (Splink's ``model.json``) gets the process umask, often 0644.
    """
    root = Path(root)
    if not root.exists():
        return
    os.chmod(root, 0o700 if root.is_dir() else 0o600)
    for base, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(base, d), 0o700)
        for f in files:
            os.chmod(os.path.join(base, f), 0o600)
