"""The transition pipeline: every change of a task run's or flow run's state.

    propose → handlers → legality → commit → broadcast

``transition`` reads top to bottom; each step is a named function below it,
and a small frozen ``Move`` carries the transition from one step to the next.
Handlers fold like a processor chain: each gets the previous one's output and
``None`` keeps the proposal. Only after the ledger committed the event has the
state changed; listeners then see it and can no longer change it.
"""

from __future__ import annotations

import datetime
import functools
import logging
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

from . import graph, taskcontext
from .errors import IllegalTransitionError, LedgerError
from .events import Bus, Event, Ledger, current_actor, new_event_id
from .handlers import StateHandler
from .masking import mask, safe_repr
from .signals import ENDRUN, PAUSE, StateSignal
from .states import Failed, State

__all__ = ["Runtime", "Subject", "Move", "transition", "handler_name", "StateHandler"]

log = logging.getLogger("stateledger")
_now, _UTC = datetime.datetime.now, datetime.timezone.utc  # states.utcnow() without its call, once per commit

@dataclass(slots=True)
class Subject:
    """What is changing state: the Task or Flow, its kind, name and key in the run."""

    obj: Any
    kind: str  # "task" | "flow"
    name: str
    key: str
    handlers: Sequence[StateHandler] = ()


@dataclass(slots=True)
class Runtime:
    """Where one run's transitions go: its ledger, its bus and the global handlers."""

    run_id: str
    flow: str
    ledger: Ledger
    bus: Bus | None = None
    #: kind ("task" | "flow") -> global handlers, run after each object's own.
    global_handlers: dict[str, Sequence[StateHandler]] = field(default_factory=dict)


class Move(NamedTuple):
    """One transition on its way through the pipeline, handed from step to step (frozen).

    ``proposed`` is what the engine proposed (or, after a refused rewrite, the
    refused state); ``final`` what will be committed; ``rewritten_by`` names
    the handlers that changed it; ``halted`` ends the object's run.
    """

    old: State
    proposed: State
    final: State
    rewritten_by: tuple[str, ...] = ()
    halted: bool = False

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: a Move is frozen")


#: ``Move`` of ``(old, proposed, final, rewritten_by, halted)``, made in C: the pipeline makes one per
#: transition, and NamedTuple's own ``__new__`` is a Python function.
_move: Callable[[tuple[State, State, State, tuple[str, ...], bool]], Move] = functools.partial(tuple.__new__, Move)


def transition(
    subject: Subject, old: State, proposed: State, rt: Runtime, attempt: int = 1, *,
    via: str = "engine", reason: str | None = None, actor: str | None = None,
) -> tuple[State, bool]:
    """Move ``subject`` from ``old`` towards ``proposed``; return (committed state, halted).

    ``halted`` is true when a state handler failed or made an illegal rewrite:
    the object's run ends in the committed ``Failed`` state. ``via``: which
    edges of the graph the move may take (``"manual"`` for a mark, with its
    ``reason`` and ``actor`` recorded; ``"restart"``; see ``graph``).
    """
    global_handlers = rt.global_handlers.get(subject.kind)
    handlers = (*subject.handlers, *global_handlers) if global_handlers else subject.handlers
    move = _move((old, proposed, proposed, (), False))
    move = run_handlers(subject, move, handlers)
    move = check_legality(move, via)
    event = commit(rt, subject, move, attempt, reason, actor)
    broadcast(rt, subject, event)
    return move.final, move.halted


def run_handlers(subject: Subject, move: Move, handlers: Sequence[StateHandler]) -> Move:
    """Fold the handlers over the proposal; a raise or a non-State ends the chain as Failed.

    A handler that raises a signal sets that signal's state, as in Prefect 1:
    ``PAUSE`` and ``ENDRUN`` also end the object's run there (halted).
    """
    old, state = move.old, move.proposed
    rewritten_by: tuple[str, ...] = ()
    for handler in handlers:
        try:
            out = handler(subject.obj, old, state)
        except (StateSignal, ENDRUN) as signal:
            rewriters = (*rewritten_by, handler_name(handler))
            return Move(old, move.proposed, signal.state, rewriters, isinstance(signal, (PAUSE, ENDRUN)))
        except Exception as exc:
            name = handler_name(handler)
            if taskcontext.get("raise_on_exception"):
                raise
            text = safe_repr(exc)
            log.error("state handler %s raised %s on %s %s", name, text, subject.kind, subject.key, exc_info=True)
            failed = Failed(f"State handler {name} raised {text}", result=exc)
            return Move(old, move.proposed, failed, (*rewritten_by, name), True)
        if out is None or out is state:
            continue
        if not isinstance(out, State):
            name = handler_name(handler)
            exc = TypeError(
                f"state handler {name} returned {safe_repr(out)} ({type(out).__name__}), not a State; "
                "return the new state, or None to keep the proposal"
            )
            failed = Failed(f"State handler {name} returned a {type(out).__name__}, not a State", result=exc)
            return Move(old, move.proposed, failed, (*rewritten_by, name), True)
        if out != state or out.message != state.message:  # equality ignores the message
            rewritten_by = (*rewritten_by, handler_name(handler))
        state = out
    if state is move.proposed:
        return move
    return Move(old, move.proposed, state, rewritten_by)


