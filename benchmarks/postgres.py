"""The PostgreSQL ledger against SQLite: per-task cost of a chain, and concurrent writer processes.

Usage:  python benchmarks/postgres.py [--url postgresql://...] [--tasks 1000] [--repeat 3] [--writers 8]

The server: --url, else $STATELEDGER_TEST_PG. Each run writes into a schema of
its own, dropped afterwards. Prints medians of --repeat runs:
  * per-task cost of a --tasks chain of no-op tasks (one handler each) on an
    in-memory list (the engine alone), SQLite (durability normal, full) and
    PostgreSQL (normal: the server's synchronous_commit, by default on);
  * events/s of --writers processes each running a chain into one ledger.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from chain import build
from eventstore import EventStore
from statemachine.testing import ListLedger

HERE = os.path.dirname(os.path.abspath(__file__))
WRITER = """
import sys
sys.path.insert(0, sys.argv[3])
from chain import build
from eventstore import EventStore
with EventStore(sys.argv[1]) as store:
    build(int(sys.argv[2])).run(store=store)
"""


def schema_url(url: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    return url + ("&" if "?" in url else "?") + f"schema={schema}", schema


def drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def per_task(kind: str, url: str, tasks: int) -> float:
    """Seconds per task of one run of the chain on ``kind``'s ledger."""
    flow = build(tasks)
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if kind == "list":
            store = ListLedger()
        elif kind.startswith("sqlite"):
            store = EventStore(os.path.join(tmp, "l.db"), durability=kind.split("-")[1])
        else:
            target, schema = schema_url(url)
            store = EventStore(target)
        try:
            started = time.perf_counter()
            state = flow.run(store=store)
            elapsed = time.perf_counter() - started
            assert state.is_successful(), state
        finally:
            if hasattr(store, "close"):
                store.close()
            if schema:
                drop(url, schema)
    return elapsed / tasks


def writers(kind: str, url: str, n: int, tasks: int) -> float:
    """Events per second of ``n`` processes each running a ``tasks`` chain into one ledger."""
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if kind == "sqlite":
            target = os.path.join(tmp, "l.db")
        else:
            target, schema = schema_url(url)
        EventStore(target).close()  # create it once, before the writers race
        try:
            started = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, "-c", WRITER, target, str(tasks), HERE]) for _ in range(n)]
            assert all(p.wait() == 0 for p in procs)
            elapsed = time.perf_counter() - started
            with EventStore(target) as store:
                count = store.max_seq()
                assert store.verify().ok
        finally:
            if schema:
                drop(url, schema)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("STATELEDGER_TEST_PG"))
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url postgresql://... or set STATELEDGER_TEST_PG")
    print(f"{args.tasks}-task chain, median of {args.repeat} (per task):")
    results = {}
    for kind in ("list", "sqlite-normal", "sqlite-full", "postgres"):
        results[kind] = statistics.median(per_task(kind, args.url, args.tasks) for _ in range(args.repeat))
        extra = "" if kind == "list" else f"   ledger: {(results[kind] - results['list']) * 1e6:8.1f} us"
        print(f"  {kind:14} {results[kind] * 1e6:8.1f} us{extra}")
    print(f"  postgres / sqlite-normal: {results['postgres'] / results['sqlite-normal']:.1f}x")
    if args.writers:
        tasks = max(1, args.tasks // args.writers)
        print(f"{args.writers} writer processes x {tasks}-task chains into one ledger:")
        for kind in ("sqlite", "postgres"):
            print(f"  {kind:14} {writers(kind, args.url, args.writers, tasks):8.0f} events/s")


if __name__ == "__main__":
    main()
