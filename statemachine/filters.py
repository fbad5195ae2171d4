"""Which events a listener wants: one matching function for live listeners,
durable subscriptions and replay."""

from __future__ import annotations

from typing import Any

from .states import State

__all__ = ["EventFilter", "KINDS", "parse_kinds"]

KINDS = ("task", "flow")


class EventFilter:
    """Which events a listener wants: by flow name, task name or key, state class, kind."""

    def __init__(self, *, flow: Any = None, task: Any = None, states: Any = None, kinds: Any = None) -> None:
        self.flows = _names(flow, "flow")
        self.tasks = _names(task, "task")
        self.states = _state_classes(states)
        self.kinds = parse_kinds(kinds)

    def matches(self, event: Any) -> bool:
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.states is not None and not isinstance(event.new_state, self.states):
            return False
        if self.tasks is not None and (event.kind != "task" or (event.name not in self.tasks and event.key not in self.tasks)):
            return False
        if self.flows is not None:
            if event.flow not in self.flows:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (durable subscriptions store it to detect a changed filter)."""
        return {
            "flow": sorted(self.flows) if self.flows is not None else None,
            "task": sorted(self.tasks) if self.tasks is not None else None,
            "states": [c.__module__ + "." + c.__qualname__ for c in self.states] if self.states is not None else None,
            "kinds": list(self.kinds) if self.kinds is not None else None,
        }


def _names(value: Any, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset([value])
    if hasattr(value, "name") and isinstance(getattr(value, "name"), str):
        return frozenset([value.name])
    return frozenset(getattr(v, "name", v) for v in value)


def _state_classes(states: Any) -> tuple[type, ...] | None:
    if states is None:
        return None
    if isinstance(states, type):
        states = [states]
    classes = tuple(states)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, State)):
            raise TypeError(f"states= must list State classes (e.g. Failed), got {cls!r}")
    return classes


def parse_kinds(kinds: Any) -> tuple[str, ...] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    kinds = tuple(kinds)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"kinds= takes 'task' and/or 'flow', got {k!r}")
    return kinds
