"""The event record, and the two small protocols the pipeline talks to.

An ``Event`` is one committed transition of a task run or a flow run. The
pipeline builds it with ``seq``, ``prev_hash`` and ``hash`` empty; the ledger's
``append`` fills them in when it commits and returns the event. The ledger and
the bus are protocols so the core knows nothing of SQLite or blinker.
"""

from __future__ import annotations

import datetime
import itertools
import os
from dataclasses import dataclass
from typing import Any, Protocol

from .states import State

__all__ = ["Event", "Ledger", "Bus", "current_actor", "current_host", "new_event_id"]


@dataclass(slots=True, eq=False)
class Event:
    """One committed transition, as the ledger records it."""

    run_id: str
    timestamp: datetime.datetime
    kind: str  # "flow" | "task"
    name: str
    key: str
    attempt: int
    old_state: State
    new_state: State
    proposed_state: State | None = None  # the proposal, when a handler rewrote it
    rewritten_by: tuple[str, ...] = ()  # "module.qualname" of each rewriting handler
    actor: str = ""  # "user@host:pid" of the committing process; for a manual mark, who marked it
    event_id: str = ""
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    flow: str = ""  # the flow's name (for task events too)
    reason: str | None = None  # why a person marked this state by hand (``store.mark``); None otherwise

    @property
    def traceback(self) -> str | None:
        """Where the task failed, when this event's new state is a failure with one (else None)."""
        from .tracebacks import traceback_of

        return traceback_of(self.new_state)

    def __repr__(self) -> str:
        return (
            f"<Event seq={self.seq} run={self.run_id} {self.kind} {self.key} "
            f"{self.old_state!r} -> {self.new_state!r}>"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _COMPARED)


_COMPARED = (
    "seq", "event_id", "run_id", "timestamp", "kind", "name", "key", "attempt",
    "old_state", "new_state", "proposed_state", "rewritten_by", "actor", "prev_hash", "hash", "flow",
    "reason",
)


class Ledger(Protocol):
    """Where committed events go. ``append`` returns only once the event is durable."""

    def append(self, event: Event) -> Event: ...


class Bus(Protocol):
    """Where committed events are broadcast; ``sender`` is the Task or Flow."""

    def publish(self, event: Event, sender: Any = None) -> None: ...


_actor: str | None = None


def current_actor() -> str:
    """``user@host:pid`` of this process (recomputed after a fork)."""
    return _actor or _make_actor()


def _make_actor() -> str:
    global _actor
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no login name (some containers): fall back to the uid
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    _actor = f"{user}@{current_host()}:{os.getpid()}"
    return _actor


def current_host() -> str:
    """This machine's name: what ``socket.gethostname()`` returns, without importing socket."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


_id_prefix = os.urandom(6).hex()
_id_counter = itertools.count(1)


def new_event_id() -> str:
    """A globally unique event id: 12 random hex digits per process, then a counter.

    Far cheaper than ``uuid4()`` on the hot path, and as unique in practice.
    """
    return f"{_id_prefix}{next(_id_counter):010x}"


def _after_fork() -> None:
    """A forked child is another process: its own actor (pid) and its own id prefix."""
    global _actor, _id_prefix, _id_counter
    _actor, _id_prefix, _id_counter = None, os.urandom(6).hex(), itertools.count(1)


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere a new process imports this module afresh
    os.register_at_fork(after_in_child=_after_fork)
