"""Output folders written whole: staged beside the target and swapped in only when complete."""

from __future__ import annotations

import os
import stat

import pytest

import wmw_link.outdir as outdir
from wmw_link.errors import ConfigError
from wmw_link.outdir import check_out_dir, staged_dir

NAMES = ("a.txt", "sub", "manifest.json")


def _write(stage, text):
    (stage / "a.txt").write_text(text)
    (stage / "sub").mkdir()
    (stage / "sub" / "b.txt").write_text(text)
    (stage / "manifest.json").write_text("{}")


def test_new_folder_appears_only_when_complete(tmp_path):
    out = tmp_path / "deep" / "out"
    with staged_dir(out, NAMES, "test") as stage:
        _write(stage, "one")
        assert not out.exists()  # nothing at the target until the body is done
        assert stage.parent == out.parent
    assert (out / "sub" / "b.txt").read_text() == "one"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700


def test_failure_keeps_the_previous_output_and_names_the_target_path(tmp_path):
    out = tmp_path / "out"
    with staged_dir(out, NAMES, "test") as stage:
        _write(stage, "one")
    with (
        pytest.raises(ConfigError, match=r"out/sub/b\.txt: cannot write the test output"),
        staged_dir(out, NAMES, "test") as stage,
    ):
        (stage / "a.txt").write_text("two")
        raise PermissionError(13, "Permission denied", str(stage / "sub" / "b.txt"))
    assert (out / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(ValueError), staged_dir(out, NAMES, "test"):
        raise ValueError("bug")  # other errors pass through, staging removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_final_rename_puts_the_previous_output_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with staged_dir(out, NAMES, "test") as stage:
        _write(stage, "one")
    real = os.rename

    def rename(src, dst):
        if ".new-" in str(src):
            raise OSError(28, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(outdir.os, "rename", rename)
    with pytest.raises(ConfigError, match="No space left"), staged_dir(out, NAMES, "test") as stage:
        _write(stage, "two")
    assert (out / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_refuses_files_and_folders_holding_other_things(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_out_dir(tmp_path / "f", NAMES, "test")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x")
    (tmp_path / "d" / "notes.md").write_text("mine")
    with (
        pytest.raises(ConfigError, match="holds 'notes.md'"),
        staged_dir(tmp_path / "d", NAMES, "t"),
    ):
        pass
    assert (tmp_path / "d" / "notes.md").read_text() == "mine"
    assert check_out_dir(tmp_path / "new", NAMES, "test") == tmp_path / "new"


def test_symlinked_output_folder_is_replaced_behind_the_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with staged_dir(link, NAMES, "test") as stage:
        _write(stage, "one")
    assert link.is_symlink() and (link / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
