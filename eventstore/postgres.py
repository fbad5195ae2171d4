"""``PostgresRecorder``: the ledger in a PostgreSQL schema. The only module that talks to psycopg.

It implements ``eventstore.protocol.Recorder`` as ``SQLiteRecorder`` does, for
writers on several hosts: ``EventStore("postgresql://user:pass@host/db")``
(``?schema=NAME``: the schema, default ``stateledger``; its SQL is in
``eventstore.postgres_schema``).

* **One transaction per append, two calls**: ``append_begin`` locks the run's
  summary row, which must still end with the hash the row is chained to (if
  another writer got there first, nothing is written and the append reads the
  run's end and chains again: concurrent writers of one run never fork its
  chain), takes the ledger's lock and draws the seq; the row is hashed with
  its seq here (``mapper.chain_hash``: the hash covers it) and
  ``append_finish`` stores it. A schema-1 ledger is read as it is (``reason``
  read as NULL) and upgraded by the first write (``postgres_schema.upgrade_sql``:
  the trust tables and the ``reason`` column), never rehashed.
* **seq = commit order**: ``seq`` is drawn from the identity column's sequence
  under a transaction-level advisory lock held until commit. Appends of one ledger
  therefore commit one at a time in seq order, and a reader never sees seq N+1
  committed while seq N is still in flight (a rolled-back append leaves a gap).
  We chose this over "readers stop at the lowest in-flight seq": it costs
  write concurrency (the commit is inside the lock), but keeps every reader a
  plain ``seq > cursor`` query.
* **Followers wake on LISTEN/NOTIFY**: each append notifies its seq at commit;
  ``wait`` blocks on a second connection that LISTENs, and reads again at least
  every ``FALLBACK`` seconds in case a notification was missed.
* **Lost connections**: a read or an append whose connection broke (server
  restarted, backend terminated) reconnects, for up to ``timeout`` seconds,
  and goes on; an append retried after a break first looks for its
  ``event_id``, so an append that did commit is never written twice. Past the
  timeout it raises ``LedgerWriteError`` (``reason="connection"``): the run
  stops, nothing is silently lost.
* **Imports and leases** (``protocol.Importing``, ``protocol.Leasing``) are in
  ``eventstore.postgres_extras``; run ownership (``protocol.RunOwnership``: the
  ``writers`` table) in ``eventstore.postgres_writers``.
* **Durability**: ``"normal"`` commits as the server is configured (by default
  ``synchronous_commit = on``: a committed event survives a server crash);
  ``"full"`` sets ``synchronous_commit = on`` even where the server's default
  is lower.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

try:
    import psycopg
except ImportError as exc:  # not installed, or installed without a usable libpq
    raise ModuleNotFoundError(f"psycopg cannot be imported ({exc})", name="psycopg") from exc

from statemachine.errors import ArgumentError

from .errors import LedgerConnectionError, LedgerError, LedgerWriteError, NotALedgerError, SchemaVersionError
from .mapper import COLUMNS, FINISHED_TYPES, ContentRow, LatestRow, RunRecord, StoredRow, \
    check_continues, run_record
from .postgres_schema import (
    SCHEMA_VERSION, channel_name, connect_error, lock_keys, parse_target, schema_sql, where_sql, write_error,
)
from .postgres_extras import PostgresExtras
from .postgres_trust import PostgresTrust
from .postgres_writers import PostgresWriters
from .protocol import Query, batched_rows

__all__ = ["PostgresRecorder", "FALLBACK"]

#: Seconds a follower waits for a notification before it reads the ledger anyway.
FALLBACK = 30.0

T = TypeVar("T")


class PostgresRecorder(PostgresTrust, PostgresExtras, PostgresWriters):
    """Event rows in a PostgreSQL schema. See the module docstring.

    ``create=False`` refuses a database whose schema holds no ledger yet
    instead of creating it (read-only commands).
    """

    #: ``wait`` returns False when no row was committed meanwhile (``EventStore.tail`` reads only when woken).
    notifies = True

    def __init__(self, url: str, *, durability: str = "normal", timeout: float = 10.0,
                 create: bool = True) -> None:
        if durability not in ("normal", "full"):
            raise ArgumentError(f'durability must be "normal" or "full", got {durability!r}')
        self._target = target = parse_target(url)
        self.path = target.shown
        self.schema = target.schema
        self.durability = durability
        self.timeout = timeout
        self._s = target.quoted
        self._lock = threading.RLock()
        self._listen_lock = threading.Lock()
        self._listener: Any = None
        self._last_read = time.monotonic()
        self._last: dict[str, str] = {}  # run_id -> last hash this recorder wrote (see append)
        self._snapshots = 0
        self._closed = False
        self._upgraded = True  # False: a schema-1 ledger, upgraded by the first write (_writable)
        self._conn = self._connect()
        try:
            self._open(create)
        except BaseException:
            self._conn.close()
            raise
        s = self._s
        casts = [("%s::integer" if c == "attempt" else "%s::text") for c in (*COLUMNS[1:], "", "")]
        self._begin_sql = f"SELECT {s}.append_begin(%s::text, %s::text, %s::text, %s::text)"
        self._finish_sql = f"SELECT {s}.append_finish(%s::bigint, {', '.join(casts)})"
        self._select_sql = f"SELECT {', '.join(COLUMNS)} FROM {s}.events"
        #: a schema-1 ledger has no reason column: read as NULL until the first write upgrades it
        self._select_v1_sql = f"SELECT {', '.join(COLUMNS[:-1])}, NULL AS reason FROM {s}.events"

    def __repr__(self) -> str:
        return f"<PostgresRecorder {self.path}>"

    # --- connections --------------------------------------------------------------

    def _connect(self) -> Any:
        """A new autocommit connection, configured; ``LedgerConnectionError`` when refused."""
        try:
            conn = psycopg.connect(self._target.conninfo, autocommit=True,
                                   connect_timeout=max(1, int(self.timeout + 0.999)))
        except psycopg.Error as exc:
            raise connect_error(exc, self._target) from None
        try:
            conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
            if self.durability == "full":
                conn.execute("SET synchronous_commit = on")
        except psycopg.Error as exc:
            conn.close()
            raise connect_error(exc, self._target) from None
        return conn

    def _lost(self, exc: Exception, conn: Any) -> bool:
        """Whether ``exc`` means the connection is gone (not that the statement was refused)."""
        state = getattr(exc, "sqlstate", None) or ""
        return isinstance(exc, psycopg.OperationalError) and (
            conn.closed or conn.broken or state.startswith(("08", "57P")) or not state)

    def _reconnect(self) -> None:
        """Replace a broken connection, retrying until ``timeout`` (a restarting server)."""
        with contextlib.suppress(Exception):
            self._conn.close()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._conn = self._connect()
                return
            except LedgerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _run(self, fn: Callable[[Any], T], fail: Callable[[Exception], Exception],
             on_reconnect: Callable[[Any], T | None] | None = None) -> T:
        """``fn(connection)`` under the lock; once more on a new connection if the old one broke.

        ``on_reconnect(connection)``, given, may answer instead of a second ``fn``
        (an append that did commit before the break). Other errors become ``fail(exc)``.
        """
        with self._lock:
            if self._closed:
                raise fail(LedgerWriteError("this EventStore was closed", self.path, "closed"))
            try:
                return fn(self._conn)
            except psycopg.Error as exc:
                if self._snapshots or not self._lost(exc, self._conn):
                    raise fail(exc) from exc
            try:
                self._reconnect()
            except LedgerError as exc:
                raise fail(exc) from exc
            try:
                if on_reconnect is not None:
                    done = on_reconnect(self._conn)
                    if done is not None:
                        return done
                return fn(self._conn)
            except psycopg.Error as exc:
                raise fail(exc) from exc

    # --- opening ------------------------------------------------------------------

    def _open(self, create: bool) -> None:
        """Check the schema holds a ledger we can read (no writes yet); create it if empty."""
        version = self._version()
        if version is None and not create:
            raise LedgerError(
                f"No ledger in schema {self.schema} of PostgreSQL database {self.path}: it was never "
                "written. Record a run first (stateledger run FILE.py --db URL), or check ?schema=.", self.path)
        if version is None:
            self._create()
            version = self._version() or SCHEMA_VERSION  # another writer may have created it first
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"Ledger {self.path} (schema {self.schema}) was written by schema version {version}; this "
                f"stateledger reads up to {SCHEMA_VERSION}. Upgrade stateledger or use another schema "
                "(?schema=NAME).", self.path, version, SCHEMA_VERSION)
        self._upgraded = version >= SCHEMA_VERSION

    def _version(self) -> int | None:
        """The ledger's schema version; None for a missing or empty schema; refuse a foreign one."""
        try:
            tables = {r[0] for r in self._conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,))}
            if not tables:
                return None
            if "meta" not in tables:
                raise NotALedgerError(
                    f"Schema {self.schema} of {self.path} is not a ledger: it holds the tables "
                    f"{', '.join(sorted(tables))}. Use another schema (?schema=NAME in the URL).",
                    self.path, "another schema")
            found = self._conn.execute(
                f"SELECT value FROM {self._s}.meta WHERE key = 'schema_version'").fetchone()
        except psycopg.Error as exc:
            raise LedgerError(f"Could not read ledger {self.path}: {' '.join(str(exc).split())}",
                              self.path) from exc
        if found is None or not found[0].isdigit():
            raise NotALedgerError(
                f"Schema {self.schema} of {self.path} is not a ledger: its meta table has no schema version. "
                "Use another schema (?schema=NAME in the URL).", self.path, "no version")
        return int(found[0])

    def _create(self) -> None:
        """Create the schema in one transaction, under the ledger's lock (others may be creating it)."""
        import uuid

        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_keys(self.schema))
                if self._version() is None:
                    for sql in schema_sql(self.schema):
                        self._conn.execute(sql)
                    self._conn.execute(
                        f"INSERT INTO {self._s}.meta (key, value) VALUES ('schema_version', %s), "
                        "('ledger_id', %s)", (str(SCHEMA_VERSION), uuid.uuid4().hex))
        except psycopg.Error as exc:
            raise write_error(exc, self._target, "create") from exc

    # --- writing --------------------------------------------------------------------

    def append(self, row: ContentRow, prev_hash: str | None = None, hash: str | None = None,
               *, rule: tuple[int, int | None] | None = None) -> tuple[int, str | None, str]:
        """Commit one content row; return (seq, prev_hash, hash). See ``Recorder.append``."""
        importing = hash is not None
        run_id = row.run_id
        if self._closed:
            raise self._write_failed(LedgerWriteError("closed", self.path, "closed"), run_id)
        self._writable()
        flow_state = row.state if row.kind == "flow" else None
        ended = row.timestamp if flow_state in FINISHED_TYPES else None
        last: str | None = self._last.get(run_id) if not importing else prev_hash
        known = run_id in self._last or importing
        deadline = time.monotonic() + self.timeout
        while True:
            if not known:
                try:
                    last = self._run_end(run_id)
                except LedgerError as exc:
                    raise self._write_failed(exc, run_id) from exc
            if importing:
                check_continues(self.path, row, last, prev_hash)
            chained_to = prev_hash if importing else last
            done = self._run(lambda c: self._append(c, row, chained_to, hash, rule, flow_state, ended),
                             lambda exc: self._write_failed(exc, run_id),
                             lambda c: self._committed(c, row, chained_to, hash))
            if done is not None:
                seq, chained = done[0], (chained_to, done[1])
                break
            known = False  # another writer moved the run's end (or it exists already): read it again
            if time.monotonic() > deadline:
                raise self._write_failed(LedgerWriteError("the run's end kept moving", self.path, "locked"), run_id)
        if ended is None:
            self._last[run_id] = chained[1]
        else:
            self._last.pop(run_id, None)
        return seq, chained[0], chained[1]

    def _run_end(self, run_id: str) -> str | None:
        found = self._read(f"SELECT last_hash FROM {self._s}.runs WHERE run_id = %s", (run_id,))
        return found[0][0] if found else None

    def _write_failed(self, exc: Exception, run_id: str) -> Exception:
        self._last.pop(run_id, None)
        if isinstance(exc, LedgerWriteError):
            if exc.reason == "closed":
                return LedgerWriteError(
                    f"Could not append to ledger {self.path}: this EventStore was closed. Open the ledger "
                    "again (EventStore(url)).", self.path, "closed")
            return LedgerWriteError(f"Could not append to ledger {self.path}: {exc}", self.path, exc.reason)
        if isinstance(exc, LedgerConnectionError):  # the server stayed unreachable past the timeout
            return LedgerWriteError(
                f"Could not append to ledger {self.path}: the connection was lost and not regained within "
                f"{self.timeout:g} s ({exc}). Nothing more of this run is recorded.", self.path, "connection")
        if isinstance(exc, LedgerError):
            return LedgerWriteError(f"Could not append to ledger {self.path}: {exc}", self.path, "io")
        return write_error(exc, self._target, "append to")

    # --- reading --------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        def failed(exc: Exception) -> Exception:
            if isinstance(exc, LedgerError) and not isinstance(exc, LedgerWriteError):
                return exc
            text = " ".join(str(exc).split())
            return LedgerError(f"Could not read ledger {self.path}: {text}", self.path)

        return self._run(lambda c: c.execute(sql, params).fetchall(), failed)

    def _run_range(self, run_id: str) -> tuple[int, int] | None:
        found = self._read(f"SELECT first_seq, last_seq FROM {self._s}.runs WHERE run_id = %s", (run_id,))
        return found[0] if found else None

    def select(self, q: Query, *, tail: bool = False) -> list[StoredRow]:
        """Stored rows matching ``q``, in seq order; see ``Recorder.select``."""
        run_range = None
        if q.run_id is not None and not tail:  # tail: every row of the run, through the run_id index
            found = self._run_range(q.run_id)
            if found is None:
                return []
            run_range = (found[0], found[1])
        where, params = where_sql(q, run_range)
        sql = (self._select_sql if self._has_reason() else self._select_v1_sql) + where + " ORDER BY seq"
        if q.limit is not None:
            sql += f" LIMIT {int(q.limit)}"
        return [tuple.__new__(StoredRow, r) for r in self._read(sql, params)]

    def iter_rows(self, q: Query, *, batch: int = 5000, tail: bool = False) -> Iterator[StoredRow]:
        """Like ``select`` but ``batch`` rows at a time."""
        return batched_rows(self, q, batch, tail)

    def latest(self, run_id: str, *, until_seq: int | None = None,
               until: str | None = None) -> list[LatestRow]:
        """Each object's last row in the run; see ``Recorder.latest``."""
        found = self._run_range(run_id)
        if found is None:
            return []
        cond, params = where_sql(Query(run_id=run_id, until_seq=until_seq, until=until), found)
        return [LatestRow._make(r) for r in self._read(
            f"SELECT seq, kind, key, name, flow, new_state FROM {self._s}.events WHERE seq IN "
            f"(SELECT max(seq) FROM {self._s}.events{cond} GROUP BY kind, key) ORDER BY seq", params)]

    def runs(self, *, flow: str | None = None, types: Iterable[str] | None = None,
             since: str | None = None, until: str | None = None, limit: int | None = None,
             run_id: str | None = None) -> list[RunRecord]:
        """Runs, newest first; see ``Recorder.runs``."""
        conds, params = [], []
        for cond, value in (("flow = %s", flow), ("run_id = %s", run_id),
                            ("started >= %s", since), ("started <= %s", until)):
            if value is not None:
                conds.append(cond)
                params.append(value)
        if types is not None:
            conds.append("state = ANY(%s)")
            params.append(list(types))
        sql = f"SELECT run_id, flow, state, started, ended, events FROM {self._s}.runs"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY first_seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [run_record(*r) for r in self._read(sql, params)]

    def run_chain_ends(self) -> dict[str, tuple[int, str]]:
        """run_id -> (events, last_hash) as the runs summary says."""
        return {r[0]: (r[1], r[2]) for r in self._read(f"SELECT run_id, events, last_hash FROM {self._s}.runs")}

    def max_seq(self) -> int:
        """The highest seq (0 when empty)."""
        return self._read(f"SELECT max(seq) FROM {self._s}.events")[0][0] or 0

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One REPEATABLE READ, READ ONLY transaction: every read inside sees the same ledger."""
        with self._lock:
            if self._snapshots:
                self._snapshots += 1
                try:
                    yield
                finally:
                    self._snapshots -= 1
                return
            self._read("SELECT 1")  # reconnects first if the connection broke
            try:
                self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            except psycopg.Error as exc:
                raise LedgerError(f"Could not read ledger {self.path}: {exc}", self.path) from exc
            self._snapshots = 1
            try:
                yield
            finally:
                self._snapshots = 0
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("ROLLBACK")

    # --- following ------------------------------------------------------------------

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Block until a row with seq > ``after_seq`` is notified (True), or ``timeout`` passed (False).

        True also when the listening connection was (re)made (a commit may have
        been missed meanwhile), when it broke, and every ``FALLBACK`` seconds.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._listen_lock:
            if self._closed:
                return True  # the next read says the recorder was closed
            if self._listener is None:
                try:
                    self._listener = self._connect()
                    self._listener.execute('LISTEN "' + channel_name(self.schema).replace('"', '""') + '"')
                except (LedgerError, psycopg.Error):
                    self._drop_listener()
                    time.sleep(max(0.0, min(timeout, 1.0)))
                    return True
                return self._woken()
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    for note in self._listener.notifies(timeout=left, stop_after=1):
                        if not note.payload.isdigit() or int(note.payload) > after_seq:
                            return self._woken()
            except psycopg.Error:
                self._drop_listener()
                return self._woken()
        if time.monotonic() - self._last_read > FALLBACK:
            return self._woken()
        return False

    def _woken(self) -> bool:
        self._last_read = time.monotonic()
        return True

    def _drop_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.close()
        self._listener = None

    # --- cursors ----------------------------------------------------------------------

    def load_cursor(self, name: str) -> tuple[int, str] | None:
        rows = self._read(f"SELECT seq, filter FROM {self._s}.cursors WHERE name = %s", (name,))
        return (rows[0][0], rows[0][1]) if rows else None

    def save_cursor(self, name: str, seq: int, filter_text: str, updated: str) -> None:
        self._writable()
        sql = (f"INSERT INTO {self._s}.cursors AS c (name, seq, filter, updated, high) VALUES (%s, %s, %s, %s, %s) "
               "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, filter = excluded.filter, "
               "updated = excluded.updated, high = greatest(coalesce(c.high, 0), excluded.seq)")

        def failed(exc: Exception) -> Exception:
            if isinstance(exc, LedgerWriteError):
                return LedgerWriteError(f"Could not save a cursor in ledger {self.path}: {exc}", self.path,
                                        exc.reason)
            if isinstance(exc, LedgerError):
                return LedgerWriteError(f"Could not save a cursor in ledger {self.path}: {exc}", self.path,
                                        "connection")
            return write_error(exc, self._target, "save a cursor in")

        self._run(lambda c: c.execute(sql, (name, seq, filter_text, updated, seq)), failed)

    # --- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close both connections. Idempotent; later appends raise ``LedgerWriteError``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(Exception):
                self._conn.close()
        with self._listen_lock:
            self._drop_listener()

