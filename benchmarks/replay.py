"""Replay, audit and CLI speed on a real ledger file; prints medians of several runs.

    python benchmarks/replay.py                     # 100,000-event run, 10,000 runs
    python benchmarks/replay.py --events 10000 --runs 1000 --repeat 3   # a quick look

Measures, on one SQLite ledger in a temporary folder:
  * ``state_at`` of a 100,000-event run (at its middle seq),
  * ``replay`` of that run into a no-op listener (target: >= 200,000 events/s),
  * ``export`` of that run as JSON lines and as CSV,
  * ``stateledger runs`` as a subprocess on a ledger holding 10,000 runs
    (target: < 0.5 s, start-up of the interpreter included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

from eventstore import EventStore
from statemachine import Flow, Task


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def big_run(store: EventStore, events: int) -> str:
    """One flow run of ``events`` events: (events - 2) / 2 independent no-op tasks."""
    flow = Flow("big", tasks=[Task(name=f"t{i}") for i in range((events - 2) // 2)])
    state = flow.run(store=store, run_id="big-1")
    return state.context["run_id"]


def many_runs(store: EventStore, runs: int) -> None:
    flow = Flow("small", tasks=[Task(name="only")])
    for i in range(runs):
        flow.run(store=store, run_id=f"small-{i:05d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="stateledger-bench-")
    big_db, runs_db = os.path.join(folder, "big.db"), os.path.join(folder, "runs.db")

    store = EventStore(big_db)
    start = time.perf_counter()
    run_id = big_run(store, args.events)
    n = len(store.history(run_id))
    print(f"setup: one run of {n:,} events in {time.perf_counter() - start:.1f}s ({big_db})")

    middle = n // 2
    seq = store.history(run_id)[middle].seq
    t_state_at = median_seconds(lambda: store.state_at(run_id, seq), args.repeat)
    t_replay = median_seconds(lambda: store.replay(run_id, lambda event: None), args.repeat)
    jsonl, csv = os.path.join(folder, "big.jsonl"), os.path.join(folder, "big.csv")
    t_jsonl = median_seconds(lambda: store.export(jsonl, format="jsonl", run_id=run_id), args.repeat)
    t_csv = median_seconds(lambda: store.export(csv, format="csv", run_id=run_id), args.repeat)
    if hasattr(store, "close"):
        store.close()

    store = EventStore(runs_db)
    start = time.perf_counter()
    many_runs(store, args.runs)
    if hasattr(store, "close"):
        store.close()
    print(f"setup: {args.runs:,} runs in {time.perf_counter() - start:.1f}s ({runs_db})")

    def cli(*extra: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "eventstore.cli", "runs", "--db", runs_db, *extra],
            check=True, stdout=subprocess.DEVNULL,
        )

    t_runs = median_seconds(cli, args.repeat)
    t_runs_limit = median_seconds(lambda: cli("--limit", "20"), args.repeat)
    t_graph = median_seconds(
        lambda: subprocess.run([sys.executable, "-m", "eventstore.cli", "graph"], check=True, stdout=subprocess.DEVNULL),
        args.repeat,
    )

    print(f"\nmedians of {args.repeat} runs")
    print(f"  state_at (seq {seq:,} of {n:,})       {t_state_at * 1000:9.1f} ms")
    print(f"  replay into a no-op listener     {t_replay * 1000:9.1f} ms  {n / t_replay:12,.0f} events/s  (target >= 200,000)")
    print(f"  export jsonl                     {t_jsonl * 1000:9.1f} ms  {n / t_jsonl:12,.0f} events/s")
    print(f"  export csv                       {t_csv * 1000:9.1f} ms  {n / t_csv:12,.0f} events/s")
    print(f"  `stateledger runs` ({args.runs:,} runs)   {t_runs * 1000:9.1f} ms  (target < 500 ms, subprocess)")
    print(f"  `stateledger runs --limit 20`    {t_runs_limit * 1000:9.1f} ms")
    print(f"  `stateledger graph` (start-up)   {t_graph * 1000:9.1f} ms")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
