"""``tokenise()``: one controller's extract -> tokens, payload, manifest, rejects, crosswalk.

The input is streamed in batches; batches are tokenised on ``workers`` processes (results are
written in input order, so the output does not depend on timing) and written as they come back.
All outputs go to temporary files renamed into place only when everything succeeded; the old
manifest is removed first, so a manifest never describes files from another run. A refused run
removes the earlier run's shareable files of the dataset (tokens, payload, manifest, crosswalk
and their sealed copies under ``OUT/sealed/``): they no longer describe the extract, and
leaving them beside the new rejects file would let them be sent by mistake.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wmw_link import freshness
from wmw_link.agreement import Agreement, load_agreement
from wmw_link.errors import ConfigError, InputDataError
from wmw_link.files import atomic_path, sha256_file, write_json_atomic
from wmw_link.keys import SecretKey, load_key
from wmw_link.tokenise.cells import CellScreen, Screened, rejects_for
from wmw_link.tokenise.checks import DEFAULT_MAX_INVALID_SHARE, refusals
from wmw_link.tokenise.manifest import build_manifest
from wmw_link.tokenise.payload import arrow_type
from wmw_link.tokenise.reader import open_input
from wmw_link.tokenise.rejects import (
    CROSSWALK_SCHEMA,
    REJECTED,
    REJECTS_SCHEMA,
    count_rejects,
    duplicates_batch,
    merge,
)
from wmw_link.tokenise.worker import (
    BatchResult,
    BatchWorker,
    Plan,
    init_worker,
    payload_schema,
    run_batch,
    wire_schema,
)

DEFAULT_BATCH_ROWS = 100_000


# Two processes (names | everything else) where there are two cores: with 64-bit integer tokens
# (little to pickle) 1M people's extracts took 17 s on 2 processes against 25 s on 1.
def _usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


DEFAULT_WORKERS = 2 if _usable_cores() >= 2 else 1
# store_schema=False: the dictionary-encoded row refs read back as plain strings.
_PARQUET_OPTS = {"compression": "zstd", "write_statistics": False, "store_schema": False}


@dataclass
class TokeniseResult:
    """What :func:`tokenise` wrote, with counts (no values)."""

    dataset: str
    party: str
    key_check: str
    rows_input: int
    rows_tokens: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    nulled_by_reason: dict[str, int]
    tokens: Path
    payload: Path
    manifest: Path
    rejects: Path
    crosswalk: Path
    seconds: float
    outputs: dict[str, Path] = field(default_factory=dict)
    batches: int = 0
    workers_used: int = 1
    delivery: int = 1

    @property
    def shared_outputs(self) -> list[Path]:
        """Files that leave the controller (tokens and manifest to the TTP, payload to analysts)."""
        return [self.tokens, self.payload, self.manifest]

    @property
    def local_outputs(self) -> list[Path]:
        """Files that stay with the controller."""
        return [self.rejects, self.crosswalk]


def _as_key(key: SecretKey | str | os.PathLike[str], what: str) -> SecretKey:
    if isinstance(key, SecretKey):
        return key
    if key is None:
        raise ConfigError(f"{what} is required")
    return load_key(key)


def _progress(enabled: bool | None, total: int | None) -> contextlib.AbstractContextManager:
    """A rich progress bar on stderr when it is a terminal (or when forced)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(
        TextColumn("tokenising"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    return _ProgressCtx(prog, total)


class _ProgressCtx(contextlib.AbstractContextManager):
    def __init__(self, prog: object, total: int | None) -> None:
        self.prog = prog
        self.total = total

    def __enter__(self) -> _ProgressCtx:
        self.prog.__enter__()  # type: ignore[attr-defined]
        self.task = self.prog.add_task("rows", total=self.total)  # type: ignore[attr-defined]
        return self

    def advance(self, n: int) -> None:
        self.prog.advance(self.task, n)  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self.prog.__exit__(*exc)  # type: ignore[attr-defined]


def _results(
    plan: Plan, batches: Iterator[pa.RecordBatch], workers: int, used: list[int]
) -> Iterator[BatchResult]:
    """Batch results in input order, on ``workers`` processes when there is more than a batch."""
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if workers <= 1 or second is None:
        worker = BatchWorker(plan)
        offset = 0
        for b in _chain(first, second, batches):
            yield worker.process(b, offset)
            offset += b.num_rows
        return
    used[0] = workers
    # Load the nickname table once here: forked workers inherit it instead of each reading it.
    if any(c.name == "fnnick_dob" for c in plan.token_columns()):
        from wmw_link.tokenise.composites import forename_nicknames

        forename_nicknames("a b")  # the nickname table and the name families
    ctx = multiprocessing.get_context(_start_method())
    kw = {"mp_context": ctx, "initializer": init_worker, "initargs": (plan,)}
    # Whole batches per process: every composite needs several identifier columns at once.
    yield from _by_batch(first, second, batches, workers, kw)


def _by_batch(
    first: pa.RecordBatch,
    second: pa.RecordBatch | None,
    batches: Iterator[pa.RecordBatch],
    workers: int,
    kw: dict[str, object],
) -> Iterator[BatchResult]:
    """Whole batches on ``workers`` processes, results in input order."""
    pending: collections.deque[Future[BatchResult]] = collections.deque()
    with ProcessPoolExecutor(workers, **kw) as pool:  # type: ignore[arg-type]
        try:
            offset = 0
            for b in _chain(first, second, batches):
                pending.append(pool.submit(run_batch, b, offset))
                offset += b.num_rows
                while len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _start_method() -> str:
    """``fork`` on Linux: workers start fast and inherit the plan, and a caller's script needs
    no ``if __name__ == "__main__"`` guard (``spawn`` re-imports the main module). Arrow and its
    allocators register at-fork handlers. Elsewhere ``spawn``: on macOS forking a process that
    has loaded system frameworks can crash the child. ``WMW_LINK_MP_START`` overrides."""
    wanted = os.environ.get("WMW_LINK_MP_START")
    methods = multiprocessing.get_all_start_methods()
    if wanted:
        if wanted not in methods:
            raise ConfigError(f"WMW_LINK_MP_START={wanted} is not one of {', '.join(methods)}")
        return wanted
    return "fork" if sys.platform.startswith("linux") and "fork" in methods else "spawn"


def _chain(
    first: pa.RecordBatch, second: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    yield first
    if second is not None:
        yield second
        yield from rest


def tokenise(
    agreement: Agreement | str | os.PathLike[str],
    dataset_id: str,
    input: str | os.PathLike[str] | pa.Table,  # noqa: A002 - the contract's name
    key: SecretKey | str | os.PathLike[str],
    ref_key: SecretKey | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    party: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    workers: int = DEFAULT_WORKERS,
    *,
    today: dt.date | None = None,
    progress: bool | None = None,
    max_invalid_share: float = DEFAULT_MAX_INVALID_SHARE,
    delivery: int | None = None,
) -> TokeniseResult:
    """Tokenise one controller's extract under a data-sharing agreement.

    Args:
        agreement: an :class:`Agreement` or the path of its YAML file.
        dataset_id: the dataset in the agreement (e.g. ``"dwp_claims"``).
        input: CSV or Parquet path in the controller's own column names, or an Arrow table.
        key: the agreement's shared linkage key (a :class:`SecretKey` or a key-file path).
        ref_key: the controller's own row-reference key (never shared).
        out_dir: where ``<dataset>.tokens.parquet`` and the other outputs go.
        party: who runs it; must be the dataset's controller (the default).
        batch_rows: rows per batch (memory is bounded by a few batches).
        workers: processes to tokenise on (batches are written in input order either way).
        today: the date validation uses for "not in the future" (default: today).
        progress: show a progress bar (default: when stderr is a terminal).
        max_invalid_share: refuse the run when more than this share (0 to 1) of a column's
            non-empty values are invalid (missing values and "not known" do not count).
        delivery: this run's delivery number for the dataset (recipients refuse one older than
            they accepted). Default: one more than the counter beside the row-reference key
            file (``<ref-key>.deliveries.json``), which a successful run updates; 1 for an
            in-memory key.

    Returns:
        A :class:`TokeniseResult` with paths and counts.

    Raises:
        PolicyError: the agreement is not in force or ``party`` does not control the dataset.
        InputDataError: the input is missing, unreadable, empty, not UTF-8, or lacks a column;
            or it was refused after reading: a column with more than ``max_invalid_share``
            invalid values (rule 'format'), or no row could be tokenised (rule 'usable_rows').
            Then no tokens, payload or manifest are written, an earlier run's shareable files
            of the dataset in ``out_dir`` are removed, and the local rejects file is kept (the
            exception's ``rejects`` attribute).
        KeyFileError: a key file is unsafe or malformed.
    """
    started = time.perf_counter()
    if not isinstance(agreement, Agreement):
        agreement = load_agreement(agreement)
    dataset = agreement.dataset(dataset_id)
    party = party or dataset.controller
    agreement.require_in_force(today)
    agreement.require_controller_of(party, dataset_id)
    if batch_rows < 1 or workers < 1:
        raise ConfigError("batch_rows and workers must be at least 1")
    if not 0 <= max_invalid_share <= 1:
        raise ConfigError(f"max_invalid_share must be between 0 and 1, not {max_invalid_share}")
    link_key = _as_key(key, "--key (the agreement's linkage key)")
    own_key = _as_key(ref_key, "--ref-key (your own row-reference key)")
    if link_key.check_value() == own_key.check_value():
        raise ConfigError(
            "--key and --ref-key are the same key; the row-reference key must be your own secret"
        )

    counter = freshness.counter_path(own_key.source)
    delivery = freshness.next_delivery(counter, dataset.id, delivery)

    plan = Plan(agreement.id, dataset, link_key, own_key, today or dt.date.today())
    source = open_input(input, plan.input_columns(), dataset.id, batch_rows)
    screen = CellScreen(
        plan.input_columns(), {dataset.record_id, *(f.column for f in dataset.identifiers)}
    )
    screened: dict[int, tuple[str, str]] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        kind: out / f"{dataset.id}.{kind}.parquet"
        for kind in ("tokens", "payload", "rejects", "crosswalk")
    }
    manifest_path = out / f"{dataset.id}.manifest.json"
    token_cols = plan.token_columns()
    payload_fields = dataset.analyst_payload()
    p_schema = payload_schema(
        pa.schema([pa.field(f.name, arrow_type(f.type)) for f in payload_fields])
    )

    rows_in = rows_out = 0
    rejected: Counter[str] = Counter()
    nulled: Counter[str] = Counter()
    non_empty: Counter[str] = Counter()
    seen: set[str] = set()
    problems: list[str] = []
    # The rejects file stays local and is kept even when the run is refused (it says why);
    # the other outputs are renamed into place only when the run is accepted.
    with contextlib.ExitStack() as local:
        tmp_rejects = local.enter_context(atomic_path(paths["rejects"]))
        rejects_writer = pq.ParquetWriter(tmp_rejects, REJECTS_SCHEMA, **_PARQUET_OPTS)
        local.callback(rejects_writer.close)
        try:
            with contextlib.ExitStack() as stack:
                tmp = {
                    k: stack.enter_context(atomic_path(p))
                    for k, p in paths.items()
                    if k != "rejects"
                }
                writers = {
                    "tokens": pq.ParquetWriter(
                        tmp["tokens"], wire_schema(token_cols), **_PARQUET_OPTS
                    ),
                    "payload": pq.ParquetWriter(tmp["payload"], p_schema, **_PARQUET_OPTS),
                    "crosswalk": pq.ParquetWriter(
                        tmp["crosswalk"], CROSSWALK_SCHEMA, **_PARQUET_OPTS
                    ),
                }
                for w in writers.values():
                    stack.callback(w.close)
                bar = stack.enter_context(_progress(progress, source.total_rows))
                used = [1]
                n_batches = 0
                batches = _screen(source.batches, screen, screened)
                for res in _results(plan, batches, workers, used):
                    n_batches += 1
                    res = _reject_screened(res, screened, rows_in)
                    res = _drop_duplicates(res, seen, dataset.record_id)
                    rows_in += res.n_input
                    rows_out += res.tokens.num_rows
                    rejected.update(count_rejects(res.rejects))
                    nulled.update(res.nulled)
                    non_empty.update(res.non_empty)
                    writers["tokens"].write_batch(res.tokens)
                    writers["payload"].write_batch(res.payload)
                    rejects_writer.write_batch(res.rejects)
                    writers["crosswalk"].write_batch(
                        pa.RecordBatch.from_arrays(
                            [res.record_ids, res.tokens.column(0)], schema=CROSSWALK_SCHEMA
                        )
                    )
                    if bar is not None:
                        bar.advance(res.n_input)
                n_rejected = sum(rejected.values())
                # Rows are never lost: every input row is either tokenised or rejected.
                if rows_in != rows_out + n_rejected:
                    raise AssertionError(
                        f"row accounting failed: {rows_in} in, {rows_out} tokenised, "
                        f"{n_rejected} rejected"
                    )
                # Decided on the whole extract, before anything shareable is put in place.
                problems = refusals(
                    dataset,
                    rows_input=rows_in,
                    rows_tokens=rows_out,
                    rejected=rejected,
                    nulled=nulled,
                    non_empty=non_empty,
                    max_share=max_invalid_share,
                )
                if problems:
                    raise _Refused
                for w in writers.values():
                    w.close()
                # A stale manifest must never describe the new files.
                with contextlib.suppress(FileNotFoundError):
                    manifest_path.unlink()
            # (the inner stack has renamed the temporary files into place)
        except _Refused:
            pass  # the inner stack has removed its temporary files; the rejects are kept
        rejects_writer.close()
    # Sealed copies of an earlier run no longer match what is (or is not) here now.
    stale = _remove_stale(out, dataset.id, shareable=bool(problems))
    if problems:
        removed = (
            f"; the earlier run's {', '.join(stale)} were removed (they did not describe "
            "this extract)"
            if stale
            else ""
        )
        err = InputDataError(
            f"{source.label}: refused, " + "; ".join(problems) + ". Nothing shareable was "
            f"written (no tokens, payload or manifest){removed}; the local rejects file "
            f"{paths['rejects']} lists the rows concerned (row number, column, reason; never "
            "a value)."
        )
        err.rejects = paths["rejects"]  # type: ignore[attr-defined]  # for the CLI's run record
        raise err

    key_check = link_key.check_value(agreement.id)
    shipped = {
        "tokens": (paths["tokens"], sha256_file(paths["tokens"]), rows_out),
        "payload": (paths["payload"], sha256_file(paths["payload"]), rows_out),
    }
    manifest = build_manifest(
        agreement=agreement,
        dataset=dataset,
        party=party,
        key_check=key_check,
        token_columns=token_cols,
        payload_types={f.name: f.type.value for f in payload_fields},
        rows_input=rows_in,
        rows_tokens=rows_out,
        rejected_by_reason=rejected,
        nulled_by_reason=nulled,
        files=shipped,
        delivery=delivery,
    )
    write_json_atomic(manifest_path, manifest)
    freshness.record_issued(counter, dataset.id, delivery)
    return TokeniseResult(
        dataset=dataset.id,
        party=party,
        key_check=key_check,
        rows_input=rows_in,
        rows_tokens=rows_out,
        rows_rejected=n_rejected,
        rejected_by_reason=dict(sorted(rejected.items())),
        nulled_by_reason=dict(sorted(nulled.items())),
        tokens=paths["tokens"],
        payload=paths["payload"],
        manifest=manifest_path,
        rejects=paths["rejects"],
        crosswalk=paths["crosswalk"],
        seconds=time.perf_counter() - started,
        outputs={**paths, "manifest": manifest_path},
        batches=n_batches,
        workers_used=used[0],
        delivery=delivery,
    )


class _Refused(Exception):
    """Internal: leave the shareable outputs' temporary files behind (see :func:`tokenise`)."""


def _remove_stale(out: Path, dataset_id: str, *, shareable: bool) -> list[str]:
    """Remove an earlier run's files of the dataset that the current outcome makes stale.

    Sealed copies (``OUT/sealed/<party>/<dataset>.*.sealed``) always go: they are of the
    previous run's files (``--seal-to`` seals the new ones afterwards). With ``shareable``
    (a refused run) the plain tokens, payload, manifest and crosswalk go too.

    Returns:
        The names removed (for the refusal message).
    """
    removed: list[str] = []
    names = [f"{dataset_id}.{k}.parquet" for k in ("tokens", "payload")]
    names.append(f"{dataset_id}.manifest.json")
    if shareable:
        for name in [*names, f"{dataset_id}.crosswalk.parquet"]:
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
                removed.append(name)
    sealed = out / "sealed"
    if sealed.is_dir():
        for party_dir in sorted(p for p in sealed.iterdir() if p.is_dir()):
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    (party_dir / f"{name}.sealed").unlink()
                    removed.append(f"sealed/{party_dir.name}/{name}.sealed")
    return removed


def _screen(
    batches: Iterator[pa.RecordBatch], screen: CellScreen, flagged: dict[int, tuple[str, str]]
) -> Iterator[pa.RecordBatch]:
    """Blank oversized and control-character cells before the workers see them; note the rows."""
    offset = 0
    for b in batches:
        b, found = screen.screen(b, offset)
        flagged.update(found.rows)
        offset += b.num_rows
        yield b


def _reject_screened(
    res: BatchResult, flagged: dict[int, tuple[str, str]], before: int
) -> BatchResult:
    """Take the screened rows of this batch out of the outputs; reject each once, with its reason."""
    first, last = before + 1, before + res.n_input
    mine = {r: flagged.pop(r) for r in [r for r in flagged if first <= r <= last]}
    if not mine:
        return res
    numbers = pa.array(sorted(mine), pa.int64())
    keep = pc.invert(pc.is_in(res.row_numbers, value_set=numbers))
    rej = res.rejects
    # The blanked cell may have made the worker reject the row for another reason: drop that.
    drop = pc.and_(
        pc.is_in(rej.column("row_number"), value_set=numbers),
        pc.equal(rej.column("action"), REJECTED),
    )
    rej = rej.filter(pc.invert(drop))
    return BatchResult(
        n_input=res.n_input,
        row_numbers=pc.filter(res.row_numbers, keep),
        record_ids=pc.filter(res.record_ids, keep),
        tokens=res.tokens.filter(keep),
        payload=res.payload.filter(keep),
        rejects=merge(rej, rejects_for(Screened(mine))),
        nulled=res.nulled,
        non_empty=res.non_empty,
    )


def _drop_duplicates(res: BatchResult, seen: set[str], record_id_column: str) -> BatchResult:
    """Move rows whose record id (row ref) was already seen to the rejects; keep the first."""
    col = res.tokens.column(0)
    # The row-ref dictionary holds the batch's distinct refs: converting it (not the rows, which
    # would go value by value through the dictionary) is the cheap way into Python strings.
    distinct = col.dictionary.to_pylist()
    if len(distinct) == len(col) and seen.isdisjoint(distinct):
        seen.update(distinct)  # the usual case: no duplicate in or before this batch
        return res
    refs = pc.take(col.dictionary, col.indices).to_pylist()
    dup = []
    for r in refs:
        if r in seen:
            dup.append(True)
        else:
            seen.add(r)
            dup.append(False)
    if not any(dup):
        return res
    mask = pa.array(dup)
    keep = pc.invert(mask)
    extra = duplicates_batch(res.row_numbers, record_id_column, mask)
    return BatchResult(
        n_input=res.n_input,
        row_numbers=pc.filter(res.row_numbers, keep),
        record_ids=pc.filter(res.record_ids, keep),
        tokens=res.tokens.filter(keep),
        payload=res.payload.filter(keep),
        rejects=merge(res.rejects, extra),
        nulled=res.nulled,
        non_empty=res.non_empty,
    )
