"""A full sealed pipeline through the real ``wmw-link`` commands, for the governance tests.

Layout (every party has its own folder; only sealed files cross between them)::

    ROOT/keys/ring/                       every party's public file (the shared keyring)
    ROOT/keys/secrets/<party>/            each party's own secret
    ROOT/controllers/<party>/extract/     the controller's plaintext extract (+ extra sensitive columns)
    ROOT/controllers/<party>/keys/        the shared linkage key and the controller's row-ref key
    ROOT/controllers/<party>/out/         tokenise output (tokens, payload, manifest, rejects, crosswalk)
    ROOT/controllers/<party>/outbox/<recipient>/*.sealed
    ROOT/ttp/inbox/                       unsealed tokens + manifests
    ROOT/ttp/link/                        maps, link-manifest.json, report/
    ROOT/ttp/outbox/<recipient>/*.sealed
    ROOT/analysis/inbox/payloads/         unsealed payloads + manifests
    ROOT/analysis/inbox/maps/             unsealed maps + link-manifest.json
    ROOT/analysis/journeys/               events, persons
    ROOT/analysis/outcomes/               tables and dashboards (disclosure control applied)
    ROOT/audit.jsonl                      the audit log of every command above

Not a test module (leading underscore): imported by test_governance.py and test_leak_scan.py.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from wmw_link import freshness

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"
TTP, ANALYST = "linkage-unit", "insight-team"

#: Columns no agreement names, added to every extract: they must never appear downstream.
EXTRA_COLUMNS = ("religion_private", "home_address_private", "sexual_orientation_private")


def extra_value(column: str, i: int) -> str:
    return f"XSENSITIVE{column[:4].upper()}{i:06d}Z"


@dataclass
class World:
    root: Path
    agreement: Path
    audit_log: Path
    datasets: dict[str, str]  # dataset -> controller party
    extracts: dict[str, Path] = field(default_factory=dict)
    secrets: dict[str, Path] = field(default_factory=dict)
    synth_dir: Path | None = None

    @property
    def ring(self) -> Path:
        return self.root / "keys" / "ring"

    def party_dir(self, party: str) -> Path:
        if party == TTP:
            return self.root / "ttp"
        if party == ANALYST:
            return self.root / "analysis"
        return self.root / "controllers" / party

    def linkage_key(self, party: str) -> Path:
        return self.party_dir(party) / "keys" / "linkage.key"

    def ref_key(self, party: str) -> Path:
        return self.party_dir(party) / "keys" / "row-ref.key"

    def tok_out(self, dataset: str) -> Path:
        return self.party_dir(self.datasets[dataset]) / "out"


def cli(world: World, *args: str, ok: bool = True) -> Result:
    """Run one ``wmw-link`` command with the world's audit log; assert success (or failure)."""
    from wmw_link.cli import main

    result = CliRunner().invoke(main, ["--audit-log", str(world.audit_log), *map(str, args)])
    if ok:
        assert result.exit_code == 0, f"{args[:2]} failed:\n{result.output}\n{result.exception!r}"
    else:
        assert result.exit_code != 0, f"{args[:2]} should have been refused:\n{result.output}"
    return result


def _add_extra_columns(src: Path, dst: Path) -> None:
    if src.suffix == ".parquet":
        table = pq.read_table(src)
    else:
        cols = pcsv.read_csv(src, read_options=pcsv.ReadOptions(column_names=None)).column_names
        table = pcsv.read_csv(
            src, convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(cols, pa.string()))
        )
    for col in EXTRA_COLUMNS:
        table = table.append_column(col, pa.array([extra_value(col, i) for i in range(len(table))]))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix == ".parquet":
        pq.write_table(table, dst)
    else:
        pcsv.write_csv(table, dst)


def build_world(root: Path, people: int = 1500, seed: int = 11) -> World:
    """Synthetic extracts with extra sensitive columns, keys for every party, empty folders."""
    synth = pytest.importorskip("wmw_link.synth")
    if not hasattr(synth, "generate"):
        pytest.skip("wmw_link.synth.generate is not available yet")
    from wmw_link.agreement import load_agreement
    from wmw_link.party_keys import new_keyring

    agreement = load_agreement(AGREEMENT)
    world = World(
        root=root,
        agreement=AGREEMENT,
        audit_log=root / "audit.jsonl",
        datasets={d.id: d.controller for d in agreement.datasets},
    )
    synth_dir = root / "controllers" / "_synthetic"  # the generator's output is controller-side
    result = synth.generate(people=people, seed=seed, out=synth_dir)
    world.synth_dir = synth_dir
    for ds, path in result.extracts.items():
        party = world.datasets[ds]
        dst = world.party_dir(party) / "extract" / path.name
        _add_extra_columns(path, dst)
        world.extracts[ds] = dst
    world.secrets = new_keyring(
        [p.id for p in agreement.parties], root / "keys" / "secrets", world.ring
    )
    # One linkage key for the agreement, copied to every controller; one row-ref key each.
    shared = root / "keys" / "linkage.key"
    cli(world, "keys", "new", "--out", shared)
    for party in sorted(set(world.datasets.values())):
        world.linkage_key(party).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shared, world.linkage_key(party))
        cli(world, "keys", "new", "--out", world.ref_key(party))
    shared.unlink()
    return world


