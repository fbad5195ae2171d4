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


RECORDERS = ["memory", "sqlite"]


@pytest.fixture(params=RECORDERS)
def recorder(request, tmp_path):
    """Each ledger backend (``eventstore.protocol.Recorder``): in memory, and in a real SQLite file."""
    if request.param == "memory":
        from eventstore.memory import MemoryRecorder

        rec = MemoryRecorder()
    else:
        from eventstore.sqlite import SQLiteRecorder

        rec = SQLiteRecorder(str(tmp_path / "recorder.db"))
    yield rec
    rec.close()


@pytest.fixture(params=RECORDERS)
def store(request, tmp_path):
    """An EventStore on each recorder: in memory and in a real SQLite file."""
    from eventstore import EventStore

    s = EventStore(":memory:" if request.param == "memory" else tmp_path / "ledger.db")
    yield s
    s.close()


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
