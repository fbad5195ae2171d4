"""The ``store`` and ``recorder`` fixtures on every recorder that keeps run ownership.

Import the fixtures into a test module (``from owner_fixtures import recorder, store``) to use them.
"""

from __future__ import annotations

import pytest

from eventstore import EventStore

# The recorders that keep run ownership (``eventstore.protocol.RunOwnership``): every one.
OWNING = ["memory", "sqlite", "postgres"]


def target(kind, tmp_path, request, name):
    """Where a store of ``kind`` keeps its ledger: nowhere, a file, a schema of its own on the test server."""
    if kind == "postgres":
        return request.getfixturevalue("pg_url")
    return ":memory:" if kind == "memory" else tmp_path / name


@pytest.fixture(params=OWNING)
def store(request, tmp_path):
    """An EventStore on each recorder that keeps writers."""
    s = EventStore(target(request.param, tmp_path, request, "owned.db"))
    yield s
    s.close()


@pytest.fixture(params=OWNING)
def recorder(request, tmp_path):
    """Each recorder that keeps writers."""
    s = EventStore(target(request.param, tmp_path, request, "owned-recorder.db"))
    yield s.recorder
    s.close()
