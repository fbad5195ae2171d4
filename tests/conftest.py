"""Shared fixtures: every test runs with HOME and STATELEDGER_DB inside its tmp_path."""

from __future__ import annotations

import pytest

from executor_fixtures import dask_cluster, executor  # noqa: F401  (fixtures for every test file)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Nothing a test does reaches the real home folder or a shared ledger."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("STATELEDGER_DB", str(tmp_path / "ledger.db"))
    for var in list(__import__("os").environ):
        if var.startswith("STATELEDGER_SECRET"):
            monkeypatch.delenv(var)
    return home
