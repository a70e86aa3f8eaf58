"""Pair counting in DuckDB for scoring clusterings (:mod:`wmw_link.evaluate`, :mod:`wmw_link.equity`).

A group of ``n`` records holds ``n(n-1)/2`` unordered pairs, so every pairwise figure is a sum
of that over some grouping of the records: true positives over (predicted, true) cells,
predicted pairs over predicted clusters, true pairs over true persons. No pair is listed.

The records are first reduced to *cells*: one row per distinct combination of their columns,
with the number ``n`` of records it stands for. Any count over records is the same sum over
cells, whatever the data, and the cells are fewer. DuckDB then aggregates with a memory limit
and spills to disk, where pandas held every intermediate frame in memory (and took minutes per
scoring at 3M people).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from wmw_link.errors import InputDataError


def pairs(x: str) -> str:
    """SQL: the number of unordered pairs in a group of ``x`` records."""
    return f"(({x}) * (({x}) - 1) // 2)"


def quote(name: str) -> str:
    """A column name as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def column_names(frame: pd.DataFrame | pa.Table) -> list[str]:
    return list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)


#: DuckDB types grouped as they are (others are numbered first).
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")


def relation_columns(con: Any, relation: str) -> list[str]:
    """The column names of a table, view or query in a DuckDB connection."""
    return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def _codes(values: Any) -> tuple[pa.Array, np.ndarray | None]:
    """Dense integer codes of a column (null where the value is null) and the distinct values;
    a numeric column as it is (NaN as null), with None for the values.

    DuckDB then groups 4- or 8-byte numbers instead of text or Python objects: several times
    faster, and the same groups, since equal values get equal codes.
    """
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_pandas()
    series = pd.Series(values)
    if pd.api.types.is_integer_dtype(series) or pd.api.types.is_float_dtype(series):
        return pa.array(series, from_pandas=True), None
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return pa.array(codes, mask=codes < 0), np.asarray(uniques, dtype=object)


