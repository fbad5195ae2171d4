"""Runs a flow: tasks in dependency order, retries, triggers, skips, timeouts, loops, maps.

Every state change goes through ``pipeline.transition``, in this thread; this
module only decides what to propose next. Task bodies run on the executor's
pool (``statemachine.executors``): a task starts as soon as its upstream
tasks finished, and whichever body ends first is committed first. A task
waiting to retry does not block other ready tasks: it waits in a queue
ordered by its ``start_time``. A mapped task's children (``statemachine.mapping``)
are scheduled like tasks; the parent settles once they all have.
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import logging
import os
import queue
import re
import time
from collections import deque
from typing import Any, Callable, Iterable, Mapping

from . import graph, mapping, taskcontext, timeouts, wiring
from .context import current_run_id, reset_task_values, running, set_computed_task_values
from .errors import ArgumentError, ExecutorSpecError, LedgerError, ParameterError, TaskTimeoutSignal
from .executors import Executor, LocalExecutor, Outcome, Pool
from .flow import Flow
from .interrupts import Interrupts, transition
from .masking import load_known_secrets, safe_repr
from .pipeline import Runtime, Subject, handler_name
from .restart import REFERENCE_TASKS, Restart
from .signals import ENDRUN, LOOP, SUCCESS, TRIGGERFAIL, StateSignal
from .states import (
    Failed, Looped, Mapped, Pending, Retrying, Running, Scheduled, Skipped, State, Success, TimedOut,
    TriggerFailed, utcnow,
)
from .task import Parameter, Task
from .triggers import SKIP_MESSAGE, all_successful

__all__ = ["FlowRunner", "new_run_id", "current_run_id", "SKIP_MESSAGE"]

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
        executor: Executor | None = None,
        restart: str | None = None,
    ) -> None:
        self.flow = flow
        self.order = flow.sorted_tasks()  # raises CycleError before anything is recorded
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise ParameterError(f"run_id must be a non-empty string, got {run_id!r}")
        if restart is not None and run_id is not None and run_id != restart:
            raise ArgumentError(f"restart={restart!r} continues that run; leave run_id= out", "run_id", run_id)
        self.run_id = restart or run_id or new_run_id(flow.name)
        load_known_secrets()  # every secret is masked from the first event on
        if executor is not None and not isinstance(executor, Executor):
            raise ExecutorSpecError(
                f"executor must be a LocalExecutor, ThreadExecutor or DaskExecutor "
                f"(from statemachine.executors), got {executor!r}"
            )
        self.executor = executor if executor is not None else LocalExecutor()
        ledger = store if store is not None else wiring.default_ledger()
        if not callable(getattr(ledger, "append", None)):
            raise ArgumentError(f"store must be an EventStore (or have append(event)), got {store!r}", "store", store)
        self.states: dict[Task, State] = {}
        self.run_counts: dict[Task, int] = {}
        self.attempt_base: dict[Task, int] = {}  # attempts of earlier runs of this run (a restart)
        self.done: dict[Task, State] = {}  # tasks a restart does not run again
        self.subjects = {
            t: Subject(t, "task", t.name, flow.key_of(t), t.state_handlers) for t in self.order
        }
        self.restart = Restart(self, ledger, restart) if restart is not None else None
        if self.restart is not None:
            parameters = self.restart.parameters(parameters)
        self.parameters = flow.check_parameters(parameters)
        self.rt = Runtime(self.run_id, flow.name, ledger, wiring.default_bus(), wiring.global_handlers())
        self.running: dict[Task, _Running] = {}  # bodies on the executor's pool
        self.deadlines: dict[Task, float] = {}  # of running bodies with a timeout (time.monotonic())
        self.ended: queue.SimpleQueue = queue.SimpleQueue()  # (task, token, Outcome) as bodies end
        self.tie = 0  # orders retries due at the same time
        self.loops: dict[Task, dict[str, Any]] = {}  # a looping task's next loop count and result
        self.looping: set[Task] = set()  # tasks whose next start is a LOOP iteration (same attempt)
        self.raise_after: Exception | None = None  # raise_on_exception: raised once its Failed is committed
        self.mapped = {t for t in self.order if mapping.is_mapped(flow, t)}  # parents of mapped children
        self.children: dict[Task, mapping.Child] = {}  # mapped children (see statemachine.mapping)
        self.unsettled: dict[Task, int] = {}  # a Mapped parent -> how many children are still running
        self.ready: deque[Task] = deque()

    # --- the flow -------------------------------------------------------------

    def run(self) -> State:
        flow = self.flow
        subject = Subject(flow, "flow", flow.name, flow.name, flow.state_handlers)
        log.info("flow %s: run %s starting (%d tasks)", flow.name, self.run_id, len(self.order))
        # the flow is scheduled with its reference tasks: store.mark recomputes the flow's state from them
        scheduled = Scheduled(context={REFERENCE_TASKS: sorted(flow.key_of(t) for t in flow.reference_tasks())})
        attempt = self.restart.flow_attempt if self.restart is not None else 1
        pool = self.executor.start()  # before anything is recorded: one that cannot start records nothing
        interrupts, stopped = Interrupts(), None
        try:
            with running(self.run_id), interrupts, interrupts.held(self.claim()):
                try:
                    state, halted = self.restart.open(self, subject, scheduled) if self.restart else (scheduled, False)
                    if not halted:
                        state, halted = transition(subject, state, Running("Running flow."), self.rt, attempt)
                    if not halted:
                        try:
                            self.run_tasks(pool)
                        except Exception as exc:
                            if not taskcontext.get("raise_on_exception") or isinstance(exc, LedgerError):
                                raise
                            # raise_on_exception: the flow's end is recorded, then the task's error raised
                            failed = Failed(f"Unexpected error while running flow: {safe_repr(exc)}", result=exc)
                            transition(subject, state, failed, self.rt)
                            raise
                        final = self.terminal_state(state, self.final_flow_state())
                        if final is not None:
                            state, _ = transition(subject, state, final, self.rt, attempt)
                except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, or a task raising it: end Cancelled
                    stopped = exc
                    self.give_up(pool)
                    state = interrupts.cancel(subject, self.subjects.values(), self.rt, exc, self.states)
                    pool.close(abandon=True)  # after the ledger is done: a cluster may wait for running bodies
        except BaseException:
            pool.close(abandon=True)  # e.g. the ledger refused an append: do not wait for running bodies
            raise
        if stopped is None:
            pool.close()
        else:
            self.states.update((t, interrupts.committed[("task", s.key)][1]) for t, s in self.subjects.items()
                               if ("task", s.key) in interrupts.committed)
            log.warning("flow %s: run %s cancelled (%s)", flow.name, self.run_id, interrupts.reason(stopped))
            state.result = self.task_states()
            state.context["run_id"] = self.run_id
            interrupts.exit(stopped)  # raises as the signal would have, unless the program's handler returns
        if state.result is None:
            state.result = self.task_states()
        state.context["run_id"] = self.run_id
        log.info("flow %s: run %s ended %r", flow.name, self.run_id, state)
        return state

    def give_up(self, pool: Pool) -> None:
        """An interrupted run: cancel the bodies not started, leave the running ones to end unheard."""
        for body in list(self.running.values()):
            if body.handle is not None:
                pool.cancel(body.handle)
        self.running.clear()
        self.deadlines.clear()

    def claim(self) -> Any:
        """The run's claim on its id and its heartbeat, when the ledger keeps them (``open_run``)."""
        open_run = getattr(self.rt.ledger, "open_run", None)
        if not callable(open_run):
            return contextlib.nullcontext()
        return open_run(self.run_id, self.flow.name, restart=self.restart is not None)

    def final_flow_state(self) -> State | None:
        """The documented final state (Prefect 1's messages), or None while a reference task is unfinished (Paused)."""
        for t in self.order:  # tasks that never started (downstream of a pause) stay Pending
            if t not in self.states:
                self.states[t] = Pending()
        refs = mapping.expand(self.states[t] for t in self.flow.reference_tasks())
        if not all(s.is_finished() for s in refs):
            return None
        if any(s.is_failed() for s in refs):
            return Failed("Some reference tasks failed.", result=self.task_states())
        return Success("All reference tasks succeeded.", result=self.task_states())

    def task_states(self) -> dict[Task, State]:
        """Each task's state (a mapped task's children are in its ``Mapped`` state)."""
        return {t: s if (s := self.states.get(t)) is not None else Pending() for t in self.order}  # not one per task

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
            text = safe_repr(exc)
            log.error("terminal state handler %s raised %s", name, text, exc_info=True)
            return Failed(f"Terminal state handler {name} raised {text}", result=exc)
        if new is None or new is current:
            return final
        if not isinstance(new, State):
            name = handler_name(handler)
            return Failed(f"Terminal state handler {name} returned a {type(new).__name__}, not a State",
                          result=TypeError(f"terminal_state_handler returned {safe_repr(new)}"))
        return new

    def run_tasks(self, pool: Pool) -> None:
        """Start each task once its upstream tasks finished; settle each body as it ends.

        Bodies run on the executor's pool; every transition happens here, in
        the flow-run thread. Retries wait in a heap ordered by ``start_time``
        and a task with a ``timeout`` has a deadline: neither blocks the loop.
        """
        flow = self.flow
        remaining = {t: len(flow.upstream_edges(t)) for t in self.order}
        ready = self.ready = deque(t for t in self.order if remaining[t] == 0)
        waiting: list[tuple[datetime.datetime, int, Task]] = []
        slots = pool.slots or len(self.order) + 1  # None: no limit
        while ready or waiting or self.running:
            while (ready or waiting) and len(self.running) < slots:
                if waiting and (not ready or waiting[0][0] <= utcnow()):
                    if waiting[0][0] > utcnow() and self.running:
                        break  # wait for a body to end (or the retry to be due) below
                    start, _, t = heapq.heappop(waiting)
                    delay = (start - utcnow()).total_seconds()
                    if delay > 0:
                        time.sleep(delay)
                else:
                    t = ready.popleft()
                if t in self.done:  # a restart does not run it again: its recorded state stands
                    self.settled(t, self.done[t], remaining, ready, waiting)
                    continue
                state = self.in_context(t, self.start_task, t, self.states.get(t) or Pending(), pool)
                if state is not None:
                    self.settled(t, state, remaining, ready, waiting)
            if not self.running:
                continue
            may_start = len(self.running) < slots
            t, state = self.next_ended(pool, waiting[0][0] if waiting and may_start else None)
            if t is not None:
                ended = self.in_context(t, self.end_task, t, self.states[t], state)
                self.settled(t, ended, remaining, ready, waiting)

    def settled(self, t: Task, state: State, remaining: dict[Task, int], ready: deque, waiting: list) -> None:
        """``t``'s attempt ended in ``state``: queue its retry or next loop, or release its downstream tasks."""
        self.states[t] = state
        if isinstance(state, Retrying):
            self.tie += 1
            heapq.heappush(waiting, (state.start_time, self.tie, t))
        elif t in self.looping:
            ready.append(t)  # LOOP: the next iteration, from Pending
        elif t in self.children:
            parent = self.children[t].parent
            self.unsettled[parent] -= 1
            if not self.unsettled[parent]:
                self.settled(parent, self.finish_mapped(parent), remaining, ready, waiting)
        elif isinstance(state, Mapped) and self.unsettled.get(t):
            pass  # settles once its children have
        elif state.is_finished():
            for edge in self.flow.downstream_edges(t):
                d = edge.downstream
                remaining[d] -= 1
                if remaining[d] == 0:
                    ready.append(d)

    def next_ended(self, pool: Pool, retry_at: datetime.datetime | None) -> tuple[Task | None, State | None]:
        """The next body to end (its proposed state), or (None, None) when a retry is due first."""
        while True:
            deadline = min(self.deadlines.values(), default=None)
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            if retry_at is not None:
                until_retry = max((retry_at - utcnow()).total_seconds(), 0)
                wait = until_retry if wait is None else min(wait, until_retry)
            try:
                t, token, outcome = self.ended.get(timeout=wait) if wait is None or wait > 0 else self.ended.get_nowait()
            except queue.Empty:
                now = time.monotonic()
                for t, deadline in self.deadlines.items():
                    if deadline <= now:
                        del self.deadlines[t]
                        pool.cancel(self.running.pop(t).handle)
                        return t, TimedOut("Task timed out during execution.", result=TaskTimeoutSignal())
                return None, None
            if self.running.get(t) is not None and self.running[t].token is token:
                del self.running[t]
                self.deadlines.pop(t, None)
                return t, self.proposed_state(t, outcome)
            # else: the late answer of a body that already timed out; ignore it

    # --- one task attempt -----------------------------------------------------

    def in_context(self, task: Task, step: Callable[..., Any], *args: Any) -> Any:
        """``step(*args)`` with ``taskcontext`` telling the task's handlers (and inline body) about its run."""
        token = set_computed_task_values(lambda: self.task_context(task))
        try:
            return step(*args)
        finally:
            reset_task_values(token)

    def task_context(self, task: Task) -> dict[str, Any]:
        """What ``statemachine.taskcontext`` tells a running task (Prefect 1's context keys)."""
        values = {
            "flow_name": self.flow.name, "flow_run_id": self.run_id, "parameters": dict(self.parameters),
            "task_name": task.name, "task_full_name": task.name, "task_key": self.subjects[task].key,
            "task_run_count": self.run_counts.get(task, 1), "map_index": None, **self.loops.get(task, {}),
        }
        child = self.children.get(task)
        if child is not None:
            values.update(map_index=child.index, task_full_name=f"{task.name}[{child.index}]")
        return values

    def start_task(self, task: Task, state: State, pool: Pool) -> State | None:
        """Start one attempt of ``task`` from ``state`` (Pending or Retrying).

        Returns where it ended when it did not get to run (trigger, skip, a
        handler's rewrite, a parameter, a map), else None: its body is on the pool.
        """
        if task in self.mapped:
            return self.start_mapped(task, state)
        subject, rt = self.subjects[task], self.rt
        if task in self.looping:  # a LOOP iteration: same attempt, no new upstream checks (Prefect 1)
            self.looping.discard(task)
            attempt = self.run_counts[task]
        else:
            attempt = self.run_counts[task] = self.run_counts.get(task, 0) + 1
            if not isinstance(state, Retrying):
                refusal = self.check_upstream(task)
                if refusal is not None:
                    return transition(subject, state, refusal, rt, attempt)[0]

        state, halted = transition(subject, state, Running("Starting task run."), rt, attempt)
        if halted or not isinstance(state, Running):  # a handler may have rewritten the start
            return state
        if isinstance(task, Parameter):
            try:
                outcome = Outcome(value=task.value_from(self.parameters))
            except Exception as exc:
                outcome = Outcome(error=exc)
            return self.end_task(task, state, self.proposed_state(task, outcome))
        if pool.inline:  # LocalExecutor: the body runs here and now (a timeout can stop it: timeouts.py)
            try:
                inputs = self.inputs(task)  # no timeout: the body is called here, without run_with_timeout's call
                value = task.run(**inputs) if task.timeout is None else \
                    timeouts.run_with_timeout(task.run, inputs, task.timeout, task.name)
                proposed = Success("Task run succeeded.", value)  # result positional: cheaper, once per task
            except Exception as exc:
                proposed = self.proposed_state(task, Outcome(error=exc))
            return self.end_task(task, state, proposed)

        self.states[task] = state
        token = object()
        self.running[task] = _Running(token)
        if task.timeout is not None:
            self.deadlines[task] = time.monotonic() + task.timeout
        handle = pool.submit(task, subject.key, self.inputs(task),
                             lambda outcome: self.ended.put((task, token, outcome)))
        if task in self.running:
            self.running[task].handle = handle
        return None

    def end_task(self, task: Task, running: State, proposed: State) -> State:
        """Commit how the body ended; a LOOP goes back to Pending, a failure with retries left to ``Retrying``."""
        subject, rt, attempt = self.subjects[task], self.rt, self.run_counts[task]
        state, halted = transition(subject, running, proposed, rt, attempt)
        if self.raise_after is not None:
            raise self.raise_after
        if halted:
            return state
        if isinstance(state, Looped):  # the next iteration starts from Pending with the loop's result
            self.loops[task] = {"task_loop_count": state.loop_count + 1, "task_loop_result": state.result}
            again = Pending(f"Looping task (on loop index {state.loop_count})")
            state, halted = transition(subject, state, again, rt, attempt)
            if not halted and isinstance(state, Pending):
                self.looping.add(task)
            return state

        if not state.is_failed():
            return state
        tries = attempt - self.attempt_base.get(task, 0)  # a restart's retries count afresh
        if not isinstance(state, TriggerFailed) and tries <= task.max_retries and task.retries_on(state.result):
            retry = Retrying(
                f"Retrying Task (after attempt {tries} of {task.max_retries + 1})",
                result=state.result,
                start_time=utcnow() + task.retry_delay,
                run_count=tries,
            )
            state, halted = transition(subject, state, retry, rt, attempt)
        return state

    def start_mapped(self, task: Task, state: State) -> State:
        """A mapped parent: its ``Mapped`` state (children queued to run), or why it did not map."""
        state, children = mapping.start_mapped(self, task, state)
        self.states[task] = state
        if not children:
            return self.finish_mapped(task) if isinstance(state, Mapped) else state
        self.unsettled[task] = len(children)
        self.ready.extend(children)
        return state

    def finish_mapped(self, task: Task) -> State:
        """The parent's ``Mapped`` state, holding its children's states and results."""
        state = self.states[task]
        assert isinstance(state, Mapped)
        state.map_states = [self.states.get(c, Pending()) for c in mapping.children_of(self, task)]
        state.result = [s.result for s in state.map_states]
        self.unsettled.pop(task, None)
        return state

    def check_upstream(self, task: Task) -> State | None:
        """The state a task ends in without running (upstream skip, trigger), or None to run."""
        child = self.children.get(task)
        if child is not None:
            upstream = child.upstream
        else:
            states, edges = self.states, self.flow.upstream_edges(task)
            if task.trigger is all_successful and _all_plain_success(states, edges):
                return None  # what the default trigger says of plain Success states, asked once per task
            upstream = {e.upstream: states[e.upstream] for e in edges}
        if task.skip_on_upstream_skip and mapping.any_skipped(upstream.values()):
            return Skipped(SKIP_MESSAGE)
        try:  # root tasks too, with {} (Prefect 1: manual_only pauses a root task)
            if not task.trigger(upstream):
                raise TRIGGERFAIL("Trigger failed")
        except (StateSignal, ENDRUN) as signal:
            return signal.to_state()
        except Exception as exc:
            if taskcontext.get("raise_on_exception"):
                raise
            return TriggerFailed(f"Unexpected error while checking task trigger: {safe_repr(exc)}", result=exc)
        return None

    def proposed_state(self, task: Task, outcome: Outcome) -> State:
        """Turn how a task's body ended into the state the engine proposes."""
        if outcome.timed_out:
            return TimedOut("Task timed out during execution.", result=TaskTimeoutSignal())
        exc = outcome.error
        if exc is None:
            return Success("Task run succeeded.", result=outcome.value)
        if isinstance(exc, KeyboardInterrupt):  # a body on a worker raised it: as a Ctrl-C here
            raise exc
        if isinstance(exc, TaskTimeoutSignal):
            return TimedOut("Task timed out during execution.", result=exc)
        if isinstance(exc, (StateSignal, ENDRUN)):  # signals never raise, even with raise_on_exception
            state = exc.state
            if isinstance(state, Looped):  # counted here: a body on a Dask worker has no task context
                state.loop_count = self.loops.get(task, {}).get("task_loop_count", 1)
                state.message = state.message or f"Task is looping ({state.loop_count})"
            elif isinstance(state, Retrying) and not isinstance(exc, ENDRUN):
                state.run_count = self.run_counts.get(task, 1)
            return state if isinstance(exc, (LOOP, SUCCESS)) else body_state(task, state)
        if taskcontext.get("raise_on_exception"):
            self.raise_after = exc
        return Failed(f"Error during execution of task: {safe_repr(exc)}", result=exc)

    def inputs(self, task: Task) -> dict[str, Any]:
        if task in self.children:
            return dict(self.children[task].inputs)
        kwargs = dict(self.flow.constants.get(task, ()))
        states = self.states
        for edge in self.flow.upstream_edges(task):
            if edge.key is not None:  # mapping.edge_value, its common case inlined: the upstream result
                state = states[edge.upstream]
                kwargs[edge.key] = mapping.edge_value(edge, state) if edge.flattened else state.result
        return kwargs


def _all_plain_success(states: Mapping[Task, State], edges: Iterable[Any]) -> bool:
    """Whether every upstream state is exactly ``Success``: nothing skipped, and ``all_successful`` passes."""
    for edge in edges:
        if type(states[edge.upstream]) is not Success:
            return False
    return True


def body_state(task: Task, state: State) -> State:
    """The state a body's signal or ENDRUN names, or Failed when no task may end its run there."""
    if graph.is_legal(Running(), state):
        return state
    return Failed(
        f"Task {task.name!r} ended its run with ENDRUN({state!r}), which a running task cannot move to; "
        "end it in a finished, pending or retrying state",
        result=state,
    )


class _Running:
    """A body on the pool: its token (to tell a late answer) and the pool's handle."""

    __slots__ = ("token", "handle")

    def __init__(self, token: object) -> None:
        self.token, self.handle = token, None
