"""Where a test's ledger lives on each backend (the ``store``/``recorder`` fixtures themselves are in conftest.py)."""

from __future__ import annotations


def target(kind, tmp_path, request, name):
    """Where a store of ``kind`` keeps its ledger: nowhere, a file, a schema of its own on the test server."""
    if kind == "postgres":
        return request.getfixturevalue("pg_url")
    return ":memory:" if kind == "memory" else tmp_path / name
