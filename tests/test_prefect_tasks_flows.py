"""Task and Flow options, checks and helpers behave as in Prefect 1.4.1."""

import datetime
import inspect
import time

import pytest

from statemachine import Flow, Parameter, Task, signals, task, taskcontext
from statemachine.errors import (
    FlowDefinitionError, OptionTypeError, ParameterError, RunInsideFlowError, StateLedgerError, TaskTimeoutSignal,
)
from statemachine.flow import Edge
from statemachine.states import Failed, Retrying, Success, TimedOut
from statemachine.testing import ListLedger
from statemachine.timeouts import can_stop_body


def run(flow, **kwargs):
    ledger = ListLedger()
    return flow.run(store=ledger, **kwargs), ledger


@task
def inc(x):
    return x + 1


# --- Task option checks (Prefect 1's Task.__init__) ---------------------------------------------


@pytest.mark.parametrize("options,error,message", [
    ({"tags": "x"}, TypeError, "Tags should be a set of tags, not a string"),
    ({"max_retries": 2}, ValueError, "A datetime.timedelta `retry_delay` must be provided if max_retries > 0"),
    ({"retry_delay": datetime.timedelta(seconds=1)}, ValueError,
     "A `max_retries` argument greater than 0 must be provided if specifying a retry delay"),
    ({"retry_on": KeyError}, ValueError, "A number of `max_retries` must be provided if `retry_on` is set."),
    ({"retry_on": [KeyError()], "max_retries": 1, "retry_delay": 0}, TypeError,
     "Invalid `retry_on` value KeyError\\(\\). Expected an exception type but got an instance of KeyError"),
    ({"retry_on": int, "max_retries": 1, "retry_delay": 0}, TypeError,
     "Invalid `retry_on` value <class 'int'>. Expected an exception subclass."),
    ({"state_handlers": lambda o, a, b: None}, TypeError, "state_handlers must be a list"),
])
def test_task_options_prefect_1_refuses_are_refused_with_its_error_type(options, error, message):
    with pytest.raises(error, match=message) as info:
        Task(**options)
    assert isinstance(info.value, StateLedgerError)


def test_run_signatures_prefect_1_refuses_are_refused():
    with pytest.raises(ValueError, match=r"variable positional arguments \(\*args\) are not supported"):
        task(lambda *args: None)
    with pytest.raises(ValueError, match="Tasks cannot have the following argument names: upstream_tasks, flow"):
        task(lambda upstream_tasks, flow: None)
    with pytest.raises(TypeError, match="Found positional-only parameters in the function signature"):
        task(lambda x, /: None)

    class Bad(Task):
        def run(self, mapped):
            return mapped

    with pytest.raises(FlowDefinitionError, match="mapped"):
        Bad()


def test_retry_on_retries_only_those_exceptions():
    calls = []

    @task(max_retries=2, retry_delay=0, retry_on=[KeyError])
    def picky():
        calls.append(1)
        raise ValueError("not retried") if len(calls) > 1 else KeyError("retried")

    with Flow("f") as flow:
        t = picky()
    state, ledger = run(flow)
    assert len(calls) == 2 and type(state.result[t]) is Failed
    assert [type(e.new_state).__name__ for e in ledger.events if e.kind == "task"] == [
        "Running", "Failed", "Retrying", "Running", "Failed"]


def test_a_retrying_state_counts_the_attempt_that_failed():
    @task(max_retries=1, retry_delay=datetime.timedelta(0))
    def once():
        if taskcontext.get("task_run_count") == 1:
            raise signals.RETRY("again")
        return taskcontext.get("task_run_count")

    with Flow("f") as flow:
        t = once()
    state, ledger = run(flow)
    retry = [e.new_state for e in ledger.events if isinstance(e.new_state, Retrying)][0]
    assert retry.run_count == 1 and state.result[t].result == 2


# --- timeouts -----------------------------------------------------------------------------------


def test_timed_out_result_is_prefect_1s_timeout_signal_and_the_body_is_stopped():
    """In the main thread the body is interrupted (Prefect 1's signal-based timeout)."""
    assert can_stop_body()
    after = []

    @task(timeout=0.2)
    def sleepy():
        time.sleep(1.5)
        after.append("finished anyway")

    with Flow("f") as flow:
        t = sleepy()
    t0 = time.monotonic()
    state, _ = run(flow)
    assert time.monotonic() - t0 < 1.2
    final = state.result[t]
    assert type(final) is TimedOut and final.message == "Task timed out during execution."
    assert type(final.result) is TaskTimeoutSignal and str(final.result) == "Execution timed out."
    assert isinstance(final.result, TimeoutError)
    time.sleep(1.5)
    assert after == []  # stopped, not left running


def test_a_body_that_swallows_the_timeout_still_times_out():
    @task(timeout=0.1)
    def stubborn():
        try:
            time.sleep(1)
        except Exception:
            return "caught it"

    with Flow("f") as flow:
        t = stubborn()
    state, _ = run(flow)
    assert type(state.result[t]) is TimedOut


