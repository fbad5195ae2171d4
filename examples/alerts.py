"""A notifier to try on past runs before attaching it to a flow.

    stateledger replay RUN_ID --handler examples.alerts:print_alert

Replay calls it with a stand-in for each task and flow (it prints like the
original, ``<Task: load>``) and runs no task code.
"""

from __future__ import annotations

from statemachine.states import State


def print_alert(obj, old_state: State, new_state: State) -> State:
    """Print a chat-style alert for failures and retries; keep the state."""
    if new_state.is_failed() or new_state.is_retrying():
        print(f":rotating_light: {obj} is {type(new_state).__name__}: {new_state.message}")
    return new_state
