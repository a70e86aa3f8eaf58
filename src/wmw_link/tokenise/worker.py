"""Per-batch work: normalise identifiers, make tokens, parse payload, decide rejects.

A :class:`BatchWorker` lives in each worker process (or in the main process for small inputs)
and keeps its caches of distinct values across batches. It returns only kept rows' tokens and
payload, plus the rejects; duplicate record ids across batches are caught by the main process.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wmw_link import token_schema as ts
from wmw_link.agreement import Dataset, IdentifierField, IdentifierType
from wmw_link.keys import SecretKey
from wmw_link.normalise import (
    Dates,
    Normalised,
    blank_to_null,
    count_reasons,
    normalise_any_postcodes,
    normalise_identifiers,
    normalise_names,
    normalise_nhs_numbers,
    normalise_ninos,
    normalise_postcodes,
    normalise_sex,
    normalise_texts,
    split_full_names,
)
from wmw_link.normalise._base import MISSING
from wmw_link.tokenise.bloom import bloom_for
from wmw_link.tokenise.composites import bloom_names, composite_inputs
from wmw_link.tokenise.payload import PayloadParser, arrow_type
from wmw_link.tokenise.rejects import (
    MISSING_RECORD_ID,
    NO_USABLE_IDENTIFIERS,
    REJECTED,
    REJECTS_SCHEMA,
    merge,
    nulled_batch,
)
from wmw_link.tokenise.tokens import (
    WIRE_STRING,
    Hasher,
    RefTokenizer,
    composite_tokens,
    ref_tokens,
)

_NULL_STR = pa.scalar(None, pa.string())


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs (picklable; keys stay on this machine)."""

    agreement_id: str
    dataset: Dataset
    key: SecretKey
    ref_key: SecretKey
    today: dt.date

    def input_columns(self) -> list[str]:
        """The columns the agreement names for the dataset, each once, in a fixed order."""
        ds = self.dataset
        cols = [ds.record_id] + [f.column for f in ds.identifiers]
        cols += [f.column for f in ds.analyst_payload()]
        return list(dict.fromkeys(cols))

    def token_columns(self) -> list[ts.TokenColumn]:
        return ts.columns_for_dataset(self.dataset)

    def labels(self) -> list[str]:
        """The labels of ``nulled_by_reason`` and the rejects file, in the agreement's order."""
        out: list[str] = []
        for f in self.dataset.identifiers:
            if f.type == IdentifierType.FULL_NAME:
                out += [f"{f.column}/forename", f"{f.column}/surname"]
            else:
                out.append(f.column)
        out += [f"payload.{f.name}" for f in self.dataset.analyst_payload()]
        return list(dict.fromkeys(out))


@dataclass
class BatchResult:
    """What one batch gives back to the writer."""

    n_input: int
    row_numbers: pa.Array  # int64, of kept rows
    record_ids: pa.Array  # string, of kept rows
    tokens: pa.RecordBatch  # row_ref + token columns, kept rows
    payload: pa.RecordBatch  # row_ref + payload, kept rows
    rejects: pa.RecordBatch  # row_number, column, reason, action (rejected rows, nulled values)
    nulled: Counter[str]
    non_empty: Counter[str] = field(default_factory=Counter)  # non-empty values by label


def row_ref_tokenizer(ref_key: SecretKey, agreement_id: str, dataset_id: str) -> RefTokenizer:
    """Record id -> row ref for one dataset, under the controller's own row-reference key.

    The dataset id is hashed with the record id so that equal ids in two datasets of the same
    controller give different row refs. ``wmw-link withdraw`` derives its row refs with this
    function too, so that a withdrawal names exactly the rows tokenise wrote.
    """
    return Hasher(ref_key, agreement_id).ref_tokenizer(ts.DOMAIN_ROW_REF, dataset_id)


def row_refs(record_ids: pa.Array, tokenizer: RefTokenizer) -> pa.Array:
    """Row refs of raw record ids as :meth:`BatchWorker.compute` makes them: trimmed, a blank
    id gives null; a dictionary array."""
    return ref_tokens(blank_to_null(record_ids), tokenizer)


