"""Mapping (Prefect 1's ``task.map``): one task run per item of its arguments.

``t.map(xs, y=unmapped(v))`` adds a *parent* task to the flow. When it runs,
the parent moves ``Pending -> Mapped("Ready to proceed with mapping.")`` and
then each item ``i`` becomes a *child*: a task run of its own with key
``KEY[i]``, its own transitions, state handlers (called with the parent task,
as in Prefect 1; ``taskcontext.get("map_index")`` is ``i``), retries and
ledger events. Once the children are done, the parent's ``Mapped`` state
holds them in ``map_states`` and their results in ``result``, which is what a
task downstream of the map receives (a *reduce*). Mapping over a mapped
task's output pairs child ``i`` with child ``i``; ``flatten(x)`` maps over
the items of the items.

Skips and triggers follow Prefect 1: the parent only refuses to map when an
upstream is skipped, nothing can be mapped over or a result cannot be
indexed; each child checks its own upstream states (a failed upstream child
gives a ``TriggerFailed`` child, a skipped one a skipped child); a reduce task
sees the children's states (one skipped child skips it by default).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .errors import FlowDefinitionError
from .pipeline import Subject, transition
from .states import Failed, Mapped, Skipped, State
from .task import Task
from .triggers import SKIP_MESSAGE

if TYPE_CHECKING:  # the engine imports this module; Flow imports it too
    from .engine import FlowRunner
    from .flow import Edge, Flow

__all__ = [
    "unmapped", "flatten", "unwrap", "flat_list", "bind_mapped", "is_mapped", "start_mapped", "children_of", "Child",
    "edge_value", "expand", "any_skipped", "attach_children", "child_key", "is_child_key",
]

READY = "Ready to proceed with mapping."


class unmapped:  # noqa: N801 - Prefect 1's name
    """Pass ``value`` whole to every child of a map (a task or a constant)."""

    def __init__(self, value: Any) -> None:
        self.value = value.value if isinstance(value, unmapped) else value

    def __repr__(self) -> str:
        return f"unmapped({self.value!r})"


class flatten:  # noqa: N801 - Prefect 1's name
    """Use the items of each item of ``value`` (a list of lists, or a mapped task's output)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"flatten({self.value!r})"


def unwrap(value: Any) -> tuple[Any, bool]:
    """``(value, flattened)`` of an argument outside a map: ``unmapped`` is dropped, ``flatten`` noted."""
    if isinstance(value, unmapped):
        value = value.value
    if isinstance(value, flatten):
        return value.value, True
    return value, False


def flat_list(value: Any) -> list[Any]:
    """The items of the items of ``value`` (``flatten`` of a constant)."""
    return _flat(_as_list(value))


def child_key(parent_key: str, index: int) -> str:
    """The key of a mapped child in the ledger: ``KEY[i]``."""
    return f"{parent_key}[{index}]"


# --- building the flow ------------------------------------------------------------------------


def bind_mapped(flow: "Flow", task: Task, arguments: Mapping[str, Any], upstream_tasks: Iterable[Any] | None) -> None:
    """Add ``task`` to ``flow`` mapped over ``arguments`` (``unmapped``/``flatten`` honoured)."""
    flow.add_task(task)
    mapped_constants: dict[str, list[Any]] = {}
    for key, value in arguments.items():
        mapped, flat = True, False
        if isinstance(value, unmapped):
            mapped, value = False, value.value
        if isinstance(value, flatten):
            flat, value = True, value.value
        if isinstance(value, Task):
            flow.add_edge(value, task, key=key, mapped=mapped, flattened=flat)
        elif not mapped:
            flow.constants.setdefault(task, {})[key] = value
        else:
            if not hasattr(value, "__getitem__") or not hasattr(value, "__len__"):
                raise FlowDefinitionError(
                    f"Cannot map {task!r} over {key}={value!r} ({type(value).__name__}): it is not a list; "
                    f"pass a list, or unmapped({key}=...) to give every child the whole value"
                )
            mapped_constants[key] = _flat(list(value)) if flat else list(value)
    for up in upstream_tasks or ():
        flow.add_edge(up.value if isinstance(up, unmapped) else up, task)  # ordering only, never mapped
    flow.mapped_constants.setdefault(task, {}).update(mapped_constants)
    if not any(e.mapped for e in flow.upstream_edges(task)) and not flow.mapped_constants[task]:
        raise FlowDefinitionError(f"{task!r} was mapped over nothing: pass at least one list or task to map over")


def is_mapped(flow: "Flow", task: Task) -> bool:
    """Whether ``task`` runs once per item (some argument is mapped)."""
    if flow.mapped_constants.get(task):
        return True
    for e in flow.upstream_edges(task):  # a loop, not any(generator): asked once per task per run
        if e.mapped:
            return True
    return False


# --- running ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Child:
    """One mapped child: its parent, index, upstream states and inputs."""

    parent: Task
    index: int
    upstream: dict[Any, State] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)


