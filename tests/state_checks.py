"""Compare states with their message too, in tests.

``State.__eq__`` is Prefect 1's: type, result and extra fields, not the message.
A test that means "exactly this state, with this message" wraps the actual side
in ``exact()``::

    assert exact(state) == Success("Task run succeeded.", result=42)
    assert exact([e.new_state for e in events]) == [Running("Starting task run."), Success("Task run succeeded.")]

``exact`` goes into lists, tuples and dict values, so collections compare
element by element.
"""

from __future__ import annotations

from typing import Any

from statemachine.states import State


class ExactState:
    """A state equal to another only when ``==`` holds and the messages are the same."""

    __slots__ = ("state",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, state: State) -> None:
        self.state = state

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExactState):
            other = other.state
        if not isinstance(other, State):
            return NotImplemented
        return self.state == other and self.state.message == other.message

    def __repr__(self) -> str:
        # repr(state) shows the type and message; the result matters to == as well.
        return f"{self.state!r} result={self.state.result!r}"


def exact(value: Any) -> Any:
    """``value`` with every state in it (also inside lists, tuples and dict values) compared with its message."""
    if isinstance(value, State):
        return ExactState(value)
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(exact(v) for v in value)
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    return value
