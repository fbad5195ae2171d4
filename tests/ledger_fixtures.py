"""Shared helpers for the ledger tests: flows that do everything, file digests, raw SQLite access.

The ``store`` and ``recorder`` fixtures (over every recorder) are in ``conftest.py``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from eventstore import EventStore
from statemachine import Flow, signals, task, triggers
from statemachine.states import Success


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def refused_untouched(path: Path, error: type[Exception], match: str | None = None) -> Exception:
    """Opening ``path`` raises ``error`` (matching ``match``) and leaves the file's bytes as they were."""
    before = file_digest(path)
    with pytest.raises(error, match=match) as info:
        EventStore(path)
    assert file_digest(path) == before
    return info.value


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, for tampering the way a colleague's UPDATE would."""
    return sqlite3.connect(path, isolation_level=None)


def forgive(obj, old, new):
    """A handler rewriting one failure into a success."""
    if new.is_failed() and isinstance(new.result, TimeoutError):
        return Success("timeout forgiven", result="forgiven")
    return new


class Flag(Exception):
    pass


def everything_flow(with_object: bool = True) -> Flow:
    """Successes, failures, a retry, skips, a trigger failure, a handler rewrite, signals, a tuple."""
    attempts = {"n": 0}

    @task
    def extract():
        return {"rows": [1, 2, 3], "source": "db"}

    @task(max_retries=1, retry_delay=0)
    def flaky(data):
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ConnectionError("first try fails")
        return len(data["rows"])

    @task
    def pair(n):
        return (n, "pair")

    @task
    def boom(n):
        raise ValueError(f"bad value {n}")

    @task
    def after_boom(x):
        return "never"

    @task(trigger=triggers.all_failed)
    def cleanup(x):
        return "cleaned"

    @task
    def skipper():
        raise signals.SKIP("nothing to do")

    @task
    def after_skip(x):
        return "never"

    @task
    def flagged():
        sig = signals.FAIL("special")
        sig.flag = True
        sig.value = 42
        raise sig

    @task(state_handlers=[forgive])
    def slow():
        raise TimeoutError("no answer in 30s")

    @task
    def weird():
        return object()

    with Flow("everything") as flow:
        data = extract()
        n = flaky(data)
        pair(n)
        b = boom(n)
        after_boom(b)
        cleanup(b)
        after_skip(skipper())
        flagged()
        slow()
        if with_object:
            weird()
    return flow


@task
def one():
    return 1


@task
def add(x):
    return x + 1


def chain(n: int = 3, name: str = "chain") -> Flow:
    """A flow of ``n`` tasks in a line: one, then add, add, ..."""
    with Flow(name) as flow:
        x = one()
        for _ in range(n - 1):
            x = add(x)
    return flow
