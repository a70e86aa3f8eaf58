"""Monthly deliveries cut from the whole-history extracts (``wmw-link synth --deliveries K``).

Partners send records month by month. :func:`write_deliveries` reads what :func:`generate`
wrote under ``extracts/`` and ``truth/`` and writes ``deliveries/01 .. K/``:

* each record is sent **new** in the delivery of the month its event starts (employment start,
  claim start, referral, enrolment start, hub start); delivery 01 holds everything up to its
  month (the initial load), including records that start before the window or have no date;
* a record whose end date (employment, claim, enrolment) falls after the month it was sent is
  sent with the end (and a course's ``Achieved``) blank, and **re-sent** in the delivery of the
  month it ends, as extracts/ shows it (reason ``end_date``);
* some records sent earlier are **re-sent** with corrected identifiers (same record id): a
  woman's new surname after marriage, a move to a new postcode (every earlier record of that
  person, in every source, is re-sent), and a date of birth corrected to the true one where the
  record had a date-of-birth error. :class:`CorrectionRates` gives the monthly rates.

Records first sent after a person's marriage or move are as extracts/ shows them: the
whole-history files stay the same with or without deliveries. Every record of extracts/ is sent
new exactly once; a record's latest send equals its extracts/ row except for the identifier
corrections. Draws come from their own stream of the run's seed, so the deliveries are
reproducible and nothing else in the output changes.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from wmw_link.errors import ConfigError
from wmw_link.files import atomic_path, sha256_file, write_json_atomic, write_parquet_atomic
from wmw_link.synth import formats as fmt
from wmw_link.synth import regions
from wmw_link.synth.extracts import DATASETS, RECORD_ID
from wmw_link.synth.labour import N_MONTHS, WINDOW_START
from wmw_link.synth.names import load_pools
from wmw_link.synth.population import random_postcodes

#: The most deliveries a run can have: delivery 01 must hold at least the window's first month.
MAX_DELIVERIES = N_MONTHS
_CSV_OPTIONS = pacsv.WriteOptions(include_header=True, quoting_style="needed")
#: Salt of the deliveries' random stream (spawned from the run's seed, apart from the rest).
_STREAM = 0xDE11


@dataclass(frozen=True)
class CorrectionRates:
    """Monthly chances that a source re-sends earlier records with corrected identifiers."""

    #: Per month, of women aged 18-45 (on 2024-01-01): marries and takes a new surname.
    marriage: float = 0.003
    #: Per month, of everyone: moves house (a new postcode, mostly in the same LA).
    move: float = 0.01
    #: Per month, of records sent with a date of birth other than the true one: corrected.
    dob_fix: float = 0.1


@dataclass(frozen=True)
class _Layout:
    """Where a dataset keeps the fields a delivery needs, and their date format."""

    start: str
    end: str | None
    date_fmt: str
    surname: str
    postcode: str
    dob: str
    blank_with_end: tuple[str, ...] = ()


def _layout(dataset: str) -> _Layout:
    if dataset == "hmrc_rti":
        return _Layout("EMPLOYMENT_START", "EMPLOYMENT_END", "%Y-%m-%d", "SURNAME", "POSTCODE",
                       "DATE_OF_BIRTH")  # fmt: skip
    if dataset == "dwp_claims":
        return _Layout("start_date", "end_date", "%d/%m/%Y", "surname", "postcode", "dob")
    if dataset == "nhs_referrals":
        return _Layout("REFERRAL_DATE", None, "%Y%m%d", "FAMILY_NAME", "POSTCODE", "BIRTH_DATE")
    if dataset == "skills_enrolments":
        return _Layout("LearnStartDate", "LearnEndDate", "%d-%b-%Y", "FullName", "Postcode",
                       "DateOfBirth", ("Achieved",))  # fmt: skip
    return _Layout("support_start", None, "%d/%m/%Y", "surname", "postcode", "date_of_birth")


_DOB_FMT = {
    "hmrc_rti": "%Y-%m-%d",
    "dwp_claims": "%d/%m/%Y",
    "nhs_referrals": "%Y%m%d",
    "skills_enrolments": "%d-%b-%Y",
}


@dataclass
class DeliveriesResult:
    """What :func:`write_deliveries` wrote."""

    root: Path
    months: list[str]
    new: dict[int, dict[str, int]]  # delivery -> dataset -> records sent new
    resent: dict[int, dict[str, int]]  # delivery -> dataset -> records re-sent
    reasons: dict[int, dict[str, int]]  # delivery -> reason -> re-sent records


def delivery_months(k: int) -> list[str]:
    """The months (``YYYY-MM``) of deliveries 1..k: they end at the data's last month."""
    first = N_MONTHS - k
    return [str(WINDOW_START + first + i) for i in range(k)]


