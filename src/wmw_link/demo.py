"""The whole pipeline on synthetic data, run as each party would run it, month by month.

Every step is the real ``wmw-link`` command, invoked in-process and echoed as the shell
command a user would type, so the demo doubles as a walk-through and leaves a real audit
log. The partners deliver monthly (``synth --deliveries K``, three by default: the initial
load, then two months); for each delivery the controllers tokenise and seal, the TTP links it
against its person index (``link --index``) and seals the maps and id changes, and the
analysts refresh journeys over every delivery so far and measure outcomes, with the headline
measures across refreshes. In the last month a hub client opts out: the hub withdraws the
record (``withdraw``, sealed to the TTP and the analysts), the TTP's index run removes it and
the analysts' journeys drop it. The output folder is laid out by trust boundary (``NN`` = delivery)::

    OUT/world/                 the synthetic region: extracts, deliveries/NN (each at its
                               controller) and truth
    OUT/controllers/<party>/   keys and tokenise outputs (outbox/NN); rejects and crosswalks
                               stay here
    OUT/keyring/               every party's public keys
    OUT/transfer/<to-party>/   sealed files in transit (NN/)
    OUT/ttp/                   the linkage unit: inbox/NN, the person index, link/NN (maps, id
                               changes; link/01/report: the quality report of the full first run)
    OUT/analysis/              the insight team: inbox/NN, journeys and outcomes of each
                               refresh (journeys/, outcomes/: the latest)
    OUT/evaluation/            god's-eye scoring of the latest refresh against the truth
    OUT/audit.jsonl            the hash-chained audit log of every command above
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from wmw_link import freshness
from wmw_link.agreement import Agreement, Role, load_agreement
from wmw_link.errors import ConfigError, WmwLinkError

DEFAULT_AGREEMENT = Path(__file__).resolve().parents[2] / "agreements" / "wmw-outcomes.yaml"


@dataclass
class DemoResult:
    out: Path
    audit_log: Path
    dashboard: Path
    public_dashboard: Path
    evaluation: dict[str, object]
    timings: dict[str, float] = field(default_factory=dict)
    deliveries: int = 1


class _Runner:
    """Runs wmw-link commands in-process against one audit log, echoing each one."""

    def __init__(self, audit_log: Path, echo: Callable[[str], None]) -> None:
        self.audit_log = audit_log
        self.echo = echo

    def __call__(self, *args: str | Path, quiet: bool = False) -> None:
        """Run one command; ``quiet`` hides its echo and output (repetitive seal/unseal steps)."""
        from wmw_link.cli import main

        argv = [str(a) for a in args]
        if not quiet:
            self.echo("$ wmw-link " + " ".join(shlex.quote(a) for a in argv))
        sink = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
        try:
            with sink:
                main.main(
                    args=["--audit-log", str(self.audit_log), *argv],
                    prog_name="wmw-link",
                    standalone_mode=False,
                )
        except click.ClickException as e:
            raise WmwLinkError(
                f"demo step 'wmw-link {argv[0]}' failed: {e.format_message()}"
            ) from None


def _find_agreement(agreement: str | Path | None) -> Path:
    if agreement is not None:
        return Path(agreement)
    for candidate in (Path("agreements/wmw-outcomes.yaml"), DEFAULT_AGREEMENT):
        if candidate.exists():
            return candidate
    raise ConfigError("cannot find agreements/wmw-outcomes.yaml: pass --agreement")


def _extract(folder: Path, dataset: str) -> Path | None:
    """A dataset's extract in a delivery's ``extracts/`` (None: nothing sent that month)."""
    for suffix in (".parquet", ".csv"):
        path = folder / "extracts" / f"{dataset}{suffix}"
        if path.exists():
            return path
    return None


def run_demo(
    out: str | Path,
    people: int = 50_000,
    seed: int = 42,
    backend: str = "duckdb",
    agreement: str | Path | None = None,
    echo: Callable[[str], None] = click.echo,
    deliveries: int = 3,
) -> DemoResult:
    """Generate a synthetic region and run every party's commands on it, month by month.

    Args:
        out: output folder (replaced if it holds an earlier demo).
        people: synthetic residents.
        seed: random seed for the synthetic region and the linkage model.
        backend: linkage backend, ``duckdb`` or ``spark``.
        agreement: agreement file (default: the shipped West Midlands Works agreement).
        echo: where progress lines go.
        deliveries: monthly deliveries (1 to 33; 1 is the whole history in one delivery).

    Returns:
        Paths of the dashboards and audit log, linkage accuracy against the truth, timings.

    Raises:
        ConfigError: bad arguments, or ``out`` holds something other than an earlier demo.
        WmwLinkError: a step was refused (the message names the command and the reason).
    """
    out = Path(out)
    if people < 1:
        raise ConfigError("--people must be at least 1")
    if not 1 <= deliveries <= 33:
        raise ConfigError("--deliveries must be from 1 to 33 (one a month, up to 2026-09)")
    if out.exists():
        if not (out / "audit.jsonl").exists() and any(out.iterdir()):
            raise ConfigError(
                f"{out}: exists and is not an earlier demo folder; choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    demo = _Demo(out, _find_agreement(agreement), seed, backend, echo, deliveries)
    demo.stage("1. the synthetic region, in monthly deliveries", demo.synth, people)
    demo.stage("2. keys: a linkage key for the agreement, a keypair per party", demo.keys)
    for d in range(1, deliveries + 1):
        demo.stage(
            f"3.{d} delivery {d:02d} ({demo.month(d)}): controllers tokenise and seal, the TTP "
            "links it against the person index, the analysts refresh journeys and outcomes",
            demo.delivery,
            d,
        )
    demo.stage("4. evaluation against the synthetic truth (synthetic data only)", demo.evaluate)
    demo.stage("5. the audit trail: a signed checkpoint, then verify", demo.audit_trail)
    result = DemoResult(
        out=out,
        audit_log=demo.audit_log,
        dashboard=demo.outcomes / "dashboard.html",
        public_dashboard=demo.outcomes / "dashboard-public.html",
        evaluation=json.loads(demo.scores.read_text()),
        timings=demo.timings,
        deliveries=deliveries,
    )
    _summary(result, echo)
    return result


class _Demo:
    """The demo's folders, and the steps each party takes."""

    def __init__(
        self,
        out: Path,
        agreement: Path,
        seed: int,
        backend: str,
        echo: Callable[[str], None],
        deliveries: int = 1,
    ) -> None:
        self.out, self.agreement_path, self.seed, self.backend = out, agreement, seed, backend
        self.deliveries = deliveries
        self.echo = echo
        self.a = load_agreement(agreement)
        self.audit_log = out / "audit.jsonl"
        self.run = _Runner(self.audit_log, echo)
        self.timings: dict[str, float] = {}
        self.ttp = self.a.default_party(Role.TTP)
        self.analyst = self.a.default_party(Role.ANALYST)
        self.world, self.keyring = out / "world", out / "keyring"
        self.linkage_key = out / "controllers" / "agreement-linkage.key"
        self.secrets: dict[str, Path] = {}
        self.index = out / "ttp" / "index"
        self.withdrawals: list[tuple[str, str]] = []  # (delivery, dataset) of each list
        self.outcomes = out / "analysis" / "outcomes"
        self.journeys = out / "analysis" / "journeys"
        self.scores = out / "evaluation" / "linkage.json"

    def stage(self, name: str, step: Callable[..., None], *args: object) -> None:
        self.echo(f"\n== {name}")
        t0 = time.perf_counter()
        step(*args)
        self.timings[name] = round(time.perf_counter() - t0, 2)

    def synth(self, people: int) -> None:
        self.run("synth", "--people", people, "--seed", self.seed, "--out", self.world,
                 "--deliveries", self.deliveries)  # fmt: skip

    def month(self, d: int) -> str:
        from wmw_link.synth.deliveries import delivery_months

        return delivery_months(self.deliveries)[d - 1]

    def delivery(self, d: int) -> None:
        """One month: every party's steps for delivery ``d``."""
        self.controllers(d)
        if d == self.deliveries and d > 1:
            self.withdraw(d)
        self.linkage(d)
        self.analysts(d)

    def withdraw(self, d: int) -> None:
        """A hub client opts out: the hub withdraws a record it sent in delivery 01."""
        nn = f"{d:02d}"
        ds = self.a.dataset("hub_birmingham")
        home = self.out / "controllers" / ds.controller
        extract = _extract(self.world / "deliveries" / "01", ds.id)
        if extract is None:
            return
        if extract.suffix == ".parquet":
            first = pq.read_table(extract, columns=[ds.record_id])
        else:
            only = pa_csv.ConvertOptions(
                include_columns=[ds.record_id], column_types={ds.record_id: pa.string()}
            )
            first = pa_csv.read_csv(extract, convert_options=only)
        records = home / "withdrawals" / f"opt-out-{nn}.csv"
        records.parent.mkdir(parents=True, exist_ok=True)
        records.write_text(f"{ds.record_id}\n{first.column(0)[0].as_py()}\n", encoding="utf-8")
        lists = home / "withdrawals" / nn
        self.run("withdraw", "--agreement", self.agreement_path, "--dataset", ds.id,
                 "--records", records, "--key", home / "keys" / "row-ref.key", "--out", lists,
                 "--sign-with", self.secrets[ds.controller], "--seal-to", self.ttp,
                 "--seal-to", self.analyst, "--keyring", self.keyring)  # fmt: skip
        for to in (self.ttp, self.analyst):
            dest = self.out / "transfer" / to / "withdrawals" / nn
            dest.mkdir(parents=True, exist_ok=True)
            for sealed in sorted((lists / "sealed" / to).glob("*.sealed")):
                shutil.copy2(sealed, dest / sealed.name)
        self.withdrawals.append((nn, ds.id))

    def keys(self) -> None:
        self.run("keys", "new", "--out", self.linkage_key, "--agreement", self.agreement_path)
        self.keyring.mkdir(parents=True, exist_ok=True)
        for party in self.a.parties:
            home = _party_home(self.out, self.a, party.id) / "keys"
            self.run("keys", "new-party", "--party", party.id, "--out", home,
                     "--agreement", self.agreement_path, quiet=True)  # fmt: skip
            self.secrets[party.id] = home / f"{party.id}.secret"
            shutil.copy2(home / f"{party.id}.public.json", self.keyring / f"{party.id}.public.json")
        self.echo(
            f"(keys new-party for all {len(self.a.parties)} parties; public keys in keyring/)"
        )

    def controllers(self, d: int) -> None:
        nn = f"{d:02d}"
        sent = 0
        for ds in self.a.datasets:
            extract = _extract(self.world / "deliveries" / nn, ds.id)
            if extract is None:  # nothing to send this month
                continue
            home = self.out / "controllers" / ds.controller
            ref_key = home / "keys" / "row-ref.key"
            if not ref_key.exists():
                self.run("keys", "new", "--out", ref_key, quiet=True)
            outbox = home / "outbox" / nn
            # The first delivery is shown in full; later months are the same commands.
            self.run(
                "tokenise", "--agreement", self.agreement_path, "--dataset", ds.id,
                "--input", extract, "--key", self.linkage_key,
                "--ref-key", ref_key, "--out", outbox, quiet=d > 1,
            )  # fmt: skip
            sent += 1
            for name, recipients in (
                (f"{ds.id}.tokens.parquet", [self.ttp]),
                (f"{ds.id}.manifest.json", [self.ttp, self.analyst]),
                (f"{ds.id}.payload.parquet", [self.analyst]),
            ):
                for to in recipients:
                    sealed = self.out / "transfer" / to / nn / f"{name}.sealed"
                    self._seal(ds.controller, outbox / name, sealed, to)
        if d > 1:
            self.echo(f"(tokenise: {sent} datasets of delivery {nn}, as for delivery 01)")
        self.echo(f"(seal: tokens -> {self.ttp}, payload -> {self.analyst}, manifest -> both)")

    def linkage(self, d: int) -> None:
        nn = f"{d:02d}"
        inbox = self.out / "ttp" / "inbox" / nn
        self._unseal(self.ttp, self.out / "transfer" / self.ttp / nn, inbox)
        # The link run's delivery number (series 'link'), for the envelopes of its outputs.
        state = self._state(self.ttp)
        number = freshness.next_delivery(state, freshness.LINK_SERIES, None, freshness.STATE_KIND)
        maps = self.out / "ttp" / "link" / nn
        lists: list[str | Path] = []
        for w_nn, ds_id in self.withdrawals:
            if w_nn == nn:  # a list arrived this month: the TTP applies it in this run
                got = self.out / "ttp" / "withdrawals" / w_nn
                self._unseal(self.ttp, self.out / "transfer" / self.ttp / "withdrawals" / w_nn, got)
                lists += ["--withdrawals", got / f"{ds_id}.withdrawals.parquet",
                          "--withdrawals-keyring", self.keyring]  # fmt: skip
        self.run("link", "--agreement", self.agreement_path, "--index", self.index,
                 "--inputs", inbox, "--out", maps, "--backend", self.backend,
                 "--seed", self.seed, "--state", state, "--delivery", number,
                 *([] if d == 1 else ["--no-report"]), *lists)  # fmt: skip
        outputs = [*sorted(maps.glob("*.map.parquet")), maps / "id-changes.parquet",
                   maps / "link-manifest.json"]  # fmt: skip
        for path in outputs:
            sealed = self.out / "transfer" / self.analyst / "maps" / nn / f"{path.name}.sealed"
            self._seal(self.ttp, path, sealed, self.analyst, number)
        self.echo(f"(seal: each map, the id changes and the link manifest -> {self.analyst})")

    def analysts(self, d: int) -> None:
        nn = f"{d:02d}"
        inbox = self.out / "analysis" / "inbox" / nn
        self._unseal(self.analyst, self.out / "transfer" / self.analyst / nn, inbox / "payloads")
        self._unseal(
            self.analyst, self.out / "transfer" / self.analyst / "maps" / nn, inbox / "maps"
        )
        # Every delivery so far: the latest refresh goes to journeys/ and outcomes/.
        last = d == self.deliveries
        journeys = self.journeys if last else self.out / "analysis" / f"journeys-{nn}"
        folders: list[str | Path] = []
        for k in range(1, d + 1):
            got = self.out / "analysis" / "inbox" / f"{k:02d}"
            folders += ["--payloads", got / "payloads", "--maps", got / "maps"]
        for w_nn, ds_id in self.withdrawals:  # every list so far, in every later refresh
            got = self.out / "analysis" / "withdrawals" / w_nn
            if not got.exists():
                src = self.out / "transfer" / self.analyst / "withdrawals" / w_nn
                self._unseal(self.analyst, src, got)
            folders += ["--withdrawals", got / f"{ds_id}.withdrawals.parquet"]
        more = ["--keyring", self.keyring] if self.withdrawals else []
        self.run("journeys", "--agreement", self.agreement_path, *folders, *more,
                 "--out", journeys, "--state", self._state(self.analyst))  # fmt: skip
        outcomes = self.outcomes if last else self.out / "analysis" / f"outcomes-{nn}"
        previous: list[str | Path] = []
        for k in range(1, d):
            previous += ["--previous", self.out / "analysis" / f"outcomes-{k:02d}"]
        self.run("outcomes", "--agreement", self.agreement_path, "--journeys", journeys,
                 "--out", outcomes, *previous)  # fmt: skip

    def evaluate(self) -> None:
        """Score the latest refresh: the analysts' maps after every link run (id changes
        applied), joined to the truth through the controllers' crosswalks of every delivery."""
        from wmw_link.journeys.refresh import accumulate_maps

        ev = self.out / "evaluation"
        maps_dir, crosswalks = ev / "maps", ev / "crosswalks"
        maps_dir.mkdir(parents=True)
        crosswalks.mkdir(parents=True)
        inbox = self.out / "analysis" / "inbox"
        maps = accumulate_maps(self.a, sorted(inbox.glob("*/maps")))
        for ds, table in maps.items():
            pq.write_table(table, maps_dir / f"{ds}.map.parquet")
        by_dataset: dict[str, list[pa.Table]] = {}
        for cw in sorted((self.out / "controllers").glob("*/outbox/*/*.crosswalk.parquet")):
            t = pq.read_table(cw, columns=["record_id", "row_ref"])
            t = t.cast(pa.schema([("record_id", pa.string()), ("row_ref", pa.string())]))
            by_dataset.setdefault(cw.name, []).append(t)
        for name, parts in by_dataset.items():  # a re-sent record: one row ref, listed once
            whole = pa.concat_tables(parts).group_by(["record_id", "row_ref"]).aggregate([])
            pq.write_table(whole, crosswalks / name)
        self.echo(
            f"(evaluation maps: the analysts' maps after {self.deliveries} link run(s); "
            "crosswalks of every delivery)"
        )
        self.run("evaluate", "--maps", maps_dir, "--truth", self.world / "truth" / "truth.parquet",
                 "--crosswalks", crosswalks, "--json", self.scores)  # fmt: skip

    def audit_trail(self) -> None:
        # The analysts sign the log as it stands; --keyring checks every party's checkpoints.
        self.run("audit", "checkpoint", "--party-secret", self.secrets[self.analyst])
        self.run("audit", "verify", self.audit_log, "--keyring", self.keyring)

    def _seal(
        self, sender: str, path: Path, sealed: Path, to: str, delivery: int | None = None
    ) -> None:
        sealed.parent.mkdir(parents=True, exist_ok=True)
        more = ["--delivery", str(delivery)] if delivery is not None else []
        self.run("seal", path, "--agreement", self.agreement_path, "--secret", self.secrets[sender],
                 "--to", to, "--keyring", self.keyring, "--out", sealed, *more,
                 quiet=True)  # fmt: skip

    def _state(self, party: str) -> Path:
        """Each recipient keeps its own delivery state in its own folder."""
        return _party_home(self.out, self.a, party) / "delivery-state.json"

    def _unseal(self, me: str, sealed_dir: Path, dest: Path) -> None:
        """Unseal a whole transfer folder: manifests first, each file checked against its own."""
        dest.mkdir(parents=True, exist_ok=True)
        self.run("unseal", sealed_dir, "--agreement", self.agreement_path, "--as", me,
                 "--secret", self.secrets[me], "--keyring", self.keyring, "--out", dest,
                 "--state", self._state(me), quiet=True)  # fmt: skip
        n = len(list(sealed_dir.glob("*.sealed")))
        self.echo(
            f"(unseal {sealed_dir.relative_to(self.out)}/ as {me}: {n} files; signature, sender, "
            "agreement, flow, freshness, hash and manifest checks passed)"
        )


