"""The optional recorder capabilities of ``PostgresRecorder``: ``Importing`` and ``Leasing``.

A mixin over ``PostgresRecorder``'s connection (kept out of
``eventstore.postgres`` so that module stays readable in one sitting):

* ``import_rows``: every row through the schema's ``append_begin`` and
  ``append_finish`` functions (with its hash rule in ``hash_rules``) inside
  ONE transaction on the recorder's connection, so an import commits whole or
  not at all (its seq lock is held until then, as for one append). A
  schema-1 ledger is upgraded first (``_writable``, as by any write).
* Leases in a ``leases`` table of the ledger's schema, created on first use
  under the ledger's advisory lock (a ledger made before leases gains it
  then); times are the server's ``clock_timestamp()``, so writers on several
  hosts share one clock. Each call is one statement (autocommit).
"""

from __future__ import annotations

from typing import Any, Iterable

from .errors import LedgerError, LedgerWriteError
from .mapper import FINISHED_TYPES, ContentRow, check_continues, stored_values
from .postgres_schema import lock_keys, write_error

__all__ = ["PostgresExtras"]


class PostgresExtras:
    """``import_rows`` and the lease methods for ``PostgresRecorder`` (see ``eventstore.protocol``)."""

    # PostgresRecorder's: its schema, connection, statements, and _run (one try, one reconnect)
    _s: str
    schema: str
    path: str
    _target: Any
    _last: dict[str, str]
    _begin_sql: str
    _finish_sql: str
    _run: Any
    _writable: Any
    _leases_ready = False

    # --- Importing ---------------------------------------------------------------------

    def import_rows(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Store every (row, prev_hash, hash[, rule]) in one transaction, all or nothing; see ``Importing``."""
        self._writable()
        touched: set[str] = set()
        done: list[tuple[int, ContentRow, str]] = []  # (rows stored, the last one, its hash)

        def store_all(conn: Any) -> int:
            n = 0
            with conn.transaction():
                for row, prev_hash, hash_, *rule in rows:
                    touched.add(row.run_id)
                    state = row.state if row.kind == "flow" else None
                    ended = row.timestamp if state in FINISHED_TYPES else None
                    seq = conn.execute(self._begin_sql, (row.run_id, prev_hash, row.flow, row.timestamp)).fetchone()[0]
                    if seq is None:  # the run does not end with prev_hash: say what it ends with
                        found = conn.execute(f"SELECT last_hash FROM {self._s}.runs WHERE run_id = %s",
                                             (row.run_id,)).fetchone()
                        check_continues(self.path, row, found[0] if found else None, prev_hash)
                        raise LedgerError(f"Could not import event {row.event_id}: its run moved meanwhile.",
                                          self.path)
                    conn.execute(f"INSERT INTO {self._s}.hash_rules (seq, version, hashed_seq) VALUES (%s, %s, %s)",
                                 (seq, *(rule[0] if rule else (1, None))))
                    conn.execute(self._finish_sql, (seq, *stored_values(row, prev_hash, hash_), state, ended))
                    n += 1
                    done[:] = [(n, row, hash_)]
            return n

        def after_break(conn: Any) -> int:
            """The connection broke: the import committed whole (its last row is there) or not at all."""
            if done:
                n, row, hash_ = done[0]
                found = conn.execute(f"SELECT hash FROM {self._s}.events WHERE event_id = %s",
                                     (row.event_id,)).fetchone()
                if found is not None and found[0] == hash_:
                    return n
            raise LedgerWriteError(
                f"Could not import into ledger {self.path}: the connection to the server broke during the "
                "import, which was rolled back; nothing was imported. Import the file again.", self.path,
                "connection")

        try:
            return self._run(store_all, self._import_failed, after_break)  # type: ignore[no-any-return]
        finally:
            for run_id in touched:
                self._last.pop(run_id, None)

    def _import_failed(self, exc: Exception) -> Exception:
        if isinstance(exc, LedgerError):
            return LedgerWriteError(f"Could not import into ledger {self.path}: {exc}", self.path,
                                    getattr(exc, "reason", "connection"))
        return write_error(exc, self._target, "import into")

    # --- Leasing -----------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: float, *,
                      replacing: str | None = None) -> tuple[str, float] | None:
        """Take the lease ``name`` for ``ttl`` s; None if taken, else (holder, seconds left). See ``Leasing``."""
        s = self._s
        take = (
            f"INSERT INTO {s}.leases AS l (name, holder, expires, taken) VALUES "
            "(%(name)s, %(holder)s, clock_timestamp() + make_interval(secs => %(ttl)s), clock_timestamp()) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires, "
            "taken = CASE WHEN l.holder = excluded.holder THEN l.taken ELSE excluded.taken END "
            "WHERE l.expires <= clock_timestamp() OR l.holder = excluded.holder OR l.holder = %(replacing)s "
            "RETURNING holder")
        held = (f"SELECT holder, extract(epoch FROM expires - clock_timestamp())::float8 FROM {s}.leases "
                "WHERE name = %(name)s")
        args = {"name": name, "holder": holder, "ttl": float(ttl), "replacing": replacing}

        def acquire(conn: Any) -> tuple[str, float] | None:
            self._ensure_leases(conn)
            for _ in range(3):  # a lease released between the two statements: try again
                if conn.execute(take, args).fetchone() is not None:
                    return None
                found = conn.execute(held, args).fetchone()
                if found is not None:
                    return found[0], max(0.0, found[1])
            return None if conn.execute(take, args).fetchone() is not None else (holder, 0.0)

        return self._run(acquire, self._lease_failed("take a lease in"))  # type: ignore[no-any-return]

    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend ``holder``'s lease to ``ttl`` s from now; False if it no longer holds it."""
        def renew(conn: Any) -> bool:
            self._ensure_leases(conn)
            return conn.execute(
                f"UPDATE {self._s}.leases SET expires = clock_timestamp() + make_interval(secs => %s) "
                "WHERE name = %s AND holder = %s", (float(ttl), name, holder)).rowcount == 1

        return bool(self._run(renew, self._lease_failed("renew a lease in")))

    def release_lease(self, name: str, holder: str) -> None:
        """Give up ``holder``'s lease (nothing if it does not hold it)."""
        def release(conn: Any) -> None:
            self._ensure_leases(conn)
            conn.execute(f"DELETE FROM {self._s}.leases WHERE name = %s AND holder = %s", (name, holder))

        self._run(release, self._lease_failed("release a lease in"))

    def _ensure_leases(self, conn: Any) -> None:
        """Create the leases table once, under the ledger's lock (another writer may be creating it)."""
        if self._leases_ready:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_keys(self.schema))
            conn.execute(f'CREATE TABLE IF NOT EXISTS {self._s}.leases (name text COLLATE "C" PRIMARY KEY, '
                         "holder text NOT NULL, expires timestamptz NOT NULL, taken timestamptz NOT NULL)")
        self._leases_ready = True

    def _lease_failed(self, doing: str) -> Any:
        def failed(exc: Exception) -> Exception:
            if isinstance(exc, LedgerError):
                return LedgerWriteError(f"Could not {doing} ledger {self.path}: {exc}", self.path,
                                        getattr(exc, "reason", "connection"))
            return write_error(exc, self._target, doing)
        return failed
