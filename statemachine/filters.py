"""Which events a listener wants: one matching function for live listeners,
durable subscriptions and replay.

``EventFilter(flow=, task=, states=, kinds=)`` is built once, checked once
(a bad filter fails where it is written, not on the first event), and then
asked ``matches(event)`` for every event. ``to_dict()`` is its JSON-able,
order-independent description: a durable subscription stores it beside its
cursor to notice a name reused with a different filter, and
``EventFilter.from_dict`` builds the same filter back.
"""

from __future__ import annotations

from typing import Any

from .errors import ArgumentError
from .states import STATE_CLASSES, State

__all__ = ["EventFilter", "FilterError", "KINDS", "parse_kinds", "parse_states"]

KINDS = ("task", "flow")


class FilterError(ArgumentError):
    """A filter argument cannot match events (a ``states=`` entry that is not a
    State class, an unknown kind, a name that is not a string).

    As every ``ArgumentError`` it is both a ``TypeError`` and a ``ValueError``
    so callers catching either of Python's usual "bad argument" errors catch it.
    """


class EventFilter:
    """Which events a listener wants: by flow name, task name or key, state class, kind.

    Every criterion left ``None`` matches everything; given criteria must all
    match. ``states`` matches subclasses too (``Failed`` matches ``TimedOut``).
    ``task`` takes task names or keys (``"load"`` or ``"load-1"``) and only
    matches task events.
    """

    __slots__ = ("flows", "tasks", "states", "kinds")

    def __init__(self, *, flow: Any = None, task: Any = None, states: Any = None, kinds: Any = None) -> None:
        self.flows = _names(flow, "flow")
        self.tasks = _names(task, "task")
        self.states = parse_states(states)
        self.kinds = parse_kinds(kinds)

    def matches(self, event: Any) -> bool:
        """True when ``event`` passes every criterion of this filter."""
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.states is not None and not isinstance(event.new_state, self.states):
            return False
        if self.tasks is not None and (
            event.kind != "task" or (event.name not in self.tasks and event.key not in self.tasks)
        ):
            return False
        if self.flows is not None and event.flow not in self.flows:
            return False
        return True

    @property
    def is_empty(self) -> bool:
        """True when the filter matches every event."""
        return self.flows is None and self.tasks is None and self.states is None and self.kinds is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able, order-independent description (equal filters give equal dicts)."""
        return {
            "flow": sorted(self.flows) if self.flows is not None else None,
            "task": sorted(self.tasks) if self.tasks is not None else None,
            "states": sorted({_class_path(c) for c in self.states}) if self.states is not None else None,
            "kinds": sorted(self.kinds) if self.kinds is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventFilter:
        """The filter ``to_dict()`` described (state classes looked up by name)."""
        states = data.get("states")
        if states is not None:
            states = [_class_from_path(p) for p in states]
        return cls(flow=data.get("flow"), task=data.get("task"), states=states, kinds=data.get("kinds"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventFilter):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v is not None)
        return f"EventFilter({given})"


def _names(value: Any, what: str) -> frozenset[str] | None:
    """Names from a str, a Task/Flow (its name) or an iterable of either."""
    if value is None:
        return None
    if isinstance(value, str) or _has_name(value):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise FilterError(
            f"{what}= takes a name, a {what.capitalize()} or a list of them, got {value!r} "
            f"({type(value).__name__})",
            what,
            value,
        ) from None
    names = []
    for item in items:
        name = item.name if _has_name(item) else item
        if not isinstance(name, str):
            raise FilterError(
                f"{what}= takes names (strings) or {what.capitalize()} objects, got {item!r} "
                f"({type(item).__name__})",
                what,
                item,
            )
        names.append(name)
    return frozenset(names)


def _has_name(value: Any) -> bool:
    return not isinstance(value, str) and isinstance(getattr(value, "name", None), str)


def parse_states(value: Any, argument: str = "states", *, names: bool = False) -> tuple[type[State], ...] | None:
    """A state-class argument (``states=``, ``only_states=``, ``--state``) as a tuple of classes.

    The one parser of such arguments, so they accept the same things and
    refuse them with the same text.

    - ``value``: ``None`` (returned as ``None``: no filter), one State class,
      or an iterable of them; with ``names=True`` also state names (``"Failed"``,
      any case, several separated by commas: ``"failed,retrying"``), as a
      command line or a stored filter gives them. An empty iterable gives ``()``.
    - ``argument``: how the caller's user wrote the argument, for the message:
      a keyword (``"only_states"``, shown as ``only_states=``) or an option
      (``"--state"``, shown as is).
    - ``names``: accept state names; without it a name is refused with a hint
      to import the class.

    Returns the classes in the order given, each once (a user's own subclass
    of a State is kept as it is). Raises ``FilterError`` (an ``ArgumentError``,
    so also ``ValueError`` and ``TypeError``) with ``argument`` and the
    offending ``value`` as attributes.
    """
    if value is None:
        return None
    shown = argument if argument.startswith("-") else f"{argument}="
    example = f"{argument} Failed" if argument.startswith("-") else f"{argument}=[Failed]"
    if isinstance(value, (type, str, State)):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        items = [value]
    classes: dict[type[State], None] = {}
    for item in items:
        if isinstance(item, type) and issubclass(item, State):
            classes[item] = None
        elif isinstance(item, str) and names:
            for name in filter(None, (part.strip() for part in item.split(","))):
                classes[_state_named(name, argument)] = None
        else:
            hint = ""
            if isinstance(item, str) and item in STATE_CLASSES:
                hint = f"; pass the class itself: from statemachine.states import {item}"
            elif isinstance(item, State):
                hint = f"; pass the class, not an instance: {argument}=[{type(item).__name__}]"
            raise FilterError(
                f"{shown} takes State classes (e.g. {example}), got {item!r} ({type(item).__name__}){hint}",
                argument,
                item,
            )
    return tuple(classes)


_BY_LOWER_NAME = {name.lower(): cls for name, cls in STATE_CLASSES.items()}


def _state_named(name: str, argument: str) -> type[State]:
    cls = _BY_LOWER_NAME.get(name.lower())
    if cls is None:
        raise FilterError(f"unknown state {name!r}; choose from {', '.join(STATE_CLASSES)}", argument, name)
    return cls


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_from_path(path: str) -> type:
    module, _, qualname = path.rpartition(".")
    if module == State.__module__ and qualname in STATE_CLASSES:
        return STATE_CLASSES[qualname]
    import importlib

    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError):
        raise FilterError(f"state class {path!r} cannot be imported", "states", path) from None
    return target


def parse_kinds(kinds: Any) -> tuple[str, ...] | None:
    """``kinds=`` as a tuple of "task"/"flow" (None: both); anything else is refused."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    try:
        kinds = tuple(dict.fromkeys(kinds))
    except TypeError:
        raise FilterError(f"kinds= takes 'task' and/or 'flow', got {kinds!r}", "kinds", kinds) from None
    for k in kinds:
        if k not in KINDS:
            raise FilterError(f"kinds= takes 'task' and/or 'flow', got {k!r}", "kinds", k)
    return kinds
