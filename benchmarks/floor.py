"""How close the write path is to SQLite's floor, and how fast the packages start.

Usage:  python benchmarks/floor.py [--tasks 10000] [--repeat 5] [--starts 7]

Prints medians of several runs, all measured by this script in the same run:

* per-task cost of ``flow.run()`` on a chain of no-op tasks (one state handler
  each) with the file ledger (WAL, ``synchronous=NORMAL``), with
  ``EventStore(":memory:")`` and with ``statemachine.testing.ListLedger``
  (the engine alone, nothing stored);
* the bare-SQLite floor: the same rows the file ledger stored, inserted into a
  table of the same shape by a plain loop of prepared ``INSERT`` statements in
  autocommit mode (two INSERTs and two WAL commits per task, ``synchronous=NORMAL``);
* SQLite's own part of an append to a ledger: the same rows, one autocommit
  INSERT each, into a new ledger file (its schema: the ``run_id`` index, the
  trigger keeping the runs summary, its page size), as the file ledger's
  common case does, less everything Python does around it;
* the ratio file ledger / floor (target: <= 1.5), of wall-clock times and
  of this process's CPU times (a machine shared with other work stretches
  wall-clock times, CPU times much less);
* the import time of ``statemachine``, ``eventstore`` and ``subscribers``
  (measured inside a fresh interpreter, so interpreter start-up is left out;
  target: <= 80 ms), and the heavy modules that import loads;
* the wall time of ``stateledger --help`` (a fresh interpreter, start-up included),
  beside that of ``python -c pass``.

Runs are interleaved (floor, file, memory, list, floor, ...) so a busy machine
slows each alike.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from chain import build
from eventstore import EventStore
from statemachine.testing import ListLedger

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYCACHE = tempfile.mkdtemp(prefix="stateledger-floor-pyc-")
atexit.register(shutil.rmtree, PYCACHE, True)
HEAVY = ("sqlite3", "sqlite_utils", "click", "blinker", "transitions", "psycopg", "dask", "distributed",
         "requests", "cryptography", "apprise", "urllib.request", "http.client", "email", "socket", "json",
         "hashlib", "logging", "inspect", "asyncio")


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def run_chain(flow, store) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``flow.run(store=store)``."""
    def run() -> None:
        state = flow.run(store=store)
        assert state.is_successful(), state

    return timed(run)


def file_run(flow, folder: str, r: int) -> tuple[tuple[float, float], str]:
    path = os.path.join(folder, f"ledger-{r}.db")
    with EventStore(path) as store:  # opened outside the timing, as a long-lived process would
        return run_chain(flow, store), path


def floor_run(rows: list[tuple], ddl: str, insert: str, folder: str, r: int) -> tuple[float, float]:
    """The same rows, one autocommit INSERT (one WAL commit) each: what SQLite itself costs."""
    conn = sqlite3.connect(os.path.join(folder, f"floor-{r}.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(ddl)
    return insert_each(conn, rows, insert)


def schema_run(rows: list[tuple], insert: str, folder: str, r: int) -> tuple[float, float]:
    """The same rows, one autocommit INSERT each, into a new ledger: SQLite's part of an append."""
    path = os.path.join(folder, f"schema-{r}.db")
    EventStore(path).close()  # the ledger's schema, pages and WAL
    return insert_each(sqlite3.connect(path, isolation_level=None), rows, insert)


def insert_each(conn: sqlite3.Connection, rows: list[tuple], insert: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one autocommit ``insert`` per row (``synchronous=NORMAL``); closes ``conn``."""
    conn.execute("PRAGMA synchronous = NORMAL")
    execute = conn.cursor().execute

    def run() -> None:
        for row in rows:
            execute(insert, row)

    try:
        return timed(run)
    finally:
        conn.close()


def stored_rows(path: str) -> tuple[list[tuple], str, str]:
    """The rows a file ledger holds, its events table's DDL and an INSERT for it."""
    conn = sqlite3.connect(path)
    ddl = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone()[0]
    cur = conn.execute("SELECT * FROM events ORDER BY seq")
    columns = [d[0] for d in cur.description]
    rows = cur.fetchall()
    conn.close()
    insert = f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    return rows, ddl, insert


def fresh_env() -> dict[str, str]:
    """The environment of a fresh interpreter: the project importable, bytecode cached.

    Bytecode goes to a folder of its own (``PYTHONPYCACHEPREFIX``) and is
    written by a first, untimed start, as an installed package has its ``.pyc``
    files: ``PYTHONDONTWRITEBYTECODE`` would time the compiler instead.
    """
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONPYCACHEPREFIX=PYCACHE)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def in_fresh_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], env=fresh_env(), check=True, capture_output=True,
                          text=True).stdout


