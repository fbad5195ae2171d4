"""The bus: blinker signals fired after commit, in connection order, each receiver isolated."""

from __future__ import annotations

import gc
import logging

import pytest

from statemachine import Flow, task
from statemachine.states import Failed, Running, Success
from statemachine.testing import ListLedger
from subscribers.bus import BUS, flow_transition, signals, task_transition, transition


@pytest.fixture
def connect():
    """Connect receivers for one test; everything is disconnected afterwards."""
    made = []

    def _connect(signal, receiver, **kwargs):
        kwargs.setdefault("weak", False)
        signal.connect(receiver, **kwargs)
        made.append((signal, receiver))
        return receiver

    yield _connect
    for signal, receiver in made:
        signal.disconnect(receiver)


def two_task_flow(name="bus"):
    @task
    def first():
        return 1

    @task
    def second(x):
        return x + 1

    with Flow(name) as flow:
        second(first())
    return flow


def test_signals_are_declared_once_in_one_namespace_with_docs():
    assert signals["transition"] is transition
    assert signals["task-transition"] is task_transition
    assert signals["flow-transition"] is flow_transition
    assert all(s.__doc__ for s in (transition, task_transition, flow_transition))


def test_every_committed_transition_reaches_the_transition_signal_with_the_committed_event(connect):
    ledger = ListLedger()
    seen = []
    connect(transition, lambda sender, event: seen.append((sender, event)))
    flow = two_task_flow()
    flow.run(store=ledger)
    assert [e for _, e in seen] == ledger.events
    assert all(e.seq is not None for _, e in seen)  # the ledger already committed it
    senders = [s for s, _ in seen]
    assert senders[0] is flow and senders[-1] is flow
    assert {repr(s) for s in senders[1:-1]} == {"<Task: first>", "<Task: second>"}


def test_a_listener_runs_after_the_commit(connect):
    ledger = ListLedger()
    committed_before_listener = []
    connect(transition, lambda sender, event: committed_before_listener.append(event in ledger.events))
    two_task_flow().run(store=ledger)
    assert committed_before_listener and all(committed_before_listener)


def test_kind_signals_only_carry_their_kind(connect):
    tasks, flows = [], []
    connect(task_transition, lambda sender, event: tasks.append(event.kind))
    connect(flow_transition, lambda sender, event: flows.append(event.kind))
    two_task_flow().run(store=ListLedger())
    assert tasks == ["task"] * 4
    assert flows == ["flow"] * 2


def test_connecting_for_one_sender_the_blinker_way_sees_only_that_task(connect):
    flow = two_task_flow()
    first = next(t for t in flow.tasks if t.name == "first")
    seen = []
    connect(transition, lambda sender, event: seen.append((sender, event.key)), sender=first)
    flow.run(store=ListLedger())
    assert seen == [(first, "first-1"), (first, "first-1")]


def test_connect_via_a_flow_sees_only_that_flows_transitions():
    flow, other = two_task_flow("mine"), two_task_flow("other")
    seen = []

    @flow_transition.connect_via(flow)  # blinker's decorator: a strong reference
    def on_flow(sender, event):
        seen.append((sender.name, type(event.new_state).__name__))

    try:
        other.run(store=ListLedger())
        flow.run(store=ListLedger())
    finally:
        flow_transition.disconnect(on_flow)
    assert seen == [("mine", "Running"), ("mine", "Success")]


def test_receivers_run_in_connection_order_across_signals(connect):
    order = []
    for i in range(12):
        signal = task_transition if i % 3 == 0 else transition
        connect(signal, lambda sender, event, i=i: order.append(i) if event.key == "first-1" else None)
    flow = two_task_flow()
    first = next(t for t in flow.tasks if t.name == "first")
    connect(transition, lambda sender, event: order.append("per-sender"), sender=first)
    flow.run(store=ListLedger())
    expected = [*range(12), "per-sender"]
    assert order == expected * 2


