"""Handlers, signals, LOOP, triggers and raise_on_exception behave as in Prefect 1.4.1."""

import datetime
import logging

import pytest

from statemachine import Flow, Task, signals, task, taskcontext, triggers
from statemachine.states import (
    Failed, Looped, Paused, Pending, Retrying, Running, Success, TriggerFailed, ValidationFailed,
)
from statemachine.testing import ListLedger


def run(flow, **kwargs):
    ledger = ListLedger()
    return flow.run(store=ledger, **kwargs), ledger


def trail(ledger, key):
    return [type(e.new_state).__name__ for e in ledger.events if e.key == key]


# --- a state handler that raises a signal sets that signal's state -------------------------------


def test_a_handler_raising_pause_pauses_the_task_and_ends_its_run():
    def pause_on_start(obj, old, new):
        if new.is_running():
            raise signals.PAUSE("wait for me")

    ran = []

    @task(state_handlers=[pause_on_start])
    def job():
        ran.append(1)

    with Flow("f") as flow:
        t = job()
    state, ledger = run(flow)
    assert type(state.result[t]) is Paused and state.result[t].message == "wait for me"
    assert ran == [] and trail(ledger, "job-1") == ["Paused"]
    assert type(state) is Running  # Prefect 1: a paused reference task leaves the flow unfinished
    event = [e for e in ledger.events if e.key == "job-1"][0]
    assert event.rewritten_by[-1].endswith("pause_on_start") and type(event.proposed_state) is Running


def test_a_handler_raising_retry_retries_the_task():
    """Prefect 1: RETRY from a handler gives Retrying; the task runs again."""
    def retry_once(obj, old, new):
        if new.is_failed() and taskcontext.get("task_run_count") == 1:
            seen.append(new)
            raise signals.RETRY("handler says again")

    seen, calls = [], []

    @task(state_handlers=[retry_once])
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first time")
        return "ok"

    with Flow("f") as flow:
        t = flaky()
    state, ledger = run(flow)
    assert state.result[t] == Success(result="ok") and len(calls) == 2
    assert trail(ledger, "flaky-1") == ["Running", "Retrying", "Running", "Success"]
    retry = [e.new_state for e in ledger.events if isinstance(e.new_state, Retrying)][0]
    assert retry.message == "handler says again" and retry.run_count == 1


def test_a_handler_raising_endrun_sets_exactly_that_state():
    def force(obj, old, new):
        if new.is_failed():
            raise signals.ENDRUN(Success("forced", result=5))

    t = task(lambda: 1 / 0, name="t", state_handlers=[force], max_retries=1, retry_delay=0)
    with Flow("f") as flow:
        a = t()
    state, ledger = run(flow)
    assert repr(state.result[a]) == 'Success("forced")' and state.result[a].result == 5
    assert trail(ledger, "t-1") == ["Running", "Success"] and state.is_successful()


def test_a_handler_signal_is_checked_against_the_legal_graph_like_any_rewrite():
    """Prefect 1 has no legal graph; here Pending -> Success (never ran) is refused."""
    def force(obj, old, new):
        if new.is_running():
            raise signals.ENDRUN(Success("forced"))

    t = Task(state_handlers=[force])
    state, _ = run(Flow("f", tasks=[t]))
    assert type(state.result[t]) is Failed and "Pending -> Success" in state.result[t].message


def test_a_handler_raising_skip_or_fail_sets_that_state_and_the_run_goes_on():
    def skip_on_start(obj, old, new):
        if new.is_running():
            raise signals.SKIP("not today")

    t = Task("t", state_handlers=[skip_on_start])
    state, ledger = run(Flow("f", tasks=[t]))
    assert repr(state.result[t]) == 'Skipped("not today")' and state.is_successful()


def test_a_handler_error_is_logged_at_error_with_its_traceback(caplog):
    def broken(obj, old, new):
        raise KeyError("nope")

    t = Task("t", state_handlers=[broken])
    with caplog.at_level(logging.ERROR, logger="stateledger"):
        state, _ = run(Flow("f", tasks=[t]))
    assert type(state.result[t]) is Failed and isinstance(state.result[t].result, KeyError)
    records = [r for r in caplog.records if "broken" in r.getMessage()]
    assert records and records[0].levelno == logging.ERROR and records[0].exc_info[0] is KeyError


def test_terminal_state_handler_sees_the_final_state_and_reference_states_and_may_rewrite():
    """Prefect 1 calls it as handler(flow, state, reference_task_states: set)."""
    seen = []

    def forgive(flow, state, reference_states):
        seen.append((flow, state, reference_states))
        return Success("forgiven", result=state.result)

    @task
    def bad():
        raise ValueError("bad")

    with Flow("f", terminal_state_handler=forgive) as flow:
        ok, b = Task("ok")(), bad()
    state, ledger = run(flow)
    assert repr(state) == 'Success("forgiven")' and state.result[b].is_failed()
    f, final, refs = seen[0]
    assert f is flow and repr(final) == 'Failed("Some reference tasks failed.")' and isinstance(refs, set)
    assert {type(s) for s in refs} == {Success, Failed}
    assert repr(ledger.events[-1].new_state) == 'Success("forgiven")'


