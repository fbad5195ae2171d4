"""Helpers for the trust tests: an attacker who knows the hash algorithm, a schema-1 ledger, the CLI.

``rechain`` is the best an attacker with write access can do: after any edit,
recompute every run's chain with the documented algorithm and rebuild the
runs table from the events, so the ledger is consistent again. Only a
checkpoint kept elsewhere catches that.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eventstore.mapper import COLUMNS, CONTENT_SLICE, FINISHED_TYPES, chain_hash
from ledger_fixtures import raw

ROOT = Path(__file__).resolve().parent.parent
_RUN, _TS, _KIND, _FLOW, _STATE = (COLUMNS.index(c) for c in ("run_id", "timestamp", "kind", "flow", "state"))


def rechain(path: Path) -> None:
    """Recompute every hash (rule 2) and the whole runs table from the events, in one transaction."""
    conn = raw(path)
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY seq").fetchall()
    last: dict[str, str] = {}
    runs: dict[str, list] = {}
    for r in rows:
        seq, rid = r[0], r[_RUN]
        prev = last.get(rid)
        h = chain_hash(prev, r[CONTENT_SLICE], seq)
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, seq))
        last[rid] = h
        run = runs.setdefault(rid, [r[_FLOW], "Pending", r[_TS], None, 0, seq, seq, h])
        run[4] += 1
        run[6], run[7] = seq, h
        if r[_KIND] == "flow":
            run[1] = r[_STATE]
            if r[_STATE] in FINISHED_TYPES:
                run[3] = r[_TS]
    conn.execute("DELETE FROM runs")
    for rid, run in runs.items():
        conn.execute("INSERT INTO runs (run_id, flow, state, started, ended, events, first_seq, last_seq, last_hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (rid, *run))
    conn.execute("COMMIT")
    conn.close()


def downgrade_to_schema_1(path: Path) -> None:
    """Make a closed ledger what schema 1 wrote: rule-1 hashes, no trust tables, user_version 1."""
    conn = raw(path)
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY seq").fetchall()
    last: dict[str, str] = {}
    for r in rows:
        prev = last.get(r[_RUN])
        last[r[_RUN]] = h = chain_hash(prev, r[CONTENT_SLICE])
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, r[0]))
    for rid, h in last.items():
        conn.execute("UPDATE runs SET last_hash = ? WHERE run_id = ?", (h, rid))
    for table in ("meta", "hash_rules", "checkpoints"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DROP INDEX events_run")
    conn.execute("ALTER TABLE cursors DROP COLUMN high")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    conn.execute("VACUUM")
    conn.close()


def sl(*args: str, db: Path | None, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``stateledger ARGS --db DB`` (no ``--db`` when ``db`` is None) in a real process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    extra = ["--db", str(db)] if db is not None else []
    return subprocess.run([sys.executable, "-m", "eventstore.cli", *args, *extra], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=str(cwd or (db.parent if db else ROOT)))
