"""EventStore on both recorders: the event record, reads, runs, rebuild, state_at, cursors."""

from __future__ import annotations

import datetime
import os
import re
import stat

import pytest

from eventstore import Event, EventStore, RunNotFoundError, RunView
from eventstore.store import default_path
from ledger_fixtures import add, everything_flow, forgive, one
from statemachine import Flow, wiring
from statemachine.events import current_actor
from statemachine.states import (
    Failed, Finished, Pending, Retrying, Running, Scheduled, Skipped, Success, TriggerFailed, utcnow,
)
from state_checks import exact
from subscribers import subscribe


def small_flow(name="small"):
    with Flow(name) as flow:
        add(one())
    return flow


def make_event(run_id="r", key="t-1", old=None, new=None, kind="task", **kw):
    return Event(run_id=run_id, timestamp=utcnow(), kind=kind, name=key.split("-")[0], key=key, attempt=1,
                 old_state=old or Pending(), new_state=new or Running("Starting task run."),
                 actor=current_actor(), event_id=os.urandom(8).hex(), flow="f", **kw)


def test_append_fills_seq_and_chains_hashes_per_run(store):
    a = store.append(make_event("r1"))
    b = store.append(make_event("r2"))
    c = store.append(make_event("r1", old=Running("Starting task run."), new=Success("ok", result=1)))
    assert (a.seq, b.seq, c.seq) == (1, 2, 3)
    assert a.prev_hash is None and b.prev_hash is None
    assert c.prev_hash == a.hash and re.fullmatch(r"[0-9a-f]{64}", c.hash)
    assert len({a.hash, b.hash, c.hash}) == 3
    assert store.history("r1") == [a, c]


def test_the_event_record_keeps_every_field(store):
    flow = everything_flow()
    flow.run(store=store, run_id="all-1")
    events = store.history("all-1")
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    first = events[0]
    assert (first.kind, first.name, first.key, first.flow) == ("flow", "everything", "everything", "everything")
    assert first.old_state == Scheduled() or isinstance(first.old_state, Scheduled)
    assert exact(first.new_state) == Running("Running flow.")
    assert first.actor == current_actor() and re.fullmatch(r".+@.+:\d+", first.actor)
    assert first.timestamp.tzinfo is not None and first.event_id
    rewrite = [e for e in events if e.rewritten_by]
    assert len(rewrite) == 1
    assert rewrite[0].key == "slow-1"
    assert rewrite[0].proposed_state.is_failed() and isinstance(rewrite[0].proposed_state.result, TimeoutError)
    assert exact(rewrite[0].new_state) == Success("timeout forgiven", result="forgiven")
    assert rewrite[0].rewritten_by == (f"{forgive.__module__}.forgive",)
    assert all(e.proposed_state is None for e in events if not e.rewritten_by)
    retries = [e for e in events if isinstance(e.new_state, Retrying)]
    assert len(retries) == 1 and retries[0].attempt == 1 and retries[0].new_state.run_count == 1
    assert [e.attempt for e in events if e.key == "flaky-1"][-1] == 2


def test_rebuild_equals_what_flow_run_returned(store):
    flow = everything_flow(with_object=False)
    live = flow.run(store=store, run_id="all-1")
    view = store.rebuild("all-1")
    assert isinstance(view, RunView) and view.run_id == "all-1" and view.flow == "everything"
    assert view.state == live and type(view.state) is type(live) and repr(view.state) == repr(live)
    expected = {flow.key_of(t): s for t, s in live.result.items()}
    assert view.tasks.keys() == expected.keys()
    for key, state in expected.items():
        got = view.tasks[key]
        assert type(got) is type(state) and got.message == state.message and got == state, key
    assert view.state.result == view.tasks and view.state.context["run_id"] == "all-1"
    assert isinstance(view.tasks["after_boom-1"], TriggerFailed)
    assert isinstance(view.tasks["after_skip-1"], Skipped)
    assert view.tasks["flagged-1"].result.flag is True and view.tasks["flagged-1"].result.value == 42


def test_rebuild_describes_results_that_are_not_json(store):
    live = everything_flow().run(store=store, run_id="w")
    view = store.rebuild("w")
    assert type(view.state) is type(live) and view.state.message == live.message
    weird = view.tasks["weird-1"]
    assert weird.message == "Task run succeeded." and repr(weird.result).startswith("<object object at")


