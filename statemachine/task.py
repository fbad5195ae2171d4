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

from . import taskcontext
from . import triggers as _triggers
from .context import current_flow
from .errors import FlowContextError, FlowDefinitionError, NotCallableError, OptionTypeError, ParameterError
from .handlers import callback_factory, check_handler
from .states import State

__all__ = ["Task", "FunctionTask", "Parameter", "task", "RESERVED_ARGUMENTS"]

_NO_DEFAULT = object()

#: Keyword arguments of ``Task.__call__``: a task's ``run`` cannot take arguments so named (Prefect 1).
RESERVED_ARGUMENTS = ("upstream_tasks", "mapped", "task_args", "flow")


class _CallSignature:
    """``inspect.signature(task)``: ``run``'s arguments plus ``__call__``'s keywords (Prefect 1)."""

    def __get__(self, obj: Any, cls: Any = None) -> inspect.Signature:
        if obj is None:
            raise AttributeError("__signature__")  # inspect.signature(Task) reads __init__ instead
        params = list(obj.signature().parameters.values())
        var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
        params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        extras = [
            inspect.Parameter("mapped", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=bool),
            inspect.Parameter("task_args", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=dict),
            inspect.Parameter("upstream_tasks", inspect.Parameter.KEYWORD_ONLY, default=None),
            inspect.Parameter("flow", inspect.Parameter.KEYWORD_ONLY, default=None),
        ]
        return inspect.Signature([*params, *extras, *var_kw], return_annotation="Task")


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
        retry_on: type[Exception] | Iterable[type[Exception]] | None = None,
    ) -> None:
        self.name = name if name is not None else type(self).__name__
        if not isinstance(self.name, str) or not self.name:
            raise FlowDefinitionError(f"A task's name must be a non-empty string, got {name!r}")
        _check_run_signature(self)
        if isinstance(tags, str):
            raise OptionTypeError(f"Tags should be a set of tags, not a string: write tags=[{tags!r}]")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise FlowDefinitionError(f"max_retries must be an int >= 0, got {max_retries!r}")
        delay = _as_timedelta(retry_delay, "retry_delay")
        if max_retries > 0 and retry_delay is None:
            raise FlowDefinitionError(
                f"A datetime.timedelta `retry_delay` must be provided if max_retries > 0 (got max_retries="
                f"{max_retries}); pass retry_delay=datetime.timedelta(seconds=...) (or 0 to retry at once)"
            )
        if retry_delay is not None and not max_retries:
            raise FlowDefinitionError(
                "A `max_retries` argument greater than 0 must be provided if specifying a retry delay "
                f"(got retry_delay={retry_delay!r})"
            )
        self.max_retries = max_retries
        self.retry_delay = delay
        self.retry_on = _check_retry_on(retry_on, max_retries)
        if isinstance(timeout, datetime.timedelta):
            timeout = timeout.total_seconds()
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
        _track_created(self, None)

    __signature__ = _CallSignature()

    def retries_on(self, result: Any) -> bool:
        """Whether a failure whose result is ``result`` may be retried (``retry_on``; Prefect 1)."""
        if not self.retry_on or result is None:
            return True
        return isinstance(result, tuple(self.retry_on))

    def run(self) -> Any:
        """The task's work; override it. Its return value becomes ``Success.result``."""
        return None

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    # --- building flows -------------------------------------------------------

    def copy(self, **changes: Any) -> "Task":
        """A shallow copy, optionally with some attributes changed (each must exist, as in Prefect 1)."""
        new = copy.copy(self)
        new.state_handlers = list(self.state_handlers)
        new.tags = set(self.tags)
        for attr, value in changes.items():
            if not hasattr(new, attr):
                raise AttributeError(f"{self!r} does not have {attr} as an attribute")
            setattr(new, attr, value)
        _track_created(new, self)
        return new

    def __call__(
        self,
        *args: Any,
        mapped: bool = False,
        task_args: dict | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Any = None,
        **kwargs: Any,
    ) -> "Task":
        """Inside ``with Flow(...)``: add a copy of this task bound to these arguments."""
        new = self.copy(**(task_args or {}))
        try:
            new.bind(*args, mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **kwargs)
        except Exception:
            _track_created(None, new)  # the refused copy is not "created but not added"
            raise
        return new

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Any = None,
        **kwargs: Any,
    ) -> "Task":
        """Bind arguments (tasks become upstream dependencies) in the active flow."""
        flow = _resolve_flow(flow, self)
        try:
            bound = self.signature().bind(*args, **kwargs)
        except TypeError as exc:
            raise FlowDefinitionError(f"Cannot call {self!r} with these arguments: {exc}") from exc
        arguments = dict(bound.arguments)
        for name, param in self.signature().parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD and name in arguments:
                arguments.update(arguments.pop(name))  # **kwargs: each keyword is its own argument
        if mapped:
            from .mapping import bind_mapped  # mapping builds on Task and Flow

            bind_mapped(flow, self, arguments, upstream_tasks)
            return self
        flow.set_dependencies(self, upstream_tasks=upstream_tasks, keyword_tasks=arguments)
        return self

    def map(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Any = None,
        task_args: dict | None = None,
        **kwargs: Any,
    ) -> "Task":
        """Add a copy of this task that runs once per item of its arguments (Prefect 1's ``map``).

        Wrap an argument in ``unmapped(...)`` to pass it whole to every child, and a
        mapped task's output in ``flatten(...)`` to map over the items of its items.
        """
        return self(*args, mapped=True, task_args=task_args, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def signature(self) -> inspect.Signature:
        """The signature of ``run``, which arguments are bound against."""
        return inspect.signature(self.run)

    def set_upstream(self, task: "Task", flow: Any = None, key: str | None = None) -> "Task":
        """Make ``task`` run before this one (passing its result as ``key`` if given); returns self."""
        _resolve_flow(flow, self).set_dependencies(self, upstream_tasks=[task] if key is None else None,
                                                    keyword_tasks={key: task} if key else None)
        return self

    def set_downstream(self, task: "Task", flow: Any = None, key: str | None = None) -> "Task":
        """Make ``task`` run after this one (receiving this one's result as ``key`` if given); returns self."""
        _resolve_flow(flow, self).set_dependencies(task, upstream_tasks=[self] if key is None else None,
                                                    keyword_tasks={key: self} if key else None)
        return self

    def set_dependencies(
        self,
        flow: Any = None,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
    ) -> "Task":
        """Prefect 1's ``Task.set_dependencies``: the flow's, for this task; returns self."""
        _resolve_flow(flow, self).set_dependencies(self, upstream_tasks, downstream_tasks, keyword_tasks)
        return self


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

    def run(self) -> Any:  # type: ignore[override]
        """The value passed to the running flow, else the default (Prefect 1's ``Parameter.run``)."""
        params = taskcontext.get("parameters") or {}
        if self.required and self.name not in params:
            from .signals import FAIL  # signals import states only; kept local like Prefect 1

            raise FAIL(f'Parameter "{self.name}" was required but not provided.')
        return params.get(self.name, self.default)

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


def _check_run_signature(task: Task) -> None:
    """Refuse a ``run`` Prefect 1 refuses: ``*args``, positional-only or reserved argument names."""
    try:
        params = task.signature().parameters.values()
    except (TypeError, ValueError):
        return  # a builtin that cannot be inspected: binding will say what is wrong
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        raise FlowDefinitionError(
            f"Task {task.name!r}: tasks with variable positional arguments (*args) are not supported, "
            "because every argument is passed as a keyword; take **kwargs instead"
        )
    positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if positional:
        raise OptionTypeError(
            f"Found positional-only parameters in the function signature for task {task.name}: "
            f"{positional}; arguments are passed as keywords: remove the '/'"
        )
    reserved = [p.name for p in params if p.name in RESERVED_ARGUMENTS]
    if reserved:
        raise FlowDefinitionError(
            f"Tasks cannot have the following argument names: {', '.join(reserved)}. "
            "These are reserved keyword arguments; rename them"
        )


def _check_retry_on(retry_on: Any, max_retries: int) -> set[type[Exception]] | None:
    if not retry_on:
        return None
    if not max_retries > 0:
        raise FlowDefinitionError("A number of `max_retries` must be provided if `retry_on` is set.")
    kinds = {retry_on} if not isinstance(retry_on, Iterable) else set(retry_on)
    for kind in kinds:
        if not isinstance(kind, type):
            raise OptionTypeError(
                f"Invalid `retry_on` value {kind!r}. Expected an exception type but got an instance of "
                f"{type(kind).__name__}"
            )
        if not issubclass(kind, Exception):
            raise OptionTypeError(f"Invalid `retry_on` value {kind!r}. Expected an exception subclass.")
    return kinds


def _track_created(new: Task | None, original: Task | None) -> None:
    """Note a task made inside ``with Flow(...)`` so the flow can warn if it is never added (Prefect 1)."""

    flow = current_flow()
    if flow is not None:
        flow.note_created(new, original)


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
        raise OptionTypeError(f"{what} must be a list, got {value!r}; write {what}=[...]")
    return list(value)
