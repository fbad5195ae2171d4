"""``subscribe()``: post-commit listeners with filters; ``add_state_handler()``:
global pre-commit handlers.

A listener is ``listener(event)``: it runs after the event committed, sees the
committed ``Event`` and cannot change anything (its return value is ignored,
its exceptions are logged). A global state handler is
``handler(obj, old_state, new_state) -> State | None``: it runs before the
commit, after each object's own handlers, and may rewrite the state; its
registry lives in ``statemachine.handlers`` (the pipeline reads it before the
commit) and is re-exported here under its public name.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from statemachine.handlers import HandlerHandle, add_state_handler, check_handler
from statemachine.filters import EventFilter

from .bus import transition

__all__ = ["subscribe", "add_state_handler", "Subscription", "HandlerHandle"]

Listener = Callable[[Any], Any]
F = TypeVar("F", bound=Callable[..., Any])


class _Receiver:
    """What is connected to the ``transition`` signal: the filter, then the listener."""

    __slots__ = ("listener", "filter", "__weakref__")

    def __init__(self, listener: Listener, event_filter: EventFilter | None) -> None:
        self.listener = listener
        self.filter = event_filter

    def __call__(self, sender: Any, event: Any = None, **_: Any) -> None:
        if self.filter is None or self.filter.matches(event):
            self.listener(event)

    def __repr__(self) -> str:
        return f"<listener {getattr(self.listener, '__qualname__', self.listener)!r}>"


class Subscription:
    """A connected listener: ``disconnect()`` stops it (also usable as ``with subscribe(...):``).

    Calling the subscription calls the listener itself, so a function decorated
    with ``@subscribe(...)`` can still be called directly.
    """

    def __init__(self, listener: Listener, event_filter: EventFilter) -> None:
        self.listener = listener
        self.filter = event_filter
        self._receiver = _Receiver(listener, None if event_filter.is_empty else event_filter)
        functools.update_wrapper(self, listener, updated=())  # type: ignore[arg-type]
        transition.connect(self._receiver, weak=False)  # strong: a lambda stays subscribed

    @property
    def connected(self) -> bool:
        """True until ``disconnect()``."""
        return self._receiver is not None

    def disconnect(self) -> None:
        """Stop calling the listener (calling it twice is harmless)."""
        if self._receiver is not None:
            transition.disconnect(self._receiver)
            self._receiver = None  # type: ignore[assignment]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.listener(*args, **kwargs)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<Subscription {getattr(self.listener, '__qualname__', self.listener)!r} {self.filter!r} {state}>"


_AS_DECORATOR: Any = object()


def subscribe(
    listener: Listener = _AS_DECORATOR,
    *,
    flow: Any = None,
    task: Any = None,
    states: Any = None,
    kinds: Any = None,
) -> Any:
    """Call ``listener(event)`` after each committed transition that matches the filters.

    ``flow``: flow name(s); ``task``: task name(s) or key(s) (``"load"``,
    ``"load-1"``); ``states``: State classes, subclasses included; ``kinds``:
    ``"task"`` and/or ``"flow"``. Returns a ``Subscription`` with
    ``disconnect()``. Without ``listener`` it is a decorator::

        @subscribe(states=[Failed])
        def alert(event): ...
        alert.disconnect()
    """
    event_filter = EventFilter(flow=flow, task=task, states=states, kinds=kinds)
    if listener is _AS_DECORATOR:
        return functools.partial(_connect, event_filter=event_filter)
    return _connect(listener, event_filter)


def _connect(listener: Listener, event_filter: EventFilter) -> Subscription:
    check_handler(listener, "listener(event)")
    return Subscription(listener, event_filter)
