"""Leak scan: after a full sealed pipeline run, no identifier value from the extracts appears in
any byte of any file outside the controllers' folders, nor in the audit log.

Identifier values are every value of every identifier column the agreement names, as the extract
holds it and as wmw-link normalises it: names (each part, each word, and whole "forename surname"
pairs), dates of birth in a dozen common formats, postcode units with and without the space,
NINos with and without suffix and spaces, NHS numbers plain and spaced.

How files are searched, so that the test can fail for real and does not fail by chance:

* Parquet files are decoded: every cell of every column (as text), column names and metadata.
* Text files (JSON, JSONL, HTML, CSV, Markdown...) are searched as text.
* Both are reduced to lower-case words (runs of letters and digits) and a value matches only as a
  whole run of words, so ``19850312`` inside a 32-character hex token is not a hit, while
  ``"dob": "12/03/1985"`` is.
* Any other file (sealed files) is searched through its printable runs, as ``strings`` would
  show them: a value written in plain inside a binary is found, random bytes are not.
* Single-word names that the software itself writes (words in wmw-link's own source, the
  agreement, and the Splink and Vega templates and scripts the reports embed: "White" the
  ethnicity, "May" the month, "brown" the colour) are not counted as leaks on their own, nor
  are names under three letters; whole names, dates, postcodes and numbers always are.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

pytest.importorskip("wmw_link.tokenise")
pytest.importorskip("wmw_link.linkage.run")
pytest.importorskip("wmw_link.journeys")

REPO = Path(__file__).parents[2]
AGREEMENT = REPO / "agreements" / "wmw-outcomes.yaml"
_WORD = re.compile(r"[a-z0-9]+")
_DOB_FORMATS = (
    "%Y-%m-%d", "%d/%m/%Y", "%Y%m%d", "%d-%b-%Y", "%d%m%Y", "%d-%m-%Y", "%m/%d/%Y",
    "%d.%m.%Y", "%Y/%m/%d", "%d %b %Y", "%d %B %Y", "%d/%m/%y", "%-d/%-m/%Y",
)  # fmt: skip
_TEXT_SUFFIXES = {".json", ".jsonl", ".html", ".htm", ".csv", ".md", ".txt", ".js", ".svg", ".yaml"}


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _phrase(value: str) -> str:
    return " ".join(_words(value))


# -- what to look for ----------------------------------------------------------------------------


def _read_table(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    names = pcsv.read_csv(path).column_names
    return pcsv.read_csv(
        path, convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    )


def _strings(table: pa.Table, column: str) -> list[str]:
    return [v.strip() for v in table.column(column).to_pylist() if v and v.strip()]


def _name_terms(values: Iterable[str]) -> tuple[set[str], set[str]]:
    """(whole names as phrases of 2+ words, single words) from raw and normalised names."""
    from wmw_link.normalise import normalise_names

    values = list(values)
    normalised = [v for v in normalise_names(pa.array(values)).values.to_pylist() if v]
    whole, single = set(), set()
    for v in [*values, *normalised]:
        p = _phrase(v)
        (whole if " " in p else single).add(p)
        single.update(w for w in p.split() if len(w) >= 3)
    return whole, single


def identifier_terms(extracts: dict[str, Path]) -> dict[str, set[str]]:
    """Every identifier value of every extract, by kind, in every form worth searching for."""
    from wmw_link.agreement import IdentifierType as T
    from wmw_link.agreement import load_agreement
    from wmw_link.normalise import normalise_ninos, normalise_postcodes

    agreement = load_agreement(AGREEMENT)
    terms: dict[str, set[str]] = defaultdict(set)
    for ds_id, path in extracts.items():
        ds = agreement.dataset(ds_id)
        table = _read_table(path)
        cols = {f.type: f for f in ds.identifiers}
        for kind in (T.FORENAME, T.SURNAME, T.FULL_NAME):
            if kind in cols:
                whole, single = _name_terms(_strings(table, cols[kind].column))
                terms["full name"] |= whole
                terms["name"] |= single
        if T.FORENAME in cols and T.SURNAME in cols:
            fores = table.column(cols[T.FORENAME].column).to_pylist()
            surs = table.column(cols[T.SURNAME].column).to_pylist()
            pairs = [f"{f} {s}" for f, s in zip(fores, surs, strict=True) if f and s]
            terms["full name"] |= _name_terms(pairs)[0]
        if T.DATE_OF_BIRTH in cols:
            f = cols[T.DATE_OF_BIRTH]
            for raw in _strings(table, f.column):
                terms["date of birth"].add(raw)
                try:
                    d = dt.datetime.strptime(raw, f.format or "%Y-%m-%d").date()
                except ValueError:
                    continue
                terms["date of birth"] |= {d.strftime(x) for x in _DOB_FORMATS}
        if T.POSTCODE in cols:
            raw = _strings(table, cols[T.POSTCODE].column)
            units = [u for u in normalise_postcodes(pa.array(raw)).unit.values.to_pylist() if u]
            terms["postcode"] |= set(raw) | set(units) | {u.replace(" ", "") for u in units}
        if T.NINO in cols:
            raw = _strings(table, cols[T.NINO].column)
            norm = [n for n in normalise_ninos(pa.array(raw)).values.to_pylist() if n]
            terms["nino"] |= set(raw) | {r.replace(" ", "") for r in raw} | set(norm)
            terms["nino"] |= {" ".join([n[:2], n[2:4], n[4:6], n[6:8]]) for n in norm}
        if T.NHS_NUMBER in cols:
            raw = _strings(table, cols[T.NHS_NUMBER].column)
            digits = {re.sub(r"\D", "", r) for r in raw}
            terms["nhs number"] |= set(raw) | digits | {f"{d[:3]} {d[3:6]} {d[6:]}" for d in digits}
    # Four characters or fewer ("B1 1AA" has six) match too easily to be evidence.
    return {
        k: {t for t in v if len(t.replace(" ", "")) >= 5 or k == "name"} for k, v in terms.items()
    }


def software_vocabulary() -> set[str]:
    """Words wmw-link itself writes: its source (not the synthetic name pools) and the agreement."""
    words: set[str] = set()
    src = REPO / "src" / "wmw_link"
    for path in [*src.rglob("*"), AGREEMENT]:
        rel = path.relative_to(REPO).parts
        if not path.is_file() or "synth" in rel or "data" in rel or path.suffix == ".pyc":
            continue
        words |= set(_words(path.read_text(encoding="utf-8", errors="ignore")))
    # The linkage report embeds Splink's Vega scripts (in files without a suffix, e.g.
    # external_js/vega@5...), and the dashboard embeds plotly.js.
    for module, sub in (("splink", ""), ("altair", ""), ("plotly", "package_data")):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        for path in (Path(spec.origin).parent / sub).rglob("*"):
            if path.is_file() and path.suffix not in {".pyc", ".so"}:
                words |= set(_words(path.read_text(encoding="utf-8", errors="ignore")))
    months = [dt.date(2000, m, 1).strftime(f) for m in range(1, 13) for f in ("%B", "%b")]
    return words | {m.lower() for m in months}


# -- where to look ---------------------------------------------------------------------------


_TIME_OF_DAY = re.compile(r"\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")


class Matcher:
    """Finds identifier phrases as whole runs of words, in linear time over the text."""

    def __init__(self, terms: dict[str, set[str]], vocabulary: set[str]) -> None:
        self.kinds: dict[str, set[str]] = defaultdict(set)
        for kind, values in terms.items():
            for v in values:
                p = _phrase(v)
                if not p or (kind == "name" and (p in vocabulary or len(p) < 3)):
                    continue
                self.kinds[p].add(kind)
        self.lengths: dict[str, set[int]] = defaultdict(set)
        for p in self.kinds:
            words = p.split()
            self.lengths[words[0]].add(len(words))

    def find(self, text: str, min_chars: int = 0) -> set[tuple[str, str]]:
        """(kind, phrase) found in ``text``; phrases shorter than ``min_chars`` are skipped.

        Times of day (the software's own timestamps, ``07:25:07+00:00``) are blanked first:
        their numbers would otherwise spell a two-digit-year date such as ``25 07 00`` whenever
        a file is written at the wrong second.
        """
        words = _words(_TIME_OF_DAY.sub(" ", text))
        hits: set[tuple[str, str]] = set()
        for i, w in enumerate(words):
            for n in self.lengths.get(w, ()):
                p = " ".join(words[i : i + n])
                if len(p) < min_chars:
                    continue
                for kind in self.kinds.get(p, ()):
                    hits.add((kind, p))
        return hits


def _parquet_strings(path: Path) -> list[str]:
    """Column names, metadata and every cell, each on its own (no phrase spans two cells).

    Date-typed columns are the agreement's declared payload dates (support starts, employment
    spells): one of them falling on someone's birthday is not a leak, and no name, postcode or
    number can hide in a date. A date of birth copied into a payload would arrive as text or as
    a field the agreement does not name (``test_governance`` checks field minimisation).
    """
    pf = pq.ParquetFile(path)
    out = [*pf.schema_arrow.names, str(pf.schema_arrow.metadata or "")]
    for col in pf.read().columns:
        if pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):
            continue
        values = col.to_pylist()
        out += [
            " ".join(map(str, v)) if isinstance(v, list) else str(v)
            for v in values
            if v is not None
        ]
    return out


_PRINTABLE = re.compile(rb"[\x20-\x7e]{5,}")


def file_strings(path: Path) -> tuple[list[str], int]:
    """The strings of a file (Parquet cells, a text file's text, or a binary's printable runs),
    and the shortest phrase worth matching in them."""
    if path.suffix == ".parquet":
        return _parquet_strings(path), 0
    data = path.read_bytes()
    if path.suffix in _TEXT_SUFFIXES or b"\0" not in data[:4096]:
        try:
            return [data.decode("utf-8")], 0
        except UnicodeDecodeError:
            pass
    # Sealed files and other binaries: what `strings` would show. Random bytes spell a short
    # word now and then ("nik"), never a six-character one in a few megabytes.
    return [m.decode("ascii") for m in _PRINTABLE.findall(data)], 6


def scan_tree(
    root: Path, allowed: list[Path], extra_files: Iterable[Path], terms: dict[str, set[str]]
) -> tuple[dict[str, list[tuple[str, str]]], int]:
    """Scan every file under ``root`` outside ``allowed`` dirs, plus ``extra_files``."""
    matcher = Matcher(terms, software_vocabulary())
    found: dict[str, list[tuple[str, str]]] = {}
    files = [p for p in root.rglob("*") if p.is_file()]
    files = [p for p in files if not any(p.is_relative_to(a) for a in allowed)]
    files += list(extra_files)
    for path in files:
        hits: set[tuple[str, str]] = set()
        strings, min_chars = file_strings(path)
        for s in strings:
            hits |= matcher.find(s, min_chars)
        if hits:
            found[str(path.relative_to(root) if path.is_relative_to(root) else path)] = sorted(hits)
    return found, len(files)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    root: Path  # everything the run wrote
    extracts: dict[str, Path]  # dataset -> the controller's plaintext extract
    allowed: list[Path]  # the controllers' side, not scanned
    audit_log: Path
    datasets: int


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A full sealed pipeline over a synthetic population: the demo, or the same steps by hand."""
    root = tmp_path_factory.mktemp("leak")
    if importlib.util.find_spec("wmw_link.demo") is not None:
        from wmw_link.demo import run_demo

        result = run_demo(root / "demo", people=2000, seed=23, echo=lambda _: None)
        out = result.out
        extracts = {
            p.name.split(".")[0]: p for p in (out / "world" / "extracts").iterdir() if p.is_file()
        }
        # The controllers' folders, and the synthetic region (each extract sits with its
        # controller; the truth stands for the controllers' own systems).
        allowed = [out / "controllers", out / "world"]
        return Run(out, extracts, allowed, result.audit_log, len(extracts))
    import _governance_pipeline as gp

    world = gp.build_world(root, people=2000, seed=23)
    gp.run_pipeline(world)
    allowed = [world.root / "controllers", world.root / "keys" / "secrets"]
    return Run(world.root, world.extracts, allowed, world.audit_log, len(world.datasets))


