"""Engine overhead per task: a chain of no-op tasks, one state handler each, in-memory ledger.

Usage:  python benchmarks/engine.py [--sizes 10000,100000] [--repeat 5] [--ledger memory|list]

Prints, per chain length, the median wall time of ``flow.run()`` over several
runs divided by the number of tasks (build time excluded), and how the
per-task cost grows from the smallest to the largest chain.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from chain import build, make_ledger


def measure(n: int, repeat: int, kind: str) -> list[float]:
    flow = build(n)
    times = []
    for _ in range(repeat):
        ledger = make_ledger(kind)
        gc.collect()
        t0 = time.perf_counter()
        state = flow.run(store=ledger)
        times.append(time.perf_counter() - t0)
        assert state.is_successful(), state
        del state, ledger
    return times


def legality_check_ns(repeat: int) -> float:
    """Median cost of one ``graph.is_legal`` call (it runs on every transition)."""
    import timeit

    from statemachine import graph
    from statemachine.states import Running, Success

    old, new = Running(), Success()
    runs = timeit.repeat(lambda: graph.is_legal(old, new), number=200_000, repeat=max(repeat, 3))
    return statistics.median(runs) / 200_000 * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ledger", choices=("memory", "list"), default="memory")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    per_task = {}
    print(f"engine overhead: chain of no-op tasks, 1 state handler each, ledger={args.ledger}, "
          f"median of {args.repeat} runs")
    for n in sizes:
        times = measure(n, args.repeat, args.ledger)
        per_task[n] = statistics.median(times) / n * 1e6
        print(f"  {n:>7} tasks: {per_task[n]:6.2f} us/task  (median run {statistics.median(times):.3f} s, "
              f"min {min(times) / n * 1e6:.2f} us/task)")
    print(f"  legality check (graph.is_legal): {legality_check_ns(args.repeat):.0f} ns per transition")
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"  growth {lo} -> {hi}: {per_task[hi] / per_task[lo]:.2f}x per task (1.00 = linear)")


if __name__ == "__main__":
    main()
