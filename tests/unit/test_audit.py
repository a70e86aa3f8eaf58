"""The hash-chained audit log: appends, verification of every kind of tampering, CLI wiring."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wmw_link import audit
from wmw_link.cli import main
from wmw_link.errors import VerificationError
from wmw_link.runrecord import RunRecord

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"


def _record(i: int) -> RunRecord:
    rec = RunRecord(command=f"cmd{i}", party="dwp", role="controller")
    rec.agreement = {"id": "wmw-outcomes", "version": 1, "hash": "ab" * 32}
    rec.inputs[f"in/{i}.csv"] = f"{i:064x}"
    rec.outputs[f"out/{i}.parquet"] = f"{i + 1:064x}"
    rec.rows["input"] = 10 * i
    return rec


def _log(tmp_path: Path, n: int = 5) -> Path:
    log = tmp_path / "audit.jsonl"
    for i in range(1, n + 1):
        audit.append(log, _record(i), "ok")
    return log


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def _write(log: Path, lines: list[str]) -> None:
    log.write_text("".join(line + "\n" for line in lines))


def test_append_chains_lines_and_verify_accepts(tmp_path: Path) -> None:
    log = _log(tmp_path)
    entries = [json.loads(x) for x in _lines(log)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev_hash"] == audit.GENESIS
    for before, after in zip(entries, entries[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
    e = entries[2]
    assert e["command"] == "cmd3" and e["party"] == "dwp" and e["role"] == "controller"
    assert e["agreement"]["id"] == "wmw-outcomes"
    assert e["inputs"] == [{"path": "in/3.csv", "sha256": f"{3:064x}"}]
    assert e["rows"] == {"input": 30} and e["outcome"] == "ok" and e["tool_version"]
    report = audit.verify(log)
    assert report.lines == 5 and report.head == entries[-1]["hash"]


def test_edited_line_is_named(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines[2] = lines[2].replace('"outcome":"ok"', '"outcome":"refused: nothing"')
    _write(log, lines)
    with pytest.raises(
        VerificationError, match=r"line 3: its content does not match its hash"
    ) as exc:
        audit.verify(log)
    assert "1 problem(s)" in str(exc.value)


def test_edited_line_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    entry = json.loads(lines[1])
    entry["party"] = "hmrc"
    entry["hash"] = audit.line_hash(entry)
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    _write(log, lines)
    with pytest.raises(VerificationError, match=r"line 3: does not chain to line 2"):
        audit.verify(log)


def test_removed_line_is_named(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    del lines[1]
    _write(log, lines)
    with pytest.raises(VerificationError) as exc:
        audit.verify(log)
    msg = str(exc.value)
    assert "line 2: has sequence number 3 where 2 belongs" in msg
    assert "removed, inserted or moved" in msg
    assert "1 problem(s)" in msg  # the lines after the gap are not blamed


def test_removed_first_line_is_found(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _write(log, _lines(log)[1:])
    with pytest.raises(VerificationError, match="line 1: has sequence number 2"):
        audit.verify(log)


def test_reordered_lines_are_named(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines[2], lines[3] = lines[3], lines[2]
    _write(log, lines)
    with pytest.raises(VerificationError, match=r"line 3: has sequence number 4"):
        audit.verify(log)


def test_inserted_line_is_named(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    forged = json.loads(lines[1])
    forged["command"] = "forged"
    forged["hash"] = audit.line_hash(forged)
    lines.insert(2, json.dumps(forged, sort_keys=True, separators=(",", ":")))
    _write(log, lines)
    with pytest.raises(VerificationError, match=r"line 3: has sequence number 2 where 3 belongs"):
        audit.verify(log)


def test_garbage_line_is_named(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines[3] = lines[3][:40]
    _write(log, lines)
    with pytest.raises(VerificationError, match="line 4: not a JSON object"):
        audit.verify(log)


def test_lines_cut_from_the_end_are_caught_with_a_kept_head(tmp_path: Path) -> None:
    log = _log(tmp_path)
    head = audit.verify(log).head
    audit.append(log, _record(6), "ok")
    assert audit.verify(log, expect_head=head).lines == 6  # the log may grow
    _write(log, _lines(log)[:3])
    assert audit.verify(log).lines == 3  # a shorter chain is still a chain...
    with pytest.raises(VerificationError, match="expected head"):
        audit.verify(log, expect_head=head)  # ...but not the one whose head was kept


def test_damaged_last_line_stops_further_appends(tmp_path: Path) -> None:
    log = _log(tmp_path, 2)
    with log.open("a") as fh:
        fh.write('{"seq": 3, "trunc\n')
    with pytest.raises(VerificationError, match="last line of the audit log is damaged"):
        audit.append(log, _record(9), "ok")


def _append_many(args: tuple[str, int]) -> None:
    log, worker = args
    for i in range(25):
        audit.append(log, _record(worker * 100 + i), "ok")


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        pool.map(_append_many, [(str(log), w) for w in range(4)])
    report = audit.verify(log)
    assert report.lines == 100
    commands = {json.loads(x)["command"] for x in _lines(log)}
    assert len(commands) == 100


def test_every_cli_command_appends_its_outcome(tmp_path: Path) -> None:
    log = tmp_path / "cli.jsonl"
    runner = CliRunner()
    ok = runner.invoke(main, ["--audit-log", str(log), "agreement", "check", str(AGREEMENT)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        main, ["--audit-log", str(log), "agreement", "check", str(tmp_path / "missing.yaml")]
    )
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    verified = runner.invoke(main, ["--audit-log", str(log), "audit", "verify", str(log)])
    assert verified.exit_code == 0, verified.output
    assert "OK: 2 line(s) verified" in verified.output
    entries = [json.loads(x) for x in _lines(log)]
    assert [e["command"] for e in entries] == ["agreement check", "agreement check", "audit verify"]
    assert entries[0]["outcome"] == "ok"
    assert (
        entries[1]["outcome"].startswith("refused: ")
        and "agreement file not found" in entries[1]["outcome"]
    )
    assert audit.verify(log).lines == 3


def test_audit_log_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "env.jsonl"
    monkeypatch.setenv("WMW_LINK_AUDIT_LOG", str(log))
    result = CliRunner().invoke(main, ["agreement", "check", str(AGREEMENT)])
    assert result.exit_code == 0, result.output
    assert json.loads(_lines(log)[0])["command"] == "agreement check"


def test_audit_verify_command_reports_the_broken_line(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    del lines[3]
    _write(log, lines)
    result = CliRunner().invoke(main, ["audit", "verify", str(log)])
    assert result.exit_code == 1
    assert "line 4: has sequence number 5" in result.output


def test_audit_show(tmp_path: Path) -> None:
    log = _log(tmp_path, 3)
    result = CliRunner().invoke(main, ["audit", "show", str(log), "--last", "2"])
    assert result.exit_code == 0, result.output
    assert "cmd1" not in result.output and "cmd2" in result.output and "cmd3" in result.output
    raw = CliRunner().invoke(main, ["audit", "show", str(log), "--json"])
    assert [json.loads(x)["seq"] for x in raw.output.splitlines()] == [1, 2, 3]


def test_unexpected_errors_and_usage_errors_are_logged_by_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wmw_link.cli.audit_cmd as audit_cmd

    log = tmp_path / "cli.jsonl"
    target = _log(tmp_path, 2)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something with a value in it")

    monkeypatch.setattr(audit_cmd, "verify", boom)
    r = CliRunner().invoke(main, ["--audit-log", str(log), "audit", "verify", str(target)])
    assert r.exit_code == 1 and "internal error (RuntimeError)" in r.output
    assert "something with a value" not in r.output
    r = CliRunner().invoke(main, ["--audit-log", str(log), "audit", "show"])  # LOG missing
    assert r.exit_code == 2
    outcomes = [json.loads(x)["outcome"] for x in _lines(log)]
    # Only the exception type: an unexpected message could hold anything.
    assert outcomes == ["error: RuntimeError", "error: MissingParameter"]
    assert audit.verify(log).lines == 2


@pytest.fixture(scope="module")
def base_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    log = tmp_path_factory.mktemp("base") / "audit.jsonl"
    for i in range(1, 11):
        audit.append(log, _record(i), "ok")
    return _lines(log), audit.verify(log).head


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    op=st.sampled_from(["delete", "swap", "edit", "duplicate"]),
    i=st.integers(0, 9),
    j=st.integers(0, 9),
)
def test_any_single_tampering_is_detected(
    tmp_path_factory: pytest.TempPathFactory, base_log, op: str, i: int, j: int
) -> None:
    lines, head = base_log
    lines = list(lines)
    if op == "delete":
        del lines[i]
    elif op == "swap":
        if i == j:
            j = (i + 1) % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "edit":
        lines[i] = lines[i].replace('"outcome":"ok"', '"outcome":"ok "')
    else:
        lines.insert(j, lines[i])
    log = tmp_path_factory.mktemp("t") / "audit.jsonl"
    _write(log, lines)
    # With the head kept from before, even a cut at the end is found.
    with pytest.raises(VerificationError, match=r"line \d+: |expected head"):
        audit.verify(log, expect_head=head)


def test_an_empty_log_fails_unless_allowed(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    args = ["--audit-log", str(tmp_path / "own.jsonl"), "audit", "verify", str(empty)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "the log is empty" in result.output and "OK" not in result.output
    allowed = CliRunner().invoke(main, [*args, "--allow-empty"])
    assert allowed.exit_code == 0, allowed.output
    assert "OK: 0 line(s)" in allowed.output


def test_verify_without_head_says_truncation_is_not_detected(tmp_path: Path) -> None:
    log = _log(tmp_path, 3)
    own = ["--audit-log", str(tmp_path / "own.jsonl")]
    result = CliRunner().invoke(main, [*own, "audit", "verify", str(log)])
    assert result.exit_code == 0, result.output
    head = audit.verify(log).head
    assert f"head {head}" in result.output
    assert "only detected with --head" in result.output
    with_head = CliRunner().invoke(main, [*own, "audit", "verify", str(log), "--head", head])
    assert with_head.exit_code == 0, with_head.output
    assert f"head {head}" in with_head.output
    assert "only detected with --head" not in with_head.output