class Cells:
    """A temporary table of cells (``ds``, ``p``, ``t``, optional columns, ``n``) in ``con``.

    Every column is held as numbers: a numeric column as it is, any other as integer codes that
    :attr:`values` turns back into its values (None for a numeric column).

    Args:
        con: a DuckDB connection (see :func:`wmw_link.resources.open_duckdb`).
        frame: one row per record; ``dataset``, ``pred`` and ``true`` (non-null), plus
            ``extra`` columns kept under their own names. Or the name of a table or view in
            ``con`` with those columns: the cells are then made in the database.
        extra: further columns to keep (household, person-level groups).

    Raises:
        InputDataError: a column is missing, or a predicted or true label is empty.
    """

    def __init__(self, con: Any, frame: pd.DataFrame | pa.Table | str, extra: list[str]) -> None:
        self.con = con
        self.values: dict[str, np.ndarray | None] = {}
        self.extra = list(extra)
        tag = uuid.uuid4().hex[:12]
        self.table = f"wmw_cells_{tag}"
        self._persons: str | None = None
        if isinstance(frame, str):
            self._from_relation(frame, extra)
            return
        missing = {"dataset", "pred", "true"} - set(column_names(frame))
        if missing:
            raise InputDataError(f"score(): missing column(s) {', '.join(sorted(missing))}")
        names = {"dataset": "ds", "pred": "p", "true": "t"} | {c: c for c in extra}
        arrays = {}
        for col, short in names.items():
            codes, uniques = _codes(frame[col])
            if col in ("pred", "true") and codes.null_count:
                raise InputDataError(
                    f"score(): column {col} is empty in {codes.null_count:,} row(s); every "
                    "scored record needs a predicted and a true label"
                )
            arrays[short] = codes
            self.values[short] = uniques
        rows = f"wmw_rows_{tag}"
        con.register(rows, pa.table(arrays))
        try:
            keep = "".join(f", {quote(c)}" for c in extra)
            con.execute(
                f"CREATE TEMP TABLE {self.table} AS SELECT ds, p, t{keep}, count(*)::BIGINT AS n "
                f"FROM {rows} GROUP BY ALL"
            )
        finally:
            con.unregister(rows)

    def _from_relation(self, relation: str, extra: list[str]) -> None:
        """The cells of a table or view already in the connection, built there: millions of
        records never pass through Python. Labels that are not integers are numbered in the
        database (equal values, equal numbers), so the many counts after group 8-byte
        integers; the extra columns keep their values (:attr:`values` None)."""
        types = {
            r[0]: r[1] for r in self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        }
        missing = {"dataset", "pred", "true"} - set(types)
        if missing:
            raise InputDataError(
                f"score(): {relation}: missing column(s) {', '.join(sorted(missing))}"
            )
        empty = self.con.execute(
            f'SELECT count(*) FILTER (pred IS NULL), count(*) FILTER ("true" IS NULL) '
            f"FROM {relation}"
        ).fetchall()[0]
        for col, k in zip(("pred", "true"), empty, strict=True):
            if k:
                raise InputDataError(
                    f"score(): column {col} is empty in {k:,} row(s); every "
                    "scored record needs a predicted and a true label"
                )
        keep = "".join(f", {quote(c)}" for c in extra)
        self.values = {"ds": None, "p": None, "t": None} | {c: None for c in extra}
        # Records to cells first (fewer rows), then each label that is not an integer to a
        # dense number.
        codes, joins, cols = [], [], []
        for col, short in (("dataset", "ds"), ("pred", "p"), ("true", "t")):
            if types[col].upper() in INTEGER_TYPES or types[col].upper().startswith("ENUM("):
                cols.append(short)
                continue
            codes.append(
                f"{short}_codes AS (SELECT {short}, row_number() OVER () AS {short}_code "
                f"FROM (SELECT DISTINCT {short} FROM c))"
            )
            joins.append(f" JOIN {short}_codes USING ({short})")
            cols.append(f"{short}_code AS {short}")
        self.con.execute(
            f"""
            CREATE TEMP TABLE {self.table} AS
            WITH c AS (
                SELECT dataset AS ds, pred AS p, "true" AS t{keep}, count(*)::BIGINT AS n
                FROM {relation} GROUP BY ALL){"".join(", " + c for c in codes)}
            SELECT {", ".join(cols)}{keep}, n FROM c{"".join(joins)}
            """
        )

    def pairs(self, keys: str, where: str = "TRUE") -> int:
        """Pairs of records that agree on ``keys`` (SQL column list), among ``where``.

        Counts that do not involve ``ds`` run on :meth:`persons`: fewer rows, and with ``p``
        or ``t`` among the keys, rows alone in their cluster or person are whole groups and
        are not grouped again.
        """
        names = {k.strip() for k in keys.split(",")}
        if "ds" in names or re.search(r"\bds\b", where):
            got = self.con.execute(
                f"SELECT coalesce(sum({pairs('m')}), 0) FROM "
                f"(SELECT sum(n) AS m FROM {self.table} WHERE {where} GROUP BY {keys})"
            ).fetchall()[0][0]
            return int(got)
        alone = (
            " OR ".join(f"{c} = 1" for k, c in (("p", "prow"), ("t", "trow")) if k in names)
            or "FALSE"
        )
        got = self.con.execute(
            f"""
            WITH f AS (SELECT * FROM {self.persons()} WHERE {where})
            SELECT coalesce((SELECT sum({pairs("n")}) FROM f WHERE {alone}), 0)
                + coalesce((SELECT sum({pairs("m")}) FROM
                    (SELECT sum(n) AS m FROM f WHERE NOT ({alone}) GROUP BY {keys})), 0)
            """
        ).fetchall()[0][0]
        return int(got)

    def scalar_row(self, sql: str) -> tuple[Any, ...]:
        """One row of a query in which ``{cells}`` names the cells table."""
        return tuple(self.con.execute(sql.format(cells=self.table)).fetchone())

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query in which ``{cells}`` names the cells table."""
        return [tuple(r) for r in self.con.execute(sql.format(cells=self.table)).fetchall()]

    def persons(self) -> str:
        """A temporary table of the cells without ``ds`` (``p``, ``t``, the extra columns,
        ``n``), each row with ``size`` (records of its predicted cluster), ``prow`` (rows of
        its cluster) and ``trow`` (rows of its true person); made on first use.

        A row alone in its cluster (prow 1) or person (trow 1) is a whole group of any
        grouping by (p, ...) or (t, ...), so the counts by group can take it as it is and
        group only the few clusters and persons that are split or merged.
        """
        if self._persons is None:
            name = f"{self.table}_pt"
            keep = "".join(f", {quote(c)}" for c in self.extra)
            self.con.execute(
                f"""
                CREATE TEMP TABLE {name} AS
                WITH x AS (SELECT p, t{keep}, sum(n) AS n FROM {self.table} GROUP BY ALL)
                SELECT x.*, ps.size, ps.prow, ts.trow FROM x
                JOIN (SELECT p, sum(n) AS size, count(*) AS prow FROM x GROUP BY p) ps USING (p)
                JOIN (SELECT t, count(*) AS trow FROM x GROUP BY t) ts USING (t)
                """
            )
            self._persons = name
        return self._persons

    def drop(self) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {self.table}")
        if self._persons is not None:
            self.con.execute(f"DROP TABLE IF EXISTS {self._persons}")


__all__ = ["Cells", "column_names", "pairs", "quote", "relation_columns"]
