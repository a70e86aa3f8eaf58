"""`wmw-link synth` on the command line: output, and clean errors for bad arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wmw_link.cli import main


def test_synth_command_writes_the_extracts(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = CliRunner().invoke(
        main, ["synth", "--people", "300", "--seed", "4", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "hmrc_rti" in result.output and "True effect" in result.output
    assert (out / "extracts" / "dwp_claims.csv").is_file()
    assert (out / "truth" / "truth.parquet").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--people", "-5"], "--people"),
        (["--people", "0"], "--people"),
        (["--people", "ten"], "--people"),
        (["--seed", "-1"], "--seed"),
        (["--error-scale", "-2"], "--error-scale"),
    ],
)
def test_bad_arguments_give_a_clean_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_unwritable_output_gives_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["synth", "--people", "10", "--out", str(blocker / "sub")])
    assert result.exit_code == 1
    assert "cannot create the output directory" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_bad_rates_file_gives_a_clean_error(tmp_path: Path) -> None:
    rates = tmp_path / "rates.yaml"
    rates.write_text("typo_surname: 3\n")
    result = CliRunner().invoke(
        main, ["synth", "--people", "10", "--out", str(tmp_path / "o"), "--rates", str(rates)]
    )
    assert result.exit_code == 1
    assert "invalid error rates" in result.output
    assert isinstance(result.exception, SystemExit)


def test_rates_file_and_scale_reach_the_generator(tmp_path: Path) -> None:
    import json

    rates = Path(__file__).resolve().parents[2] / "configs" / "synth-error-rates.yaml"
    out = tmp_path / "clean"
    args = [
        "synth",
        "--people",
        "300",
        "--out",
        str(out),
        "--rates",
        str(rates),
        "--error-scale",
        "0",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "synth.json").read_text())
    assert set(summary["error_rates"].values()) == {0.0}
    applied = [c["applied"] for d in summary["errors_applied"].values() for c in d.values()]
    assert applied and not any(applied)
