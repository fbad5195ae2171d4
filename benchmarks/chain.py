"""The benchmarks' shared workload: a chain of no-op tasks, and the ledgers to run it on."""

from __future__ import annotations

from statemachine import Flow, task
from statemachine.testing import ListLedger


def handler(obj, old_state, new_state):
    """A state handler that keeps every proposal (it still costs a call per transition)."""
    return new_state


def build(n: int, *, handlers: bool = True) -> Flow:
    """A flow of ``n`` tasks in a line, each returning its input + 1."""

    @task(state_handlers=[handler] if handlers else None)
    def inc(x):
        return x + 1

    with Flow(f"chain-{n}") as flow:
        x = inc(0)
        for _ in range(n - 1):
            x = inc(x)
    return flow


def make_ledger(kind: str):
    """``"list"``: statemachine.testing.ListLedger; ``"memory"``: EventStore(":memory:")."""
    if kind == "list":
        return ListLedger()
    from eventstore import EventStore

    return EventStore(":memory:")