def check_deliveries(k: Any) -> int:
    """``k`` as a number of deliveries, or a ConfigError saying what is allowed."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_DELIVERIES:
        raise ConfigError(
            f"deliveries must be a whole number from 1 to {MAX_DELIVERIES} (one a month, "
            "ending at the data's last month, 2026-09)"
        )
    return int(k)


def prepare_root(out: Path) -> Path:
    """``out/deliveries``, emptied if it holds an earlier run's deliveries; else refused."""
    root = out / "deliveries"
    if root.exists():
        if not (root / "deliveries.json").is_file() and any(root.iterdir()):
            raise ConfigError(
                f"{root}: exists and holds something other than earlier synthetic deliveries; "
                "choose another --out"
            )
        shutil.rmtree(root)  # an earlier run's deliveries: a smaller K must not leave old ones
    return root


def _read_extract(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    with path.open(encoding="utf-8", newline="") as f:
        names = next(csv.reader(f))
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True
        ),
    )


def _write_extract(path: Path, table: pa.Table) -> None:
    if path.suffix == ".parquet":
        write_parquet_atomic(path, table)
        return
    with atomic_path(path) as tmp:
        pacsv.write_csv(table, str(tmp), write_options=_CSV_OPTIONS)


def _days(values: pa.ChunkedArray | pa.Array, date_fmt: str) -> np.ndarray:
    """Day numbers of dates written in ``date_fmt`` (the generator's own table); -1e9 if empty."""
    table = pa.array(fmt._table(date_fmt), pa.string())
    idx = pc.index_in(values, value_set=table)
    out = idx.to_numpy(zero_copy_only=False)
    return np.where(pc.is_null(idx).to_numpy(zero_copy_only=False), -(10**9),
                    np.nan_to_num(out, nan=0).astype(np.int64) + fmt._FIRST)  # fmt: skip


def _window_month(days: np.ndarray) -> np.ndarray:
    """Month index in the window (0 = 2024-01); negative before it; -inf-ish when empty."""
    m = days.astype("datetime64[D]").astype("datetime64[M]") - WINDOW_START
    return np.where(days == -(10**9), -(10**6), m.astype(np.int64))


def _delivery_of(days: np.ndarray, k: int) -> np.ndarray:
    """0-based delivery of each date: the month's delivery, 0 for the initial load."""
    return np.clip(_window_month(days) - (N_MONTHS - k), 0, k - 1)


def _like(old: str | None, new: str) -> str:
    """``new`` written the way ``old`` was: upper, lower or as given; with or without a space."""
    if old is None:
        return new
    if " " not in old and " " in new and len(new) <= 8:  # a postcode written without its space
        new = new.replace(" ", "")
    if old.isupper():
        return new.upper()
    if old.islower():
        return new.lower()
    return new


def _new_surname(old: str | None, surname: str, dataset: str) -> str:
    if dataset == "skills_enrolments":  # FullName: forename(s) then surname
        head = (old or "").rsplit(" ", 1)[0]
        return f"{head} {surname}" if old and " " in old else surname
    return _like(old, surname)


@dataclass
class _Changes:
    """Person-level changes: the 0-based delivery (>= 1) each happens in (-1: none), and values."""

    marry_at: np.ndarray
    move_at: np.ndarray
    new_surname: np.ndarray
    new_postcode: np.ndarray
    birth: np.ndarray  # true birth date, day number


