"""Ledger benchmarks: raw appends, engine overhead on the file ledger, rebuild, verify.

Usage:  python benchmarks/ledger.py [--sizes 10000,100000] [--repeat 3] [--quick]

Prints medians of several runs:
  * raw append throughput to a SQLite ledger, durability "normal" and "full";
  * the engine's per-task overhead with the default file ledger (STATELEDGER_DB,
    flow.run() without a store) for chains of no-op tasks with one handler each;
  * the time to rebuild() a 100,000-event run;
  * verify() throughput.
Targets (issue 3): <= 100 us/task (normal), linear to 100k tasks, rebuild of
100,000 events < 1 s, verify >= 200,000 events/s.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time

from eventstore import Event, EventStore
from chain import build
from statemachine import wiring
from statemachine.events import current_actor
from statemachine.states import Pending, Running, Success, utcnow


def events(n: int, run_id: str) -> list[Event]:
    """n task events alternating Pending -> Running and Running -> Success, as the engine makes them."""
    out = []
    actor = current_actor()
    for i in range(n):
        key = f"t-{i // 2 + 1}"
        old, new = (Pending(), Running("Starting task run.")) if i % 2 == 0 else (
            Running("Starting task run."), Success("Task run succeeded.", result=i))
        out.append(Event(run_id, utcnow(), "task", "t", key, 1, old, new, actor=actor,
                         event_id=os.urandom(16).hex(), flow="bench"))
    return out


def bench_append(durability: str, n: int, repeat: int) -> list[float]:
    times = []
    for r in range(repeat):
        with tempfile.TemporaryDirectory() as d, EventStore(os.path.join(d, "l.db"), durability=durability) as s:
            batch = events(n, f"raw-{r}")
            gc.collect()
            t0 = time.perf_counter()
            for e in batch:
                s.append(e)
            times.append(time.perf_counter() - t0)
    return times


def bench_engine(n: int, repeat: int) -> list[float]:
    flow = build(n)
    times = []
    for r in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            os.environ["STATELEDGER_DB"] = os.path.join(d, "ledger.db")
            wiring.default_ledger()  # open it outside the timing, as a long-lived process would
            gc.collect()
            t0 = time.perf_counter()
            state = flow.run(run_id=f"chain-{r}")
            times.append(time.perf_counter() - t0)
            assert state.is_successful(), state
            wiring.default_ledger().close()
            wiring._default_ledger = None
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    n_raw, n_full, n_rebuild = (20000, 2000, 100000)
    if args.quick:
        sizes, n_raw, n_full, n_rebuild = [1000, 5000], 5000, 200, 20000
    rep = args.repeat

    print(f"ledger benchmarks, medians of {rep} runs (SQLite {__import__('sqlite3').sqlite_version})")
    for durability, n in (("normal", n_raw), ("full", n_full)):
        t = statistics.median(bench_append(durability, n, rep))
        print(f"  raw append, durability={durability:<6}: {n / t:9,.0f} events/s  ({t / n * 1e6:6.1f} us/event, {n} events)")

    per_task = {}
    for n in sizes:
        t = statistics.median(bench_engine(n, rep))
        per_task[n] = t / n * 1e6
        print(f"  engine + default file ledger, {n:>7} tasks (1 handler each): {per_task[n]:6.1f} us/task "
              f"(run {t:.2f} s)")
    if len(sizes) > 1:
        print(f"  growth {sizes[0]} -> {sizes[-1]} tasks: {per_task[sizes[-1]] / per_task[sizes[0]]:.2f}x per task "
              "(1.00 = linear)")

    with tempfile.TemporaryDirectory() as d, EventStore(os.path.join(d, "l.db")) as s:
        flow = build(n_rebuild // 2)
        flow.run(store=s, run_id="big")
        n_events = len(s.history("big"))
        times = []
        for _ in range(max(rep, 3)):
            gc.collect()
            t0 = time.perf_counter()
            view = s.rebuild("big")
            times.append(time.perf_counter() - t0)
        assert view.state.is_successful()
        print(f"  rebuild of a {n_events:,}-event run: {statistics.median(times):.3f} s")
        times = []
        for _ in range(max(rep, 3)):
            t0 = time.perf_counter()
            report = s.verify()
            times.append(time.perf_counter() - t0)
        assert report.ok
        t = statistics.median(times)
        print(f"  verify: {report.checked / t:9,.0f} events/s ({report.checked:,} events in {t:.3f} s)")


if __name__ == "__main__":
    main()
