"""Replay: feed a past run's events to listeners and state handlers, running no task code.

Handlers are called as ``handler(stand_in, old_state, new_state)`` where the
stand-in carries the original task's or flow's name and key and prints like
it (``<Task: load>``, ``<Flow: name=etl>``), so a new notifier can be tried
on last night's run. Handlers fold as in the pipeline (each sees the previous
one's output), but nothing is committed: replay only reads the ledger.
Filters are ``statemachine.filters.EventFilter``'s, the same as ``subscribe()``'s.
"""

from __future__ import annotations

from typing import Any, Iterable

from statemachine.errors import NotCallableError
from statemachine.filters import EventFilter
from statemachine.states import State

from .protocol import Recorder, iter_events

__all__ = ["StandIn", "replay"]


class StandIn:
    """What a replayed handler gets instead of the Task or Flow: its name, key and kind."""

    __slots__ = ("name", "key", "kind", "flow")

    def __init__(self, name: str, key: str, kind: str, flow: str = "") -> None:
        self.name, self.key, self.kind, self.flow = name, key, kind, flow

    def __repr__(self) -> str:
        return f"<Flow: name={self.name}>" if self.kind == "flow" else f"<Task: {self.name}>"


def replay(
    recorder: Recorder,
    run_id: str,
    *listeners: Any,
    handlers: Iterable[Any] = (),
    flow: Any = None,
    task: Any = None,
    states: Any = None,
    kinds: Any = None,
) -> int:
    """Feed the run's events, in order, to each ``listener(event)`` and each handler; return how many.

    An exception from a listener or handler propagates: replay is a trial run.
    """
    handlers = tuple(handlers)
    for fn in (*listeners, *handlers):
        if not callable(fn):
            raise NotCallableError(
                f"replay() takes callables: listener(event) and handler(obj, old_state, new_state); "
                f"got {fn!r} ({type(fn).__name__})")
    wanted = None
    if any(v is not None for v in (flow, task, states, kinds)):
        wanted = EventFilter(flow=flow, task=task, states=states, kinds=kinds)
    count = 0
    stand_ins: dict[tuple[str, str], StandIn] = {}
    for event in iter_events(recorder, run_id):
        if wanted is not None and not wanted.matches(event):
            continue
        count += 1
        for listener in listeners:
            listener(event)
        if handlers:
            ident = (event.kind, event.key)
            obj = stand_ins.get(ident)
            if obj is None:
                obj = stand_ins[ident] = StandIn(event.name, event.key, event.kind, event.flow)
            state = event.new_state
            for handler in handlers:
                out = handler(obj, event.old_state, state)
                if isinstance(out, State):
                    state = out
    return count
