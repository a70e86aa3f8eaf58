"""The CLI turns bad paths into one-line messages and refuses work it cannot audit."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from wmw_link.cli import main


def test_unwritable_output_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(main, ["keys", "new", "--out", str(blocker / "k.key")])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert "cannot use" in res.output and str(blocker) in res.output


def test_nothing_is_done_when_the_audit_log_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    key = tmp_path / "k.key"
    res = CliRunner().invoke(
        main, ["--audit-log", str(blocker / "audit.jsonl"), "keys", "new", "--out", str(key)]
    )
    assert res.exit_code == 1
    assert "audit log: cannot append" in res.output and "nothing was done" in res.output
    assert not key.exists()
