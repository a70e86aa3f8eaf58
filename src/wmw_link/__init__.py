"""wmw-link: privacy-preserving record linkage and data sharing for West Midlands Works.

The public API is one function per stage; heavy dependencies (Splink, DuckDB, Spark, Plotly)
load only when the stage that needs them is first used.

Examples:
    >>> from wmw_link import load_agreement, tokenise, link
    >>> a = load_agreement("agreements/wmw-outcomes.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from wmw_link._version import __version__
from wmw_link.agreement import Agreement, load_agreement
from wmw_link.errors import WmwLinkError

# These two share their names with their modules: importing them here binds the package
# attribute to the function for good (a later submodule import would otherwise rebind it).
from wmw_link.evaluate import evaluate
from wmw_link.tokenise import tokenise

# name -> module that defines it, imported on first use
_LAZY = {
    "generate": "wmw_link.synth",
    "link": "wmw_link.linkage",
    "build_journeys": "wmw_link.journeys",
    "measure_outcomes": "wmw_link.outcomes",
    "seal_file": "wmw_link.seal",
    "unseal_file": "wmw_link.seal",
    "run_demo": "wmw_link.demo",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wmw_link' has no attribute '{name}'")


__all__ = [
    "Agreement",
    "WmwLinkError",
    "__version__",
    "build_journeys",
    "evaluate",
    "generate",
    "link",
    "load_agreement",
    "measure_outcomes",
    "run_demo",
    "seal_file",
    "tokenise",
    "unseal_file",
]
