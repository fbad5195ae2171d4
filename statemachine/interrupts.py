"""Ctrl-C and SIGTERM during ``flow.run()``: the run ends ``Cancelled`` in the ledger, then the signal's usual exit.

While ``flow.run()`` runs in the main thread, ``Interrupts`` replaces the
SIGINT and SIGTERM handlers (a signal the process ignores stays ignored) and
puts the previous ones back when the run returns. On the first signal:

1. the run stops where it is: a task body running in this thread is
   interrupted; a transition being committed completes first (the signal is
   held until its commit and broadcast are done, so the ledger and the
   engine never disagree about a committed state);
2. the engine gives its executor up (pending bodies are cancelled; bodies
   already running on other threads or workers are left to end, unheard);
3. every task that is not finished (running, waiting to retry, or not
   started) and then the flow move to ``Cancelled`` through the pipeline
   (handlers, legality, commit, broadcast), in the flow-run thread;
4. the signal's usual exit: SIGINT raises ``KeyboardInterrupt`` (a plain
   one, so an uncaught Ctrl-C still ends Python the usual way); SIGTERM
   raises ``SystemExit(143)`` (128 + 15, the shell's code for it); a handler
   the program had installed itself is called instead, and if it returns,
   ``flow.run()`` returns the ``Cancelled`` state.

A second signal during all this stops at once (``KeyboardInterrupt``, or
``SystemExit(143)`` for SIGTERM, raised where the run is): what was
committed stays committed and chained, and the run, left unfinished, is an
orphan for ``EventStore.reap``. A task body that raises
``KeyboardInterrupt`` itself is handled as a first Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from contextvars import ContextVar
from typing import Any, Callable, Iterable, Mapping

from . import pipeline
from .pipeline import Runtime, Subject
from .states import Cancelled, Pending, Scheduled, State

__all__ = ["Interrupts", "transition"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)
_NAMES = {getattr(signal, "SIGINT", -1): "SIGINT (Ctrl-C)", getattr(signal, "SIGTERM", -1): "SIGTERM"}

_current: ContextVar[Interrupts | None] = ContextVar("stateledger_interrupts", default=None)


def _stop(signum: int, again: bool = False) -> BaseException:
    """What a signal raises where the run is: a second SIGTERM exits at once, anything else is a Ctrl-C."""
    if again and signum == getattr(signal, "SIGTERM", None):
        return SystemExit(128 + signum)
    return KeyboardInterrupt()


class Interrupts:
    """One flow run's signal handling, and the states its transitions committed.

    A context manager around the run; ``cancel`` moves what is unfinished to
    ``Cancelled``, ``exit`` then ends as the signal would have (module docstring).
    """

    __slots__ = ("signum", "pending", "depth", "cancelling", "previous", "committed", "_token")  # read per move

    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal received
        self.pending = False  # a signal arrived during a transition: raise when it is done
        self.depth = 0  # transitions in progress (in this thread)
        self.cancelling = False
        self.previous: dict[int, Any] = {}
        #: (kind, key) -> (subject, committed state, attempt), in commit order
        self.committed: dict[tuple[str, str], tuple[Subject, State, int]] = {}
        self._token: Any = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                previous = signal.getsignal(signum)
                if previous is signal.SIG_IGN or previous is None:
                    continue  # ignored on purpose, or a handler not installed from Python: leave it
                self.previous[signum] = previous
                signal.signal(signum, self._handle)
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.reset(self._token)
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise _stop(signum, again=True)
        self.signum = signum
        if self.depth:
            self.pending = True  # raised once the transition in progress committed
            return
        raise _stop(signum)

    def held(self, cm: Any) -> contextlib.ExitStack:
        """Enter ``cm`` (the run's claim on its id) with a first signal held until the next commit."""
        stack = contextlib.ExitStack()
        self.depth += 1
        try:
            stack.enter_context(cm)
        finally:
            self.depth -= 1
        return stack

    # --- after the run stopped ------------------------------------------------------

    def reason(self, exc: BaseException) -> str:
        """What stopped the run, for the ``Cancelled`` messages."""
        if self.signum is not None:
            return f"{_NAMES.get(self.signum, f'signal {self.signum}')} received"
        return f"a task raised {type(exc).__name__}"

    def cancel(self, flow: Subject, tasks: Iterable[Subject], rt: Runtime, exc: BaseException,
               known: Mapping[Any, State] | None = None) -> State:
        """Move every unfinished task, then the flow, to ``Cancelled``; return the flow's state.

        ``known``: the engine's states by task, for tasks this run did not move
        (a restart's tasks that are done stay as they are).
        """
        self.cancelling = True
        why = self.reason(exc)
        subjects = {(s.kind, s.key): s for s in tasks}
        for key, (subject, _, _) in self.committed.items():
            subjects.setdefault(key, subject)  # e.g. mapped children, not in the flow's own list
        for key, subject in subjects.items():
            if subject.kind != "task":
                continue
            found = self.committed.get(key)
            old, attempt = (found[1], found[2]) if found else ((known or {}).get(subject.obj) or Pending(), 1)
            if old.is_finished():
                continue
            started = "" if found and not old.is_pending() else " before it ran"
            state, _ = pipeline.transition(
                subject, old, Cancelled(f"Task run was cancelled{started}: {why}."), rt, attempt)
            self.committed[key] = (subject, state, attempt)
        found = self.committed.get(("flow", flow.key))
        state = found[1] if found else Scheduled()
        if not state.is_finished():
            state, _ = pipeline.transition(flow, state, Cancelled(f"Flow run was cancelled: {why}."), rt)
            self.committed[("flow", flow.key)] = (flow, state, 1)
        return state

    def exit(self, exc: BaseException) -> None:
        """End as the signal would have (after ``__exit__`` restored the handlers); may return."""
        signum = self.signum
        if signum is None:
            raise exc  # a task raised KeyboardInterrupt: pass it on
        previous = self.previous.get(signum, signal.default_int_handler)
        if previous is signal.default_int_handler:
            raise exc
        if previous == signal.SIG_DFL:
            raise SystemExit(128 + signum) from exc
        handler: Callable[[int, Any], Any] = previous
        handler(signum, None)  # the program's own handler; if it returns, so does flow.run()


def transition(
    subject: Subject, old: State, proposed: State, rt: Runtime, attempt: int = 1, **how: Any
) -> tuple[State, bool]:
    """``pipeline.transition``, holding a first signal until the move is committed and broadcast.

    The engine (and a restart) call this one, with ``pipeline.transition``'s
    keywords (``via=``): it also notes each committed state, so a
    cancellation knows where every task is.
    """
    guard = _current.get()
    if guard is None:
        return pipeline.transition(subject, old, proposed, rt, attempt, **how)
    guard.depth += 1
    try:
        if how:
            state, halted = pipeline.transition(subject, old, proposed, rt, attempt, **how)
        else:  # the engine's every move: a plain call costs less than passing on an empty **how
            state, halted = pipeline.transition(subject, old, proposed, rt, attempt)
        guard.committed[(subject.kind, subject.key)] = (subject, state, attempt)
    finally:
        guard.depth -= 1
    if guard.pending and not guard.depth and not guard.cancelling:
        guard.pending = False
        raise _stop(guard.signum or 0)
    return state, halted
