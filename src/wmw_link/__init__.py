"""wmw-link: privacy-preserving record linkage and data sharing for West Midlands Works."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wmw-link")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from wmw_link.agreement import Agreement, load_agreement  # noqa: E402
from wmw_link.errors import WmwLinkError  # noqa: E402

__all__ = ["Agreement", "WmwLinkError", "__version__", "load_agreement"]
