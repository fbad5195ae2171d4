"""What a ledger backend must do: the ``Recorder`` protocol, and the ``Query`` it answers.

``EventStore`` is written against this protocol only; ``SQLiteRecorder``
(``eventstore.sqlite``), ``MemoryRecorder`` (``eventstore.memory``) and a
PostgreSQL recorder implement it, and one test suite runs on each
(``tests/test_recorders.py``, the ``recorder`` fixture). ``EventStore``
opens a ``postgresql://`` target as
``eventstore.postgres.PostgresRecorder(url, durability=..., timeout=...)``. A recorder
stores rows, never events: ``eventstore.mapper`` turns events into
``ContentRow``s and ``StoredRow``s back into events, and owns the hash chain
(``mapper.chain_hash``). Every text a recorder is given is stored and returned
byte for byte, so the chain can be recomputed from what it returns.

The rules every recorder keeps:

* **seq**: each appended row gets a ``seq``, an int unique in the ledger and
  increasing in commit order (gaps allowed, never reused). Readers return rows
  in ``seq`` order.
* **seq is final when visible**: once a row with seq S can be read, no row
  with a smaller seq may appear later (a checkpoint at S seals every row up
  to S). PostgreSQL: take the seq under the same lock as the commit.
* **The per-run chain**: a run's rows are chained: ``hash =
  chain_hash(prev_hash, row, seq)`` (rule 2: the seq is hashed too, so the
  recorder knows the row's seq before it inserts it) where ``prev_hash`` is
  the hash of the run's previous row (``None`` for its first). The append
  that reads the run's last hash and the insert are one atomic step, even
  with several writers (other threads, processes, hosts): two appends to one
  run never chain to the same ``prev_hash``.
* **The ledger's identity**: a random ``ledger_id`` made once, when the
  ledger is created (or when a schema-1 ledger is first written to), and
  never changed; checkpoints name it.
* **Hash rules** (``hash_rules``): rows written before the schema-2 upgrade
  keep their rule-1 hash (never recomputed); imported rows keep the hash
  their source ledger gave them; the recorder records which rule each uses.
* **Checkpoints** (``add_checkpoint``/``checkpoints``): the ledger keeps a
  copy of each checkpoint taken (seq, count, root, time, signature), so the
  next one only reads the rows after it (``hashes``).
* **Cursors** keep a high-water mark: ``save_cursor`` also raises the
  cursor's ``high`` to ``seq`` when ``seq`` is higher, so ``verify`` can see a
  cursor moved backwards (``cursors``).
* **The runs summary** is updated in the same transaction as the row: per run,
  its flow, the latest *flow* event's ``state`` ("Pending" until the first
  flow event), ``started`` (the first row's timestamp), ``ended`` (the
  timestamp of the first flow event whose ``state`` is in
  ``mapper.FINISHED_TYPES`` since the run's latest flow event that is not:
  a restart's ``Scheduled`` clears it, a later finished flow event sets it
  again; ``None`` while the flow is not finished), the number of rows, and
  its first seq, last seq and last hash. ``verify`` rebuilds it from the rows
  by the same rule and compares every column.
* **reason** (schema version 2): the content row's last field, a text or
  ``None``, stored and returned as given (``StoredRow.reason``, the stored
  row's last column), hashed only when set (``mapper.chain_hash``).
* **Reading never writes**: a ledger of an older schema is read as it is
  (``reason`` ``None``; its trust methods answer as for "every row rule 1, no
  checkpoint") and upgraded by the first write, under the write lock, never
  rehashed.
* **One snapshot**: every method that reads (the trust ones included) sees
  the state of ``snapshot()`` when called inside it.
* **Errors**: a recorder raises only ``eventstore.errors`` classes where it
  meets its database (never ``sqlite3.Error``/``psycopg.Error``):
  ``LedgerWriteError`` when a write fails (locked past its timeout, disk full,
  read-only, the ledger removed or closed; ``.reason`` says which),
  ``LedgerError`` when a read fails, and ``NotALedgerError``,
  ``SchemaVersionError``, ``LedgerLocationError`` when opening finds something
  that is not a ledger it can use. Nothing half-written remains after an error.

Three capabilities are optional, each its own protocol, so a recorder written
before them still works (``EventStore`` falls back, and says how):

* ``Importing.import_rows``: an import in one transaction, all or nothing
  (``EventStore.import_jsonl``). Without it an import checks the whole file
  first, then appends row by row: a write failure half-way leaves the rows
  before it.
* ``Leasing.acquire_lease`` / ``renew_lease`` / ``release_lease``: a named,
  expiring lease kept in the ledger, so two processes never consume one
  durable subscription at once (``subscribers.durable``). Without them a
  durable subscription runs without that protection, with a warning.
* ``RunOwnership.claim_run`` / ``beat`` / ``release_run`` / ``take_over`` /
  ``writers``: who writes each run, and its heartbeat (``EventStore.open_run``,
  ``orphans``, ``reap``). Without them ``EventStore`` checks a new run id with
  ``runs(run_id=...)``, which is not atomic, and can neither list nor reap
  orphans.

``SQLiteRecorder``, ``MemoryRecorder`` and ``PostgresRecorder`` implement all
three.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ContextManager, Iterable, Iterator, Protocol, runtime_checkable

from statemachine.events import Event

from .errors import RunExistsError, RunNotFoundError
from .mapper import CheckpointRow, ContentRow, HashRules, LatestRow, Mapper, RunRecord, RunRow, StoredRow

__all__ = ["Recorder", "Importing", "Leasing", "RunOwnership", "Writer", "Query", "iter_events", "newest_rows",
           "run_not_found", "run_exists"]


@dataclass(slots=True, frozen=True)
class Query:
    """Which rows to read; each field left ``None`` means "no condition". All given conditions must hold."""

    run_id: str | None = None
    kind: str | None = None  # "task" | "flow"
    key: str | None = None
    name: str | None = None
    types: frozenset[str] | None = None  # the rows' ``state`` column is one of these names
    since: str | None = None  # ISO UTC timestamp, inclusive (compared as text: ``codec.iso`` sorts)
    until: str | None = None  # ISO UTC timestamp, inclusive
    rewritten: bool | None = None  # True: ``rewritten_by != "[]"``; False: ``== "[]"``
    after_seq: int | None = None  # exclusive
    until_seq: int | None = None  # inclusive
    limit: int | None = None  # at most this many rows (the first ones in seq order)

    def but(self, **changes: object) -> "Query":
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(slots=True, frozen=True)
class Writer:
    """The process writing a run, as the recorder keeps it (outside the hash chain).

    ``started`` is that process's start time (ISO UTC) when the operating
    system tells it (it tells a reused pid from the writer); ``heartbeat`` its
    last sign of life; ``released`` when it let go of the run (``None`` while
    it writes). ``actor`` is its ``user@host:pid``.
    """

    run_id: str
    host: str
    pid: int
    started: str | None
    heartbeat: str
    released: str | None = None
    actor: str = ""


@runtime_checkable
class Recorder(Protocol):
    """A ledger backend. See the module docstring for the rules every method keeps."""

    #: Where the ledger is, for messages: an absolute file path, ``":memory:"``,
    #: or a URL without its password.
    path: str

    # --- writing ------------------------------------------------------------------

    def append(self, row: ContentRow, prev_hash: str | None = None,
               hash: str | None = None, *, rule: tuple[int, int | None] | None = None,
               ) -> tuple[int, str | None, str]:
        """Commit one row durably; return its ``(seq, prev_hash, hash)``.

        Without ``hash`` (the normal case): pick the row's seq, read the run's
        last hash, chain the row to both (``mapper.chain_hash(last, row,
        seq)``) and insert it, atomically with respect to every other writer,
        then update the runs summary in the same transaction. With
        ``prev_hash`` and ``hash`` given (an import, ``export.import_jsonl``):
        store them as given; ``prev_hash`` must be the run's current last hash
        (``None`` for a run not in the ledger), else raise ``LedgerError``
        (``mapper.check_continues``) and store nothing. ``rule`` is the hash's
        ``(version, hashed seq)`` (``None``: ``(1, None)``, rule 1); record it
        for the new seq in the same transaction (``hash_rules``). The caller
        has checked that ``hash`` matches the row under that rule.

        Returns only once the row is committed (``durability`` of the backend
        permitting). Raises ``LedgerWriteError`` when the write fails or the
        recorder was closed; nothing of the row is then stored.
        """
        ...

    # --- reading ------------------------------------------------------------------

    def select(self, q: Query, *, tail: bool = False) -> list[StoredRow]:
        """Every stored row matching ``q``, in seq order (``q.limit``: the first that many).

        With ``q.run_id`` the recorder may read only between the run's first
        and last seq (runs summary); ``tail=True`` reads every row whose
        ``run_id`` is ``q.run_id``, wherever it lies and whatever the summary
        says (``verify``: rows hidden by an edited summary are found), in time
        independent of the ledger's size (an index on ``run_id``). An unknown
        run gives ``[]`` without ``tail``. Raises ``LedgerError`` when the read fails.
        """
        ...

    def iter_rows(self, q: Query, *, batch: int = 5000, tail: bool = False) -> Iterator[StoredRow]:
        """The rows of ``select(q, tail=tail)``, read ``batch`` at a time (constant memory).

        Lazy: nothing is read before the first ``next()``. Rows appended while
        iterating may or may not be included; inside ``snapshot()`` they are not.
        """
        ...

    def latest(self, run_id: str, *, until_seq: int | None = None,
               until: str | None = None) -> list[LatestRow]:
        """The last row of each ``(kind, key)`` of the run, in seq order.

        Only rows with ``seq <= until_seq`` and ``timestamp <= until`` (ISO
        UTC) count when given. An unknown run, or nothing before the bounds,
        gives ``[]``. Raises ``LedgerError`` when the read fails.
        """
        ...

    def runs(self, *, flow: str | None = None, types: Iterable[str] | None = None,
             since: str | None = None, until: str | None = None, limit: int | None = None,
             run_id: str | None = None) -> list[RunRecord]:
        """Runs of the runs summary, newest first (by their first seq).

        ``flow``: only this flow's; ``types``: only runs whose ``state`` is one
        of these names; ``since``/``until``: only runs *started* within these
        ISO UTC times (inclusive); ``run_id``: only that run; ``limit``: the
        first that many after filtering. Raises ``LedgerError`` when the read fails.
        """
        ...

    def run_chain_ends(self) -> dict[str, tuple[int, str]]:
        """``run_id -> (row count, last hash)`` as the runs summary records them (for ``verify``)."""
        ...

    def max_seq(self) -> int:
        """The highest seq in the ledger; 0 when it holds no row."""
        ...

    # --- trust (verify, checkpoints) ---------------------------------------------------

    def ledger_id(self) -> str | None:
        """The ledger's random id, fixed when it was created; ``None`` for a schema-1
        ledger not yet written by this version (its first write gives it one)."""
        ...

    def hash_rules(self) -> HashRules:
        """Which hash rule each row uses (``mapper.HashRules``). A ledger created by
        schema 2 with no import: ``HashRules(1, {})``; a schema-1 ledger not yet
        upgraded: every row is rule 1 (``v2_from`` past its last seq)."""
        ...

    def run_rows(self, run_id: str | None = None) -> list[RunRow]:
        """The runs summary as stored (every column, ``mapper.RunRow``), or only ``run_id``'s; any order."""
        ...

    def hashes(self, after_seq: int = 0, until_seq: int | None = None,
               *, batch: int = 50000) -> Iterator[tuple[int, str]]:
        """``(seq, hash)`` of every row with ``after_seq < seq <= until_seq``, in seq order.

        Lazy and batched like ``iter_rows``; what checkpoints fold into their root.
        """
        ...

    def checkpoints(self) -> list[CheckpointRow]:
        """The checkpoints recorded in the ledger, in seq order (``[]`` for none)."""
        ...

    def add_checkpoint(self, cp: CheckpointRow) -> None:
        """Record a checkpoint (committed at once); one already recorded at the same
        seq is kept as it is. Raises ``LedgerWriteError`` like ``append``."""
        ...

    # Optional, a fast path for ``verify`` (``SQLiteRecorder`` has it):
    #
    #   def verify_rows(self, q: Query, *, tail: bool = False, batch: int = 5000) -> Iterator[tuple]:
    #       """The rows of ``iter_rows(q, tail=tail)`` as ``(*mapper.VERIFY_FIELDS, text)``: ``text`` is
    #       what rule 2 hashes, ``(prev_hash or "") + JSON array [seq, *content]`` (``reason``
    #       last, only when set: ``mapper.hashed_content``), written by the database (SQLite's
    #       json_array writes exactly what ``mapper.row_json`` writes)."""
    #
    # ``verify`` hashes ``text``; a row whose hash does not match is read again with ``select``
    # and checked with ``mapper.row_json``, so a database's JSON can never cause a false alarm
    # (nor hide a change: the stored hash was made from ``row_json``'s text).

    def cursors(self) -> dict[str, tuple[int, int]]:
        """``name -> (seq, high)`` of every durable-subscription cursor (``high``: the
        highest seq it was ever saved at)."""
        ...

    def snapshot(self) -> ContextManager[None]:
        """A context in which every read of this recorder sees one consistent state of the ledger.

        Rows other writers commit meanwhile stay invisible until the context
        exits (SQLite: one read transaction; PostgreSQL: a REPEATABLE READ
        transaction), so ``verify`` of a ledger being written never raises a
        false alarm. Writes through this recorder inside it are not allowed.
        Reentrant: a nested ``snapshot()`` joins the outer one.
        """
        ...

    def wait(self, after_seq: int, timeout: float) -> bool | None:
        """Block until a row with seq > ``after_seq`` may exist, or ``timeout`` seconds passed.

        Used by ``EventStore.tail`` between reads. May return early; callers
        read again and wait again. A polling backend simply sleeps
        ``timeout`` (and returns None); PostgreSQL wakes on LISTEN/NOTIFY and
        returns False when it knows no row was committed meanwhile (a recorder
        whose ``notifies`` attribute is True), so ``tail`` need not read again.
        """
        ...

    # --- durable-subscription cursors --------------------------------------------

    def load_cursor(self, name: str) -> tuple[int, str] | None:
        """``(seq, filter JSON text)`` saved under ``name``, or ``None`` if none was."""
        ...

    def save_cursor(self, name: str, seq: int, filter_text: str, updated: str) -> None:
        """Create or replace the cursor ``name`` (``updated``: ISO UTC time), committed at once.

        Raises ``LedgerWriteError`` like ``append``.
        """
        ...

    # --- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        """Release the connection(s). Idempotent; later appends raise ``LedgerWriteError``.

        A recorder that never wrote leaves its file exactly as it found it.
        (``MemoryRecorder`` holds nothing to release: its rows stay readable
        and writable, as a ``":memory:"`` store always kept its events.)
        """
        ...


@runtime_checkable
class Importing(Protocol):
    """Optional: a recorder that imports many rows in one transaction (all or nothing)."""

    def import_rows(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Store every ``(row, prev_hash, hash[, rule])`` of ``rows`` in ONE transaction; return how many.

        Each row is stored as ``append(row, prev_hash, hash, rule=rule)`` would store it
        (``rule`` left out: ``None``, rule 1)
        (``prev_hash`` must be the run's last hash, the earlier rows of this
        import included: ``mapper.check_continues``; the runs summary is
        updated). ``rows`` is consumed lazily inside the transaction: if
        iterating it raises (the caller found a bad line), if a row does not
        continue its run, or if the write fails, the transaction is rolled
        back, the exception propagates unchanged, and the ledger holds
        exactly what it held before (other writers wait for the lock
        meanwhile, as for a long append; readers see the old ledger until
        the commit). Raises ``LedgerWriteError`` like ``append``.
        """
        ...


