"""Trust benchmarks: verify throughput, the cost of a checkpoint, ``verify RUN_ID`` on a big ledger.

Usage:  python benchmarks/trust.py [--events 1000000] [--repeat 3] [--quick]

Prints medians of several runs:
  * whole-ledger ``verify()`` throughput (every hash, chain, the runs summary
    rebuilt) -- target >= 200,000 events/s; also per CPU second, which a
    machine busy with other work changes less; and with a checkpoint at the
    end (the root is folded over every event too);
  * the cost of ``checkpoint()`` after 10,000 new events (incremental: it
    folds only the events since the previous checkpoint);
  * ``verify(RUN_ID)`` of the oldest and of the newest run of the ledger --
    target: within 2x of each other (time independent of the ledger's size).

The ledger is filled through a bulk path (one transaction, ``executemany``)
with rows exactly as ``SQLiteRecorder.append`` writes them: hashes chained by
``mapper.chain_hash`` over seq and content, the runs summary kept by the
ledger's trigger as for an append; the first ``verify()`` proves it.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import tempfile
import time

from eventstore import EventStore
from eventstore.mapper import COLUMNS, ContentRow, chain_hash, stored_values

RUN_EVENTS = 100  # events per run: a flow event, 49 tasks x 2, a flow event
PENDING, RUNNING = '{"type":"Pending"}', '{"type":"Running","message":"Starting task run."}'
SUCCESS = '{"type":"Success","message":"Task run succeeded.","result":1}'


def run_rows(run_id: str, first_seq: int, when: str) -> list[tuple]:
    """One run's stored rows, chained as an append would chain them."""
    out, prev = [], None
    for i in range(RUN_EVENTS):
        seq = first_seq + i
        if i in (0, RUN_EVENTS - 1):
            kind, key, old, new, state = "flow", "bench", (PENDING if i == 0 else RUNNING), (
                RUNNING if i == 0 else SUCCESS), ("Running" if i == 0 else "Success")
        else:
            kind, key = "task", f"t-{(i + 1) // 2}"
            old, new, state = (PENDING, RUNNING, "Running") if i % 2 else (RUNNING, SUCCESS, "Success")
        row = ContentRow(f"{run_id}-{i}", run_id, when, kind, key.split("-")[0], key, "bench", 1, state, old, new,
                         None, "[]", "bench@host:1", None)
        h = chain_hash(prev, row, seq)
        out.append((seq, *stored_values(row, prev, h)))  # COLUMNS order: reason last
        prev = h
    return out


def fill(path: str, events: int, first_seq: int = 1) -> None:
    """Add ``events`` events (whole runs) to the ledger at ``path`` in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    insert = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    when = "2026-01-01T00:00:00.000000+00:00"
    for start in range(first_seq, first_seq + events, RUN_EVENTS):
        rows = run_rows(f"run-{start:08d}", start, when)
        conn.executemany(insert, rows)  # the ledger's trigger keeps the runs summary (schema 3)
    conn.execute("COMMIT")
    conn.close()


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 events, for a smoke run")
    args = parser.parse_args()
    n = 100_000 if args.quick else args.events
    n -= n % RUN_EVENTS
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ledger.db")
        EventStore(path).close()  # the schema
        t0 = time.perf_counter()
        fill(path, n)
        print(f"trust benchmarks, medians of {args.repeat} runs (SQLite {sqlite3.sqlite_version}); "
              f"{n:,} events in {n // RUN_EVENTS:,} runs written in {time.perf_counter() - t0:.1f} s")
        with EventStore(path) as store:
            cpu0 = time.process_time()
            t, report = timed(store.verify, args.repeat)
            cpu = (time.process_time() - cpu0) / args.repeat
            assert report.ok and report.checked == n, report
            print(f"  verify, whole ledger: {n / t:10,.0f} events/s ({n:,} events in {t:.2f} s; "
                  f"{n / cpu:,.0f} events per CPU second)")

            t0 = time.perf_counter()
            first = store.checkpoint()
            print(f"  first checkpoint (folds all {first.count:,} events): {time.perf_counter() - t0:.3f} s")
            cpu0 = time.process_time()
            t, report = timed(lambda: store.verify(checkpoints=[first]), args.repeat)
            cpu = (time.process_time() - cpu0) / args.repeat
            assert report.ok and report.checkpoints == 1, report
            print(f"  verify with a checkpoint at the end (the root folded over every event too): {n / t:10,.0f} "
                  f"events/s ({n / cpu:,.0f} per CPU second)")
            costs = []
            for r in range(args.repeat):
                fill(path, 10_000, store.max_seq() + 1)
                gc.collect()
                t0 = time.perf_counter()
                cp = store.checkpoint()
                costs.append(time.perf_counter() - t0)
                assert cp.count == n + 10_000 * (r + 1)
            print(f"  checkpoint after 10,000 new events: {statistics.median(costs) * 1000:.1f} ms")
            assert store.verify(checkpoints=[first, cp]).ok

            oldest, newest = "run-00000001", store.runs(limit=1)[0].run_id
            t_old, r_old = timed(lambda: store.verify(oldest), max(args.repeat, 5))
            t_new, r_new = timed(lambda: store.verify(newest), max(args.repeat, 5))
            assert r_old.ok and r_new.ok and r_old.checked == r_new.checked == RUN_EVENTS
            total = store.max_seq()
            print(f"  verify RUN_ID on a {total:,}-event ledger: oldest run {t_old * 1000:.2f} ms, "
                  f"newest run {t_new * 1000:.2f} ms (ratio {max(t_old, t_new) / min(t_old, t_new):.2f}x)")


if __name__ == "__main__":
    main()
