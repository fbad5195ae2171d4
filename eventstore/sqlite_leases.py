"""Leases in a SQLite ledger: the ``leases`` table behind ``SQLiteRecorder``'s ``Leasing`` methods.

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

__all__ = ["acquire", "renew", "release"]

_TABLE = (
    "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, "
    "expires REAL NOT NULL, taken TEXT NOT NULL)"
)


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
