"""Manual marks: a person sets a task's (or the flow's) state by hand, through the pipeline.

``mark(store, run_id, key, state, reason=..., by=...)`` is ``EventStore.mark``
and ``stateledger mark``. The mark is one ordinary transition of the run:
global state handlers see it (and may rewrite it), the graph's *manual edges*
decide whether it is legal (any state to a finished one; never back to
``Running`` or a pending state), the ledger commits it with ``actor`` = who
and ``reason`` = why, and the bus broadcasts it (durable subscriptions read it
from the ledger like any event). A refused mark writes nothing.

After a task is marked, the flow's state is recomputed from its reference
tasks (the keys the flow's run recorded in its ``Scheduled`` state; every task
of the run for a ledger written before that was recorded): a flow event is
committed when the flow's state changes, e.g. ``Failed -> Success`` once the
failed task was marked ``Success``.
"""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Any

from statemachine import graph, wiring
from statemachine.errors import ArgumentError, IllegalTransitionError
from statemachine.events import Event
from statemachine.pipeline import Runtime, Subject, transition
from statemachine.restart import REFERENCE_TASKS
from statemachine.states import STATE_CLASSES, Failed, State, Success

from . import codec
from .mapper import Mapper
from .protocol import Query, run_not_found
from .replay import StandIn

if TYPE_CHECKING:
    from .store import EventStore

__all__ = ["mark", "os_user", "REFERENCE_TASKS"]


def os_user() -> str:
    """The login name of this process's user (the default ``by`` of a mark)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): the uid
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def mark(store: EventStore, run_id: str, key: str, state: Any, *, reason: str, by: str | None = None) -> Event:
    """Mark ``key`` (a task key, or the flow's name) of ``run_id`` as ``state``; return the committed event.

    ``state``: a ``State`` (kept as given), a state class or its name
    (``"Success"``: the message then says who marked it and why). ``reason``
    is required; ``by`` defaults to the OS user. Raises
    ``IllegalTransitionError`` (nothing written) when the manual edges do not
    allow the move, ``ArgumentError`` for an unknown key or state.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ArgumentError(
            f"A mark needs a reason (who reads the audit should know why), got {reason!r}; "
            'pass reason="..." (or --reason "...")', "reason", reason)
    if by is not None and (not isinstance(by, str) or not by.strip()):
        raise ArgumentError(f"by= names who marks the state, got {by!r}; leave it out for the OS user", "by", by)
    who = by or os_user()
    last = _last_event(store, run_id, key)
    new = _new_state(state, who, reason)
    old = last.new_state
    if not graph.is_legal(old, new, "manual"):
        raise IllegalTransitionError(
            f"Cannot mark {last.kind} {key} of run {run_id} as {type(new).__name__}: it is "
            f"{type(old).__name__}, and a mark may only move a state to a finished one ("
            + ", ".join(sorted({b for _, b in graph.manual_edges()}))
            + "), never back to Running or a pending state. Nothing was written "
            "(`stateledger graph --manual` draws the edges).", old, new)
    rt = Runtime(run_id, last.flow, store, wiring.default_bus(), wiring.global_handlers())
    subject = Subject(StandIn(last.name, last.key, last.kind, last.flow), last.kind, last.name, last.key)
    transition(subject, old, new, rt, last.attempt, via="manual", reason=reason, actor=who)
    committed = store.events(run_id, kind=last.kind, key=last.key)[-1]
    if last.kind == "task":
        _recompute_flow(store, rt, run_id, reason, who)
    return committed


def _last_event(store: EventStore, run_id: str, key: str) -> Event:
    """The last event of the task ``key`` (or of the flow named ``key``) in the run."""
    if not isinstance(key, str) or not key:
        raise ArgumentError(f"key must be a task key (e.g. load-1) or the flow's name, got {key!r}", "key", key)
    for kind in ("task", "flow"):
        rows = store.recorder.select(Query(run_id=run_id, kind=kind, key=key))
        if rows:
            return Mapper.to_events(rows[-1:])[0]
    latest = store.recorder.latest(run_id)
    if not latest:
        raise run_not_found(store.recorder, run_id)
    keys = [r.key for r in latest if r.kind == "task"]
    raise ArgumentError(
        f"Run {run_id} has no task {key!r} (and its flow is {latest[0].flow!r}). Its task keys: "
        f"{', '.join(keys[:20]) or 'none'}{' ...' if len(keys) > 20 else ''}", "key", key)


def _new_state(state: Any, who: str, reason: str) -> State:
    """The state a mark proposes: ``state`` itself, or a new one of that class saying who and why."""
    if isinstance(state, State):
        return state
    cls = state if isinstance(state, type) and issubclass(state, State) else None
    if cls is None and isinstance(state, str):
        cls = STATE_CLASSES.get(state) or {n.lower(): c for n, c in STATE_CLASSES.items()}.get(state.lower())
    if cls is None:
        raise ArgumentError(
            f"Cannot mark a state as {state!r}: give a State, a state class or its name "
            "(e.g. Success, Failed, Skipped, Cancelled)", "state", state)
    return cls(f"Marked {cls.__name__} by {who}: {reason}")


def _recompute_flow(store: EventStore, rt: Runtime, run_id: str, reason: str, who: str) -> None:
    """Commit the flow's new state when its reference tasks now say otherwise."""
    flows = store.recorder.select(Query(run_id=run_id, kind="flow"))
    if not flows:
        return
    flow_event = Mapper.to_events(flows[-1:])[0]
    refs: list[str] | None = None
    for row in reversed(flows):  # the flow's latest Scheduled state records its reference tasks
        for text in (row.new_state, row.old_state):
            found = codec.state_from_json(text).context.get(REFERENCE_TASKS) if REFERENCE_TASKS in text else None
            if found is not None:
                refs = list(found)
                break
        if refs is not None:
            break
    tasks = {r.key: r for r in store.recorder.latest(run_id) if r.kind == "task"}
    states = [codec.state_from_json(tasks[k].new_state) for k in (refs if refs is not None else tasks) if k in tasks]
    if not states or not all(s.is_finished() for s in states):
        return
    current = flow_event.new_state
    if any(s.is_failed() for s in states):
        final: State = Failed("Some reference tasks failed.")
    else:
        final = Success("All reference tasks succeeded.")
    if type(current) is type(final):
        return
    subject = Subject(StandIn(flow_event.name, flow_event.key, "flow", flow_event.flow), "flow",
                      flow_event.name, flow_event.key)
    transition(subject, current, final, rt, flow_event.attempt, via="manual", reason=reason, actor=who)