@runtime_checkable
class Leasing(Protocol):
    """Optional: named leases kept in the ledger, with an expiry, shared by every process using it.

    A lease is held by one ``holder`` (an opaque text naming the process and
    the object, e.g. ``"user@host:pid#token"``) until it is released or its
    ``ttl`` runs out without a renewal. The recorder's own clock decides
    (SQLite: the host's clock; PostgreSQL: the server's ``clock_timestamp()``).
    Every method is one atomic step against every other process; each write
    is committed at once and raises ``LedgerWriteError`` like ``append``.
    Leases are not events: they are not chained, exported or verified.
    """

    def acquire_lease(self, name: str, holder: str, ttl: float, *,
                      replacing: str | None = None) -> tuple[str, float] | None:
        """Take the lease ``name`` for ``ttl`` seconds; ``None`` when ``holder`` now holds it.

        Taken when nobody holds it, when its lease expired, when ``holder``
        already holds it (then renewed), or when ``replacing`` is given and
        is its current holder (a holder known to be dead). Otherwise nothing
        changes and the answer is ``(current holder, seconds until it expires)``.
        """
        ...

    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend the lease to ``ttl`` seconds from now if ``holder`` still holds it; False if not.

        False means another holder took it after it expired (or it was
        released): stop consuming.
        """
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` holds it (else do nothing)."""
        ...


