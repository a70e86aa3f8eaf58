"""Shared test set-up: no test writes an audit log into the repository."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _audit_log_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WMW_LINK_AUDIT_LOG", str(tmp_path_factory.mktemp("audit") / "audit.jsonl"))
