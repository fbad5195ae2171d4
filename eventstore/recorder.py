"""Recorders: where event rows are kept. The only module that talks to SQLite.

A *row* is the event as stored text, in ``CONTENT`` order (everything but
``seq``, ``prev_hash`` and ``hash``). A recorder appends rows, chaining each
run's hashes (``hash = sha256(prev_hash + canonical JSON of the row)``), keeps
a ``runs`` summary in the same transaction, answers queries, and keeps the
durable-subscription cursors. Two recorders share this interface:

* ``SQLiteRecorder``: one SQLite file (WAL), schema made with sqlite-utils,
  version in ``PRAGMA user_version``; one transaction per append
  (``BEGIN IMMEDIATE``: several processes may write at once, ``seq`` is the
  rowid assigned inside the write lock, so it is unique and increasing);
  ``sqlite3`` errors become ``eventstore.errors`` where they meet the database.
* ``MemoryRecorder`` (``eventstore.memory``): plain Python lists, for ``EventStore(":memory:")``.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import quote

import sqlite_utils

from .errors import (
    LedgerError, LedgerLocationError, LedgerWriteError, NotALedgerError, SchemaVersionError,
)
from .memory import MemoryRecorder
from .rows import (
    APPLICATION_ID, COLUMNS, CONTENT, FINISHED_TYPES, SCHEMA_VERSION, Query, RunRecord, _FLOW, _KIND,
    _RUN, _STATE, _TS, _run_record, chain_hash, check_continues,
)

__all__ = [
    "SQLiteRecorder", "MemoryRecorder", "SCHEMA_VERSION", "APPLICATION_ID", "CONTENT", "COLUMNS",
    "Query", "RunRecord", "chain_hash",
]

_INSERT = f"INSERT INTO events ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * (len(COLUMNS) - 1))})"
_LAST = "SELECT last_hash FROM runs WHERE run_id = ?"
_NEW_RUN = (
    "INSERT INTO runs (run_id, flow, state, started, ended, events, first_seq, last_seq, last_hash) "
    "VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)"
)
_UPDATE_RUN = (
    "UPDATE runs SET events = events + 1, last_seq = ?, last_hash = ?, "
    "state = coalesce(?, state), ended = coalesce(?, ended) WHERE run_id = ? AND last_hash = ?"
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM events"
_RUN_COLUMNS = "run_id, flow, state, started, ended, events"


def _schema_sql() -> list[str]:
    """The schema, written by sqlite-utils (executed inside our own transaction)."""
    db = sqlite_utils.Database(memory=True)
    try:
        events = db.create_table_sql(
            "events",
            {c: (int if c in ("seq", "attempt") else str) for c in COLUMNS},
            pk="seq", not_null={"event_id", "run_id", "timestamp", "kind", "key", "state", "hash"},
            if_not_exists=True,
        )
        runs = db.create_table_sql(
            "runs",
            {"run_id": str, "flow": str, "state": str, "started": str, "ended": str,
             "events": int, "first_seq": int, "last_seq": int, "last_hash": str},
            pk="run_id", if_not_exists=True,
        )
        cursors = db.create_table_sql(
            "cursors", {"name": str, "seq": int, "filter": str, "updated": str},
            pk="name", if_not_exists=True,
        )
    finally:
        db.close()
    return [
        events, runs, cursors,
        "CREATE INDEX IF NOT EXISTS runs_first ON runs (first_seq)",
    ]


def _write_error(exc: sqlite3.Error, path: str, timeout: float, doing: str) -> LedgerWriteError:
    code = getattr(exc, "sqlite_errorname", "") or _code_from_message(str(exc))
    if code.startswith("SQLITE_BUSY") or code.startswith("SQLITE_LOCKED"):
        return LedgerWriteError(
            f"Could not {doing} ledger {path}: another process kept it locked for more than "
            f"{timeout:g} s ({exc}). Retry, or give EventStore a longer timeout=.", path, "locked")
    if code.startswith("SQLITE_FULL") or (code.startswith("SQLITE_IOERR") and _out_of_space(path)):
        return LedgerWriteError(
            f"Could not {doing} ledger {path}: the disk is full, or the file reached the size this "
            f"process may write ({exc}). Free some space, or point STATELEDGER_DB at another disk.",
            path, "full")
    if code.startswith("SQLITE_READONLY"):
        return LedgerWriteError(
            f"Could not {doing} ledger {path}: the file is read-only ({exc}). Make it writable, or "
            "use another ledger file.", path, "read-only")
    return LedgerWriteError(
        f"Could not {doing} ledger {path}: {exc} ({code or type(exc).__name__}). Check that the file "
        "still exists, is writable and that its disk is healthy.", path, "io")


def _code_from_message(message: str) -> str:
    """The SQLite error code of a message (Python 3.10's sqlite3 has no ``sqlite_errorname``)."""
    for needle, code in (("locked", "SQLITE_BUSY"), ("is full", "SQLITE_FULL"),
                         ("readonly", "SQLITE_READONLY"), ("disk I/O", "SQLITE_IOERR")):
        if needle in message:
            return code
    return ""


class SQLiteRecorder:
    """Event rows in one SQLite file. See the module docstring."""

    def __init__(self, path: str, *, durability: str = "normal", timeout: float = 10.0) -> None:
        if durability not in ("normal", "full"):
            raise ValueError(f'durability must be "normal" or "full", got {durability!r}')
        self.path = os.path.abspath(path)
        self.timeout = timeout
        self._lock = threading.RLock()
        self._wrote = False  # see close()
        created = self._check_location()
        if created:  # private from the start, whatever the umask: -wal and -shm take this mode
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:  # another process is creating it at this very moment
                created = False
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
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
        self._last: dict[str, str] = {}  # run_id -> last hash this process wrote (see _append)
        self._closed = False
        st = os.stat(self.path)
        self._ino = (st.st_dev, st.st_ino)

    # --- opening ------------------------------------------------------------------

    def _check_location(self) -> bool:
        """Refuse a missing or unwritable folder, and files that are not SQLite; True if new."""
        _refuse_special(self.path)
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise LedgerLocationError(
                f"Cannot create ledger {self.path}: the folder {folder} does not exist. Create it "
                "first, or point STATELEDGER_DB at a file in an existing folder.", self.path, folder)
        if os.path.isdir(self.path):
            raise NotALedgerError(
                f"{self.path} is a folder, not a ledger file. Give the path of a file (e.g. "
                f"{os.path.join(self.path, 'ledger.db')}).", self.path, "a folder")
        exists = os.path.exists(self.path)
        if not exists or os.path.getsize(self.path) == 0:
            if not _writable(folder) or (exists and not _writable(self.path)):
                raise LedgerLocationError(
                    f"Cannot create ledger {self.path}: the folder {folder} cannot be written. "
                    "Choose a folder you can write to.", self.path, folder)
            return not exists
        try:
            with open(self.path, "rb") as f:
                header = f.read(16)
        except OSError as exc:
            raise LedgerError(f"Cannot read ledger {self.path}: {exc}", self.path) from exc
        if header != b"SQLite format 3\x00":
            raise NotALedgerError(
                f"{self.path} is not a ledger: it is not a SQLite database (it starts with "
                f"{header[:8]!r}). Point STATELEDGER_DB (or EventStore's path) at a ledger file or "
                "at a new file.", self.path, "not SQLite")
        return False

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
        if app_id != APPLICATION_ID or version < SCHEMA_VERSION:
            self._wrote = True
            self._create_schema()
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        except sqlite3.Error as exc:
            raise _write_error(exc, self.path, self.timeout, "configure") from exc
        conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")

    def _identity(self) -> tuple[int, int, set[str]]:
        conn = self._conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return app_id, version, tables

    def _create_schema(self) -> None:
        """Create the tables under the write lock (other processes may be creating it too)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                app_id, version, tables = self._identity()
                if app_id != APPLICATION_ID and tables:
                    raise NotALedgerError(
                        f"{self.path} is not a ledger: another program created tables "
                        f"{', '.join(sorted(tables))} in it.", self.path, "another database")
                if version < SCHEMA_VERSION:
                    for sql in _schema_sql():
                        conn.execute(sql)
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _write_error(exc, self.path, self.timeout, "create") from exc

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
        """The file must still be the one we opened, and writable (root ignores file modes)."""
        if self._closed:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: this EventStore was closed. Open the "
                "ledger again (EventStore(path)).", self.path, "closed")
        try:
            st = os.stat(self.path)
        except OSError:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: the file was removed. Nothing more of this "
                "run is recorded; restore the file or use another ledger.", self.path, "removed") from None
        if (st.st_dev, st.st_ino) != self._ino:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: the file was replaced by another file since "
                "it was opened. Open the ledger again.", self.path, "removed")
        if not st.st_mode & 0o222:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: the file was made read-only. Make it "
                "writable (chmod u+w), or use another ledger.", self.path, "read-only")

    def append(self, row: Sequence[Any], prev_hash: Any = None, hash: str | None = None) -> tuple[int, str | None, str]:
        """Commit one content row; return (seq, prev_hash, hash).

        With ``hash`` given (an import), the row keeps ``prev_hash`` and ``hash``,
        which must continue the run's chain.
        """
        with self._lock:
            self._check_file()
            try:
                try:
                    return self._append(row, prev_hash, hash, self._last.get(row[_RUN]))
                except _StaleCache:  # another process appended to this run: read its end
                    return self._append(row, prev_hash, hash, None)
            except sqlite3.Error as exc:
                self._last.pop(row[_RUN], None)
                raise _write_error(exc, self.path, self.timeout, "append to") from exc

    def _append(self, row: Sequence[Any], prev_hash: Any, hash: str | None, cached: str | None) -> tuple[int, str | None, str]:
        """One write transaction. ``cached``: the run's last hash as this process last wrote it.

        The ``runs`` update only succeeds if the run still ends with ``cached``,
        so a stale cache is caught inside the transaction and costs one retry.
        """
        cur, run_id = self._cur, row[_RUN]
        self._wrote = True
        cur.execute("BEGIN IMMEDIATE")
        try:
            if cached is None:
                found = cur.execute(_LAST, (run_id,)).fetchone()
                exists, last = found is not None, (found[0] if found is not None else None)
            else:
                exists, last = True, cached
            if hash is None:
                prev_hash, hash = last, chain_hash(last, row)
            else:
                check_continues(self.path, row, last, prev_hash)
            cur.execute(_INSERT, (*row, prev_hash, hash))
            seq = cur.lastrowid
            state = row[_STATE] if row[_KIND] == "flow" else None
            ended = row[_TS] if state in FINISHED_TYPES else None
            if exists:
                cur.execute(_UPDATE_RUN, (seq, hash, state, ended, run_id, last))
                if cur.rowcount != 1:
                    raise _StaleCache()
            else:
                cur.execute(_NEW_RUN, (run_id, row[_FLOW], state or "Pending", row[_TS], ended, seq, seq, hash))
            cur.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        if ended is None:
            self._last[run_id] = hash
        else:
            self._last.pop(run_id, None)
        return seq, prev_hash, hash

    # --- reading --------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"Could not read ledger {self.path}: {exc}", self.path) from exc

    def _run_range(self, run_id: str) -> tuple[int, int] | None:
        found = self._read("SELECT first_seq, last_seq FROM runs WHERE run_id = ?", (run_id,))
        return found[0] if found else None

    def select(self, q: Query, tail: bool = False) -> list[tuple[Any, ...]]:
        """Stored rows (``COLUMNS``) matching ``q``, in seq order.

        ``tail``: a run's rows up to the end of the ledger, not only to its
        recorded last event (verify looks for events inserted after it).
        """
        run_range = None
        if q.run_id is not None:
            found = self._run_range(q.run_id)
            if found is None:
                return []
            run_range = (found[0], None if tail else found[1])
        where, params = _where(q, run_range)
        sql = _SELECT + where + " ORDER BY seq"
        if q.limit is not None:
            sql += f" LIMIT {int(q.limit)}"
        return self._read(sql, params)

    def iter_rows(self, q: Query, batch: int = 5000, tail: bool = False) -> Iterator[tuple[Any, ...]]:
        """Like ``select`` but in batches, for very long runs."""
        after = q.after_seq
        remaining = q.limit
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            part = Query(**{f: getattr(q, f) for f in q.__slots__})  # type: ignore[attr-defined]
            part.after_seq, part.limit = after, size
            rows = self.select(part, tail)
            yield from rows
            if len(rows) < size:
                return
            after = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def latest(self, run_id: str, until_seq: int | None = None, until: str | None = None) -> list[tuple[Any, ...]]:
        """(seq, kind, key, name, flow, new_state) of each object's last event in the run."""
        found = self._run_range(run_id)
        if found is None:
            return []
        cond, params = _where(Query(run_id=run_id, until_seq=until_seq, until=until), found)
        return self._read(
            "SELECT seq, kind, key, name, flow, new_state FROM events WHERE seq IN "
            f"(SELECT max(seq) FROM events{cond} GROUP BY kind, key) ORDER BY seq", params)

    def runs(self, flow: str | None = None, types: Iterable[str] | None = None,
             limit: int | None = None, run_id: str | None = None) -> list[RunRecord]:
        """Runs, newest first."""
        conds, params = [], []
        for col, value in (("flow", flow), ("run_id", run_id)):
            if value is not None:
                conds.append(f"{col} = ?")
                params.append(value)
        if types is not None:
            types = list(types)
            conds.append(f"state IN ({', '.join('?' * len(types))})")
            params += types
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY first_seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_run_record(r) for r in self._read(sql, params)]

    def run_chain_ends(self) -> dict[str, tuple[int, str]]:
        """run_id -> (events, last_hash) as the runs table says."""
        return {r[0]: (r[1], r[2]) for r in self._read("SELECT run_id, events, last_hash FROM runs")}

    def max_seq(self) -> int:
        return self._read("SELECT max(seq) FROM events")[0][0] or 0

    # --- cursors ----------------------------------------------------------------------

    def load_cursor(self, name: str) -> tuple[int, str] | None:
        rows = self._read("SELECT seq, filter FROM cursors WHERE name = ?", (name,))
        return (rows[0][0], rows[0][1]) if rows else None

    def save_cursor(self, name: str, seq: int, filter_text: str, updated: str) -> None:
        with self._lock:
            self._check_file()
            self._wrote = True
            try:
                self._conn.execute(
                    "INSERT INTO cursors (name, seq, filter, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, filter = excluded.filter, "
                    "updated = excluded.updated", (name, seq, filter_text, updated))
            except sqlite3.Error as exc:
                raise _write_error(exc, self.path, self.timeout, "save a cursor in") from exc

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