@runtime_checkable
class RunOwnership(Protocol):
    """Optional: who writes each run and its heartbeat, beside the ledger and outside every hash chain.

    A recorder that has one of these methods has all five. Each write is one
    atomic step against every other process, committed at once, and raises
    ``LedgerWriteError`` like ``append``.

    * ``claim_run(writer)`` makes ``writer`` the run's writer, atomically with
      respect to every other writer: it raises ``RunExistsError``
      (``run_exists(recorder, run_id)``) when the run has a row *or* a writer
      already, so of two processes claiming one new run id exactly one wins.
      ``claim_run(writer, take=True)`` (a restart of the run) replaces any
      writer instead.
    * ``beat(run_id, host, pid, at)`` sets the heartbeat of the run's writer to
      ``at`` if that writer is still ``(host, pid)`` and not released; returns
      whether it was (``False``: a reaper took the run over).
    * ``release_run(run_id, host, pid, at)``: the writer ``(host, pid)`` lets go
      of the run at ``at`` (finished or not): sets ``released``.
    * ``take_over(old, new)``: replaces the writer row equal to ``old`` (every
      field) by ``new`` in one atomic step; ``False`` if the row changed
      meanwhile (the writer beat, or another reaper took it). Two reapers of one
      orphan: exactly one gets ``True``.
    * ``writers(run_ids=None)``: the ``Writer`` rows of these runs (all when
      ``None``), in no particular order. A ledger written before writers were
      recorded has none (reading it never creates anything).

    ``Writer`` fields are text as given (times ISO UTC), returned as stored.
    """

    def claim_run(self, writer: Writer, *, take: bool = False) -> None:
        """Make ``writer`` the run's writer; ``RunExistsError`` if the run exists (unless ``take``)."""
        ...

    def beat(self, run_id: str, host: str, pid: int, at: str) -> bool:
        """The writer's heartbeat; ``False`` when ``(host, pid)`` is no longer the run's writer."""
        ...

    def release_run(self, run_id: str, host: str, pid: int, at: str) -> None:
        """The writer ``(host, pid)`` lets go of the run (sets ``released``)."""
        ...

    def take_over(self, old: Writer, new: Writer) -> bool:
        """Replace the writer row equal to ``old`` by ``new``, atomically; ``False`` if it changed."""
        ...

    def writers(self, run_ids: Iterable[str] | None = None) -> list[Writer]:
        """The writer rows of these runs (every run's when ``None``)."""
        ...


