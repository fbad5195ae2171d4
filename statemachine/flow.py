"""Flows: a graph of tasks, built functionally (``with Flow(...)``) or imperatively."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from . import context
from .context import current_flow
from .errors import CycleError, FlowDefinitionError, ParameterError
from .handlers import callback_factory, check_handler
from .states import State
from .task import Parameter, Task, _as_list

__all__ = ["Flow", "Edge", "current_flow"]


class Edge:
    """``upstream`` runs before ``downstream``; with a ``key``, its result is passed as that argument."""

    __slots__ = ("upstream", "downstream", "key")

    def __init__(self, upstream: Task, downstream: Task, key: str | None = None) -> None:
        self.upstream, self.downstream, self.key = upstream, downstream, key

    def __repr__(self) -> str:
        return f"<Edge {self.upstream!r} -> {self.downstream!r}{f' as {self.key}' if self.key else ''}>"


class Flow:
    """A named graph of tasks; ``run()`` executes it and records every transition."""

    def __init__(
        self,
        name: str,
        tasks: Iterable[Task] | None = None,
        *,
        state_handlers: Sequence[Callable[[Any, State, State], Optional[State]]] | None = None,
        on_failure: Callable[[Any, State], None] | None = None,
        reference_tasks: Iterable[Task] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise FlowDefinitionError(f"A flow needs a non-empty string name, got {name!r}")
        self.name = name
        self.state_handlers = [check_handler(h) for h in _as_list(state_handlers, "state_handlers")]
        if on_failure is not None:
            self.state_handlers.append(callback_factory(on_failure, State.is_failed))
        self._tasks: dict[Task, str] = {}  # task -> key, in the order added
        self._name_counts: dict[str, int] = {}
        self._upstream: dict[Task, list[Edge]] = {}
        self._downstream: dict[Task, list[Edge]] = {}
        self.constants: dict[Task, dict[str, Any]] = {}
        self._reference_tasks: set[Task] = set()
        self._context_tokens: list[Any] = []  # one per open ``with`` block, see context.py
        for t in tasks or ():
            self.add_task(t)
        if reference_tasks is not None:
            self.set_reference_tasks(reference_tasks)

    def __repr__(self) -> str:
        return f"<Flow: name={self.name}>"

    def __enter__(self) -> "Flow":
        self._context_tokens.append(context.enter_flow(self))
        return self

    def __exit__(self, *exc: Any) -> None:
        context.exit_flow(self._context_tokens.pop())

    # --- the graph ------------------------------------------------------------

    @property
    def tasks(self) -> set[Task]:
        """Every task in the flow."""
        return set(self._tasks)

    def ordered_tasks(self) -> list[Task]:
        """Every task, in the order it was added."""
        return list(self._tasks)

    def key_of(self, task: Task) -> str:
        """The task's unique key in this flow: ``name-1``, ``name-2``, … in the order added."""
        return self._tasks[task]

    def get_task(self, key_or_name: str) -> Task:
        """The task with this key (or, if unique, this name)."""
        for t, key in self._tasks.items():
            if key == key_or_name:
                return t
        found = [t for t in self._tasks if t.name == key_or_name]
        if len(found) != 1:
            raise KeyError(f"{self!r} has {len(found)} tasks named {key_or_name!r}; use its key")
        return found[0]

    def add_task(self, task: Task) -> Task:
        """Add ``task`` (once; adding it again does nothing)."""
        if not isinstance(task, Task):
            raise FlowDefinitionError(
                f"Flow {self.name!r} can only hold Task objects, got {task!r} ({type(task).__name__}); "
                "decorate functions with @task or subclass Task"
            )
        if task not in self._tasks:
            n = self._name_counts.get(task.name, 0) + 1
            self._name_counts[task.name] = n
            self._tasks[task] = f"{task.name}-{n}"
            self._upstream[task] = []
            self._downstream[task] = []
        return task

    def add_edge(self, upstream: Task, downstream: Task, key: str | None = None) -> Edge:
        """``upstream`` runs before ``downstream`` (its result passed as ``key``)."""
        self.add_task(upstream)
        self.add_task(downstream)
        if key is not None and any(e.key == key for e in self._upstream[downstream]):
            raise FlowDefinitionError(f"{downstream!r} already receives an argument named {key!r}")
        if self._downstream[downstream] or upstream is downstream:
            self._refuse_cycle(upstream, downstream)
        edge = Edge(upstream, downstream, key)
        self._upstream[downstream].append(edge)
        self._downstream[upstream].append(edge)
        return edge

    def _refuse_cycle(self, upstream: Task, downstream: Task) -> None:
        # A new edge closes a cycle iff ``upstream`` is reachable from ``downstream``.
        parent: dict[Task, Task | None] = {downstream: None}
        todo = deque([downstream])
        while todo:
            t = todo.popleft()
            if t is upstream:
                path = [t]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])  # type: ignore[arg-type]
                names = " -> ".join(self._tasks[x] for x in reversed(path)) + f" -> {self._tasks[downstream]}"
                raise CycleError(
                    f"Flow {self.name!r} would have a cycle: {names}. A task cannot depend on itself, "
                    "directly or through other tasks; remove one of these dependencies",
                    list(reversed(path)),
                )
            for e in self._downstream[t]:
                if e.downstream not in parent:
                    parent[e.downstream] = t
                    todo.append(e.downstream)

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Task] | None = None,
        downstream_tasks: Iterable[Task] | None = None,
        keyword_tasks: Mapping[str, Any] | None = None,
    ) -> None:
        """Prefect 1's ``set_dependencies``; non-Task keyword values are constants."""
        self.add_task(task)
        for t in upstream_tasks or ():
            self.add_edge(t, task)
        for t in downstream_tasks or ():
            self.add_edge(task, t)
        for key, value in (keyword_tasks or {}).items():
            if isinstance(value, Task):
                self.add_edge(value, task, key=key)
            else:
                self.constants.setdefault(task, {})[key] = value

    def upstream_edges(self, task: Task) -> list[Edge]:
        return self._upstream[task]

    def downstream_edges(self, task: Task) -> list[Edge]:
        return self._downstream[task]

    def upstream_tasks(self, task: Task) -> set[Task]:
        return {e.upstream for e in self._upstream[task]}

    def downstream_tasks(self, task: Task) -> set[Task]:
        return {e.downstream for e in self._downstream[task]}

    def terminal_tasks(self) -> set[Task]:
        """Tasks nothing depends on."""
        return {t for t, edges in self._downstream.items() if not edges}

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """The tasks whose states decide the flow's final state (default: terminal tasks)."""
        tasks = set(tasks)
        unknown = [t for t in tasks if t not in self._tasks]
        if unknown:
            raise FlowDefinitionError(f"Reference tasks {unknown} are not in flow {self.name!r}; add them first")
        self._reference_tasks = tasks

    def reference_tasks(self) -> set[Task]:
        return set(self._reference_tasks) or self.terminal_tasks()

    def parameters(self) -> set[Parameter]:
        return {t for t in self._tasks if isinstance(t, Parameter)}

    def check_parameters(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """``given`` as a dict, or ``ParameterError`` for an unknown or a missing required name."""
        given = dict(given or {})
        params = {p.name: p for p in self.parameters()}
        unknown = sorted(set(given) - set(params))
        if unknown:
            known = ", ".join(sorted(params)) or "none"
            raise ParameterError(
                f"Flow {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are: {known}"
            )
        missing = sorted(n for n, p in params.items() if p.required and n not in given)
        if missing:
            raise ParameterError(
                f"Flow {self.name!r} needs parameter {', '.join(map(repr, missing))}; "
                f"pass parameters={{{missing[0]!r}: ...}} (or --param {missing[0]}=... on the command line)"
            )
        return given

    def sorted_tasks(self) -> list[Task]:
        """Tasks in a dependency order (ties: the order added); a cycle raises ``CycleError``."""
        waiting = {t: len(self._upstream[t]) for t in self._tasks}
        ready = deque(t for t, n in waiting.items() if n == 0)
        order: list[Task] = []
        while ready:
            t = ready.popleft()
            order.append(t)
            for e in self._downstream[t]:
                waiting[e.downstream] -= 1
                if waiting[e.downstream] == 0:
                    ready.append(e.downstream)
        if len(order) < len(self._tasks):
            stuck = [self._tasks[t] for t, n in waiting.items() if n > 0]
            raise CycleError(f"Flow {self.name!r} has a cycle among: {', '.join(stuck)}", stuck)
        return order

    # --- running --------------------------------------------------------------

    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        *,
        store: Any = None,
        run_id: str | None = None,
        executor: Any = None,
    ) -> State:
        """Run every task; return the flow's final state (``.result``: each Task's state).

        ``store`` is where the run is recorded (default: the ledger at
        ``STATELEDGER_DB``); ``run_id`` names the run (default: generated). The
        returned state's ``context["run_id"]`` names it either way. ``executor``
        is where task bodies run (``statemachine.executors``; default
        ``LocalExecutor()``: one after another, in this thread).
        """
        from .engine import FlowRunner

        return FlowRunner(self, parameters=parameters, store=store, run_id=run_id, executor=executor).run()
