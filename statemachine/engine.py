"""Runs a flow: tasks in dependency order, retries, triggers, skips, timeouts.

Every state change goes through ``pipeline.transition``; this module only
decides what to propose next. A task waiting to retry does not block other
ready tasks: it waits in a queue ordered by its ``start_time``.
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import logging
import os
import re
import threading
import time
from collections import deque
from typing import Any, Mapping

from . import wiring
from .context import current_run_id, running
from .errors import ArgumentError, ParameterError
from .flow import Flow
from .interrupts import Interrupts, transition
from .pipeline import Runtime, Subject
from .signals import ENDRUN, StateSignal
from .states import (
    Failed, Pending, Retrying, Running, Scheduled, Skipped, State, Success, TimedOut, TriggerFailed, utcnow,
)
from .task import Parameter, Task

__all__ = ["FlowRunner", "new_run_id", "current_run_id"]

log = logging.getLogger("stateledger")

SKIP_MESSAGE = (
    "Upstream task was skipped; if this was not the intended behavior, "
    "consider changing `skip_on_upstream_skip=False` for this task."
)


class _TaskTimeout(Exception):
    pass


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
        self.subjects = {
            t: Subject(t, "task", t.name, flow.key_of(t), t.state_handlers) for t in self.order
        }

    # --- the flow -------------------------------------------------------------

    def run(self) -> State:
        flow = self.flow
        subject = Subject(flow, "flow", flow.name, flow.name, flow.state_handlers)
        log.info("flow %s: run %s starting (%d tasks)", flow.name, self.run_id, len(self.order))
        interrupts, stopped = Interrupts(), None
        with running(self.run_id), interrupts, self.claim():
            try:
                state, halted = transition(subject, Scheduled(), Running("Running flow."), self.rt)
                if not halted:
                    self.run_tasks()
                    final = self.final_flow_state()
                    if final is not None:
                        state, _ = transition(subject, state, final, self.rt)
            except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, or a task raising it: end Cancelled
                stopped = exc
                state = interrupts.cancel(subject, self.subjects.values(), self.rt, exc)
                self.states.update((t, interrupts.committed[("task", s.key)][1]) for t, s in self.subjects.items()
                                   if ("task", s.key) in interrupts.committed)
        if stopped is not None:
            log.warning("flow %s: run %s cancelled (%s)", flow.name, self.run_id, interrupts.reason(stopped))
            state.result = dict(self.states)
            state.context["run_id"] = self.run_id
            interrupts.exit(stopped)  # raises as the signal would have, unless the program's handler returns
        if state.result is None:
            state.result = dict(self.states)
        state.context["run_id"] = self.run_id
        log.info("flow %s: run %s ended %r", flow.name, self.run_id, state)
        return state

    def claim(self) -> Any:
        """The run's claim on its id and its heartbeat, when the ledger keeps them (``open_run``)."""
        open_run = getattr(self.rt.ledger, "open_run", None)
        return open_run(self.run_id, self.flow.name) if callable(open_run) else contextlib.nullcontext()

    def final_flow_state(self) -> State | None:
        """The documented final state (Prefect 1's messages), or None while a reference task is unfinished (Paused)."""
        for t in self.order:  # tasks that never started (downstream of a pause) stay Pending
            if t not in self.states:
                self.states[t] = Pending()
        refs = [self.states[t] for t in self.flow.reference_tasks()]
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
        """One attempt of ``task`` from ``state`` (Pending or Retrying); returns where it ended."""
        subject, rt = self.subjects[task], self.rt
        attempt = self.run_counts[task] = self.run_counts.get(task, 0) + 1

        if not isinstance(state, Retrying):
            refusal = self.check_upstream(task)
            if refusal is not None:
                return transition(subject, state, refusal, rt, attempt)[0]

        state, halted = transition(subject, state, Running("Starting task run."), rt, attempt)
        if halted or not isinstance(state, Running):  # a handler may have rewritten the start
            return state

        state, halted = transition(subject, state, self.execute(task), rt, attempt)
        if halted:
            return state

        if state.is_failed() and not isinstance(state, TriggerFailed) and attempt <= task.max_retries:
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
        edges = self.flow.upstream_edges(task)
        if not edges:
            return None
        upstream = {e.upstream: self.states[e.upstream] for e in edges}
        if task.skip_on_upstream_skip and any(isinstance(s, Skipped) for s in upstream.values()):
            return Skipped(SKIP_MESSAGE)
        try:
            task.trigger(upstream)
        except (StateSignal, ENDRUN) as signal:
            return signal.to_state()
        except Exception as exc:
            return TriggerFailed(f"Trigger {getattr(task.trigger, '__name__', task.trigger)!r} raised {exc!r}", result=exc)
        return None

    def execute(self, task: Task) -> State:
        """Run the task's body; turn its outcome into the proposed state."""
        try:
            if isinstance(task, Parameter):
                value = task.value_from(self.parameters)
            else:
                value = self.call(task, self.inputs(task))
        except _TaskTimeout:
            return TimedOut("Task timed out during execution.")
        except (StateSignal, ENDRUN) as signal:
            return signal.to_state()
        except Exception as exc:
            return Failed(f"Error during execution of task: {exc!r}", result=exc)
        return Success("Task run succeeded.", result=value)

    def inputs(self, task: Task) -> dict[str, Any]:
        kwargs = dict(self.flow.constants.get(task, ()))
        for edge in self.flow.upstream_edges(task):
            if edge.key is not None:
                kwargs[edge.key] = self.states[edge.upstream].result
        return kwargs

    @staticmethod
    def call(task: Task, kwargs: dict[str, Any]) -> Any:
        if task.timeout is None:
            return task.run(**kwargs)
        outcome: dict[str, Any] = {}

        def body() -> None:
            try:
                outcome["value"] = task.run(**kwargs)
            except BaseException as exc:  # handed back to the engine's thread below
                outcome["error"] = exc

        worker = threading.Thread(target=body, name=f"stateledger-task-{task.name}", daemon=True)
        worker.start()
        worker.join(task.timeout)
        if worker.is_alive():
            raise _TaskTimeout()  # the thread cannot be killed; it is left to finish on its own
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")
