"""Running flows: order, data, triggers, skips, retries, timeouts, signals, reference tasks."""

import datetime
import time

import pytest

from statemachine import Flow, Parameter, Task, signals, task, triggers
from statemachine.states import (
    Failed, Paused, Pending, Retrying, Scheduled, Skipped, Success, TimedOut, TriggerFailed,
)
from statemachine.errors import TaskTimeoutSignal
from statemachine.testing import ListLedger

from executor_fixtures import EXECUTORS, SharedList, make_executor
from state_checks import exact

_executor = None


@pytest.fixture(autouse=True, params=EXECUTORS)
def on_every_executor(request):
    """Every test here runs on LocalExecutor, ThreadExecutor and DaskExecutor."""
    global _executor
    _executor = make_executor(request.param, request)
    yield request.param
    _executor = None


def run(flow, **kwargs):
    ledger = ListLedger()
    return flow.run(store=ledger, executor=_executor, **kwargs), ledger


def trail(ledger, key):
    return [type(e.new_state).__name__ for e in ledger.events if e.key == key]


@task
def one():
    return 1


@task
def add(x, y=10):
    return x + y


@task
def boom():
    raise ValueError("boom")


def test_data_flows_between_tasks_in_dependency_order():
    with Flow("f") as flow:
        a = one()
        b = add(a, y=5)
        c = add(b)
    state, ledger = run(flow)
    assert exact(state) == Success("All reference tasks succeeded.", result=state.result)
    assert [state.result[t].result for t in (a, b, c)] == [1, 6, 16]
    assert [e.key for e in ledger.events if e.kind == "task"] == [
        "one-1", "one-1", "add-1", "add-1", "add-2", "add-2"]


def test_flow_transitions_are_scheduled_running_then_final():
    seen = []
    flow = Flow("f", tasks=[Task()], state_handlers=[lambda o, old, new: seen.append((old, new))])
    state, ledger = run(flow)
    assert [(repr(old), repr(new)) for old, new in seen] == [
        ("Scheduled()", 'Running("Running flow.")'),
        ('Running("Running flow.")', 'Success("All reference tasks succeeded.")')]
    assert type(seen[0][0]) is Scheduled and seen[1][1].result is state.result
    assert [e.kind for e in ledger.events] == ["flow", "task", "task", "flow"]


def test_run_id_is_given_or_generated_and_named_in_the_context():
    flow = Flow("nightly etl", tasks=[Task()])
    state, ledger = run(flow, run_id="r-1")
    assert state.context["run_id"] == "r-1" and {e.run_id for e in ledger.events} == {"r-1"}
    state, ledger = run(flow)
    assert state.context["run_id"].startswith("nightly-etl-") and ledger.events[0].run_id == state.context["run_id"]


def test_a_failure_fails_downstream_by_trigger_and_the_flow():
    with Flow("f") as flow:
        a = boom()
        b = add(a)
    state, _ = run(flow)
    assert exact(state) == Failed("Some reference tasks failed.", result=state.result)
    assert state.result[a].message == "Error during execution of task: ValueError('boom')"
    assert exact(state.result[b]) == TriggerFailed(
        'Trigger was "all_successful" but some of the upstream tasks failed.', result=state.result[b].result)
    assert isinstance(state.result[b].result, signals.TRIGGERFAIL)


@pytest.mark.parametrize(
    "trigger,upstream_fails,runs,message",
    [
        (triggers.all_successful, False, True, None),
        (triggers.all_failed, True, True, None),
        (triggers.all_failed, False, False, 'Trigger was "all_failed" but some of the upstream tasks succeeded.'),
        (triggers.any_successful, False, True, None),
        (triggers.any_successful, True, False, 'Trigger was "any_successful" but none of the upstream tasks succeeded.'),
        (triggers.any_failed, True, True, None),
        (triggers.any_failed, False, False, 'Trigger was "any_failed" but none of the upstream tasks failed.'),
        (triggers.all_finished, True, True, None),
        (triggers.always_run, False, True, None),
    ],
)
def test_triggers(trigger, upstream_fails, runs, message):
    ran = SharedList()
    down = Task("down", trigger=trigger)
    down.run = lambda: ran.append(1)
    up = Task("up")
    if upstream_fails:
        up.run = lambda: (_ for _ in ()).throw(RuntimeError("x"))
    flow = Flow("f", tasks=[up, down])
    flow.set_dependencies(down, upstream_tasks=[up])
    state, ledger = run(flow)
    assert bool(ran) is runs
    if not runs:
        assert type(state.result[down]) is TriggerFailed and state.result[down].message == message
        assert trail(ledger, "down-1") == ["TriggerFailed"]


def test_the_default_trigger_asks_each_upstream_state_unless_it_is_a_plain_success():
    """The engine skips calling all_successful only for exact Success states: a subclass is asked."""

    class NotReally(Success):
        def is_successful(self):
            return False

    def disguise(obj, old, new):
        return NotReally("disguised", result=new.result) if isinstance(new, Success) else new

    up = Task("up", state_handlers=[disguise])
    up.run = lambda: 1
    down, after = Task("down"), Task("after")
    flow = Flow("f", tasks=[up, down, after])
    flow.set_dependencies(down, upstream_tasks=[up], downstream_tasks=[after])
    state, ledger = run(flow)
    assert type(state.result[up]) is NotReally
    assert type(state.result[down]) is TriggerFailed and trail(ledger, "down-1") == ["TriggerFailed"]
    assert type(state.result[after]) is TriggerFailed


