"""Synthetic worlds and the views of them: normalised fields (scorer, reference) and tokens.

Fields are keyed by the names of the v3 ``composites`` interface: ``forename``, ``surname``
(normalised strings), ``date_of_birth`` (date32), ``postcode`` ('OUT IN'), ``nino``,
``nhs_number``, plus ``sex``. A dataset without an identifier has nulls in its field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from wmw_link.agreement import Agreement, IdentifierType
from wmw_link.normalise import (
    Dates,
    normalise_names,
    normalise_nhs_numbers,
    normalise_ninos,
    normalise_postcodes,
    normalise_sex,
    split_full_names,
)

FIELDS = ("forename", "surname", "date_of_birth", "postcode", "nino", "nhs_number", "sex")
#: Fields the v3 ``composite_inputs`` / ``bloom_inputs`` take (sex is not among them).
COMPOSITE_FIELDS = FIELDS[:-1]
FIELD_TYPES: dict[str, pa.DataType] = {f: pa.string() for f in FIELDS} | {
    "date_of_birth": pa.date32()
}
#: The scored identifier fields (issue 10).
SCORED = ("forename", "surname", "date_of_birth", "postcode")
#: The transform whose pre-hash value is the whole field (a guess of it is a guess of the field).
WHOLE = {
    "forename": "exact",
    "surname": "exact",
    "date_of_birth": "exact",
    "postcode": "unit",
    "nino": "exact",
    "nhs_number": "exact",
    "sex": "exact",
}


@dataclass(frozen=True)
class Column:
    """A token column as the attacker sees it in the published schema."""

    name: str
    kind: str  # hmac | hmac_list | bloom_word | bloom_popcount | ...
    domain: str
    encoding: str
    parts: tuple[tuple[str, str], ...]  # (field, transform) pairs of its pre-hash value

    @property
    def whole_field(self) -> str | None:
        """The field this column's pre-hash value equals, if it is one whole field."""
        if len(self.parts) == 1 and WHOLE.get(self.parts[0][0]) == self.parts[0][1]:
            return self.parts[0][0]
        return None


class Schema(Protocol):
    """What one token schema gives the attacker (published) and the benchmark (tokens)."""

    version: int
    columns: list[Column]

    def composite_inputs(self, fields: Mapping[str, pa.Array]) -> dict[str, pa.Array]: ...

    def bloom_inputs(
        self, fields: Mapping[str, pa.Array]
    ) -> dict[str, tuple[pa.Array, pa.Array]]: ...

    def bloom_names(self, fields: Mapping[str, pa.Array]) -> dict[str, pa.Array]: ...

    def bloom_columns(self) -> dict[str, tuple[list[str], str | None]]: ...


@dataclass
class TargetRun:
    """One tokenised target world: the attacker's tokens and the scorer's truth, row-aligned."""

    schema: Schema
    tokens: pa.Table  # dataset, row_ref, every token column (null where a dataset lacks it)
    truth: pa.Table  # dataset, record_id, FIELDS (normalised), same rows as ``tokens``
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def datasets(self) -> np.ndarray:
        return self.tokens["dataset"].to_numpy(zero_copy_only=False)


def _read(path: Path, columns: list[str]) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path, columns=columns)
    return pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            include_columns=columns,
            strings_can_be_null=False,
        ),
    )


def _on_distinct(fn: Callable[[pa.Array], pa.Array], raw: pa.ChunkedArray) -> pa.Array:
    enc = pc.dictionary_encode(pc.cast(raw, pa.string()).combine_chunks())
    return pc.take(fn(enc.dictionary), enc.indices)


