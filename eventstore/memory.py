"""``MemoryRecorder``: the ledger in Python lists, for ``EventStore(":memory:")`` and fast tests.

It implements ``eventstore.protocol.Recorder`` like ``SQLiteRecorder``, and is
tested by the same suite; nothing reaches a disk and nothing outlives the process.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
import secrets
import threading
import time
from typing import Any, Iterable, Iterator

from .mapper import (
    COLUMNS, CONTENT, FINISHED_TYPES, CheckpointRow, ContentRow, HashRules, LatestRow, RunRecord, RunRow, StoredRow,
    chain_hash,
    check_continues, run_record, stored_row,
)
from .protocol import Query, Writer, run_exists

__all__ = ["MemoryRecorder"]

_EVERYTHING = Query()
_HASH = COLUMNS.index("hash")  # rows may be plain tuples in COLUMNS order
_RUN_ID, _KIND = CONTENT.index("run_id"), CONTENT.index("kind")


class _Run:
    """The runs summary of one run."""

    __slots__ = ("flow", "state", "started", "ended", "events", "first_seq", "last_seq", "last_hash", "rows")

    def __init__(self, row: ContentRow, seq: int) -> None:
        self.flow, self.state, self.started, self.ended = row.flow, "Pending", row.timestamp, None
        self.events, self.first_seq, self.last_seq, self.last_hash = 0, seq, seq, None
        self.rows: list[StoredRow] = []


class MemoryRecorder:
    """Event rows in Python lists: ``rows`` (every row, in seq order) and a summary per run."""

    path = ":memory:"

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self._runs: dict[str, _Run] = {}
        self._cursors: dict[str, tuple[int, str]] = {}
        self._writers: dict[str, Writer] = {}
        self._highs: dict[str, int] = {}  # cursor name -> the highest seq it was saved at
        self._rules: dict[int, tuple[int, int | None]] = {}  # seq -> hash rule of an imported row
        self._checkpoints: dict[int, CheckpointRow] = {}
        self._ledger_id = secrets.token_hex(16)
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (holder, expires: time.monotonic())
        self._lock = threading.RLock()

    def append(self, row: ContentRow, prev_hash: str | None = None, hash: str | None = None,
               *, rule: tuple[int, int | None] | None = None) -> tuple[int, str | None, str]:
        """Chain and keep one row; see ``Recorder.append``."""
        run_id = row[_RUN_ID]  # by index: a named field is a lookup more per event
        with self._lock:
            run = self._runs.get(run_id)
            last = run.last_hash if run is not None else None
            rows = self.rows
            seq = len(rows) + 1
            if hash is None:
                prev_hash, hash = last, chain_hash(last, row, seq)
            else:
                check_continues(self.path, row, last, prev_hash)
                self._rules[seq] = rule or (1, None)
            stored = stored_row((seq, *row[:-1], prev_hash, hash, row[-1]))  # stored_values, inlined
            rows.append(stored)
            if run is None:
                run = self._runs[run_id] = _Run(row, seq)
            run.rows.append(stored)
            run.events += 1
            run.last_seq, run.last_hash = seq, hash
            if row[_KIND] == "flow":  # a restart (a flow event not finished) opens the run again
                run.state = row.state
                run.ended = (run.ended or row.timestamp) if row.state in FINISHED_TYPES else None
            return seq, prev_hash, hash

    def import_rows(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Keep every (row, prev_hash, hash[, rule]), all or nothing; see ``Importing.import_rows``."""
        with self._lock:
            count = len(self.rows)
            saved: dict[str, tuple[Any, ...] | None] = {}  # run_id -> its summary before (None: new)
            try:
                for row, prev_hash, hash, *rule in rows:
                    if row.run_id not in saved:
                        run = self._runs.get(row.run_id)
                        saved[row.run_id] = None if run is None else (
                            run.state, run.ended, run.events, run.last_seq, run.last_hash, len(run.rows))
                    self.append(row, prev_hash, hash, rule=rule[0] if rule else None)
            except BaseException:
                del self.rows[count:]
                for seq in [seq for seq in self._rules if seq > count]:
                    del self._rules[seq]
                for run_id, before in saved.items():
                    if before is None:
                        self._runs.pop(run_id, None)
                    else:
                        run = self._runs[run_id]
                        run.state, run.ended, run.events, run.last_seq, run.last_hash, kept = before
                        del run.rows[kept:]
                raise
            return len(self.rows) - count

    def select(self, q: Query, *, tail: bool = False) -> list[StoredRow]:
        """Rows matching ``q`` in seq order; see ``Recorder.select``."""
        if q.run_id is None or tail:  # tail: every row of the run, wherever it lies (verify)
            rows: Iterable[Any] = self.rows
        else:
            run = self._runs.get(q.run_id)
            if run is None:
                return []
            rows = run.rows
        if q.but(run_id=None, limit=None) == _EVERYTHING and not (tail and q.run_id is not None):
            out = [r if type(r) is StoredRow else StoredRow._make(r) for r in rows]
        else:
            out = [r if type(r) is StoredRow else StoredRow._make(r) for r in rows if _matches(r, q)]
        return out[: q.limit] if q.limit is not None else out

    def iter_rows(self, q: Query, *, batch: int = 5000, tail: bool = False) -> Iterator[StoredRow]:
        """The rows of ``select``, lazily."""
        yield from self.select(q, tail=tail)

    def latest(self, run_id: str, *, until_seq: int | None = None,
               until: str | None = None) -> list[LatestRow]:
        """Each object's last row in the run; see ``Recorder.latest``."""
        run = self._runs.get(run_id)
        last: dict[tuple[str, str], StoredRow] = {}
        for r in run.rows if run is not None else ():
            if (until_seq is not None and r.seq > until_seq) or (until is not None and r.timestamp > until):
                break
            last[(r.kind, r.key)] = r
        return [LatestRow(r.seq, r.kind, r.key, r.name, r.flow, r.new_state)
                for r in sorted(last.values(), key=lambda r: r.seq)]

    def runs(self, *, flow: str | None = None, types: Iterable[str] | None = None,
             since: str | None = None, until: str | None = None, limit: int | None = None,
             run_id: str | None = None) -> list[RunRecord]:
        """Runs, newest first; see ``Recorder.runs``."""
        wanted = set(types) if types is not None else None
        out = []
        for rid, r in sorted(self._runs.items(), key=lambda kv: -kv[1].first_seq):
            if ((flow is None or r.flow == flow) and (wanted is None or r.state in wanted)
                    and (run_id is None or rid == run_id) and (since is None or r.started >= since)
                    and (until is None or r.started <= until)):
                out.append(run_record(rid, r.flow, r.state, r.started, r.ended, r.events))
        return out[:limit] if limit is not None else out

    def run_chain_ends(self) -> dict[str, tuple[int, str]]:
        """run_id -> (events, last hash)."""
        return {rid: (r.events, r.last_hash or "") for rid, r in self._runs.items()}

    def max_seq(self) -> int:
        """The highest seq (0 when empty)."""
        return len(self.rows)

    # --- trust: see Recorder ----------------------------------------------------------

    def ledger_id(self) -> str | None:
        return self._ledger_id

    def hash_rules(self) -> HashRules:
        return HashRules(1, dict(self._rules))

    def run_rows(self, run_id: str | None = None) -> list[RunRow]:
        return [RunRow(rid, r.flow, r.state, r.started, r.ended, r.events, r.first_seq, r.last_seq,
                       r.last_hash or "")
                for rid, r in self._runs.items() if run_id is None or rid == run_id]

    def hashes(self, after_seq: int = 0, until_seq: int | None = None,
               *, batch: int = 50000) -> Iterator[tuple[int, str]]:
        for r in self.rows:
            seq = r[0]
            if seq > after_seq and (until_seq is None or seq <= until_seq):
                yield seq, r[_HASH]

    def checkpoints(self) -> list[CheckpointRow]:
        return [self._checkpoints[s] for s in sorted(self._checkpoints)]

    def add_checkpoint(self, cp: CheckpointRow) -> None:
        with self._lock:
            self._checkpoints.setdefault(cp.seq, cp)

    def cursors(self) -> dict[str, tuple[int, int]]:
        return {name: (seq, self._highs.get(name, seq)) for name, (seq, _) in self._cursors.items()}

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Holds the lock: no append of this recorder happens meanwhile."""
        with self._lock:
            yield

    def wait(self, after_seq: int, timeout: float) -> None:
        """Sleep ``timeout`` seconds (appends come from this process only)."""
        time.sleep(max(0.0, timeout))

    def load_cursor(self, name: str) -> tuple[int, str] | None:
        """The saved (seq, filter text) of ``name``."""
        return self._cursors.get(name)

    def save_cursor(self, name: str, seq: int, filter_text: str, updated: str) -> None:
        """Keep the cursor ``name`` (and its high-water mark)."""
        self._cursors[name] = (seq, filter_text)
        self._highs[name] = max(self._highs.get(name, 0), seq)

    def claim_run(self, writer: Writer, *, take: bool = False) -> None:
        """Make ``writer`` the run's writer; see ``Recorder.claim_run``."""
        with self._lock:
            if not take and (writer.run_id in self._runs or writer.run_id in self._writers):
                raise run_exists(self, writer.run_id)
            self._writers[writer.run_id] = writer

    def beat(self, run_id: str, host: str, pid: int, at: str) -> bool:
        """Heartbeat of the run's writer; see ``Recorder.beat``."""
        with self._lock:
            w = self._writers.get(run_id)
            if w is None or (w.host, w.pid) != (host, pid) or w.released is not None:
                return False
            self._writers[run_id] = replace(w, heartbeat=at)
            return True

    def release_run(self, run_id: str, host: str, pid: int, at: str) -> None:
        """The writer lets go of the run; see ``Recorder.release_run``."""
        with self._lock:
            w = self._writers.get(run_id)
            if w is not None and (w.host, w.pid) == (host, pid) and w.released is None:
                self._writers[run_id] = replace(w, released=at)

    def take_over(self, old: Writer, new: Writer) -> bool:
        """Replace the writer row equal to ``old``; see ``Recorder.take_over``."""
        with self._lock:
            if self._writers.get(old.run_id) != old:
                return False
            self._writers[old.run_id] = new
            return True

    def writers(self, run_ids: Iterable[str] | None = None) -> list[Writer]:
        """Writer rows; see ``Recorder.writers``."""
        with self._lock:
            if run_ids is None:
                return list(self._writers.values())
            return [self._writers[r] for r in run_ids if r in self._writers]

    def acquire_lease(self, name: str, holder: str, ttl: float, *,
                      replacing: str | None = None) -> tuple[str, float] | None:
        """Take the lease ``name`` for ``ttl`` s; None if taken, else (holder, seconds left). See ``Leasing``."""
        with self._lock:
            now = time.monotonic()
            found = self._leases.get(name)
            if found is not None and found[1] > now and found[0] not in (holder, replacing):
                return found[0], found[1] - now
            self._leases[name] = (holder, now + ttl)
            return None

    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend ``holder``'s lease; False if it no longer holds it."""
        with self._lock:
            found = self._leases.get(name)
            if found is None or found[0] != holder:
                return False
            self._leases[name] = (holder, time.monotonic() + ttl)
            return True

    def release_lease(self, name: str, holder: str) -> None:
        """Give up ``holder``'s lease."""
        with self._lock:
            if self._leases.get(name, ("",))[0] == holder:
                del self._leases[name]

    def close(self) -> None:
        """Nothing to release: the rows stay readable."""


def _matches(r: Any, q: Query) -> bool:
    """Whether a stored row (a ``StoredRow`` or a plain tuple in its order) passes ``q``."""
    if type(r) is not StoredRow:
        r = StoredRow._make(r)
    return not (
        (q.kind is not None and r.kind != q.kind)
        or (q.key is not None and r.key != q.key)
        or (q.name is not None and r.name != q.name)
        or (q.run_id is not None and r.run_id != q.run_id)
        or (q.types is not None and r.state not in q.types)
        or (q.since is not None and r.timestamp < q.since)
        or (q.until is not None and r.timestamp > q.until)
        or (q.after_seq is not None and r.seq <= q.after_seq)
        or (q.until_seq is not None and r.seq > q.until_seq)
        or (q.rewritten is not None and (r.rewritten_by != "[]") is not q.rewritten)
    )
