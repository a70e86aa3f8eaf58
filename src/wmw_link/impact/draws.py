"""Common random numbers: every random draw of the impact stage comes from the unit's key.

A unit's key is the journeys' ``record_key`` (from the person's records, not their person id:
:mod:`wmw_link.journeys.sql`). Each draw is a keyed hash of (key, seed, purpose, replicate),
so the same person gets the same pseudo-start, the same chance of being sampled for the
propensity and censoring fits and the same bootstrap weights whatever id the linkage gave them
and whoever else is in the data. Re-linking the same records (a person-index refresh, or the
true persons of the synthetic region) then moves the estimate only where the linkage moved
records, not by Monte Carlo noise.

The hash is splitmix64's finaliser (vectorised numpy, no per-unit Python), salted with a
blake2b digest of (seed, purpose, replicate).
"""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Poisson(1) cumulative probabilities up to 20 (beyond: probability below 1e-19).
_POISSON1_CDF = np.cumsum(
    np.exp(-1.0) / np.cumprod(np.concatenate([[1.0], np.arange(1.0, 21.0)]))
)


def key_source(con: duckdb.DuckDBPyConnection) -> str:
    """``records`` if the persons table has ``record_key``, else ``person_id``."""
    cols = {r[0] for r in con.execute("DESCRIBE persons").fetchall()}
    return "records" if "record_key" in cols else "person_id"


def register_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Table ``unit_key(person_id, draw_key UBIGINT)`` for every person.

    The journeys' ``record_key``; for journeys built before it existed (or hand-made tables
    without it) a hash of the person id - draws then follow the id, and a re-linked run draws
    afresh (:func:`key_source` says which).
    """
    if key_source(con) == "records":
        expr = "CAST(record_key AS UBIGINT)"
    else:
        expr = "CAST('0x' || substr(md5('person' || chr(31) || person_id), 1, 16) AS UBIGINT)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE unit_key AS SELECT person_id, {expr} AS draw_key "
        "FROM persons"
    )


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _salt(seed: int, purpose: str, replicate: int) -> np.uint64:
    digest = hashlib.blake2b(f"{seed}/{purpose}/{replicate}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def uniform(keys: np.ndarray, seed: int, purpose: str, replicate: int = 0) -> np.ndarray:
    """One uniform in [0, 1) per key for (seed, purpose, replicate)."""
    k = np.asarray(keys, dtype=np.uint64)
    salt = _salt(seed, purpose, replicate)
    with np.errstate(over="ignore"):
        z = _mix(_mix(k ^ salt) + salt * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def poisson1(keys: np.ndarray, seed: int, purpose: str, replicate: int) -> np.ndarray:
    """One Poisson(1) draw per key (inverse CDF of :func:`uniform`), as float."""
    u = uniform(keys, seed, purpose, replicate)
    return np.searchsorted(_POISSON1_CDF, u, side="right").astype(np.float64)


def smallest(u: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` smallest of ``u``, in position order (a keyed sample)."""
    if n >= len(u):
        return np.arange(len(u))
    return np.sort(np.argpartition(u, n - 1)[:n])
