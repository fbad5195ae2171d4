"""Ledger files: bad files are refused and left byte-for-byte unchanged; failed appends stop the run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from eventstore import (
    EventStore, LedgerError, LedgerLocationError, LedgerWriteError, NotALedgerError, SchemaVersionError,
)
from eventstore.sqlite import APPLICATION_ID, SCHEMA_VERSION
from ledger_fixtures import chain, file_digest, raw, refused_untouched
from statemachine import Flow, task
from subscribers import subscribe




def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("shopping list: eggs, milk\n" * 50)
    error = refused_untouched(path, NotALedgerError)
    assert str(path) in str(error) and "not a SQLite database" in str(error)
    assert error.path == str(path) and error.found == "not SQLite"
    assert sorted(os.listdir(tmp_path)) == ["home", "notes.db"]


def test_a_sqlite_database_that_is_not_a_ledger_is_refused_untouched(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    error = refused_untouched(path, NotALedgerError)
    assert "tables users" in str(error) and str(path) in str(error)


def test_a_sqlite_file_of_another_application_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.close()
    refused_untouched(path, NotALedgerError, "another application")


def test_a_ledger_of_a_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "new.db"
    with EventStore(path) as s:
        chain().run(store=s, run_id="r")
    conn = raw(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    conn.close()
    error = refused_untouched(path, SchemaVersionError)
    assert error.found == SCHEMA_VERSION + 3 and error.supported == SCHEMA_VERSION
    assert f"schema version {SCHEMA_VERSION + 3}" in str(error) and "Upgrade stateledger" in str(error)


def test_a_missing_folder_is_refused_and_nothing_is_created(tmp_path):
    path = tmp_path / "nowhere" / "ledger.db"
    with pytest.raises(LedgerLocationError) as info:
        EventStore(path)
    assert "does not exist" in str(info.value) and str(tmp_path / "nowhere") in str(info.value)
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_that_cannot_be_written_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(LedgerLocationError, match="cannot be written"):
            EventStore(folder / "ledger.db")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


def test_a_path_under_a_regular_file_is_refused(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(LedgerLocationError):
        EventStore(tmp_path / "file.txt" / "ledger.db")
    assert (tmp_path / "file.txt").read_text() == "x"


def test_a_folder_is_not_a_ledger(tmp_path):
    with pytest.raises(NotALedgerError, match="is a folder"):
        EventStore(tmp_path)


def test_an_empty_file_becomes_a_ledger(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with EventStore(path) as s:
        chain().run(store=s, run_id="r")
        assert s.verify().ok


def test_reading_a_ledger_never_modifies_it(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        chain().run(store=s, run_id="r")
    before = file_digest(path)
    with EventStore(path) as s:
        s.events(states="Success")
        s.history("r")
        s.runs()
        s.rebuild("r")
        s.state_at("r", 2)
        s.verify()
        s.replay("r", lambda e: None)
        s.export(tmp_path / "out.jsonl")
        s.load_cursor("nobody")
    assert file_digest(path) == before


def test_a_ledger_keeps_its_schema_version_and_wal(tmp_path):
    path = tmp_path / "l.db"
    EventStore(path).close()
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"events", "runs", "cursors"} <= tables
    conn.close()


def run_until_failure(store, flow):
    """Run the flow; return (the error, the events listeners saw)."""
    seen = []
    handle = subscribe(seen.append)
    try:
        with pytest.raises(LedgerWriteError) as info:
            flow.run(store=store, run_id="doomed")
    finally:
        handle.disconnect()
    return info.value, seen


def sabotage_after(n, action):
    """A task that runs ``action`` when it is the n-th to run."""
    count = {"n": 0}

    @task
    def step(x=None):
        count["n"] += 1
        if count["n"] == n:
            action()
        return count["n"]

    return step, count


def flow_of(step, n=6):
    with Flow("doomed") as flow:
        x = step()
        for _ in range(n - 1):
            x = step(x)
    return flow


def test_a_removed_ledger_file_stops_the_run_with_a_clear_error(tmp_path):
    path = tmp_path / "l.db"
    step, count = sabotage_after(2, lambda: [os.unlink(p) for p in tmp_path.glob("l.db*")])
    with EventStore(path) as s:
        err, seen = run_until_failure(s, flow_of(step))
    assert err.reason == "removed" and str(path) in str(err) and "removed" in str(err)
    assert count["n"] == 2  # no task body ran after the failed append
    assert len(seen) == 4  # flow start, step-1 x2, step-2 running: the Success was never broadcast


def test_a_ledger_made_read_only_stops_the_run(tmp_path):
    path = tmp_path / "l.db"
    step, count = sabotage_after(3, lambda: path.chmod(0o444))
    with EventStore(path) as s:
        err, seen = run_until_failure(s, flow_of(step))
        assert err.reason == "read-only" and str(path) in str(err) and "chmod" in str(err)
        assert count["n"] == 3
        committed = s.events()
    assert [e.event_id for e in seen] == [e.event_id for e in committed]  # never ahead of the ledger
    path.chmod(0o644)
    with EventStore(path) as s:
        assert s.verify().ok and s.run("doomed").ended is None


def test_a_read_only_ledger_can_still_be_read(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        chain().run(store=s, run_id="r")
    path.chmod(0o444)
    try:
        with EventStore(path) as s:
            assert s.verify().ok and len(s.history("r")) == 8
            with pytest.raises(LedgerWriteError, match="read-only"):
                chain().run(store=s, run_id="r2")
    finally:
        path.chmod(0o644)


def test_a_ledger_locked_past_the_timeout_stops_the_run(tmp_path):
    path = tmp_path / "l.db"
    EventStore(path).close()
    blocker = raw(path)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with EventStore(path, timeout=0.2) as s:
            with pytest.raises(LedgerWriteError) as info:
                chain().run(store=s, run_id="r")
        assert info.value.reason == "locked" and "locked" in str(info.value) and "timeout" in str(info.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with EventStore(path) as s:
        assert s.events() == [] and s.verify().ok


def test_a_full_disk_stops_the_run_with_a_clear_error(tmp_path):
    """RLIMIT_FSIZE makes the file system refuse to grow the ledger, as a full disk would."""
    path = tmp_path / "l.db"
    EventStore(path).close()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from eventstore import EventStore, LedgerWriteError
        from statemachine import Flow, task
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

        @task
        def big(x=None):
            return "x" * 20000

        with Flow("big") as flow:
            x = big()
            for _ in range(200):
                x = big(x)
        store = EventStore({str(path)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
        try:
            flow.run(store=store, run_id="big")
        except LedgerWriteError as exc:
            print(exc.reason, "|", exc)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.startswith("full |") and str(path) in proc.stdout and "disk is full" in proc.stdout
    with EventStore(path) as s:
        assert s.verify().ok and s.run("big").ended is None


def test_opening_errors_are_ledger_errors(tmp_path):
    (tmp_path / "x.db").write_text("not sqlite at all, but long enough to have a header")
    with pytest.raises(LedgerError):
        EventStore(tmp_path / "x.db")


def test_an_empty_sqlite_file_of_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    refused_untouched(path, SchemaVersionError, "schema version 99")


def test_a_versioned_sqlite_file_of_another_program_is_not_a_ledger(tmp_path):
    path = tmp_path / "versioned.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    refused_untouched(path, NotALedgerError, "tables t")


def test_appending_to_a_closed_store_is_a_clear_error(tmp_path):
    s = EventStore(tmp_path / "l.db")
    s.close()
    with pytest.raises(LedgerWriteError, match="was closed") as info:
        chain().run(store=s, run_id="r")
    assert info.value.reason == "closed"