def test_the_scan_finds_what_it_looks_for(run: Run, tmp_path: Path) -> None:
    """Control: plant identifiers in the forms a leak would take; the scan must find each one."""
    terms = identifier_terms(run.extracts)
    dwp = _read_table(run.extracts["dwp_claims"])
    cols = ("first_name", "surname", "dob", "postcode", "nino")
    # The first row with every field present (some rows lack a field on purpose).
    row = next(r for r in dwp.select(list(cols)).to_pylist() if all(r.values()))
    dob = dt.datetime.strptime(row["dob"], "%d/%m/%Y").date()
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "a.json").write_text(
        f'{{"who": "{row["first_name"].upper()} {row["surname"].upper()}"}}'
    )
    (planted / "b.html").write_text(f"<td>{dob:%Y-%m-%d}</td>")
    pq.write_table(
        pa.table({"x": [row["postcode"].replace(" ", "").lower()]}), planted / "c.parquet"
    )
    (planted / "d.bin").write_bytes(b"\x00\x01" + row["nino"].encode() + b"\xff")
    (planted / "e.jsonl").write_text(f'{{"dob": "{dob:%d%m%Y}"}}\n')
    found, scanned = scan_tree(planted, [], [], terms)
    assert scanned == 5
    assert set(found) == {"a.json", "b.html", "c.parquet", "d.bin", "e.jsonl"}, found
    assert "full name" in {k for k, _ in found["a.json"]}, found["a.json"]