def test_terminal_state_handler_returning_none_keeps_the_state():
    flow = Flow("f", tasks=[Task()], terminal_state_handler=lambda f, s, r: None)
    state, _ = run(flow)
    assert repr(state) == 'Success("All reference tasks succeeded.")'


# --- signals ----------------------------------------------------------------------------------------


def test_signals_carry_their_state_and_accept_its_fields():
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    retry = signals.RETRY("later", start_time=when)
    assert type(retry.state) is Retrying and retry.state.start_time == when and retry.state.result is retry
    assert signals.SUCCESS(result=42).state.result == 42
    assert signals.PAUSE("p").state.start_time is None
    assert type(signals.VALIDATIONFAIL("v").state) is ValidationFailed
    assert not isinstance(signals.RETRY(), signals.FAIL) and not isinstance(signals.SKIP(), signals.SUCCESS)


def test_signal_from_state_names_the_signal_class():
    assert signals.signal_from_state(Paused()) is signals.PAUSE
    assert signals.signal_from_state(ValidationFailed()) is signals.VALIDATIONFAIL
    assert signals.signal_from_state(Looped()) is signals.LOOP
    with pytest.raises(ValueError, match="No signal matches the provided state: Running()"):
        signals.signal_from_state(Running())


def test_success_with_a_result_and_validationfail_from_a_task_body():
    @task
    def answer():
        raise signals.SUCCESS("found it", result=42)

    @task
    def check():
        raise signals.VALIDATIONFAIL("does not validate")

    with Flow("f") as flow:
        a, c = answer(), check()
    state, _ = run(flow)
    assert repr(state.result[a]) == 'Success("found it")' and state.result[a].result == 42
    assert type(state.result[c]) is ValidationFailed and state.result[c].is_failed()


def test_endrun_with_a_pending_state_from_a_task_body_leaves_the_task_pending():
    """Prefect 1 accepts it (its flow runner then waits); here the flow is left Running."""
    @task
    def later():
        raise signals.ENDRUN(Pending("later"))

    with Flow("f") as flow:
        t = later()
    state, ledger = run(flow)
    assert repr(state.result[t]) == 'Pending("later")' and type(state) is Running
    assert trail(ledger, "later-1") == ["Running", "Pending"]


def test_endrun_with_a_state_a_running_task_cannot_reach_fails_clearly():
    @task
    def odd():
        raise signals.ENDRUN(Running("again"))

    with Flow("f") as flow:
        t = odd()
    state, _ = run(flow)
    assert type(state.result[t]) is Failed
    assert "ended its run with ENDRUN(Running(\"again\"))" in state.result[t].message


# --- LOOP -------------------------------------------------------------------------------------------


def test_loop_runs_the_task_again_with_the_loop_result():
    """Prefect 1's LOOP docstring example, and its transitions."""
    seen = []

    @task(state_handlers=[lambda t, old, new: seen.append((type(old).__name__, type(new).__name__))])
    def accumulate(x):
        current = taskcontext.get("task_loop_result", x)
        if current < 20:
            raise signals.LOOP(result=current + 5)
        return current

    with Flow("looper") as flow:
        out = accumulate(5)
    state, ledger = run(flow)
    assert state.result[out] == Success(result=20)
    looped = [e.new_state for e in ledger.events if isinstance(e.new_state, Looped)]
    assert [(s.loop_count, s.result, s.message) for s in looped] == [
        (1, 10, "Task is looping (1)"), (2, 15, "Task is looping (2)"), (3, 20, "Task is looping (3)")]
    assert trail(ledger, "accumulate-1") == ["Running", "Looped", "Pending"] * 3 + ["Running", "Success"]
    assert [e.attempt for e in ledger.events if e.key == "accumulate-1"] == [1] * 11
    pending = [e.new_state for e in ledger.events if isinstance(e.new_state, Pending)]
    assert pending[0].message == "Looping task (on loop index 1)"


def test_loop_count_and_a_loop_without_result():
    """Prefect 1: LOOP() stores its repr "LOOP()" as the loop result."""
    results = []

    @task
    def count():
        results.append(taskcontext.get("task_loop_result"))
        n = taskcontext.get("task_loop_count", 1)
        if n < 3:
            raise signals.LOOP()
        return n

    with Flow("f") as flow:
        t = count()
    state, _ = run(flow)
    assert state.result[t].result == 3 and results == [None, "LOOP()", "LOOP()"]


# --- triggers ---------------------------------------------------------------------------------------


def upstreams(*outcomes):
    """Tasks ending as given: 's' success, 'f' failure, 'k' skipped."""
    made = []
    for i, outcome in enumerate(outcomes):
        def body(outcome=outcome):
            if outcome == "f":
                raise ValueError("f")
            if outcome == "k":
                raise signals.SKIP("k")
        made.append(task(body, name=f"u{i}"))
    return made


