"""The SQLite ledger's part in trust: its identity, hash rules, checkpoints and cursors (all of their methods).

A mixin of ``SQLiteRecorder`` (``eventstore.sqlite``), kept apart so each
module reads in one sitting: the upgrade of a schema-1 ledger at its first
write (``_writable``: the trust tables and the ``reason`` column in one
step), verify's fast path (``verify_rows``), and the
``Recorder`` protocol's "trust" methods
over the schema-2 tables ``meta``, ``hash_rules``, ``checkpoints`` and the
cursors' high-water mark. A schema-1 ledger not yet upgraded has none of
them: it reads as "every row rule 1, no id, no checkpoint".
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterator, Sequence

from .mapper import CONTENT, VERIFY_FIELDS, CheckpointRow, HashRules, RunRow
from .protocol import Query
from .sqlite_files import RUNS_NOW, write_error

__all__ = ["SQLiteTrust"]

#: verify's fast path: what rule 2 hashes, written by SQLite (``Recorder.verify_rows``); ``reason``
#: is hashed only when set (``mapper.hashed_content``), and a schema-1 ledger has no such column.
_HASHED = ", ".join(c for c in CONTENT if c != "reason")
_VERIFY_SELECT = (f"SELECT {', '.join(VERIFY_FIELDS)}, coalesce(prev_hash, '') || CASE WHEN reason IS NULL "
                  f"THEN json_array(seq, {_HASHED}) ELSE json_array(seq, {_HASHED}, reason) END FROM events")
_VERIFY_SELECT_V1 = (f"SELECT {', '.join(VERIFY_FIELDS)}, coalesce(prev_hash, '') || json_array(seq, {_HASHED}) "
                     "FROM events")

#: The schema version of this module's tables (``eventstore.sqlite.SCHEMA_VERSION``).
TRUST_SCHEMA = 2


class SQLiteTrust:
    """The trust methods of ``SQLiteRecorder``; it provides ``_read``, ``_writable``, ``max_seq``."""

    path: str
    timeout: float
    _lock: Any
    _read: Any
    _select: Any
    _create_schema: Any
    _check_file: Any
    max_seq: Any
    _conn: sqlite3.Connection
    _wrote: bool
    _upgraded: bool
    _v2_from: int

    def _writable(self) -> None:
        """Check the file (``_check_file``) and upgrade a schema-1 ledger before its first write."""
        self._check_file()
        if not self._upgraded:
            self._wrote = True
            self._create_schema()
            self._upgraded = True
            self._v2_from = int(self._read("SELECT value FROM meta WHERE key = 'hash_v2_from'")[0][0])

    def verify_rows(self, q: Query, *, tail: bool = False, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        """``verify``'s fast path (``Recorder.verify_rows``): the hashed text made by SQLite's json_array."""
        after, head = q.after_seq, _VERIFY_SELECT if self._has_reason() else _VERIFY_SELECT_V1
        while True:
            rows = self._select(head, q.but(after_seq=after, limit=batch), tail)
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def _has_reason(self) -> bool:
        """Whether ``events`` has the ``reason`` column (schema 2; another process may have upgraded it)."""
        return self._upgraded or self._schema() >= TRUST_SCHEMA

    def _schema(self) -> int:
        """The schema version as the file says now (another process may have upgraded it)."""
        return int(self._read("PRAGMA user_version")[0][0])

    def ledger_id(self) -> str | None:
        if self._schema() < TRUST_SCHEMA:
            return None
        return self._read("SELECT value FROM meta WHERE key = 'ledger_id'")[0][0]  # type: ignore[no-any-return]

    def hash_rules(self) -> HashRules:
        if self._schema() < TRUST_SCHEMA:
            return HashRules(self.max_seq() + 1, {})
        v2_from = self._read("SELECT value FROM meta WHERE key = 'hash_v2_from'")[0][0]
        rules = self._read("SELECT seq, version, hashed_seq FROM hash_rules")
        return HashRules(int(v2_from), {seq: (version, hashed) for seq, version, hashed in rules})

    def run_rows(self, run_id: str | None = None) -> list[RunRow]:
        sql = f"SELECT {', '.join(RunRow._fields)} FROM {RUNS_NOW}"
        rows = self._read(sql + " WHERE run_id = ?", (run_id,)) if run_id is not None else self._read(sql)
        return [RunRow._make(r) for r in rows]

    def hashes(self, after_seq: int = 0, until_seq: int | None = None,
               *, batch: int = 50000) -> Iterator[tuple[int, str]]:
        bound = "" if until_seq is None else f" AND seq <= {int(until_seq)}"
        while True:
            rows = self._read(f"SELECT seq, hash FROM events WHERE seq > ?{bound} ORDER BY seq LIMIT {int(batch)}",
                              (after_seq,))
            yield from rows
            if len(rows) < batch:
                return
            after_seq = rows[-1][0]

    def checkpoints(self) -> list[CheckpointRow]:
        if self._schema() < TRUST_SCHEMA:
            return []
        return [CheckpointRow._make(r) for r in self._read(
            "SELECT seq, count, root, at, signature FROM checkpoints ORDER BY seq")]

    def add_checkpoint(self, cp: CheckpointRow) -> None:
        self._write("record a checkpoint in", "INSERT OR IGNORE INTO checkpoints (seq, count, root, at, signature) "
                    "VALUES (?, ?, ?, ?, ?)", tuple(cp))

    def load_cursor(self, name: str) -> tuple[int, str] | None:
        rows = self._read("SELECT seq, filter FROM cursors WHERE name = ?", (name,))
        return (rows[0][0], rows[0][1]) if rows else None

    def cursors(self) -> dict[str, tuple[int, int]]:
        high = "coalesce(high, seq)" if self._schema() >= TRUST_SCHEMA else "seq"
        return {name: (seq, top) for name, seq, top in self._read(f"SELECT name, seq, {high} FROM cursors")}

    def save_cursor(self, name: str, seq: int, filter_text: str, updated: str) -> None:
        self._write("save a cursor in",
                    "INSERT INTO cursors (name, seq, filter, updated, high) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, filter = excluded.filter, "
                    "updated = excluded.updated, high = max(coalesce(high, 0), excluded.seq)",
                    (name, seq, filter_text, updated, seq))

    def _write(self, doing: str, sql: str, params: Sequence[Any]) -> None:
        """One statement, committed at once (autocommit)."""
        with self._lock:
            self._writable()
            self._wrote = True
            try:
                self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise write_error(exc, self.path, self.timeout, doing) from exc