def test_flow_run_records_under_the_run_id_given_or_generated(store):
    state = small_flow().run(store=store, run_id="given-1")
    assert state.context["run_id"] == "given-1" and exact(store.rebuild("given-1").state) == state
    generated = small_flow().run(store=store).context["run_id"]
    assert generated.startswith("small-") and store.rebuild(generated).state.is_successful()


def test_history_of_an_unknown_run_is_a_clear_keyerror(store):
    small_flow().run(store=store, run_id="known-1")
    for call in (store.history, store.rebuild, store.verify, store.run):
        with pytest.raises(RunNotFoundError) as info:
            call("nope")
        assert isinstance(info.value, KeyError) and info.value.run_id == "nope"
        assert "No run 'nope'" in str(info.value) and "known-1" in str(info.value)
    with pytest.raises(RunNotFoundError):
        store.state_at("nope", 3)


def test_events_filters(store):
    everything_flow().run(store=store, run_id="a")
    small_flow().run(store=store, run_id="b")
    every = store.events()
    assert [e.seq for e in every] == list(range(1, len(every) + 1))
    assert {e.run_id for e in store.events("b")} == {"b"}
    assert {e.kind for e in store.events(kind="flow")} == {"flow"}
    assert {e.key for e in store.events(key="boom-1")} == {"boom-1"}
    assert {e.key for e in store.events("b", name="add")} == {"add-1"}
    failed = store.events("a", states=[Failed])
    assert failed and all(e.new_state.is_failed() for e in failed)
    assert any(isinstance(e.new_state, TriggerFailed) for e in failed)  # subclasses included
    assert [e.seq for e in store.events("a", states="Failed")] == [e.seq for e in failed]
    assert [e.seq for e in store.events("a", states=Failed)] == [e.seq for e in failed]
    assert all(isinstance(e.new_state, Finished) for e in store.events(states=[Finished]))
    assert [e.key for e in store.events(rewritten=True)] == ["slow-1"]
    assert len(store.events(rewritten=False)) == len(every) - 1
    assert [e.seq for e in store.events(after_seq=3, limit=2)] == [4, 5]
    middle = every[len(every) // 2].timestamp
    since = store.events(since=middle)
    until = store.events(until=middle)
    assert since and until and since[0].timestamp >= middle and until[-1].timestamp <= middle
    assert {e.seq for e in since} | {e.seq for e in until} == {e.seq for e in every}
    with pytest.raises(ValueError, match="unknown state 'Exploded'"):
        store.events(states="Exploded")
    with pytest.raises(TypeError, match="State classes"):
        store.events(states=[int])
    with pytest.raises(ValueError, match="kind"):
        store.events(kind="job")


def test_runs_newest_first_with_flow_state_and_counts(store):
    small_flow("one").run(store=store, run_id="r1")
    everything_flow().run(store=store, run_id="r2")
    small_flow("one").run(store=store, run_id="r3")
    runs = store.runs()
    assert [r.run_id for r in runs] == ["r3", "r2", "r1"]
    r2 = runs[1]
    assert (r2.flow, r2.state, r2.events) == ("everything", "Failed", len(store.history("r2")))
    assert r2.started <= r2.ended and r2.finished and r2.started.tzinfo is not None
    assert [r.run_id for r in store.runs(flow="one")] == ["r3", "r1"]
    assert [r.run_id for r in store.runs(states=[Failed])] == ["r2"]
    assert [r.run_id for r in store.runs(states=["Success"], limit=1)] == ["r3"]


def test_a_run_in_progress_shows_unfinished(store):
    store.append(make_event("open-1", key="f", kind="flow", old=Scheduled(), new=Running("Running flow.")))
    record = store.run("open-1")
    assert record.state == "Running" and record.ended is None and not record.finished and record.events == 1


def test_state_at_a_seq_includes_that_event_and_at_a_time(store):
    small_flow().run(store=store, run_id="r")
    events = store.history("r")
    at = store.state_at("r", events[2].seq)  # flow running, one-1 Running -> Success
    assert exact(at.state) == Running("Running flow.") and at.events == 2
    assert exact(at.tasks) == {"one-1": Success("Task run succeeded.", result=1)}
    at_time = store.state_at("r", events[3].timestamp)
    assert exact(at_time.tasks["add-1"]) == Running("Starting task run.")
    assert exact(store.state_at("r", events[-1].seq).state) == store.rebuild("r").state
    empty = store.state_at("r", events[0].timestamp - datetime.timedelta(seconds=1))
    assert empty.state is None and empty.tasks == {}
    with pytest.raises(TypeError, match="datetime or a seq"):
        store.state_at("r", "yesterday")


def test_durable_cursors_are_kept(store):
    assert store.load_cursor("mailer") is None
    store.save_cursor("mailer", 7, {"flow": ["etl"], "states": None})
    store.save_cursor("other", 1, {})
    store.save_cursor("mailer", 9, {"flow": ["etl"], "states": None})
    assert store.load_cursor("mailer") == (9, {"flow": ["etl"], "states": None})
    assert store.load_cursor("other") == (1, {})


def test_cursors_survive_reopening_the_file(tmp_path):
    with EventStore(tmp_path / "l.db") as s:
        s.save_cursor("c", 3, {"kinds": ["task"]})
    with EventStore(tmp_path / "l.db") as s:
        assert s.load_cursor("c") == (3, {"kinds": ["task"]})


def test_listeners_see_an_event_only_after_it_committed(tmp_path):
    path = tmp_path / "l.db"
    seen = []

    def check(event):
        with EventStore(path) as reader:  # another connection: only committed rows are visible
            seen.append([e.event_id for e in reader.events(after_seq=event.seq - 1, limit=1)] == [event.event_id])

    handle = subscribe(check)
    try:
        with EventStore(path) as s:
            small_flow().run(store=s, run_id="r")
    finally:
        handle.disconnect()
    assert len(seen) == 6 and all(seen)


def test_flow_run_without_store_uses_the_default_ledger(tmp_path, monkeypatch):
    path = tmp_path / "default.db"
    monkeypatch.setenv("STATELEDGER_DB", str(path))
    state = small_flow().run(run_id="dflt")
    assert path.exists()
    with EventStore(path) as s:
        assert exact(s.rebuild("dflt").state) == state
    wiring.default_ledger().close()
    monkeypatch.setattr(wiring, "_default_ledger", None)


def test_default_path_is_read_when_needed_and_made_private(tmp_path, monkeypatch):
    monkeypatch.setenv("STATELEDGER_DB", str(tmp_path / "x.db"))
    assert default_path() == str(tmp_path / "x.db")
    monkeypatch.delenv("STATELEDGER_DB")
    home = tmp_path / "h"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert default_path() == str(home / ".stateledger" / "ledger.db")
    assert stat.S_IMODE((home / ".stateledger").stat().st_mode) == 0o700
    with EventStore() as s:
        assert s.path == str(home / ".stateledger" / "ledger.db")
        small_flow().run(store=s, run_id="r")
    assert (home / ".stateledger" / "ledger.db").exists()


def test_importing_eventstore_touches_no_file(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "HOME": str(tmp_path / "nohome"), "STATELEDGER_DB": str(tmp_path / "n.db")}
    subprocess.run([sys.executable, "-c", "import eventstore, eventstore.store, statemachine"], env=env, check=True)
    assert not (tmp_path / "nohome").exists() and not (tmp_path / "n.db").exists()


def test_store_is_a_context_manager_and_knows_its_path(tmp_path):
    with EventStore(tmp_path / "l.db") as s:
        assert s.path == str(tmp_path / "l.db")
    assert EventStore(":memory:").path == ":memory:"
    with pytest.raises(ValueError, match="durability"):
        EventStore(tmp_path / "m.db", durability="fast")


def test_full_durability_writes_and_reads_back(tmp_path):
    with EventStore(tmp_path / "full.db", durability="full") as s:
        state = small_flow().run(store=s, run_id="r")
    with EventStore(tmp_path / "full.db") as s:
        assert exact(s.rebuild("r").state) == state and s.verify().ok


def test_the_package_exports_its_public_names():
    import eventstore

    assert {"EventStore", "Event", "RunView", "Report", "NotALedgerError", "SchemaVersionError",
            "LedgerWriteError", "RunNotFoundError"} <= set(eventstore.__all__)
    assert all(hasattr(eventstore, name) for name in eventstore.__all__)
    assert eventstore.Event is Event
    from statemachine.errors import LedgerError

    assert all(issubclass(getattr(eventstore, n), LedgerError) for n in eventstore.__all__ if n.endswith("Error"))


@pytest.mark.parametrize("durability, level", [("normal", 1), ("full", 2)])
def test_durability_sets_sqlite_synchronous(tmp_path, durability, level):
    with EventStore(tmp_path / "l.db", durability=durability) as s:
        assert s.recorder._conn.execute("PRAGMA synchronous").fetchone()[0] == level
