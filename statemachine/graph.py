"""The legal state graph, defined once as a ``transitions`` machine.

The rest of the code asks one question, ``is_legal(old, new)``, answered from
a frozen set of edges derived from the machine when this module is imported
(about a microsecond per check). State subclasses a user defines count as the
nearest library state they derive from.
"""

from __future__ import annotations

from transitions import Machine

from . import states as s

__all__ = ["is_legal", "legal_edges", "mermaid", "dot", "graph_class"]

_NODES = (
    s.Pending, s.Scheduled, s.Retrying, s.Paused, s.Resume, s.Running, s.Cancelling, s.Looped,
    s.Success, s.Cached, s.Mapped, s.Skipped, s.Failed, s.TriggerFailed, s.TimedOut,
    s.ValidationFailed, s.Crashed, s.Cancelled,
)

# Where a run that has not started yet may go: run, wait, be refused by its
# trigger or an upstream skip, be mapped, or be cancelled or reaped.
_NOT_STARTED = (
    s.Running, s.Scheduled, s.Retrying, s.Skipped, s.TriggerFailed, s.Paused, s.Mapped,
    s.Failed, s.Cancelled, s.Crashed,
)
# What a running task body may end in: any state a signal or ENDRUN names
# (Prefect 1 lets a body end the run in a pending state too).
_FROM_RUNNING = (
    s.Success, s.Cached, s.Mapped, s.Skipped, s.Looped, s.Failed, s.TriggerFailed, s.TimedOut,
    s.ValidationFailed, s.Retrying, s.Paused, s.Pending, s.Scheduled, s.Resume,
    s.Cancelling, s.Cancelled, s.Crashed,
)

# Where the engine (or a handler's rewrite) may move an object. Any state that
# can be the source of a proposal may also go to Failed: that is how a failing
# state handler ends a run.
_EDGES: dict[type[s.State], tuple[type[s.State], ...]] = {
    s.Pending: _NOT_STARTED,
    s.Scheduled: tuple(x for x in _NOT_STARTED if x is not s.Scheduled),
    s.Retrying: (s.Running, s.Failed, s.Cancelled, s.Crashed),
    s.Paused: (s.Resume, s.Running, s.Failed, s.Cancelled, s.Crashed),
    s.Resume: (s.Running, s.Failed, s.Cancelled, s.Crashed),
    s.Running: _FROM_RUNNING,
    s.Cancelling: (s.Cancelled, s.Failed, s.Success, s.Crashed),
    s.Looped: (s.Pending, s.Failed, s.Cancelled, s.Crashed),  # Pending: the next iteration
    s.Failed: (s.Retrying, s.Failed),
    s.TimedOut: (s.Retrying, s.Failed),
    s.ValidationFailed: (s.Retrying, s.Failed),
    s.TriggerFailed: (),
    s.Crashed: (),
    s.Success: (),
    s.Cached: (),
    s.Mapped: (),
    s.Skipped: (),
    s.Cancelled: (),
}


def _build_machine() -> Machine:
    transitions = [
        {"trigger": f"to_{dst.__name__}", "source": src.__name__, "dest": dst.__name__}
        for src, dsts in _EDGES.items()
        for dst in dsts
    ]
    return Machine(
        states=[n.__name__ for n in _NODES],
        transitions=transitions,
        initial="Pending",
        auto_transitions=False,
        send_event=False,
    )


_MACHINE = _build_machine()
_BY_NAME = {cls.__name__: cls for cls in _NODES}
_LEGAL: frozenset[tuple[type[s.State], type[s.State]]] = frozenset(
    (_BY_NAME[t.source], _BY_NAME[t.dest]) for t in _MACHINE.get_transitions()
)
_verdicts: dict[tuple[type, type], bool] = {pair: True for pair in _LEGAL}


def graph_class(cls: type[s.State]) -> type[s.State] | None:
    """The library state class ``cls`` counts as in the graph (None if none)."""
    for base in cls.__mro__:
        if base in _BY_NAME.values():
            return base
    return None


def is_legal(old: s.State, new: s.State) -> bool:
    """Whether moving from ``old`` to ``new`` is an edge of the legal graph."""
    pair = (type(old), type(new))
    verdict = _verdicts.get(pair)
    if verdict is None:
        verdict = (graph_class(pair[0]), graph_class(pair[1])) in _LEGAL
        _verdicts[pair] = verdict
    return verdict


def legal_edges() -> list[tuple[str, str]]:
    """Every legal edge as (source name, destination name), in a stable order."""
    order = {cls: i for i, cls in enumerate(_NODES)}
    return [
        (a.__name__, b.__name__)
        for a, b in sorted(_LEGAL, key=lambda e: (order[e[0]], order[e[1]]))
    ]


def mermaid() -> str:
    """The legal graph as a Mermaid state diagram."""
    lines = ["stateDiagram-v2", "    [*] --> Pending", "    [*] --> Scheduled"]
    lines += [f"    {a} --> {b}" for a, b in legal_edges()]
    return "\n".join(lines) + "\n"


def dot() -> str:
    """The legal graph in Graphviz DOT."""
    lines = ["digraph states {"]
    lines += [f"    {a} -> {b};" for a, b in legal_edges()]
    return "\n".join(lines + ["}"]) + "\n"
