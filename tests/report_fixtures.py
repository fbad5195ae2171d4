"""Shared helpers for the report tests: flows with every kind of row, a page's data, marks."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from statemachine import Flow, Task, task
from statemachine.events import Event
from statemachine.states import Success

#: Markup in every place a user can put text: the flow's name, a task's name, a failure message.
HOSTILE = '</script><img src=x onerror="document.title=42">'


def data_of(page: str) -> dict[str, Any]:
    """The JSON the page embeds for its script."""
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert found, "no report-data block"
    return json.loads(found.group(1))


class Evil(Task):
    def run(self) -> None:
        raise ValueError(HOSTILE)


def hostile_flow() -> Flow:
    """A flow whose names and failure message are markup."""
    with Flow("flow " + HOSTILE) as flow:
        Evil(name="task " + HOSTILE)()
    return flow


def excuse(obj: Any, old: Any, new: Any) -> Any:
    """A handler rewriting every failure of a task into a success."""
    return Success("failure excused") if new.is_failed() else new


def wide_flow(n: int) -> Flow:
    """``n`` tasks in groups of ten (a source, then nine steps fed by it): every 100th fails,
    every 45th fails once and retries, every 70th fails and a handler rewrites it."""
    tries: dict[int, int] = {}

    def step(i: int) -> Task:
        def body(x: int = 0) -> int:
            tries[i] = tries.get(i, 0) + 1
            if i % 100 == 99 or (i % 45 == 44 and tries[i] == 1) or i % 70 == 69:
                raise RuntimeError(f"step {i} broke")
            return x + i

        retries = {"max_retries": 1, "retry_delay": 0} if i % 45 == 44 else {}  # a delay needs retries (Prefect 1)
        return task(body, name=f"step{i // 10}", state_handlers=[excuse] if i % 70 == 69 else None, **retries)

    with Flow("wide") as flow:
        source = None
        for i in range(n):
            t = step(i)
            source = t() if i % 10 == 0 else t(source)
    return flow


if "reason" in Event.__dataclass_fields__:  # the ledger records manual marks itself
    MarkedEvent = Event
else:
    @dataclasses.dataclass(slots=True, eq=False)
    class MarkedEvent(Event):  # type: ignore[no-redef]
        """An event with the ``reason`` field a manual mark carries."""

        reason: str | None = None


class MarkedStore:
    """A real store whose history shows some events as manual marks (``{seq: reason}``)."""

    def __init__(self, store: Any, marks: dict[int, str]) -> None:
        self.store, self.marks = store, marks

    def history(self, run_id: str) -> list[Event]:
        names = [f.name for f in dataclasses.fields(Event) if f.name != "reason"]
        return [MarkedEvent(**{n: getattr(e, n) for n in names}, reason=self.marks.get(e.seq))
                for e in self.store.history(run_id)]

    def rebuild(self, run_id: str) -> Any:
        return self.store.rebuild(run_id)

    def verify(self, run_id: str) -> Any:
        return self.store.verify(run_id)
