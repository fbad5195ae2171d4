"""Run ownership in a SQLite ledger: the ``writers`` table (who writes each run, its heartbeat).

A mixin of ``SQLiteRecorder`` (``eventstore.sqlite``): the five methods of
``eventstore.protocol.RunOwnership``, each one SQL statement, which SQLite
runs atomically among processes (a claim is an ``INSERT ... WHERE NOT
EXISTS``). The table sits
beside the events, outside every hash chain; a ledger made before writers
were recorded gets it with its first claim, and reading never creates it.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, Callable, Iterable

from .protocol import Writer, run_exists
from .sqlite_files import REFRESH_RUN_SQL, WRITERS_SQL, write_error

__all__ = ["WriterTable"]

_COLUMNS = "run_id, host, pid, started, heartbeat, released, actor"
_CLAIM = (f"INSERT INTO writers ({_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ? "
          "WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = ?) ON CONFLICT (run_id) DO NOTHING")
_UPSERT = (f"INSERT INTO writers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
           "host = excluded.host, pid = excluded.pid, started = excluded.started, "
           "heartbeat = excluded.heartbeat, released = excluded.released, actor = excluded.actor")


class WriterTable:
    """The run-ownership methods of ``SQLiteRecorder`` (which provides the attributes below)."""

    path: str
    timeout: float
    _lock: threading.RLock
    _conn: sqlite3.Connection
    _wrote: bool
    _check_file: Callable[[], None]
    _read: Callable[..., list[Any]]

    _writers_ready = False  # the table is known to exist (made at most once per recorder)

    def _writers_write(self, doing: str, sql: str, params: tuple[Any, ...]) -> int:
        """One statement, its own transaction (SQLite runs it atomically); the number of rows it changed."""
        with self._lock:
            self._check_file()
            self._wrote = True
            try:
                if not self._writers_ready:
                    self._conn.execute(WRITERS_SQL)
                    self._writers_ready = True
                return self._conn.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                raise write_error(exc, self.path, self.timeout, doing) from exc

    def claim_run(self, writer: Writer, *, take: bool = False) -> None:
        """Make ``writer`` the run's writer; see ``RunOwnership.claim_run``.

        One statement: the row goes in only if the run has no event and no
        writer yet, so of two processes claiming one id exactly one inserts.
        """
        if take:
            self._writers_write("claim a run in", _UPSERT, _writer_row(writer))
        elif not self._writers_write("claim a run in", _CLAIM, (*_writer_row(writer), writer.run_id)):
            raise run_exists(self, writer.run_id)

    def beat(self, run_id: str, host: str, pid: int, at: str) -> bool:
        """Heartbeat of the run's writer; see ``RunOwnership.beat``.

        It also writes down the run's summary as its events say (``REFRESH_RUN_SQL``):
        a task's event leaves the row of a run in progress alone (schema 3).
        """
        beating = bool(self._writers_write("record a heartbeat in",
                                           "UPDATE writers SET heartbeat = ? WHERE run_id = ? AND host = ? AND pid = ? "
                                           "AND released IS NULL", (at, run_id, host, pid)))
        if beating:  # (on an older schema the row is whole already: nothing to write)
            self._writers_write("record a heartbeat in", REFRESH_RUN_SQL, (run_id,))
        return beating

    def release_run(self, run_id: str, host: str, pid: int, at: str) -> None:
        """The writer lets go of the run; see ``RunOwnership.release_run`` (a paused run's summary is written down)."""
        if self._writers_write("release a run in", "UPDATE writers SET released = ? WHERE run_id = ? AND host = ? "
                               "AND pid = ? AND released IS NULL", (at, run_id, host, pid)):
            self._writers_write("release a run in", REFRESH_RUN_SQL, (run_id,))

    def take_over(self, old: Writer, new: Writer) -> bool:
        """Replace the writer row equal to ``old``; see ``RunOwnership.take_over``."""
        return bool(self._writers_write(
            "take over a run in",
            "UPDATE writers SET host = ?, pid = ?, started = ?, heartbeat = ?, released = ?, actor = ? "
            "WHERE run_id = ? AND host = ? AND pid = ? AND started IS ? AND heartbeat = ? AND released IS ? "
            "AND actor = ?", (*_writer_row(new)[1:], *_writer_row(old))))

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
