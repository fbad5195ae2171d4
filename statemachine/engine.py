"""Runs a flow: tasks in dependency order, retries, triggers, skips, timeouts.

Every state change goes through ``pipeline.transition``; this module only
decides what to propose next. A task waiting to retry does not block other
ready tasks: it waits in a queue ordered by its ``start_time``.
"""

from __future__ import annotations

import datetime
import heapq
import logging
import os
import re
import time
from collections import deque
from typing import Any, Mapping

from . import graph, mapping, taskcontext, timeouts, wiring
from .context import current_run_id, reset_task_values, running, set_computed_task_values
from .errors import ArgumentError, LedgerError, ParameterError, TaskTimeoutSignal
from .flow import Flow
from .pipeline import Runtime, Subject, handler_name, transition
from .signals import ENDRUN, LOOP, SUCCESS, TRIGGERFAIL, StateSignal
from .states import (
    Failed, Looped, Pending, Retrying, Running, Scheduled, Skipped, State, Success, TimedOut, TriggerFailed,
    utcnow,
)
from .task import Parameter, Task
from .triggers import SKIP_MESSAGE

__all__ = ["FlowRunner", "new_run_id", "current_run_id"]

log = logging.getLogger("stateledger")





def new_run_id(flow_name: str) -> str:
    """A readable, unique run id: ``<flow>-<UTC time>-<random>``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", flow_name).strip("-") or "flow"
    return f"{slug}-{utcnow():%Y%m%dT%H%M%S}-{os.urandom(3).hex()}"


class FlowRunner:
    """One run of one flow."""

    def __init__(
        self,
        flow: Flow,
        parameters: Mapping[str, Any] | None = None,
        store: Any = None,
        run_id: str | None = None,
    ) -> None:
        self.flow = flow
        self.order = flow.sorted_tasks()  # raises CycleError before anything is recorded
        self.parameters = flow.check_parameters(parameters)
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise ParameterError(f"run_id must be a non-empty string, got {run_id!r}")
        self.run_id = run_id or new_run_id(flow.name)
        ledger = store if store is not None else wiring.default_ledger()
        if not callable(getattr(ledger, "append", None)):
            raise ArgumentError(f"store must be an EventStore (or have append(event)), got {store!r}", "store", store)
        self.rt = Runtime(self.run_id, flow.name, ledger, wiring.default_bus(), wiring.global_handlers())
        self.states: dict[Task, State] = {}
        self.run_counts: dict[Task, int] = {}
        self.loops: dict[Task, dict[str, Any]] = {}  # a looping task's next loop count and result
        self.raise_after: Exception | None = None  # raise_on_exception: raised once its Failed is committed
        self.children: dict[Task, mapping.Child] = {}  # mapped children (see statemachine.mapping)
        self.mapped = {t for t in self.order if mapping.is_mapped(flow, t)}  # parents of mapped children
        self.subjects = {
            t: Subject(t, "task", t.name, flow.key_of(t), t.state_handlers) for t in self.order
        }

    # --- the flow -------------------------------------------------------------

    def run(self) -> State:
        flow = self.flow
        subject = Subject(flow, "flow", flow.name, flow.name, flow.state_handlers)
        log.info("flow %s: run %s starting (%d tasks)", flow.name, self.run_id, len(self.order))
        with running(self.run_id):
            state, halted = transition(subject, Scheduled(), Running("Running flow."), self.rt)
            if not halted:
                try:
                    self.run_tasks()
                except Exception as exc:
                    if not taskcontext.get("raise_on_exception") or isinstance(exc, LedgerError):
                        raise
                    # raise_on_exception: the flow's end is recorded, then the task's error raised
                    failed = Failed(f"Unexpected error while running flow: {exc!r}", result=exc)
                    transition(subject, state, failed, self.rt)
                    raise
                final = self.terminal_state(state, self.final_flow_state())
                if final is not None:
                    state, _ = transition(subject, state, final, self.rt)
        if state.result is None:
            state.result = dict(self.states)
        state.context["run_id"] = self.run_id
        log.info("flow %s: run %s ended %r", flow.name, self.run_id, state)
        return state

    def final_flow_state(self) -> State | None:
        """The documented final state (Prefect 1's messages), or None while a reference task is unfinished (Paused)."""
        for t in self.order:  # tasks that never started (downstream of a pause) stay Pending
            if t not in self.states:
                self.states[t] = Pending()
        refs = mapping.expand(self.states[t] for t in self.flow.reference_tasks())
        if not all(s.is_finished() for s in refs):
            return None
        if any(s.is_failed() for s in refs):
            return Failed("Some reference tasks failed.", result=self.states)
        return Success("All reference tasks succeeded.", result=self.states)

    def run_tasks(self) -> None:
        """Run every task once its upstream tasks finished; retries wait in a heap."""
        flow, states = self.flow, self.states
        remaining = {t: len(flow.upstream_edges(t)) for t in self.order}
        ready = deque(t for t in self.order if remaining[t] == 0)
        waiting: list[tuple[datetime.datetime, int, Task]] = []
        tie = 0
        while ready or waiting:
            if waiting and (not ready or waiting[0][0] <= utcnow()):
                start, _, t = heapq.heappop(waiting)
                delay = (start - utcnow()).total_seconds()
                if delay > 0:
                    time.sleep(delay)
            else:
                t = ready.popleft()
            state = states[t] = self.run_task(t, states.get(t) or Pending())
            if isinstance(state, Retrying):
                tie += 1
                heapq.heappush(waiting, (state.start_time, tie, t))
            elif state.is_finished():
                for edge in flow.downstream_edges(t):
                    d = edge.downstream
                    remaining[d] -= 1
                    if remaining[d] == 0:
                        ready.append(d)

    # --- one task attempt -----------------------------------------------------

    def run_task(self, task: Task, state: State) -> State:
        """One attempt of ``task`` from ``state`` (Pending or Retrying); returns where it ended.

        Its handlers and body see the attempt in ``taskcontext`` (Prefect 1's context).
        """
        if task in self.mapped:
            return mapping.run_mapped(self, task, state)
        token = set_computed_task_values(lambda: self.task_context(task))
        try:
            return self.attempt(task, state)
        finally:
            reset_task_values(token)

    def attempt(self, task: Task, state: State) -> State:
        """``run_task``'s work: upstream checks, Running, the body, loops, a retry."""
        subject, rt = self.subjects[task], self.rt
        attempt = self.run_counts[task] = self.run_counts.get(task, 0) + 1

        if not isinstance(state, Retrying):
            refusal = self.check_upstream(task)
            if refusal is not None:
                return transition(subject, state, refusal, rt, attempt)[0]

        while True:
            state, halted = transition(subject, state, Running("Starting task run."), rt, attempt)
            if halted or not isinstance(state, Running):  # a handler may have rewritten the start
                return state
            state, halted = transition(subject, state, self.execute(task, attempt), rt, attempt)
            if self.raise_after is not None:
                raise self.raise_after
            if halted or not isinstance(state, Looped):
                break
            # LOOP: the next iteration starts from Pending with the loop's result (Prefect 1)
            self.loops[task] = {"task_loop_count": state.loop_count + 1, "task_loop_result": state.result}
            again = Pending(f"Looping task (on loop index {state.loop_count})")
            state, halted = transition(subject, state, again, rt, attempt)
            if halted or not isinstance(state, Pending):
                return state
        if halted:
            return state

        if (state.is_failed() and not isinstance(state, TriggerFailed) and attempt <= task.max_retries
                and task.retries_on(state.result)):
            retry = Retrying(
                f"Retrying Task (after attempt {attempt} of {task.max_retries + 1})",
                result=state.result,
                start_time=utcnow() + task.retry_delay,
                run_count=attempt,
            )
            state, halted = transition(subject, state, retry, rt, attempt)
        return state

    def check_upstream(self, task: Task) -> State | None:
        """The state a task ends in without running (upstream skip, trigger), or None to run."""
        child = self.children.get(task)
        if child is not None:
            upstream = child.upstream
        else:
            upstream = {e.upstream: self.states[e.upstream] for e in self.flow.upstream_edges(task)}
        if task.skip_on_upstream_skip and any(isinstance(s, Skipped) for s in mapping.expand(upstream.values())):
            return Skipped(SKIP_MESSAGE)
        try:  # root tasks too, with {} (Prefect 1: manual_only pauses a root task)
            if not task.trigger(upstream):
                raise TRIGGERFAIL("Trigger failed")
        except (StateSignal, ENDRUN) as signal:
            return signal.to_state()
        except Exception as exc:
            if taskcontext.get("raise_on_exception"):
                raise
            return TriggerFailed(f"Unexpected error while checking task trigger: {exc!r}", result=exc)
        return None

    def execute(self, task: Task, attempt: int = 1) -> State:
        """Run the task's body; turn its outcome into the proposed state."""
        try:
            if isinstance(task, Parameter):
                value = task.value_from(self.parameters)
            else:
                value = self.call(task, self.inputs(task))
        except TaskTimeoutSignal as exc:
            return TimedOut("Task timed out during execution.", result=exc)
        except (LOOP, SUCCESS) as signal:
            state = signal.state
            if isinstance(state, Looped) and not state.message:
                state.message = f"Task is looping ({state.loop_count})"
            return state
        except (StateSignal, ENDRUN) as signal:  # signals never raise, even with raise_on_exception
            return body_state(task, signal.state)
        except Exception as exc:
            if taskcontext.get("raise_on_exception"):
                self.raise_after = exc
            return Failed(f"Error during execution of task: {exc!r}", result=exc)
        return Success("Task run succeeded.", result=value)

    def task_context(self, task: Task) -> dict[str, Any]:
        """What ``statemachine.taskcontext`` tells a running task (Prefect 1's context keys)."""
        return {
            "flow_name": self.flow.name, "flow_run_id": self.run_id, "parameters": dict(self.parameters),
            "task_name": task.name, "task_full_name": task.name, "task_key": self.subjects[task].key,
            "task_run_count": self.run_counts.get(task, 1), "map_index": None, **self.loops.get(task, {}),
            **self.child_context(task),
        }

    def child_context(self, task: Task) -> dict[str, Any]:
        child = self.children.get(task)
        if child is None:
            return {}
        return {"map_index": child.index, "task_full_name": f"{task.name}[{child.index}]"}

    def terminal_state(self, state: State, final: State | None) -> State | None:
        """``final``, or what the flow's ``terminal_state_handler(flow, state, reference states)`` makes of it."""
        handler = self.flow.terminal_state_handler
        if handler is None:
            return final
        current = final if final is not None else state
        key_states = set(mapping.expand(self.states[t] for t in self.flow.reference_tasks()))
        try:
            new = handler(self.flow, current, key_states)
        except Exception as exc:
            if taskcontext.get("raise_on_exception"):
                raise
            name = handler_name(handler)
            log.error("terminal state handler %s raised %r", name, exc, exc_info=True)
            return Failed(f"Terminal state handler {name} raised {exc!r}", result=exc)
        if new is None or new is current:
            return final
        if not isinstance(new, State):
            name = handler_name(handler)
            return Failed(f"Terminal state handler {name} returned a {type(new).__name__}, not a State",
                          result=TypeError(f"terminal_state_handler returned {new!r}"))
        return new

    def inputs(self, task: Task) -> dict[str, Any]:
        if task in self.children:
            return dict(self.children[task].inputs)
        kwargs = dict(self.flow.constants.get(task, ()))
        for edge in self.flow.upstream_edges(task):
            if edge.key is not None:
                kwargs[edge.key] = mapping.edge_value(edge, self.states[edge.upstream])
        return kwargs

    @staticmethod
    def call(task: Task, kwargs: dict[str, Any]) -> Any:
        return timeouts.run_with_timeout(task.run, kwargs, task.timeout, task.name)


def body_state(task: Task, state: State) -> State:
    """The state a body's signal or ENDRUN names, or Failed when no task may end its run there."""
    if graph.is_legal(Running(), state):
        return state
    return Failed(
        f"Task {task.name!r} ended its run with ENDRUN({state!r}), which a running task cannot move to; "
        "end it in a finished, pending or retrying state",
        result=state,
    )
