"""``EventStore``: the ledger's API -- append, read, rebuild, verify, export.

It turns ``Event`` objects into rows (through ``codec``) and rows back into
events, and leaves storage to a recorder (``recorder.SQLiteRecorder`` for a
file, ``recorder.MemoryRecorder`` for ``":memory:"``). Replay and export live
in ``eventstore.replay`` and ``eventstore.export``; they only read.
"""

from __future__ import annotations

import datetime
import gc
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from statemachine import masking
from statemachine.events import Event
from statemachine.states import STATE_CLASSES, State

from . import codec
from .errors import RunNotFoundError
from .memory import MemoryRecorder
from .recorder import SQLiteRecorder
from .rows import Query, RunRecord

__all__ = ["EventStore", "RunView", "TaskStates", "Report", "Problem", "default_path", "DEFAULT_TIMEOUT"]

#: Seconds an append waits for another process's write lock before failing.
DEFAULT_TIMEOUT = 10.0


def default_path() -> str:
    """``STATELEDGER_DB``, else ``~/.stateledger/ledger.db`` (its folder made private to the user).

    An existing ``~/.stateledger`` that group or others may use is tightened to
    0700, with a warning: it holds the ledger and the secrets file.
    """
    path = os.environ.get("STATELEDGER_DB")
    if path:
        return os.path.expanduser(path)
    folder = os.path.join(os.path.expanduser("~"), ".stateledger")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    mode = os.stat(folder).st_mode
    if os.name == "posix" and stat.S_IMODE(mode) & 0o077 and not os.path.islink(folder):
        try:
            os.chmod(folder, 0o700)
        except OSError as exc:  # not ours to change: say so, and go on
            logging.getLogger("stateledger").warning(
                "%s is accessible to other users (mode %o) and could not be made private (%s); "
                "run: chmod 700 %s", folder, stat.S_IMODE(mode), exc.strerror, folder)
        else:
            logging.getLogger("stateledger").warning(
                "%s was accessible to other users (mode %o); it holds your ledger and secrets, so it "
                "was made private to you (mode 700).", folder, stat.S_IMODE(mode))
    return os.path.join(folder, "ledger.db")


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
    """One thing ``verify`` found wrong: which run, which seq, what."""

    run_id: str
    seq: int | None
    what: str  # "changed" | "chain broken" | "missing" | "count"
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "end of run"
        return f"run {self.run_id} {where}: {self.detail}"


