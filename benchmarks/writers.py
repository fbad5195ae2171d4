"""Several processes writing one file ledger at once: events per second, and a clean verify.

Usage:  python benchmarks/writers.py [--writers 1,2,4,8] [--events 16000] [--repeat 3]

For each number of writers W, W processes each run a chain of no-op tasks
(``events / W / 2`` tasks: two events a task) into one new ledger file, all
starting together (a barrier on the file system). Prints, as medians of
--repeat rounds: the time from the common start to the last writer's end,
the ledger's events per second over it, and whether ``verify()`` of the
ledger finds it whole. With one writer every append is one INSERT; with
several, a writer whose next seq another took goes through ``BEGIN
IMMEDIATE`` instead (eventstore/sqlite.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from eventstore import EventStore

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WRITER = """
import os, sys, time
from chain import build
from eventstore import EventStore
path, tasks, barrier, writers = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
flow = build(tasks)
store = EventStore(path)
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < writers:
    time.sleep(0.0005)
flow.run(store=store)
print(time.time())
"""


def one_round(writers: int, events: int) -> tuple[float, int, bool]:
    """(seconds from the common start to the last end, events stored, verify ok)."""
    tasks = max(1, events // writers // 2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    with tempfile.TemporaryDirectory() as folder:
        path, barrier = os.path.join(folder, "ledger.db"), os.path.join(folder, "barrier")
        os.mkdir(barrier)
        EventStore(path).close()
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(tasks), barrier, str(writers)],
                                  env=env, stdout=subprocess.PIPE, text=True) for _ in range(writers)]
        while len(os.listdir(barrier)) < writers:
            time.sleep(0.0005)
        start = time.time()
        ends = [float(p.communicate()[0]) for p in procs]
        assert all(p.returncode == 0 for p in procs)
        with EventStore(path) as store:
            report = store.verify()
        return max(ends) - start, report.checked, report.ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", default="1,2,4,8")
    parser.add_argument("--events", type=int, default=16000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"writer processes into one file ledger, about {args.events:,} events in all, median of {args.repeat}")
    for writers in (int(w) for w in args.writers.split(",")):
        rounds = [one_round(writers, args.events) for _ in range(args.repeat)]
        seconds = statistics.median(r[0] for r in rounds)
        events = rounds[0][1]
        print(f"  {writers} writer{'s' if writers > 1 else ' '}  {seconds:6.2f} s  {events / seconds:8,.0f} events/s"
              f"  verify {'OK' if all(r[2] for r in rounds) else 'FAILED'}")


if __name__ == "__main__":
    main()
