"""Options several commands share, defined once so their names and help stay the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def agreement_option(
    help: str = "The data-sharing agreement (YAML).",  # noqa: A002 - click's own name
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--agreement PATH`` (required), passed to the command as ``agreement_path``."""
    return click.option(
        "--agreement", "agreement_path", required=True, type=click.Path(path_type=Path), help=help
    )
