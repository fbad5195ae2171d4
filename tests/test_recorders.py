"""The Recorder protocol, one suite over every backend (the ``recorder`` fixture), and ``EventStore.tail``."""

from __future__ import annotations

import datetime
import threading
import time

import pytest

from eventstore import EventStore, LedgerError, LedgerWriteError, Recorder
from eventstore.mapper import ContentRow, StoredRow, chain_hash
from eventstore.protocol import Query
from ledger_fixtures import chain
from statemachine.states import Success


def row(run_id: str, n: int, *, kind: str = "task", state: str = "Success", ts: str | None = None) -> ContentRow:
    """A content row of ``run_id``: the n-th event, at ``ts`` (default: 00:00:n)."""
    return ContentRow(
        f"e-{run_id}-{n}", run_id, ts or f"2026-01-01T00:00:{n:02d}.000000+00:00", kind, f"t{n}",
        f"t{n}-1" if kind == "task" else run_id, "etl", 1, state, '{"type":"Pending"}',
        f'{{"type":"{state}"}}', None, '["h"]' if n == 2 else "[]", None,
    )


def test_every_recorder_implements_the_protocol(recorder):
    assert isinstance(recorder, Recorder)
    assert isinstance(recorder.path, str) and recorder.path


def test_append_chains_each_run_and_numbers_rows_in_commit_order(recorder):
    done = [recorder.append(r) for r in (row("a", 1), row("b", 2), row("a", 3), row("b", 4))]
    seqs = [d[0] for d in done]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert done[0][1] is None and done[1][1] is None
    assert done[2][1] == done[0][2] and done[3][1] == done[1][2]
    assert done[2][2] == chain_hash(done[0][2], row("a", 3), seqs[2])
    assert recorder.max_seq() == seqs[-1]


def test_rows_come_back_named_and_exactly_as_stored(recorder):
    recorder.append(row("a", 1))
    (stored,) = recorder.select(Query(run_id="a"))
    assert isinstance(stored, StoredRow)
    assert stored.content == row("a", 1) and stored.seq == 1 and stored.prev_hash is None
    assert stored.hash == chain_hash(None, stored.content, stored.seq)


def test_select_filters_by_run_seq_range_and_columns(recorder):
    for n in range(1, 7):
        recorder.append(row("a" if n % 2 else "b", n, state="Failed" if n == 5 else "Success"))
    seq = lambda q: [r.seq for r in recorder.select(q)]  # noqa: E731
    assert seq(Query(run_id="a")) == [1, 3, 5]
    assert seq(Query(after_seq=2, until_seq=5)) == [3, 4, 5]
    assert seq(Query(run_id="b", after_seq=2)) == [4, 6]
    assert seq(Query(types=frozenset({"Failed"}))) == [5]
    assert seq(Query(rewritten=True)) == [2] and 2 not in seq(Query(rewritten=False))
    assert seq(Query(since="2026-01-01T00:00:04", until="2026-01-01T00:00:05.5")) == [4, 5]
    assert seq(Query(key="t3-1")) == [3] and seq(Query(kind="flow")) == []
    assert seq(Query(limit=2)) == [1, 2] and seq(Query(run_id="nope")) == []
    assert [r.seq for r in recorder.iter_rows(Query(), batch=4)] == [1, 2, 3, 4, 5, 6]


def test_the_runs_summary_follows_the_flow_events(recorder):
    recorder.append(row("a", 1))
    recorder.append(row("b", 2, ts="2026-01-02T00:00:00.000000+00:00"))
    (a,) = recorder.runs(run_id="a")
    assert (a.state, a.ended, a.events) == ("Pending", None, 1)
    recorder.append(row("a", 3, kind="flow", state="Running"))
    recorder.append(row("a", 4, kind="flow", state="Failed"))
    (a,) = recorder.runs(run_id="a")
    assert (a.state, a.events, a.finished) == ("Failed", 3, True)
    assert a.ended == datetime.datetime(2026, 1, 1, 0, 0, 4, tzinfo=datetime.timezone.utc)
    assert [r.run_id for r in recorder.runs()] == ["b", "a"]
    assert [r.run_id for r in recorder.runs(types=["Failed"])] == ["a"]
    assert [r.run_id for r in recorder.runs(since="2026-01-01T12:00:00")] == ["b"]
    assert [r.run_id for r in recorder.runs(until="2026-01-01T12:00:00")] == ["a"]
    assert [r.run_id for r in recorder.runs(limit=1)] == ["b"] and recorder.runs(flow="other") == []
    assert recorder.run_chain_ends()["a"] == (3, recorder.select(Query(run_id="a"))[-1].hash)


def test_latest_gives_each_objects_last_row(recorder):
    recorder.append(row("a", 1))
    recorder.append(row("a", 2))
    recorder.append(row("a", 1, state="Failed"))
    assert [(r.seq, r.key, r.new_state) for r in recorder.latest("a")] == [
        (2, "t2-1", '{"type":"Success"}'), (3, "t1-1", '{"type":"Failed"}')]
    assert [r.seq for r in recorder.latest("a", until_seq=2)] == [1, 2]
    assert recorder.latest("nope") == []


