"""``generate()``: the whole synthetic run, chunk by chunk, streamed to disk.

People are generated in fixed-size chunks, each from its own child of the run's
``SeedSequence``, and every extract is appended chunk by chunk, so memory stays bounded and the
output depends only on ``people``, ``seed`` and the error rates (byte-identical for the same
arguments).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import ValidationError

from wmw_link.errors import ConfigError
from wmw_link.files import atomic_path, sha256_file, write_json_atomic
from wmw_link.synth import effects, labour, regions
from wmw_link.synth.deliveries import (
    CorrectionRates,
    DeliveriesResult,
    check_deliveries,
    prepare_root,
    write_deliveries,
)
from wmw_link.synth.events import WINDOW_FIRST_DAY, WINDOW_LAST_DAY
from wmw_link.synth.extracts import DATASETS, FORMATS, build_chunk, employer_refs, with_record_ids
from wmw_link.synth.ids import MAX_PEOPLE
from wmw_link.synth.labour import Labour
from wmw_link.synth.names import load_pools
from wmw_link.synth.population import People, make_people
from wmw_link.synth.profiles import Profile, get_profile
from wmw_link.synth.rates import ErrorRates
from wmw_link.synth.stats import Tally

CHUNK_PEOPLE = 100_000  # fixed: changing it changes every output for a given seed
_CSV_OPTIONS = pacsv.WriteOptions(include_header=True, quoting_style="needed")


@dataclass
class SynthResult:
    """Where a synthetic run wrote its files, and how many rows each holds."""

    out: Path
    extracts: dict[str, Path]
    truth: Path
    people: Path
    summary: Path
    rows: dict[str, int]
    seconds: float
    true_effect: dict[str, float] = field(default_factory=dict)
    #: ``deliveries/`` when monthly deliveries were written (``generate(..., deliveries=K)``).
    deliveries: DeliveriesResult | None = None


def extract_path(out: Path, dataset: str) -> Path:
    """Where ``dataset``'s extract lives under ``out`` (Parquet for HMRC, CSV otherwise)."""
    ext = "parquet" if dataset == "hmrc_rti" else "csv"
    return out / "extracts" / f"{dataset}.{ext}"


def _check_args(
    people: int, seed: int, out: str | os.PathLike[str], rates: Any, profile: Profile
) -> tuple[Path, ErrorRates]:
    if (
        isinstance(people, bool)
        or not isinstance(people, int | np.integer)
        or not 1 <= people <= MAX_PEOPLE
    ):
        raise ConfigError(f"people must be a whole number from 1 to {MAX_PEOPLE:,}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError("seed must be a whole number of 0 or more")
    if rates is None:
        rates = profile.errors
    elif not isinstance(rates, ErrorRates):
        try:  # a mapping overrides some of the profile's rates
            rates = ErrorRates.model_validate({**profile.errors.model_dump(), **rates})
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, x['loc'])) or 'rates'}: {x['msg']}" for x in e.errors()
            )
            raise ConfigError(f"error rates: {problems}") from None
    path = Path(out)
    try:
        (path / "extracts").mkdir(parents=True, exist_ok=True)
        (path / "truth").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"{path}: cannot create the output directory ({type(e).__name__})"
        ) from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{path}: the output directory is not writable")
    return path, rates


