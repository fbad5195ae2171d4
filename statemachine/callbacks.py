"""Build state handlers from smaller pieces: an action and a check.

``callback_factory(fn, check)`` is Prefect 1's helper; ``on_failure=fn`` on a
Task or Flow is ``callback_factory(fn, lambda s: s.is_failed())``. It lives in
the core so Task and Flow can use it without importing the bus; the
``subscribers`` package re-exports it.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import NotCallableError
from .states import State

__all__ = ["callback_factory", "check_handler"]


def check_handler(handler: Any, what: str = "state handler") -> Any:
    """Return ``handler`` if callable, else raise a clear ``NotCallableError``."""
    if not callable(handler):
        raise NotCallableError(
            f"{what} must be callable as handler(obj, old_state, new_state), got {handler!r} "
            f"({type(handler).__name__})"
            if what == "state handler"
            else f"{what} must be callable, got {handler!r} ({type(handler).__name__})"
        )
    return handler


def callback_factory(
    fn: Callable[[Any, State], None], check: Callable[[State], bool]
) -> Callable[[Any, State, State], State]:
    """A state handler that calls ``fn(obj, new_state)`` when ``check(new_state)`` is true.

    The handler returns the new state unchanged.
    """
    check_handler(fn, "callback_factory's fn(obj, state)")
    check_handler(check, "callback_factory's check(state)")

    def state_handler(obj: Any, old_state: State, new_state: State) -> State:
        if check(new_state):
            fn(obj, new_state)
        return new_state

    state_handler.__qualname__ = getattr(fn, "__qualname__", state_handler.__qualname__)
    state_handler.__module__ = getattr(fn, "__module__", state_handler.__module__)
    return state_handler
