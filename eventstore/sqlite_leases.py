"""Leases in a SQLite ledger: the ``leases`` table, and ``SQLiteRecorder``'s ``Leasing`` methods (a mixin).

One row per lease name: who holds it and until when (Unix time, this host's
clock: every process writing a SQLite file shares it). The table is created
on the first ``acquire`` (``CREATE TABLE IF NOT EXISTS``), so a ledger made
before leases existed gains it on first use and a ledger nobody leases from
never has it. Each function is one write transaction under the ledger's
write lock (``BEGIN IMMEDIATE``), so two processes cannot both take a lease.
Leases are not events: nothing here is chained, exported or verified.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from .sqlite_files import write_error

__all__ = ["SQLiteLeasing", "acquire", "renew", "release"]

_TABLE = (
    "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, "
    "expires REAL NOT NULL, taken TEXT NOT NULL)"
)


class SQLiteLeasing:
    """``protocol.Leasing`` for ``SQLiteRecorder``, over its connection, lock and file checks."""

    # SQLiteRecorder's
    path: str
    timeout: float
    _lock: Any
    _conn: sqlite3.Connection
    _wrote: bool
    _check_file: Any

    def acquire_lease(self, name: str, holder: str, ttl: float, *,
                      replacing: str | None = None) -> tuple[str, float] | None:
        """Take the lease ``name`` for ``ttl`` s; None if taken, else (holder, seconds left). See ``Leasing``."""
        return self._lease_write("take a lease in", acquire, name, holder, ttl, replacing)  # type: ignore[no-any-return]

    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend ``holder``'s lease to ``ttl`` s from now; False if it no longer holds it."""
        return bool(self._lease_write("renew a lease in", renew, name, holder, ttl))

    def release_lease(self, name: str, holder: str) -> None:
        """Give up ``holder``'s lease (nothing if it does not hold it)."""
        self._lease_write("release a lease in", release, name, holder)

    def _lease_write(self, doing: str, fn: Any, *args: Any) -> Any:
        with self._lock:
            self._check_file()
            self._wrote = True
            try:
                return fn(self._conn, *args)
            except sqlite3.Error as exc:
                raise write_error(exc, self.path, self.timeout, doing) from exc


def acquire(conn: sqlite3.Connection, name: str, holder: str, ttl: float,
            replacing: str | None) -> tuple[str, float] | None:
    """Take (or renew) the lease; ``None`` if taken, else ``(holder, seconds left)``. See ``Leasing``."""
    with _transaction(conn):
        conn.execute(_TABLE)
        now = time.time()
        found = conn.execute("SELECT holder, expires FROM leases WHERE name = ?", (name,)).fetchone()
        if found is not None and found[1] > now and found[0] not in (holder, replacing):
            return found[0], found[1] - now
        if found is not None and found[0] == holder:
            conn.execute("UPDATE leases SET expires = ? WHERE name = ?", (now + ttl, name))
        else:
            conn.execute(
                "INSERT INTO leases (name, holder, expires, taken) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO "
                "UPDATE SET holder = excluded.holder, expires = excluded.expires, taken = excluded.taken",
                (name, holder, now + ttl, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))))
    return None


def renew(conn: sqlite3.Connection, name: str, holder: str, ttl: float) -> bool:
    """Extend the lease if ``holder`` holds it; False if it does not (any more)."""
    with _transaction(conn):
        if not _has_table(conn):
            return False
        changed = conn.execute("UPDATE leases SET expires = ? WHERE name = ? AND holder = ?",
                               (time.time() + ttl, name, holder)).rowcount
    return changed == 1


def release(conn: sqlite3.Connection, name: str, holder: str) -> None:
    """Drop the lease if ``holder`` holds it."""
    with _transaction(conn):
        if _has_table(conn):
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


def _has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'").fetchone() is not None


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the body raises (connection in autocommit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.conn.execute("COMMIT")
        finally:
            if self.conn.in_transaction:  # the body raised, or COMMIT did
                self.conn.execute("ROLLBACK")
