"""Signals a task body (or a state handler) raises to choose the task's state.

As in Prefect 1, each signal builds its state when it is made and keeps it as
``signal.state``; keyword arguments are that state's fields
(``RETRY("again", start_time=...)``, ``SUCCESS(result=42)``). The signal
instance is the state's ``result`` unless one is given, so attributes set on
the signal survive for state handlers to read (``new_state.result.flag``).
``ENDRUN(state)`` ends the run in exactly the state given; ``LOOP(result=...)``
ends one iteration of a looping task (``Looped``) and runs it again with that
result (``statemachine.taskcontext.get("task_loop_result")``).
Signals are ordinary ``Exception`` subclasses.
"""

from __future__ import annotations

from typing import Any, ClassVar

from . import states
from .errors import ArgumentError

__all__ = [
    "StateSignal", "PrefectStateSignal", "FAIL", "SUCCESS", "RETRY", "SKIP", "PAUSE", "LOOP",
    "TRIGGERFAIL", "VALIDATIONFAIL", "ENDRUN", "signal_from_state",
]


class StateSignal(Exception):
    """Base of the task signals; ``state_class`` is the state it produces, ``state`` that state."""

    state_class: ClassVar[type[states.State]] = states.State

    def __init__(self, message: str | None = None, *args: Any, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        fields.setdefault("result", self)
        self.state = self.state_class(message, *args, **fields)

    def to_state(self) -> states.State:
        """The state this signal puts the task in (``self.state``)."""
        return self.state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


#: Prefect 1's name for the base class.
PrefectStateSignal = StateSignal


class FAIL(StateSignal):
    """End the task ``Failed``."""

    state_class: ClassVar[type[states.State]] = states.Failed


class TRIGGERFAIL(FAIL):
    """End the task ``TriggerFailed``."""

    state_class = states.TriggerFailed


class VALIDATIONFAIL(FAIL):
    """End the task ``ValidationFailed``: its result did not validate."""

    state_class = states.ValidationFailed


class SUCCESS(StateSignal):
    """End the task ``Success`` (``result=`` is its result)."""

    state_class = states.Success


class RETRY(StateSignal):
    """End this attempt and retry (``Retrying``, at ``start_time=`` if given), whatever ``max_retries`` says."""

    state_class = states.Retrying


class SKIP(StateSignal):
    """End the task ``Skipped``."""

    state_class = states.Skipped


class PAUSE(StateSignal):
    """End the task ``Paused``: it waits for a person (or its ``start_time=``)."""

    state_class = states.Paused


class LOOP(StateSignal):
    """End this iteration (``Looped``) and run the task again; ``result=`` is handed to the next one.

    Without ``result=`` the loop result is the signal's repr, as in Prefect 1.
    """

    state_class = states.Looped

    def __init__(self, message: str | None = None, *args: Any, **fields: Any) -> None:
        fields.setdefault("result", Exception.__repr__(self))  # "LOOP()", as Prefect 1 stores it
        super().__init__(message, *args, **fields)


class ENDRUN(Exception):
    """End the run in ``state`` exactly."""

    def __init__(self, state: states.State) -> None:
        if not isinstance(state, states.State):
            raise ArgumentError(f"ENDRUN needs a State, e.g. ENDRUN(Failed(\"why\")), got {state!r}", "state", state)
        super().__init__(state)
        self.state = state

    def to_state(self) -> states.State:
        return self.state


def signal_from_state(state: states.State) -> type[StateSignal]:
    """The signal class that produces ``state``'s type (Prefect 1's helper); ValueError if none."""
    pending = list(StateSignal.__subclasses__())
    by_state: dict[str, type[StateSignal]] = {}
    while pending:
        sig = pending.pop()
        by_state[sig.state_class.__name__] = sig
        pending.extend(sig.__subclasses__())
    try:
        return by_state[type(state).__name__]
    except KeyError:
        raise ValueError(f"No signal matches the provided state: {state}") from None
