"""Restart: ``flow.run(restart=RUN_ID)`` continues a finished run as its next attempt."""

from __future__ import annotations

import logging

import pytest

from eventstore.errors import RunNotFoundError
from statemachine import Flow, Parameter, graph, task
from statemachine.errors import ArgumentError, IllegalTransitionError, RestartError
from statemachine.states import Failed, Pending, Running, Scheduled, Success, TriggerFailed
from state_checks import exact
from subscribers import add_state_handler, subscribe


def etl(calls: dict, broken: dict):
    """extract -> transform -> load; ``broken["load"]`` makes load raise. ``calls`` counts each body."""

    def counted(name):
        calls[name] = calls.get(name, 0) + 1

    @task
    def extract():
        counted("extract")
        return [1, 2, 3]

    @task
    def transform(rows):
        counted("transform")
        return [r * 10 for r in rows]

    @task
    def load(rows):
        counted("load")
        if broken.get("load"):
            raise ConnectionError("warehouse offline")
        return sum(rows)

    with Flow("etl") as flow:
        load(transform(extract()))
    return flow


def test_a_restart_reruns_only_what_did_not_succeed_and_feeds_it_the_recorded_results(store):
    calls, broken = {}, {"load": True}
    flow = etl(calls, broken)
    first = flow.run(store=store, run_id="r1")
    assert first.is_failed() and calls == {"extract": 1, "transform": 1, "load": 1}
    broken["load"] = False
    second = flow.run(store=store, restart="r1")
    assert (type(second), second.message) == (Success, "All reference tasks succeeded.")
    assert second.context["run_id"] == "r1"
    assert calls == {"extract": 1, "transform": 1, "load": 2}  # the succeeded tasks did not run again
    assert {t.name: s.result for t, s in second.result.items()} == {
        "extract": [1, 2, 3], "transform": [10, 20, 30], "load": 60}
    history = store.history("r1")
    moves = [(e.kind, e.key, e.attempt, type(e.old_state).__name__, type(e.new_state).__name__) for e in history]
    assert moves[8:] == [
        ("flow", "etl", 2, "Failed", "Scheduled"),
        ("task", "load-1", 1, "Failed", "Pending"),
        ("flow", "etl", 2, "Scheduled", "Running"),
        ("task", "load-1", 2, "Pending", "Running"),
        ("task", "load-1", 2, "Running", "Success"),
        ("flow", "etl", 2, "Running", "Success"),
    ]
    assert store.verify().ok and store.verify("r1").checked == 14
    assert store.rebuild("r1").state == second
    [run] = store.runs()
    assert (run.run_id, run.state, run.events) == ("r1", "Success", 14)
    assert run.ended == history[-1].timestamp


def test_the_restart_edges_are_taken_by_restarts_only():
    assert graph.is_legal(Failed(), Pending(), "restart") and not graph.is_legal(Failed(), Pending())
    assert graph.is_legal(Success(), Scheduled(), "restart") and not graph.is_legal(Success(), Scheduled(), "manual")
    assert not graph.is_legal(Running(), Pending(), "restart")
    assert ("Failed", "Pending") in graph.restart_edges() and ("Failed", "Pending") not in graph.legal_edges()
    with pytest.raises(ValueError, match="via= takes one of engine, manual, restart, got 'sideways'"):
        graph.is_legal(Failed(), Pending(), "sideways")


def test_handlers_and_listeners_see_the_restart_moves(store):
    calls, broken = {}, {"load": True}
    flow = etl(calls, broken)
    flow.run(store=store, run_id="r1")
    broken["load"] = False
    seen, heard = [], []
    handle = add_state_handler(lambda obj, old, new: seen.append((obj.name, type(old).__name__, type(new).__name__)))
    sub = subscribe(lambda e: heard.append((e.key, type(e.new_state).__name__)))
    try:
        flow.run(store=store, restart="r1")
    finally:
        handle.remove()
        sub.disconnect()
    assert seen[:2] == [("etl", "Failed", "Scheduled"), ("load", "Failed", "Pending")]
    assert heard[:3] == [("etl", "Scheduled"), ("load-1", "Pending"), ("etl", "Running")]


def test_a_successful_task_whose_result_is_not_json_runs_again_and_the_log_says_so(store, caplog):
    calls = {"make": 0, "use": 0}
    broken = {"use": True}

    @task
    def make():
        calls["make"] += 1
        return object()  # the ledger can only describe it: a restart cannot hand it downstream

    @task
    def use(thing):
        calls["use"] += 1
        if broken["use"]:
            raise RuntimeError("not yet")
        return type(thing).__name__

    with Flow("objects") as flow:
        use(make())
    flow.run(store=store, run_id="o1")
    broken["use"] = False
    with caplog.at_level(logging.INFO, logger="stateledger"):
        state = flow.run(store=store, restart="o1")
    assert state.is_successful() and calls == {"make": 2, "use": 2}
    assert ("restart of run o1: task make-1 succeeded but its result (DescribedResult) is not JSON, so it runs "
            "again") in caplog.messages
    make_moves = [(e.attempt, type(e.new_state).__name__) for e in store.history("o1") if e.key == "make-1"]
    assert make_moves == [(1, "Running"), (1, "Success"), (1, "Pending"), (2, "Running"), (2, "Success")]
    assert store.verify().ok