def normalised_fields(
    agreement: Agreement, dataset: str, extract: Path, today: dt.date
) -> pa.Table:
    """``record_id`` and the normalised :data:`FIELDS` of an extract's rows, with the
    product's normalisers (``wmw_link.normalise``); invalid and missing values are null.

    ``kept`` marks the rows ``tokenise`` keeps (record id present and first seen, required
    identifiers valid, some identifier other than sex valid): the v2 path tokenises those.
    """
    ds = agreement.dataset(dataset)
    cols = list(dict.fromkeys([ds.record_id, *(f.column for f in ds.identifiers)]))
    tbl = _read(extract, cols)
    n = tbl.num_rows
    out: dict[str, pa.Array] = {f: pa.nulls(n, FIELD_TYPES[f]) for f in FIELDS}
    required_ok = np.ones(n, bool)
    for f in ds.identifiers:
        raw = tbl[f.column]
        t = f.type
        if t == IdentifierType.FULL_NAME:
            fore, sur = split_full_names(raw)
            out["forename"], out["surname"] = fore.values, sur.values
            vals = sur.values
        elif t in (IdentifierType.FORENAME, IdentifierType.SURNAME):
            vals = out[t.value] = _on_distinct(lambda d: normalise_names(d).values, raw)
        elif t == IdentifierType.DATE_OF_BIRTH:
            parser = Dates(f.format or "%Y-%m-%d", today)
            vals = out["date_of_birth"] = _on_distinct(
                lambda d, parser=parser: parser(d).values, raw
            )
        elif t == IdentifierType.POSTCODE:
            vals = out["postcode"] = _on_distinct(lambda d: normalise_postcodes(d).unit.values, raw)
        else:
            name, fn = {
                IdentifierType.NINO: ("nino", normalise_ninos),
                IdentifierType.NHS_NUMBER: ("nhs_number", normalise_nhs_numbers),
                IdentifierType.SEX: ("sex", normalise_sex),
            }[t]
            vals = out[name] = _on_distinct(lambda d, fn=fn: fn(d).values, raw)  # type: ignore[misc]
        if f.required:
            required_ok &= pc.is_valid(vals).to_numpy(zero_copy_only=False)
    rid = pc.cast(tbl[ds.record_id], pa.string()).combine_chunks()
    rid = pc.if_else(pc.equal(pc.utf8_trim_whitespace(rid), ""), pa.scalar(None, pa.string()), rid)
    usable = np.zeros(n, bool)
    for f in FIELDS[:-1]:
        usable |= pc.is_valid(out[f]).to_numpy(zero_copy_only=False)
    first = np.zeros(n, bool)
    rid_np = rid.to_numpy(zero_copy_only=False)
    valid_rid = pc.is_valid(rid).to_numpy(zero_copy_only=False)
    _, first_idx = np.unique(rid_np[valid_rid].astype(str), return_index=True)
    first[np.flatnonzero(valid_rid)[first_idx]] = True
    kept = first & required_ok & usable
    return pa.table({"record_id": rid, **{f: out[f] for f in FIELDS}, "kept": pa.array(kept)})


def world_fields(
    agreement: Agreement, synth_dir: Path, today: dt.date, kept_only: bool = True
) -> pa.Table:
    """Normalised fields of every dataset of a synthetic world (``dataset`` column first)."""
    from wmw_link.synth.generate import extract_path

    parts = []
    for d in agreement.datasets:
        t = normalised_fields(agreement, d.id, extract_path(synth_dir, d.id), today)
        if kept_only:
            t = t.filter(t["kept"])
        parts.append(t.add_column(0, "dataset", pa.array([d.id] * t.num_rows, pa.string())))
    return pa.concat_tables(parts)


def field_arrays(tbl: pa.Table, names: tuple[str, ...] = FIELDS) -> dict[str, pa.Array]:
    """Field columns of a table as plain arrays (what the composites interface takes)."""
    return {f: tbl[f].combine_chunks() for f in names}


def field_transforms(fields: Mapping[str, pa.Array]) -> dict[str, dict[str, pa.Array]]:
    """Values of the scored fields under their identity transforms (component attack labels)."""
    fore, sur = fields["forename"], fields["surname"]
    first = pc.replace_substring_regex(fore, r" .*$", "")
    return {
        "forename": {"exact": fore, "first_word": first, "key": first},
        "surname": {"exact": sur, "key": pc.replace_substring(sur, " ", "")},
        "date_of_birth": {"exact": pc.cast(fields["date_of_birth"], pa.string())},
        "postcode": {"unit": fields["postcode"]},
    }
