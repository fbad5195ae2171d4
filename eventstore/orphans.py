"""Runs whose writer is gone: writers, heartbeats, orphans and the reaper.

A flow run claims its run id through ``EventStore.open_run`` (a ``RunLease``):
the recorder keeps the writer's host, pid and process start time, and a
heartbeat every ``HEARTBEAT_INTERVAL`` seconds, beside the ledger and
outside the hash chain. A run that is not finished is an *orphan* when

* its writer ran on this host and that process is gone (no such pid, a
  zombie, or a pid now used by a process started at another time);
* its writer ran on another host and sent no heartbeat for ``lease`` seconds.

``reap_orphans`` (``EventStore.reap``) moves an orphan's open tasks, then its flow, to ``Crashed`` through
the pipeline (global handlers, legality, commit, broadcast), with the
reaping process as ``actor`` and a message saying what was found. The reaper
first takes the run over from the dead writer in one atomic step, so two
reapers never both write, and a live writer (whose heartbeat moved) is never
taken over. A run appended without ``open_run`` has no writer and is never
reaped; nor is one its writer released unfinished on purpose (a paused
run waiting for a restart). A run that an error stopped keeps its writer
until that process is gone.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from statemachine.errors import ArgumentError
from statemachine.events import current_actor, current_host
from statemachine.states import STATE_CLASSES, Crashed, State, utcnow

from . import codec
from .mapper import FINISHED_TYPES
from .protocol import Recorder, Writer, iter_events

__all__ = [
    "HEARTBEAT_INTERVAL", "DEFAULT_LEASE", "Orphan", "Reaped", "RunLease", "find_orphans", "reap_orphans",
    "this_writer", "process_start", "supports_writers",
]

log = logging.getLogger("stateledger")

#: Seconds between two heartbeats of a running flow.
HEARTBEAT_INTERVAL = 5.0
#: Seconds without a heartbeat after which a writer on another host counts as gone.
DEFAULT_LEASE = 60.0


# --- who writes: this process, and whether another one still lives -----------------------


@functools.lru_cache(maxsize=1)
def _boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_start(pid: int) -> tuple[bool | None, str | None]:
    """``(alive, start time as ISO UTC or None)`` of a process of this host (``alive`` None: unknown).

    On Linux the start time comes from ``/proc`` (a zombie counts as gone);
    elsewhere only whether the pid exists is known (on Windows not even that:
    a writer there is judged by its heartbeat lease).
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return False, None
    except OSError:
        fields = []
    boot = _boot_time()
    if fields and boot is not None:
        if fields[0] in ("Z", "X"):  # a zombie or a dead process: it writes nothing more
            return False, None
        ticks = int(fields[19])
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        return True, codec.iso(datetime.datetime.fromtimestamp(started, datetime.timezone.utc))
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl-C there: only the heartbeat lease can tell
        return None, None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, None
    except PermissionError:
        pass
    return True, None


@functools.lru_cache(maxsize=4)
def _own_start(pid: int) -> str | None:
    return process_start(pid)[1]


def this_writer(run_id: str, clean: Callable[[str], str] = str) -> Writer:
    """This process as the writer of ``run_id``, its heartbeat now (texts through ``clean``: masked)."""
    pid = os.getpid()
    return Writer(clean(run_id), clean(current_host()), pid, _own_start(pid), codec.iso(utcnow()),
                  None, clean(current_actor()))


def supports_writers(recorder: Any) -> bool:
    """Whether the recorder keeps writers (``claim_run`` and the rest of run ownership)."""
    return callable(getattr(recorder, "claim_run", None)) and callable(getattr(recorder, "writers", None))


# --- a run being written ---------------------------------------------------------------