class BatchWorker:
    """Turns raw string batches into tokens, payload and rejects."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        hasher = Hasher(plan.key, plan.agreement_id)
        self._row_ref = row_ref_tokenizer(plan.ref_key, plan.agreement_id, plan.dataset.id)
        self._token_columns = plan.token_columns()
        self._hashed = [c for c in self._token_columns if c.kind != "bloom_word"]
        # A subkey per column. NINos and NHS numbers repeat across batches (several records
        # per person) and are cached; composites are nearly unique and are not.
        self._tokenizers = {
            c.name: hasher.cached_tokenizer(c.domain)
            if c.name in ("nino", "nhs")
            else hasher.tokenizer(c.domain)
            for c in self._hashed
        }
        present = {c.name for c in self._token_columns}
        texts = [ts.text_filter(f.token_name) for f in plan.dataset.identifiers
                 if f.type == IdentifierType.TEXT]  # fmt: skip
        self._blooms = {
            part: bloom_for(hasher.derive, part)
            for part in (ts.FORENAME, ts.SURNAME, *texts)
            if set(ts.bloom_columns(part)) <= present
        }
        self._parsers: dict[str, Dates] = {}
        self._payload = PayloadParser(plan.dataset.analyst_payload(), plan.today)

    # -- identifiers -----------------------------------------------------------------------

    def _identifier(
        self, f: IdentifierField, raw: pa.Array, fields: dict[str, pa.Array], part: Partial
    ) -> tuple[pa.Array, pa.Array]:
        """Normalise one identifier column into ``fields`` (by token source); returns the
        (valid mask, reasons) that decide whether it makes a row usable."""
        t = f.type
        if t in (IdentifierType.FORENAME, IdentifierType.SURNAME):
            n = on_distinct(normalise_names, raw)
            part.note(f.column, n.reasons)
            fields[t.value] = n.values
            return pc.is_valid(n.values), n.reasons
        if t == IdentifierType.FULL_NAME:
            fore, sur = split_full_names(raw)
            part.note(f"{f.column}/forename", fore.reasons)
            part.note(f"{f.column}/surname", sur.reasons)
            fields[ts.FORENAME], fields[ts.SURNAME] = fore.values, sur.values
            # The full name is usable when its surname part is; the reason is the surname's.
            return pc.is_valid(sur.values), sur.reasons
        if t == IdentifierType.DATE_OF_BIRTH:
            parser = self._parsers.get(f.column)
            if parser is None:
                parser = self._parsers[f.column] = Dates(f.date_format, self.plan.today, f.max_age)
            n = parser(raw)
            part.note(f.column, n.reasons)
            fields[ts.DOB] = n.values
            return pc.is_valid(n.values), n.reasons
        if t == IdentifierType.POSTCODE and f.country != "gb":
            n = on_distinct(normalise_any_postcodes, raw)
            part.note(f.column, n.reasons)
            fields[ts.POSTCODE] = n.values
            return pc.is_valid(n.values), n.reasons
        if t in (IdentifierType.IDENTIFIER, IdentifierType.TEXT):
            generic = t == IdentifierType.IDENTIFIER
            n = on_distinct(normalise_identifiers if generic else normalise_texts, raw)
            part.note(f.column, n.reasons)
            source = ts.identifier_source if generic else ts.text_source
            fields[source(f.token_name)] = n.values
            return pc.is_valid(n.values), n.reasons
        if t == IdentifierType.POSTCODE:
            enc = pc.dictionary_encode(raw)
            p = normalise_postcodes(enc.dictionary)
            unit = pc.take(p.unit.values, enc.indices)
            reasons = _reasons_to_rows(p.unit.reasons, enc.indices)
            part.note(f.column, reasons)
            fields[ts.POSTCODE] = unit
            return pc.is_valid(unit), reasons
        simple = {
            IdentifierType.NINO: (ts.NINO, normalise_ninos),
            IdentifierType.NHS_NUMBER: (ts.NHS, normalise_nhs_numbers),
            IdentifierType.SEX: ("sex", normalise_sex),
        }
        source, fn = simple[t]
        n = on_distinct(fn, raw)
        part.note(f.column, n.reasons)
        fields[source] = n.values
        return pc.is_valid(n.values), n.reasons

    def _tokens(self, fields: dict[str, pa.Array], out: dict[str, pa.Array]) -> None:
        """Every token column of the dataset from its normalised fields."""
        for name, values in composite_inputs(fields, self._hashed).items():
            out[name] = composite_tokens(values, self._tokenizers[name])
        for part, (names, salts) in bloom_names(fields).items():
            if part in self._blooms:
                words = self._blooms[part].encode(names, salts)
                out.update(zip(ts.bloom_columns(part), words, strict=True))

    # -- a batch ---------------------------------------------------------------------------

    def process(self, batch: pa.RecordBatch, row_offset: int) -> BatchResult:
        """Tokenise one batch whose first row is data row ``row_offset + 1``."""
        return finish(self.plan, [self.compute(batch)], row_offset)

    def compute(self, batch: pa.RecordBatch) -> Partial:
        """Row refs, payload, normalised identifiers and tokens of one batch, before rejects."""
        ds = self.plan.dataset
        part = Partial(n_rows=batch.num_rows)
        part.record_id = blank_to_null(batch.column(ds.record_id))
        part.row_ref = ref_tokens(part.record_id, self._row_ref)
        part.payload, payload_notes = self._payload.parse(batch)
        for label, n_non_empty, reasons in payload_notes:
            part.non_empty[label] += n_non_empty
            if reasons is not None:
                part.note_invalid(label, reasons)
        fields: dict[str, pa.Array] = {}
        for i, f in enumerate(ds.identifiers):
            valid, reasons = self._identifier(f, batch.column(f.column), fields, part)
            if f.type != IdentifierType.SEX:
                # Sex alone cannot link a record: it does not make a row usable.
                part.usable = valid if part.usable is None else pc.or_(part.usable, valid)
            if f.required:
                part.required.append((i, f.column, reasons))
        fields.pop("sex", None)  # normalised and counted, never tokenised
        self._tokens(fields, part.tokens)
        return part


@dataclass
class Partial:
    """One column group's share of a batch, before rejects are decided."""

    n_rows: int
    tokens: dict[str, pa.Array] = field(default_factory=dict)
    usable: pa.Array | None = None
    required: list[tuple[int, str, pa.Array]] = field(default_factory=list)
    nulled: Counter[str] = field(default_factory=Counter)
    non_empty: Counter[str] = field(default_factory=Counter)
    # Invalid (not missing) values: (label, row indices in the batch, reasons), for the rejects.
    invalid: list[tuple[str, pa.Array, pa.Array]] = field(default_factory=list)
    record_id: pa.Array | None = None
    row_ref: pa.Array | None = None
    payload: list[pa.Array] | None = None

    def note(self, label: str, reasons: pa.Array) -> None:
        """Count a column's null reasons (``label:reason``) and non-empty values, and keep the
        rows of its invalid values (only these: a batch is mostly valid or missing)."""
        counts = count_reasons(reasons, label)
        n_missing = counts.get(f"{label}:{MISSING}", 0)
        self.nulled.update(counts)
        self.non_empty[label] += len(reasons) - n_missing
        if sum(counts.values()) > n_missing:
            bad = pc.fill_null(pc.not_equal(reasons, pa.scalar(MISSING)), False)
            self.invalid.append((label, pc.indices_nonzero(bad), pc.filter(reasons, bad)))

    def note_invalid(self, label: str, reasons: pa.Array) -> None:
        """Count and keep invalid values only (``reasons`` null where valid or missing)."""
        self.nulled.update(count_reasons(reasons, label))
        bad = pc.is_valid(reasons)
        self.invalid.append((label, pc.indices_nonzero(bad), pc.filter(reasons, bad)))