def tokenise(world: World, dataset: str, *extra: str, ok: bool = True) -> Result:
    party = world.datasets[dataset]
    return cli(
        world, "tokenise", "--agreement", world.agreement, "--dataset", dataset,
        "--input", world.extracts[dataset], "--key", world.linkage_key(party),
        "--ref-key", world.ref_key(party), "--out", world.tok_out(dataset), "--workers", "1",
        *extra, ok=ok,
    )  # fmt: skip


def seal(
    world: World, path: Path, sender: str, recipient: str, delivery: int | None = None
) -> Path:
    out = world.party_dir(sender) / "outbox" / recipient / (path.name + ".sealed")
    more = ["--delivery", str(delivery)] if delivery is not None else []
    cli(
        world, "seal", path, "--agreement", world.agreement, "--from", sender,
        "--secret", world.secrets[sender], "--to", recipient, "--keyring", world.ring, "--out", out,
        *more,
    )  # fmt: skip
    return out


def state(world: World, party: str) -> Path:
    """Each recipient's own delivery state (latest delivery accepted per dataset)."""
    return world.party_dir(party) / "delivery-state.json"


def unseal(
    world: World, sealed: Path, party: str, out_dir: Path, manifest: Path | None = None,
    sender: str | None = None, ok: bool = True,
) -> Result:  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "unseal", sealed, "--agreement", world.agreement, "--as", party,
        "--secret", world.secrets[party], "--keyring", world.ring, "--out", out_dir,
        "--state", state(world, party),
    ]  # fmt: skip
    if manifest is not None:
        args += ["--manifest", manifest]
    if sender is not None:
        args += ["--from", sender]
    return cli(world, *args, ok=ok)


def run_pipeline(world: World) -> None:
    """Tokenise every extract, seal, unseal at the TTP, link, seal maps, unseal, journeys, outcomes."""
    ttp_in = world.party_dir(TTP) / "inbox"
    pay_in = world.party_dir(ANALYST) / "inbox" / "payloads"
    map_in = world.party_dir(ANALYST) / "inbox" / "maps"
    for ds, party in world.datasets.items():
        tokenise(world, ds)
        out = world.tok_out(ds)
        manifest = out / f"{ds}.manifest.json"
        for recipient, files, inbox in (
            (TTP, [manifest, out / f"{ds}.tokens.parquet"], ttp_in),
            (ANALYST, [manifest, out / f"{ds}.payload.parquet"], pay_in),
        ):
            for f in files:
                sealed = seal(world, f, party, recipient)
                # The manifest is opened first, and then vouches for the data file's hash.
                unseal(
                    world, sealed, recipient, inbox, sender=party,
                    manifest=None if f == manifest else inbox / manifest.name,
                )  # fmt: skip
    link_out = world.party_dir(TTP) / "link"
    run = freshness.next_delivery(state(world, TTP), "link", None, freshness.STATE_KIND)
    cli(
        world, "link", "--agreement", world.agreement, "--inputs", ttp_in, "--out", link_out,
        "--threads", "2", "--state", state(world, TTP), "--delivery", str(run),
    )  # fmt: skip
    link_manifest = link_out / "link-manifest.json"
    unseal(world, seal(world, link_manifest, TTP, ANALYST, run), ANALYST, map_in, sender=TTP)
    for m in sorted(link_out.glob("*.map.parquet")):
        sealed = seal(world, m, TTP, ANALYST, run)
        unseal(world, sealed, ANALYST, map_in, sender=TTP, manifest=map_in / link_manifest.name)
    cli(
        world, "journeys", "--agreement", world.agreement, "--payloads", pay_in,
        "--maps", map_in, "--out", world.party_dir(ANALYST) / "journeys",
    )  # fmt: skip
    cli(
        world, "outcomes", "--agreement", world.agreement,
        "--journeys", world.party_dir(ANALYST) / "journeys",
        "--out", world.party_dir(ANALYST) / "outcomes",
    )  # fmt: skip
