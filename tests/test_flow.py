"""Building flows, and the clear errors bad definitions get."""

import pytest

from statemachine import Flow, Parameter, Task, task
from statemachine.errors import (
    CycleError, FlowContextError, FlowDefinitionError, NotCallableError, ParameterError, StateLedgerError,
)
from statemachine.testing import ListLedger


@task
def inc(x):
    return x + 1


def test_a_cycle_is_refused_naming_the_tasks_in_it():
    a, b, c = Task("a"), Task("b"), Task("c")
    flow = Flow("loop")
    flow.set_dependencies(b, upstream_tasks=[a])
    flow.set_dependencies(c, upstream_tasks=[b])
    with pytest.raises(CycleError, match=r"Flow 'loop' would have a cycle: a-1 -> b-1 -> c-1 -> a-1") as info:
        flow.set_dependencies(a, upstream_tasks=[c])
    assert info.value.tasks == [a, b, c]
    assert isinstance(info.value, (StateLedgerError, ValueError))


def test_a_task_depending_on_itself_is_a_cycle():
    t = Task("t")
    with pytest.raises(CycleError, match="t-1 -> t-1"):
        Flow("f").add_edge(t, t)


def test_calling_a_task_outside_a_flow_says_how_to_fix_it():
    with pytest.raises(FlowContextError, match=r"<Task: inc> was called outside a Flow: call tasks inside `with Flow"):
        inc(1)


def test_a_task_that_is_not_callable_is_refused():
    with pytest.raises(NotCallableError, match=r"@task needs a function to run, got 42 \(int\)"):
        task(42)
    assert issubclass(NotCallableError, TypeError)


def test_a_handler_that_is_not_callable_is_refused_at_definition():
    with pytest.raises(NotCallableError, match=r"state handler must be callable as handler\(obj, old_state, new_state\), got 'notify'"):
        Task(state_handlers=["notify"])
    with pytest.raises(NotCallableError):
        Flow("f", state_handlers=[None])


def test_state_handlers_must_be_a_list():
    with pytest.raises(FlowDefinitionError, match=r"state_handlers must be a list, got <function .*>; write state_handlers=\[...\]"):
        Task(state_handlers=lambda o, a, b: b)


def test_wrong_arguments_to_a_task_are_refused_when_building():
    with Flow("f"):
        with pytest.raises(FlowDefinitionError, match=r"Cannot call <Task: inc> with these arguments: .*unexpected keyword argument 'y'"):
            inc(1, y=2)


def test_a_flow_holds_only_tasks():
    with pytest.raises(FlowDefinitionError, match=r"Flow 'f' can only hold Task objects, got 'job' \(str\)"):
        Flow("f", tasks=["job"])


def test_bad_task_options_are_refused():
    with pytest.raises(FlowDefinitionError, match="max_retries must be an int >= 0"):
        Task(max_retries=-1)
    with pytest.raises(FlowDefinitionError, match="retry_delay must be a timedelta or a number of seconds"):
        Task(retry_delay="soon")
    with pytest.raises(FlowDefinitionError, match="timeout must be a number of seconds > 0"):
        Task(timeout=0)


def test_unknown_and_missing_parameters_are_refused_before_anything_runs():
    ledger = ListLedger()
    with Flow("p") as flow:
        inc(Parameter("x"))
    with pytest.raises(ParameterError, match=r"Flow 'p' has no parameter 'y'; its parameters are: x"):
        flow.run(parameters={"x": 1, "y": 2}, store=ledger)
    with pytest.raises(ParameterError, match=r"Flow 'p' needs parameter 'x'; pass parameters=\{'x': \.\.\.\}"):
        flow.run(store=ledger)
    assert ledger.events == []


def test_an_optional_parameter_may_default_to_none():
    p = Parameter("x", default=None, required=False)
    assert not p.required and Parameter("y").required and not Parameter("z", default=0).required


def test_a_functional_call_copies_the_task_and_keeps_the_original_untouched():
    with Flow("f") as flow:
        a = inc(1)
        b = inc(a)
    assert a is not inc and b is not a and inc not in flow.tasks
    assert flow.upstream_tasks(b) == {a} and flow.constants[a] == {"x": 1}
    assert flow.terminal_tasks() == {b} and flow.reference_tasks() == {b}


def test_sorted_tasks_follow_dependencies_then_insertion_order():
    a, b, c, d = (Task(n) for n in "abcd")
    flow = Flow("f", tasks=[d, c, b, a])
    flow.set_dependencies(d, upstream_tasks=[a])
    assert flow.sorted_tasks() == [c, b, a, d]


def test_the_flow_being_built_is_per_thread_and_nests():
    import threading

    from statemachine.context import current_flow

    seen = []
    with Flow("outer") as outer:
        with Flow("inner") as inner:
            assert current_flow() is inner
            worker = threading.Thread(target=lambda: seen.append(current_flow()))
            worker.start()
            worker.join()
        assert current_flow() is outer
    assert current_flow() is None
    assert seen == [None]
