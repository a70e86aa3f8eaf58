"""The packaged reference tables (``wmw_link/data/*.csv``), read as rows."""

from __future__ import annotations

import csv
from importlib import resources


def read_rows(name: str) -> list[dict[str, str]]:
    """The rows of the packaged table ``data/<name>`` (a CSV with a header)."""
    text = resources.files("wmw_link").joinpath("data", name).read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


__all__ = ["read_rows"]
