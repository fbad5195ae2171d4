"""The legal state graph, defined once as a ``transitions`` machine.

The rest of the code asks one question, ``is_legal(old, new)``, answered from
a frozen set of edges derived from the machine when this module is imported
(about a microsecond per check). State subclasses a user defines count as the
nearest library state they derive from.

Two more kinds of edge are in the machine, each taken by one caller only:

- *manual edges* (``via="manual"``, ``store.mark``): any state to a finished
  one that tells an outcome (``Failed`` -> ``Success`` is "mark as success";
  not ``Looped`` or ``Mapped``); never back to ``Running`` or a pending state;
- *restart edges* (``via="restart"``, ``flow.run(restart=...)``): a finished
  (or paused) state back to ``Pending`` or ``Scheduled``.

The engine's own moves (``via="engine"``) may take neither.
"""

from __future__ import annotations

from transitions import Machine

from . import states as s
from .errors import ArgumentError

__all__ = ["is_legal", "legal_edges", "manual_edges", "restart_edges", "mermaid", "dot", "graph_class", "VIAS"]

#: Who may take which edges: the engine (and handlers), a manual mark, a restart.
VIAS = ("engine", "manual", "restart")

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


_FINISHED = tuple(n for n in _NODES if issubclass(n, s.Finished))
#: Marks: any state to a finished one that tells an outcome (not Looped or Mapped, the engine's
#: own steps of a loop and of a map).
_MARKABLE = tuple(n for n in _FINISHED if n not in (s.Looped, s.Mapped))
_MANUAL: dict[type[s.State], tuple[type[s.State], ...]] = {src: _MARKABLE for src in _NODES}
#: Restarts: a finished or paused state back to a pending one.
_RESTART: dict[type[s.State], tuple[type[s.State], ...]] = {
    src: (s.Pending, s.Scheduled) for src in (*_FINISHED, s.Paused)
}
_PREFIX = {"engine": "to", "manual": "mark", "restart": "restart"}


def _build_machine() -> Machine:
    transitions = [
        {"trigger": f"{_PREFIX[via]}_{dst.__name__}", "source": src.__name__, "dest": dst.__name__}
        for via, edges in (("engine", _EDGES), ("manual", _MANUAL), ("restart", _RESTART))
        for src, dsts in edges.items()
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
_BY_VIA: dict[str, frozenset[tuple[type[s.State], type[s.State]]]] = {
    via: frozenset(
        (_BY_NAME[t.source], _BY_NAME[t.dest])
        for trigger in _MACHINE.get_triggers(*_BY_NAME) if trigger.startswith(f"{prefix}_")
        for t in _MACHINE.get_transitions(trigger)
    )
    for via, prefix in _PREFIX.items()
}
_LEGAL = _BY_VIA["engine"]
_verdicts: dict[tuple[type, type], bool] = {pair: True for pair in _LEGAL}
_other_verdicts: dict[tuple[type, type, str], bool] = {}


def graph_class(cls: type[s.State]) -> type[s.State] | None:
    """The library state class ``cls`` counts as in the graph (None if none)."""
    for base in cls.__mro__:
        if base in _BY_NAME.values():
            return base
    return None


def is_legal(old: s.State, new: s.State, via: str = "engine") -> bool:
    """Whether moving from ``old`` to ``new`` is an edge of the legal graph.

    ``via``: ``"engine"`` (every ordinary move), ``"manual"`` (a mark) or
    ``"restart"``; each may take only its own edges (see the module docstring).
    """
    if via != "engine":
        key = (type(old), type(new), via)
        found = _other_verdicts.get(key)
        if found is None:
            if via not in _BY_VIA:
                raise ArgumentError(f"via= takes one of {', '.join(VIAS)}, got {via!r}")
            found = _other_verdicts[key] = (graph_class(key[0]), graph_class(key[1])) in _BY_VIA[via]
        return found
    pair = (type(old), type(new))
    verdict = _verdicts.get(pair)
    if verdict is None:
        verdict = (graph_class(pair[0]), graph_class(pair[1])) in _LEGAL
        _verdicts[pair] = verdict
    return verdict


def _sorted(edges: frozenset[tuple[type[s.State], type[s.State]]]) -> list[tuple[str, str]]:
    order = {cls: i for i, cls in enumerate(_NODES)}
    return [(a.__name__, b.__name__) for a, b in sorted(edges, key=lambda e: (order[e[0]], order[e[1]]))]


def legal_edges() -> list[tuple[str, str]]:
    """Every legal edge of the engine as (source name, destination name), in a stable order."""
    return _sorted(_LEGAL)


def manual_edges() -> list[tuple[str, str]]:
    """The edges only a manual mark may take (``store.mark``), in a stable order."""
    return _sorted(_BY_VIA["manual"] - _LEGAL)


def restart_edges() -> list[tuple[str, str]]:
    """The edges only a restart may take (``flow.run(restart=...)``), in a stable order."""
    return _sorted(_BY_VIA["restart"] - _LEGAL)


def mermaid(*, manual: bool = False) -> str:
    """The legal graph as a Mermaid state diagram; ``manual``: with the mark and restart edges, labelled."""
    lines = ["stateDiagram-v2", "    [*] --> Pending", "    [*] --> Scheduled"]
    lines += [f"    {a} --> {b}" for a, b in legal_edges()]
    if manual:
        lines += [f"    {a} --> {b} : mark" for a, b in manual_edges()]
        lines += [f"    {a} --> {b} : restart" for a, b in restart_edges()]
    return "\n".join(lines) + "\n"


def dot(*, manual: bool = False) -> str:
    """The legal graph in Graphviz DOT; ``manual``: with the mark and restart edges, dashed and labelled."""
    lines = ["digraph states {"]
    lines += [f"    {a} -> {b};" for a, b in legal_edges()]
    if manual:
        lines += [f'    {a} -> {b} [style=dashed, label="mark"];' for a, b in manual_edges()]
        lines += [f'    {a} -> {b} [style=dotted, label="restart"];' for a, b in restart_edges()]
    return "\n".join(lines + ["}"]) + "\n"