def test_an_import_that_does_not_continue_the_run_is_refused_and_stores_nothing(recorder):
    seq, _, first = recorder.append(row("a", 1))
    with pytest.raises(LedgerError, match="Import a run once"):
        recorder.append(row("a", 2), "not-the-last-hash", chain_hash("not-the-last-hash", row("a", 2)))
    assert recorder.max_seq() == seq
    good = chain_hash(first, row("a", 2))
    assert recorder.append(row("a", 2), first, good)[1:] == (first, good)


def test_cursors_are_saved_and_replaced(recorder):
    assert recorder.load_cursor("pager") is None
    recorder.save_cursor("pager", 3, '{"flow":null}', "2026-01-01T00:00:00+00:00")
    recorder.save_cursor("pager", 7, '{"flow":null}', "2026-01-01T00:00:01+00:00")
    assert recorder.load_cursor("pager") == (7, '{"flow":null}')


def test_a_snapshot_is_reentrant_and_reads_one_state(recorder):
    recorder.append(row("a", 1))
    with recorder.snapshot():
        with recorder.snapshot():
            assert recorder.max_seq() == 1
        assert [r.seq for r in recorder.select(Query())] == [1]
    assert recorder.append(row("a", 2))[0] == 2


def test_a_snapshot_hides_what_another_writer_commits_meanwhile(tmp_path):
    from eventstore.sqlite import SQLiteRecorder

    path = str(tmp_path / "l.db")
    reader, writer = SQLiteRecorder(path), SQLiteRecorder(path)
    try:
        writer.append(row("a", 1))
        with reader.snapshot():
            writer.append(row("a", 2))
            assert reader.max_seq() == 1 and len(reader.select(Query(run_id="a", ))) == 1
        assert reader.max_seq() == 2
    finally:
        reader.close()
        writer.close()


def test_wait_returns_within_its_timeout(recorder):
    started = time.monotonic()
    recorder.wait(0, 0.05)
    assert time.monotonic() - started < 2


def test_a_closed_sqlite_recorder_refuses_appends(tmp_path):
    from eventstore.sqlite import SQLiteRecorder

    rec = SQLiteRecorder(str(tmp_path / "l.db"))
    rec.close()
    rec.close()
    with pytest.raises(LedgerWriteError, match="was closed") as info:
        rec.append(row("a", 1))
    assert info.value.reason == "closed"


def test_the_store_picks_its_recorder_from_the_target(tmp_path):
    from eventstore.memory import MemoryRecorder
    from eventstore.sqlite import SQLiteRecorder

    with EventStore(f"sqlite://{tmp_path / 'a.db'}") as s:
        assert isinstance(s.recorder, SQLiteRecorder) and s.recorder.path == str(tmp_path / "a.db")
    assert isinstance(EventStore(":memory:").recorder, MemoryRecorder)
    mine = MemoryRecorder()
    assert EventStore(recorder=mine).recorder is mine
    with pytest.raises(ValueError, match="not both"):
        EventStore(":memory:", recorder=mine)
    with pytest.raises(LedgerError, match="unknown scheme 'mysql'"):
        EventStore("mysql://u@h/db")


def test_a_postgresql_target_that_cannot_be_opened_is_a_ledger_error_without_the_password():
    with pytest.raises(LedgerError) as info:
        EventStore("postgresql://me:hunter2@127.0.0.1:9/ledger")  # no server listens on port 9
    assert "hunter2" not in str(info.value) and "127.0.0.1" in str(info.value)


def test_runs_since_and_until_compare_with_the_start_of_a_run(store):
    chain(2).run(store=store, run_id="first")
    middle = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(0.01)
    chain(2).run(store=store, run_id="second")
    assert [r.run_id for r in store.runs(since=middle)] == ["second"]
    assert [r.run_id for r in store.runs(until=middle)] == ["first"]
    with pytest.raises(TypeError, match="since= takes a datetime"):
        store.runs(since="yesterday")


def test_tail_yields_what_another_thread_commits_then_stops(store):
    chain(2).run(store=store, run_id="old")
    start = store.max_seq()
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    idle: list[int] = []

    def follow():
        for event in store.tail(start, kinds="task", states=[Success], poll_interval=0.01, stop=stop,
                                timeout=30, on_idle=idle.append):
            seen.append((event.run_id, event.key))
            if len(seen) == 3:
                stop.set()

    reader = threading.Thread(target=follow)
    reader.start()
    chain(3).run(store=store, run_id="new")
    reader.join(30)
    assert not reader.is_alive()
    assert seen == [("new", "one-1"), ("new", "add-1"), ("new", "add-2")]
    assert idle and idle[-1] >= max(e.seq for e in store.history("new") if e.kind == "task")


def test_tail_ends_after_its_timeout_and_refuses_a_negative_interval(store):
    chain(2).run(store=store, run_id="r")
    assert [e.seq for e in store.tail(0, run_id="r", timeout=0.05, poll_interval=0.01)] == [
        e.seq for e in store.history("r")]
    with pytest.raises(ValueError, match="poll_interval must be >= 0"):
        next(store.tail(0, poll_interval=-1))