def _people_table(people: People, lab: Labour) -> pa.Table:
    group5 = np.array([regions.ETHNIC_GROUP5[g] for g in people.ethnicity], dtype=object)
    hub_start = pa.array(lab.hub_day.astype("datetime64[D]"), pa.date32(), mask=lab.hub_month < 0)

    # One "0"/"1" character per month, built as a fixed-width byte view (no per-person loop).
    def _bits(paths: np.ndarray) -> pa.Array:
        bits = (paths.astype(np.uint8) + ord("0")).copy(order="C")
        return pa.array(bits.view(f"S{bits.shape[1]}").ravel(), pa.binary()).cast(pa.string())

    by_month = _bits(lab.employed)
    la_names = np.array(regions.LAS, dtype=object)[people.la.astype(int)]
    return pa.table(
        {
            "person_id": pa.array(people.person_id, pa.int64()),
            "household_id": pa.array(people.household_id, pa.int64()),
            "household_role": pa.array(people.household_role, pa.string()),
            "la": pa.array(la_names, pa.string()),
            "sex": pa.array(people.sex, pa.string()),
            "ethnicity": pa.array(group5, pa.string()),
            "ethnicity_detailed": pa.array(people.ethnicity, pa.string()),
            "birth_date": pa.array(people.birth_day.astype("datetime64[D]"), pa.date32()),
            "age_at_2024_01_01": pa.array(people.age.astype(np.int16), pa.int16()),
            "forename": pa.array(people.forename, pa.string()),
            "middle_name": pa.array(people.middle_name, pa.string()),
            "surname": pa.array(people.surname, pa.string()),
            "birth_surname": pa.array(people.birth_surname, pa.string()),
            "postcode": pa.array(people.postcode, pa.string()),
            "nino": pa.array(people.nino, pa.string()),
            "nhs_number": pa.array(people.nhs_number, pa.string()),
            "twin": pa.array(people.twin, pa.bool_()),
            "junior": pa.array(people.junior, pa.bool_()),
            "disabled": pa.array(people.disabled, pa.bool_()),
            "health_condition": pa.array(people.condition, pa.string()),
            "p_employed": pa.array(lab.p_employed.astype(np.float32), pa.float32()),
            "nonwork_type": pa.array(lab.nonwork_type, pa.string()),
            "employed_baseline": pa.array(lab.employed[:, 0], pa.bool_()),
            "employed_by_month": by_month,
            # Had nobody been supported (same draws): the true effect for any subset.
            "employed_counterfactual_by_month": _bits(lab.employed_cf),
            "hub_start_date": hub_start,
            "base_monthly_pay": pa.array(lab.base_pay, pa.float64()),
        }
    )


class _Sinks(contextlib.ExitStack):
    """Streaming writers for every output file, each renamed into place only on success."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out
        self.writers: dict[str, Any] = {}

    def write(self, key: str, path: Path, table: pa.Table) -> None:
        w = self.writers.get(key)
        if w is None:
            tmp = self.enter_context(atomic_path(path))
            if path.suffix == ".csv":
                w = pacsv.CSVWriter(str(tmp), table.schema, write_options=_CSV_OPTIONS)
            else:
                w = pq.ParquetWriter(str(tmp), table.schema, compression="zstd")
            self.callback(w.close)  # LIFO: the writer closes before its file is renamed
            self.writers[key] = w
        w.write_table(table)


@dataclass
class _ChunkJob:
    first: int  # people before this chunk
    n: int
    seed: np.random.SeedSequence
    id_seeds: tuple[np.random.SeedSequence, np.random.SeedSequence]
    rates: ErrorRates
    employers: np.ndarray
    confounding: float = 0.0
    profile: Profile = Profile(name="standard")


@dataclass
class _ChunkOut:
    extracts: dict[str, Any]  # dataset -> Extract (no record ids yet)
    people: pa.Table
    tally: dict[str, float]
    counts: dict[str, dict[str, dict[str, int]]]


def _run_chunk(job: _ChunkJob) -> _ChunkOut:
    """Everything for one chunk of people; pure function of the job (runs in a worker)."""
    rng = np.random.default_rng(job.seed)
    pop = make_people(
        rng,
        job.n,
        job.first + 1,
        load_pools(),
        job.id_seeds,
        job.first + 1,
        job.profile.population,
    )
    lab = labour.simulate(pop, rng, confounding=job.confounding)
    tally = Tally()
    tally.add(pop, lab)
    counts: dict[str, dict[str, dict[str, int]]] = {}
    first_record = np.full(job.n, np.iinfo(np.int64).max, dtype=np.int64)
    extracts = build_chunk(
        pop, lab, rng, job.rates, load_pools(), job.employers, counts, tally, job.profile,
        first_record=first_record,
    )  # fmt: skip
    # Participants a records-based evaluation can see: on record before their first start.
    on_record = (lab.hub_month >= 0) & (first_record < lab.hub_day)
    # Drawn last, from its own stream: the extracts above do not depend on it.
    tally.merge(effects.effect_counts(lab, np.random.default_rng(rng.integers(2**63)), on_record))
    return _ChunkOut(extracts, _people_table(pop, lab), dict(tally.c), counts)


def _init_worker(cal: labour.Calibration) -> None:
    labour.set_calibration(cal)  # fitted once in the parent, not once per worker


def _chunk_results(jobs: list[_ChunkJob], workers: int) -> Iterator[_ChunkOut]:
    """Chunk results in chunk order; with workers, at most ``workers + 1`` chunks in flight."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _run_chunk(job)
        return
    ctx = mp.get_context("forkserver")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(labour.calibration(),)
    ) as pool:
        pending: deque[Future[_ChunkOut]] = deque()
        todo = iter(jobs)
        for job in itertools.islice(todo, workers + 1):
            pending.append(pool.submit(_run_chunk, job))
        while pending:
            done = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_run_chunk, nxt))
            yield done


