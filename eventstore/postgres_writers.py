"""Run ownership in a PostgreSQL ledger: the ``writers`` table (who writes each run, its heartbeat).

A mixin of ``PostgresRecorder`` (``eventstore.postgres``): the five methods of
``eventstore.protocol.RunOwnership``, each ONE statement in its own
transaction (autocommit), so each is atomic against every other writer on
any host:

* a claim is ``INSERT ... SELECT ... WHERE NOT EXISTS (a row of the run in
  runs) ON CONFLICT (run_id) DO NOTHING``: the primary key lets exactly one
  of two claims of one new id in, and a run that already has events is
  refused; a restart's claim (``take=True``) is an upsert;
* ``take_over`` is a compare-and-swap: an ``UPDATE`` whose ``WHERE`` names
  every field of the row the reaper read (``IS NOT DISTINCT FROM`` for the
  fields that may be NULL), so of two reapers exactly one changes it.

The table sits in the ledger's schema beside the events, outside every hash
chain and checkpoint. A new ledger gets it with its tables
(``postgres_schema.schema_sql``); a ledger made before writers were recorded
gets it with its first claim, under the ledger's advisory lock (another
writer may be creating it too). Reading never creates it: ``writers()`` of
such a ledger is empty, so a read-only login reads it as it is.
"""

from __future__ import annotations

from typing import Any, Iterable

from .errors import LedgerError, LedgerWriteError
from .postgres_schema import lock_keys, write_error, writers_sql
from .protocol import Writer, run_exists

__all__ = ["PostgresWriters"]

_COLUMNS = "run_id, host, pid, started, heartbeat, released, actor"


class PostgresWriters:
    """The run-ownership methods of ``PostgresRecorder`` (which provides the attributes below)."""

    _s: str
    schema: str
    path: str
    _target: Any
    _run: Any
    _read: Any
    _writers_ready = False  # the table is known to exist (looked for at most once per recorder)

    def claim_run(self, writer: Writer, *, take: bool = False) -> None:
        """Make ``writer`` the run's writer; see ``RunOwnership.claim_run``."""
        s = self._s
        if take:
            sql = (f"INSERT INTO {s}.writers ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                   "ON CONFLICT (run_id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                   "started = excluded.started, heartbeat = excluded.heartbeat, released = excluded.released, "
                   "actor = excluded.actor")
            self._writers_write("claim a run in", sql, _row(writer))
            return
        sql = (f"INSERT INTO {s}.writers ({_COLUMNS}) SELECT %s, %s, %s, %s, %s, %s, %s "
               f"WHERE NOT EXISTS (SELECT 1 FROM {s}.runs WHERE run_id = %s) ON CONFLICT (run_id) DO NOTHING")
        if not self._writers_write("claim a run in", sql, (*_row(writer), writer.run_id), done=writer):
            raise run_exists(self, writer.run_id)  # type: ignore[arg-type]

    def beat(self, run_id: str, host: str, pid: int, at: str) -> bool:
        """Heartbeat of the run's writer; see ``RunOwnership.beat``."""
        return bool(self._writers_write(
            "record a heartbeat in", f"UPDATE {self._s}.writers SET heartbeat = %s WHERE run_id = %s AND host = %s "
            "AND pid = %s AND released IS NULL", (at, run_id, host, pid)))

    def release_run(self, run_id: str, host: str, pid: int, at: str) -> None:
        """The writer lets go of the run; see ``RunOwnership.release_run``."""
        self._writers_write(
            "release a run in", f"UPDATE {self._s}.writers SET released = %s WHERE run_id = %s AND host = %s "
            "AND pid = %s AND released IS NULL", (at, run_id, host, pid))

    def take_over(self, old: Writer, new: Writer) -> bool:
        """Replace the writer row equal to ``old`` (compare-and-swap); see ``RunOwnership.take_over``."""
        return bool(self._writers_write(
            "take over a run in",
            f"UPDATE {self._s}.writers SET host = %s, pid = %s, started = %s, heartbeat = %s, released = %s, "
            "actor = %s WHERE run_id = %s AND host = %s AND pid = %s AND started IS NOT DISTINCT FROM %s "
            "AND heartbeat = %s AND released IS NOT DISTINCT FROM %s AND actor = %s",
            (*_row(new)[1:], *_row(old)), done=new))

    def writers(self, run_ids: Iterable[str] | None = None) -> list[Writer]:
        """Writer rows; see ``RunOwnership.writers`` (none in a ledger without the table)."""
        if not self._has_writers():
            return []
        sql, params = f"SELECT {_COLUMNS} FROM {self._s}.writers", ()
        if run_ids is not None:
            ids = list(run_ids)
            if not ids:
                return []
            sql, params = sql + " WHERE run_id = ANY(%s)", (ids,)
        return [Writer(*r) for r in self._read(sql, params)]

    def _has_writers(self) -> bool:
        """Whether the ledger's schema holds the writers table (read only; within a snapshot too)."""
        if not self._writers_ready:
            self._writers_ready = self._read("SELECT to_regclass(%s) IS NOT NULL",
                                             (f"{self._s}.writers",))[0][0]
        return self._writers_ready

    def _writers_write(self, doing: str, sql: str, params: tuple[Any, ...], done: Writer | None = None) -> int:
        """One statement, its own transaction; the number of rows it changed. Makes the table first if missing.

        ``done``: the row the statement stores; found stored after a broken
        connection, the statement did commit (1), rather than run again and
        find its own row in the way.
        """
        def committed(conn: Any) -> int | None:
            if done is None or conn.execute("SELECT to_regclass(%s) IS NULL", (f"{self._s}.writers",)).fetchone()[0]:
                return None
            found = conn.execute(f"SELECT {_COLUMNS} FROM {self._s}.writers WHERE run_id = %s",
                                 (done.run_id,)).fetchone()
            return 1 if found is not None and Writer(*found) == done else None

        def write(conn: Any) -> int:
            if not self._writers_ready and not conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                                            (f"{self._s}.writers",)).fetchone()[0]:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_keys(self.schema))
                    conn.execute(writers_sql(self.schema))
            self._writers_ready = True
            return int(conn.execute(sql, params).rowcount)

        def failed(exc: Exception) -> Exception:
            if isinstance(exc, LedgerError):
                return LedgerWriteError(f"Could not {doing} ledger {self.path}: {exc}", self.path,
                                        getattr(exc, "reason", "connection"))
            return write_error(exc, self._target, doing)

        return int(self._run(write, failed, committed))


def _row(w: Writer) -> tuple[Any, ...]:
    return (w.run_id, w.host, w.pid, w.started, w.heartbeat, w.released, w.actor)
