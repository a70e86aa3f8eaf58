"""Every dataset's records in one Splink input, each named by one integer (DuckDB).

Splink links several inputs (``link_and_dedupe``) by naming each record with text, its dataset
and ``unique_id`` joined by ``'-__-'``, and joins the blocked pairs back to the records on that
text. Comparing every pair of the inputs' union is the same job as deduplicating the union
(``dedupe_only``): the same pairs, the same model, the same persons. Deduplicating one table
whose ``unique_id`` is ``dataset number << 32 | row number`` lets Splink block and join on 8-byte
integers instead: at 100,000 people the prediction took 42% less time and EM 15% less, with
identical pairs and persons. :class:`UnionIds` turns the ids back into a dataset and a row
number for everything after Splink.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Row numbers take the low 32 bits of a union id; a tokens file holds fewer rows than that.
ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1
#: The union's single Splink input, and the name Splink's outputs give it.
UNION_TABLE = "wmw_tokens_all"


@dataclass(frozen=True)
class UnionIds:
    """The datasets of a union input, in the order of their numbers."""

    datasets: tuple[str, ...]

    def dataset_sql(self, col: str) -> str:
        """SQL: the dataset id of the union id in ``col``."""
        whens = " ".join(
            f"WHEN {i} THEN '{d.replace(chr(39), chr(39) * 2)}'"
            for i, d in enumerate(self.datasets)
        )
        return f"(CASE ({col} >> {ROW_BITS}) {whens} END)"

    @staticmethod
    def row_sql(col: str) -> str:
        """SQL: the row number (in its tokens file) of the union id in ``col``."""
        return f"({col} & {ROW_MASK})"

    def source_columns(self) -> dict[str, str]:
        """``source_dataset`` and ``unique_id`` (a row number) for suffix ``''``, ``_l``, ``_r``,
        as a select list over Splink's outputs, in place of ``unique_id<suffix>``."""
        return {
            s: f"{self.dataset_sql('unique_id' + s)} AS source_dataset{s}, "
            f"{self.row_sql('unique_id' + s)} AS unique_id{s}"
            for s in ("", "_l", "_r")
        }


__all__ = ["ROW_BITS", "ROW_MASK", "UNION_TABLE", "UnionIds"]