def test_manual_only_pauses_without_prompting_and_the_flow_is_not_success():
    up, gate, after = Task("up"), Task("gate", trigger=triggers.manual_only), Task("after")
    flow = Flow("f", tasks=[up, gate, after])
    flow.set_dependencies(gate, upstream_tasks=[up], downstream_tasks=[after])
    state, ledger = run(flow)
    assert type(state.result[gate]) is Paused and state.result[gate].message == 'Trigger function is "manual_only"'
    assert state.result[after] == Pending()
    assert not state.is_successful() and state.is_running()
    assert trail(ledger, "after-1") == []


def test_skip_propagates_unless_skip_on_upstream_skip_is_false():
    @task
    def skipper():
        raise signals.SKIP("nothing to do")

    @task(skip_on_upstream_skip=False)
    def runs_anyway(x):
        return "ran"

    with Flow("f") as flow:
        s = skipper()
        skipped = add(s)
        ran = runs_anyway(s)
    state, _ = run(flow)
    assert exact(state.result[s]) == Skipped("nothing to do", result=state.result[s].result)
    assert state.result[skipped].is_skipped() and "skip_on_upstream_skip=False" in state.result[skipped].message
    assert exact(state.result[ran]) == Success("Task run succeeded.", result="ran")
    assert state.is_successful()


def test_retries_go_failed_retrying_running_with_attempts_and_run_count():
    calls = SharedList()

    @task(max_retries=2, retry_delay=datetime.timedelta(seconds=0))
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "ok"

    with Flow("f") as flow:
        t = flaky()
    state, ledger = run(flow)
    assert exact(state.result[t]) == Success("Task run succeeded.", result="ok")
    events = [e for e in ledger.events if e.key == "flaky-1"]
    assert [type(e.new_state).__name__ for e in events] == [
        "Running", "Failed", "Retrying", "Running", "Failed", "Retrying", "Running", "Success"]
    assert [e.attempt for e in events] == [1, 1, 1, 2, 2, 2, 3, 3]
    retrying = [e.new_state for e in events if isinstance(e.new_state, Retrying)]
    assert [r.run_count for r in retrying] == [1, 2]
    assert retrying[0].message == "Retrying Task (after attempt 1 of 3)"
    assert isinstance(events[3].old_state, Retrying)


def test_retries_run_out_and_the_task_stays_failed():
    @task(max_retries=1, retry_delay=0)
    def always():
        raise KeyError("k")

    with Flow("f") as flow:
        t = always()
    state, ledger = run(flow)
    assert exact(state.result[t]) == Failed("Error during execution of task: KeyError('k')", result=KeyError("k"))
    assert trail(ledger, "always-1") == ["Running", "Failed", "Retrying", "Running", "Failed"]


def test_retry_delay_sets_start_time_and_a_waiting_task_does_not_block_others(on_every_executor):
    order = SharedList()

    @task(max_retries=1, retry_delay=0.3)
    def slow_retry():
        order.append("slow_retry")
        if order.count("slow_retry") == 1:
            raise RuntimeError("later")

    @task
    def other():
        order.append("other")

    with Flow("f") as flow:
        s = slow_retry()
        other()
    t0 = time.monotonic()
    state, ledger = run(flow)
    assert time.monotonic() - t0 >= 0.3
    if on_every_executor == "local":
        assert order == ["slow_retry", "other", "slow_retry"]
    else:  # the first two run at once, in either order
        assert sorted(order[:2]) == ["other", "slow_retry"] and order[2:] == ["slow_retry"]
    retry = next(e for e in ledger.events if isinstance(e.new_state, Retrying))
    assert (retry.new_state.start_time - retry.timestamp).total_seconds() == pytest.approx(0.3, abs=0.05)
    assert state.result[s].is_successful()


def test_retry_signal_retries_now():
    calls = SharedList()

    @task
    def asks():
        calls.append(1)
        if len(calls) == 1:
            raise signals.RETRY("please")
        return 2

    with Flow("f") as flow:
        t = asks()
    state, ledger = run(flow)
    assert trail(ledger, "asks-1") == ["Running", "Retrying", "Running", "Success"]
    assert state.result[t].result == 2


def test_timeout_ends_timed_out():
    @task(timeout=0.2)
    def sleepy():
        time.sleep(2)

    with Flow("f") as flow:
        t = sleepy()
    t0 = time.monotonic()
    state, _ = run(flow)
    assert time.monotonic() - t0 < 1.5
    assert exact(state.result[t]) == TimedOut("Task timed out during execution.", result=TaskTimeoutSignal())
    assert str(state.result[t].result) == "Execution timed out."
    assert state.result[t].is_failed()