@pytest.mark.parametrize("trigger,outcomes,runs", [
    (triggers.some_failed(at_least=1), "sf", True),
    (triggers.some_failed(at_least=2), "sf", False),
    (triggers.some_failed(at_most=0.5), "sff", False),
    (triggers.some_failed(at_least=0.5, at_most=0.7), "sff", True),
    (triggers.some_successful(at_least=2), "ssf", True),
    (triggers.some_successful(at_most=1), "ssf", False),
    (triggers.some_successful(), "fff", True),
])
def test_some_failed_and_some_successful_count_upstream_states(trigger, outcomes, runs):
    with Flow("f") as flow:
        ups = [u() for u in upstreams(*outcomes)]
        t = Task("t", trigger=trigger, skip_on_upstream_skip=False)(upstream_tasks=ups)
    state, _ = run(flow)
    if runs:
        assert state.result[t].is_successful()
    else:
        assert type(state.result[t]) is TriggerFailed
        assert "thresholds were not met" in state.result[t].message


def test_not_all_skipped_skips_when_every_upstream_skipped():
    with Flow("f") as flow:
        ups = [u() for u in upstreams("k", "k")]
        t = Task("t", trigger=triggers.not_all_skipped, skip_on_upstream_skip=False)(upstream_tasks=ups)
        ups2 = [u() for u in upstreams("k", "s")]
        t2 = Task("t2", trigger=triggers.not_all_skipped, skip_on_upstream_skip=False)(upstream_tasks=ups2)
    state, _ = run(flow)
    assert repr(state.result[t]) == 'Skipped("All upstreams were skipped")' and state.result[t].result is None
    assert repr(state.result[t2]) == 'Success("Task run succeeded.")'


def test_manual_only_pauses_a_root_task_without_prompting():
    ran = []
    t = task(lambda: ran.append(1), name="approve", trigger=triggers.manual_only)
    with Flow("f") as flow:
        a = t()
    state, ledger = run(flow)
    assert repr(state.result[a]) == 'Paused("Trigger function is "manual_only"")' and ran == []
    assert trail(ledger, "approve-1") == ["Paused"] and not state.is_successful()


def test_a_trigger_returning_false_fails_the_task():
    t = Task("t", trigger=lambda upstream: False)
    state, _ = run(Flow("f", tasks=[t]))
    assert repr(state.result[t]) == 'TriggerFailed("Trigger failed")'


# --- raise_on_exception -----------------------------------------------------------------------------


def test_raise_on_exception_raises_the_first_task_error_after_recording_it():
    @task
    def bad():
        raise ValueError("bad")

    with Flow("f") as flow:
        bad()
    ledger = ListLedger()
    with taskcontext.context(raise_on_exception=True):
        with pytest.raises(ValueError, match="bad"):
            flow.run(store=ledger)
    assert [(e.kind, type(e.new_state).__name__) for e in ledger.events] == [
        ("flow", "Running"), ("task", "Running"), ("task", "Failed"), ("flow", "Failed")]
    assert ledger.events[-1].new_state.message == "Unexpected error while running flow: ValueError('bad')"


def test_raise_on_exception_leaves_signals_alone():
    """Prefect 1.4.1: a FAIL raised in a task (or TRIGGERFAIL) still ends in a state, not an exception."""
    @task
    def nope():
        raise signals.FAIL("nope")

    with Flow("f") as flow:
        t = nope()
    with taskcontext.context(raise_on_exception=True):
        state, _ = run(flow)
    assert repr(state.result[t]) == 'Failed("nope")'


def test_raise_on_exception_raises_a_handler_error():
    def broken(obj, old, new):
        raise KeyError("handler")

    with taskcontext.context(raise_on_exception=True):
        with pytest.raises(KeyError, match="handler"):
            run(Flow("f", tasks=[Task(state_handlers=[broken])]))


def test_without_raise_on_exception_nothing_raises():
    @task
    def bad():
        raise ValueError("bad")

    with Flow("f") as flow:
        t = bad()
    state, _ = run(flow)
    assert state.result[t].is_failed() and taskcontext.get("raise_on_exception") is None


def test_loop_on_every_executor(executor):
    @task
    def countdown(n):
        left = taskcontext.get("task_loop_result", n) if executor_kind != "dask" else n
        if left > 0 and executor_kind != "dask":
            raise signals.LOOP(result=left - 1)
        return left

    executor_kind = {"LocalExecutor": "local", "ThreadExecutor": "threads"}.get(type(executor).__name__, "dask")

    @task
    def loop_twice():
        raise signals.LOOP(result="again") if not seen else signals.SUCCESS(result=len(seen))

    seen = []

    def note(t, old, new):
        if isinstance(new, Looped):
            seen.append(new.loop_count)

    with Flow("f") as flow:
        c = countdown(3)
        two = loop_twice.copy(state_handlers=[note])()
    state, ledger = run_on(flow, executor)
    assert state.result[c].result == (0 if executor_kind != "dask" else 3)
    assert seen == [1] and state.result[two].result == 1
    looped = [e for e in ledger.events if e.key == "loop_twice-1"]
    assert [type(e.new_state).__name__ for e in looped] == ["Running", "Looped", "Pending", "Running", "Success"]


def run_on(flow, executor):
    ledger = ListLedger()
    return flow.run(store=ledger, executor=executor), ledger