def default_workers() -> int:
    """Worker processes by default: one per CPU, at most two (the reference machine)."""
    return max(1, min(2, os.cpu_count() or 1))


def generate(
    people: int,
    seed: int,
    out: str | os.PathLike[str],
    rates: ErrorRates | dict[str, float] | None = None,
    workers: int | None = None,
    confounding: float = 0.0,
    profile: str | Profile = "standard",
    deliveries: int | None = None,
    correction_rates: CorrectionRates | None = None,
) -> SynthResult:
    """Generate a synthetic West Midlands population and every partner's extract.

    Args:
        people: number of working-age residents (1 to 30 million).
        seed: random seed; the same arguments give byte-identical files, whatever ``workers``.
        out: output directory (created if needed).
        rates: error rates (an :class:`ErrorRates`, or a mapping overriding some of the
            profile's); the profile's if None.
        workers: processes generating chunks of 100,000 people (default: up to two).
        confounding: strength of an unobserved trait that raises both the chance of starting
            hub support and of finding work (0, the default, for none): a region where
            matching on the record cannot recover the true effect (see docs/impact.md).
        profile: ``"standard"`` (the default) or ``"hard"`` (error rates at the upper end of
            published linkage studies, more twins and juniors; docs/synthetic-data.md), or a
            :class:`~wmw_link.synth.profiles.Profile`.
        deliveries: also cut the history into this many monthly deliveries under
            ``out/deliveries/01..K`` (ending at the data's last month; see
            :mod:`wmw_link.synth.deliveries`). Nothing else in the output changes.
        correction_rates: monthly rates of the identifier corrections re-sent in deliveries
            (:class:`~wmw_link.synth.deliveries.CorrectionRates` defaults if None).

    Returns:
        A :class:`SynthResult` naming every file written and the row counts.

    Raises:
        ConfigError: a bad size, seed, rate or worker count, or an output directory that cannot
            be written.

    Examples:
        >>> from wmw_link.synth import generate
        >>> result = generate(people=5_000, seed=42, out="demo-data")  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    prof = get_profile(profile)
    if deliveries is not None:
        deliveries = check_deliveries(deliveries)
    out, rates = _check_args(people, seed, out, rates, prof)
    if deliveries is not None:
        prepare_root(out)  # refused before the work, not after
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError("workers must be a whole number of 1 or more")
    if (
        isinstance(confounding, bool)
        or not isinstance(confounding, int | float)
        or not (0 <= confounding <= 5)
    ):
        raise ConfigError("confounding must be a number from 0 to 5")
    people = int(people)
    labour.calibration()  # fit once before the first chunk
    n_chunks = -(-people // CHUNK_PEOPLE)
    root = np.random.SeedSequence(int(seed))
    nino_seed, nhs_seed, employer_seed, *chunk_seeds = root.spawn(3 + n_chunks)
    employers = employer_refs(np.random.default_rng(employer_seed), max(50, people // 25))
    jobs = [
        _ChunkJob(
            c * CHUNK_PEOPLE,
            min(CHUNK_PEOPLE, people - c * CHUNK_PEOPLE),
            chunk_seeds[c],
            (nino_seed, nhs_seed),
            rates,
            employers,
            float(confounding),
            prof,
        )
        for c in range(n_chunks)
    ]

    paths = {d: extract_path(out, d) for d in DATASETS}
    truth_path, people_path = out / "truth" / "truth.parquet", out / "truth" / "people.parquet"
    rows = dict.fromkeys(DATASETS, 0)
    counts: dict[str, dict[str, dict[str, int]]] = {}
    tally = Tally()
    with _Sinks(out) as sinks:
        for chunk in _chunk_results(jobs, workers):
            for name in DATASETS:
                ex = chunk.extracts[name]
                table = with_record_ids(name, ex.table, rows[name] + 1)
                sinks.write(name, paths[name], table)
                truth = pa.table(
                    {
                        "dataset": pa.array([name] * table.num_rows, pa.string()),
                        "record_id": table.column(0),
                        "person_id": pa.array(ex.person_id, pa.int64()),
                    }
                )
                sinks.write("truth", truth_path, truth)
                rows[name] += table.num_rows
            sinks.write("people", people_path, chunk.people)
            tally.merge(chunk.tally)
            _merge_counts(counts, chunk.counts)

    summary = _summary(
        people, int(seed), prof, rates, rows, counts, tally, paths, truth_path, people_path
    )
    summary["parameters"]["hub_effect"]["unobserved_confounding"] = float(confounding)
    summary_path = out / "synth.json"
    write_json_atomic(summary_path, summary)
    cut = None
    if deliveries is not None:
        cut = write_deliveries(
            out, deliveries, int(seed), paths, truth_path, people_path, correction_rates
        )
    return SynthResult(
        out=out,
        extracts=paths,
        truth=truth_path,
        people=people_path,
        summary=summary_path,
        rows=rows,
        seconds=time.perf_counter() - t0,
        true_effect=summary["truth"]["hub_effect"],
        deliveries=cut,
    )


def _merge_counts(
    into: dict[str, dict[str, dict[str, int]]], more: dict[str, dict[str, dict[str, int]]]
) -> None:
    for ds, kinds in more.items():
        for kind, c in kinds.items():
            slot = into.setdefault(ds, {}).setdefault(kind, {"eligible": 0, "applied": 0})
            slot["eligible"] += c["eligible"]
            slot["applied"] += c["applied"]


def _summary(
    people: int,
    seed: int,
    profile: Profile,
    rates: ErrorRates,
    rows: dict[str, int],
    counts: dict[str, dict[str, dict[str, int]]],
    tally: Tally,
    paths: dict[str, Path],
    truth_path: Path,
    people_path: Path,
) -> dict[str, Any]:
    from wmw_link._version import __version__

    def day(d: int) -> str:
        return str(np.datetime64(d, "D"))

    files = {
        name: {
            "path": str(p.relative_to(p.parents[1])),
            "rows": rows[name],
            "sha256": sha256_file(p),
        }
        for name, p in paths.items()
    }
    return {
        "kind": "wmw-link/synth",
        "tool_version": __version__,
        "people": people,
        "seed": seed,
        "chunk_people": CHUNK_PEOPLE,
        "window": {"first_day": day(WINDOW_FIRST_DAY), "last_day": day(WINDOW_LAST_DAY)},
        "hub_starts": {"first_month": "2024-01", "last_month": "2025-09"},
        "profile": {
            "name": profile.name,
            # True when --rates / --error-scale changed the profile's error rates.
            "rates_overridden": rates != profile.errors,
            "population": profile.population.model_dump(),
            "group_factors": profile.group_factors,
            "age_factors": profile.age_factors,
        },
        "error_rates": rates.model_dump(),
        "errors_applied": counts,
        "extracts": files,
        "truth": {
            "truth_file": {
                "path": "truth/truth.parquet",
                "rows": sum(rows.values()),
                "sha256": sha256_file(truth_path),
            },
            "people_file": {
                "path": "truth/people.parquet",
                "rows": people,
                "sha256": sha256_file(people_path),
            },
            "hub_effect": tally.hub_effect(),
            "realised": tally.realised(),
        },
        "parameters": labour.parameters(),
        "targets": {
            la: {
                "employment_rate": float(regions.EMPLOYMENT_RATE[i]),
                "female_employment_rate": float(regions.FEMALE_EMPLOYMENT_RATE[i]),
                "disability_gap": float(regions.DISABILITY_GAP[i]),
                "health_inactivity": float(regions.HEALTH_INACTIVITY[i]),
                "neet_16_17": float(regions.NEET_16_17[i]),
            }
            for i, la in enumerate(regions.LAS)
        },
        "formats": FORMATS,
    }
