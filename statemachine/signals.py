"""Signals a task body raises to choose its own state.

Raising ``FAIL("why")`` inside a task ends it ``Failed("why")`` with the signal
instance as the state's ``result``, so attributes set on the signal survive for
state handlers to read (``new_state.result.flag``). ``ENDRUN(state)`` ends the
run in exactly the state given. Signals are ordinary ``Exception`` subclasses.
"""

from __future__ import annotations

from typing import ClassVar

from . import states
from .errors import ArgumentError

__all__ = ["StateSignal", "FAIL", "SUCCESS", "RETRY", "SKIP", "PAUSE", "TRIGGERFAIL", "ENDRUN"]


class StateSignal(Exception):
    """Base of the task signals; ``state_class`` is the state it produces."""

    state_class: ClassVar[type[states.State]] = states.State

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.message = message

    def to_state(self) -> states.State:
        """The state this signal puts the task in; the signal is its ``result``."""
        return self.state_class(self.message, result=self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class FAIL(StateSignal):
    """End the task ``Failed``."""

    state_class: ClassVar[type[states.State]] = states.Failed


class SUCCESS(StateSignal):
    """End the task ``Success``."""

    state_class = states.Success


class RETRY(FAIL):
    """End this attempt and retry now (``Retrying``), whatever ``max_retries`` says."""

    state_class = states.Retrying

    def to_state(self) -> states.State:
        return states.Retrying(self.message, result=self)


class SKIP(SUCCESS):
    """End the task ``Skipped``."""

    state_class = states.Skipped


class PAUSE(StateSignal):
    """End the task ``Paused``: it waits for a person."""

    state_class = states.Paused


class TRIGGERFAIL(FAIL):
    """End the task ``TriggerFailed``."""

    state_class = states.TriggerFailed


class ENDRUN(Exception):
    """End the run in ``state`` exactly."""

    def __init__(self, state: states.State) -> None:
        if not isinstance(state, states.State):
            raise ArgumentError(f"ENDRUN needs a State, e.g. ENDRUN(Failed(\"why\")), got {state!r}", "state", state)
        super().__init__(state)
        self.state = state

    def to_state(self) -> states.State:
        return self.state
