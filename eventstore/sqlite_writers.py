"""Run ownership in a SQLite ledger: the ``writers`` table (who writes each run, its heartbeat).

A mixin of ``SQLiteRecorder`` (``eventstore.sqlite``): the five run-ownership
methods of ``eventstore.protocol.Recorder``, each one write transaction
(``BEGIN IMMEDIATE``, so a claim is atomic among processes). The table sits
beside the events, outside every hash chain; a ledger made before writers
were recorded gets it with its first claim, and reading never creates it.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, Callable, Iterable

from .protocol import Writer, run_exists
from .sqlite_files import WRITERS_SQL, write_error

__all__ = ["WriterTable"]


class WriterTable:
    """The run-ownership methods of ``SQLiteRecorder`` (which provides the attributes below)."""

    path: str
    timeout: float
    _lock: threading.RLock
    _conn: sqlite3.Connection
    _wrote: bool
    _check_file: Callable[[], None]
    _read: Callable[..., list[Any]]

    def _write(self, doing: str, fn: Any) -> Any:
        """Run ``fn(cursor)`` in one write transaction (creating the writers table if missing)."""
        with self._lock:
            self._check_file()
            self._wrote = True
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(WRITERS_SQL)
                    out = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise write_error(exc, self.path, self.timeout, doing) from exc
            return out

    def claim_run(self, writer: Writer, *, take: bool = False) -> None:
        """Make ``writer`` the run's writer; see ``Recorder.claim_run``."""
        def claim(conn: sqlite3.Connection) -> bool:
            if not take and (
                conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (writer.run_id,)).fetchone()
                or conn.execute("SELECT 1 FROM writers WHERE run_id = ?", (writer.run_id,)).fetchone()
            ):
                return False
            conn.execute(
                "INSERT INTO writers (run_id, host, pid, started, heartbeat, released, actor) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET host = excluded.host, "
                "pid = excluded.pid, started = excluded.started, heartbeat = excluded.heartbeat, "
                "released = excluded.released, actor = excluded.actor", _writer_row(writer))
            return True

        if not self._write("claim a run in", claim):
            raise run_exists(self, writer.run_id)

    def beat(self, run_id: str, host: str, pid: int, at: str) -> bool:
        """Heartbeat of the run's writer; see ``Recorder.beat``."""
        return bool(self._write("record a heartbeat in", lambda conn: conn.execute(
            "UPDATE writers SET heartbeat = ? WHERE run_id = ? AND host = ? AND pid = ? AND released IS NULL",
            (at, run_id, host, pid)).rowcount))

    def release_run(self, run_id: str, host: str, pid: int, at: str) -> None:
        """The writer lets go of the run; see ``Recorder.release_run``."""
        self._write("release a run in", lambda conn: conn.execute(
            "UPDATE writers SET released = ? WHERE run_id = ? AND host = ? AND pid = ? AND released IS NULL",
            (at, run_id, host, pid)))

    def take_over(self, old: Writer, new: Writer) -> bool:
        """Replace the writer row equal to ``old``; see ``Recorder.take_over``."""
        return bool(self._write("take over a run in", lambda conn: conn.execute(
            "UPDATE writers SET host = ?, pid = ?, started = ?, heartbeat = ?, released = ?, actor = ? "
            "WHERE run_id = ? AND host = ? AND pid = ? AND started IS ? AND heartbeat = ? AND released IS ? "
            "AND actor = ?", (*_writer_row(new)[1:], *_writer_row(old))).rowcount))

    def writers(self, run_ids: Iterable[str] | None = None) -> list[Writer]:
        """Writer rows; see ``Recorder.writers``."""
        if not self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'writers'"):
            return []
        sql, params = "SELECT run_id, host, pid, started, heartbeat, released, actor FROM writers", []
        if run_ids is not None:
            params = list(run_ids)
            if not params:
                return []
            sql += f" WHERE run_id IN ({', '.join('?' * len(params))})"
        return [Writer(*r) for r in self._read(sql, params)]


def _writer_row(w: Writer) -> tuple[Any, ...]:
    return (w.run_id, w.host, w.pid, w.started, w.heartbeat, w.released, w.actor)
