"""Shared test set-up: no test writes an audit log or delivery state into the repository."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _session_state_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> object:
    # Module- and session-scoped fixtures run before the function-scoped one below: give them
    # a delivery state outside the repository too.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WMW_LINK_STATE", str(tmp_path_factory.mktemp("state") / "state.json"))
        yield


@pytest.fixture(autouse=True)
def _audit_log_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path_factory.mktemp("audit")
    monkeypatch.setenv("WMW_LINK_AUDIT_LOG", str(audit / "audit.jsonl"))
    monkeypatch.setenv("WMW_LINK_STATE", str(audit / "state.json"))
