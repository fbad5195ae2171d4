"""Executors side by side: I/O-bound tasks at once, and the cost per no-op task on each.

Usage:  python benchmarks/executors.py [--repeat 5] [--sleepy 200] [--noop 1000] [--ledger memory|sqlite]

Workloads (every task has one state handler, as in the other benchmarks):
  sleepy  N independent tasks that each sleep 20 ms (waiting on I/O);
  noop    N independent tasks that return at once: wall time / N is the
          executor's overhead per task (submit, wake up, report, commit).
Executors: LocalExecutor, ThreadExecutor(8), ThreadExecutor(32), and
DaskExecutor on a LocalCluster of 2 worker processes x 16 threads: once
started by the executor inside each run (what `--executor dask` does), once
already running (address=..., the cluster's start-up excluded).
Prints the median wall time of ``flow.run()`` over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import tempfile
import time

from statemachine import Flow, task
from statemachine.executors import DaskExecutor, LocalExecutor, ThreadExecutor

SLEEP_S = 0.020
DASK_CLUSTER = {"n_workers": 2, "threads_per_worker": 16}


def handler(obj, old_state, new_state):
    return new_state


@task(state_handlers=[handler])
def nap(i):
    time.sleep(SLEEP_S)
    return i


@task(state_handlers=[handler])
def noop(i):
    return i


def build(body, n: int) -> Flow:
    with Flow(f"{body.name}-{n}") as flow:
        for i in range(n):
            body(i)
    return flow


def make_store(kind: str, folder: str):
    from eventstore import EventStore

    return EventStore(":memory:" if kind == "memory" else os.path.join(folder, f"{time.monotonic_ns()}.db"))


def median_run(flow: Flow, executor, repeat: int, ledger: str, folder: str) -> float:
    times = []
    for _ in range(repeat):
        store = make_store(ledger, folder)
        gc.collect()
        t0 = time.perf_counter()
        state = flow.run(store=store, executor=executor)
        times.append(time.perf_counter() - t0)
        assert state.is_successful(), state
        store.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sleepy", type=int, default=200)
    parser.add_argument("--noop", type=int, default=1000)
    parser.add_argument("--ledger", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args()
    import distributed

    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = distributed.LocalCluster(dashboard_address=None, silence_logs=logging.ERROR,
                                       scheduler_kwargs={"dashboard_address": ":0"}, **DASK_CLUSTER)
    executors = [
        ("LocalExecutor", LocalExecutor()),
        ("ThreadExecutor(8)", ThreadExecutor(8)),
        ("ThreadExecutor(32)", ThreadExecutor(32)),
        ("DaskExecutor, cluster per run", DaskExecutor(cluster_kwargs=DASK_CLUSTER)),
        ("DaskExecutor, running cluster", DaskExecutor(address=cluster.scheduler_address)),
    ]
    print(f"executors: median of {args.repeat} runs, ledger={args.ledger}, 1 state handler per task; "
          f"Dask: LocalCluster {DASK_CLUSTER['n_workers']} processes x {DASK_CLUSTER['threads_per_worker']} threads")
    with tempfile.TemporaryDirectory() as folder:
        sleepy, quick = build(nap, args.sleepy), build(noop, args.noop)
        for name, ex in executors:
            repeat = args.repeat if name != "LocalExecutor" else max(3, args.repeat // 2)
            s = median_run(sleepy, ex, repeat, args.ledger, folder)
            q = median_run(quick, ex, args.repeat, args.ledger, folder)
            print(f"  {name:<30} {args.sleepy} x 20 ms sleep: {s:6.3f} s   "
                  f"no-op: {q / args.noop * 1e6:8.1f} us/task ({args.noop} tasks, {q:.3f} s)")
    cluster.close()


if __name__ == "__main__":
    main()
