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


def test_unexpected_errors_show_only_their_type(monkeypatch) -> None:
    """A library error's message could quote a data cell: the CLI shows its type only."""
    import wmw_link.cli.agreement_cmd as cmd

    def boom(path):
        raise ValueError("Failed to parse string: 'AB123456C' as int64")

    monkeypatch.setattr(cmd, "load_agreement", boom)
    res = CliRunner().invoke(main, ["agreement", "check", "x.yaml"])
    assert res.exit_code == 1
    assert "internal error (ValueError)" in res.output
    assert "AB123456C" not in res.output and "Traceback" not in res.output
    monkeypatch.setenv("WMW_LINK_DEBUG", "1")
    res = CliRunner().invoke(main, ["agreement", "check", "x.yaml"])
    assert isinstance(res.exception, ValueError)