def test_no_identifier_leaves_the_controllers(run: Run) -> None:
    terms = identifier_terms(run.extracts)
    assert len(terms["date of birth"]) > 1000 and len(terms["nino"]) > 100
    assert len(terms["full name"]) > 100 and len(terms["postcode"]) > 100
    found, scanned = scan_tree(run.root, run.allowed, [], terms)
    # The TTP's and the analysts' folders hold tokens, payloads, maps, journeys, the link
    # report, outcomes and dashboards, sealed files in transit, the keyring, the audit log.
    assert scanned >= 5 * run.datasets, scanned
    assert found == {}, {f: hits[:5] for f, hits in found.items()}


def test_the_audit_log_holds_no_identifier_and_verifies(run: Run) -> None:
    from wmw_link.audit import verify

    assert run.audit_log.exists()
    terms = identifier_terms(run.extracts)
    found, scanned = scan_tree(run.audit_log.parent, [run.audit_log.parent], [run.audit_log], terms)
    assert scanned == 1 and found == {}
    assert verify(run.audit_log).lines > 5 * run.datasets


def test_timestamps_do_not_spell_dates_but_dates_are_still_found() -> None:
    m = Matcher({"date of birth": {"25/07/00"}}, set())
    assert m.find('"created_at": "2026-11-27T07:25:07+00:00"') == set()
    assert m.find('{"dob": "25/07/00", "at": "07:25:07Z"}') == {("date of birth", "25 07 00")}


def test_the_person_index_holds_no_identifier(run: Run, tmp_path: Path) -> None:
    """The TTP's persistent person index (tokens, edges, model, ids kept across months) and an
    index run's outputs: no identifier value in any byte (docs/person-index.md)."""
    from wmw_link.agreement import load_agreement
    from wmw_link.linkage.index import link_index

    inboxes = sorted(
        {p.parent for p in run.root.rglob("*.tokens.parquet")
         if not any(p.is_relative_to(a) for a in run.allowed)}
    )  # fmt: skip
    assert inboxes, "no TTP inbox of tokens in the pipeline run"
    agreement = load_agreement(REPO / "agreements" / "wmw-outcomes.yaml")
    r = link_index(agreement, [inboxes[0]], tmp_path / "index", tmp_path / "out", seed=1)
    assert r.records > 1000
    found, scanned = scan_tree(tmp_path, [], [], identifier_terms(run.extracts))
    assert scanned >= 2 * len(r.maps) + 4, scanned
    assert found == {}, {f: hits[:5] for f, hits in found.items()}