def finish(plan: Plan, parts: list[Partial], row_offset: int) -> BatchResult:
    """Merge column groups, decide rejects (first reason wins), keep the other rows."""
    ds = plan.dataset
    n_rows = parts[0].n_rows
    rest = next(p for p in parts if p.row_ref is not None)
    record_id, row_ref = rest.record_id, rest.row_ref
    assert record_id is not None and row_ref is not None and rest.payload is not None
    out: dict[str, pa.Array] = {}
    nulled: Counter[str] = Counter()
    non_empty: Counter[str] = Counter()
    invalid: list[tuple[str, pa.Array, pa.Array]] = []
    usable = pa.array(np.zeros(n_rows, bool))
    required: list[tuple[int, str, pa.Array]] = []
    for p in parts:
        out.update(p.tokens)
        nulled.update(p.nulled)
        non_empty.update(p.non_empty)
        invalid += p.invalid
        if p.usable is not None:
            usable = pc.or_(usable, p.usable)
        required += p.required
    required.sort(key=lambda r: r[0])  # the agreement's order, whichever group computed it

    # Reasons in priority order: the first that applies is the row's reason.
    checks: list[tuple[pa.Array, pa.Scalar, pa.Array | pa.Scalar]] = [
        (pc.is_null(record_id), pa.scalar(ds.record_id), pa.scalar(MISSING_RECORD_ID))
    ]
    for _, column, reasons in required:
        checks.append((pc.is_valid(reasons), pa.scalar(column), reasons))
    checks.append((pc.invert(usable), _NULL_STR, pa.scalar(NO_USABLE_IDENTIFIERS)))
    reject_col = pa.nulls(n_rows, pa.string())
    reject_why = pa.nulls(n_rows, pa.string())
    decided = pa.array(np.zeros(n_rows, bool))
    for cond, col, why in checks:
        new = pc.and_(cond, pc.invert(decided))
        reject_col = pc.if_else(new, col, reject_col)
        reject_why = pc.if_else(new, why, reject_why)
        decided = pc.or_(decided, cond)
    keep = pc.invert(decided)

    row_numbers = pa.array(np.arange(row_offset + 1, row_offset + n_rows + 1, dtype=np.int64))
    n_rejected = pc.sum(pc.cast(decided, pa.int64())).as_py() or 0
    rejects = pa.RecordBatch.from_arrays(
        [pc.filter(row_numbers, decided), pc.filter(reject_col, decided),
         pc.filter(reject_why, decided), pa.array([REJECTED] * n_rejected, pa.string())],
        schema=REJECTS_SCHEMA,
    )  # fmt: skip
    if invalid:
        # Within a row: the nulled values (in column order), then the rejection.
        order = {label: i for i, label in enumerate(plan.labels())}
        rejects = merge(nulled_batch(row_offset, invalid, order), rejects)
    cols = plan.token_columns()

    def kept(a: pa.Array) -> pa.Array:
        return a if n_rejected == 0 else pc.filter(a, keep)  # most batches reject nothing

    tokens = pa.RecordBatch.from_arrays(
        [kept(row_ref)] + [kept(out[c.name]) for c in cols], schema=wire_schema(cols)
    )
    fields = pa.schema([pa.field(f.name, arrow_type(f.type)) for f in ds.analyst_payload()])
    payload = pa.RecordBatch.from_arrays(
        [kept(row_ref)] + [kept(a) for a in rest.payload], schema=payload_schema(fields)
    )
    return BatchResult(
        n_input=n_rows,
        row_numbers=kept(row_numbers),
        record_ids=kept(record_id),
        tokens=tokens,
        payload=payload,
        rejects=rejects,
        nulled=nulled,
        non_empty=non_empty,
    )


