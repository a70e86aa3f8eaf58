"""The README tells the truth: its Python quickstart runs, every command is documented and has help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from wmw_link.cli import _COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands_ci_runs() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    lines = [ln.split("#")[0].strip() for ln in first_block.group(1).splitlines() if ln.strip()]
    assert lines == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_every_command_has_help_and_is_in_the_readme(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert f"wmw-link {command}" in README


@pytest.mark.integration
def test_readme_python_quickstart_runs(tmp_path: Path) -> None:
    block = re.search(r"```python\n(.*?)```", README, re.S)
    assert block is not None
    code = block.group(1).replace("people=5_000", "people=2_500")
    (tmp_path / "agreements").symlink_to(REPO / "agreements")
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "all pairs: precision" in done.stdout
    assert (tmp_path / "analysis" / "outcomes" / "dashboard.html").stat().st_size > 10_000


def test_examples_quickstart_is_the_readme_block() -> None:
    block = re.search(r"```python\n(.*?)```", README, re.S)
    assert block is not None
    assert (REPO / "examples" / "quickstart.py").read_text() == block.group(1)


def test_public_api_names_resolve_to_functions() -> None:
    import wmw_link

    for name in wmw_link.__all__:
        obj = getattr(wmw_link, name)
        assert not isinstance(obj, type(wmw_link)), f"wmw_link.{name} is a module, not the API"


@pytest.mark.integration
def test_readme_command_line_walkthrough_runs(tmp_path: Path) -> None:
    """The README's bash block of the three roles runs as written on a synthetic region."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    walk = next(b for b in blocks if "wmw-link tokenise" in b and "wmw-link link" in b)
    (tmp_path / "agreements").symlink_to(REPO / "agreements")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "WMW_LINK_AUDIT_LOG": str(tmp_path / "wmw-link-audit.jsonl"),
    }
    subprocess.run(
        [str(bin_dir / "wmw-link"), "synth", "--people", "2500", "--seed", "1", "--out", "world"],
        cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walk],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-1500:], done.stderr[-1500:])
    assert (tmp_path / "outcomes" / "dashboard.html").exists()
    assert "verified in wmw-link-audit.jsonl" in done.stdout
