"""Shared benchmark runner: wall time, CPU time, peak memory, rows/s, JSON + Markdown results.

Every stage's benchmark uses the same few calls, so results look the same everywhere::

    from benchmarks.harness import Bench

    bench = Bench("link", params={"people": 100_000})
    with bench.measure("predict + cluster") as m:     # in this process
        n = do_the_work()
        m.rows = n                                      # rows processed -> rows/s
        m.extra["f1"] = 0.987                           # accuracy or anything else
    bench.run("tokenise 1M (CLI)", [".venv/bin/wmw-link", "tokenise", ...], rows=1_000_000)
    bench.write()      # benchmarks/results/link.json and link.md

``measure`` samples this process's resident memory (and its child processes') every 20 ms, so
the peak is the peak *during the block*. ``run`` starts a fresh process and reports that
process's own peak (``wait4`` rusage), which is the clean way to measure a whole command.
Run benchmarks from the repository root: ``.venv/bin/python -m benchmarks.bench_<name>``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# BENCH_RESULTS_DIR redirects results (the --quick smoke run must not overwrite real figures).
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measurement:
    """One measured step. Set ``rows`` (and anything in ``extra``) inside the block."""

    label: str
    rows: int | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    start_rss_mib: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float | None:
        if not self.rows or self.seconds <= 0:
            return None
        return self.rows / self.seconds

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_per_second"] = round(self.rows_per_second, 1) if self.rows_per_second else None
        for k in ("seconds", "cpu_seconds", "peak_rss_mib", "start_rss_mib"):
            d[k] = round(d[k], 3)
        return d


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (Spark JVMs, worker pools), from /proc."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
                parent[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


def _hwm_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class _Sampler(threading.Thread):
    def __init__(
        self, interval: float = 0.02, children: bool = True, pid: int | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.children = children
        self.pid = pid  # None: this process
        self.peak = 0
        self._halt = threading.Event()
        self._tick = 0

    def sample(self) -> int:
        pid = self.pid if self.pid is not None else os.getpid()
        total = _rss_bytes(pid)
        # Scanning /proc is slower than one read: look for children every 10th tick only.
        if self.children and self._tick % 10 == 0:
            self._kids = _children(pid)
        total += sum(_rss_bytes(k) for k in getattr(self, "_kids", []))
        self._tick += 1
        if self.pid is not None:
            total = max(total, _hwm_bytes(pid))
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.sample())
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, self.sample())
        return self.peak


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "memory_mib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
    }


class Bench:
    """A named set of measurements written to ``benchmarks/results/<name>.{json,md}``."""

    def __init__(
        self, name: str, params: dict[str, Any] | None = None, results_dir: Path = RESULTS
    ) -> None:
        self.name = name
        self.params = dict(params or {})
        self.results_dir = Path(results_dir)
        self.measurements: list[Measurement] = []

    @contextlib.contextmanager
    def measure(
        self, label: str, rows: int | None = None, children: bool = True
    ) -> Iterator[Measurement]:
        """Time a block in this process; the yielded :class:`Measurement` takes ``rows``/``extra``."""
        m = Measurement(label=label, rows=rows)
        sampler = _Sampler(children=children)
        m.start_rss_mib = sampler.sample() / 2**20
        sampler.start()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        try:
            yield m
        finally:
            m.seconds = time.perf_counter() - t0
            m.cpu_seconds = time.process_time() - cpu0
            m.peak_rss_mib = sampler.stop() / 2**20
            self.measurements.append(m)
            print(f"[{self.name}] {_line(m)}", file=sys.stderr)

    def run(
        self,
        label: str,
        argv: Sequence[str],
        rows: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Measurement:
        """Run a command in a fresh process; peak memory is that process's own maximum RSS."""
        m = Measurement(label=label, rows=rows)
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), env={**os.environ, **(env or {})})
        # The kernel carries a parent's peak RSS into an exec'd child's rusage, so the child's
        # peak is sampled from /proc instead: its own high-water mark (VmHWM), or the summed
        # RSS of its process tree (Spark, worker pools) when that is larger.
        sampler = _Sampler(pid=proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        m.seconds = time.perf_counter() - t0
        m.peak_rss_mib = sampler.stop() / 2**20
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, list(argv))
        m.cpu_seconds = usage.ru_utime + usage.ru_stime
        self.measurements.append(m)
        print(f"[{self.name}] {_line(m)}", file=sys.stderr)
        return m

    def add(self, m: Measurement) -> None:
        """Record a measurement made elsewhere (e.g. returned from a worker process)."""
        self.measurements.append(m)

    def write(self, notes: str = "") -> tuple[Path, Path]:
        """Write ``<name>.json`` and ``<name>.md``; returns both paths."""
        self.results_dir.mkdir(parents=True, exist_ok=True)
        doc = {
            "name": self.name,
            "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "machine": machine(),
            "params": self.params,
            "results": [m.as_dict() for m in self.measurements],
            "notes": notes,
        }
        json_path = self.results_dir / f"{self.name}.json"
        md_path = self.results_dir / f"{self.name}.md"
        _atomic_text(json_path, json.dumps(doc, indent=2, default=str) + "\n")
        _atomic_text(md_path, markdown(doc))
        return json_path, md_path


def resource_peak_mib() -> float:
    """This process's lifetime peak RSS (MiB), for scripts that only need one number."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _line(m: Measurement) -> str:
    rps = f", {m.rows_per_second:,.0f} rows/s" if m.rows_per_second else ""
    return f"{m.label}: {m.seconds:.2f}s wall, {m.cpu_seconds:.2f}s CPU, peak {m.peak_rss_mib:.0f} MiB{rps}"


def markdown(doc: dict[str, Any]) -> str:
    """A results document as a Markdown table (one row per measurement, extras as columns)."""
    extras: list[str] = []
    for r in doc["results"]:
        extras += [k for k in r["extra"] if k not in extras]
    head = ["step", "rows", "wall s", "rows/s", "CPU s", "peak RSS MiB", *extras]
    lines = [
        f"# Benchmark: {doc['name']}",
        "",
        f"Measured {doc['created_at']} on {doc['machine']['cpus']} CPUs, "
        f"{doc['machine']['memory_mib']:,} MiB RAM, Python {doc['machine']['python']}"
        + (f", commit {doc['machine']['git_commit']}" if doc["machine"].get("git_commit") else "")
        + ".",
        "",
    ]
    if doc["params"]:
        lines += [
            "Parameters: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in doc["params"].items()),
            "",
        ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["results"]:
        cells = [
            r["label"],
            _fmt(r["rows"]),
            _fmt(r["seconds"]),
            _fmt(r["rows_per_second"]),
            _fmt(r["cpu_seconds"]),
            _fmt(r["peak_rss_mib"]),
        ]
        cells += [_fmt(r["extra"].get(k)) for k in extras]
        lines.append("| " + " | ".join(cells) + " |")
    if doc.get("notes"):
        lines += ["", doc["notes"]]
    return "\n".join(lines) + "\n"


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
