"""Run a task body with a time limit, as Prefect 1 does.

In the process's main thread (the default ``flow.run()``), the body is stopped:
a ``SIGALRM`` timer raises ``TaskTimeoutSignal`` inside it after ``timeout``
seconds. Anywhere else (a worker thread, Windows) a signal cannot reach the
body: it runs in a helper thread, the task ends ``TimedOut`` on time, and the
body is left to finish on its own in the background (Prefect 1's "soft
timeout"). Either way the task's ``TimedOut.result`` is a ``TaskTimeoutSignal``.

A body that catches the signal (``except Exception``) and returns anyway still
ends ``TimedOut``: the timer's firing is what counts.
"""

from __future__ import annotations

import contextvars
import signal
import threading
from typing import Any, Callable

from .errors import TaskTimeoutSignal

__all__ = ["run_with_timeout", "can_stop_body"]


def can_stop_body() -> bool:
    """Whether a body run here can be stopped (main thread, with SIGALRM, no other timer set)."""
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )


def run_with_timeout(fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float | None, name: str) -> Any:
    """``fn(**kwargs)``, or ``TaskTimeoutSignal`` once ``timeout`` seconds have passed."""
    if timeout is None:
        return fn(**kwargs)
    if can_stop_body():
        return _with_alarm(fn, kwargs, timeout)
    return _in_thread(fn, kwargs, timeout, name)


def _with_alarm(fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float) -> Any:
    fired = []

    def on_alarm(signum: int, frame: Any) -> None:
        fired.append(True)
        raise TaskTimeoutSignal()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        value = fn(**kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if fired:  # the body caught the signal and carried on: it still ran out of time
        raise TaskTimeoutSignal()
    return value


def _in_thread(fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float, name: str) -> Any:
    outcome: dict[str, Any] = {}
    ctx = contextvars.copy_context()  # the body sees the run's task context

    def body() -> None:
        try:
            outcome["value"] = ctx.run(fn, **kwargs)
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=body, name=f"stateledger-task-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TaskTimeoutSignal()  # the thread cannot be killed; it is left to finish on its own
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
