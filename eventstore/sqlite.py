"""``SQLiteRecorder``: the ledger in one SQLite file. The only module that talks to SQLite.

It implements ``eventstore.protocol.Recorder``: one file (WAL), schema made
with sqlite-utils, version in ``PRAGMA user_version``. An append is one
committed transaction, and several processes may write at once: ``seq`` is
unique, dense and increasing, and hashed with the row, so it is picked under
SQLite's write lock. The common case is one statement: this process wrote
the ledger's last event, so the next ``seq`` and the run's last hash are
known; the INSERT (autocommit) names that ``seq``, and if another process took
it meanwhile the primary key refuses the row and the append is done the long
way (``BEGIN IMMEDIATE``, read the ledger's end and the run's, insert,
``COMMIT``). The ``runs`` summary is kept by a trigger in the same transaction
(``sqlite_files.RUNS_TRIGGER_SQL``). An older ledger is read as it is (schema
1: ``reason`` read as NULL) and upgraded (never rehashed) by the first write
(``sqlite_files.upgrade_sql``), so reading never changes a file. ``sqlite3``
errors become ``eventstore.errors`` where they meet the database.
``read_only=True``: a read-only connection creating nothing beside the file (``read_only_uri``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
import time
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import quote

from statemachine.errors import ArgumentError

from .errors import LedgerError, LedgerLocationError, LedgerWriteError, NotALedgerError, SchemaVersionError
from .mapper import (
    COLUMNS, FINISHED_TYPES, ContentRow, LatestRow, RunRecord, StoredRow, chain_hash, check_continues,
    latest_row, run_record, stored_row, stored_values,
)
from .protocol import Query, batched_rows
from .sqlite_files import (
    RUNS_NOW, LedgerFile, check_location, create_private, read_only_uri, schema_sql, upgrade_sql, write_error,
)
from .sqlite_leases import SQLiteLeasing
from .sqlite_writers import WriterTable
from .sqlite_trust import SQLiteTrust

__all__ = ["SQLiteRecorder", "SCHEMA_VERSION", "APPLICATION_ID", "COLUMNS", "chain_hash"]

SCHEMA_VERSION = 3
#: The page size of a new ledger. An append writes every page it changed to the WAL
#: (the events row, the run_id index, the runs row): small pages make each commit
#: cheaper (measured in benchmarks/floor.py); a row larger than a page spills over.
PAGE_SIZE = 2048
#: ``PRAGMA application_id`` of a ledger file ("STLG"): tells a ledger from other SQLite files.
APPLICATION_ID = 0x53544C47

_INSERT = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_LAST = "SELECT hash FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1"  # the run_id index
_MAX_SEQ = "SELECT max(seq) FROM events"
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM events"
_SELECT_V1 = f"SELECT {', '.join(COLUMNS[:-1])}, NULL AS reason FROM events"  # a schema-1 ledger: no reason
_RUN_COLUMNS = "run_id, flow, state, started, ended, events"


class SQLiteRecorder(SQLiteTrust, SQLiteLeasing, WriterTable):
    """Event rows in one SQLite file. See the module docstring."""

    def __init__(self, path: str, *, durability: str = "normal", timeout: float = 10.0,
                 read_only: bool = False) -> None:
        if durability not in ("normal", "full"):
            raise ArgumentError(f'durability must be "normal" or "full", got {durability!r}')
        self.path = os.path.abspath(path)
        self.timeout = timeout
        self.read_only = read_only
        self._lock = threading.RLock()
        self._wrote = False  # see close()
        self._upgraded = True  # False: an older ledger, upgraded by the first write (_writable)
        self._v2_from = 1  # the first seq hashed with rule 2 (meta.hash_v2_from), read once upgraded
        created = False if read_only else check_location(self.path)
        if created:  # private from the start, whatever the umask: -wal and -shm take this mode
            created = create_private(self.path)
        try:
            self._conn = sqlite3.connect(
                read_only_uri(self.path) if read_only else self.path, timeout=timeout, isolation_level=None,
                check_same_thread=False, uri=read_only)
        except sqlite3.Error as exc:
            if created:
                os.unlink(self.path)
            raise LedgerError(f"Could not open ledger {self.path}: {exc}", self.path) from exc
        try:
            self._open(durability, created)
        except BaseException:
            self._conn.close()
            if created and os.path.exists(self.path) and os.path.getsize(self.path) == 0:
                os.unlink(self.path)
            raise
        self._cur = self._conn.cursor()
        # What this process knows of the ledger's end, true while no other process writes
        # (see append): the seq it wrote last (-1: unknown), and run_id -> that run's last hash.
        self._top = -1
        self._last: dict[str, str] = {}
        self._closed = False
        self._snapshots = 0  # depth of nested snapshot() contexts
        self._file = LedgerFile(self.path)  # checked before each write

    # --- opening ------------------------------------------------------------------

    def _open(self, durability: str, created: bool) -> None:
        """Check the file is a ledger we can read (no writes yet), then configure it."""
        conn = self._conn
        try:
            app_id, version, tables = self._identity()
        except sqlite3.DatabaseError as exc:
            raise NotALedgerError(
                f"{self.path} is not a ledger: SQLite cannot read it ({exc}). Point "
                "STATELEDGER_DB at a ledger file or at a new file.", self.path, "unreadable") from exc
        ours = app_id == APPLICATION_ID or (app_id == 0 and (not tables or "events" in tables))
        if ours and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"Ledger {self.path} was written by schema version {version}; this stateledger reads "
                f"up to {SCHEMA_VERSION}. Upgrade stateledger or point STATELEDGER_DB elsewhere.",
                self.path, version, SCHEMA_VERSION)
        if app_id != APPLICATION_ID and (app_id != 0 or tables or version):
            found = f"a SQLite database with tables {', '.join(sorted(tables))}" if tables else (
                f"a SQLite database of another application (application_id {app_id:#x}, "
                f"user_version {version})")
            raise NotALedgerError(
                f"{self.path} is not a ledger: it is {found}. Point STATELEDGER_DB (or EventStore's "
                "path) at a ledger file or at a new file.", self.path, found)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        if self.read_only and app_id != APPLICATION_ID:
            raise NotALedgerError(f"{self.path} is not a ledger: it holds no ledger tables.", self.path, "empty")
        if not self.read_only and (app_id != APPLICATION_ID or version == 0):
            self._wrote = True
            self._create_schema()
        elif version < SCHEMA_VERSION:
            self._upgraded = False  # read as it is (schema 1: reason read as NULL); the first write upgrades it
        if self._upgraded or version >= 2:
            self._v2_from = int(conn.execute("SELECT value FROM meta WHERE key = 'hash_v2_from'").fetchone()[0])
        if self.read_only:
            return
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        except sqlite3.Error as exc:
            raise write_error(exc, self.path, self.timeout, "configure") from exc
        conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")

    def _identity(self) -> tuple[int, int, set[str]]:
        conn = self._conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return app_id, version, tables

    def _create_schema(self) -> None:
        """Create (or upgrade) the tables under the write lock (other processes may be doing it too)."""
        conn = self._conn
        try:
            if not os.path.getsize(self.path):
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only takes effect on an empty file
            conn.execute("BEGIN IMMEDIATE")
            try:
                app_id, version, tables = self._identity()
                if app_id != APPLICATION_ID and tables:
                    raise NotALedgerError(
                        f"{self.path} is not a ledger: another program created tables "
                        f"{', '.join(sorted(tables))} in it.", self.path, "another database")
                if version == 0 and "events" in tables:
                    version = 1  # a schema-1 ledger from before application_id was set
                if version < SCHEMA_VERSION:
                    for sql in (schema_sql() if version == 0 else upgrade_sql(version)):
                        conn.execute(sql)
                    if version < 2:
                        conn.execute("INSERT INTO meta (key, value) VALUES ('ledger_id', ?)",
                                     (secrets.token_hex(16),))
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise write_error(exc, self.path, self.timeout, "create") from exc

    def _retry(self, fn: Any) -> Any:
        """Retry a statement SQLite refuses with BUSY without calling the busy handler."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # --- writing --------------------------------------------------------------------

    def _check_file(self) -> None:
        """The file must still be the one we opened, and writable (``sqlite_files.LedgerFile``)."""
        if self._closed:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: this EventStore was closed. Open the "
                "ledger again (EventStore(path)).", self.path, "closed")
        if self.read_only:
            raise LedgerWriteError(f"Could not write to ledger {self.path}: it was opened read-only "
                                   "(EventStore(path) opens it to write).", self.path, "read-only")
        self._file.check()

    def append(self, row: ContentRow, prev_hash: str | None = None, hash: str | None = None,
               *, rule: tuple[int, int | None] | None = None) -> tuple[int, str | None, str]:
        """Commit one content row; return (seq, prev_hash, hash). See ``Recorder.append``."""
        with self._lock:
            self._writable()
            self._wrote = True
            try:
                if hash is None and self._top >= 0 and not self._snapshots:  # (a snapshot holds a read)
                    last = self._last.get(row.run_id)
                    if last is not None:
                        done = self._append_next(row, last)
                        if done is not None:
                            return done
                return self._append(row, prev_hash, hash, rule)
            except sqlite3.Error as exc:
                self._forget()
                raise write_error(exc, self.path, self.timeout, "append to") from exc

    def _append_next(self, row: ContentRow, last: str) -> tuple[int, str | None, str] | None:
        """The common case in one autocommit INSERT: the row follows this process's last write.

        While no other process writes, the ledger ends with the seq this process
        wrote last, and the run with the hash it cached. Seqs are dense, so if
        another process wrote anything since, it took the next seq and SQLite
        refuses this row (primary key): then None, and ``append`` goes the long way.
        """
        seq = self._top + 1
        hash = chain_hash(last, row, seq)
        try:
            self._cur.execute(_INSERT, (seq, *stored_values(row, last, hash)))
        except sqlite3.IntegrityError:
            self._forget()
            return None
        self._wrote_row(row, seq, hash)
        return seq, last, hash

    def _append(self, row: ContentRow, prev_hash: str | None, hash: str | None,
                rule: tuple[int, int | None] | None) -> tuple[int, str | None, str]:
        """One write transaction that reads the ledger's end and the run's before it inserts."""
        cur = self._cur
        cur.execute("BEGIN IMMEDIATE")
        try:
            seq, prev_hash, hash = self._insert(row, prev_hash, hash, rule)
            cur.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._forget()
            raise
        self._wrote_row(row, seq, hash)
        return seq, prev_hash, hash

    def _wrote_row(self, row: ContentRow, seq: int, hash: str) -> None:
        """Remember the ledger's end after this process's committed write (a finished run is forgotten)."""
        self._top = seq
        if row.kind == "flow" and row.state in FINISHED_TYPES:
            self._last.pop(row.run_id, None)
        else:
            self._last[row.run_id] = hash

    def _forget(self) -> None:
        """Another process wrote, or a write failed: what this process knew of the ledger's end is stale."""
        self._top = -1
        self._last.clear()

    def _insert(self, row: ContentRow, prev_hash: str | None, hash: str | None,
                rule: tuple[int, int | None] | None = None) -> tuple[int, str | None, str]:
        """Insert one row inside the caller's write transaction; return (seq, prev_hash, hash).

        The seq and the run's last hash are read here, under the write lock; the
        trigger updates the run's summary.
        """
        cur, run_id = self._cur, row.run_id
        top = cur.execute(_MAX_SEQ).fetchone()[0] or 0
        found = cur.execute(_LAST, (run_id,)).fetchone()
        last = found[0] if found is not None else None
        # the seq is hashed, so it is picked here (inside the write lock), never below rule 2's start
        seq = max(top, self._v2_from - 1) + 1
        if hash is None:
            prev_hash, hash = last, chain_hash(last, row, seq)
        else:  # made elsewhere (an import): keep it, and the rule it was made by
            check_continues(self.path, row, last, prev_hash)
            cur.execute("INSERT INTO hash_rules (seq, version, hashed_seq) VALUES (?, ?, ?)",
                        (seq, *(rule or (1, None))))
        cur.execute(_INSERT, (seq, *stored_values(row, prev_hash, hash)))
        return seq, prev_hash, hash

    def import_rows(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Store every (row, prev_hash, hash[, rule]) in one transaction, all or nothing; see ``Importing``."""
        with self._lock:
            self._writable()
            wrote, n = self._wrote, 0
            conn = self._conn
            try:
                self._wrote = True
                self._cur.execute("BEGIN IMMEDIATE")
                try:
                    for row, prev_hash, hash, *rule in rows:
                        self._insert(row, prev_hash, hash, rule[0] if rule else None)
                        n += 1
                    self._cur.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self._wrote = wrote  # nothing was written: close() treats the file as untouched
                    raise
            except sqlite3.Error as exc:
                raise write_error(exc, self.path, self.timeout, "import into") from exc
            finally:
                self._forget()
            return n

    # --- reading --------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"Could not read ledger {self.path}: {exc}", self.path) from exc

    def _run_range(self, run_id: str) -> tuple[int, int] | None:
        found = self._read(f"SELECT first_seq, last_seq FROM {RUNS_NOW} WHERE run_id = ?", (run_id,))
        return found[0] if found else None

    def select(self, q: Query, *, tail: bool = False) -> list[StoredRow]:
        """Stored rows matching ``q``, in seq order; see ``Recorder.select``."""
        return list(map(stored_row, self._select(_SELECT if self._has_reason() else _SELECT_V1, q, tail)))

    def _select(self, head: str, q: Query, tail: bool) -> list[Any]:
        run_range = None
        if tail and q.run_id is not None:  # every row of the run, through the run_id index
            where, params = _where(q.but(run_id=None))
            where = (where + " AND" if where else " WHERE") + " run_id = ?"
            params.append(q.run_id)
        elif q.run_id is not None:
            found = self._run_range(q.run_id)
            if found is None:
                return []
            run_range = (found[0], found[1])
            where, params = _where(q, run_range)
        else:
            where, params = _where(q)
        sql = head + where + " ORDER BY seq"
        if q.limit is not None:
            sql += f" LIMIT {int(q.limit)}"
        return self._read(sql, params)

    def iter_rows(self, q: Query, *, batch: int = 5000, tail: bool = False) -> Iterator[StoredRow]:
        """Like ``select`` but in batches, for very long runs."""
        return batched_rows(self, q, batch, tail)

    def latest(self, run_id: str, *, until_seq: int | None = None,
               until: str | None = None) -> list[LatestRow]:
        """Each object's last row in the run; see ``Recorder.latest``."""
        found = self._run_range(run_id)
        if found is None:
            return []
        cond, params = _where(Query(run_id=run_id, until_seq=until_seq, until=until), found)
        return list(map(latest_row, self._read(
            "SELECT seq, kind, key, name, flow, new_state FROM events WHERE seq IN "
            f"(SELECT max(seq) FROM events{cond} GROUP BY kind, key) ORDER BY seq", params)))

    def runs(self, *, flow: str | None = None, types: Iterable[str] | None = None,
             since: str | None = None, until: str | None = None, limit: int | None = None,
             run_id: str | None = None) -> list[RunRecord]:
        """Runs, newest first; see ``Recorder.runs``."""
        conds, params = [], []
        for cond, value in (("flow = ?", flow), ("run_id = ?", run_id),
                            ("started >= ?", since), ("started <= ?", until)):
            if value is not None:
                conds.append(cond)
                params.append(value)
        if types is not None:
            types = list(types)
            conds.append(f"state IN ({', '.join('?' * len(types))})")
            params += types
        sql = f"SELECT {_RUN_COLUMNS} FROM {RUNS_NOW}"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY first_seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [run_record(*r) for r in self._read(sql, params)]

    def run_chain_ends(self) -> dict[str, tuple[int, str]]:
        """run_id -> (events, last_hash) as the runs table says."""
        return {r[0]: (r[1], r[2]) for r in self._read(f"SELECT run_id, events, last_hash FROM {RUNS_NOW}")}

    def max_seq(self) -> int:
        """The highest seq (0 when empty)."""
        return self._read("SELECT max(seq) FROM events")[0][0] or 0

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside sees the same ledger (WAL keeps it)."""
        with self._lock:
            if self._snapshots:
                self._snapshots += 1
                try:
                    yield
                finally:
                    self._snapshots -= 1
                return
            try:
                self._conn.execute("BEGIN")
                self._conn.execute("SELECT count(*) FROM runs").fetchall()  # starts the read
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise LedgerError(f"Could not read ledger {self.path}: {exc}", self.path) from exc
            self._snapshots = 1
            try:
                yield
            finally:
                self._snapshots = 0
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    def wait(self, after_seq: int, timeout: float) -> None:
        """Sleep ``timeout`` seconds: other processes' commits are seen by polling."""
        time.sleep(max(0.0, timeout))

    def close(self) -> None:
        """Close the file. A store that never wrote leaves it exactly as it found it.

        The last connection to close checkpoints the WAL into the file: after a
        writer was killed, that would rewrite the file on a mere read. So a store
        that wrote nothing closes behind a read-only connection, which cannot
        checkpoint, and the WAL is left for the next writer.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            guard = None
            try:
                if not self._wrote and os.path.getsize(self.path + "-wal") > 0:
                    guard = sqlite3.connect(f"file:{quote(self.path)}?mode=ro", uri=True)
                    guard.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            except (OSError, sqlite3.Error):
                guard = None
            self._cur.close()
            self._conn.close()
            if guard is not None:
                guard.close()
            self._file.release()  # after the connection: closing a descriptor drops POSIX locks


def _where(q: Query, run_range: tuple[int, int | None] | None = None) -> tuple[str, list[Any]]:
    """SQL conditions of ``q``; ``run_range``: the run's (first seq, last seq or None).

    A run's events lie between its first and last seq (the ``runs`` table keeps
    both), so reading a run is a rowid range scan: no run_id index, which would
    cost a page write on every append. The bounds are merged into one range so
    SQLite uses it.
    """
    conds: list[str] = []
    params: list[Any] = []
    lo, hi = q.after_seq, q.until_seq
    if q.run_id is not None:
        conds.append("+run_id = ?")  # "+": read the run's seq range by rowid, not through the run_id index
        params.append(q.run_id)
        if run_range is not None:
            first, last = run_range
            lo = first - 1 if lo is None else max(lo, first - 1)
            if last is not None:
                hi = last if hi is None else min(hi, last)
    if lo is not None:
        conds.append("seq > ?")
        params.append(lo)
    if hi is not None:
        conds.append("seq <= ?")
        params.append(hi)
    for col, op, value in (
        ("kind", "=", q.kind), ("key", "=", q.key), ("name", "=", q.name),
        ("timestamp", ">=", q.since), ("timestamp", "<=", q.until),
    ):
        if value is not None:
            conds.append(f"{col} {op} ?")
            params.append(value)
    if q.types is not None:
        conds.append(f"state IN ({', '.join('?' * len(q.types))})")
        params += sorted(q.types)
    if q.rewritten is not None:
        conds.append("rewritten_by != '[]'" if q.rewritten else "rewritten_by = '[]'")
    return (" WHERE " + " AND ".join(conds)) if conds else "", params