def _reasons_to_rows(reasons: pa.Array, indices: pa.Array) -> pa.Array:
    """Spread per-distinct-value reasons to rows; a null index is a missing cell."""
    return pc.if_else(pc.is_null(indices), pa.scalar(MISSING), pc.take(reasons, indices))


def on_distinct(fn: Callable[[pa.Array], Normalised], raw: pa.Array) -> Normalised:
    """Run a normaliser over the distinct values of ``raw`` only, then spread to rows.

    Identifier columns repeat a lot (names above all); the regular expressions then run once
    per distinct value instead of once per row.
    """
    enc = pc.dictionary_encode(raw)
    n = fn(enc.dictionary)
    return Normalised(pc.take(n.values, enc.indices), _reasons_to_rows(n.reasons, enc.indices))


def payload_schema(fields: pa.Schema) -> pa.Schema:
    """The payload batches' schema: ``row_ref`` then the typed payload fields."""
    return pa.schema([pa.field(ts.ROW_REF, WIRE_STRING, nullable=False), *fields])


def wire_schema(columns: list[ts.TokenColumn]) -> pa.Schema:
    """The token batches' schema (row refs as dictionaries; files read them back as strings)."""
    return pa.schema(
        [pa.field(ts.ROW_REF, WIRE_STRING, nullable=False)]
        + [pa.field(c.name, c.arrow_type) for c in columns]
    )


# -- worker-process plumbing ---------------------------------------------------------------

_WORKER: BatchWorker | None = None


def init_worker(plan: Plan) -> None:
    """Process-pool initialiser: one :class:`BatchWorker` per process."""
    global _WORKER
    _WORKER = BatchWorker(plan)


def run_batch(batch: pa.RecordBatch, row_offset: int) -> BatchResult:
    """Process-pool task: a whole batch."""
    assert _WORKER is not None, "init_worker was not called"
    return _WORKER.process(batch, row_offset)
