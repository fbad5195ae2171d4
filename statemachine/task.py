"""Tasks: the units of work a flow runs, and the ``@task`` decorator.

Subclass ``Task`` and define ``run()``, or decorate a function with ``@task``.
Inside ``with Flow(...):`` calling a task adds a copy of it to the flow with
its arguments bound (the functional API); ``set_upstream`` and
``set_downstream`` build the same graph imperatively.
"""

from __future__ import annotations

import copy
import datetime
import inspect
from typing import Any, Callable, Iterable, Optional, Sequence

from . import triggers as _triggers
from .context import current_flow
from .errors import FlowContextError, FlowDefinitionError, NotCallableError, ParameterError
from .handlers import callback_factory, check_handler
from .states import State

__all__ = ["Task", "FunctionTask", "Parameter", "task"]

_NO_DEFAULT = object()


class Task:
    """A unit of work. Subclass it and define ``run()``; see the module docstring."""

    def __init__(
        self,
        name: str | None = None,
        *,
        max_retries: int = 0,
        retry_delay: datetime.timedelta | float | int | None = None,
        timeout: float | None = None,
        trigger: Callable[..., bool] | None = None,
        skip_on_upstream_skip: bool = True,
        state_handlers: Sequence[Callable[[Any, State, State], Optional[State]]] | None = None,
        on_failure: Callable[[Any, State], None] | None = None,
        on_success: Callable[[Any, State], None] | None = None,
        on_retry: Callable[[Any, State], None] | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        self.name = name if name is not None else type(self).__name__
        if not isinstance(self.name, str) or not self.name:
            raise FlowDefinitionError(f"A task's name must be a non-empty string, got {name!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise FlowDefinitionError(f"max_retries must be an int >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self.retry_delay = _as_timedelta(retry_delay, "retry_delay")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise FlowDefinitionError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.timeout = timeout
        self.trigger = check_handler(trigger, "trigger") if trigger else _triggers.all_successful
        self.skip_on_upstream_skip = skip_on_upstream_skip
        self.state_handlers = [check_handler(h) for h in _as_list(state_handlers, "state_handlers")]
        for fn, check in (
            (on_failure, State.is_failed),
            (on_success, State.is_successful),
            (on_retry, State.is_retrying),
        ):
            if fn is not None:
                self.state_handlers.append(callback_factory(fn, check))
        self.tags = set(tags or ())

    def run(self) -> Any:
        """The task's work; override it. Its return value becomes ``Success.result``."""
        return None

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    # --- building flows -------------------------------------------------------

    def copy(self, **changes: Any) -> "Task":
        """A shallow copy, optionally with some attributes changed."""
        new = copy.copy(self)
        new.state_handlers = list(self.state_handlers)
        for attr, value in changes.items():
            setattr(new, attr, value)
        return new

    def __call__(self, *args: Any, flow: Any = None, **kwargs: Any) -> "Task":
        """Inside ``with Flow(...)``: add a copy of this task bound to these arguments."""
        new = self.copy()
        new.bind(*args, flow=flow, **kwargs)
        return new

    def bind(self, *args: Any, flow: Any = None, **kwargs: Any) -> "Task":
        """Bind arguments (tasks become upstream dependencies) in the active flow."""
        flow = _resolve_flow(flow, self)
        try:
            bound = self.signature().bind(*args, **kwargs)
        except TypeError as exc:
            raise FlowDefinitionError(f"Cannot call {self!r} with these arguments: {exc}") from exc
        flow.set_dependencies(self, keyword_tasks=dict(bound.arguments))
        return self

    def signature(self) -> inspect.Signature:
        """The signature of ``run``, which arguments are bound against."""
        return inspect.signature(self.run)

    def set_upstream(self, task: "Task", flow: Any = None, key: str | None = None) -> None:
        """Make ``task`` run before this one (passing its result as ``key`` if given)."""
        _resolve_flow(flow, self).set_dependencies(self, upstream_tasks=[task] if key is None else None,
                                                    keyword_tasks={key: task} if key else None)

    def set_downstream(self, task: "Task", flow: Any = None, key: str | None = None) -> None:
        """Make ``task`` run after this one (receiving this one's result as ``key`` if given)."""
        _resolve_flow(flow, self).set_dependencies(task, upstream_tasks=[self] if key is None else None,
                                                    keyword_tasks={key: self} if key else None)


class FunctionTask(Task):
    """A task whose ``run`` is a plain function (what ``@task`` makes)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> None:
        if not callable(fn):
            raise NotCallableError(
                f"@task needs a function to run, got {fn!r} ({type(fn).__name__}); "
                "decorate a function, or subclass Task and define run()"
            )
        self.fn = fn
        super().__init__(name=name if name is not None else getattr(fn, "__name__", type(fn).__name__), **options)

    def run(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self.fn(*args, **kwargs)

    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)


class Parameter(Task):
    """A flow input: its value comes from ``flow.run(parameters={name: value})``."""

    def __init__(self, name: str, default: Any = _NO_DEFAULT, required: bool | None = None, **options: Any) -> None:
        super().__init__(name=name, **options)
        if required is None:
            required = default is _NO_DEFAULT
        self.required = required
        self.default = None if default is _NO_DEFAULT else default

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"

    def value_from(self, parameters: dict[str, Any]) -> Any:
        """This parameter's value for a run."""
        if self.name in parameters:
            return parameters[self.name]
        if self.required:
            raise ParameterError(f"Flow parameter {self.name!r} is required; pass parameters={{{self.name!r}: ...}}")
        return self.default


def task(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a ``Task`` of a function: ``@task`` or ``@task(max_retries=2, ...)``."""
    if fn is None:
        return lambda f: FunctionTask(f, **options)
    return FunctionTask(fn, **options)


def _resolve_flow(flow: Any, task: Task) -> Any:
    flow = flow if flow is not None else current_flow()
    if flow is None:
        raise FlowContextError(
            f"{task!r} was called outside a Flow: call tasks inside `with Flow(\"name\") as flow:` "
            "or pass flow=... explicitly"
        )
    return flow


def _as_timedelta(value: Any, what: str) -> datetime.timedelta:
    if value is None:
        return datetime.timedelta(0)
    if isinstance(value, datetime.timedelta):
        delay = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        delay = datetime.timedelta(seconds=value)
    else:
        raise FlowDefinitionError(f"{what} must be a timedelta or a number of seconds, got {value!r}")
    if delay < datetime.timedelta(0):
        raise FlowDefinitionError(f"{what} must not be negative, got {value!r}")
    return delay


def _as_list(value: Any, what: str) -> list:
    if value is None:
        return []
    if callable(value) or isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise FlowDefinitionError(f"{what} must be a list, got {value!r}; write {what}=[...]")
    return list(value)