@dataclass(slots=True)
class Report:
    """What ``verify`` checked: ``ok`` when every hash chain holds."""

    ok: bool
    checked: int
    problems: list[Problem] = field(default_factory=list)
    runs: int = 0

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.checked} events in {self.runs} runs verified"
        lines = [f"{len(self.problems)} problem(s) in {self.checked} events:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class EventStore:
    """The ledger. ``EventStore(path=None, *, durability="normal")``; ``":memory:"`` keeps nothing on disk.

    ``path`` defaults to ``default_path()``. ``durability="normal"``: a committed
    event survives the process being killed; ``"full"``: also a power loss
    (fsync on each commit). ``timeout``: seconds to wait for another writer.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, durability: str = "normal",
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = os.fspath(path) if path is not None else default_path()
        self.durability = durability
        if self.path == ":memory:":
            if durability not in ("normal", "full"):
                raise ValueError(f'durability must be "normal" or "full", got {durability!r}')
            self._rec: Any = MemoryRecorder()
        else:
            self._rec = SQLiteRecorder(self.path, durability=durability, timeout=timeout)
        #: run_id -> key -> (state, its stored text, masker generation): an event's old state is
        #: usually the previous event's new state, so its text is reused instead of encoded again.
        self._texts: dict[str, dict[str, tuple[State, str, int]]] = {}
        #: Every secret is known before the first event is written (see statemachine.masking).
        masking.load_known_secrets()
        self._masker = masking.MASKER

    def __repr__(self) -> str:
        return f"<EventStore {self.path}>"

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (a ``":memory:"`` store keeps its events)."""
        self._rec.close()

    # --- writing ------------------------------------------------------------------------

    def append(self, event: Event) -> Event:
        """Commit ``event``; fill in its ``seq``, ``prev_hash`` and ``hash`` and return it."""
        texts = self._texts.get(event.run_id)
        if texts is None:
            texts = self._texts[event.run_id] = {}
        key = event.key if event.kind == "task" else "\x00flow"
        old, new, m = event.old_state, event.new_state, self._masker
        cached = texts.get(key)
        old_text = cached[1] if cached is not None and cached[0] is old and cached[2] == m.generation \
            else codec.state_to_json(old, m)
        new_text = codec.state_to_json(new, m)
        proposed = event.proposed_state
        clean = codec.clean_text
        row = (
            event.event_id, clean(event.run_id, m), codec.iso(event.timestamp), event.kind,
            clean(event.name, m), clean(event.key, m), clean(event.flow, m), event.attempt,
            codec.type_name(new), old_text, new_text,
            codec.state_to_json(proposed, m) if proposed is not None else None,
            codec.to_json([clean(n, m) for n in event.rewritten_by]) if event.rewritten_by else "[]",
            clean(event.actor, m),
        )
        event.seq, event.prev_hash, event.hash = self._rec.append(row)
        texts[key] = (new, new_text, m.generation)
        if event.kind == "flow" and new.is_finished():
            del self._texts[event.run_id]
        return event

    # --- reading -----------------------------------------------------------------------

    def events(
        self,
        run_id: str | None = None,
        *,
        kind: str | None = None,
        key: str | None = None,
        name: str | None = None,
        states: Any = None,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        rewritten: bool | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events matching every filter given, in commit (``seq``) order.

        ``states``: State classes (subclasses included) or their names;
        ``since``/``until``: inclusive UTC times; ``rewritten``: only events a
        handler rewrote (True) or did not (False); ``after_seq``: exclusive.
        """
        if kind is not None and kind not in ("task", "flow"):
            raise ValueError(f"kind= takes 'task' or 'flow', got {kind!r}")
        q = Query(run_id=run_id, kind=kind, key=key, name=name, types=_type_names(states),
                  since=_time(since, "since"), until=_time(until, "until"), rewritten=rewritten,
                  after_seq=after_seq, limit=limit)
        return self.decode(self._rec.select(q))

    def history(self, run_id: str) -> list[Event]:
        """Every event of the run, in commit order; ``RunNotFoundError`` if there is none."""
        events = self.decode(self._rec.select(Query(run_id=run_id)))
        if not events:
            raise self._not_found(run_id)
        return events

    def iter_history(self, run_id: str, batch: int = 5000) -> Iterator[Event]:
        """The run's events in commit order, decoded a batch at a time (constant memory).

        ``RunNotFoundError`` if the run has no event.
        """
        chunk: list[tuple[Any, ...]] = []
        seen = False
        for row in self.rows(run_id):
            chunk.append(row)
            if len(chunk) == batch:
                seen = True
                yield from _decode(chunk)
                chunk = []
        if not seen and not chunk:
            raise self._not_found(run_id)
        yield from _decode(chunk)

    def runs(self, *, flow: str | None = None, states: Any = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first: run_id, flow, state (the flow's latest state name), started, ended, events."""
        return self._rec.runs(flow=flow, types=_type_names(states), limit=limit)

    def run(self, run_id: str) -> RunRecord:
        """The ``runs`` record of one run."""
        found = self._rec.runs(run_id=run_id)
        if not found:
            raise self._not_found(run_id)
        return found[0]

    def rebuild(self, run_id: str) -> RunView:
        """The run's final states from the ledger: equal to what ``flow.run()`` returned."""
        return self._view(run_id, self._rec.latest(run_id), final=True)

    def state_at(self, run_id: str, when: datetime.datetime | int) -> RunView:
        """The run as of ``when``: a datetime (UTC), or a seq (that event included)."""
        if isinstance(when, datetime.datetime):
            rows = self._rec.latest(run_id, until=codec.iso(when))
        elif isinstance(when, int) and not isinstance(when, bool):
            rows = self._rec.latest(run_id, until_seq=when)
        else:
            raise TypeError(f"state_at(run_id, when): when must be a datetime or a seq (int), got {when!r}")
        if not rows:
            self.run(run_id)  # raises RunNotFoundError for an unknown run
            return RunView(run_id, "", None, {}, 0)
        return self._view(run_id, rows)

    def _view(self, run_id: str, rows: list[tuple[Any, ...]], final: bool = False) -> RunView:
        """A RunView of each object's last row; ``final``: as ``flow.run()`` returned it."""
        if not rows:
            raise self._not_found(run_id)
        tasks: dict[str, State] = TaskStates()
        flow_state: State | None = None
        flow_name = ""
        flow_text = ""
        for _seq, kind, key, _name, flow, text in rows:
            flow_name = flow
            if kind == "task":
                tasks[key] = codec.state_from_json(text)
            else:
                flow_state, flow_text = codec.state_from_json(text), text
        if flow_state is not None:
            # the engine hands back {Task: State} as a flow's result (see codec): here by key
            if flow_state.result is None and (final or '"result_flow":true' in flow_text):
                flow_state.result = TaskStates(tasks)
            flow_state.context["run_id"] = run_id
        return RunView(run_id, flow_name, flow_state, tasks, len(rows))

    def verify(self, run_id: str | None = None) -> "Report":
        """Recompute every hash chain (or one run's); report changed, missing, inserted, reordered events."""
        from .verify import verify

        return verify(self, run_id)

    # --- durable-subscription cursors ---------------------------------------------------

    def load_cursor(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """(last delivered seq, filter dict) of a durable subscription, or None if unknown."""
        found = self._rec.load_cursor(name)
        if found is None:
            return None
        return found[0], json.loads(found[1])

    def save_cursor(self, name: str, seq: int, filter: dict[str, Any]) -> None:  # noqa: A002
        """Record a durable subscription's cursor (committed at once)."""
        self._rec.save_cursor(name, int(seq), codec.to_json(filter), codec.iso(codec.utcnow()))

    def max_seq(self) -> int:
        """The highest seq in the ledger (0 when empty)."""
        return self._rec.max_seq()

    # --- replay and export (eventstore.replay, eventstore.export) ------------------------

    def replay(self, run_id: str, *listeners: Any, handlers: Iterable[Any] = (), **filters: Any) -> int:
        """Feed a past run's events to listeners and handlers; see ``eventstore.replay``."""
        from .replay import replay

        return replay(self, run_id, *listeners, handlers=handlers, **filters)

    def export(self, file: Any, format: str = "jsonl", run_id: str | None = None) -> int:  # noqa: A002
        """Write events as JSON lines or CSV to a path or an open text file; see ``eventstore.export``."""
        from .export import export

        return export(self, file, format, run_id)

    def import_jsonl(self, file: Any) -> int:
        """Append the events of a JSON-lines export, keeping every hash verifiable."""
        from .export import import_jsonl

        return import_jsonl(self, file)

    # --- rows <-> events ---------------------------------------------------------------

    def decode(self, rows: Iterable[tuple[Any, ...]]) -> list[Event]:
        """Events of stored rows (``recorder.COLUMNS``).

        The cyclic garbage collector is paused while a long list is built: the
        new objects hold no cycles, and its repeated passes over them would
        otherwise double the time of reading a 100,000-event run.
        """
        if isinstance(rows, list) and len(rows) < 2000 or not gc.isenabled():
            return _decode(rows)
        gc.disable()
        try:
            return _decode(rows)
        finally:
            gc.enable()

    def rows(self, run_id: str | None = None, after_seq: int | None = None,
             tail: bool = False) -> Iterator[tuple[Any, ...]]:
        """Stored rows in seq order (for verify and export), read in batches.

        ``tail``: a run's rows up to the end of the ledger, not only to its recorded last event.
        """
        return self._rec.iter_rows(Query(run_id=run_id, after_seq=after_seq), tail=tail)

    def _not_found(self, run_id: str) -> RunNotFoundError:
        known = [r.run_id for r in self._rec.runs(limit=3)]
        hint = f" Recent runs: {', '.join(known)}." if known else " The ledger holds no run yet."
        return RunNotFoundError(
            f"No run {run_id!r} in ledger {self._rec.path}.{hint} List them with store.runs() "
            "(or `stateledger runs`).", self._rec.path, run_id)


def _decode(rows: Iterable[tuple[Any, ...]]) -> list[Event]:
    """Events of stored rows. An old state that is the text of the object's previous new
    state reuses that State object, as in the live run (and is not decoded twice)."""
    out: list[Event] = []
    append = out.append
    last: dict[str, tuple[str, State, str, str]] = {}  # key -> (text, state, run_id, kind)
    get = last.get
    from_json, parse, loads = codec.state_from_json, codec.parse_time, json.loads
    for (seq, event_id, run_id, ts, kind, name, key, flow, attempt, _state, old_t, new_t,
         proposed_t, rewritten_t, actor, prev_hash, hash_) in rows:
        prev = get(key)
        if prev is not None and prev[0] == old_t and prev[2] == run_id and prev[3] == kind:
            old = prev[1]
        else:
            old = from_json(old_t)
        new = from_json(new_t)
        last[key] = (new_t, new, run_id, kind)
        append(Event(
            run_id, parse(ts), kind, name, key, attempt, old, new,
            from_json(proposed_t) if proposed_t is not None else None,
            tuple(loads(rewritten_t)) if rewritten_t != "[]" else (),
            actor, event_id, seq, prev_hash, hash_, flow,
        ))
    return out


def _type_names(states: Any) -> frozenset[str] | None:
    """Stored state names matching ``states`` (classes incl. subclasses, or names)."""
    if states is None:
        return None
    if isinstance(states, (str, type)):
        states = [states]
    names: set[str] = set()
    for s in states:
        if isinstance(s, str):
            cls = STATE_CLASSES.get(s)
            if cls is None:
                raise ValueError(f"Unknown state {s!r}; states are: {', '.join(STATE_CLASSES)}")
        elif isinstance(s, type) and issubclass(s, State):
            cls = s
        else:
            raise TypeError(f"states= takes State classes (e.g. Failed) or their names, got {s!r}")
        # a user's own subclass matches by its nearest library class (that is what is stored)
        names.update(n for n, c in STATE_CLASSES.items() if issubclass(c, cls))
        names.add(codec.type_name_of_class(cls))
    return frozenset(names)


def _time(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"{what}= takes a datetime, got {value!r}")
    return codec.iso(value)