def test_a_restarted_task_gets_its_retries_again_and_its_attempts_continue(store):
    tries = []

    @task(max_retries=1, retry_delay=0)
    def flaky():
        tries.append(1)
        raise ValueError(f"try {len(tries)}")

    flow = Flow("flaky", [flaky])
    flow.run(store=store, run_id="f1")
    flow.run(store=store, restart="f1")
    assert len(tries) == 4  # 1 + 1 retry, then again after the restart
    attempts = [e.attempt for e in store.history("f1") if e.kind == "task" and isinstance(e.new_state, Running)]
    assert attempts == [1, 2, 3, 4]
    retrying = [e.new_state for e in store.history("f1") if type(e.new_state).__name__ == "Retrying"]
    assert [s.message for s in retrying] == ["Retrying Task (after attempt 1 of 2)"] * 2


def test_downstream_tasks_that_never_ran_run_after_a_restart(store):
    calls, broken = {}, {"load": True}

    @task
    def fetch():
        calls["fetch"] = calls.get("fetch", 0) + 1
        if broken.get("load"):
            raise KeyError("gone")
        return 2

    @task
    def double(x):
        calls["double"] = calls.get("double", 0) + 1
        return x * 2

    with Flow("chain") as flow:
        double(fetch())
    flow.run(store=store, run_id="c1")
    assert isinstance(store.rebuild("c1").tasks["double-1"], TriggerFailed)
    broken["load"] = False
    state = flow.run(store=store, restart="c1")
    assert state.is_successful() and calls == {"fetch": 2, "double": 1}
    assert exact(store.rebuild("c1").tasks) == {"fetch-1": Success("Task run succeeded.", result=2),
                                                "double-1": Success("Task run succeeded.", result=4)}


def test_a_restart_keeps_the_recorded_parameters_and_refuses_other_values(store):
    seen = []

    @task
    def show(day):
        seen.append(day)
        if len(seen) == 1:
            raise RuntimeError("first try fails")
        return day

    with Flow("daily") as flow:
        show(Parameter("day"))
    flow.run({"day": "2024-06-01"}, store=store, run_id="d1")
    assert flow.run(store=store, restart="d1").is_successful()  # the required parameter comes from the run
    assert seen == ["2024-06-01", "2024-06-01"]
    with pytest.raises(RestartError) as err:
        flow.run({"day": "2024-06-02"}, store=store, restart="d1")
    assert str(err.value) == (
        "Run d1 ran with parameter day='2024-06-01'; a restart continues it with the same values, not "
        "'2024-06-02'. Start a new run for other values.")


def test_a_restart_of_an_unknown_unfinished_or_other_flows_run_is_refused_and_writes_nothing(store):
    calls, broken = {}, {"load": True}
    flow = etl(calls, broken)
    flow.run(store=store, run_id="r1")
    with pytest.raises(RunNotFoundError):
        flow.run(store=store, restart="nope")
    other = Flow("other", [task(lambda: 1, name="one")])
    with pytest.raises(RestartError, match=r"^Run r1 is a run of flow 'etl', not of 'other'; restart it with that"):
        other.run(store=store, restart="r1")
    with pytest.raises(ArgumentError, match="restart='r1' continues that run; leave run_id= out"):
        flow.run(store=store, restart="r1", run_id="r2")
    from statemachine.events import Event
    from statemachine.states import utcnow

    store.append(Event("open", utcnow(), "flow", "etl", "etl", 1, Scheduled(), Running("Running flow."), flow="etl"))
    with pytest.raises(RestartError) as err:
        flow.run(store=store, restart="open")
    assert str(err.value) == (
        "Run open is not finished: its flow is Running. Restart a run once it ended; if its process died, reap "
        "it first (stateledger reap); a paused task can be marked (stateledger mark).")
    assert len(store.history("r1")) == 8 and len(store.history("open")) == 1


def test_a_store_that_cannot_read_runs_cannot_restart():
    class AppendOnly:
        def append(self, event):
            return event

    flow = Flow("x", [task(lambda: 1, name="one")])
    with pytest.raises(ArgumentError, match="restart= reads the run from the store"):
        flow.run(store=AppendOnly(), restart="r1")


def test_the_engine_never_takes_a_restart_edge_on_its_own():
    from statemachine.pipeline import Move, check_legality

    with pytest.raises(IllegalTransitionError, match="This is a bug in stateledger"):
        check_legality(Move(Failed(), Pending(), Pending()))
    assert check_legality(Move(Failed(), Pending(), Pending()), "restart").final == Pending()


def test_a_restart_behaves_the_same_on_a_thread_executor(store):
    from statemachine.executors import ThreadExecutor

    calls, broken = {}, {"load": True}
    flow = etl(calls, broken)
    flow.run(store=store, run_id="r1", executor=ThreadExecutor(max_workers=2))
    broken["load"] = False
    state = flow.run(store=store, restart="r1", executor=ThreadExecutor(max_workers=2))
    assert state.is_successful() and calls == {"extract": 1, "transform": 1, "load": 2}
    assert store.verify("r1").ok and len(store.history("r1")) == 14


def test_a_mapped_task_maps_again_on_a_restart(store):
    from statemachine import unmapped

    broken = {"Oslo": True}
    calls = []

    @task
    def fetch(city, unit):
        calls.append(city)
        if broken.get(city):
            raise ConnectionError(f"{city} unreachable")
        return f"{city} 12{unit}"

    @task
    def summary(readings):
        return "; ".join(readings)

    with Flow("weather") as flow:
        text = summary(fetch.map(["Lyon", "Oslo"], unit=unmapped("C")))
    flow.run(store=store, run_id="w1")
    broken.clear()
    state = flow.run(store=store, restart="w1")
    assert state.is_successful() and state.result[text].result == "Lyon 12C; Oslo 12C"
    assert calls == ["Lyon", "Oslo", "Lyon", "Oslo"]
    assert store.verify("w1").ok