def test_timeout_passes_results_and_errors_through_when_in_time():
    @task(timeout=5)
    def quick(x):
        if x:
            raise ValueError("bad")
        return "fine"

    with Flow("f") as flow:
        ok, bad = quick(0), quick(1)
    state, _ = run(flow)
    assert state.result[ok].result == "fine"
    assert state.result[bad].message == "Error during execution of task: ValueError('bad')"


@pytest.mark.parametrize(
    "signal,expected",
    [
        (signals.FAIL("f"), Failed), (signals.SUCCESS("s"), Success), (signals.SKIP("k"), Skipped),
        (signals.PAUSE("p"), Paused), (signals.TRIGGERFAIL("t"), TriggerFailed),
    ],
)
def test_signals_set_their_state_with_the_signal_as_result(signal, expected, on_every_executor):
    signal.extra = 42

    @task
    def raiser():
        raise signal

    with Flow("f") as flow:
        t = raiser()
    state, _ = run(flow)
    final = state.result[t]
    assert type(final) is expected and final.message == signal.message
    assert type(final.result) is type(signal) and final.result.extra == 42
    if on_every_executor != "dask":  # on Dask it was raised on a worker: what comes back is a copy
        assert final.result is signal


def test_endrun_sets_exactly_the_given_state():
    @task
    def ender():
        raise signals.ENDRUN(Success("custom", result=7))

    with Flow("f") as flow:
        t = ender()
    state, _ = run(flow)
    assert exact(state.result[t]) == Success("custom", result=7)


def test_signals_are_ordinary_exceptions():
    for cls in (signals.FAIL, signals.SUCCESS, signals.RETRY, signals.SKIP, signals.PAUSE,
                signals.TRIGGERFAIL, signals.ENDRUN):
        assert issubclass(cls, Exception)


def test_reference_tasks_decide_the_flow_state():
    with Flow("f") as flow:
        bad = boom()
        good = one()
    flow.set_reference_tasks([good])
    state, _ = run(flow)
    assert exact(state) == Success("All reference tasks succeeded.", result=state.result)
    assert state.result[bad].is_failed()


def test_callbacks_on_failure_on_success_on_retry():
    seen = []
    cb = lambda name: (lambda obj, state: seen.append((name, obj.name, type(state).__name__)))  # noqa: E731
    calls = SharedList()

    @task(max_retries=1, retry_delay=0, on_retry=cb("retry"), on_success=cb("success"))
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("x")

    @task(on_failure=cb("failure"))
    def broken(x):
        raise RuntimeError("y")

    with Flow("f", on_failure=cb("flow-failure")) as flow:
        broken(flaky())
    run(flow)
    assert seen == [("retry", "flaky", "Retrying"), ("success", "flaky", "Success"),
                    ("failure", "broken", "Failed"), ("flow-failure", "f", "Failed")]


def test_a_failing_flow_handler_on_start_fails_the_flow_without_running_tasks():
    ran = SharedList()

    def no_start(obj, old, new):
        if new.is_running():
            raise PermissionError("maintenance window")
        return new

    t = Task()
    t.run = lambda: ran.append(1)
    state, ledger = run(Flow("f", tasks=[t], state_handlers=[no_start]))
    assert type(state) is Failed and "PermissionError('maintenance window')" in state.message
    assert ran == [] and [e.kind for e in ledger.events] == ["flow"]
    assert isinstance(state.result, PermissionError)  # a failing handler's state carries its exception


def test_parameters_feed_tasks_with_defaults():
    with Flow("f") as flow:
        x = Parameter("x")
        y = Parameter("y", default=3)
        total = add(x, y)
    state, _ = run(flow, parameters={"x": 4})
    assert state.result[total].result == 7
    state, _ = run(flow, parameters={"x": 4, "y": 0})
    assert state.result[total].result == 4


def test_task_subclass_with_run_and_imperative_dependencies():
    class Double(Task):
        def run(self, n):
            return n * 2

    class Seven(Task):
        def run(self):
            return 7

    seven, double = Seven(), Double()
    flow = Flow("f")
    double.set_upstream(seven, flow=flow, key="n")
    state, _ = run(flow)
    assert state.result[double].result == 14
    assert repr(double) == "<Task: Double>" and repr(flow) == "<Flow: name=f>"


def test_keys_are_name_and_a_counter_in_the_order_added():
    with Flow("f") as flow:
        a, b = one(), one()
        c = add(a)
    assert [flow.key_of(t) for t in (a, b, c)] == ["one-1", "one-2", "add-1"]


def test_the_engine_prints_nothing_and_logs_to_the_stateledger_logger(capsys, caplog):
    caplog.set_level("INFO", logger="stateledger")
    run(Flow("quiet", tasks=[Task()]))
    assert capsys.readouterr().out == ""
    assert any(r.name == "stateledger" and "quiet" in r.getMessage() for r in caplog.records)


def test_handlers_can_read_the_run_in_progress():
    from statemachine.engine import current_run_id

    seen = []
    t = Task(state_handlers=[lambda obj, old, new: seen.append(current_run_id())])
    run(Flow("f", tasks=[t]), run_id="r-42")
    assert seen == ["r-42", "r-42"] and current_run_id() is None
