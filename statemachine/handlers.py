"""State handlers: their type, the helpers that build them, and the global registry.

A state handler is ``handler(obj, old_state, new_state) -> State | None``; it
runs before the commit and may rewrite the state (see ``pipeline``). Each Task
and Flow has its own; ``add_state_handler`` adds one that runs on every task
and flow after their own. The registry lives here, in the core, because the
pipeline reads it before the commit; ``subscribers`` re-exports
``add_state_handler`` and ``callback_factory`` as their public names.

``callback_factory(fn, check)`` is Prefect 1's helper; ``on_failure=fn`` on a
Task or Flow is ``callback_factory(fn, lambda s: s.is_failed())``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from .errors import NotCallableError
from .filters import KINDS, parse_kinds
from .states import State

__all__ = [
    "StateHandler",
    "callback_factory",
    "check_handler",
    "add_state_handler",
    "HandlerHandle",
    "global_handlers",
]

StateHandler = Callable[[Any, State, State], Optional[State]]

#: kind ("task" | "flow") -> global handlers, in the order added (live lists).
_GLOBAL: dict[str, list[StateHandler]] = {kind: [] for kind in KINDS}


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


def global_handlers() -> dict[str, Sequence[StateHandler]]:
    """The global state handlers by kind (live lists, in the order added)."""
    return _GLOBAL


class HandlerHandle:
    """A global state handler: ``remove()`` takes it out (also usable as a ``with`` block)."""

    def __init__(self, handler: StateHandler, kinds: tuple[str, ...]) -> None:
        self.handler, self.kinds = handler, kinds
        self.active = True

    def remove(self) -> None:
        """Stop calling the handler (calling it twice is harmless)."""
        if not self.active:
            return
        self.active = False
        for kind in self.kinds:
            handlers = _GLOBAL[kind]
            for i, h in enumerate(handlers):
                if h is self.handler:
                    del handlers[i]
                    break

    def __enter__(self) -> HandlerHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<HandlerHandle {getattr(self.handler, '__qualname__', self.handler)!r} kinds={list(self.kinds)}>"


def add_state_handler(handler: StateHandler, *, kinds: Any = None) -> HandlerHandle:
    """Run ``handler(obj, old_state, new_state)`` pre-commit on every task and flow
    (or only ``kinds``), after the object's own handlers, with the same semantics:
    it may rewrite the state, and a raise makes the object ``Failed``.
    """
    check_handler(handler)
    chosen = parse_kinds(kinds) or KINDS
    for kind in chosen:
        _GLOBAL[kind].append(handler)
    return HandlerHandle(handler, tuple(chosen))