class RunLease:
    """This process writes ``run_id``: the claim, a heartbeat, the release at the end.

    A context manager (``EventStore.open_run`` returns one): entering claims
    the run (``RunExistsError`` if it exists, unless ``take``) and beats every
    ``interval`` seconds (on the process's one heartbeat thread); leaving
    stops the beat and releases the run (finished, or paused on purpose).
    Left by an exception, the run is not released: once this process is
    gone, it is an orphan.
    """

    def __init__(self, recorder: Recorder, run_id: str, *, take: bool = False,
                 interval: float = HEARTBEAT_INTERVAL, clean: Callable[[str], str] = str) -> None:
        self.recorder, self.run_id, self.take, self.interval = recorder, run_id, take, interval
        self.clean = clean
        self.writer: Writer | None = None
        self._lock = threading.Lock()  # a beat never lands after the release
        self._closed = False

    def __enter__(self) -> RunLease:
        self.writer = this_writer(self.run_id, self.clean)
        self.recorder.claim_run(self.writer, take=self.take)
        _HEART.add(self)
        return self

    def beat(self) -> bool:
        """Record a heartbeat now; False once the run is released or another process took it over."""
        w = self.writer
        with self._lock:
            if self._closed or w is None:
                return False
            try:
                if self.recorder.beat(w.run_id, w.host, w.pid, codec.iso(utcnow())):
                    return True
                log.warning("run %s: another process took the run over (reaped?); heartbeats stop", w.run_id)
                return False
            except Exception as exc:  # a busy ledger: the next beat tries again
                log.warning("run %s: heartbeat not recorded (%s)", w.run_id, exc)
                return True

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        _HEART.remove(self)
        with self._lock:
            self._closed = True
        w = self.writer
        if w is not None and exc_type is None:  # stopped by an error: open until this process is gone
            try:
                self.recorder.release_run(w.run_id, w.host, w.pid, codec.iso(utcnow()))
            except Exception as exc:  # the run's outcome matters more than its release
                log.warning("run %s: could not release the run (%s)", w.run_id, exc)


