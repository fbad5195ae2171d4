"""``subscribe()``: post-commit listeners with filters, and global state handlers."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from statemachine.callbacks import check_handler
from statemachine.filters import KINDS, EventFilter, parse_kinds

from .bus import BUS, transition

__all__ = ["subscribe", "add_state_handler", "Subscription", "HandlerHandle"]


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
    chosen = parse_kinds(kinds) or KINDS
    for kind in chosen:
        BUS.global_handlers()[kind].append(handler)  # type: ignore[attr-defined]
    return HandlerHandle(handler, tuple(chosen))
