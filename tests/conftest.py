"""Shared fixtures: every test runs with HOME and STATELEDGER_DB inside its tmp_path."""

from __future__ import annotations

import pytest


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


@pytest.fixture
def failing_flow():
    """Build a flow that fails: ``failing_flow(name, pairs=1, after=False)``.

    Each of the ``pairs`` is ``ok -> bad`` (``bad`` raises ``KeyError``); with
    ``after=True`` each ``bad`` also has a downstream ``after`` (it ends
    ``TriggerFailed``). So one pair gives 2 flow + 4 task events, and 6 task
    events with ``after``.
    """
    from statemachine import Flow, task

    def build(name: str = "failing", *, pairs: int = 1, after: bool = False) -> Flow:
        @task
        def ok():
            return 1

        @task
        def bad(x):
            raise KeyError("missing")

        @task(name="after")
        def downstream(x):
            return x

        with Flow(name) as flow:
            for _ in range(pairs):
                failed = bad(ok())
                if after:
                    downstream(failed)
        return flow

    return build