def _person_changes(
    people: Path, k: int, rates: CorrectionRates, rng: np.random.Generator
) -> _Changes:
    pp = pq.read_table(
        people,
        columns=["person_id", "sex", "age_at_2024_01_01", "birth_date", "la",
                 "ethnicity_detailed", "surname"],
    )  # fmt: skip
    n = pp.num_rows
    if not np.array_equal(pp.column("person_id").to_numpy(), np.arange(1, n + 1)):
        raise ConfigError(f"{people}: person ids are not 1..{n} in order")
    sex = pp.column("sex").to_numpy(zero_copy_only=False)
    age = pp.column("age_at_2024_01_01").to_numpy()
    marry_ok = (sex == "F") & (age >= 18) & (age <= 45)
    marry_at = _first_hit(rng, n, k, rates.marriage, marry_ok)
    move_at = _first_hit(rng, n, k, rates.move, np.ones(n, dtype=bool))
    pools = load_pools()
    group = pp.column("ethnicity_detailed").to_numpy(zero_copy_only=False)
    surname = pp.column("surname").to_numpy(zero_copy_only=False)
    new_surname = np.full(n, None, dtype=object)
    for g in np.unique(group[marry_at >= 0].astype(str)):
        pool = pools.surnames["white_british" if g == "mixed" else g]
        sel = np.flatnonzero((marry_at >= 0) & (group == g))
        for _ in range(8):  # another surname than her own: draw again where it is the same
            new_surname[sel] = pool.sample(rng, len(sel))
            sel = sel[new_surname[sel] == surname[sel]]
            if len(sel) == 0:
                break
    la_index = {name: i for i, name in enumerate(regions.LAS)}
    la = np.array([la_index[x] for x in pp.column("la").to_pylist()], dtype=np.int64)
    movers = np.flatnonzero(move_at >= 0)
    new_postcode = np.full(n, None, dtype=object)
    new_postcode[movers] = random_postcodes(rng, la[movers])
    birth = pp.column("birth_date").cast(pa.int32()).to_numpy().astype(np.int64)
    return _Changes(marry_at, move_at, new_surname, new_postcode, birth)


@dataclass
class _Sent:
    """What the deliveries hold so far, per delivery number."""

    k: int
    new: dict[int, dict[str, int]] = field(default_factory=dict)
    resent: dict[int, dict[str, int]] = field(default_factory=dict)
    reasons: dict[int, dict[str, int]] = field(default_factory=dict)
    truth: dict[int, list[pa.Table]] = field(default_factory=dict)
    changes: dict[int, list[pa.Table]] = field(default_factory=dict)
    files: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for slot in (self.new, self.resent, self.reasons, self.files):
            slot.update({d: {} for d in range(1, self.k + 1)})
        for parts in (self.truth, self.changes):
            parts.update({d: [] for d in range(1, self.k + 1)})


@dataclass
class _Dataset:
    """One extract with, per record, when it is sent and when each change reaches it."""

    name: str
    src: Path
    table: pa.Table
    lay: _Layout
    person: np.ndarray  # 0-based people row
    sent: np.ndarray  # 0-based delivery of its first send
    when: dict[str, np.ndarray]  # reason -> 0-based delivery of the re-send, or -1


