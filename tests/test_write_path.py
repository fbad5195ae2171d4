"""Schema 3's write path: one statement per append, the runs summary kept by a trigger, small pages.

Real ledger files throughout; two ``EventStore`` objects on one file have a
connection and a memory of the ledger's end each, as two processes do.
"""

from __future__ import annotations

import sqlite3

from statemachine.events import Event, current_actor
from statemachine.states import Pending, Running, Success, utcnow

from eventstore import EventStore
from eventstore.sqlite import PAGE_SIZE, SCHEMA_VERSION
from statemachine import Flow, task
from ledger_fixtures import chain, file_digest, raw
from trust_fixtures import downgrade_to_schema_2


def summary(path) -> dict[str, tuple]:
    """The runs table, as stored."""
    conn = raw(path)
    try:
        return {r[0]: r[1:] for r in conn.execute(
            "SELECT run_id, flow, state, started, ended, events, first_seq, last_seq, last_hash FROM runs")}
    finally:
        conn.close()


def test_a_new_ledger_is_schema_3_with_small_pages_and_the_trigger(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as store:
        chain(3).run(store=store, run_id="a")
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 2048
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall() == [("events_runs",)]
    (flow, state, started, ended, events, first, last, last_hash), = summary(path).values()
    hashes = [r[0] for r in conn.execute("SELECT hash FROM events ORDER BY seq")]
    assert (flow, state, events, first, last, last_hash) == ("chain", "Success", 8, 1, 8, hashes[-1])
    assert started < ended
    conn.close()


def test_a_steady_append_is_one_statement(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as store:
        statements: list[str] = []
        chain(1).run(store=store, run_id="warm")  # the first append of a recorder reads the ledger's end
        store.recorder._conn.set_trace_callback(statements.append)
        chain(3).run(store=store, run_id="b")
        store.recorder._conn.set_trace_callback(None)
        assert store.verify().ok
    # (the run's writer row is kept apart, and its release writes down a paused run's summary)
    ours = [s for s in statements if "writers" not in s and not s.startswith("UPDATE runs")]
    # a new run's first event goes the long way (it reads the run's end); every later one is one INSERT
    assert ours[:3] == ["BEGIN IMMEDIATE", "SELECT max(seq) FROM events",
                        "SELECT hash FROM events WHERE run_id = 'b' ORDER BY seq DESC LIMIT 1"]
    after = ours[ours.index("COMMIT") + 1:]
    assert len(after) >= 7 and {s.split(" (")[0] for s in after} == {"INSERT INTO events"}


def test_a_run_in_progress_reads_whole_though_its_stored_row_waits_for_a_flow_event(tmp_path):
    path = tmp_path / "l.db"
    seen: dict = {}

    @task
    def add(x):
        return x + 1

    @task
    def look(x):  # another connection, as another process would read the run
        with EventStore(path) as other:
            seen["run"], seen["history"] = other.run("live"), other.history("live")
            seen["verified"] = other.verify("live").ok and other.verify().ok
        conn = raw(path)
        seen["stored"] = conn.execute("SELECT events, last_seq FROM runs WHERE run_id = 'live'").fetchone()
        conn.close()
        return x

    with Flow("live") as flow:
        look(add(add(0)))
    with EventStore(path) as store:
        assert flow.run(store=store, run_id="live").is_successful()
    history = seen["history"]
    assert seen["verified"] and seen["run"].events == len(history) == 6 and seen["run"].ended is None
    assert [e.seq for e in history] == list(range(1, 7))
    # task events of a run in progress do not touch its row: it is as the flow's Running event left it
    assert seen["stored"] == (1, 1)
    assert summary(path)["live"][4:7] == (8, 1, 8)  # the finished flow brought it up to date


def test_a_heartbeat_writes_down_the_summary_of_a_run_in_progress(tmp_path):
    path = tmp_path / "l.db"

    def event(kind, key, old, new):
        return Event("open", utcnow(), kind, key, key, 1, old, new, actor=current_actor(), flow="manual")

    with EventStore(path) as store, store.open_run("open", "manual") as lease:
        store.append(event("flow", "manual", Pending(), Running()))
        for key in ("a-1", "b-1"):
            store.append(event("task", key, Pending(), Running()))
            store.append(event("task", key, Running(), Success()))
        assert summary(path)["open"][4:7] == (1, 1, 1)  # as the flow's Running event left it
        assert lease.beat()
        last = store.history("open")[-1]
        assert summary(path)["open"][4:] == (5, 1, 5, last.hash)
    # the run stays in progress; an edit deleting its newest event shows in verify
    conn = raw(path)
    conn.execute("DELETE FROM events WHERE seq = 5")
    conn.close()
    with EventStore(path) as store:
        report = store.verify()
    assert [(p.run_id, p.what) for p in report.problems] == [("open", "count")]


def test_two_writers_interleaved_on_one_run_keep_one_chain(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as one, EventStore(path) as two:
        chain(2).run(store=one, run_id="shared")
        chain(2).run(store=two, run_id="other")
        for i in range(6):  # each store's next seq was taken by the other: every append is refused once
            writer = (one, two)[i % 2]
            writer.mark("shared", "add-1", "Success" if i % 3 else "Failed", reason=f"round {i}", by="test")
        chain(2).run(store=one, run_id="third")
        report = one.verify()
        assert report.ok, report.problems
    conn = raw(path)
    seqs = [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))  # dense: no seq lost to a refused row
    per_run = dict(conn.execute("SELECT run_id, count(*) FROM events GROUP BY run_id").fetchall())
    conn.close()
    runs = summary(path)
    assert {rid: r[4] for rid, r in runs.items()} == per_run
    assert runs["shared"][1] == "Success"  # the run's state: what the flow said; marks are task events


def test_a_schema_2_ledger_is_read_unchanged_and_upgraded_by_its_first_write(tmp_path):
    path = tmp_path / "old.db"
    with EventStore(path) as store:
        chain(2).run(store=store, run_id="old")
    downgrade_to_schema_2(path)
    rows_before = raw(path).execute("SELECT * FROM events ORDER BY seq").fetchall()
    before = file_digest(path)
    with EventStore(path) as store:  # reading never upgrades
        assert store.verify().ok and len(store.history("old")) == 6
    assert file_digest(path) == before
    with EventStore(path) as store:
        chain(2).run(store=store, run_id="new")
        store.mark("old", "add-1", "Failed", reason="upgraded", by="test")  # the task's event, then the flow's
        assert store.verify().ok
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0] == 1
    assert conn.execute("SELECT * FROM events ORDER BY seq LIMIT 6").fetchall() == rows_before
    conn.close()
    runs = summary(path)
    assert (runs["old"][4], runs["old"][6]) == (8, 14) and (runs["new"][4], runs["new"][5]) == (6, 7)


def test_a_ledger_of_a_newer_schema_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "l.db"
    EventStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    before = file_digest(path)
    try:
        EventStore(path)
    except Exception as exc:  # noqa: BLE001 - the type is asserted just below
        assert type(exc).__name__ == "SchemaVersionError" and "reads up to 3" in str(exc)
    else:
        raise AssertionError("a schema-4 ledger was opened")
    assert file_digest(path) == before
