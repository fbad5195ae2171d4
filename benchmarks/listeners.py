"""Listener costs: the engine's per-task overhead with 0, 1 and 10 subscribed
listeners, and durable catch-up throughput with a no-op listener.

Usage:  python benchmarks/listeners.py [--tasks 10000] [--repeat 7] [--events 100000]
                                        [--ledger list|memory]

Engine: a chain of ``--tasks`` no-op tasks (no state handlers), run with
``subscribe(lambda event: None)`` connected 0, 1 or 10 times; the runs are
interleaved so machine noise hits every variant alike. Prints median µs per
task and the median cost of one extra listener per transition (a task
commits 2 transitions: Running, Success).

Catch-up: a ledger file holding ``--events`` events (written once, in a
temporary folder); each repeat delivers all of them to a new
``DurableSubscription`` with a no-op listener. Prints median events/s.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time

from chain import build as _build, make_ledger
from statemachine import Flow
from statemachine.states import Failed
from subscribers import DurableSubscription, subscribe


def build(n: int) -> Flow:
    return _build(n, handlers=False)


def run_once(flow: Flow, listeners: int, kind: str) -> float:
    handles = [subscribe(lambda event: None) for _ in range(listeners)]
    ledger = make_ledger(kind)
    try:
        gc.collect()
        t0 = time.perf_counter()
        state = flow.run(store=ledger)
        elapsed = time.perf_counter() - t0
    finally:
        for h in handles:
            h.disconnect()
        close = getattr(ledger, "close", None)
        if close is not None:
            close()
    assert state.is_successful(), state
    return elapsed


def bench_engine(n: int, repeat: int, kind: str) -> None:
    flow = build(n)
    variants = (0, 1, 10)
    times: dict[int, list[float]] = {k: [] for k in variants}
    run_once(flow, 0, kind)  # warm up
    for _ in range(repeat):
        for k in variants:
            times[k].append(run_once(flow, k, kind))
    transitions = 2 * n + 2
    print(f"engine overhead: chain of {n} no-op tasks, ledger={kind}, median of {repeat} interleaved runs")
    base = statistics.median(times[0])
    for k in variants:
        med = statistics.median(times[k])
        print(f"  {k:>2} listeners: {med / n * 1e6:6.2f} us/task  (median run {med:.3f} s)")
    for k in variants[1:]:
        # per-run differences against the 0-listener run of the same round, then the median
        extra = statistics.median((t - t0) / transitions / k * 1e6 for t, t0 in zip(times[k], times[0]))
        print(f"  each extra listener ({k} subscribed): {extra:5.2f} us per transition")
    del base
    print(f"  publish() alone, 0 listeners: {bench_publish(0):.0f} ns; 10 filtered-out listeners "
          f"(states=[Failed]): {bench_publish(10, states=[Failed]):.0f} ns")


def bench_publish(listeners: int, **filters) -> float:
    """Median ns per ``BUS.publish`` of a task event (no engine around it)."""
    from statemachine.events import Event
    from statemachine.states import Pending, Running, utcnow
    from subscribers.bus import BUS

    event = Event("run", utcnow(), "task", "x", "x-1", 1, Pending(), Running(), seq=1, flow="f")
    sender = object()
    handles = [subscribe(lambda event: None, **filters) for _ in range(listeners)]
    try:
        loops, runs = 100_000, []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(loops):
                BUS.publish(event, sender)
            runs.append((time.perf_counter() - t0) / loops * 1e9)
    finally:
        for h in handles:
            h.disconnect()
    return statistics.median(runs)


def fill_ledger(path: str, events: int):
    from eventstore import EventStore

    store = EventStore(path)
    tasks = max(1, (events - 2) // 2)
    t0 = time.perf_counter()
    build(tasks).run(store=store)
    return store, time.perf_counter() - t0


def bench_catch_up(events: int, repeat: int, batch_size: int) -> None:
    from eventstore import EventStore

    missing = [m for m in ("load_cursor", "save_cursor", "events") if not hasattr(EventStore, m)]
    if missing:
        print(f"durable catch-up: not measured (EventStore has no {', '.join(missing)} yet)")
        return
    with tempfile.TemporaryDirectory() as folder:
        store, fill_time = fill_ledger(os.path.join(folder, "ledger.db"), events)
        try:
            total = len(store.events(after_seq=0))
            rates = []
            for i in range(repeat):
                sub = DurableSubscription(f"bench-{i}", lambda event: None, store=store, batch_size=batch_size)
                gc.collect()
                t0 = time.perf_counter()
                delivered = sub.catch_up()
                elapsed = time.perf_counter() - t0
                assert delivered == total, (delivered, total)
                rates.append(delivered / elapsed)
            filtered = []
            for i in range(repeat):
                sub = DurableSubscription(
                    f"bench-failed-{i}", lambda event: None, store=store, batch_size=batch_size, states=[Failed]
                )
                t0 = time.perf_counter()
                sub.catch_up()
                filtered.append(total / (time.perf_counter() - t0))
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
    print(f"durable catch-up: {total} events in a ledger file (written in {fill_time:.1f} s), "
          f"batch_size={batch_size}, median of {repeat} runs")
    print(f"  no-op listener, every event: {statistics.median(rates):>10,.0f} events/s")
    print(f"  states=[Failed] (none match): {statistics.median(filtered):>10,.0f} events/s scanned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--events", type=int, default=100000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--ledger", choices=("list", "memory"), default="list")
    args = parser.parse_args()
    bench_engine(args.tasks, args.repeat, args.ledger)
    bench_catch_up(args.events, max(3, args.repeat // 2), args.batch_size)


if __name__ == "__main__":
    main()
