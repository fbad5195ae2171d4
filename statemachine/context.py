"""What is going on in this thread or task: the flow being built and the run in progress.

Both are ``contextvars``: each thread (and each asyncio task) sees its own,
so two flows built or run at once never see each other's. This is the only
place in ``statemachine`` that keeps such state.

- ``current_flow()``: the flow of the innermost ``with Flow(...)`` block;
- ``current_run_id()``: the id of the flow run in progress (state handlers,
  e.g. notifiers, read it);
- ``task_values()``: what the running task may ask about its run (Prefect 1's
  ``prefect.context``), read through ``statemachine.taskcontext``.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

if TYPE_CHECKING:
    from .flow import Flow

__all__ = ["current_flow", "current_run_id", "enter_flow", "exit_flow", "running", "task_values", "with_task_values",
           "set_computed_task_values", "reset_task_values"]

_flow: ContextVar[Flow | None] = ContextVar("stateledger_flow", default=None)
_run_id: ContextVar[str | None] = ContextVar("stateledger_run_id", default=None)
_task_values: ContextVar[Mapping[str, Any]] = ContextVar("stateledger_task_values", default=MappingProxyType({}))


def current_flow() -> Flow | None:
    """The flow of the innermost ``with Flow(...)`` block, if any."""
    return _flow.get()


def current_run_id() -> str | None:
    """The id of the flow run in progress (for state handlers, e.g. notifiers), else None."""
    return _run_id.get()


def enter_flow(flow: Flow) -> Token[Flow | None]:
    """Make ``flow`` the current one; give the token back to ``exit_flow``."""
    return _flow.set(flow)


def exit_flow(token: Token[Flow | None]) -> None:
    """Restore the flow that was current before ``enter_flow``."""
    _flow.reset(token)


@contextmanager
def running(run_id: str) -> Iterator[None]:
    """``current_run_id()`` is ``run_id`` inside the block."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


def task_values() -> Mapping[str, Any]:
    """The running task's context (read-only): run count, loop result, map index, ..."""
    return _task_values.get()


@contextmanager
def with_task_values(**values: Any) -> Iterator[None]:
    """``task_values()`` has ``values`` added inside the block."""
    token = _task_values.set(MappingProxyType({**_task_values.get(), **values}))
    try:
        yield
    finally:
        _task_values.reset(token)


class _Computed(Mapping[str, Any]):
    """Task values worked out when read (the engine sets one per task run: reads are rare)."""

    __slots__ = ("_outer", "_make")

    def __init__(self, outer: Mapping[str, Any], make: Callable[[], Mapping[str, Any]]) -> None:
        self._outer, self._make = outer, make

    def _values(self) -> dict[str, Any]:
        return {**self._outer, **self._make()}

    def __getitem__(self, key: str) -> Any:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


def set_computed_task_values(make: Callable[[], Mapping[str, Any]]) -> Token[Mapping[str, Any]]:
    """Add ``make()``'s values to ``task_values()``, computed when read; give the token to ``reset_task_values``.

    The engine calls this once per task run, so it is a plain call, not a ``with`` block.
    """
    return _task_values.set(_Computed(_task_values.get(), make))


def reset_task_values(token: Token[Mapping[str, Any]]) -> None:
    """Undo ``set_computed_task_values``."""
    _task_values.reset(token)
