"""What is going on in this thread or task: the flow being built and the run in progress.

Both are ``contextvars``: each thread (and each asyncio task) sees its own,
so two flows built or run at once never see each other's. This is the only
place in ``statemachine`` that keeps such state.

- ``current_flow()``: the flow of the innermost ``with Flow(...)`` block;
- ``current_run_id()``: the id of the flow run in progress (state handlers,
  e.g. notifiers, read it).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .flow import Flow

__all__ = ["current_flow", "current_run_id", "enter_flow", "exit_flow", "running"]

_flow: ContextVar[Flow | None] = ContextVar("stateledger_flow", default=None)
_run_id: ContextVar[str | None] = ContextVar("stateledger_run_id", default=None)


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
