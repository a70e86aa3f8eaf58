"""The whole pipeline on synthetic data, run as each party would run it.

Every step is the real ``wmw-link`` command, invoked in-process and echoed as the shell
command a user would type, so the demo doubles as a walk-through and leaves a real audit
log. The output folder is laid out by trust boundary::

    OUT/world/                 the synthetic region: extracts (each at its controller) and truth
    OUT/controllers/<party>/   keys and tokenise outputs; rejects and crosswalk stay here
    OUT/keyring/               every party's public keys
    OUT/transfer/<to-party>/   sealed files in transit
    OUT/ttp/                   the linkage unit: unsealed tokens, maps, quality report
    OUT/analysis/              the insight team: unsealed payloads and maps, journeys, outcomes
    OUT/evaluation/            god's-eye scoring against the synthetic truth
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


def _extract(world: Path, dataset: str) -> Path:
    for suffix in (".parquet", ".csv"):
        path = world / "extracts" / f"{dataset}{suffix}"
        if path.exists():
            return path
    raise ConfigError(f"{world / 'extracts'}: no extract for dataset '{dataset}'")


def run_demo(
    out: str | Path,
    people: int = 50_000,
    seed: int = 42,
    backend: str = "duckdb",
    agreement: str | Path | None = None,
    echo: Callable[[str], None] = click.echo,
) -> DemoResult:
    """Generate a synthetic region and run every party's commands on it, end to end.

    Args:
        out: output folder (replaced if it holds an earlier demo).
        people: synthetic residents.
        seed: random seed for the synthetic region and the linkage model.
        backend: linkage backend, ``duckdb`` or ``spark``.
        agreement: agreement file (default: the shipped West Midlands Works agreement).
        echo: where progress lines go.

    Returns:
        Paths of the dashboards and audit log, linkage accuracy against the truth, timings.

    Raises:
        ConfigError: bad arguments, or ``out`` holds something other than an earlier demo.
        WmwLinkError: a step was refused (the message names the command and the reason).
    """
    out = Path(out)
    if people < 1:
        raise ConfigError("--people must be at least 1")
    if out.exists():
        if not (out / "audit.jsonl").exists() and any(out.iterdir()):
            raise ConfigError(
                f"{out}: exists and is not an earlier demo folder; choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    demo = _Demo(out, _find_agreement(agreement), seed, backend, echo)
    demo.stage("1. the synthetic region", demo.synth, people)
    demo.stage("2. keys: a linkage key for the agreement, a keypair per party", demo.keys)
    demo.stage(
        "3. controllers: tokenise, seal tokens to the TTP, payloads to the analysts",
        demo.controllers,
    )
    demo.stage(
        "4. trusted third party: unseal, verify, link with Splink, seal the maps", demo.linkage
    )
    demo.stage("5. analysts: unseal, build journeys, measure outcomes", demo.analysts)
    demo.stage("6. evaluation against the synthetic truth (synthetic data only)", demo.evaluate)
    demo.stage("7. the audit trail: a signed checkpoint, then verify", demo.audit_trail)
    result = DemoResult(
        out=out,
        audit_log=demo.audit_log,
        dashboard=demo.outcomes / "dashboard.html",
        public_dashboard=demo.outcomes / "dashboard-public.html",
        evaluation=json.loads(demo.scores.read_text()),
        timings=demo.timings,
    )
    _summary(result, echo)
    return result


class _Demo:
    """The demo's folders, and the steps each party takes."""

    def __init__(
        self, out: Path, agreement: Path, seed: int, backend: str, echo: Callable[[str], None]
    ) -> None:
        self.out, self.agreement_path, self.seed, self.backend = out, agreement, seed, backend
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
        self.maps = out / "ttp" / "link"
        self.outcomes = out / "analysis" / "outcomes"
        self.scores = out / "evaluation" / "linkage.json"

    def stage(self, name: str, step: Callable[..., None], *args: object) -> None:
        self.echo(f"\n== {name}")
        t0 = time.perf_counter()
        step(*args)
        self.timings[name] = round(time.perf_counter() - t0, 2)

    def synth(self, people: int) -> None:
        self.run("synth", "--people", people, "--seed", self.seed, "--out", self.world)

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

    def controllers(self) -> None:
        for ds in self.a.datasets:
            home = self.out / "controllers" / ds.controller
            ref_key = home / "keys" / "row-ref.key"
            if not ref_key.exists():
                self.run("keys", "new", "--out", ref_key, quiet=True)
            outbox = home / "outbox"
            self.run(
                "tokenise", "--agreement", self.agreement_path, "--dataset", ds.id,
                "--input", _extract(self.world, ds.id), "--key", self.linkage_key,
                "--ref-key", ref_key, "--out", outbox,
            )  # fmt: skip
            for name, recipients in (
                (f"{ds.id}.tokens.parquet", [self.ttp]),
                (f"{ds.id}.manifest.json", [self.ttp, self.analyst]),
                (f"{ds.id}.payload.parquet", [self.analyst]),
            ):
                for to in recipients:
                    sealed = self.out / "transfer" / to / f"{name}.sealed"
                    self._seal(ds.controller, outbox / name, sealed, to)
            self.echo(f"(seal: tokens -> {self.ttp}, payload -> {self.analyst}, manifest -> both)")

    def linkage(self) -> None:
        inbox = self.out / "ttp" / "inbox"
        self._unseal(self.ttp, self.out / "transfer" / self.ttp, inbox)
        # The link run's delivery number (series 'link'), for the envelopes of its maps.
        state = self._state(self.ttp)
        number = freshness.next_delivery(state, freshness.LINK_SERIES, None, freshness.STATE_KIND)
        self.run("link", "--agreement", self.agreement_path, "--inputs", inbox, "--out", self.maps,
                 "--backend", self.backend, "--seed", self.seed, "--state", state,
                 "--delivery", number)  # fmt: skip
        outputs = [*sorted(self.maps.glob("*.map.parquet")), self.maps / "link-manifest.json"]
        for path in outputs:
            sealed = self.out / "transfer" / self.analyst / "maps" / f"{path.name}.sealed"
            self._seal(self.ttp, path, sealed, self.analyst, number)
        self.echo(f"(seal: each map and the link manifest -> {self.analyst})")

    def analysts(self) -> None:
        inbox = self.out / "analysis" / "inbox"
        self._unseal(self.analyst, self.out / "transfer" / self.analyst, inbox / "payloads")
        self._unseal(self.analyst, self.out / "transfer" / self.analyst / "maps", inbox / "maps")
        journeys = self.out / "analysis" / "journeys"
        self.run("journeys", "--agreement", self.agreement_path, "--payloads", inbox / "payloads",
                 "--maps", inbox / "maps", "--out", journeys,
                 "--state", self._state(self.analyst))  # fmt: skip
        self.run("outcomes", "--agreement", self.agreement_path, "--journeys", journeys,
                 "--out", self.outcomes)  # fmt: skip

    def evaluate(self) -> None:
        crosswalks = self.out / "evaluation" / "crosswalks"
        crosswalks.mkdir(parents=True)
        for cw in (self.out / "controllers").glob("*/outbox/*.crosswalk.parquet"):
            shutil.copy2(cw, crosswalks / cw.name)
        self.run("evaluate", "--maps", self.maps, "--truth", self.world / "truth" / "truth.parquet",
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
        + ", ".join(f"{k.split('.')[0]}={v}" for k, v in result.timings.items())
    )
    echo(f"dashboard:          {result.dashboard}")
    echo(f"public dashboard:   {result.public_dashboard}")
    echo(f"linkage report:     {result.out / 'ttp' / 'link' / 'report'}")
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
