"""Mapping behaves as in Prefect 1.4.1: children are task runs of their own, in the ledger too."""

import datetime
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from eventstore import EventStore
from statemachine import Flow, Parameter, flatten, signals, task, taskcontext, unmapped
from statemachine.errors import FlowDefinitionError
from statemachine.executors import ThreadExecutor
from statemachine.states import Failed, Mapped, Retrying, Skipped, Success
from statemachine.testing import ListLedger
from state_checks import exact

SKIP_MESSAGE = ("Upstream task was skipped; if this was not the intended behavior, "
                "consider changing `skip_on_upstream_skip=False` for this task.")


def run(flow, **kwargs):
    ledger = ListLedger()
    return flow.run(store=ledger, **kwargs), ledger


@task
def add(x, y):
    if x == 2:
        raise ValueError("two")
    if x == 3:
        raise signals.SKIP("three")
    return x + y


@task
def double(x):
    return x * 2


@task
def total(xs):
    return sum(xs)


@task
def listing(xs):
    return xs


def test_each_child_is_a_task_run_with_its_own_key_transitions_and_handler_calls():
    """Prefect 1.4.1's trail for the same flow: the parent goes Pending -> Mapped first."""
    seen = []

    def handler(t, old, new):
        seen.append((t.name, taskcontext.get("map_index"), type(old).__name__, type(new).__name__))

    with Flow("m") as flow:
        r = add.copy(state_handlers=[handler]).map([1, 4], y=unmapped(10))
    state, ledger = run(flow)
    assert seen == [
        ("add", None, "Pending", "Mapped"),
        ("add", 0, "Pending", "Running"), ("add", 0, "Running", "Success"),
        ("add", 1, "Pending", "Running"), ("add", 1, "Running", "Success"),
    ]
    assert [(e.key, type(e.new_state).__name__) for e in ledger.events if e.kind == "task"] == [
        ("add-1", "Mapped"), ("add-1[0]", "Running"), ("add-1[0]", "Success"),
        ("add-1[1]", "Running"), ("add-1[1]", "Success")]
    parent = state.result[r]
    assert type(parent) is Mapped and parent.message == "Ready to proceed with mapping."
    assert parent.result == [11, 14] and parent.n_map_states == 2
    assert parent.map_states == [Success(result=11), Success(result=14)]
    assert repr(state) == 'Success("All reference tasks succeeded.")'


def test_failures_skips_and_triggers_of_children_follow_prefect_1():
    """Prefect 1.4.1: child 1 fails, so dbl[1] is TriggerFailed; child 2 skips, so dbl[2] is skipped;
    the reduce task sees every child and is skipped; the flow fails (a mapped reference task's
    children count)."""
    with Flow("m") as flow:
        r = add.map([1, 2, 3, 4], y=unmapped(10))
        d = double.map(r)
        t = total(r)
    state, _ = run(flow)
    assert [type(s).__name__ for s in state.result[r].map_states] == ["Success", "Failed", "Skipped", "Success"]
    assert state.result[r].result[0] == 11 and isinstance(state.result[r].result[1], ValueError)
    children = state.result[d].map_states
    assert [type(s).__name__ for s in children] == ["Success", "TriggerFailed", "Skipped", "Success"]
    assert children[1].message == 'Trigger was "all_successful" but some of the upstream tasks failed.'
    assert children[2].message == SKIP_MESSAGE
    assert state.result[d].result[0] == 22 and state.result[d].result[3] == 28
    assert repr(state.result[t]) == f'Skipped("{SKIP_MESSAGE}")'
    assert repr(state) == 'Failed("Some reference tasks failed.")'


def test_a_reduce_task_receives_the_list_of_child_results():
    with Flow("m") as flow:
        doubled = double.map([1, 2, 3])
        s = total(doubled)
    state, _ = run(flow)
    assert state.result[s] == Success(result=12)


def test_mapping_over_a_mapped_task_pairs_children_by_index():
    with Flow("m") as flow:
        a = double.map([1, 2, 3])
        b = double.map(a)
        c = listing(b)
    state, ledger = run(flow)
    assert state.result[c].result == [4, 8, 12]
    assert [e.key for e in ledger.events if e.key.startswith("double-2[")] == [
        "double-2[0]", "double-2[0]", "double-2[1]", "double-2[1]", "double-2[2]", "double-2[2]"]


def test_map_over_a_task_result_and_several_arguments_uses_the_shortest():
    @task
    def numbers():
        return [1, 4, 5]

    with Flow("m") as flow:
        r = add.map(numbers(), y=[100, 200])
    state, _ = run(flow)
    assert state.result[r].result == [101, 204] and state.result[r].n_map_states == 2