def import_ms(code: str) -> tuple[float, list[str]]:
    """Milliseconds ``code`` (imports) takes in a fresh interpreter, and which heavy modules it loaded."""
    out = in_fresh_python(
        "import sys, time\nt0 = time.perf_counter()\n"
        f"{code}\n"
        "print((time.perf_counter() - t0) * 1000)\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    ms, loaded = out.splitlines()
    return float(ms), loaded.split()


def wall_ms(args: list[str]) -> float:
    env = fresh_env()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--starts", type=int, default=7, help="fresh interpreters per start-up figure")
    parser.add_argument("--part", choices=("all", "write", "start"), default="all")
    args = parser.parse_args()
    if args.part != "start":
        write_path(args.tasks, args.repeat)
    if args.part != "write":
        start_up(args.starts)


def write_path(n: int, rep: int) -> None:
    flow = build(n)

    kinds = ("floor", "schema", "file", "memory", "list")
    wall: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as folder:
        _, sample = file_run(flow, folder, -1)  # warm-up, and the rows the floor inserts
        rows, ddl, insert = stored_rows(sample)
        for r in range(rep):
            runs = {
                "floor": floor_run(rows, ddl, insert, folder, r),
                "schema": schema_run(rows, insert, folder, r),
                "file": file_run(flow, folder, r)[0],
                "memory": run_chain(flow, EventStore(":memory:")),
                "list": run_chain(flow, ListLedger()),
            }
            for kind, (w, c) in runs.items():
                wall[kind].append(w / n * 1e6)
                cpu[kind].append(c / n * 1e6)

    def median(values: dict[str, list[float]], kind: str) -> float:
        return statistics.median(values[kind])

    def ratio(values: dict[str, list[float]]) -> float:  # the median of each round's own ratio
        return statistics.median(f / b for f, b in zip(values["file"], values["floor"]))

    print(f"write path: chain of {n:,} no-op tasks (1 state handler each), {len(rows):,} events, "
          f"median of {rep} interleaved runs, SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")
    print("                                                                    wall      CPU  us/task")
    for kind, label in (("floor", "floor (bare SQLite: 2 prepared INSERTs + 2 WAL commits per task)"),
                        ("schema", "  the same INSERTs into a ledger's schema (SQLite's part of ours)"),
                        ("file", "file ledger (WAL, synchronous=NORMAL)"),
                        ("memory", ":memory: ledger"), ("list", "engine alone (ListLedger, nothing stored)")):
        print(f"  {label:<64} {median(wall, kind):6.1f}   {median(cpu, kind):6.1f}")
    print(f"  ratio file ledger / floor: {ratio(wall):.2f}x wall, {ratio(cpu):.2f}x CPU  (target <= 1.5x)")


def start_up(starts: int) -> None:
    """Each figure in fresh interpreters, the figures interleaved round by round."""
    print(f"start-up: median (min) of {starts} fresh interpreters, bytecode cached, interleaved")
    with tempfile.TemporaryDirectory() as folder:
        ledger = os.path.join(folder, "ledger.db")
        EventStore(ledger).close()
        three = "import statemachine, eventstore, subscribers"
        imports = {
            "import statemachine": "import statemachine",
            three: three,
            "import + open a file ledger": f"{three}; eventstore.EventStore({ledger!r}).close()",
        }
        walls = {"stateledger --help (wall)": ["-m", "eventstore.cli", "--help"], "python -c pass (wall)": ["-c", "pass"]}
        loaded = {label: import_ms(code)[1] for label, code in imports.items()}  # untimed: writes the bytecode
        wall_ms(walls["stateledger --help (wall)"])
        times: dict[str, list[float]] = {label: [] for label in (*imports, *walls)}
        for _ in range(starts):
            for label, code in imports.items():
                times[label].append(import_ms(code)[0])
            for label, argv in walls.items():
                times[label].append(wall_ms(argv))
    for label, values in times.items():
        print(f"  {label:<44} {statistics.median(values):6.1f} ms ({min(values):.1f})"
              + ("  (target <= 80 ms)" if label == three else ""))
        if label in loaded:
            print(f"    heavy modules loaded: {', '.join(loaded[label]) or 'none'}")


if __name__ == "__main__":
    main()
