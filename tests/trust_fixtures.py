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

from eventstore.mapper import COLUMNS, CONTENT_SLICE, FINISHED_TYPES, chain_hash, hashed_content, stored_row
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
        h = chain_hash(prev, hashed_content(stored_row(r)), seq)
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, seq))
        last[rid] = h
        run = runs.setdefault(rid, [r[_FLOW], "Pending", r[_TS], None, 0, seq, seq, h])
        run[4] += 1
        run[6], run[7] = seq, h
        if r[_KIND] == "flow":
            run[1] = r[_STATE]  # as the recorders keep it: a restart clears ended, the next finish sets it
            run[3] = (run[3] or r[_TS]) if r[_STATE] in FINISHED_TYPES else None
    conn.execute("DELETE FROM runs")
    for rid, run in runs.items():
        conn.execute("INSERT INTO runs (run_id, flow, state, started, ended, events, first_seq, last_seq, last_hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (rid, *run))
    conn.execute("COMMIT")
    conn.close()


def downgrade_to_schema_1(path: Path) -> None:
    """Make a closed ledger what schema 1 wrote: rule-1 hashes, no trust tables, no reason column,
    user_version 1 (its events must have no reason: schema 1 had none)."""
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
    conn.execute("DROP TRIGGER events_runs")
    conn.execute("ALTER TABLE cursors DROP COLUMN high")
    conn.execute("ALTER TABLE events DROP COLUMN reason")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    conn.execute("VACUUM")
    conn.close()


def downgrade_to_schema_2(path: Path) -> None:
    """Make a closed ledger what schema 2 wrote: the same rows, no trigger keeping ``runs``, user_version 2."""
    conn = raw(path)
    conn.execute("DROP TRIGGER events_runs")
    conn.execute("PRAGMA user_version = 2")
    conn.close()


def downgrade_postgres_to_schema_1(pg_url: str) -> None:
    """Make the PostgreSQL ledger at ``pg_url`` what schema 1 wrote: rule-1 hashes, no trust tables, no
    reason column, schema 1's one-call ``append_event`` function, schema_version 1."""
    import psycopg

    from eventstore.postgres_schema import lock_keys

    schema = pg_url.rsplit("schema=", 1)[1]
    s = '"' + schema + '"'
    v1 = [c for c in COLUMNS if c != "reason"]
    params = ", ".join(f"p_{c} {'integer' if c == 'attempt' else 'text'}" for c in v1[1:])
    k1, k2 = lock_keys(schema)
    with psycopg.connect(pg_url.split("?schema=")[0], autocommit=True) as conn, conn.transaction():
        last: dict = {}
        for r in conn.execute(f"SELECT {', '.join(v1)} FROM {s}.events ORDER BY seq").fetchall():
            prev = last.get(r[_RUN])
            last[r[_RUN]] = h = chain_hash(prev, r[CONTENT_SLICE])  # no seq in the hash
            conn.execute(f"UPDATE {s}.events SET prev_hash = %s, hash = %s WHERE seq = %s", (prev, h, r[0]))
        for rid, h in last.items():
            conn.execute(f"UPDATE {s}.runs SET last_hash = %s WHERE run_id = %s", (h, rid))
        for sql in ("DROP TABLE {s}.hash_rules", "DROP TABLE {s}.checkpoints",
                    "ALTER TABLE {s}.cursors DROP COLUMN high", "ALTER TABLE {s}.events DROP COLUMN reason",
                    "DROP FUNCTION {s}.append_begin", "DROP FUNCTION {s}.append_finish",
                    "DELETE FROM {s}.meta WHERE key = 'hash_v2_from'",
                    "UPDATE {s}.meta SET value = '1' WHERE key = 'schema_version'"):
            conn.execute(sql.format(s=s))
        conn.execute(f"""CREATE FUNCTION {s}.append_event({params}, p_flow_state text, p_ended text)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE v_seq bigint;
BEGIN
  IF p_prev_hash IS NULL THEN
    INSERT INTO {s}.runs (run_id, flow, state, started, ended, events, first_seq, last_seq, last_hash)
    VALUES (p_run_id, p_flow, 'Pending', p_timestamp, NULL, 0, 0, 0, '')
    ON CONFLICT (run_id) DO NOTHING;
  ELSE
    PERFORM 1 FROM {s}.runs WHERE run_id = p_run_id AND last_hash = p_prev_hash FOR UPDATE;
  END IF;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock({k1}, {k2});
  INSERT INTO {s}.events ({', '.join(v1[1:])}) VALUES ({', '.join(f"p_{c}" for c in v1[1:])}) RETURNING seq INTO v_seq;
  UPDATE {s}.runs SET events = events + 1, last_seq = v_seq, last_hash = p_hash,
    first_seq = CASE WHEN first_seq = 0 THEN v_seq ELSE first_seq END,
    state = coalesce(p_flow_state, state), ended = coalesce(p_ended, ended)
  WHERE run_id = p_run_id;
  RETURN v_seq;
END
$fn$""")


def sl(*args: str, db: Path | None, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``stateledger ARGS --db DB`` (no ``--db`` when ``db`` is None) in a real process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    extra = ["--db", str(db)] if db is not None else []
    return subprocess.run([sys.executable, "-m", "eventstore.cli", *args, *extra], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=str(cwd or (db.parent if db else ROOT)))
