"""subscribe(): filtered post-commit listeners; add_state_handler(): global pre-commit handlers."""

from __future__ import annotations

import gc

import pytest

from statemachine import Flow, task
from statemachine.errors import NotCallableError, StateLedgerError
from statemachine.filters import EventFilter, FilterError
from statemachine.states import Failed, Finished, Running, Skipped, Success, TriggerFailed
from statemachine.testing import ListLedger
from state_checks import exact
from subscribers import add_state_handler, subscribe
from subscribers.bus import transition


@pytest.fixture(autouse=True)
def no_leftover_listeners():
    yield
    assert not transition.receivers, "a test left a listener subscribed"


def keys(events):
    return [(e.kind, e.key, type(e.new_state).__name__) for e in events]


def test_a_listener_sees_every_committed_event_until_disconnected(failing_flow):
    seen = []
    handle = subscribe(seen.append)
    ledger = ListLedger()
    failing_flow("sub", after=True).run(store=ledger)
    handle.disconnect()
    failing_flow("sub", after=True).run(store=ListLedger())
    assert seen == ledger.events
    assert not handle.connected


def test_states_filter_matches_subclasses(failing_flow):
    seen = []
    with subscribe(seen.append, states=[Failed]):
        failing_flow("sub", after=True).run(store=ListLedger())
    assert keys(seen) == [
        ("task", "bad-1", "Failed"),
        ("task", "after-1", "TriggerFailed"),
        ("flow", "sub", "Failed"),
    ]


def test_task_filter_takes_a_name_or_a_key_and_kinds_filter_by_kind(failing_flow):
    by_name, by_key, flows = [], [], []
    handles = [
        subscribe(by_name.append, task="bad"),
        subscribe(by_key.append, task=["ok-1"], states=Success),
        subscribe(flows.append, kinds="flow"),
    ]
    failing_flow("sub", after=True).run(store=ListLedger())
    for h in handles:
        h.disconnect()
    assert keys(by_name) == [("task", "bad-1", "Running"), ("task", "bad-1", "Failed")]
    assert keys(by_key) == [("task", "ok-1", "Success")]
    assert keys(flows) == [("flow", "sub", "Running"), ("flow", "sub", "Failed")]


def test_flow_filter_takes_the_flow_name_for_task_and_flow_events(failing_flow):
    seen = []
    with subscribe(seen.append, flow="wanted", states=[Finished]):
        failing_flow("other", after=True).run(store=ListLedger())
        failing_flow("wanted", after=True).run(store=ListLedger())
    assert {e.flow for e in seen} == {"wanted"}
    assert len(seen) == 4


def test_subscribe_as_a_decorator_keeps_the_function_callable(failing_flow):
    seen = []

    @subscribe(states=[TriggerFailed])
    def alert(event):
        seen.append(event.key)
        return "called"

    failing_flow("sub", after=True).run(store=ListLedger())
    alert.disconnect()
    assert seen == ["after-1"]
    assert alert(type("E", (), {"key": "direct"})) == "called" and alert.__name__ == "alert"
    assert seen == ["after-1", "direct"]


def test_a_lambda_stays_subscribed_until_disconnected(failing_flow):
    seen = []
    handle = subscribe(lambda event: seen.append(event.key), kinds="flow")
    gc.collect()
    failing_flow("sub", after=True).run(store=ListLedger())
    handle.disconnect()
    handle.disconnect()  # twice is harmless
    failing_flow("sub", after=True).run(store=ListLedger())
    assert seen == ["sub", "sub"]


def test_a_raising_listener_does_not_stop_other_subscribers(failing_flow):
    seen = []

    def broken(event):
        raise ValueError("nope")

    with subscribe(broken), subscribe(seen.append, kinds="flow"):
        state = failing_flow("sub", after=True).run(store=ListLedger())
    assert isinstance(state, Failed) and state.message == "Some reference tasks failed."
    assert len(seen) == 2


def test_a_listener_that_is_not_callable_is_refused():
    with pytest.raises(NotCallableError, match="listener"):
        subscribe("print")
    with pytest.raises(NotCallableError, match="got None"):
        subscribe(None, states=[Failed])
    with pytest.raises(NotCallableError):
        subscribe(states=[Failed])(42)