def test_flatten_maps_over_the_items_of_items_and_flattens_a_reduce():
    @task
    def nested(n):
        return [n] * n

    with Flow("m") as flow:
        lists = nested.map([1, 2, 3])
        each = double.map(flatten(lists))
        whole = listing(flatten(lists))
        const = double.map(flatten([[1], [2, 3]]))
    state, _ = run(flow)
    assert state.result[each].result == [2, 4, 4, 6, 6, 6]
    assert state.result[whole].result == [1, 2, 2, 3, 3, 3]
    assert state.result[const].result == [2, 4, 6]


def test_unmapped_task_and_parameter_arguments():
    with Flow("m") as flow:
        y = Parameter("y", default=1)
        r = add.map([1, 4], y=unmapped(y))
    state, _ = run(flow, y=5)
    assert state.result[r].result == [6, 9]


def test_each_child_retries_on_its_own_with_its_own_attempts():
    tries = {}

    @task(max_retries=2, retry_delay=datetime.timedelta(0))
    def flaky(x):
        i = taskcontext.get("map_index")
        tries[i] = tries.get(i, 0) + 1
        if x == "b" and tries[i] < 3:
            raise ValueError("not yet")
        return x.upper()

    with Flow("m") as flow:
        r = flaky.map(["a", "b"])
    state, ledger = run(flow)
    assert state.result[r].result == ["A", "B"] and tries == {0: 1, 1: 3}
    b_events = [e for e in ledger.events if e.key == "flaky-1[1]"]
    assert [(e.attempt, type(e.new_state).__name__) for e in b_events] == [
        (1, "Running"), (1, "Failed"), (1, "Retrying"), (2, "Running"), (2, "Failed"), (2, "Retrying"),
        (3, "Running"), (3, "Success")]
    assert [e.new_state.run_count for e in b_events if isinstance(e.new_state, Retrying)] == [1, 2]


def test_a_skipped_upstream_skips_the_parent_and_nothing_to_map_fails_it():
    @task
    def skipper():
        raise signals.SKIP("no data")

    @task
    def broken():
        raise ValueError("no list")

    @task
    def not_a_list():
        return 7

    with Flow("m") as flow:
        skipped = double.map(skipper())
        failed = double.map(broken())
        unmappable = double.map(not_a_list())
    state, ledger = run(flow)
    assert repr(state.result[skipped]) == f'Skipped("{SKIP_MESSAGE}")'
    assert repr(state.result[failed]) == 'Failed("No upstream states can be mapped over.")'
    assert repr(state.result[unmappable]) == 'Failed("At least one upstream state has an unmappable result.")'
    assert not [e for e in ledger.events if "[" in e.key]


def test_an_empty_list_maps_to_no_children():
    with Flow("m") as flow:
        r = double.map([])
        s = total(r)
    state, _ = run(flow)
    assert type(state.result[r]) is Mapped and state.result[r].result == [] and state.result[r].map_states == []
    assert state.result[r].n_map_states == 0 and state.result[s].result == 0


def test_a_handler_rewriting_the_mapped_state_stops_the_mapping():
    def no_mapping(t, old, new):
        if isinstance(new, Mapped):
            return Skipped("not mapping today")

    with Flow("m") as flow:
        r = double.copy(state_handlers=[no_mapping]).map([1, 2])
    state, ledger = run(flow)
    assert repr(state.result[r]) == 'Skipped("not mapping today")'
    assert [e.key for e in ledger.events if e.kind == "task"] == ["double-1"]


def test_mapping_nothing_is_refused_when_building():
    with pytest.raises(FlowDefinitionError, match="was mapped over nothing"):
        with Flow("m"):
            double.map(x=unmapped([1, 2]))
    with pytest.raises(FlowDefinitionError, match=r"Cannot map <Task: double> over x=5 \(int\): it is not a list"):
        with Flow("m"):
            double.map(5)


def test_edges_say_mapped_and_flattened():
    with Flow("m") as flow:
        a = double.map([1])
        b = double.map(flatten(a))
        c = total(a, upstream_tasks=[unmapped(b)])
    (ab,) = flow.upstream_edges(b)
    assert (ab.mapped, ab.flattened) == (True, True)
    assert {(e.key, e.mapped) for e in flow.upstream_edges(c)} == {("xs", False), (None, False)}
    assert flow.mapped_constants[a] == {"x": [1]}