def test_a_receiver_that_reconnects_goes_last(connect):
    order = []
    a = connect(transition, lambda sender, event: order.append("a"))
    connect(transition, lambda sender, event: order.append("b"))
    transition.disconnect(a)
    transition.connect(a, weak=False)
    BUS.publish(_fake_event(), sender=None)
    assert order == ["b", "a"]


def test_a_raising_listener_is_logged_and_neither_fails_the_run_nor_silences_others(connect, caplog):
    after = []

    def broken(sender, event):
        raise RuntimeError("listener bug")

    connect(transition, broken)
    connect(transition, lambda sender, event: after.append(event.key))
    with caplog.at_level(logging.ERROR, logger="stateledger"):
        state = two_task_flow().run(store=ListLedger())
    assert isinstance(state, Success)
    assert len(after) == 6
    errors = [r for r in caplog.records if r.name == "stateledger" and "listener" in r.getMessage()]
    assert len(errors) == 6
    assert "broken" in errors[0].getMessage() and errors[0].exc_info[0] is RuntimeError


def test_a_listener_cannot_change_the_state(connect):
    connect(transition, lambda sender, event: Failed("listener says no"))
    ledger = ListLedger()
    state = two_task_flow().run(store=ledger)
    assert isinstance(state, Success)
    assert all(not isinstance(e.new_state, Failed) for e in ledger.events)


def test_blinker_drops_a_weakly_connected_lambda_and_keeps_a_strong_one():
    seen = []
    transition.connect(lambda sender, event: seen.append("weak"))  # blinker default: weak
    strong = lambda sender, event: seen.append("strong")  # noqa: E731
    transition.connect(strong, weak=False)
    try:
        gc.collect()
        BUS.publish(_fake_event(), sender=None)
    finally:
        transition.disconnect(strong)
    assert seen == ["strong"]


def test_a_weakly_connected_method_is_called_while_its_object_lives():
    seen = []

    class Watcher:
        def on_event(self, sender, event):
            seen.append(event.key)

    watcher = Watcher()
    transition.connect(watcher.on_event)
    BUS.publish(_fake_event(), sender=None)
    del watcher
    gc.collect()
    BUS.publish(_fake_event(), sender=None)
    assert seen == ["x-1"]
    assert not transition.receivers


def test_publish_after_the_last_listener_went_calls_nothing():
    seen = []
    receiver = lambda sender, event: seen.append(event.key)  # noqa: E731
    transition.connect(receiver, weak=False)
    BUS.publish(_fake_event(), sender=object())
    transition.disconnect(receiver)
    assert not transition.receivers and not task_transition.receivers
    BUS.publish(_fake_event(), sender=object())
    assert seen == ["x-1"]


def test_blinkers_own_send_calls_receivers_in_connection_order(connect):
    """``set_class`` makes each signal's receivers an ordered set: ``send()`` keeps order too."""
    order = []
    for i in range(20):
        connect(transition, lambda sender, event, i=i: order.append(i))
    transition.send(None, event=_fake_event())
    assert order == list(range(20))


def test_the_bus_uses_blinkers_public_api_only():
    import ast
    import inspect

    import subscribers.bus as bus

    tree = ast.parse(inspect.getsource(bus))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "blinker._utilities" not in imported and "blinker.base" not in imported
    private = {
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
    }
    assert not private & {"_disconnect", "_clear_state", "_by_sender", "_by_receiver", "_weak_senders"}
    for name in ("_disconnect", "_clear_state", "_cleanup_bookkeeping"):
        assert name not in vars(type(transition))


def _fake_event():
    from statemachine.events import Event
    from statemachine.states import Pending, utcnow

    return Event("run", utcnow(), "task", "x", "x-1", 1, Pending(), Running(), seq=1, flow="f")


def test_a_receiver_blinker_cannot_reference_weakly_is_refused_and_leaves_nothing_behind():
    class NoWeakref:
        __slots__ = ()

        def __call__(self, sender, event):
            pass

    before = dict(transition.order)
    with pytest.raises(TypeError):
        transition.connect(NoWeakref())
    assert transition.order == before and not transition.receivers