@pytest.mark.parametrize("bad", [int, "Failed", Failed(), [Success, dict], 3])
def test_a_states_filter_that_is_not_a_state_class_is_refused(bad):
    with pytest.raises(FilterError, match="State classes") as info:
        subscribe(print, states=bad)
    assert isinstance(info.value, StateLedgerError) and isinstance(info.value, TypeError)


def test_bad_kinds_and_names_are_refused():
    with pytest.raises(FilterError, match="'task' and/or 'flow'"):
        subscribe(print, kinds="tasks")
    with pytest.raises(FilterError, match="names"):
        subscribe(print, task=[1, 2])


def test_the_string_of_a_state_name_gets_a_hint():
    with pytest.raises(FilterError, match="from statemachine.states import Failed"):
        EventFilter(states=["Failed"])


def test_filter_descriptions_do_not_depend_on_order_and_round_trip():
    a = EventFilter(flow=["b", "a"], task="x", states=[Success, Failed], kinds=["task", "flow"])
    b = EventFilter(flow=["a", "b"], task=["x"], states=[Failed, Success], kinds=["flow", "task"])
    assert a.to_dict() == b.to_dict() and a == b
    assert EventFilter.from_dict(a.to_dict()) == a
    assert EventFilter().is_empty and EventFilter().to_dict() == {"flow": None, "task": None, "states": None, "kinds": None}


# --- global state handlers ------------------------------------------------------


def test_a_global_handler_runs_after_the_objects_own_handlers_and_may_rewrite():
    calls = []

    def own(obj, old, new):
        calls.append(("own", type(new).__name__))

    def forgive(obj, old, new):
        calls.append(("global", type(new).__name__))
        if isinstance(new, Failed) and getattr(obj, "name", "") == "bad":
            return Success("forgiven")
        return None

    @task(state_handlers=[own])
    def bad():
        raise KeyError("x")

    flow = Flow("g", tasks=[bad])
    ledger = ListLedger()
    handle = add_state_handler(forgive, kinds=["task"])
    try:
        state = flow.run(store=ledger)
    finally:
        handle.remove()
    assert isinstance(state, Success)
    assert calls == [("own", "Running"), ("global", "Running"), ("own", "Failed"), ("global", "Failed")]
    last = ledger.events[-2]
    assert last.key == "bad-1" and exact(last.new_state) == Success("forgiven")
    assert isinstance(last.proposed_state, Failed)
    assert last.rewritten_by == (f"{__name__}.test_a_global_handler_runs_after_the_objects_own_handlers_and_may_rewrite.<locals>.forgive",)


def test_a_raising_global_handler_fails_the_object_and_remove_takes_it_out(failing_flow):
    def boom(obj, old, new):
        raise RuntimeError("global handler bug")

    handle = add_state_handler(boom, kinds="flow")
    try:
        state = failing_flow("sub", after=True).run(store=ListLedger())
    finally:
        handle.remove()
    assert isinstance(state, Failed) and "boom" in state.message and "global handler bug" in state.message
    handle.remove()  # twice is harmless
    assert isinstance(failing_flow("sub", after=True).run(store=ListLedger()), Failed)
    ok_state = Flow("plain", tasks=[task(lambda: 1)]).run(store=ListLedger())
    assert isinstance(ok_state, Success)


def test_removing_one_of_two_registrations_of_a_handler_keeps_the_other():
    seen = []

    def note(obj, old, new):
        seen.append(type(new).__name__)

    first = add_state_handler(note, kinds="flow")
    second = add_state_handler(note, kinds="flow")
    first.remove()
    try:
        Flow("plain", tasks=[task(lambda: 1)]).run(store=ListLedger())
    finally:
        second.remove()
    assert seen == ["Running", "Success"]


def test_a_global_handler_that_is_not_callable_is_refused():
    with pytest.raises(NotCallableError):
        add_state_handler(None)
    with pytest.raises(FilterError):
        add_state_handler(print, kinds=["job"])


def test_skipped_is_a_success_for_filters():
    assert EventFilter(states=[Success]).matches(
        type("E", (), {"kind": "task", "new_state": Skipped(), "name": "a", "key": "a-1", "flow": "f"})()
    )
    assert not EventFilter(states=[Running]).matches(
        type("E", (), {"kind": "task", "new_state": Skipped(), "name": "a", "key": "a-1", "flow": "f"})()
    )
