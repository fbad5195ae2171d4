"""The PostgreSQL ledger's part in trust: hashing with the seq, identity, hash rules, checkpoints, cursors.

A mixin of ``PostgresRecorder`` (``eventstore.postgres``), as
``eventstore.sqlite_trust`` is of ``SQLiteRecorder``: the append transaction
that hashes a row with its seq (``_append``), the upgrade of a schema-1
ledger at its first write (``_writable``: the trust tables and the
``reason`` column in one transaction), and the ``Recorder`` protocol's
"trust" methods over the schema-2 tables ``meta``, ``hash_rules``,
``checkpoints`` and the cursors' high-water mark. A schema-1 ledger not yet
upgraded reads as "every row rule 1, no checkpoint".
"""

from __future__ import annotations

from typing import Any, Iterator

import psycopg

from .errors import LedgerError, LedgerWriteError
from .mapper import CheckpointRow, ContentRow, HashRules, RunRow, chain_hash, stored_values
from .postgres_schema import SCHEMA_VERSION, lock_keys, upgrade_sql, write_error

__all__ = ["PostgresTrust"]

#: The schema version of this module's tables (``eventstore.postgres_schema.SCHEMA_VERSION``).
TRUST_SCHEMA = 2


class PostgresTrust:
    """The trust methods of ``PostgresRecorder``; it provides ``_read``, ``_run``, ``_version``, ``max_seq``."""

    path: str
    schema: str
    _s: str
    _target: Any
    _lock: Any
    _read: Any
    _version: Any
    _run: Any
    max_seq: Any
    _conn: Any
    _upgraded: bool
    _begin_sql: str
    _finish_sql: str

    def _writable(self) -> None:
        """Upgrade a schema-1 ledger before its first write, under the ledger's lock (others may too)."""
        if self._upgraded:
            return
        try:
            with self._lock, self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_keys(self.schema))
                version = self._version() or SCHEMA_VERSION
                if version < SCHEMA_VERSION:
                    for sql in upgrade_sql(self.schema, version):
                        self._conn.execute(sql)
        except psycopg.Error as exc:
            raise write_error(exc, self._target, "upgrade") from exc
        self._upgraded = True

    def _append(self, conn: Any, row: ContentRow, prev_hash: str | None, hash_: str | None,
                rule: tuple[int, int | None] | None, flow_state: str | None,
                ended: str | None) -> tuple[int, str] | None:
        """One append transaction: (seq, hash), or None when the run's end moved (nothing written)."""
        with conn.transaction():
            seq = conn.execute(self._begin_sql, (row.run_id, prev_hash, row.flow, row.timestamp)).fetchone()[0]
            if seq is None:
                return None
            if hash_ is None:
                hash_ = chain_hash(prev_hash, row, seq)
            else:
                conn.execute(f"INSERT INTO {self._s}.hash_rules (seq, version, hashed_seq) VALUES (%s, %s, %s)",
                             (seq, *(rule or (1, None))))
            conn.execute(self._finish_sql, (seq, *stored_values(row, prev_hash, hash_), flow_state, ended))
        return seq, hash_

    def _committed(self, conn: Any, row: ContentRow, prev_hash: str | None,
                   hash_: str | None) -> tuple[int, str] | None:
        """After a reconnect: (seq, hash) of the row if the broken append did commit it."""
        found = conn.execute(f"SELECT seq, prev_hash, hash FROM {self._s}.events WHERE event_id = %s",
                             (row.event_id,)).fetchone()
        if found is None or (found[1] or None) != (prev_hash or None):
            return None
        if found[2] != (hash_ if hash_ is not None else chain_hash(prev_hash, row, found[0])):
            return None
        return found[0], found[2]

    def _has_reason(self) -> bool:
        """Whether ``events`` has the ``reason`` column (schema 2; another writer may have upgraded it)."""
        return self._upgraded or self._schema_version() >= TRUST_SCHEMA

    def _schema_version(self) -> int:
        """The schema version as the database says now (another writer may have upgraded it)."""
        return int(self._read(f"SELECT value FROM {self._s}.meta WHERE key = 'schema_version'")[0][0])

    def ledger_id(self) -> str | None:
        found = self._read(f"SELECT value FROM {self._s}.meta WHERE key = 'ledger_id'")
        return found[0][0] if found else None

    def hash_rules(self) -> HashRules:
        if self._schema_version() < TRUST_SCHEMA:
            return HashRules(self.max_seq() + 1, {})
        v2_from = self._read(f"SELECT value FROM {self._s}.meta WHERE key = 'hash_v2_from'")[0][0]
        rules = self._read(f"SELECT seq, version, hashed_seq FROM {self._s}.hash_rules")
        return HashRules(int(v2_from), {seq: (version, hashed) for seq, version, hashed in rules})

    def run_rows(self, run_id: str | None = None) -> list[RunRow]:
        sql = f"SELECT {', '.join(RunRow._fields)} FROM {self._s}.runs"
        rows = self._read(sql + " WHERE run_id = %s", (run_id,)) if run_id is not None else self._read(sql)
        return [RunRow._make(r) for r in rows]

    def hashes(self, after_seq: int = 0, until_seq: int | None = None,
               *, batch: int = 50000) -> Iterator[tuple[int, str]]:
        bound = "" if until_seq is None else f" AND seq <= {int(until_seq)}"
        while True:
            rows = self._read(f"SELECT seq, hash FROM {self._s}.events WHERE seq > %s{bound} ORDER BY seq "
                              f"LIMIT {int(batch)}", (after_seq,))
            yield from rows
            if len(rows) < batch:
                return
            after_seq = rows[-1][0]

    def checkpoints(self) -> list[CheckpointRow]:
        if self._schema_version() < TRUST_SCHEMA:
            return []
        return [CheckpointRow._make(r) for r in self._read(
            f"SELECT seq, count, root, at, signature FROM {self._s}.checkpoints ORDER BY seq")]

    def add_checkpoint(self, cp: CheckpointRow) -> None:
        self._writable()
        sql = (f"INSERT INTO {self._s}.checkpoints (seq, count, root, at, signature) VALUES (%s, %s, %s, %s, %s) "
               "ON CONFLICT (seq) DO NOTHING")

        def failed(exc: Exception) -> Exception:
            if isinstance(exc, LedgerError):
                reason = exc.reason if isinstance(exc, LedgerWriteError) else "connection"
                return LedgerWriteError(f"Could not record a checkpoint in ledger {self.path}: {exc}", self.path,
                                        reason)
            return write_error(exc, self._target, "record a checkpoint in")

        self._run(lambda c: c.execute(sql, tuple(cp)), failed)

    def cursors(self) -> dict[str, tuple[int, int]]:
        high = "coalesce(high, seq)" if self._schema_version() >= TRUST_SCHEMA else "seq"
        return {name: (seq, top) for name, seq, top in self._read(f"SELECT name, seq, {high} FROM {self._s}.cursors")}