def _schedule(
    dataset: str, src: Path, truth: pa.Table, ch: _Changes, k: int, rates: CorrectionRates,
    rng: np.random.Generator,
) -> _Dataset:  # fmt: skip
    table = _read_extract(src)
    lay = _layout(dataset)
    rids = table.column(RECORD_ID[dataset][0])
    sub = truth.filter(pc.equal(truth.column("dataset"), dataset))
    pos = pc.index_in(rids, value_set=sub.column("record_id"))
    if pos.null_count:
        raise ConfigError(f"truth: {pos.null_count} {dataset} record(s) have no truth row")
    person = sub.column("person_id").to_numpy()[pos.to_numpy()] - 1
    sent = _delivery_of(_days(table.column(lay.start), lay.date_fmt), k)
    end_at = np.full(table.num_rows, -1, dtype=np.int64)
    if lay.end is not None:  # its end is known only once the end month's delivery comes
        ends = _delivery_of(_days(table.column(lay.end), lay.date_fmt), k)
        end_at = np.where(ends > sent, ends, -1)
    dob_days = _days(table.column(lay.dob), _DOB_FMT.get(dataset, "%d/%m/%Y"))
    wrong = (dob_days != ch.birth[person]) & (dob_days != -(10**9))
    when = {
        "end_date": end_at,
        "surname": np.where(ch.marry_at[person] > sent, ch.marry_at[person], -1),
        "postcode": np.where(ch.move_at[person] > sent, ch.move_at[person], -1),
        "birth_date": _first_hit_after(rng, sent, k, rates.dob_fix, wrong),
    }
    return _Dataset(dataset, src, table, lay, person, sent, when)


def _state(ds: _Dataset, rows: np.ndarray, d: int, ch: _Changes) -> pa.Table:
    """Rows ``rows`` of the extract as their source holds them at 0-based delivery ``d``."""
    lay, part = ds.lay, ds.table.take(pa.array(rows, pa.int64()))

    def col(name: str) -> np.ndarray:
        return part.column(name).to_numpy(zero_copy_only=False)

    def since(reason: str) -> np.ndarray:
        at = ds.when[reason][rows]
        return (at >= 0) & (at <= d)

    who = ds.person[rows]
    updates: dict[str, np.ndarray] = {}
    if lay.end is not None:
        open_now = ds.when["end_date"][rows] > d
        for name in (lay.end, *lay.blank_with_end):
            updates[name] = np.where(open_now, None, col(name))
    married = since("surname")
    if married.any():
        updates[lay.surname] = np.array(
            [_new_surname(o, ch.new_surname[p], ds.name) if m else o
             for o, p, m in zip(col(lay.surname), who, married, strict=True)],
            dtype=object,
        )  # fmt: skip
    moved = since("postcode")
    if moved.any():
        updates[lay.postcode] = np.array(
            [_like(o, ch.new_postcode[p]) if m else o
             for o, p, m in zip(col(lay.postcode), who, moved, strict=True)],
            dtype=object,
        )  # fmt: skip
    fixed = since("birth_date")
    if fixed.any():
        true_dob = fmt.dates(ch.birth[who], _DOB_FMT.get(ds.name, "%d/%m/%Y"))
        updates[lay.dob] = np.where(fixed, true_dob.to_numpy(zero_copy_only=False), col(lay.dob))
    for name, values in updates.items():
        part = part.set_column(part.schema.get_field_index(name), name,
                               pa.array(values, pa.string()))  # fmt: skip
    return part


def _send(ds: _Dataset, d: int, ch: _Changes, root: Path, acc: _Sent) -> None:
    """Write ``ds``'s part of 0-based delivery ``d`` and note what it holds."""
    is_new = ds.sent == d
    hits = {reason: at == d for reason, at in ds.when.items()}
    is_resent = ~is_new & np.logical_or.reduce(list(hits.values()))
    rows = np.flatnonzero(is_new | is_resent)
    part = _state(ds, rows, d, ch)
    number = d + 1
    folder = root / f"{number:02d}" / "extracts"
    folder.mkdir(parents=True, exist_ok=True)
    if part.num_rows:  # a month with nothing to send sends no file (tokenise needs rows)
        path = folder / ds.src.name
        _write_extract(path, part)
        acc.files[number][ds.name] = {
            "path": f"extracts/{ds.src.name}",
            "rows": part.num_rows,
            "sha256": sha256_file(path),
        }
    acc.new[number][ds.name] = int(is_new.sum())
    acc.resent[number][ds.name] = int(is_resent.sum())
    why = np.full(len(rows), "", dtype=object)
    for reason, hit in hits.items():
        r = hit[rows] & is_resent[rows]
        acc.reasons[number][reason] = acc.reasons[number].get(reason, 0) + int(r.sum())
        why = np.where(r, np.where(why == "", reason, why + "," + reason), why)
    truth = pa.table(
        {
            "dataset": pa.array([ds.name] * len(rows), pa.string()),
            "record_id": part.column(0),
            "person_id": pa.array(ds.person[rows] + 1, pa.int64()),
        }
    )
    acc.truth[number].append(truth)
    re = pa.array(np.flatnonzero(is_resent[rows]), pa.int64())
    acc.changes[number].append(
        truth.take(re).append_column("reason", pa.array(why, pa.string()).take(re))
    )