def _party_home(out: Path, a: Agreement, party_id: str) -> Path:
    role = a.party(party_id).role
    if role == Role.CONTROLLER:
        return out / "controllers" / party_id
    return out / ("ttp" if role == Role.TTP else "analysis")


def _summary(result: DemoResult, echo: Callable[[str], None]) -> None:
    ev = result.evaluation
    pairwise = ev.get("pairwise", ev) if isinstance(ev, dict) else {}
    echo("\n== done")
    if isinstance(pairwise, dict) and "f1" in pairwise:
        echo(
            f"linkage against the truth: precision {pairwise['precision']:.4f}, "
            f"recall {pairwise['recall']:.4f}, F1 {pairwise['f1']:.4f}"
        )
    echo(
        "stage timings (s): "
        + ", ".join(f"{k.split(' ')[0].rstrip('.')}={v}" for k, v in result.timings.items())
    )
    echo(f"dashboard:          {result.dashboard}")
    echo(f"public dashboard:   {result.public_dashboard}")
    echo(f"linkage report:     {result.out / 'ttp' / 'link' / '01' / 'report'}")
    echo(
        f"refreshes:          {result.deliveries} monthly deliveries linked through the person "
        f"index {result.out / 'ttp' / 'index'}"
    )
    echo(f"audit log:          {result.audit_log} (verified)")


def demo_steps() -> Sequence[str]:
    """The commands the demo runs, in order (for the docs test)."""
    return (
        "synth",
        "keys",
        "tokenise",
        "seal",
        "unseal",
        "link",
        "journeys",
        "outcomes",
        "evaluate",
        "audit",
    )
