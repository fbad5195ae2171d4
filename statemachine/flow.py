"""Flows: a graph of tasks, built functionally (``with Flow(...)``) or imperatively."""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from . import context
from .context import current_flow
from .errors import CycleError, FlowDefinitionError, ParameterError, RunInsideFlowError
from .handlers import callback_factory, check_handler
from .mapping import flat_list, unwrap
from .states import State
from .task import Parameter, Task, _as_list

__all__ = ["Flow", "Edge", "current_flow"]


class Edge:
    """``upstream`` runs before ``downstream``; with a ``key``, its result is passed as that argument.

    ``mapped``: the downstream task runs once per item of the upstream result;
    ``flattened``: that result (a list of lists) is flattened first. Prefect 1's
    names ``upstream_task`` and ``downstream_task`` work too.
    """

    __slots__ = ("upstream", "downstream", "key", "mapped", "flattened")

    def __init__(
        self, upstream: Task, downstream: Task, key: str | None = None, mapped: bool = False, flattened: bool = False
    ) -> None:
        self.upstream, self.downstream, self.key = upstream, downstream, key
        self.mapped, self.flattened = mapped, flattened

    @property
    def upstream_task(self) -> Task:
        return self.upstream

    @property
    def downstream_task(self) -> Task:
        return self.downstream

    def __repr__(self) -> str:
        return (f"<Edge(key={self.key}, mapped={self.mapped}, flattened={self.flattened}): "
                f"{self.upstream.name} to {self.downstream.name}>")


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
        terminal_state_handler: Callable[[Any, State, set], Optional[State]] | None = None,
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
        #: A mapped task's list arguments (each child gets one item), by task and argument name.
        self.mapped_constants: dict[Task, dict[str, list[Any]]] = {}
        self._reference_tasks: set[Task] = set()
        self._context_tokens: list[Any] = []  # one per open ``with`` block, see context.py
        #: ``handler(flow, state, reference_task_states) -> Optional[State]``: may rewrite the final state.
        self.terminal_state_handler = (
            check_handler(terminal_state_handler, "terminal_state_handler") if terminal_state_handler else None
        )
        self._created: list[set[Task]] = []  # tasks made inside each open ``with`` block of this flow
        for t in tasks or ():
            self.add_task(t)
        if reference_tasks is not None:
            self.set_reference_tasks(reference_tasks)

    def __repr__(self) -> str:
        return f"<Flow: name={self.name}>"

    def __enter__(self) -> "Flow":
        self._context_tokens.append(context.enter_flow(self))
        self._created.append(set())
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        context.exit_flow(self._context_tokens.pop())
        created = self._created.pop()
        unused = [t for t in created if t not in self._tasks]
        if unused and exc_type is None:
            warnings.warn(
                f"Tasks were created but not added to the flow: {{{', '.join(map(repr, unused))}}}. This can "
                "occur when `Task` classes, including `Parameters`, are instantiated inside a `with flow:` "
                "block but not added to the flow either explicitly or as the input to another task.",
                stacklevel=2,
            )

    def note_created(self, task: Task | None, original: Task | None) -> None:
        """Remember a task made inside this flow's ``with`` block (a copy replaces its original)."""
        if self._created:
            self._created[-1].discard(original)  # type: ignore[arg-type]
            if task is not None:
                self._created[-1].add(task)

    # --- the graph ------------------------------------------------------------

    @property
    def tasks(self) -> set[Task]:
        """Every task in the flow."""
        return set(self._tasks)

    @property
    def edges(self) -> set[Edge]:
        """Every edge of the flow."""
        return {e for edges in self._upstream.values() for e in edges}

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
            if isinstance(task, Parameter) and any(p.name == task.name for p in self.parameters()):
                raise FlowDefinitionError(
                    f'Flow {self.name!r} already has a parameter named "{task.name}"; parameter names '
                    "must be unique: reuse the first Parameter object or rename this one"
                )
            n = self._name_counts.get(task.name, 0) + 1
            self._name_counts[task.name] = n
            self._tasks[task] = f"{task.name}-{n}"
            self._upstream[task] = []
            self._downstream[task] = []
        return task

    def add_edge(
        self,
        upstream: Task,
        downstream: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
        validate: bool | None = None,
    ) -> Edge:
        """``upstream`` runs before ``downstream`` (its result passed as ``key``); returns the Edge.

        ``validate=False`` skips the duplicate-argument and cycle checks (a cycle is
        then refused when the flow runs), as Prefect 1's ``validate`` does.
        """
        if isinstance(downstream, Parameter):
            raise FlowDefinitionError(
                f"Parameters must be root tasks and can not have upstream dependencies: {upstream!r} "
                f"cannot run before {downstream!r}"
            )
        self.add_task(upstream)
        self.add_task(downstream)
        if validate is not False:
            if key is not None and any(e.key == key for e in self._upstream[downstream]):
                raise FlowDefinitionError(f"{downstream!r} already receives an argument named {key!r}")
            if self._downstream[downstream] or upstream is downstream:
                self._refuse_cycle(upstream, downstream)
        edge = Edge(upstream, downstream, key, mapped, flattened)
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
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        """Prefect 1's ``set_dependencies``; non-Task keyword values are constants.

        ``mapped=True`` maps ``task`` over its keyword arguments (as ``task.map``).
        """
        if mapped:
            from .mapping import bind_mapped

            bind_mapped(self, task, dict(keyword_tasks or {}), upstream_tasks)
            for t in downstream_tasks or ():
                self.add_edge(task, t, validate=validate)
            return
        self.add_task(task)
        for t in upstream_tasks or ():
            self.add_edge(unwrap(t)[0], task, validate=validate)
        for t in downstream_tasks or ():
            self.add_edge(task, t, validate=validate)
        for key, value in (keyword_tasks or {}).items():
            value, flat = unwrap(value)
            if isinstance(value, Task):
                self.add_edge(value, task, key=key, flattened=flat, validate=validate)
            else:
                self.constants.setdefault(task, {})[key] = flat_list(value) if flat else value

    def upstream_edges(self, task: Task) -> list[Edge]:
        return self._upstream[task]

    def downstream_edges(self, task: Task) -> list[Edge]:
        return self._downstream[task]

    def upstream_tasks(self, task: Task) -> set[Task]:
        return {e.upstream for e in self._upstream[task]}

    def downstream_tasks(self, task: Task) -> set[Task]:
        return {e.downstream for e in self._downstream[task]}

    def root_tasks(self) -> set[Task]:
        """Tasks with no upstream dependency: where a run starts."""
        return {t for t, edges in self._upstream.items() if not edges}

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
        restart: str | None = None,
        **parameter_values: Any,
    ) -> State:
        """Run every task; return the flow's final state (``.result``: each Task's state).

        Parameters are given as ``parameters={...}`` or as keywords
        (``flow.run(x=1)``), as in Prefect 1. ``store`` is where the run is
        recorded (default: the ledger at ``STATELEDGER_DB``); ``run_id`` names the
        run (default: generated). The returned state's ``context["run_id"]``
        names it either way. ``executor`` is where task bodies run
        (``statemachine.executors``; default ``LocalExecutor()``: one after
        another, in this thread). ``restart=RUN_ID`` continues that finished
        run as its next attempt: tasks that succeeded with a JSON result are
        not run again (see ``statemachine.restart``).
        """
        from .engine import FlowRunner

        if current_flow() is self:
            raise RunInsideFlowError(
                f"Don't call `flow.run()` from within a `Flow` context manager ({self!r}): "
                "end the `with Flow(...) as flow:` block first, then call flow.run(...)"
            )
        if parameter_values:
            parameters = {**(parameters or {}), **parameter_values}
        return FlowRunner(self, parameters=parameters, store=store, run_id=run_id, executor=executor,
                          restart=restart).run()
