"""Offline HTML dashboard of the outcome measures (see :mod:`wmw_link.dashboard.builder`)."""

from __future__ import annotations

from wmw_link.dashboard.builder import build_dashboard

__all__ = ["build_dashboard"]
