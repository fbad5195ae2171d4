"""The states a task run or a flow run moves through.

The hierarchy is Prefect 1's, so users can write ``isinstance(s, Retrying)`` or
``s.is_failed()``::

    State
    ├── Pending
    │   └── Scheduled            (start_time)
    │       ├── Paused           (start_time: None, "until resumed")
    │       ├── Resume
    │       └── Retrying         (start_time, run_count: 1)
    ├── Running
    │   └── Cancelling
    └── Finished
        ├── Looped               (loop_count)
        ├── Success
        │   ├── Cached
        │   ├── Mapped           (map_states, n_map_states)
        │   └── Skipped
        ├── Cancelled
        └── Failed
            ├── TimedOut
            ├── TriggerFailed
            ├── ValidationFailed
            └── Crashed          (ours: the run's process died and a reaper closed it)

One base class holds the fields (``message``, ``result``, ``context``); a
subclass only declares the extra fields it adds in ``extra_fields``. As in
Prefect 1, two states are equal when their type, result and extra fields are:
the message and the context are not compared.
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from . import taskcontext
from .errors import ArgumentError

__all__ = [
    "State",
    "Pending",
    "Scheduled",
    "Retrying",
    "Paused",
    "Resume",
    "Running",
    "Cancelling",
    "Finished",
    "Looped",
    "Success",
    "Cached",
    "Mapped",
    "Skipped",
    "Failed",
    "TriggerFailed",
    "TimedOut",
    "ValidationFailed",
    "Crashed",
    "Cancelled",
    "STATE_CLASSES",
    "utcnow",
]


def utcnow() -> datetime.datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.datetime.now(datetime.timezone.utc)


class State:
    """A state of a task run or a flow run.

    ``message`` says why the object is in this state, ``result`` carries data
    (a task's return value, or the exception that failed it), ``context`` is a
    free dict (the flow's final state carries ``run_id`` there).
    """

    __slots__ = ("message", "result", "_context", "__dict__")

    #: Extra keyword fields a subclass adds, with their defaults.
    extra_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        context: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        self.message = message
        self.result = result
        self._context = context
        if fields or self.extra_fields:
            self._set_extra_fields(fields)

    @property
    def context(self) -> dict[str, Any]:
        """Free-form data about the state (created on first use: most states never need one)."""
        if self._context is None:
            self._context = {}
        return self._context

    @context.setter
    def context(self, value: dict[str, Any] | None) -> None:
        self._context = value

    def _set_extra_fields(self, fields: dict[str, Any]) -> None:
        unknown = set(fields) - set(self.extra_fields)
        if unknown:
            allowed = ", ".join(("message", "result", "context") + self.extra_fields)
            raise ArgumentError(
                f"{type(self).__name__}() got unexpected field(s) {', '.join(sorted(unknown))}; "
                f"it takes: {allowed}",
                ", ".join(sorted(unknown)),
                {name: fields[name] for name in sorted(unknown)},
            )
        for name in self.extra_fields:
            setattr(self, name, fields.get(name, self._default(name)))

    def _default(self, name: str) -> Any:
        return None

    def extras(self) -> dict[str, Any]:
        """The subclass-specific fields and their values (e.g. ``start_time``)."""
        return {name: getattr(self, name) for name in self.extra_fields}

    def __repr__(self) -> str:
        if self.message:
            return f'{type(self).__name__}("{self.message}")'
        return f"{type(self).__name__}()"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        """Prefect 1's equality: same type, result and extra fields (not message, not context)."""
        if type(self) is not type(other):
            return NotImplemented if not isinstance(other, State) else False
        assert isinstance(other, State)
        return _results_equal(self.result, other.result) and all(
            _results_equal(getattr(self, n), getattr(other, n)) for n in self.extra_fields
        )

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    @classmethod
    def children(cls, include_self: bool = False, names_only: bool = False) -> list[Any]:
        """Every state class deriving from this one (Prefect 1's helper); names with ``names_only``."""
        found: list[type[State]] = []
        for sub in cls.__subclasses__():
            if not sub.__name__.startswith("_"):
                found.append(sub)
            found.extend(sub.children())
        if include_self:
            found.append(cls)
        return [c.__name__ for c in found] if names_only else found

    @classmethod
    def parents(cls, include_self: bool = False, names_only: bool = False) -> list[Any]:
        """Every state class this one derives from, nearest first (Prefect 1's helper)."""
        found: list[type[State]] = [
            c for c in cls.__mro__ if c not in (object, cls) and not c.__name__.startswith("_")
        ]
        if include_self:
            found.append(cls)
        return [c.__name__ for c in found] if names_only else found

    # Predicates follow the class hierarchy.
    def is_pending(self) -> bool:
        return isinstance(self, Pending)

    def is_scheduled(self) -> bool:
        return isinstance(self, Scheduled)

    def is_retrying(self) -> bool:
        return isinstance(self, Retrying)

    def is_paused(self) -> bool:
        return isinstance(self, Paused)

    def is_running(self) -> bool:
        return isinstance(self, Running)

    def is_finished(self) -> bool:
        return isinstance(self, Finished)

    def is_successful(self) -> bool:
        return isinstance(self, Success)

    def is_failed(self) -> bool:
        return isinstance(self, Failed)

    def is_skipped(self) -> bool:
        return isinstance(self, Skipped)

    def is_cancelled(self) -> bool:
        return isinstance(self, Cancelled)

    def is_cached(self) -> bool:
        return isinstance(self, Cached)

    def is_looped(self) -> bool:
        return isinstance(self, Looped)

    def is_mapped(self) -> bool:
        return isinstance(self, Mapped)

    def is_meta_state(self) -> bool:
        """Always False: Prefect 1's meta-states (``Submitted``, ``Queued``) belong to its server."""
        return False


def _results_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, BaseException) or isinstance(b, BaseException):
        return type(a) is type(b) and getattr(a, "args", None) == getattr(b, "args", None)
    if isinstance(a, list) and isinstance(b, list):  # e.g. a Mapped parent's children and results
        return len(a) == len(b) and all(_results_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # a result whose == misbehaves is simply "not equal"
        return False


class Pending(State):
    """Not yet run: waiting for its upstream tasks or its trigger."""

    __slots__ = ()


class Scheduled(Pending):
    """Waiting to start at ``start_time`` (a UTC datetime; defaults to now)."""

    __slots__ = ()
    extra_fields: ClassVar[tuple[str, ...]] = ("start_time",)
    start_time: datetime.datetime | None

    def _default(self, name: str) -> Any:
        return utcnow()


class Paused(Scheduled):
    """Waiting for a person to resume it (``manual_only`` trigger, ``PAUSE`` signal).

    ``start_time`` is when it may resume on its own; None (the default) means
    only when a person resumes it.
    """

    __slots__ = ()

    def _default(self, name: str) -> Any:
        return None


class Resume(Scheduled):
    """Released from ``Paused``: it may run."""

    __slots__ = ()


class Retrying(Scheduled):
    """Failed and will run again at ``start_time``; ``run_count`` runs so far (default 1)."""

    __slots__ = ()
    extra_fields = ("start_time", "run_count")
    run_count: int

    def _default(self, name: str) -> Any:
        if name == "start_time":
            return utcnow()
        return taskcontext.get("task_run_count", 1)  # Prefect 1: the current attempt, else 1


class Running(State):
    """Currently running."""

    __slots__ = ()


class Cancelling(Running):
    """Running, and asked to stop."""

    __slots__ = ()


class Finished(State):
    """Done, one way or another."""

    __slots__ = ()


class Looped(Finished):
    """One iteration of a looping task ended (``LOOP`` signal); ``loop_count`` iterations so far."""

    __slots__ = ()
    extra_fields = ("loop_count",)
    loop_count: int

    def _default(self, name: str) -> Any:
        return taskcontext.get("task_loop_count", 1)  # Prefect 1: the current iteration, else 1


class Success(Finished):
    """Finished successfully; ``result`` is the return value."""

    __slots__ = ()


class Cached(Success):
    """Finished successfully from a cached result."""

    __slots__ = ()


class Mapped(Success):
    """The task was mapped: its children (``map_states``) each ran one item.

    As in Prefect 1, ``Mapped`` only says the children were made, not that they
    succeeded; ``result`` is the list of the children's results.
    ``n_map_states`` is the number of children (``len(map_states)`` unless set).
    """

    __slots__ = ()
    extra_fields = ("map_states", "n_map_states")
    map_states: list[State]

    def _default(self, name: str) -> Any:
        return [] if name == "map_states" else None

    @property
    def n_map_states(self) -> int:
        return self.__dict__.get("_n_map_states") or len(self.map_states or ())

    @n_map_states.setter
    def n_map_states(self, value: int | None) -> None:
        self.__dict__["_n_map_states"] = value


class Skipped(Success):
    """Not run, on purpose (``SKIP`` signal or an upstream skip); counts as success."""

    __slots__ = ()


class Cancelled(Finished):
    """Stopped on request."""

    __slots__ = ()


class Failed(Finished):
    """Finished with an error; ``result`` is usually the exception."""

    __slots__ = ()


class TimedOut(Failed):
    """Stopped because it ran longer than its ``timeout``."""

    __slots__ = ()


class TriggerFailed(Failed):
    """Not run because its trigger refused the upstream states."""

    __slots__ = ()


class ValidationFailed(Failed):
    """The task's result did not validate (``VALIDATIONFAIL`` signal)."""

    __slots__ = ()


class Crashed(Failed):
    """The run's process died (killed, power loss); a reaper closed what it left open."""

    __slots__ = ()


#: Every concrete state class of the library, by name (the ledger stores names).
STATE_CLASSES: dict[str, type[State]] = {
    cls.__name__: cls
    for cls in (
        State, Pending, Scheduled, Retrying, Paused, Resume, Running, Cancelling, Finished,
        Looped, Success, Cached, Mapped, Skipped, Failed, TriggerFailed, TimedOut,
        ValidationFailed, Crashed, Cancelled,
    )
}