def _out_of_space(path: str) -> bool:
    """Whether a write error is a full disk, or a file at the process's size limit (EFBIG)."""
    try:
        vfs = os.statvfs(os.path.dirname(path))
        if vfs.f_bavail * vfs.f_frsize < 1 << 20:
            return True
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            sizes = [os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p)]
            return any(size + (1 << 16) > limit for size in sizes)
    except (OSError, ImportError, ValueError):
        pass
    return False


class _StaleCache(Exception):
    """The run's last hash changed since this process cached it."""


def _refuse_special(path: str) -> None:
    """Refuse a dangling symbolic link, a FIFO, a device or a socket before anything is created."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise LedgerLocationError(
                f"Cannot use {path} as a ledger: it is a symbolic link to {os.readlink(path)}, which does "
                "not exist. Point --db (or STATELEDGER_DB) at a file, or remove the link.",
                path, os.path.dirname(path)) from None
        return
    except OSError:
        return  # a folder we cannot search: _check_location says so
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else None)
    if kind is not None:
        raise NotALedgerError(
            f"{path} is {kind}, not a ledger file. Point --db (or STATELEDGER_DB) at a regular file "
            "(e.g. ledger.db in a folder you own).", path, kind)


def _writable(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & 0o222)


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
        conds.append("run_id = ?")
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
