"""Restart a run: ``flow.run(restart=RUN_ID)`` continues that run, as its next attempt.

The engine asks this module three things (``FlowRunner`` holds a ``Restart``
when it restarts a run, else ``None``):

- which tasks are *done*: their last state in the ledger is successful and
  their result is JSON (what the ledger keeps of it is the value itself).
  They do not run again; their recorded state (and result) feeds downstream
  tasks as if they had just run. A successful task whose result is not JSON
  (an object the ledger could only describe) runs again, and the log says so;
  so does a mapped task (its children run again);
- how to *reopen* the run: the flow moves from its last (finished) state back
  to ``Scheduled`` and every other task that ran back to ``Pending``, through
  the graph's *restart edges*, which only a restart may take; the same
  pipeline commits them (handlers see them, listeners hear them);
- where attempts continue: a task's next event is attempt ``last + 1`` (its
  retries count afresh from there), the flow's is its last attempt + 1.

The run id stays: both attempts are in one history. The parameters are the
ones the run recorded (a Parameter task that succeeded keeps its value);
giving another value for one of them is refused: start a new run for that.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping

from .errors import ArgumentError, RestartError
from .interrupts import transition  # pipeline.transition, noted for a cancellation
from .pipeline import Subject
from .states import Mapped, Pending, Scheduled, State
from .task import Parameter, Task

if TYPE_CHECKING:
    from .engine import FlowRunner

__all__ = ["Restart", "REFERENCE_TASKS", "is_json"]

log = logging.getLogger("stateledger")

#: The context key under which a flow's ``Scheduled`` state records its reference tasks' keys
#: (``store.mark`` recomputes the flow's state from them).
REFERENCE_TASKS = "reference_tasks"


def is_json(value: Any) -> bool:
    """Whether ``value`` is plain JSON data (what the ledger gives back exactly as it was)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json(v) for k, v in value.items())
    return False


class Restart:
    """What a restart of ``run_id`` found in the ledger, and the moves that reopen the run."""

    def __init__(self, runner: FlowRunner, ledger: Any, run_id: str) -> None:
        if not isinstance(run_id, str) or not run_id:
            raise ArgumentError(f"restart= takes the id of a run to continue, got {run_id!r}", "restart", run_id)
        history = getattr(ledger, "history", None)
        if not callable(history):
            raise ArgumentError(
                f"restart= reads the run from the store, and {ledger!r} cannot read runs; pass "
                "store=EventStore(...) (or leave store= out for the default ledger)", "store", ledger)
        flow = runner.flow
        events = history(run_id)  # RunNotFoundError names the known runs
        flow_events = [e for e in events if e.kind == "flow"]
        recorded = flow_events[0].flow if flow_events else events[0].flow
        if recorded and recorded != flow.name:
            raise RestartError(
                f"Run {run_id} is a run of flow {recorded!r}, not of {flow.name!r}; restart it with "
                f"that flow (stateledger restart {run_id} FILE:FLOW).", run_id)
        self.run_id = run_id
        self.flow_state: State = flow_events[-1].new_state if flow_events else Scheduled()
        self.flow_attempt = (flow_events[-1].attempt + 1) if flow_events else 1
        if flow_events and not self.flow_state.is_finished():
            raise RestartError(
                f"Run {run_id} is not finished: its flow is {type(self.flow_state).__name__}. Restart a "
                "run once it ended; if its process died, reap it first (stateledger reap); a paused task "
                "can be marked (stateledger mark).", run_id)
        last: dict[str, Any] = {}
        for e in events:
            if e.kind == "task":
                last[e.key] = e
        #: tasks that do not run again, with their recorded state
        self.done: dict[Task, State] = {}
        #: tasks that go back to Pending, with their last state
        self.reopen: dict[Task, State] = {}
        #: the last recorded attempt of each task that ran
        self.attempts: dict[Task, int] = {}
        for task in runner.order:
            event = last.get(flow.key_of(task))
            if event is None:
                continue
            state, key = event.new_state, event.key
            self.attempts[task] = event.attempt
            if isinstance(state, Mapped):  # its children's results are not one recorded result: map again
                log.info("restart of run %s: task %s is mapped, so it maps (and its children run) again",
                         run_id, key)
            elif state.is_successful() and is_json(state.result):
                self.done[task] = state
                continue
            elif state.is_successful():
                log.info("restart of run %s: task %s succeeded but its result (%s) is not JSON, so it runs "
                         "again", run_id, key, type(state.result).__name__)
            if state.is_pending() and not state.is_paused():
                continue  # never started: it stays as it is
            self.reopen[task] = state

    def parameters(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The run's parameters: those its Parameter tasks recorded, and ``given`` for the others."""
        values = dict(given or {})
        for task, state in self.done.items():
            if isinstance(task, Parameter):
                if task.name in values and values[task.name] != state.result:
                    raise RestartError(
                        f"Run {self.run_id} ran with parameter {task.name}={state.result!r}; a restart "
                        f"continues it with the same values, not {values[task.name]!r}. Start a new run "
                        "for other values.", self.run_id)
                values[task.name] = state.result
        return values

    def open(self, runner: FlowRunner, subject: Subject, scheduled: State) -> tuple[State, bool]:
        """Move the flow back to ``scheduled`` and the tasks to ``Pending``; return the flow's (state, halted)."""
        rt = runner.rt
        log.info("restart of run %s: %d tasks done, %d run again", self.run_id, len(self.done),
                 len(runner.order) - len(self.done))
        state, halted = transition(subject, self.flow_state, scheduled, rt, self.flow_attempt, via="restart")
        if halted:
            return state, halted
        for task, old in self.reopen.items():
            sub = runner.subjects[task]
            new, task_halted = transition(sub, old, Pending(), rt, self.attempts[task], via="restart")
            if task_halted:  # a handler failed: the task's run ends in that Failed state
                runner.done[task] = new
        runner.done.update(self.done)
        runner.states.update(runner.done)
        runner.run_counts.update(self.attempts)
        runner.attempt_base.update(self.attempts)
        return state, False