# --- shared by every reader of a recorder (EventStore, verify, export, replay) ----------


def run_not_found(recorder: Recorder, run_id: str) -> RunNotFoundError:
    """The ``RunNotFoundError`` for ``run_id``, naming a few recent runs of the ledger."""
    known = [r.run_id for r in recorder.runs(limit=3)]
    hint = f" Recent runs: {', '.join(known)}." if known else " The ledger holds no run yet."
    return RunNotFoundError(
        f"No run {run_id!r} in ledger {recorder.path}.{hint} List them with store.runs() "
        "(or `stateledger runs`).", recorder.path, run_id)


def run_exists(recorder: Recorder, run_id: str) -> RunExistsError:
    """The ``RunExistsError`` for ``run_id``: name the run, suggest a restart or a new id."""
    found = recorder.runs(run_id=run_id)
    what = (f" (flow {found[0].flow}, {found[0].state}, started {found[0].started:%Y-%m-%d %H:%M:%S} UTC)"
            if found else " (claimed by a writer that has not recorded an event yet)")
    return RunExistsError(
        f"Run {run_id!r} already exists in ledger {recorder.path}{what}. A run id names one run: "
        f"give a new one, or continue that run with flow.run(restart={run_id!r}) "
        f"(stateledger restart {run_id} FILE).", recorder.path, run_id)