def check_legality(move: Move, via: str = "engine") -> Move:
    """Refuse an illegal move: the engine's is a bug, a handler's rewrite becomes Failed.

    A refused rewrite is recorded as the proposal so the audit shows what was
    refused, and halts the object's run.
    """
    old, final = move.old, move.final
    if graph.is_legal(old, final, via):
        return move
    if not move.rewritten_by and via != "engine":
        raise IllegalTransitionError(
            f"{type(old).__name__} -> {type(final).__name__} is not a legal {via} transition "
            f"(`stateledger graph --manual` draws the edges a {via} may take).", old, final)
    if not move.rewritten_by:
        raise IllegalTransitionError(
            f"The engine proposed {old!r} -> {final!r}, which the legal state graph refuses. "
            "This is a bug in stateledger; please report it.",
            old,
            final,
        )
    name = move.rewritten_by[-1]
    message = (
        f"State handler {name} rewrote the move to {type(old).__name__} -> {type(final).__name__}, "
        "which is not a legal transition"
    )
    failed = Failed(message, result=IllegalTransitionError(message, old, final))
    return Move(old, final, failed, move.rewritten_by, True)


def commit(rt: Runtime, subject: Subject, move: Move, attempt: int, reason: str | None = None,
           actor: str | None = None) -> Event:
    """Append the event to the ledger; if that fails, the run stops here.

    The proposal is recorded exactly when a handler rewrote it; ``actor``
    defaults to this process (``user@host:pid``). Whatever the
    states hold, the ledger encodes it: only a storage failure (a
    ``LedgerError`` saying which) or a ledger that raises something else stops
    the run. The message names the states' types, never their contents.
    """
    old, final = move.old, move.final
    # Positional, in Event's field order: on every transition a keyword call
    # costs about 0.5 us more (benchmarks/engine.py); tests check every field.
    event = Event(
        rt.run_id,  # run_id
        _now(_UTC),  # timestamp
        subject.kind,  # kind
        subject.name,  # name
        subject.key,  # key
        attempt,  # attempt
        old,  # old_state
        final,  # new_state
        move.proposed if move.rewritten_by else None,  # proposed_state
        move.rewritten_by,  # rewritten_by
        actor or current_actor(),  # actor
        new_event_id(),  # event_id
        None,  # seq: the ledger numbers it
        None,  # prev_hash: the ledger chains it
        None,  # hash
        rt.flow,  # flow
        reason,  # reason: why a person marked it (None for every other move)
    )
    try:
        return rt.ledger.append(event)
    except LedgerError:
        raise
    except Exception as exc:
        raise LedgerError(
            f"Could not commit {subject.kind} {subject.key} {_short(old, repr)} -> {_short(final, repr)} "
            f"of run {rt.run_id}: the ledger ({type(rt.ledger).__name__}) raised {type(exc).__name__}: "
            f"{_short(exc)}; the run stopped here.",
            getattr(rt.ledger, "path", None),
        ) from exc


def _short(obj: Any, how: Callable[[Any], str] = str) -> str:
    """``str`` (or ``repr``) of ``obj``, masked, in at most 200 characters."""
    try:
        text = mask(how(obj))
    except Exception:
        return f"<unrepresentable {type(obj).__name__}>"
    return text if len(text) <= 200 else text[:200] + "…"


def broadcast(rt: Runtime, subject: Subject, event: Event) -> None:
    """Publish the committed event; the bus isolates its listeners."""
    if rt.bus is not None:
        rt.bus.publish(event, subject.obj)


def handler_name(handler: Any) -> str:
    """``module.qualname`` of a handler (of its class, for callable objects)."""
    target = handler
    if not hasattr(target, "__qualname__"):
        target = getattr(handler, "func", None) or type(handler)  # functools.partial, instances
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{getattr(target, '__qualname__', repr(target))}"