class _Heart:
    """One daemon thread per process beats for every run the process writes (a thread per run
    would cost more than a small run)."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):  # a forked child has no thread and a fresh lock
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.due: dict[RunLease, float] = {}  # lease -> its next beat (time.monotonic())
        self.running = False
        self.sleeps_until = 0.0  # when the thread wakes next on its own

    def add(self, lease: RunLease) -> None:
        with self.lock:
            at = self.due[lease] = time.monotonic() + lease.interval
            if not self.running:
                self.running = True
                threading.Thread(target=self._run, name="stateledger-heartbeat", daemon=True).start()
            elif at < self.sleeps_until:  # only wake the thread when it would sleep past this beat
                self.wake.set()

    def remove(self, lease: RunLease) -> None:
        with self.lock:
            self.due.pop(lease, None)

    def _run(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                beating = [lease for lease, at in self.due.items() if at <= now]
                for lease in beating:
                    self.due[lease] = now + lease.interval
                wait = min(self.due.values(), default=now + 3600.0) - now
                self.sleeps_until = now + wait
            for lease in beating:
                if not lease.beat():
                    self.remove(lease)
            self.wake.wait(max(wait, 0.0))
            self.wake.clear()


_HEART = _Heart()


# --- orphans ---------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Orphan:
    """A run that is not finished and whose writer is gone; ``reason`` says what was found."""

    run_id: str
    flow: str
    state: str
    writer: Writer
    reason: str


@dataclass(slots=True)
class Reaped:
    """What ``reap`` did to one orphan: the ``Crashed`` events it committed."""

    run_id: str
    flow: str
    reason: str
    tasks: list[str] = field(default_factory=list)  # keys of the tasks moved to Crashed
    events: int = 0


def _short(iso: str | None) -> str:
    if not iso:
        return "never"
    return codec.parse_time(iso).strftime("%Y-%m-%d %H:%M:%SZ")


def why_gone(w: Writer, lease: float, now: datetime.datetime, host: str) -> str | None:
    """Why the writer ``w`` no longer writes its run, or None while it may."""
    if w.released is not None:  # let go on purpose (e.g. a paused run, waiting for a restart)
        return None
    who = f"writer pid {w.pid} on host {w.host}"
    beat = f"last heartbeat {_short(w.heartbeat)}"
    alive, started = process_start(w.pid) if w.host == host else (None, None)
    if alive is False:
        return f"{who} is gone; {beat}"
    if alive:
        if w.started is not None and started is not None and started != w.started:
            return f"{who} is gone (that pid now belongs to a process started {_short(started)}); {beat}"
        return None
    age = (now - codec.parse_time(w.heartbeat)).total_seconds()
    if age > lease:
        return f"{who} sent no heartbeat for {age:.0f} s (lease {lease:g} s); {beat}"
    return None


def find_orphans(recorder: Recorder, *, lease: float = DEFAULT_LEASE, run_id: str | None = None) -> list[Orphan]:
    """The runs of the ledger (or ``run_id``) that are not finished and whose writer is gone."""
    if lease < 0:
        raise ArgumentError(f"lease must be >= 0 seconds, got {lease!r}", "lease", lease)
    if not supports_writers(recorder):
        return []
    unfinished = [name for name in STATE_CLASSES if name not in FINISHED_TYPES]
    open_runs = {r.run_id: r for r in recorder.runs(types=unfinished, run_id=run_id) if r.ended is None}
    if not open_runs:
        return []
    now, host = utcnow(), current_host()
    out = []
    for w in recorder.writers(open_runs):
        reason = why_gone(w, lease, now, host)
        if reason is not None:
            r = open_runs[w.run_id]
            out.append(Orphan(r.run_id, r.flow, r.state, w, reason))
    return sorted(out, key=lambda o: o.run_id)


# --- the reaper --------------------------------------------------------------------------


def reap_orphans(store: Any, *, lease: float = DEFAULT_LEASE, run_id: str | None = None,
                 clean: Callable[[str], str] = str) -> list[Reaped]:
    """Move every orphan's open tasks and its flow to ``Crashed``; return what was reaped.

    ``store`` is the ``EventStore`` (its ``append`` masks and commits; its
    ``recorder`` keeps the writers). Each orphan is taken over atomically
    first: an orphan another reaper took, or whose writer beat meanwhile, is
    left alone. Reaping again finds nothing (finished runs are not orphans).
    ``clean`` makes texts as the ledger stores them (masked).
    """
    recorder = store.recorder
    done = []
    for orphan in find_orphans(recorder, lease=lease, run_id=run_id):
        me = this_writer(orphan.run_id, clean)
        if not recorder.take_over(orphan.writer, me):
            continue
        done.append(_crash(store, orphan, me))  # if it fails half-way, the run stays this process's orphan
        recorder.release_run(me.run_id, me.host, me.pid, codec.iso(utcnow()))
    return done


def _crash(store: Any, orphan: Orphan, me: Writer) -> Reaped:
    """Commit ``Crashed`` for the orphan's open tasks, then its flow, through the pipeline."""
    from statemachine import wiring
    from statemachine.pipeline import Runtime, Subject, transition

    from .replay import StandIn

    last: dict[tuple[str, str], Any] = {}
    for event in iter_events(store.recorder, orphan.run_id):
        last[(event.kind, event.key)] = event
    rt = Runtime(orphan.run_id, orphan.flow, store, wiring.default_bus(), wiring.global_handlers())
    reaped = Reaped(orphan.run_id, orphan.flow, orphan.reason)
    note = f"{orphan.reason}. Reaped by {me.actor}."
    ordered = sorted(last.values(), key=lambda e: (e.kind == "flow", e.seq))
    for event in ordered:
        old: State = event.new_state
        if old.is_finished():
            continue
        what = "Task run" if event.kind == "task" else "Flow run"
        stand_in = StandIn(event.name, event.key, event.kind, orphan.flow)
        subject = Subject(stand_in, event.kind, event.name, event.key)
        transition(subject, old, Crashed(f"{what} crashed: {note}"), rt, event.attempt)
        reaped.events += 1
        if event.kind == "task":
            reaped.tasks.append(event.key)
    return reaped
