"""What the ledger tells about runs: ``RunView`` (a run's states), ``TaskStates``, and ``verify``'s ``Report``.

``run_view`` builds a ``RunView`` from each object's last stored row
(``Recorder.latest``); ``EventStore.rebuild`` and ``state_at`` return it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from statemachine.mapping import attach_children, is_child_key
from statemachine.states import State

from . import codec
from .mapper import LatestRow

__all__ = ["RunView", "TaskStates", "Report", "Problem", "run_view"]


class TaskStates(dict):
    """A rebuilt flow's ``{task key: State}``.

    It also equals the ``{Task: State}`` that ``flow.run()`` returned when each
    task name has the same states (a key is ``name-N``), so a rebuilt flow
    state equals the live one.
    """

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, dict):
            return NotImplemented
        if len(other) != len(self):
            return False
        if all(isinstance(k, str) for k in other):
            return dict.__eq__(self, other)
        mine: dict[str, list[State]] = {}
        for key in sorted(self, key=_key_order):
            mine.setdefault(key.rpartition("-")[0] or key, []).append(self[key])
        theirs: dict[str, list[Any]] = {}
        for obj, state in other.items():
            theirs.setdefault(getattr(obj, "name", obj), []).append(state)
        if mine.keys() != theirs.keys():
            return False
        return all(mine[n] == theirs[n] or _same_multiset(mine[n], theirs[n]) for n in mine)

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq


def _key_order(key: str) -> tuple[str, int]:
    name, _, n = key.rpartition("-")
    return (name, int(n)) if n.isdigit() else (key, 0)


def _same_multiset(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    rest = list(b)
    for x in a:
        for i, y in enumerate(rest):
            if x == y:
                del rest[i]
                break
        else:
            return False
    return True


@dataclass(slots=True)
class RunView:
    """A run as the ledger tells it: the flow's state and each task's, by key."""

    run_id: str
    flow: str
    state: State | None
    tasks: dict[str, State] = field(default_factory=dict)
    events: int = 0  # how many events went into this view

    def __repr__(self) -> str:
        return f"<RunView {self.run_id} {self.flow}: {self.state!r}, {len(self.tasks)} tasks>"


@dataclass(slots=True, frozen=True)
class Problem:
    """One thing ``verify`` found wrong: which run (``None``: the ledger as a whole), which seq, what."""

    run_id: str | None
    seq: int | None
    #: "changed" | "chain broken" | "inserted" | "count" | "missing" | "summary" (a run's events or its
    #: runs-summary row); "checkpoint" | "other ledger" | "signature" | "cursor" (the ledger as a whole)
    what: str
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "end of run"
        if self.run_id is None:
            return f"ledger {where}: {self.detail}"
        return f"run {self.run_id} {where}: {self.detail}"


@dataclass(slots=True)
class Report:
    """What ``verify`` checked: ``ok`` when every hash chain, the runs summary and each checkpoint hold."""

    ok: bool
    checked: int
    problems: list[Problem] = field(default_factory=list)
    runs: int = 0
    checkpoints: int = 0  # checkpoints given to verify (those the ledger recorded are checked too)

    def __str__(self) -> str:
        if self.ok:
            sealed = f", {self.checkpoints} checkpoint(s) extended" if self.checkpoints else ""
            return f"ok: {self.checked} events in {self.runs} runs verified{sealed}"
        lines = [f"{len(self.problems)} problem(s) in {self.checked} events:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def run_view(run_id: str, rows: Sequence[LatestRow], *, final: bool = False) -> RunView:
    """A RunView of each object's last row (``rows`` not empty); ``final``: as ``flow.run()`` returned it."""
    tasks: dict[str, State] = TaskStates()
    flow_state: State | None = None
    flow_name = ""
    flow_text = ""
    for row in rows:
        flow_name = row.flow
        if row.kind == "task":
            tasks[row.key] = codec.state_from_json(row.new_state)
        else:
            flow_state, flow_text = codec.state_from_json(row.new_state), row.new_state
    attach_children(tasks)  # a Mapped parent holds its children (KEY[i]), as flow.run() returned it
    if flow_state is not None:
        # the engine hands back {Task: State} as a flow's result (see codec): here by key
        if flow_state.result is None and (final or '"result_flow":true' in flow_text):
            flow_state.result = TaskStates({k: s for k, s in tasks.items() if not is_child_key(k)})
        flow_state.context["run_id"] = run_id
    return RunView(run_id, flow_name, flow_state, tasks, len(rows))