def test_set_dependencies_with_mapped_true_maps():
    flow = Flow("m")
    d = double.copy()
    flow.set_dependencies(d, keyword_tasks={"x": [1, 2]}, mapped=True)
    state, _ = run(flow)
    assert state.result[d].result == [2, 4]


def test_rebuild_and_state_at_show_the_children(store):
    with Flow("m") as flow:
        r = add.map([1, 2], y=unmapped(1))
        s = total(r, upstream_tasks=[])
    state = flow.run(store=store, run_id="m1")
    view = store.rebuild("m1")
    assert view.tasks["add-1[0]"] == Success(result=2) and type(view.tasks["add-1[1]"]) is Failed
    assert exact(view.state) == state
    parent = view.tasks["add-1"]
    assert type(parent) is Mapped and parent == state.result[r] and parent.result[0] == 2
    assert repr(view.tasks["total-1"]) == repr(state.result[s])
    mapped_seq = next(e.seq for e in store.history("m1") if e.key == "add-1")
    early = store.state_at("m1", mapped_seq + 1)
    assert type(early.tasks["add-1"]) is Mapped and repr(early.tasks["add-1[0]"]) == 'Running("Starting task run.")'
    assert "add-1[1]" not in early.tasks


def test_show_lists_each_child(tmp_path):
    flow_file = tmp_path / "mapped.py"
    flow_file.write_text(textwrap.dedent("""
        from statemachine import Flow, task

        @task
        def double(x):
            return x * 2

        with Flow("mapped") as flow:
            double.map([1, 2])
    """))
    db = str(tmp_path / "ledger.db")
    ran = subprocess.run([sys.executable, "-m", "eventstore.cli", "run", str(flow_file), "--run-id", "r1",
                          "--db", db], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    shown = subprocess.run([sys.executable, "-m", "eventstore.cli", "show", "r1", "--db", db],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    headers = [b.splitlines()[0].split()[:2] for b in shown.stdout.split("\n\n")[1:]]
    assert headers == [["flow", "mapped"], ["task", "double-1"], ["task", "double-1[0]"], ["task", "double-1[1]"]]
    with EventStore(db) as s:
        assert s.rebuild("r1").tasks["double-1"].result == [2, 4]


def test_children_see_their_full_name_and_key_and_keep_the_parents_options():
    @task(timeout=5, tags=["t"])
    def echo(x):
        return (x, taskcontext.get("task_full_name"), taskcontext.get("task_key"))

    with Flow("m") as flow:
        r = echo.map(["a"])
    state, ledger = run(flow)
    assert state.result[r].result == [("a", "echo[0]", "echo-1[0]")]
    assert [e.name for e in ledger.events if e.kind == "task"] == ["echo"] * 3


# --- on every executor -------------------------------------------------------------------------


def test_mapping_retries_and_reduce_on_every_executor(executor):
    """Children are scheduled like tasks: on a pool they run at once, each with its own events."""
    @task(max_retries=1, retry_delay=0)
    def maybe(x):
        if x == 3 and taskcontext.get("task_run_count", 2) == 1:
            raise ValueError("first try")
        return x * 10

    with Flow("m") as flow:
        r = maybe.map([1, 2, 3])
        d = double.map(r)
        s = total(d)
    ledger = ListLedger()
    state = flow.run(store=ledger, executor=executor)
    assert state.result[r].result == [10, 20, 30] and state.result[s].result == 120
    assert [type(c).__name__ for c in state.result[d].map_states] == ["Success"] * 3
    keys = {e.key for e in ledger.events if e.kind == "task"}
    assert keys == {"maybe-1", "maybe-1[0]", "maybe-1[1]", "maybe-1[2]", "double-1", "double-1[0]",
                    "double-1[1]", "double-1[2]", "total-1"}
    tries = [(e.attempt, type(e.new_state).__name__) for e in ledger.events if e.key == "maybe-1[2]"]
    if executor.__class__.__name__ != "DaskExecutor":  # a Dask worker has no task context: no first try there
        assert tries == [(1, "Running"), (1, "Failed"), (1, "Retrying"), (2, "Running"), (2, "Success")]
    assert repr(state) == 'Success("All reference tasks succeeded.")'


def test_children_run_at_once_on_a_thread_pool():
    barrier = threading.Barrier(3, timeout=10)

    @task
    def meet(x):
        barrier.wait()  # only returns once all three children run at the same time
        return x

    with Flow("m") as flow:
        r = meet.map([1, 2, 3])
    t0 = time.monotonic()
    state = flow.run(store=ListLedger(), executor=ThreadExecutor(max_workers=3))
    assert state.result[r].result == [1, 2, 3] and time.monotonic() - t0 < 10
