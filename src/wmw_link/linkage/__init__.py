"""Trusted-third-party linkage: verify token files, build a Splink model from the token schema,
train, predict, choose a threshold without labels, cluster, and write maps and a report.

Splink (and Spark) are imported only when :func:`link` runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LinkResult", "link"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from wmw_link.linkage import run

        return getattr(run, name)
    raise AttributeError(f"module 'wmw_link.linkage' has no attribute '{name}'")
