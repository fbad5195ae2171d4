"""``verify`` and ``runs`` on a big ledger (1,000,000 events by default), on SQLite and on PostgreSQL.

Usage:  python benchmarks/million.py [--events 1000000] [--repeat 3] [--url postgresql://...]
                                     [--backends sqlite,postgres]

The server: --url, else $STATELEDGER_TEST_PG (the PostgreSQL half is left out,
saying so, when neither is given). Its ledger lies in a schema of its own,
dropped afterwards. Each ledger is filled in bulk with the rows of
``benchmarks/trust.py`` (runs of 100 events, hashes chained exactly as an
append chains them, the runs summary alongside): SQLite through ``executemany``
in one transaction, PostgreSQL through ``COPY`` (then the seq sequence moved
past the last row and the tables analysed, as autovacuum would). The first
``verify()`` proves the fill. Prints medians of --repeat runs of:
  * ``verify()`` of the whole ledger (events/s);
  * ``runs(limit=20)`` (the newest 20) and ``runs()`` (every run's record);
  * ``verify(RUN_ID)`` of the oldest and of the newest run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator

from trust import RUN_EVENTS, fill, run_rows, timed

from eventstore import EventStore
from eventstore.mapper import COLUMNS

WHEN = "2026-01-01T00:00:00.000000+00:00"


def fill_postgres(url: str, schema: str, events: int) -> None:
    """Add ``events`` events (whole runs, seqs from 1) to the empty ledger in ``schema`` through COPY."""
    import psycopg

    s = f'"{schema}"'
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        runs = []
        with cur.copy(f"COPY {s}.events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for start in range(1, events + 1, RUN_EVENTS):
                rows = run_rows(f"run-{start:08d}", start, WHEN)
                for r in rows:
                    copy.write_row(r)
                runs.append((rows[0][2], "bench", "Success", WHEN, WHEN, RUN_EVENTS, start, rows[-1][0],
                             rows[-1][COLUMNS.index("hash")]))
        with cur.copy(f"COPY {s}.runs (run_id, flow, state, started, ended, events, first_seq, last_seq, "
                      "last_hash) FROM STDIN") as copy:
            for r in runs:
                copy.write_row(r)
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{s}.events', 'seq'), %s)", (events,))
        conn.commit()
        conn.autocommit = True
        cur.execute(f"ANALYZE {s}.events")
        cur.execute(f"ANALYZE {s}.runs")


@contextlib.contextmanager
def ledger(kind: str, url: str | None, events: int) -> Iterator[tuple[str, float]]:
    """Yield (the ledger's target, seconds to fill it) for a ledger of ``events`` events; cleaned after."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ledger.db")
            EventStore(path).close()  # the schema
            t0 = time.perf_counter()
            fill(path, events)
            yield path, time.perf_counter() - t0
            return
    import psycopg

    assert url
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    target = url + ("&" if "?" in url else "?") + f"schema={schema}"
    EventStore(target).close()  # the schema
    try:
        t0 = time.perf_counter()
        fill_postgres(url, schema, events)
        yield target, time.perf_counter() - t0
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def measure(kind: str, url: str | None, events: int, repeat: int) -> None:
    with ledger(kind, url, events) as (target, fill_seconds):
        print(f"{kind}: {events:,} events in {events // RUN_EVENTS:,} runs, filled in {fill_seconds:.1f} s")
        with EventStore(target) as store:
            t, report = timed(store.verify, repeat)
            assert report.ok and report.checked == events, report
            print(f"  verify, whole ledger   {events / t:12,.0f} events/s ({t:.2f} s)")
            t, newest = timed(lambda: store.runs(limit=20), max(repeat, 5))
            assert len(newest) == min(20, events // RUN_EVENTS)
            print(f"  runs(limit=20)         {t * 1000:12.2f} ms")
            t, every = timed(store.runs, repeat)
            assert len(every) == events // RUN_EVENTS and all(r.state == "Success" for r in every)
            print(f"  {f'runs() ({len(every):,} runs)':22} {t * 1000:12.1f} ms")
            oldest = "run-00000001"
            t_old, r_old = timed(lambda: store.verify(oldest), max(repeat, 5))
            t_new, r_new = timed(lambda: store.verify(newest[0].run_id), max(repeat, 5))
            assert r_old.ok and r_new.ok and r_old.checked == r_new.checked == RUN_EVENTS, (r_old, r_new)
            print(f"  verify RUN_ID          {t_old * 1000:12.2f} ms oldest run, {t_new * 1000:.2f} ms newest run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("STATELEDGER_TEST_PG"))
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    n = max(RUN_EVENTS, args.events - args.events % RUN_EVENTS)
    print(f"medians of {args.repeat} runs")
    for kind in args.backends.split(","):
        if kind == "postgres" and not args.url:
            print("postgres: left out -- give --url postgresql://... or set STATELEDGER_TEST_PG")
            continue
        if kind not in ("sqlite", "postgres"):
            parser.error(f"--backends: unknown backend {kind!r}; use sqlite and/or postgres")
        measure(kind, args.url, n, args.repeat)


if __name__ == "__main__":
    main()
