"""``subscribe()``: post-commit listeners with filters, and global state handlers."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from statemachine.callbacks import check_handler
from statemachine.states import State

from .bus import BUS, transition

__all__ = ["subscribe", "add_state_handler", "Subscription", "HandlerHandle", "EventFilter"]

KINDS = ("task", "flow")


class EventFilter:
    """Which events a listener wants: by flow name, task name or key, state class, kind."""

    def __init__(self, *, flow: Any = None, task: Any = None, states: Any = None, kinds: Any = None) -> None:
        self.flows = _names(flow, "flow")
        self.tasks = _names(task, "task")
        self.states = _state_classes(states)
        self.kinds = _kinds(kinds)

    def matches(self, event: Any) -> bool:
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.states is not None and not isinstance(event.new_state, self.states):
            return False
        if self.tasks is not None and (event.kind != "task" or (event.name not in self.tasks and event.key not in self.tasks)):
            return False
        if self.flows is not None:
            if event.flow not in self.flows:
                return False
        return True


class Subscription:
    """A connected listener; ``disconnect()`` stops it."""

    def __init__(self, listener: Callable[[Any], Any], event_filter: EventFilter) -> None:
        self.listener = listener
        self.filter = event_filter
        self.connected = True

    def __call__(self, sender: Any, event: Any = None, **_: Any) -> None:
        if self.filter.matches(event):
            self.listener(event)

    def disconnect(self) -> None:
        transition.disconnect(self)
        self.connected = False


def subscribe(
    listener: Callable[[Any], Any] | None = None,
    *,
    flow: Any = None,
    task: Any = None,
    states: Any = None,
    kinds: Any = None,
) -> Any:
    """Call ``listener(event)`` after each committed transition that matches the filters."""
    event_filter = EventFilter(flow=flow, task=task, states=states, kinds=kinds)
    if listener is None:  # used as @subscribe(...)
        return lambda fn: _connect(fn, event_filter)
    return _connect(listener, event_filter)


def _connect(listener: Callable[[Any], Any], event_filter: EventFilter) -> Subscription:
    check_handler(listener, "listener(event)")
    sub = Subscription(listener, event_filter)
    transition.connect(sub, weak=False)
    return sub


class HandlerHandle:
    """A global state handler; ``remove()`` takes it out."""

    def __init__(self, handler: Callable[..., Any], kinds: tuple[str, ...]) -> None:
        self.handler, self.kinds = handler, kinds

    def remove(self) -> None:
        for kind in self.kinds:
            lst = BUS.global_handlers()[kind]
            if self.handler in lst:
                lst.remove(self.handler)  # type: ignore[attr-defined]


def add_state_handler(handler: Callable[..., Any], *, kinds: Any = None) -> HandlerHandle:
    """Run ``handler(obj, old, new)`` pre-commit on every task/flow, after its own handlers."""
    check_handler(handler)
    chosen = _kinds(kinds) or KINDS
    for kind in chosen:
        BUS.global_handlers()[kind].append(handler)  # type: ignore[attr-defined]
    return HandlerHandle(handler, tuple(chosen))


def _names(value: Any, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset([value])
    if hasattr(value, "name") and isinstance(getattr(value, "name"), str):
        return frozenset([value.name])
    return frozenset(getattr(v, "name", v) for v in value)


def _state_classes(states: Any) -> tuple[type, ...] | None:
    if states is None:
        return None
    if isinstance(states, type):
        states = [states]
    classes = tuple(states)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, State)):
            raise TypeError(f"states= must list State classes (e.g. Failed), got {cls!r}")
    return classes


def _kinds(kinds: Any) -> tuple[str, ...] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    kinds = tuple(kinds)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"kinds= takes 'task' and/or 'flow', got {k!r}")
    return kinds