def iter_events(recorder: Recorder, run_id: str, batch: int = 5000) -> Iterator[Event]:
    """The run's events in seq order, decoded a batch at a time (constant memory).

    Raises ``RunNotFoundError`` (on the first ``next()``) if the run has no event.
    """
    chunk: list[StoredRow] = []
    seen = False
    for row in recorder.iter_rows(Query(run_id=run_id), batch=batch):
        chunk.append(row)
        if len(chunk) == batch:
            seen = True
            yield from Mapper.to_events(chunk)
            chunk = []
    if not seen and not chunk:
        raise run_not_found(recorder, run_id)
    yield from Mapper.to_events(chunk)


def batched_rows(recorder: Recorder, q: Query, batch: int = 5000, tail: bool = False) -> Iterator[StoredRow]:
    """``recorder.select(q, tail=tail)`` read ``batch`` rows at a time: a store's ``iter_rows``."""
    after, remaining = q.after_seq, q.limit
    while remaining is None or remaining > 0:
        size = batch if remaining is None else min(batch, remaining)
        rows = recorder.select(q.but(after_seq=after, limit=size), tail=tail)
        yield from rows
        if len(rows) < size:
            return
        after = rows[-1].seq
        remaining = None if remaining is None else remaining - len(rows)


def newest_rows(recorder: Recorder, q: Query, limit: int) -> list[StoredRow]:
    """The last ``limit`` rows matching ``q`` (in seq order), read backwards in growing seq windows."""
    hi, floor = recorder.max_seq(), q.after_seq or 0
    window = max(4 * limit, 256)
    found: list[StoredRow] = []
    while hi > floor and len(found) < limit:
        lo = max(hi - window, floor)
        found = recorder.select(q.but(after_seq=lo, until_seq=hi)) + found
        hi, window = lo, window * 4
    return found[-limit:] if limit else []
