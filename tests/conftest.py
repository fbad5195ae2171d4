"""Shared fixtures: every test runs with HOME and STATELEDGER_DB inside its tmp_path."""

from __future__ import annotations

import os
import re
import uuid

import pytest

from executor_fixtures import dask_cluster, executor  # noqa: F401  (fixtures for every test file)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Nothing a test does reaches the real home folder or a shared ledger."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("STATELEDGER_DB", str(tmp_path / "ledger.db"))
    for var in list(os.environ):
        if var.startswith("STATELEDGER_SECRET"):
            monkeypatch.delenv(var)
    return home


RECORDERS = ["memory", "sqlite", "postgres"]


def pg_server_url() -> str:
    """The test PostgreSQL server: ``STATELEDGER_TEST_PG`` (or ``STATELEDGER_TEST_POSTGRES``).

    Unset: the test is skipped, saying how to run it; with ``CI`` set, it fails instead.
    """
    url = os.environ.get("STATELEDGER_TEST_PG") or os.environ.get("STATELEDGER_TEST_POSTGRES")
    if not url:
        reason = ("no PostgreSQL server for the tests: set STATELEDGER_TEST_PG=postgresql://USER:PASS@HOST:PORT/DB "
                  "(a role that may create schemas; .ci/run starts one)")
        if os.environ.get("CI"):
            pytest.fail(reason + " -- CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def pg_url(request):
    """A ``postgresql://...?schema=...`` URL of a schema of its own on the test server, dropped afterwards."""
    import psycopg

    server = pg_server_url()
    schema = f"t_{re.sub(r'[^a-z0-9]', '_', request.node.name.lower())[:40]}_{uuid.uuid4().hex[:8]}"
    yield server + ("&" if "?" in server else "?") + f"schema={schema}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND application_name = %s", (schema,))
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _open_recorder(kind: str, tmp_path, request):
    if kind == "memory":
        from eventstore.memory import MemoryRecorder

        return MemoryRecorder()
    if kind == "sqlite":
        from eventstore.sqlite import SQLiteRecorder

        return SQLiteRecorder(str(tmp_path / "recorder.db"))
    from eventstore.postgres import PostgresRecorder

    return PostgresRecorder(request.getfixturevalue("pg_url"))


@pytest.fixture(params=RECORDERS)
def recorder(request, tmp_path):
    """Each ledger backend (``eventstore.protocol.Recorder``): in memory, a SQLite file, a PostgreSQL schema."""
    rec = _open_recorder(request.param, tmp_path, request)
    yield rec
    rec.close()


@pytest.fixture(params=RECORDERS)
def store(request, tmp_path):
    """An EventStore on each recorder: in memory, in a real SQLite file, in a PostgreSQL schema."""
    from eventstore import EventStore

    target = {"memory": ":memory:", "sqlite": tmp_path / "ledger.db"}.get(request.param)
    s = EventStore(target if target is not None else request.getfixturevalue("pg_url"))
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