def test_timeout_accepts_a_timedelta():
    assert Task(timeout=datetime.timedelta(seconds=3)).timeout == 3


# --- binding, signatures -------------------------------------------------------------------------


def test_kwargs_tasks_bind_each_keyword_as_its_own_argument():
    @task
    def collect(**kwargs):
        return kwargs

    with Flow("f") as flow:
        r = collect(a=inc(1), b=2)
    state, _ = run(flow)
    assert state.result[r].result == {"a": 2, "b": 2}
    assert {e.key for e in flow.upstream_edges(r)} == {"a"} and flow.constants[r] == {"b": 2}


def test_inspect_signature_of_a_task_mirrors_run_plus_call_keywords():
    sig = inspect.signature(inc)
    assert str(sig) == ("(x, *, mapped: bool = False, task_args: dict = None, upstream_tasks=None, "
                        "flow=None) -> 'Task'")
    assert list(inspect.signature(task(lambda **kw: kw)).parameters)[-1] == "kw"
    assert "name" in inspect.signature(Task).parameters  # the class still shows __init__


def test_call_takes_upstream_tasks_and_task_args():
    with Flow("f") as flow:
        a = inc(1)
        b = inc(2, upstream_tasks=[a], task_args={"name": "second"})
    assert b.name == "second" and flow.upstream_tasks(b) == {a}
    with pytest.raises(AttributeError, match="does not have nonsense as an attribute"):
        inc.copy(nonsense=1)


# --- flows -----------------------------------------------------------------------------------------


def test_flow_run_takes_parameters_as_keywords():
    with Flow("f") as flow:
        r = inc(Parameter("x"))
    state, _ = run(flow, x=41)
    assert state.result[r].result == 42
    state, _ = run(flow, parameters={"x": 1})
    assert state.result[r].result == 2


def test_flow_run_inside_its_with_block_is_refused():
    with pytest.raises(RunInsideFlowError, match=r"Don't call `flow.run\(\)` from within a `Flow` context manager"):
        with Flow("f") as flow:
            inc(1)
            flow.run(store=ListLedger())
    assert isinstance(RunInsideFlowError("x"), RuntimeError)


def test_parameter_run_returns_its_default_or_the_run_value():
    assert Parameter("x", default=5).run() == 5
    with taskcontext.context(parameters={"x": 7}):
        assert Parameter("x", default=5).run() == 7
    with pytest.raises(signals.FAIL, match='Parameter "y" was required but not provided.'):
        Parameter("y").run()


def test_duplicate_parameter_names_and_a_parameter_downstream_are_refused():
    with pytest.raises(FlowDefinitionError, match='already has a parameter named "x"'):
        with Flow("f"):
            inc(Parameter("x"))
            inc(Parameter("x", default=2))
    flow = Flow("g")
    with pytest.raises(ValueError, match="Parameters must be root tasks and can not have upstream dependencies"):
        Parameter("p").set_upstream(Task(), flow=flow)


def test_tasks_created_but_not_added_warn_when_the_block_ends():
    with pytest.warns(UserWarning, match=r"Tasks were created but not added to the flow: \{<Task: lonely>\}"):
        with Flow("f"):
            inc(1)
            Task("lonely")


def test_no_warning_when_every_task_made_in_the_block_is_added(recwarn):
    with Flow("f") as flow:
        p = Parameter("x")
        inc(p)
        flow.add_task(Task("explicit"))
    assert not recwarn.list


def test_edges_root_tasks_and_what_set_methods_return():
    a, b, c = Task("a"), Task("b"), Task("c")
    flow = Flow("f")
    edge = flow.add_edge(a, b, key=None)
    assert isinstance(edge, Edge) and (edge.upstream_task, edge.downstream_task) == (a, b)
    assert (edge.key, edge.mapped, edge.flattened) == (None, False, False)
    assert repr(edge) == "<Edge(key=None, mapped=False, flattened=False): a to b>"
    assert c.set_upstream(b, flow=flow) is c and a.set_downstream(c, flow=flow) is a
    assert flow.set_dependencies(c, upstream_tasks=[a]) is None
    assert flow.root_tasks() == {a} and len(flow.edges) == 4 and edge in flow.edges


def test_add_edge_validate_false_defers_the_cycle_check_to_the_run():
    a, b = Task("a"), Task("b")
    flow = Flow("f")
    flow.add_edge(a, b)
    flow.add_edge(b, a, validate=False)
    with pytest.raises(FlowDefinitionError, match="cycle"):
        run(flow)


def test_state_equality_ignores_messages_like_prefect_1():
    assert Success("one", result=1) == Success("two", result=1) != Failed("one", result=1)
    assert OptionTypeError.__mro__.index(TypeError) > 0 and issubclass(ParameterError, ValueError)
