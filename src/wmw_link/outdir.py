"""Output folders written whole: staged beside the target, swapped in only when complete.

A command that writes several files that vouch for each other (tables and the manifest that
hashes them) must never leave half of them behind: :func:`staged_dir` yields an empty
temporary sibling folder, and only when everything is written renames it onto the target. The
previous output stays in place until then, and a failure leaves it untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from wmw_link.errors import ConfigError


def check_out_dir(target: str | os.PathLike[str], produces: Collection[str], what: str) -> Path:
    """Refuse an output folder that :func:`staged_dir` could not safely replace.

    Args:
        target: the output folder (it need not exist).
        produces: the top-level names the command writes there.
        what: the command's output, for messages (``journeys``, ``outcomes``).

    Returns:
        ``target`` as a Path.

    Raises:
        ConfigError: ``target`` is a file, or a folder holding anything that is not part of a
            previous output of this kind (replacing the folder would delete it).
    """
    target = Path(target)
    if target.is_file():
        raise ConfigError(f"{target}: is a file; the {what} output must be a folder")
    if target.is_dir():
        try:
            names = sorted(os.listdir(target))
        except OSError as e:
            raise ConfigError(f"{target}: cannot list the output folder ({_why(e)})") from None
        foreign = [n for n in names if n not in produces]
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise ConfigError(
                f"{target}: holds '{foreign[0]}'{more}, which is not part of a previous {what} "
                "output; the output folder is replaced as a whole, so choose a new or empty "
                "folder"
            )
    return target


@contextlib.contextmanager
def staged_dir(
    target: str | os.PathLike[str], produces: Collection[str], what: str
) -> Iterator[Path]:
    """Yield an empty folder beside ``target``; on success, swap it into place as ``target``.

    Everything the ``with`` body writes goes into the yielded folder. On success the previous
    ``target`` (if any) is moved aside, the new folder renamed onto it, and the old one
    deleted; on any error the staged folder is deleted and ``target`` is left as it was. An
    ``OSError`` becomes a :class:`ConfigError` naming the path it concerns (under ``target``).

    Args:
        target: the output folder.
        produces: the top-level names the command writes (see :func:`check_out_dir`).
        what: the command's output, for messages.

    Raises:
        ConfigError: ``target`` cannot be replaced safely, or writing failed.
    """
    target = check_out_dir(target, produces, what)
    if target.is_symlink():
        # Replace the folder the link points to, not the link itself.
        target = target.resolve()
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
    except OSError as e:
        raise ConfigError(
            f"{_where(e, parent)}: cannot create the {what} output ({_why(e)})"
        ) from None
    try:
        # mkdtemp makes a private (0700) folder; give the output the mode a plain mkdir would.
        os.chmod(stage, _dir_mode(target))
        yield stage
        _swap(stage, target)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        path = _where(e, target)
        with contextlib.suppress(ValueError):
            path = target / Path(path).relative_to(stage)
        raise ConfigError(
            f"{path}: cannot write the {what} output ({_why(e)}); {target} was left as it was"
        ) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _swap(stage: Path, target: Path) -> None:
    """Rename ``stage`` onto ``target``, keeping the old ``target`` until the rename succeeds."""
    if not target.exists():
        os.rename(stage, target)
        return
    old = stage.with_name(stage.name.replace(".new-", ".old-", 1))
    os.rename(target, old)
    try:
        os.rename(stage, target)
    except OSError:
        os.rename(old, target)  # put the previous output back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _dir_mode(target: Path) -> int:
    if target.is_dir():
        return target.stat().st_mode & 0o7777
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def _where(e: OSError, default: Path) -> str:
    return str(e.filename) if e.filename else str(default)


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


__all__ = ["check_out_dir", "staged_dir"]