def start_mapped(runner: "FlowRunner", task: Task, state: State) -> tuple[State, list[Task]]:
    """Start a mapped parent: its state (``Mapped``, or why it refused) and its children, ready to run.

    Each child is a copy of the task with its own key, inputs and upstream
    states, registered with the runner, which schedules it like any task.
    """
    subject, flow = runner.subjects[task], runner.flow
    edges = flow.upstream_edges(task)
    upstream = {e: runner.states[e.upstream] for e in edges}
    constants = flow.mapped_constants.get(task, {})
    refusal = _parent_refusal(task, upstream, bool(constants))
    if refusal is not None:
        return transition(subject, state, refusal, runner.rt)[0], []
    sizes = [len(v) for v in constants.values()]
    for e, s in upstream.items():
        if e.mapped and s.is_successful():
            sizes.append(len(_items(e, s)))
    state, halted = transition(subject, state, Mapped(READY, n_map_states=min(sizes, default=0)), runner.rt)
    if halted or not isinstance(state, Mapped):
        return state, []
    children = []
    for i in range(state.n_map_states):
        child = task.copy()
        runner.children[child] = Child(task, i, *_child_inputs(flow, task, upstream, constants, i))
        runner.subjects[child] = Subject(task, "task", task.name, child_key(subject.key, i), task.state_handlers)
        children.append(child)
    return state, children


def children_of(runner: "FlowRunner", task: Task) -> list[Task]:
    """A parent's children in the runner, by index."""
    found = [(c.index, child) for child, c in runner.children.items() if c.parent is task]
    return [child for _, child in sorted(found, key=lambda pair: pair[0])]


def _parent_refusal(task: Task, upstream: Mapping["Edge", State], has_constants: bool) -> State | None:
    """Prefect 1's checks before mapping: an upstream skip, nothing to map, an unmappable result."""
    seen: list[State] = []
    for e, s in upstream.items():
        seen.extend(s.map_states if isinstance(s, Mapped) and not e.mapped else [s])
    if task.skip_on_upstream_skip and any(isinstance(s, Skipped) for s in seen):
        return Skipped(SKIP_MESSAGE)
    if upstream and not has_constants and not any(
        e.mapped and s.is_successful() for e, s in upstream.items()
    ):
        return Failed("No upstream states can be mapped over.")
    for e, s in upstream.items():
        if e.mapped and s.is_successful() and not isinstance(s, Mapped) and not hasattr(s.result, "__getitem__"):
            return Failed("At least one upstream state has an unmappable result.")
    return None


def _items(edge: "Edge", state: State) -> list[Any]:
    """What a mapped edge maps over: a Mapped upstream's children, else its result's items (as states)."""
    if isinstance(state, Mapped):
        children = list(state.map_states)
        if edge.flattened:
            return [_with_result(c, item) for c in children for item in _as_list(c.result)]
        return children
    result = _flat(_as_list(state.result)) if edge.flattened else state.result
    return [_with_result(state, item) for item in result]


def _child_inputs(
    flow: "Flow", task: Task, upstream: Mapping["Edge", State], constants: Mapping[str, list[Any]], i: int
) -> tuple[dict[Any, State], dict[str, Any]]:
    states: dict[Any, State] = {}
    inputs = dict(flow.constants.get(task, ()))
    for e, s in upstream.items():
        item = _items(e, s)[i] if e.mapped else s
        states[e.upstream] = item
        if e.key is not None:
            inputs[e.key] = edge_value(e, item)
    for key, values in constants.items():
        inputs[key] = values[i]
    return states, inputs


def edge_value(edge: "Edge", state: State) -> Any:
    """The value an edge passes on: the upstream result, flattened for an unmapped ``flatten(...)``."""
    if edge.flattened and not edge.mapped:
        return _flat(_as_list(state.result))
    return state.result


def expand(states: Iterable[State]) -> list[State]:
    """States with each ``Mapped`` one replaced by its children (how Prefect 1 counts them)."""
    found: list[State] = []
    for s in states:
        found.extend(s.map_states if isinstance(s, Mapped) else [s])
    return found


def any_skipped(states: Iterable[State]) -> bool:
    """Whether a state, a ``Mapped`` one's children in its place (as ``expand`` counts), is ``Skipped``.

    A loop, without building ``expand``'s list: the engine asks it once per task.
    """
    for s in states:
        if isinstance(s, Mapped):
            if any(isinstance(c, Skipped) for c in s.map_states):
                return True
        elif isinstance(s, Skipped):
            return True
    return False


def attach_children(tasks: dict[str, State]) -> None:
    """In a rebuilt run, give each ``Mapped`` parent its children's states and results (by key)."""
    for key, state in list(tasks.items()):
        if isinstance(state, Mapped) and not state.map_states:
            children = [tasks[k] for k in (child_key(key, i) for i in range(state.n_map_states)) if k in tasks]
            if children:
                state.map_states = children
                state.result = [c.result for c in children]


def is_child_key(key: str) -> bool:
    """Whether a ledger key names a mapped child (``KEY[i]``)."""
    return key.endswith("]") and "[" in key


def _with_result(state: State, result: Any) -> State:
    new = copy.copy(state)
    new.result = result
    return new


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if value is None or isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _flat(values: list[Any]) -> list[Any]:
    return [item for v in values for item in _as_list(v)]
