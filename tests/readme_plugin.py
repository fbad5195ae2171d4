"""pytest plugin for the README's Python blocks (``tests/test_readme.py`` runs them with pytest-markdown-docs).

Each block runs in a fresh folder with its own HOME and ledger, as a reader
would in an empty directory. A block that needs a server says so in its fence
(```` ```python fixture:slack_webhook ````) and gets a real one on 127.0.0.1;
``fixture:postgresql`` gets a schema of its own on the test server
(``STATELEDGER_TEST_PG``; skipped without one, failed when ``CI`` is set).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import http_receiver  # noqa: E402


@pytest.fixture(autouse=True)
def reader_folder(tmp_path, monkeypatch):
    """An empty working folder, with HOME and STATELEDGER_DB inside it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("STATELEDGER_DB", str(tmp_path / "ledger.db"))
    for var in list(os.environ):
        if var.startswith("STATELEDGER_SECRET"):
            monkeypatch.delenv(var)
    return tmp_path


@pytest.fixture
def slack_webhook(reader_folder, monkeypatch):
    """A local HTTP server standing in for Slack; the secret SLACK_WEBHOOK_URL points at it."""
    with http_receiver() as receiver:
        monkeypatch.setenv("STATELEDGER_SECRET_SLACK_WEBHOOK_URL", receiver.url)
        yield receiver
    assert receiver.requests, "the block posted nothing to the Slack stand-in"


@pytest.fixture
def alerts_webhook(reader_folder, monkeypatch):
    """A local HTTP server for the reaper's alert; the secret ALERTS_URL points at it."""
    with http_receiver() as receiver:
        monkeypatch.setenv("STATELEDGER_SECRET_ALERTS_URL", receiver.url)
        yield receiver
    assert any(b"Crashed" in r.body for r in receiver.requests), "the block posted no Crashed notice"


@pytest.fixture
def postgresql(reader_folder, monkeypatch):
    """STATELEDGER_DB: a schema of its own on the test PostgreSQL server, dropped afterwards."""
    server = os.environ.get("STATELEDGER_TEST_PG") or os.environ.get("STATELEDGER_TEST_POSTGRES")
    if not server:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL server for the README's PostgreSQL block: set STATELEDGER_TEST_PG")
        pytest.skip("no PostgreSQL server: set STATELEDGER_TEST_PG=postgresql://USER:PASS@HOST:PORT/DB")
    import psycopg

    schema = f"readme_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("STATELEDGER_DB", f"{server}{'&' if '?' in server else '?'}schema={schema}")
    yield
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
