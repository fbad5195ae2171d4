"""``EventStore``: the ledger's API -- append, read, rebuild, verify, export, follow.

It talks to a recorder (``eventstore.protocol.Recorder``) chosen from its
target: ``SQLiteRecorder`` for a file, ``MemoryRecorder`` for ``":memory:"``
(or any recorder given as ``recorder=``); ``eventstore.mapper`` turns events
into rows and back. ``verify``, ``export`` and ``replay`` are functions over
the recorder, which this class calls.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from statemachine import masking
from statemachine.errors import ArgumentError
from statemachine.events import Event
from statemachine.filters import EventFilter, parse_states
from statemachine.states import STATE_CLASSES, State

from . import codec
from .mapper import Mapper, RunRecord
from .orphans import Orphan, Reaped, RunLease, find_orphans, reap_orphans, supports_writers
from .protocol import Leasing, Query, Recorder, iter_events, newest_rows, run_exists, run_not_found
from .targets import DEFAULT_TIMEOUT, default_path, is_url, open_recorder, without_password
from .views import Report, RunView, run_view

if TYPE_CHECKING:
    from .checkpoints import Checkpoint

__all__ = ["EventStore", "default_path", "open_recorder", "is_url", "without_password", "DEFAULT_TIMEOUT"]


class EventStore:
    """The ledger. ``EventStore(target=None, *, recorder=None, durability="normal", timeout=10.0)``.

    ``target``: a file path (default ``default_path()``), ``sqlite:///path``,
    ``":memory:"`` (nothing on disk) or ``postgresql://...``; or give a ready
    ``recorder=`` (any ``eventstore.protocol.Recorder``) instead.
    ``durability="normal"``: a committed event survives the process being
    killed; ``"full"``: also a power loss (fsync on each commit). ``timeout``:
    seconds to wait for another writer. ``anchor``: a folder or an
    ``https://`` URL where a checkpoint is sent after each flow run (default
    ``STATELEDGER_ANCHOR``), signed with ``anchor_key`` (a private key or its
    file; default ``STATELEDGER_ANCHOR_KEY``); see ``eventstore.anchor``.
    """

    def __init__(self, target: str | os.PathLike[str] | None = None, *, recorder: Recorder | None = None,
                 durability: str = "normal", timeout: float = DEFAULT_TIMEOUT,
                 anchor: str | os.PathLike[str] | None = None, anchor_key: Any = None) -> None:
        if recorder is not None:
            if target is not None:
                raise ArgumentError("EventStore takes a target or a recorder=, not both")
            self.path = recorder.path
            self.recorder = recorder
        else:
            path = os.fspath(target) if target is not None else default_path()
            self.recorder = open_recorder(path, durability=durability, timeout=timeout)
            self.path = without_password(path)
        self.durability = durability
        #: Every secret is known before the first event is written (see statemachine.masking).
        masking.load_known_secrets()
        self._mapper = Mapper(masking.MASKER)
        self.anchor = None
        if anchor is not None or os.environ.get("STATELEDGER_ANCHOR"):
            from .anchor import anchor_of

            self.anchor = anchor_of(anchor, anchor_key)

    def __repr__(self) -> str:
        return f"<EventStore {self.path}>"

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the ledger (a ``":memory:"`` store keeps its events)."""
        self.recorder.close()

    # --- writing ------------------------------------------------------------------------

    def append(self, event: Event) -> Event:
        """Commit ``event``; fill in its ``seq``, ``prev_hash`` and ``hash`` and return it."""
        row = self._mapper.to_row(event)
        try:
            event.seq, event.prev_hash, event.hash = self.recorder.append(row)
        except BaseException:
            self._mapper.forget(event.run_id)
            raise
        if self.anchor is not None and event.kind == "flow" and event.new_state.is_finished():
            self.anchor.after_run(self, event.run_id)
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
        newest: bool = False,
        manual: bool | None = None,
    ) -> list[Event]:
        """Events matching every filter given, in commit (``seq``) order.

        ``states``: State classes (subclasses included) or their names;
        ``since``/``until``: inclusive UTC times; ``rewritten``: only events a
        handler rewrote (True) or did not (False); ``after_seq``: exclusive;
        ``limit``: the first that many, or with ``newest=True`` the last that
        many (still in commit order); ``manual=True``: only manual marks
        (events with a ``reason``).
        """
        q = _query(run_id, kind, key, name, states, since, until, rewritten, after_seq)
        if manual:  # marks are few: scan the rows (not decoded) for a reason
            rows = [r for r in self.recorder.iter_rows(q) if r.reason is not None]
            if limit is not None:
                rows = rows[-limit:] if newest else rows[:limit]
            return Mapper.to_events(rows)
        if newest and limit is not None:
            return Mapper.to_events(newest_rows(self.recorder, q, limit))
        return Mapper.to_events(self.recorder.select(q.but(limit=limit)))

    def count(self, run_id: str | None = None, *, kind: str | None = None, key: str | None = None,
              name: str | None = None, states: Any = None, since: datetime.datetime | None = None,
              until: datetime.datetime | None = None, rewritten: bool | None = None) -> int:
        """How many events ``events()`` with these filters would return (read in batches)."""
        q = _query(run_id, kind, key, name, states, since, until, rewritten, None)
        return sum(1 for _ in self.recorder.iter_rows(q))

    def history(self, run_id: str) -> list[Event]:
        """Every event of the run, in commit order; ``RunNotFoundError`` if there is none."""
        events = Mapper.to_events(self.recorder.select(Query(run_id=run_id)))
        if not events:
            raise run_not_found(self.recorder, run_id)
        return events

    def iter_history(self, run_id: str, batch: int = 5000) -> Iterator[Event]:
        """The run's events in commit order, decoded a batch at a time (constant memory).

        ``RunNotFoundError`` if the run has no event.
        """
        return iter_events(self.recorder, run_id, batch)

    def runs(self, *, flow: str | None = None, states: Any = None, since: datetime.datetime | None = None,
             until: datetime.datetime | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first: run_id, flow, state (the flow's latest state name), started, ended, events.

        ``since``/``until``: only runs that *started* within these UTC times (inclusive).
        """
        return self.recorder.runs(flow=flow, types=_type_names(states), since=_time(since, "since"),
                                  until=_time(until, "until"), limit=limit)

    def run(self, run_id: str) -> RunRecord:
        """The ``runs`` record of one run."""
        found = self.recorder.runs(run_id=run_id)
        if not found:
            raise run_not_found(self.recorder, run_id)
        return found[0]

    def rebuild(self, run_id: str) -> RunView:
        """The run's final states from the ledger: equal to what ``flow.run()`` returned."""
        rows = self.recorder.latest(run_id)
        if not rows:
            raise run_not_found(self.recorder, run_id)
        return run_view(run_id, rows, final=True)

    def state_at(self, run_id: str, when: datetime.datetime | int) -> RunView:
        """The run as of ``when``: a datetime (UTC), or a seq (that event included)."""
        if isinstance(when, datetime.datetime):
            rows = self.recorder.latest(run_id, until=codec.iso(when))
        elif isinstance(when, int) and not isinstance(when, bool):
            rows = self.recorder.latest(run_id, until_seq=when)
        else:
            raise ArgumentError(f"state_at(run_id, when): when must be a datetime or a seq (int), got {when!r}")
        if not rows:
            self.run(run_id)  # raises RunNotFoundError for an unknown run
            return RunView(run_id, "", None, {}, 0)
        return run_view(run_id, rows)

    def verify(self, run_id: str | None = None, *, checkpoints: Iterable[Any] = (),
               public_key: Any = None) -> Report:
        """Recompute every hash chain (or one run's), the runs summary and the checkpoints; see ``eventstore.verify``.

        ``checkpoints``: ``Checkpoint`` objects or paths of their JSON files;
        the ledger must still extend each. ``public_key`` (an Ed25519 public
        key or its PEM file): each given checkpoint must carry its signature.
        """
        from .checkpoints import public_key as load_public_key
        from .checkpoints import read_checkpoint
        from .verify import verify

        given = [read_checkpoint(c) for c in checkpoints]
        key = load_public_key(public_key) if public_key is not None else None
        return verify(self.recorder, run_id, checkpoints=given, public_key=key)

    def checkpoint(self, signing_key: Any = None) -> "Checkpoint":
        """Seal the ledger up to its last event: a ``Checkpoint`` to keep elsewhere (also recorded in the ledger).

        ``signing_key``: an Ed25519 private key, or the path of its PEM file
        (``stateledger keygen``). Costs the events since the previous checkpoint.
        """
        from .checkpoints import take

        return take(self.recorder, signing_key)

    def max_seq(self) -> int:
        """The highest seq in the ledger (0 when empty)."""
        return self.recorder.max_seq()

    def tail(
        self,
        after_seq: int = 0,
        *,
        run_id: str | None = None,
        flow: Any = None,
        task: Any = None,
        states: Any = None,
        kinds: Any = None,
        where: EventFilter | None = None,
        poll_interval: float = 0.5,
        stop: threading.Event | Callable[[], bool] | None = None,
        timeout: float | None = None,
        batch_size: int = 1000,
        on_idle: Callable[[int], Any] | None = None,
    ) -> Iterator[Event]:
        """Events committed after ``after_seq`` (by any process), in seq order, as they come.

        Reads what is there, then waits ``poll_interval`` seconds for more
        (a backend that can be woken, wakes sooner, and reads only when woken
        or every ``eventstore.postgres.FALLBACK`` seconds), until ``stop`` (a
        ``threading.Event``, or a callable returning True) says so or
        ``timeout`` seconds passed; never ends otherwise. Filters: as
        ``subscribe()``'s (``flow``, ``task``, ``states``, ``kinds``), or a
        ready ``EventFilter`` as ``where``. ``on_idle(seq)``, if given, is
        called each time the reader caught up, with the last seq read
        (filtered-out events included) -- where a cursor can be saved.
        """
        if poll_interval < 0:
            raise ArgumentError(f"poll_interval must be >= 0 seconds, got {poll_interval!r}")
        if where is not None and any(v is not None for v in (flow, task, states, kinds)):
            raise ArgumentError("tail() takes where= or flow=/task=/states=/kinds=, not both")
        if where is None:
            where = EventFilter(flow=flow, task=task, states=states, kinds=kinds)
        matches = None if where.is_empty else where.matches
        should_stop = _stopper(stop)
        deadline = None if timeout is None else time.monotonic() + timeout
        cursor = after_seq
        notifies = getattr(self.recorder, "notifies", False)
        fresh = True  # whether new rows may exist: always, unless a notifying recorder said no
        while True:
            if fresh:
                rows = self.recorder.select(Query(run_id=run_id, after_seq=cursor, limit=batch_size))
                for event in Mapper.to_events(rows):
                    cursor = event.seq
                    if matches is None or matches(event):
                        yield event
                if len(rows) == batch_size:
                    continue
                if on_idle is not None:
                    on_idle(cursor)
            if should_stop():
                return
            wait = poll_interval
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = min(wait, left)
            if isinstance(stop, threading.Event) and not notifies:
                stop.wait(wait)
            else:  # a notifying recorder (PostgreSQL) wakes on a commit; stop is checked each wait
                fresh = self.recorder.wait(cursor, wait) is not False

    # --- durable-subscription cursors ---------------------------------------------------

    def load_cursor(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """(last delivered seq, filter dict) of a durable subscription, or None if unknown."""
        found = self.recorder.load_cursor(name)
        if found is None:
            return None
        return found[0], json.loads(found[1])

    def save_cursor(self, name: str, seq: int, filter: dict[str, Any]) -> None:  # noqa: A002
        """Record a durable subscription's cursor (committed at once)."""
        self.recorder.save_cursor(name, int(seq), codec.to_json(filter), codec.iso(codec.utcnow()))

    # --- leases (eventstore.protocol.Leasing): one consumer per durable subscription ------

    def acquire_lease(self, name: str, holder: str, ttl: float, *,
                      replacing: str | None = None) -> tuple[str, float] | None:
        """Take the lease ``name`` for ``ttl`` seconds: None if taken, else (holder, seconds left).

        A recorder that keeps no leases (one written before them) grants every
        request, with a warning: consumers are then not kept apart.
        """
        if not isinstance(self.recorder, Leasing):
            logging.getLogger("stateledger").warning(
                "Ledger %s (%s) keeps no leases: a second consumer of %r would not be refused.",
                self.path, type(self.recorder).__name__, name)
            return None
        return self.recorder.acquire_lease(name, holder, ttl, replacing=replacing)

    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend ``holder``'s lease ``name`` by ``ttl`` seconds from now; False if it lost it."""
        if not isinstance(self.recorder, Leasing):
            return True
        return self.recorder.renew_lease(name, holder, ttl)

    def release_lease(self, name: str, holder: str) -> None:
        """Give up ``holder``'s lease ``name``."""
        if isinstance(self.recorder, Leasing):
            self.recorder.release_lease(name, holder)

    # --- replay and export (eventstore.replay, eventstore.export) ------------------------

    def replay(self, run_id: str, *listeners: Any, handlers: Iterable[Any] = (), **filters: Any) -> int:
        """Feed a past run's events to listeners and handlers; see ``eventstore.replay``."""
        from .replay import replay

        return replay(self.recorder, run_id, *listeners, handlers=handlers, **filters)

    def export(self, file: Any, format: str = "jsonl", run_id: str | None = None) -> int:  # noqa: A002
        """Write events as JSON lines or CSV to a path or an open text file; see ``eventstore.export``."""
        from .export import export

        return export(self.recorder, file, format, run_id)

    def import_jsonl(self, file: Any, *, max_line_bytes: int | None = None) -> int:
        """Append the events of a JSON-lines export, all or nothing, keeping every hash verifiable.

        A bad line raises ``ImportLineError`` (its line number and what was
        wrong) and leaves the ledger as it was; see ``eventstore.export``.
        ``max_line_bytes``: the longest line accepted (default 8 MiB).
        """
        from .export import MAX_LINE_BYTES, import_jsonl

        return import_jsonl(self.recorder, file, max_line_bytes=max_line_bytes or MAX_LINE_BYTES)

    def open_run(self, run_id: str, flow: str = "", *, restart: bool = False) -> Any:
        """Claim ``run_id`` (``flow.run()`` does, first): a ``RunLease`` that beats; see ``eventstore.orphans``.

        ``RunExistsError`` if the run exists or another process claimed it, unless ``restart``.
        """
        stored = self._mapper.clean(run_id)  # as the events name it (masked)
        if supports_writers(self.recorder):
            return RunLease(self.recorder, stored, take=restart, clean=self._mapper.clean)
        if not restart and self.recorder.runs(run_id=stored):  # a recorder without writers: best effort
            raise run_exists(self.recorder, stored)
        return contextlib.nullcontext()

    def orphans(self, *, lease: float = 60.0, run_id: str | None = None) -> list[Orphan]:
        """Unfinished runs whose writer is gone: on this host, its process; elsewhere, silent ``lease`` s."""
        return find_orphans(self.recorder, lease=lease, run_id=run_id and self._mapper.clean(run_id))

    def reap(self, *, lease: float = 60.0, run_id: str | None = None) -> list[Reaped]:
        """Commit ``Crashed`` for each orphan's open tasks and flow, through the pipeline; idempotent."""
        return reap_orphans(self, lease=lease, run_id=run_id and self._mapper.clean(run_id), clean=self._mapper.clean)

    def mark(self, run_id: str, key: str, state: Any, *, reason: str, by: str | None = None) -> Event:
        """Set a task's (or the flow's) state by hand, through the pipeline; see ``eventstore.marks``.

        ``reason`` is recorded in the event, ``by`` (default: the OS user) as
        its ``actor``; the flow's state is recomputed from its reference tasks.
        """
        from .marks import mark

        return mark(self, run_id, key, state, reason=reason, by=by)

    def report(self, run_id: str, *, flow: Any = None) -> str:
        """The run as one self-contained HTML page; see ``eventstore.report``."""
        from .report import render_report

        return render_report(self, run_id, flow=flow)

    def copy_to(self, other: "EventStore", *, append: bool = False) -> int:
        """Copy every event of this ledger into ``other`` (SQLite <-> PostgreSQL), hashes kept; return how many.

        ``other`` must hold no event, unless ``append=True`` (then no run may be in both).
        """
        from .export import copy_ledger

        return copy_ledger(self.recorder, other.recorder, append=append)


def _query(run_id: str | None, kind: str | None, key: str | None, name: str | None, states: Any,
           since: Any, until: Any, rewritten: bool | None, after_seq: int | None) -> Query:
    if kind is not None and kind not in ("task", "flow"):
        raise ArgumentError(f"kind= takes 'task' or 'flow', got {kind!r}")
    return Query(run_id=run_id, kind=kind, key=key, name=name, types=_type_names(states),
                 since=_time(since, "since"), until=_time(until, "until"), rewritten=rewritten,
                 after_seq=after_seq)


def _stopper(stop: Any) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    if isinstance(stop, threading.Event):
        return stop.is_set
    if callable(stop):
        return lambda: bool(stop())
    raise ArgumentError(f"stop= takes a threading.Event or a callable returning True to stop, got {stop!r}")


def _type_names(states: Any) -> frozenset[str] | None:
    """Stored state names matching ``states`` (classes incl. subclasses, or names)."""
    classes = parse_states(states, "states", names=True)
    if classes is None:
        return None
    names: set[str] = set()
    for cls in classes:
        # a user's own subclass matches by its nearest library class (that is what is stored)
        names.update(n for n, c in STATE_CLASSES.items() if issubclass(c, cls))
        names.add(codec.type_name_of_class(cls))
    return frozenset(names)


def _time(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime.datetime):
        raise ArgumentError(f"{what}= takes a datetime, got {value!r}")
    return codec.iso(value)