def write_deliveries(
    out: Path,
    k: int,
    seed: int,
    extracts: dict[str, Path],
    truth: Path,
    people: Path,
    rates: CorrectionRates | None = None,
) -> DeliveriesResult:
    """Cut ``out/extracts`` into ``out/deliveries/01..k`` (see the module docstring)."""
    k = check_deliveries(k)
    rates = rates or CorrectionRates()
    months = delivery_months(k)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _STREAM, k]))
    root = prepare_root(out)
    ch = _person_changes(people, k, rates, rng)
    truth_t = pq.read_table(truth, columns=["dataset", "record_id", "person_id"])
    acc = _Sent(k)
    for dataset in DATASETS:
        ds = _schedule(dataset, extracts[dataset], truth_t, ch, k, rates, rng)
        for d in range(k):
            _send(ds, d, ch, root, acc)

    for number in range(1, k + 1):
        d_root = root / f"{number:02d}"
        (d_root / "truth").mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(d_root / "truth" / "truth.parquet",
                             pa.concat_tables(acc.truth[number]))  # fmt: skip
        write_parquet_atomic(d_root / "truth" / "resent.parquet",
                             pa.concat_tables(acc.changes[number]))  # fmt: skip
        write_json_atomic(
            d_root / "delivery.json",
            {
                "kind": "wmw-link/synth-delivery",
                "number": number,
                "month": months[number - 1],
                "deliveries": k,
                # Delivery 01 is the initial load: every record up to its month.
                "holds": "records up to and including this month" if number == 1
                else "records of this month and re-sent records",
                "counts": {
                    ds: {"new": acc.new[number][ds], "resent": acc.resent[number][ds]}
                    for ds in DATASETS
                },
                "resent_by_reason": acc.reasons[number],
                "files": acc.files[number],
            },
        )  # fmt: skip
    write_json_atomic(
        root / "deliveries.json",
        {
            "kind": "wmw-link/synth-deliveries",
            "deliveries": k,
            "months": months,
            "seed": int(seed),
            "correction_rates": asdict(rates),
            "new": {f"{d:02d}": sum(acc.new[d].values()) for d in acc.new},
            "resent": {f"{d:02d}": sum(acc.resent[d].values()) for d in acc.resent},
            "resent_by_reason": {f"{d:02d}": acc.reasons[d] for d in acc.reasons},
        },
    )
    return DeliveriesResult(root, months, acc.new, acc.resent, acc.reasons)


def _first_hit(
    rng: np.random.Generator, n: int, k: int, rate: float, eligible: np.ndarray
) -> np.ndarray:
    """Per row, the first 0-based delivery (>= 1) in which a monthly event of ``rate`` happens."""
    if k < 2:
        return np.full(n, -1, dtype=np.int64)
    hit = (rng.random((n, k - 1)) < rate) & eligible[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, -1)


def _first_hit_after(
    rng: np.random.Generator, after: np.ndarray, k: int, rate: float, eligible: np.ndarray
) -> np.ndarray:
    """Like :func:`_first_hit`, counting only deliveries after ``after`` (each row's own)."""
    n = len(after)
    if k < 2:
        return np.full(n, -1, dtype=np.int64)
    later = np.arange(1, k)[None, :] > after[:, None]
    hit = (rng.random((n, k - 1)) < rate) & later & eligible[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, -1)
