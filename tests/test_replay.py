"""replay() and state_at(): a past run re-fed to listeners and handlers, no task code run, nothing written."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from eventstore import EventStore, StandIn
from ledger_fixtures import file_digest
from statemachine import Flow, task
from statemachine.errors import NotCallableError
from statemachine.states import Failed, Success
from state_checks import exact

SIDE_EFFECTS: list[str] = []


@task
def extract():
    SIDE_EFFECTS.append("extract")
    return [1, 2, 3]


@task
def load(rows):
    SIDE_EFFECTS.append("load")
    raise IOError("warehouse unreachable")


def etl():
    with Flow("etl") as flow:
        load(extract())
    return flow


def test_replay_feeds_every_event_in_order_to_each_listener(store):
    etl().run(store=store, run_id="etl-1")
    first, second = [], []
    assert store.replay("etl-1", first.append, second.append) == 6
    assert first == store.history("etl-1") and second == first
    assert [e.seq for e in first] == sorted(e.seq for e in first)


def test_replay_runs_no_task_code_and_writes_nothing(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        etl().run(store=s, run_id="etl-1")
    SIDE_EFFECTS.clear()
    before = file_digest(path)
    calls = []
    with EventStore(path) as s:
        count = s.max_seq()
        s.replay("etl-1", lambda e: calls.append(e.key), handlers=[lambda obj, old, new: Failed("rewrite")])
        assert s.max_seq() == count
    assert SIDE_EFFECTS == [] and len(calls) == 6
    assert file_digest(path) == before


def test_handlers_get_a_stand_in_that_prints_like_the_original(store):
    etl().run(store=store, run_id="etl-1")
    seen = []

    def notifier(obj, old, new):
        seen.append((repr(obj), obj.name, obj.key, obj.kind, repr(old), repr(new)))

    store.replay("etl-1", handlers=[notifier])
    assert seen[0] == ("<Flow: name=etl>", "etl", "etl", "flow", "Scheduled()", 'Running("Running flow.")')
    assert seen[1][:4] == ("<Task: extract>", "extract", "extract-1", "task")
    assert seen[4][5] == 'Failed("Error during execution of task: OSError(\'warehouse unreachable\')")'
    assert seen[-1][0] == "<Flow: name=etl>"


def test_handlers_fold_like_the_pipeline_and_see_rebuilt_results(store):
    etl().run(store=store, run_id="etl-1")
    got = []

    def forgive(obj, old, new):
        if new.is_failed() and isinstance(new.result, OSError):
            return Success("forgiven")
        return None

    def record(obj, old, new):
        got.append((obj.key, new))

    store.replay("etl-1", handlers=[forgive, record])
    assert ("load-1", Success("forgiven")) in exact(got)
    assert store.rebuild("etl-1").tasks["load-1"].is_failed()  # nothing was written


def test_replay_filters_are_the_live_listeners_filters(store):
    etl().run(store=store, run_id="etl-1")
    failed = []
    assert store.replay("etl-1", failed.append, states=[Failed]) == 2
    assert [e.key for e in failed] == ["load-1", "etl"]
    tasks_only = []
    store.replay("etl-1", tasks_only.append, kinds="task", task="load")
    assert [e.key for e in tasks_only] == ["load-1", "load-1"]


def test_replay_refuses_what_is_not_callable(store):
    etl().run(store=store, run_id="etl-1")
    with pytest.raises(NotCallableError, match="callables"):
        store.replay("etl-1", "print")
    with pytest.raises(NotCallableError):
        store.replay("etl-1", handlers=[42])


def test_a_raising_listener_stops_the_replay_and_says_so(store):
    etl().run(store=store, run_id="etl-1")

    def broken(event):
        raise RuntimeError("my notifier is broken")

    with pytest.raises(RuntimeError, match="my notifier is broken"):
        store.replay("etl-1", broken)


def test_stand_in_repr():
    assert repr(StandIn("load", "load-1", "task")) == "<Task: load>"
    assert repr(StandIn("etl", "etl", "flow")) == "<Flow: name=etl>"


def test_replay_in_another_process_from_the_file_alone(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        etl().run(store=s, run_id="etl-1")
    script = textwrap.dedent("""
        import sys
        from eventstore import EventStore
        with EventStore(sys.argv[1]) as s:
            s.replay("etl-1", handlers=[lambda obj, old, new: print(obj, new)])
            print(s.state_at("etl-1", 3).tasks)
    """)
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[1] == '<Task: extract> Running("Starting task run.")'
    assert lines[-1] == """{'extract-1': Success("Task run succeeded.")}"""


def test_state_at_each_seq_walks_the_run(store):
    etl().run(store=store, run_id="etl-1")
    events = store.history("etl-1")
    for i, event in enumerate(events):
        view = store.state_at("etl-1", event.seq)
        assert view.events == len({(e.kind, e.key) for e in events[: i + 1]})
        if event.kind == "task":
            assert view.tasks[event.key] == event.new_state
        else:
            assert view.state.message == event.new_state.message
    final = store.state_at("etl-1", events[-1].timestamp)
    assert final.state == store.rebuild("etl-1").state


def test_replay_of_an_unknown_run_names_it(tmp_path):
    from eventstore import EventStore
    from eventstore.errors import RunNotFoundError

    with EventStore(str(tmp_path / "r.db")) as store:
        with pytest.raises(RunNotFoundError, match="No run 'nope' in ledger"):
            store.replay("nope", lambda e: None)


def test_replay_streams_a_long_run_in_batches_in_order(tmp_path):
    from eventstore import EventStore
    from statemachine import Flow, Task

    with EventStore(str(tmp_path / "r.db")) as store:
        Flow("long", tasks=[Task(f"t{i}") for i in range(30)]).run(store=store, run_id="r")
        seqs = [e.seq for e in store.iter_history("r", batch=7)]
        assert seqs == [e.seq for e in store.history("r")] and len(seqs) == 62
