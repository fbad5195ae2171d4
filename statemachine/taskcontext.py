"""What a running task can ask about its run: Prefect 1's ``prefect.context``, read-only.

Inside a task body (or a state handler) ``get("task_loop_result")`` is the
result the previous ``LOOP`` iteration handed on, ``get("task_run_count")``
the attempt (1, then +1 per retry), ``get("map_index")`` a mapped child's
index. Keys: ``flow_name``, ``flow_run_id``, ``parameters``, ``task_name``,
``task_full_name`` (``name[i]`` for a mapped child), ``task_key``,
``task_run_count``, ``task_loop_count``, ``task_loop_result``, ``map_index``.

``with context(raise_on_exception=True): flow.run()`` makes the run raise the
first exception a task body raises, instead of recording ``Failed`` (Prefect
1's switch for users' own tests).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from .context import task_values, with_task_values

__all__ = ["get", "context", "snapshot"]


def get(key: str, default: Any = None) -> Any:
    """The value of ``key`` in the current run's context, else ``default``."""
    return task_values().get(key, default)


def snapshot() -> dict[str, Any]:
    """A copy of the whole current context."""
    return dict(task_values())


@contextmanager
def context(**values: Any) -> Iterator[None]:
    """Add ``values`` to the context for the block (nested blocks see the outer values too)."""
    with with_task_values(**values):
        yield
